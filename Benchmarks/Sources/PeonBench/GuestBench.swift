import Foundation
import PeonAudit
import PeonMediator
import PeonEngine
import PeonInterface
import PeonRuntime

/// Sections 1–3: the floor, mediation in each audit sync mode, and each capability against its native twin.
struct GuestBench {
    let report: Report
    let workspace: Workspace
    let engines: [any WasmEngine]
    let server: LoopbackServer
    let quick: Bool

    /// Samples per measurement (batches); fewer in quick mode.
    var sampleCount: Int { quick ? 11 : 31 }

    func run() throws {
        try floorAndMediation()
        try capabilities()
    }

    // MARK: 1 and 2

    private func floorAndMediation() throws {
        report.line("## 1–2. Floor and mediation (guest → host → guest)")
        report.line()
        report.line("Each sample is a batch of calls made by a loop inside the guest (`loop_X(args, n)`), divided by n; median and p99 are over the samples. "
            + "The floor is a host import that does nothing (same core shape as `fs.read`: ptr, len, return area). "
            + "Mediated calls go through the real `AgentSession` → `Mediator` that `peon-wasm run` builds, bound by the runtime's canonical-ABI bindings: "
            + "*denied* is `fs.read` of an existing file outside the grants (ABI decode, path normalization, policy decision, audit append, error encoded back into the guest); "
            + "*allowed 16 B* is `fs.read` of a granted 16-byte file (the same plus the decision's outcome entry and the read itself).")
        report.line()
        var rows: [[String]] = []
        var headline: [String] = []
        for engine in engines {
            let module = try engine.compile(workspace.moduleBytes)
            for sync in AuditSyncMode.allCases {
                let (session, _) = try workspace.session(sync: sync, name: "mediation-\(engine.name)-\(sync.rawValue)")
                defer { session.finish(outcome: "ok", reason: "") }
                let guest = try Guest(module: module, hostFunctions: session.hostFunctions)
                var writer = ArgumentWriter()
                let denied = writer.string("secret.txt")
                let allowed = writer.string("data/small.txt")
                try guest.load(writer)
                let slow = sync == .always
                let floorBatch = 20_000
                let floor = try measure(count: sampleCount, batch: floorBatch) {
                    _ = try guest.loop("noop", [0, 0], count: floorBatch)
                }
                let mediatedBatch = slow ? 20 : 500
                let before = session.audit.size
                var deniedOK = 0
                let deniedStats = try measure(count: sampleCount, batch: mediatedBatch) {
                    deniedOK += try guest.loop("fs_read", [denied.0, denied.1], count: mediatedBatch)
                }
                let deniedEntries = Double(session.audit.size - before) / Double((sampleCount + 3) * mediatedBatch)
                guard deniedOK == 0 else { throw BenchFailure("a read outside the grants was allowed") }
                let middle = session.audit.size
                var allowedOK = 0
                let allowedStats = try measure(count: sampleCount, batch: mediatedBatch) {
                    allowedOK += try guest.loop("fs_read", [allowed.0, allowed.1], count: mediatedBatch)
                }
                let allowedEntries = Double(session.audit.size - middle) / Double((sampleCount + 3) * mediatedBatch)
                guard allowedOK == (sampleCount + 3) * mediatedBatch else { throw BenchFailure("granted reads failed: \(allowedOK) ok") }
                progress("\(engine.name) \(sync.rawValue): floor \(formatNS(floor.median)), denied \(formatNS(deniedStats.median)), allowed \(formatNS(allowedStats.median))")
                rows.append([engine.name, sync.rawValue, formatNS(floor.median), formatNS(floor.p99),
                             formatNS(deniedStats.median), formatNS(deniedStats.p99), "**" + formatDelta(deniedStats.median - floor.median) + "**",
                             formatNS(allowedStats.median), formatNS(allowedStats.p99), formatDelta(allowedStats.median - floor.median),
                             String(format: "%.0f / %.0f", deniedEntries, allowedEntries)])
                if sync == .batch {
                    headline.append("\(engine.name): floor \(formatNS(floor.median)), denied call \(formatDelta(deniedStats.median - floor.median)), allowed 16 B read \(formatDelta(allowedStats.median - floor.median)) (median, batch audit)")
                }
            }
        }
        report.table(["engine", "audit sync", "floor median", "floor p99", "denied median", "denied p99", "denied − floor",
                      "allowed 16 B median", "allowed p99", "allowed − floor", "audit entries per call (denied / allowed)"], rows)
        for line in headline { report.line("- " + line) }
        report.line("- Target: mediation adds ≤ 2 µs median over the floor with batched audit.")
        report.line()
    }

    // MARK: 3

