import Foundation
import PeonAudit
import PeonInterface
import PeonPolicy
import Testing
@testable import PeonMediator

/// A rule is quoted, in the audit log and by `policy explain`, as a policy line that reads back as the same rule: a field holding a comma
/// is in double quotes. Without it a policy line `p, reporter, "fs:/…/granted/a,b.txt", fs.read, *` was recorded as
/// `allowed by p, reporter, fs:/…/granted/a,b.txt, fs.read, *`: five fields, a rule that does not exist.
@Suite struct RuleQuotingTests {
    /// A hand-written Casbin policy may quote a field holding a comma (grants cannot: they refuse commas in
    /// resources). The reason recorded for a call it decides quotes that field again.
    @Test func theAuditReasonQuotesAFieldHoldingAComma() throws {
        let scratch = try Scratch()
        _ = try scratch.file("granted/a,b.txt", "x")
        let object = "fs:\(scratch.path)/granted/a,b.txt"
        let snapshot = try PolicySnapshot.build(
            model: BuiltinModel.text, modelSource: "model.conf", policy: "p, reporter, \"\(object)\", fs.read, *\n",
            policySource: "policy.csv", compiled: nil)
        let harness = try Harness(scratch: scratch, configure: { $0.policy = MediatorPolicyStore(snapshot); $0.module = "reporter" })
        #expect(try harness.mediator.read(path: "granted/a,b.txt") == Array("x".utf8))
        let decision = try #require(try harness.decisions("fs.read").first)
        let reason = "allowed by p, reporter, \"\(object)\", fs.read, * (policy.csv:1)"
        #expect(decision.reason == reason)
        // `policy explain` quotes the rule as the log does.
        let explained = explainPolicy(snapshot: snapshot, module: "reporter", action: "fs.read", object: object, arguments: [])
        #expect(explained.lines.contains("allow: " + reason), "\(explained.lines)")
    }

    @Test func ordinaryRulesReadAsBefore() throws {
        let rule = PolicyRule(section: "p", values: ["m", "fs:/srv/**", "fs.read", "*"], source: "g.toml", line: 3)
        #expect(rule.csvLine == rule.description)
        #expect(rule.csvLine == "p, m, fs:/srv/**, fs.read, *")
        let quoted = PolicyRule(section: "p", values: ["m", "say \"hi\"", " lead", "trail "], source: "g.toml", line: 3)
        #expect(quoted.csvLine == #"p, m, "say ""hi""", " lead", "trail ""#)
    }
}
