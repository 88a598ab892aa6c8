import Foundation
import PeonPolicy
import Testing
@testable import PeonMediator

/// A snapshot keeps the verdicts it reached (``VerdictCache``): a kept verdict must be exactly the engine's,
/// only pure models may keep any, and what is kept stays bounded.
@Suite struct VerdictCacheTests {
    static let model = """
        [request_definition]
        r = sub, obj, act
        [policy_definition]
        p = sub, obj, act, eft
        [role_definition]
        g = _, _
        [policy_effect]
        e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
        [matchers]
        m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act
        """
    static let policy = """
        p, reader, /data/*, read, allow
        p, writer, /data/*, write, allow
        p, alice, /data/secret, read, deny
        p, bob, /tmp/*, read, allow
        g, alice, reader
        g, bob, writer
        g, carol, reader
        g, carol, writer
        """

    static func snapshot(model: String = model, policy: String = policy) throws -> PolicySnapshot {
        try PolicySnapshot.build(model: model, modelSource: "m.conf", policy: policy, policySource: "p.csv", compiled: nil)
    }

    static var requests: [PolicyRequest] {
        var requests: [PolicyRequest] = []
        for subject in ["alice", "bob", "carol", "dave", "reader"] {
            for object in ["/data/a", "/data/secret", "/tmp/x", "/data", "/etc/passwd"] {
                for action in ["read", "write", "delete"] {
                    requests.append(PolicyRequest(subject: subject, object: object, action: action))
                }
            }
        }
        return requests
    }

    @Test func aKeptVerdictIsTheVerdictTheEngineReaches() throws {
        let kept = try Self.snapshot()
        let requests = Self.requests
        // First pass fills the cache; the second is answered from it.
        let first = requests.map(kept.decide)
        #expect(kept.keptVerdictCount == requests.count)
        let second = requests.map(kept.decide)
        // Each request asked of a snapshot of its own, which has nothing kept yet: the engine's own answer.
        let engine = try requests.map { try Self.snapshot().decide($0) }
        #expect(first.count == engine.count && second.count == engine.count)
        #expect(zip(first, engine).filter { $0 != $1 }.count == 0, "verdicts reached while filling the cache")
        #expect(zip(second, engine).filter { $0 != $1 }.count == 0, "verdicts answered from the cache")
        #expect(engine.contains { $0.isAllowed } && engine.contains { !$0.isAllowed })
        #expect(second[requests.firstIndex { $0.subject == "alice" && $0.object == "/data/secret" && $0.action == "read" } ?? 0].reason
            == "denied by p, alice, /data/secret, read, deny (p.csv:3)")
    }

    /// Swift's `==` on strings is canonical equivalence; the engine compares scalars, and so must the cache. A grant
    /// for the precomposed name must not let the decomposed one (another file) in through a kept verdict.
    @Test func canonicallyEquivalentButDifferentRequestsAreKeptApart() throws {
        let composed = "/data/caf\u{E9}"
        let decomposed = "/data/cafe\u{301}"
        #expect(composed == decomposed, "Swift calls them equal")
        let snapshot = try Self.snapshot(policy: "p, alice, \(composed), read, allow\n")
        #expect(snapshot.decide(PolicyRequest(subject: "alice", object: composed, action: "read")).isAllowed)
        #expect(!snapshot.decide(PolicyRequest(subject: "alice", object: decomposed, action: "read")).isAllowed,
                "the engine's own answer for the other name, not the kept one")
        #expect(!(try Self.snapshot(policy: "p, alice, \(composed), read, allow\n"))
            .decide(PolicyRequest(subject: "alice", object: decomposed, action: "read")).isAllowed)
        #expect(snapshot.keptVerdictCount == 2)
    }

    @Test func aModelWhoseVerdictsCanChangeKeepsNone() throws {
        // `ctx` carries the time of day, first use and labels.
        let withContext = Self.model.replacingOccurrences(of: "r = sub, obj, act", with: "r = sub, obj, act, ctx")
        #expect(try Self.snapshot(model: withContext).keptVerdictCount == nil)
        // Temporal role links read the clock.
        let timed = Self.model.replacingOccurrences(of: "g = _, _", with: "g = _, _, (_, _)")
        let snapshot = try Self.snapshot(model: timed, policy: "p, reader, /data/*, read, allow\ng, alice, reader, _, _\n")
        #expect(snapshot.keptVerdictCount == nil)
        #expect(snapshot.decide(PolicyRequest(subject: "alice", object: "/data/a", action: "read")).isAllowed)
        // The built-in model is pure.
        let grants = try GrantsParser.parse("module = \"m\"\n", file: "grants.toml", baseDirectory: "/")
        #expect(try PolicySnapshot.build(grants: grants).keptVerdictCount == 0)
    }

    @Test func whatIsKeptIsBounded() throws {
        let snapshot = try Self.snapshot()
        for index in 0..<(VerdictCache.capacity + 10) {
            _ = snapshot.decide(PolicyRequest(subject: "alice", object: "/data/\(index)", action: "read"))
        }
        let count = try #require(snapshot.keptVerdictCount)
        #expect(count > 0 && count <= VerdictCache.capacity)
        let long = PolicyRequest(subject: "alice", object: "/data/" + String(repeating: "x", count: VerdictCache.maxRequestBytes),
                                 action: "read")
        let before = snapshot.keptVerdictCount
        #expect(snapshot.decide(long).isAllowed)
        #expect(snapshot.keptVerdictCount == before, "a request over the size bound is decided but not kept")
    }
}
