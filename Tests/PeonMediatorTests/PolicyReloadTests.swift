import Foundation
import PeonAudit
import PeonInterface
import PeonPolicy
import Testing
@testable import PeonMediator

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

    /// A refused edit (perhaps a revocation) is an event for the audit log, not only a line on stderr; a store
    /// polled every few seconds that keeps the same broken lines is recorded and reported once, not at every poll.
    @Test func aRejectedReloadIsAnEventOncePerError() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.readOnly, scratch: scratch)
        let reports = LockedLines()
        let events = LockedList<PolicyReloader.Event>()
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"), defaultModule: "editor",
                                      store: harness.store, report: { reports.append($0) },
                                      event: { events.append($0) })
        _ = try scratch.file("grants.toml", Self.readOnly + "\n[[fs]]\npaths = [\"/\"]\nallow = []\n")
        for _ in 0..<3 { _ = reloader.reloadIfChanged(force: true) }
        let first = events.all
        #expect(first.count == 1)
        guard case .reloadRejected(let why)? = first.first else {
            Issue.record("expected a rejection event, got \(first)")
            return
        }
        #expect(why.contains("grants.toml:8"))
        let fields = PolicyReloader.Event.reloadRejected(why).auditFields(storeName: "")
        #expect(fields.call == "policy.reload" && fields.outcome == "rejected" && fields.resource == "policy")
        #expect(reports.withLock { $0 }.filter { $0.contains("reload rejected") }.count == 1)
        // Another error is another event; a good reload ends the rejection, so the same error again is new.
        _ = try scratch.file("grants.toml", Self.readOnly + "\nbogus = 1\n")
        _ = reloader.reloadIfChanged(force: true)
        _ = try scratch.file("grants.toml", Self.readWrite)
        guard case .reloaded = reloader.reloadIfChanged(force: true) else {
            Issue.record("expected a reload")
            return
        }
        _ = try scratch.file("grants.toml", Self.readOnly + "\nbogus = 1\n")
        _ = reloader.reloadIfChanged(force: true)
        let all = events.all
        #expect(all.count == 3, "\(all)")
    }

    /// A policy store that answers with rows that do not load (a NULL `ptype`) is a rejected reload, recorded as
    /// `policy.reload rejected`; only a store that cannot be reached is an outage (`policy.store unreachable`). Both
    /// were recorded as an outage, so an auditor filtering on rejected reloads missed the bad edit (found by a red-team
    /// pass).
    @Test func aStoreWithRowsThatDoNotLoadIsARejectionNotAnOutage() throws {
        final class Store: PolicyLineStore, @unchecked Sendable {
            let failure: PolicyLoadError
            init(_ failure: PolicyLoadError) { self.failure = failure }
            var name: String { "store" }
            var pollInterval: Duration { .seconds(60) }
            func loadRules() throws(PolicyLoadError) -> [PolicyRule] { throw failure }
            func startWatching(_ changed: @escaping @Sendable () -> Void) {}
            func stopWatching() {}
        }
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.readOnly, scratch: scratch)
        _ = try scratch.file("grants.toml", Self.readOnly)
        for (failure, expected) in [(PolicyLoadError("store:1: the row has no ptype", storeUnavailable: false), "rejected"),
                                    (PolicyLoadError("store: connection refused", storeUnavailable: true), "unreachable")] {
            let events = LockedList<PolicyReloader.Event>()
            let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml", policyStore: Store(failure)),
                                          defaultModule: "editor", store: harness.store, report: { _ in },
                                          event: { events.append($0) })
            _ = reloader.reloadFromStore()
            let outcomes = events.all.map { $0.auditFields(storeName: "store").outcome }
            #expect(outcomes == [expected], "\(events.all)")
        }
    }

    /// An edit written in place, of the same size, whose modification time is then put back (as `cp -p`, `install -p`
    /// or `tar x` do) kept its size, inode and mtime: the revocation was never loaded. The status-change time shows it.
    @Test func anEditThatKeepsSizeAndModificationTimeIsStillSeen() throws {
        let scratch = try Scratch()
        let grantsPath = scratch.path + "/grants.toml"
        let granted = Self.readOnly
        let revoked = granted.replacingOccurrences(of: "work/**", with: "none/**")
        #expect(revoked.utf8.count == granted.utf8.count)
        let harness = try Harness(grants: granted, scratch: scratch)
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: grantsPath), defaultModule: "editor",
                                      store: harness.store, report: { _ in })
        let before = harness.store.current.version
        var info = stat()
        #expect(stat(grantsPath, &info) == 0)
        Thread.sleep(forTimeInterval: 0.05)
        let handle = try #require(FileHandle(forWritingAtPath: grantsPath))
        try handle.write(contentsOf: Data(revoked.utf8))
        try handle.close()
        // The exact old times back, to the nanosecond (a `Date` would round them).
        var times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, grantsPath, &times, 0) == 0)
        guard case .reloaded(let after) = reloader.reloadIfChanged() else {
            Issue.record("the in-place edit with its old modification time was not seen")
            return
        }
        #expect(after != before)
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

    /// The module hash the harness runs under.
    static let runningModule = String(repeating: "ab", count: 32)

    @Test func aReloadPinningAnotherModuleDeniesEveryFurtherCallAndNamesTheMismatch() throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readWrite, scratch: scratch)
        let reports = LockedLines()
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"),
                                      defaultModule: "editor", store: harness.store,
                                      moduleSHA256: Self.runningModule, report: { reports.append($0) })
        #expect(try harness.mediator.read(path: "work/a.txt") == [0x61])

        let otherModule = String(repeating: "cd", count: 32)
        _ = try scratch.file("grants.toml", "sha256 = \"\(otherModule)\"\n" + Self.readWrite)
        guard case .reloaded = reloader.reloadIfChanged(force: true) else {
            Issue.record("expected the reload to be swapped in")
            return
        }
        #expect(reports.withLock { $0 }.last?.contains("pin sha256 \(otherModule)") == true)
        for _ in 0..<3 {
            #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: "work/a.txt") }?.code == .denied)
        }
        #expect(harness.error { () throws(HostError) in try harness.mediator.write(path: "work/a.txt", data: [0x62]) }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try harness.mediator.readDirectory(path: "work") }?.code == .denied)
        #expect(scratch.contents("work/a.txt") == "a")
        let reads = try harness.decisions("fs.read")
        #expect(reads.map(\.decision) == [.allow, .deny, .deny, .deny])
        for denial in try harness.entries().map(\.record) where denial.decision == .deny {
            #expect(denial.reason.contains("the grants pin sha256 \(otherModule) but the running module's is \(Self.runningModule)"),
                    "\(denial)")
        }

        // A reload that pins the running module again is judged like a fresh start with it: calls resume.
        _ = try scratch.file("grants.toml", "sha256 = \"\(Self.runningModule)\"\n" + Self.readWrite)
        #expect(reloader.reloadIfChanged(force: true) != .unchanged)
        #expect(harness.store.current.refusal == nil)
        #expect(try harness.mediator.read(path: "work/a.txt") == [0x61])
    }

    @Test func aReloaderThatDoesNotKnowTheModuleCannotConfirmAPinAndDenies() throws {
        let scratch = try Scratch()
        _ = try scratch.file("work/a.txt", "a")
        let harness = try Harness(grants: Self.readOnly, scratch: scratch)
        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"),
                                      defaultModule: "editor", store: harness.store, report: { _ in })
        _ = try scratch.file("grants.toml", "sha256 = \"\(Self.runningModule)\"\n" + Self.readOnly)
        _ = reloader.reloadIfChanged(force: true)
        #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: "work/a.txt") }?.code == .denied)
        #expect(try harness.decisions("fs.read").first?.reason.contains("running module's is unknown") == true)
    }

    @Test func aSnapshotIsJudgedOnlyByAPin() throws {
        let scratch = try Scratch()
        let pinned = try PolicySnapshot.build(grants: try GrantsParser.parse(
            "sha256 = \"\(Self.runningModule.uppercased())\"\n" + Self.readOnly,
            file: scratch.path + "/grants.toml", baseDirectory: scratch.path))
        #expect(pinned.judged(forModuleSHA256: Self.runningModule).refusal == nil)
        let request = PolicyRequest(subject: "editor", object: "fs:" + scratch.path + "/work/a.txt", action: "fs.read")
        #expect(pinned.judged(forModuleSHA256: Self.runningModule).decide(request).isAllowed)
        let refused = pinned.judged(forModuleSHA256: String(repeating: "0", count: 64))
        #expect(refused.refusal != nil)
        #expect(!refused.decide(request).isAllowed)
        let unpinned = try PolicySnapshot.build(grants: try GrantsParser.parse(
            Self.readOnly, file: scratch.path + "/grants.toml", baseDirectory: scratch.path))
        #expect(unpinned.judged(forModuleSHA256: nil).refusal == nil)
    }

    /// The database capability keeps a compiled statement for the run; a reload that revokes the table
    /// grant it used makes the very next call with that statement a denial, decided under the new version
    /// and logged as one.
    @Test func aReloadThatRevokesATableGrantDeniesTheCachedStatementOnTheNextCall() throws {
        let scratch = try Scratch()
        let grants = """
            module = "analyst"

            [[db]]
            database = "analytics"
            tables = ["orders"]
            allow = ["read"]
            """
        let harness = try Harness(grants: grants, scratch: scratch,
                                  databases: ["analytics": try DatabaseMediationTests.makeDatabase(scratch)])
        let sql = "select total from orders where id = ?"
        for _ in 0..<2 {
            let rows = try harness.mediator.query(database: "analytics", sql: sql, parameters: [.integer(1)])
            #expect(rows.rows == [[.real(9.5)]])
        }
        let database = try #require(harness.mediator.databases as? DatabaseCapability)
        #expect(database.cacheCounters == .init(compiled: 1, reused: 1), "the second call used the cached statement")
        let before = harness.store.current.version

        let reloader = PolicyReloader(sources: PolicySources(grantsPath: scratch.path + "/grants.toml"),
                                      defaultModule: "analyst", store: harness.store, report: { _ in })
        _ = try scratch.file("grants.toml", grants.replacingOccurrences(of: "tables = [\"orders\"]", with: "tables = [\"other\"]"))
        guard case .reloaded(let after) = reloader.reloadIfChanged(force: true) else {
            Issue.record("expected a reload")
            return
        }
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "analytics", sql: sql, parameters: [.integer(1)])
        }
        #expect(error?.code == .denied, "\(String(describing: error))")
        let tableDecisions = try harness.decisions("db.query").filter { $0.resource == "db:analytics/orders" }
        #expect(tableDecisions.map(\.decision) == [.allow, .allow, .deny])
        #expect(tableDecisions.map(\.policy) == [before, before, after])
    }
}
