import Foundation
import PeonAudit
import PeonInterface
import Testing
@_spi(Benchmarks) @testable import PeonMediator

/// Editing the grants swaps the policy for a running agent, atomically; a broken edit is rejected
/// and the old policy stays; each audit entry names the version that decided it.
@Suite struct PolicyReloadTests {
    static let readOnly = """
        module = "editor"

        [[fs]]
        paths = ["work/**"]
        allow = ["read"]
        """

    static let readWrite = readOnly.replacingOccurrences(of: "allow = [\"read\"]", with: "allow = [\"read\", \"write\"]")

    @Test func anEditTakesEffectForARunningMediatorAndEntriesNameTheirVersion() throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readOnly, scratch: scratch)
        let grantsPath = scratch.path + "/grants.toml"
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: grantsPath), defaultModule: "editor",
                                      store: harness.store, report: { _ in })
        let before = harness.store.current.version
        #expect(harness.error { () throws(HostError) in try harness.mediator.write(path: "work/a.txt", data: [0x62]) }?.code == .denied)
        #expect(reloader.reloadIfChanged() == .unchanged)

        _ = try scratch.file("grants.toml", Self.readWrite)
        guard case .reloaded(let after) = reloader.reloadIfChanged(force: true) else {
            Issue.record("expected a reload")
            return
        }
        #expect(after != before)
        try harness.mediator.write(path: "work/a.txt", data: [0x62])
        #expect(scratch.contents("work/a.txt") == "b")
        let versions = try harness.decisions("fs.write").map(\.policy)
        #expect(versions == [before, after])
    }

    @Test func aBrokenEditIsRejectedAndTheOldPolicyStays() throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readWrite, scratch: scratch)
        let reports = LockedLines()
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"), defaultModule: "editor", store: harness.store, report: { reports.append($0) })
        let before = harness.store.current.version
        _ = try scratch.file("grants.toml", Self.readWrite + "\n[[fs]]\npaths = [\"/\"]\nallow = []\n")
        guard case .rejected(let message) = reloader.reloadIfChanged(force: true) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(message.contains("grants.toml:8: fs[1].allow"))
        #expect(reports.withLock { $0 }.first?.contains("previous policy stays in force") == true)
        #expect(harness.store.current.version == before)
        try harness.mediator.write(path: "work/a.txt", data: [0x63])
        #expect(scratch.contents("work/a.txt") == "c")
    }

    @Test func theWatcherPicksUpAnEditWithoutBeingAsked() async throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readOnly, scratch: scratch)
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"), defaultModule: "editor", store: harness.store, report: { _ in })
        reloader.start(interval: .milliseconds(20), handleHangup: false)
        defer { reloader.stop() }
        let before = harness.store.current.version
        _ = try scratch.file("grants.toml", Self.readWrite + "\n# edited\n")
        for _ in 0..<500 where harness.store.current.version == before {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(harness.store.current.version != before)
    }

    @Test func reloadsDuringConcurrentCallsNeverMixPolicies() async throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readOnly, scratch: scratch, callQuota: 1_000_000)
        let readOnlyVersion = harness.store.current.version
        let writable = try PolicySnapshot.build(grants: try GrantsParser.parse(
            Self.readWrite, file: scratch.path + "/grants.toml", baseDirectory: scratch.path))
        let readOnly = harness.store.current
        let mediator = harness.mediator
        let store = harness.store
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<200 { store.replace(with: index % 2 == 0 ? writable : readOnly) }
            }
            for worker in 0..<4 {
                group.addTask {
                    for _ in 0..<50 {
                        _ = try? mediator.write(path: "work/w\(worker).txt", data: [1])
                        _ = try? mediator.read(path: "work/a.txt")
                    }
                }
            }
        }
        let entries = try harness.entries()
        #expect(entries.count >= 400)
        #expect(entries.map(\.seq) == Array(0..<UInt64(entries.count)), "one gap-free sequence under concurrency")
        for record in entries.map(\.record) where record.call == "fs.write" && record.decision != nil {
            // Every write decision matches the policy version it names.
            #expect((record.decision == .allow) == (record.policy == writable.version), "\(record)")
            #expect(record.policy == writable.version || record.policy == readOnlyVersion)
        }
    }
}
