import PeonPolicy
import Testing

let aclModel = """
    [request_definition]
    r = sub, obj, act

    [policy_definition]
    p = sub, obj, act

    [policy_effect]
    e = some(where (p.eft == allow))

    [matchers]
    m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
    """

let rbacModel = """
    [request_definition]
    r = sub, obj, act
    [policy_definition]
    p = sub, obj, act
    [role_definition]
    g = _, _
    [policy_effect]
    e = some(where (p.eft == allow))
    [matchers]
    m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act
    """

func model(matcher: String, policy: String = "sub, obj, act", request: String = "sub, obj, act", roles: String? = nil) -> String {
    var text = "[request_definition]\nr = \(request)\n[policy_definition]\np = \(policy)\n"
    if let roles { text += "[role_definition]\ng = \(roles)\n" }
    return text + "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = \(matcher)\n"
}

func loadError(model: String, policy: String = "", functions: FunctionRegistry = .standard) -> PolicyError? {
    do {
        _ = try Enforcer(model: model, modelSource: "m.conf", policy: policy, policySource: "p.csv", functions: functions)
        return nil
    } catch {
        return error
    }
}

@Suite struct DecisionTests {
    @Test func aDecisionNamesTheRuleThatDecidedIt() throws {
        let enforcer = try Enforcer(model: aclModel, modelSource: "m.conf", policy: "# rules\np, bob, data2, write\n\np, alice, data1, read\n", policySource: "p.csv")
        let decision = try enforcer.enforce("alice", "data1", "read")
        #expect(decision.isAllowed)
        #expect(decision.rule?.description == "p, alice, data1, read")
        #expect(decision.rule?.location == "p.csv:4")
        let denied = try enforcer.enforce("alice", "data1", "write")
        #expect(!denied.isAllowed)
        #expect(denied.rule == nil)
    }

    /// Go Casbin and pycasbin trim any Unicode white space around a field; a no-break space (U+00A0) an editor or a
    /// web page put after a comma was kept, and `alice` then never matched.
    @Test func unicodeWhiteSpaceAroundAFieldIsTrimmed() throws {
        let enforcer = try Enforcer(model: aclModel, modelSource: "m.conf",
                                    policy: "p,\u{00A0}alice, data1 \u{2003}, read\u{00A0}\np, \u{00A0}\"bob\"\u{00A0}, data2, write\n", policySource: "p.csv")
        #expect(try enforcer.enforce("alice", "data1", "read").isAllowed)
        #expect(try enforcer.enforce("bob", "data2", "write").isAllowed)
        // Inside a field, white space stays.
        let inner = try Enforcer(model: aclModel, modelSource: "m.conf", policy: "p, al\u{00A0}ice, data1, read\n", policySource: "p.csv")
        #expect(try !inner.enforce("alice", "data1", "read").isAllowed)
        #expect(try inner.enforce("al\u{00A0}ice", "data1", "read").isAllowed)
    }

    /// Go Casbin and pycasbin read `r_sub` as `r.sub` (they rewrite the dots to underscores themselves), so a matcher
    /// written that way loads and decides the same; it was an "unknown name" load error.
    @Test func underscoredFieldNamesReadAsDotted() throws {
        let underscored = try Enforcer(model: model(matcher: "r_sub == p_sub && r_obj.Owner == p_obj && r.act == p_act"),
                                       modelSource: "m.conf", policy: "p, alice, bob, read\n", policySource: "p.csv")
        #expect(try underscored.enforce([.string("alice"), .object(["Owner": .string("bob")]), .string("read")]).isAllowed)
        #expect(try !underscored.enforce([.string("alice"), .object(["Owner": .string("eve")]), .string("read")]).isAllowed)
        #expect(loadError(model: model(matcher: "r_nope == p.sub")) != nil)
    }

