import Foundation
import PeonAudit
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A writer killed at an arbitrary moment (SIGKILL: no cleanup, no flush) leaves a log that verifies or shows
/// only a torn tail, and that after reopening loses no complete entry and verifies.
///
/// How the child is made: Swift has no usable `fork`, so the test re-executes its own test binary
/// (`/proc/self/exe`, Linux) with `--filter` selecting ``crashChildAppendsUntilKilled()`` and the log path in
/// `PEON_AUDIT_CRASH_CHILD`. That "test" is disabled unless the variable is set; in the child it appends from four
/// threads until killed (or 30 s pass, so an orphan cannot run forever). The parent waits until the log has grown,
/// kills the child with SIGKILL, and checks. `batch` rounds write 256 KiB at a time, so the kill often lands inside
/// a `write` and tears the last line; `always` rounds kill between fsyncs. Every round recovers a torn tail (one the
/// kill tore, or one torn by hand after it), and at least one kill must have torn a line itself.
@Suite(.serialized) struct CrashTests {
    static let childLog = ProcessInfo.processInfo.environment["PEON_AUDIT_CRASH_CHILD"]
    static let childKey = ProcessInfo.processInfo.environment["PEON_AUDIT_CRASH_KEY"]
    static let childMode = ProcessInfo.processInfo.environment["PEON_AUDIT_CRASH_MODE"].flatMap(AuditSyncMode.init(rawValue:))

    static var selfExecutable: String? {
        #if os(Linux)
        return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        #else
        return nil
        #endif
    }

    /// Only runs inside the child process started by the crash test.
    @Test(.enabled(if: childLog != nil, "runs only as the crash test's child process"))
    func crashChildAppendsUntilKilled() throws {
        guard let path = Self.childLog, let keyPath = Self.childKey else { return }
        let signer = try CheckpointSigner.load(keyPath: keyPath)
        let log = try AuditLog.open(path: path, signer: signer, sync: Self.childMode ?? .batch, checkpointEvery: 50)
        let deadline = Date().addingTimeInterval(30)
        let filler = String(repeating: "x", count: 3000)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            var i = 0
            while Date() < deadline {
                var r = record(i, call: "fs.write", thread: thread)
                r.details["filler"] = filler
                _ = try? log.append(r, durable: i % 2 == 0)
                i += 1
            }
        }
        try log.close()
    }

    @Test(.enabled(if: childLog == nil && selfExecutable != nil, "needs /proc/self/exe to start a child"))
    func aChildKilledWhileAppendingLeavesALogThatRecoversAndVerifies() throws {
        let exe = try #require(Self.selfExecutable)
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let keyPath = dir.path + "/audit.key"
        let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "peon-wasm/crash-test")
        let path = dir.path + "/crash.jsonl"
        // Four kill rounds alternate `batch` and `always`. Whether a SIGKILL lands inside a `write` is chance, so a
        // round whose kill fell between writes checks that the log verifies as it is, then tears the tail itself (the
        // first half of a line appended with no newline, exactly what a kill inside `write` leaves): every round goes
        // through torn-tail recovery and its checks are required, whichever way the tail was torn.
        var tornByKill = 0
        let rounds = 4
        for round in 0..<rounds {
            let startSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            let child = Process()
            child.executableURL = URL(fileURLWithPath: exe)
            child.arguments = ["--testing-library", "swift-testing", "--filter", "crashChildAppendsUntilKilled"]
            var env = ProcessInfo.processInfo.environment
            env["PEON_AUDIT_CRASH_CHILD"] = path
            env["PEON_AUDIT_CRASH_KEY"] = keyPath
            env["PEON_AUDIT_CRASH_MODE"] = round % 2 == 0 ? "batch" : "always"
            child.environment = env
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            // Wait until the child has appended a good amount, then kill it at a slightly random moment.
            let deadline = Date().addingTimeInterval(120)
            var grown = false
            while Date() < deadline, child.isRunning {
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                if size > startSize + 1_500_000 { grown = true; break }
                usleep(2000)
            }
            usleep(UInt32.random(in: 0..<20_000))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            try #require(grown, "round \(round): the child did not append (exit \(child.terminationStatus))")

            let tornByThisKill = try Data(contentsOf: URL(fileURLWithPath: path)).last != 0x0A
            if tornByThisKill {
                tornByKill += 1
            } else {
                // Whole lines only: everything verifies as it is. Then tear the tail by hand.
                let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
                #expect(summary.size == UInt64(try lines(of: path).count), "round \(round)")
                let last = try #require(try lines(of: path).last)
                let handle = try #require(FileHandle(forWritingAtPath: path))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(last.prefix(last.count / 2)))
                try handle.close()
            }

            // Before recovery: everything complete is intact and only the last line is torn, which verify reports.
            let before = try lines(of: path)
            let error = try #require(throws: AuditError.self, "round \(round): a torn log verified") {
                try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
            }
            #expect(error.code == .tornTail, "round \(round): \(error.message)")
            #expect(error.seq == UInt64(before.count - 1), "round \(round): the torn line is not the last")

            // Reopen: the torn line is cut and recorded, no complete entry is lost or altered.
            let log = try AuditLog.open(path: path, signer: signer)
            try log.close()
            let after = try lines(of: path)
            let complete = Array(before.dropLast())
            #expect(Array(after.prefix(complete.count)) == complete, "round \(round): a complete entry changed")
            try #require(after.count == complete.count + 1, "round \(round): reopening did not record the recovery")
            let recovered = try AuditEntry.parse(after[complete.count]).get()
            #expect(recovered.record.call == "log.recovered", "round \(round)")
            #expect(recovered.record.details["cut_bytes"] == String(before[before.count - 1].count), "round \(round)")
            let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
            #expect(summary.size == UInt64(after.count))
            #expect(summary.uncheckpointed == 0)
        }
        print("crash test: \(tornByKill) of \(rounds) kills tore the last line; the others were torn by hand")
    }
}
