import PeonPolicy
import Testing

/// Mistakes in models and policies are load-time errors that say where they are and what was
/// expected, never a per-request surprise or a crash.
@Suite struct LoadErrorTests {
    @Test(arguments: [
        ("r.sub == p.sub && keyMatch9(r.obj, p.obj)", "m.conf:8:23: unknown function 'keyMatch9'"),
        ("keyMatch(r.obj)", "m.conf:8:5: keyMatch() takes 2 arguments, found 1"),
        ("r.subject == p.sub", "m.conf:8:5: undefined request field 'r.subject'; request_definition has r = sub, obj, act"),
        ("r.sub == p.owner", "m.conf:8:14: undefined policy field 'p.owner'"),
        ("r.sub == p.sub &&", "m.conf:8:22: unexpected end of expression"),
        ("r.sub = p.sub", "m.conf:8:11: unexpected '='; expected '=='"),
        ("r.sub == 'alice", "m.conf:8:14: unterminated string"),
        ("(r.sub == p.sub", "m.conf:8:20: unexpected end of expression; expected ')'"),
        ("r.sub == p.sub)", "m.conf:8:19: unexpected ')'"),
        ("g(r.sub, p.sub)", "m.conf:8:5: unknown function 'g'"),
        ("regexMatch(r.obj, '(a')", "m.conf:8:23: invalid regexMatch pattern '(a': missing closing ')'"),
        ("ipMatch(r.obj, '10.0.0.0/33')", "m.conf:8:20: invalid ipMatch pattern '10.0.0.0/33'"),
        ("eval(r.sub)", "m.conf:8:10: eval() takes a policy field"),
        ("p.sub.Name == r.sub", "m.conf:8:5: policy fields are strings and have no attributes"),
    ])
    func matcherMistakesAreLocated(_ matcher: String, _ expected: String) {
        let error = loadError(model: model(matcher: matcher))
        #expect(error?.description.hasPrefix(expected) == true, "got \(error?.description ?? "no error")")
    }

    @Test func aBadPatternInAPolicyLineNamesThatLineAndColumn() {
        let text = model(matcher: "r.sub == p.sub && regexMatch(r.obj, p.obj) && ipMatch(r.act, p.act)")
        let regex = loadError(model: text, policy: "p, alice, ^/ok$, 10.0.0.1\n\np, bob,   (x+, 10.0.0.1")
        #expect(regex?.description.hasPrefix("p.csv:3:11: invalid regexMatch pattern '(x+' (field p.obj): missing closing ')'") == true, "\(String(describing: regex))")
        let cidr = loadError(model: text, policy: "p, alice, ok, 300.1.1.1/8")
        #expect(cidr?.description.hasPrefix("p.csv:1:15: invalid ipMatch pattern '300.1.1.1/8'") == true, "\(String(describing: cidr))")
        let backtrackingSyntax = loadError(model: text, policy: "p, alice, (?=x), 10.0.0.1")
        #expect(backtrackingSyntax?.description.hasPrefix("p.csv:1:11: invalid regexMatch pattern") == true)
    }

    @Test func aBadEvalRuleNamesItsPolicyLine() {
        let text = model(matcher: "eval(p.sub) && r.obj == p.obj", policy: "sub, obj")
        let error = loadError(model: text, policy: "p, r.sub.Age > 18, a\np, r.sub.Age >> 18, b")
        #expect(error?.description.hasPrefix("p.csv:2:15: unexpected '>'") == true, "\(String(describing: error))")
        let undefined = loadError(model: text, policy: "p, r.nope == 1, a")
        #expect(undefined?.description.hasPrefix("p.csv:1:4: undefined request field 'r.nope'") == true, "\(String(describing: undefined))")
        // An empty rule still names its line and column (it named the file only).
        let empty = loadError(model: text, policy: "p, r.sub.Age > 18, a\np, , b")
        #expect(empty?.description.hasPrefix("p.csv:2:4: empty expression") == true, "\(String(describing: empty))")
    }