    private func capabilities() throws {
        report.line("## 3. Capabilities against their native twins")
        report.line()
        report.line("Guest column: the call made from the guest through peon-wasm (ABI, mediator, policy, audit in `batch` sync mode). "
            + "Native column: the same operation straight from Swift in the same process. Twins: fs — POSIX open/read|write/close; "
            + "db — SQLite's C API on one open connection with prepared statements (and, separately, opened + prepared per call, which is what the capability does); "
            + "exec — posix_spawn of /bin/true with stdout/stderr piped, then waitpid; "
            + "http — the HTTP client the capability wraps (AsyncHTTPClient via `HTTPCapability`) called directly, against a loopback server this benchmark starts. "
            + "The two columns are measured alternately, one batch of each per sample (the order swapped every sample), so the drift of a shared machine lands on both.")
        report.line()
        let data4k = [UInt8]((0..<4096).map { UInt8($0 & 0x7f) })
        let native = try NativeSQLite(path: workspace.databasePath)
        let http = HTTPCapability()
        defer { http.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/ping"
        var rows: [[String]] = []
        for engine in engines {
            let module = try engine.compile(workspace.moduleBytes)
            let (session, _) = try workspace.session(sync: .batch, name: "caps-\(engine.name)")
            defer { session.finish(outcome: "ok", reason: "") }
            let guest = try Guest(module: module, hostFunctions: session.hostFunctions)
            var writer = ArgumentWriter()
            let readPath = writer.string("data/4k.bin")
            let writePath = writer.string("data/out.bin")
            let payload = writer.raw(data4k)
            let database = writer.string("bench")
            let selectSQL = writer.string(NativeSQLite.selectSQL)
            let insertSQL = writer.string(NativeSQLite.insertSQL)
            let selectParams = writer.integers([42])
            let insertParams = writer.integers([7])
            let program = writer.string("/bin/true")
            let noArgs = writer.strings([])
            let noStdin = writer.raw([])
            // http request record: method, url, headers (list<header>), body (list<u8>)
            let method = writer.string("GET")
            let target = writer.string(url)
            try guest.load(writer)

            func compare(_ name: String, batch: Int, guestCall: () throws -> Int, nativeCall: () throws -> Void) throws {
                var failures = 0
                let (guestStats, nativeStats) = try measureAlternately(count: sampleCount, batch: batch, {
                    let ok = try guestCall()
                    failures += batch - ok
                }, {
                    for _ in 0..<batch { try nativeCall() }
                })
                guard failures == 0 else { throw BenchFailure("\(name) from the guest failed \(failures) times") }
                let overhead = (guestStats.median / nativeStats.median - 1) * 100
                progress("\(engine.name) \(name): native \(formatNS(nativeStats.median)), guest \(formatNS(guestStats.median))")
                rows.append([engine.name, name, formatNS(nativeStats.median), formatNS(nativeStats.p99),
                             formatNS(guestStats.median), formatNS(guestStats.p99),
                             formatDelta(guestStats.median - nativeStats.median), String(format: "%+.0f %%", overhead)])
            }
            let fsBatch = quick ? 50 : 200
            try compare("fs.read 4 KiB", batch: fsBatch,
                        guestCall: { try guest.loop("fs_read", [readPath.0, readPath.1], count: fsBatch) },
                        nativeCall: { _ = try NativeFS.read(workspace.root + "/data/4k.bin") })
            try compare("fs.write 4 KiB", batch: fsBatch,
                        guestCall: { try guest.loop("fs_write", [writePath.0, writePath.1, payload.0, payload.1], count: fsBatch) },
                        nativeCall: { try NativeFS.write(workspace.root + "/data/out-native.bin", data4k) })
            try compare("db.query point select (native: open connection)", batch: fsBatch,
                        guestCall: { try guest.loop("db_query", [database.0, database.1, selectSQL.0, selectSQL.1, selectParams.0, selectParams.1], count: fsBatch) },
                        nativeCall: { _ = try native.pointSelect(42) })
            try compare("db.query point select (native: open + prepare per call)", batch: fsBatch,
                        guestCall: { try guest.loop("db_query", [database.0, database.1, selectSQL.0, selectSQL.1, selectParams.0, selectParams.1], count: fsBatch) },
                        nativeCall: { _ = try NativeSQLite.pointSelectFresh(path: workspace.databasePath, id: 42) })
            let insertBatch = quick ? 2 : 3
            try compare("db.execute insert (autocommit)", batch: insertBatch,
                        guestCall: { try guest.loop("db_execute", [database.0, database.1, insertSQL.0, insertSQL.1, insertParams.0, insertParams.1], count: insertBatch) },
                        nativeCall: { try native.insertRow(7) })
            let httpBatch = quick ? 20 : 50
            try compare("http.send GET loopback", batch: httpBatch,
                        guestCall: { try guest.loop("http_send", [method.0, method.1, target.0, target.1, 0, 0, 0, 0], count: httpBatch) },
                        nativeCall: {
                            _ = try http.send(OutgoingRequest(method: "GET", url: CanonicalURL(parsing: url)), injectedHeaders: [], allowedAddresses: ["127.0.0.1"],
                                              maxResponseBytes: 1 << 20, deadline: ContinuousClock.now + .seconds(30))
                        })
            let execBatch = quick ? 5 : 10
            try compare("exec.run /bin/true", batch: execBatch,
                        guestCall: { try guest.loop("exec_run", [program.0, program.1, noArgs.0, noArgs.1, noStdin.0, noStdin.1], count: execBatch) },
                        nativeCall: { _ = try NativeExec.run("/bin/true") })
        }
        report.table(["engine", "operation", "native median", "native p99", "guest median", "guest p99", "added", "overhead"], rows)
        report.line("- Target: ≤ 5 % overhead over native for each of fs, db, http and exec.")
        report.line()
    }
}
