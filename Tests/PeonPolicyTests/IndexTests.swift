import PeonPolicy
import Testing

/// Indexes only skip rules that cannot match: for every request, an indexed matcher decides
/// exactly as the same matcher written so that no index applies (every rule is tried).
@Suite struct IndexTests {
    @Test(arguments: ["some(where (p.eft == allow))", "!some(where (p.eft == deny))",
                      "some(where (p.eft == allow)) && !some(where (p.eft == deny))", "priority(p.eft) || deny"])
    func indexedAndFullScansDecideAlike(_ effect: String) throws {
        var generator = SplitMix(seed: 7)
        let names = (0..<20).map { "n\($0)" }
        var lines: [String] = []
        for _ in 0..<60 {
            let eft = generator.next() % 3 == 0 ? "deny" : "allow"
            lines.append("p, \(names[generator.next() % 20]), d\(generator.next() % 2), o\(generator.next() % 3), \(eft)")
        }
        for _ in 0..<40 {
            lines.append("g, \(names[generator.next() % 20]), \(names[generator.next() % 20]), d\(generator.next() % 2)")
        }
        let policy = lines.joined(separator: "\n")
        func build(_ matcher: String) throws -> Enforcer {
            let text = """
                [request_definition]
                r = sub, dom, obj
                [policy_definition]
                p = sub, dom, obj, eft
                [role_definition]
                g = _, _, _
                [policy_effect]
                e = \(effect)
                [matchers]
                m = \(matcher)
                """
            return try Enforcer(model: text, modelSource: "m.conf", policy: policy, policySource: "p.csv")
        }
        let indexed = try build("g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj")
        let scanned = try build("(g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj) || false")
        for name in names + ["stranger"] {
            for domain in ["d0", "d1", "d2"] {
                for object in ["o0", "o1", "o2"] {
                    let request: [PolicyValue] = [.string(name), .string(domain), .string(object)]
                    let fast = try indexed.enforce(request), slow = try scanned.enforce(request)
                    #expect(fast.isAllowed == slow.isAllowed, "\(request)")
                    #expect(fast.rule == slow.rule, "\(request)")
                }
            }
        }
    }
}

/// A small deterministic generator, so the test's rules are the same on every run.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
    }
}
