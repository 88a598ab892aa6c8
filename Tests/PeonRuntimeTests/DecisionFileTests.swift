import Foundation
import PeonAudit
import PeonInterface
import PeonMediator
import PeonRuntime
import PeonTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Threat: a guest granted its own workspace (`paths = ["./**"]`, relative to the grants file's folder) holds the
/// files its decisions come from. The grants, model and policy are reloaded while a run goes on, so a guest that wrote
/// `[[fs]] paths = ["/**"]` into its grants read `/etc/shadow` a second later, and the file stayed rewritten for the
/// next run; the module file is what the next run loads. No grant reaches any of them, whatever path reaches them
/// (relative, with `..`, through a link), and each refusal is on record.
@Suite struct DecisionFileTests {
    @Test func noGrantReachesTheGrantsModelPolicyOrModule() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peon-decision-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/real", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let grants = "module = \"agent\"\n[[fs]]\npaths = [\"./**\"]\nallow = [\"read\", \"write\", \"append\", \"remove\", \"list\"]\n"
        // The grants are given through two links in the workspace: every link on the way and the file they lead to
        // are theirs too (removing `mid.toml` and writing a file in its place would have replaced the grants).
        try Data(grants.utf8).write(to: URL(fileURLWithPath: dir + "/real/grants.toml"))
        #expect(symlink("real/grants.toml", dir + "/mid.toml") == 0)
        #expect(symlink("mid.toml", dir + "/grants.toml") == 0)
        let model = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/model.conf"), encoding: .utf8)
        try Data(model.utf8).write(to: URL(fileURLWithPath: dir + "/model.conf"))
        try Data("p, nobody, fs:/nothing, fs.read, *\n".utf8).write(to: URL(fileURLWithPath: dir + "/policy.csv"))
        let module = dir + "/agent.wasm"
        try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm").path,
                                         toPath: module)
        var options = SessionOptions()
        options.policy = PolicySources(grantsPath: dir + "/grants.toml", modelPath: dir + "/model.conf", policyPath: dir + "/policy.csv")
        options.auditPath = dir + "/audit.jsonl"
        options.auditKeyPath = dir + "/audit.key"
        options.workingDirectory = dir
        let plan = try RunPlan(modulePath: module, options: options, overrides: LimitOverrides())
        let session = try AgentSession(plan: plan, deadline: ContinuousClock.now + .seconds(60))
        try session.recordStart(engine: "test")
        let mediator = session.mediator
        let widened = Array("module = \"agent\"\n[[fs]]\npaths = [\"/**\"]\nallow = [\"read\"]\n".utf8)
        let files = ["grants.toml", "mid.toml", "real/grants.toml", "real/../real/grants.toml", "model.conf", dir + "/policy.csv",
                     "agent.wasm", "grants.toml.swp"]
        var refusals = 0
        for file in files {
            for (what, call) in [("write", { () throws(HostError) in try mediator.write(path: file, data: widened) }),
                                 ("append", { () throws(HostError) in try mediator.append(path: file, data: widened) }),
                                 ("read", { () throws(HostError) in _ = try mediator.read(path: file) }),
                                 ("remove", { () throws(HostError) in try mediator.remove(path: file) })] as [(String, () throws(HostError) -> Void)] {
                do throws(HostError) {
                    try call()
                    Issue.record("\(what) \(file) was allowed")
                } catch {
                    #expect(error.code == .denied, "\(what) \(file): \(error)")
                    refusals += 1
                }
            }
        }
        // The workspace itself stays granted: the refusal is for the host's files, not for the folder.
        try mediator.write(path: "notes.txt", data: Array("mine".utf8))
        #expect(try mediator.read(path: "notes.txt") == Array("mine".utf8))
        session.finish(outcome: "ok", reason: "")
        #expect(try String(contentsOfFile: dir + "/real/grants.toml", encoding: .utf8) == grants)
        #expect(FileManager.default.fileExists(atPath: module) && FileManager.default.fileExists(atPath: dir + "/policy.csv"))
        let log = try Data(contentsOf: URL(fileURLWithPath: dir + "/audit.jsonl"))
        let denied = log.split(separator: 0x0A).compactMap { try? AuditEntry.parse(Array($0)).get().record }
            .filter { $0.decision == .deny && $0.reason.contains("the host's own file") }
        #expect(denied.count == refusals && refusals == files.count * 4)
    }
}
