import Foundation
import PeonPolicy
import Testing

/// Threat: a policy file (or a policy store row set) whose `g` links make loading cost the square of its
/// size. Loading precomputed every subject's roles, so a few thousand densely linked names (a 250 KB file)
/// took 18 s and 560 MB, and 1 MB took minutes and gigabytes; a hot reload of such a policy stalls the
/// reloader and grows the host. `subjectPriority(p.eft)` levelled the hierarchy with a loop that rebuilt the
/// set of parents once per level, so a plain chain of 20,000 links (300 KB) took over two minutes. Found by
/// a red-team pass. Loading must stay near linear, and the answers must not change.
@Suite struct RoleGraphSizeTests {
    static let model = """
        [request_definition]
        r = sub, obj, act
        [policy_definition]
        p = sub, obj, act
        [role_definition]
        g = _, _
        [policy_effect]
        e = some(where (p.eft == allow))
        [matchers]
        m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
        """

    @Test func aDenselyLinkedRoleGraphLoadsInBoundedTimeAndDecidesAlike() throws {
        let count = 6000
        var generator = SplitMix(seed: 11)
        var links: [[Int]] = Array(repeating: [], count: count)
        var lines: [String] = []
        for index in 0..<count { lines.append("p, u\(index), o\(index % 3), read") }
        for index in 0..<count {
            for _ in 0..<4 {
                let role = generator.next() % count
                links[index].append(role)
                lines.append("g, u\(index), u\(role)")
            }
        }
        let started = ContinuousClock.now
        let enforcer = try Enforcer(model: Self.model, modelSource: "m.conf", policy: lines.joined(separator: "\n"),
                                    policySource: "p.csv")
        var answers: [Bool] = []
        var expected: [Bool] = []
        for _ in 0..<40 {
            let subject = generator.next() % count
            let object = generator.next() % 4
            answers.append(try enforcer.enforce("u\(subject)", "o\(object)", "read").isAllowed)
            // The reference: breadth first, at most 9 links (a chain of 10 names), as pycasbin.
            var seen: Set<Int> = [subject]
            var frontier = [subject]
            for _ in 0..<9 {
                frontier = frontier.flatMap { links[$0] }.filter { seen.insert($0).inserted }
            }
            expected.append(seen.contains { $0 % 3 == object })
        }
        let elapsed = ContinuousClock.now - started
        #expect(answers == expected)
        #expect(elapsed < .seconds(30), "loading and 40 requests took \(elapsed)")  // a hang guard (62 s before the fix, < 2 s after), not a speed measure
    }

    @Test func subjectPriorityLevelsALongChainInLinearTime() throws {
        let model = Self.model
            .replacingOccurrences(of: "p = sub, obj, act", with: "p = sub, obj, act, eft")
            .replacingOccurrences(of: "e = some(where (p.eft == allow))", with: "e = subjectPriority(p.eft) || deny")
        let count = 20_000
        var lines = ["p, u3, doc, read, deny", "p, u1, doc, read, allow"]
        for index in 0..<count { lines.append("g, u\(index), u\(index + 1)") }
        let started = ContinuousClock.now
        let enforcer = try Enforcer(model: model, modelSource: "m.conf", policy: lines.joined(separator: "\n"),
                                    policySource: "p.csv")
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(30), "loading took \(elapsed)")  // a hang guard (183 s before the fix, < 1 s after), not a speed measure
        // u1 is lower in the hierarchy than u3, so its allow decides for u0 whatever the file order.
        let decision = try enforcer.enforce("u0", "doc", "read")
        #expect(decision.isAllowed && decision.rule?.line == 2)
        #expect(try !enforcer.enforce("u2", "doc", "read").isAllowed)
    }
}
