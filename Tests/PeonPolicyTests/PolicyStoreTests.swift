import PeonPolicy
import Testing

@Suite struct PolicyStoreTests {
    static func snapshot(_ policy: String) throws(PolicyError) -> Enforcer {
        try Enforcer(model: aclModel, modelSource: "m.conf", policy: policy, policySource: "p.csv")
    }

    @Test func theVersionIsTheSHA256OfTheSources() throws {
        let first = try Self.snapshot("p, a, b, c")
        #expect(first.version.count == 64)
        #expect(first.version.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(try Self.snapshot("p, a, b, c").version == first.version)
        #expect(try Self.snapshot("p, a, b, d").version != first.version)
    }

    @Test func aFailedReloadKeepsTheOldSnapshot() throws {
        let store = PolicyStore(try Self.snapshot("p, alice, data, read"))
        let before = store.current.version
        #expect(throws: PolicyError.self) { try store.reload { () throws(PolicyError) in try Self.snapshot("p, alice, data") } }
        #expect(store.current.version == before)
        #expect(try store.current.enforce("alice", "data", "read").isAllowed)
        let after = try store.reload { () throws(PolicyError) in try Self.snapshot("p, bob, data, read") }
        #expect(store.current.version == after)
        #expect(try !store.current.enforce("alice", "data", "read").isAllowed)
    }

    @Test func concurrentReadersSeeOneWholeSnapshotOrTheOther() async throws {
        let old = try Self.snapshot("p, alice, data, read\np, alice, data, write")
        let new = try Self.snapshot("p, bob, data, read\np, bob, data, write")
        let store = PolicyStore(old)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for index in 0..<2000 { store.replace(with: index % 2 == 0 ? new : old) }
                return true
            }
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<2000 {
                        let snapshot = store.current
                        let alice = try snapshot.enforce("alice", "data", "read").isAllowed
                        let aliceWrite = try snapshot.enforce("alice", "data", "write").isAllowed
                        let bob = try snapshot.enforce("bob", "data", "write").isAllowed
                        if alice != aliceWrite || alice == bob { return false }
                    }
                    return true
                }
            }
            for try await consistent in group { #expect(consistent) }
        }
    }
}