    @Test(arguments: [
        ("p, alice, data1", "p.csv:1:1: 'p' rule has 2 values; policy_definition p = sub, obj, act expects 3"),
        ("p, alice, data1, read\nq, x, y", "p.csv:2:1: unknown rule type 'q'"),
        ("p, \"alice, data1, read", "p.csv:1:4: unterminated quoted field"),
        ("p, al\"ice, data1, read", "p.csv:1:6: a '\"' may only start a field"),
        ("g, alice", "p.csv:1:1: 'g' rule has 1 values; role_definition g expects 2"),
    ])
    func policyMistakesAreLocated(_ policy: String, _ expected: String) {
        let error = loadError(model: model(matcher: "g(r.sub, p.sub)", roles: "_, _"), policy: policy)
        #expect(error?.description.hasPrefix(expected) == true, "got \(error?.description ?? "no error")")
    }

    @Test func modelMistakesAreLocated() {
        #expect(loadError(model: "[request_definition]\nr = sub\n[policy_definiton]\np = sub")?.description.hasPrefix("m.conf:3:2: unknown section [policy_definiton]") == true)
        #expect(loadError(model: "r = sub")?.description.hasPrefix("m.conf:1:1: expected a section header") == true)
        #expect(loadError(model: "[request_definition]\nr = sub\n[policy_definition]\np = sub\n[matchers]\nm = true")?.description == "m.conf: missing 'e = ...' in [policy_effect]")
        let effect = model(matcher: "true").replacingOccurrences(of: "some(where (p.eft == allow))", with: "max(p.eft)")
        #expect(loadError(model: effect)?.description.hasPrefix("m.conf:6:5: unsupported policy effect 'max(p.eft)'") == true)
        let roles = model(matcher: "true", roles: "_")
        #expect(loadError(model: roles)?.description.hasPrefix("m.conf:6:5: expected '_, _' or '_, _, _'") == true)
        #expect(loadError(model: model(matcher: "true", request: "sub, sub"))?.description.hasPrefix("m.conf:2:10: field 'sub' is listed twice") == true)
        let priority = model(matcher: "r.sub == p.sub", policy: "priority, sub")
        #expect(loadError(model: priority, policy: "p, high, alice")?.description.hasPrefix("p.csv:1:4: p.priority must be an integer") == true)
    }

    @Test func commentsContinuationsAndCRLFAreAccepted() throws {
        let text = "# a model\r\n[request_definition]\r\nr = sub, obj, act\r\n; another comment\r\n[policy_definition]\r\np = sub, obj, act\r\n"
            + "[policy_effect]\r\ne = some(where (p.eft == allow))\r\n[matchers]\r\nm = r.sub == p.sub && \\\r\n    r.obj == p.obj && \\\r\n    r.act == p.act\r\n"
        let enforcer = try Enforcer(model: text, modelSource: "m.conf", policy: "p, a, b, c\r\n", policySource: "p.csv")
        #expect(try enforcer.enforce("a", "b", "c").isAllowed)
        #expect(try !enforcer.enforce("a", "b", "d").isAllowed)
        let error = loadError(model: text.replacingOccurrences(of: "r.act == p.act", with: "r.act == p.nope"))
        #expect(error?.description.hasPrefix("m.conf:12:14: undefined policy field 'p.nope'") == true, "\(String(describing: error))")
    }

    @Test func hostileNestingIsAnErrorNotAStackOverflow() {
        let deep = String(repeating: "(", count: 100_000) + "true" + String(repeating: ")", count: 100_000)
        #expect(loadError(model: model(matcher: deep))?.message.contains("nested too deeply") == true)
        let long = Array(repeating: "r.sub == p.sub", count: 100_000).joined(separator: " && ")
        #expect(loadError(model: model(matcher: long))?.message.contains("expression too long") == true)
        let negations = String(repeating: "!", count: 100_000) + "true"
        #expect(loadError(model: model(matcher: negations)) != nil)
        let deepRegex = "regexMatch(r.obj, '" + String(repeating: "(", count: 5000) + "a" + String(repeating: ")", count: 5000) + "')"
        #expect(loadError(model: model(matcher: deepRegex))?.message.contains("nested too deeply") == true)
        #expect(loadError(model: model(matcher: "regexMatch(r.obj, '((a{1000}){1000}){1000}')"))?.message.contains("too large") == true)
    }
}

import Foundation