    @Test func quotedFieldsMayContainCommasAndQuotes() throws {
        let enforcer = try Enforcer(model: aclModel, modelSource: "m.conf", policy: #"p, "carol, the admin", "say ""hi""", read"#, policySource: "p.csv")
        #expect(try enforcer.enforce("carol, the admin", #"say "hi""#, "read").isAllowed)
        #expect(try !enforcer.enforce("carol", #"say "hi""#, "read").isAllowed)
    }

    @Test func canonicallyEquivalentButDifferentStringsDoNotMatch() throws {
        let enforcer = try Enforcer(model: aclModel, modelSource: "m.conf", policy: "p, caf\u{E9}, data, read", policySource: "p.csv")
        #expect(try enforcer.enforce("caf\u{E9}", "data", "read").isAllowed)
        #expect(try !enforcer.enforce("cafe\u{301}", "data", "read").isAllowed)
    }

    @Test func rulesAddedProgrammaticallyAreEnforcedAndExplained() throws {
        let grant = PolicyRule(section: "p", values: ["agent", "/tmp/*", "read"], source: "grants.toml", line: 7)
        let enforcer = try Enforcer(model: rbacModel, modelSource: "m.conf", policy: "", policySource: "p.csv", additionalRules: [grant])
        let decision = try enforcer.enforce("agent", "/tmp/x", "read")
        #expect(decision.isAllowed)
        #expect(decision.rule?.location == "grants.toml:7")
        let plain = try Enforcer(model: rbacModel, modelSource: "m.conf", policy: "", policySource: "p.csv")
        #expect(plain.version != enforcer.version)
    }

    @Test func roleInheritanceStopsAtTheDepthLimitAndSurvivesCycles() throws {
        let links = (0..<12).map { "g, u\($0), u\($0 + 1)" }.joined(separator: "\n")
        let policy = "p, u9, /x, read\np, loop, /y, read\ng, a, b\ng, b, a\ng, b, loop\n" + links
        let enforcer = try Enforcer(model: rbacModel, modelSource: "m.conf", policy: policy, policySource: "p.csv")
        #expect(try enforcer.enforce("u0", "/x", "read").isAllowed)  // 9 links
        #expect(try !enforcer.enforce("u10", "/x", "read").isAllowed)  // not an ancestor
        #expect(try enforcer.enforce("a", "/y", "read").isAllowed)
        #expect(try !enforcer.enforce("a", "/x", "read").isAllowed)
        let deep = try Enforcer(model: rbacModel, modelSource: "m.conf", policy: "p, u10, /x, read\n" + links, policySource: "p.csv")
        #expect(try !deep.enforce("u0", "/x", "read").isAllowed)  // 10 links: past the limit
        #expect(try deep.enforce("u1", "/x", "read").isAllowed)
    }

    @Test func customFunctionsAreCalledWithEvaluatedArguments() throws {
        var functions = FunctionRegistry.standard
        functions.register("hasPrefix", arity: 2) { arguments in
            guard case .string(let text) = arguments[0], case .string(let prefix) = arguments[1] else { return .bool(false) }
            return .bool(text.hasPrefix(prefix))
        }
        let enforcer = try Enforcer(
            model: model(matcher: "r.sub == p.sub && hasPrefix(r.obj, p.obj) && r.act == p.act"), modelSource: "m.conf",
            policy: "p, alice, /home/alice/, read", policySource: "p.csv", functions: functions)
        #expect(try enforcer.enforce("alice", "/home/alice/notes", "read").isAllowed)
        #expect(try !enforcer.enforce("alice", "/home/bob/notes", "read").isAllowed)
    }

    @Test func withoutPolicyRulesTheMatcherRunsOnceWithEmptyFields() throws {
        let enforcer = try Enforcer(model: model(matcher: "r.sub == 'root' || r.sub == p.sub"), modelSource: "m.conf", policy: "", policySource: "p.csv")
        #expect(try enforcer.enforce("root", "x", "y").isAllowed)
        #expect(try !enforcer.enforce("alice", "x", "y").isAllowed)
        #expect(try enforcer.enforce("", "x", "y").isAllowed)
    }

    @Test func arithmeticMembershipAndNegationEvaluate() throws {
        let enforcer = try Enforcer(
            model: model(matcher: "!(r.act in ('delete', \"drop\")) && (r.sub.Age - 1) * 2 % 7 >= 3 && -r.sub.Age < 0 && r.obj + '!' == 'x!'"),
            modelSource: "m.conf", policy: "", policySource: "p.csv")
        #expect(try enforcer.enforce([["Age": 4], "x", "read"]).isAllowed)  // (3*2)%7 = 6
        #expect(try !enforcer.enforce([["Age": 4], "x", "drop"]).isAllowed)
        #expect(try !enforcer.enforce([["Age": 1], "x", "read"]).isAllowed)
    }

    @Test func aRequestOfTheWrongShapeIsAnErrorNotADecision() throws {
        let enforcer = try Enforcer(model: model(matcher: "r.sub.Age > 18"), modelSource: "m.conf", policy: "", policySource: "p.csv")
        #expect(throws: PolicyError.self) { try enforcer.enforce("a", "b") }
        let error = #expect(throws: PolicyError.self) { try enforcer.enforce("alice", "b", "c") }
        #expect(error?.description == "m.conf:8:5: r.sub is a string, not an object, so it has no attribute 'Age'")
        #expect(throws: PolicyError.self) { try enforcer.enforce([["Name": "x"], "b", "c"]) }
        let ip = try Enforcer(model: model(matcher: "ipMatch(r.sub, '10.0.0.0/8')"), modelSource: "m.conf", policy: "", policySource: "p.csv")
        #expect(try ip.enforce("10.1.2.3", "", "").isAllowed)
        #expect(try !ip.enforce("not-an-ip", "", "").isAllowed)
    }
}

@Suite struct EffectTests {
    static let policy = """
        p, alice, data, read, allow
        p, alice, data, read, deny
        p, bob, data, read, deny
        p, carol, data, read, allow
        """

    static func enforcer(_ effect: String) throws -> Enforcer {
        let text = model(matcher: "r.sub == p.sub && r.obj == p.obj && r.act == p.act", policy: "sub, obj, act, eft")
            .replacingOccurrences(of: "some(where (p.eft == allow))", with: effect)
        return try Enforcer(model: text, modelSource: "m.conf", policy: policy, policySource: "p.csv")
    }

    @Test func eachEffectCombinesMatchesAsCasbinDoes() throws {
        let cases: [(String, [String: Bool])] = [
            ("some(where (p.eft == allow))", ["alice": true, "bob": false, "carol": true, "dave": false]),
            ("!some(where (p.eft == deny))", ["alice": false, "bob": false, "carol": true, "dave": true]),
            ("some(where (p.eft == allow)) && !some(where (p.eft == deny))", ["alice": false, "bob": false, "carol": true, "dave": false]),
            ("priority(p.eft) || deny", ["alice": true, "bob": false, "carol": true, "dave": false]),
        ]
        for (effect, expected) in cases {
            let enforcer = try Self.enforcer(effect)
            for (subject, allowed) in expected {
                #expect(try enforcer.enforce(subject, "data", "read").isAllowed == allowed, "\(effect) \(subject)")
            }
        }
        let denyOverride = try Self.enforcer("!some(where (p.eft == deny))")
        #expect(try denyOverride.enforce("alice", "data", "read").rule?.values == ["alice", "data", "read", "deny"])
    }
}

import Foundation

/// A backslash in a matcher's string literal. peon-wasm read it as an escape of the next character, so
/// `'^/api/v1\.0/\d+$'` became `^/api/v1.0/d+$`: `/api/v1x0/ddd` was allowed and `/api/v1.0/42` was not. Before a
/// character no string escape uses it is now itself, as pycasbin and Go Casbin both read it; before one Python reads as
/// an escape (`\\`, `\n`, `\1`) the two disagree, and the model is refused rather than read one way (a deny rule
/// written `'^/admin\\.internal/'` for pycasbin would otherwise match nothing and allow what it was to refuse).
@Suite struct MatcherBackslashTests {
    @Test func aRegexWrittenInTheMatcherKeepsItsBackslashes() throws {
        let enforcer = try Enforcer(
            model: model(matcher: #"r.sub == p.sub && regexMatch(r.obj, '^/api/v1\.0/\d+$')"#, policy: "sub", request: "sub, obj"),
            modelSource: "m.conf", policy: "p, alice\n", policySource: "p.csv")
        #expect(try enforcer.enforce("alice", "/api/v1.0/42").isAllowed)
        #expect(try !enforcer.enforce("alice", "/api/v1x0/ddd").isAllowed)
        #expect(try !enforcer.enforce("alice", "/api/v1.0/x").isAllowed)
    }

    @Test func aLiteralWithBackslashesEqualsTheSameRequestValue() throws {
        let enforcer = try Enforcer(model: model(matcher: #"r.obj == 'C:\Windows\System32' && r.sub == p.sub"#, policy: "sub", request: "sub, obj"),
                                    modelSource: "m.conf", policy: "p, alice\n", policySource: "p.csv")
        #expect(try enforcer.enforce("alice", #"C:\Windows\System32"#).isAllowed)
        #expect(try !enforcer.enforce("alice", "C:WindowsSystem32").isAllowed)
    }

    @Test("an escape Python reads and Go Casbin does not is refused at load, with where", arguments: [
        #"!regexMatch(r.obj, '^/admin\\.internal/')"#, #"r.obj == 'C:\temp'"#, #"regexMatch('\1\2', p.obj)"#, #"r.obj == "a\nb""#,
        #"r.obj == 'it\'s'"#, #"r.obj == '\x41'"#,
    ])
    func anAmbiguousEscapeIsALoadError(_ matcher: String) {
        let error = loadError(model: model(matcher: matcher))
        #expect(error?.message.contains("is an escape to pycasbin but two characters to Go Casbin") == true, "\(String(describing: error))")
        #expect(error?.line == 8, "\(String(describing: error))")
    }

    @Test func aStringCannotHoldItsOwnQuote() throws {
        // `'it\'s'` is refused (above); `"it's"` is the way.
        let enforcer = try Enforcer(model: model(matcher: #"r.sub == "it's""#), modelSource: "m.conf", policy: "", policySource: "p.csv")
        // No policy lines and a matcher without `p.`: the matcher alone decides, as in Casbin.
        #expect(try enforcer.enforce("it's", "o", "a").isAllowed)
        #expect(try !enforcer.enforce(#"it\'s"#, "o", "a").isAllowed)
    }
}
