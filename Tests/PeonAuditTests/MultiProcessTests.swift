import Foundation
import PeonAudit
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Many processes append to one log at once: the file must hold one gap-free `seq`, one chain and one tree, with
/// checkpoints that extend each other, whatever the sync mode; processes killed at random moments leave a log that
/// the next writer or open recovers, without losing an entry any of them acknowledged; and a verifier reading during
/// the appends sees a consistent log.
///
/// The child processes re-execute this test binary (as ``CrashTests`` does) with `--filter` selecting
/// ``childAppends()``, which is disabled unless `PEON_AUDIT_MULTI_CHILD` names the log. A child appends from two
/// threads and, after each append returns, writes `ID I SEQ` to its acknowledgement file.
@Suite(.serialized) struct MultiProcessTests {
    static let env = ProcessInfo.processInfo.environment
    static let childLog = env["PEON_AUDIT_MULTI_CHILD"]

    /// Only runs inside a child process started by the tests below.
    @Test(.enabled(if: childLog != nil, "runs only as a child process of the multi-process tests"))
    func childAppends() throws {
        guard let path = Self.childLog, let keyPath = Self.env["PEON_AUDIT_MULTI_KEY"],
              let mode = Self.env["PEON_AUDIT_MULTI_MODE"].flatMap(AuditSyncMode.init(rawValue:)),
              let id = Self.env["PEON_AUDIT_MULTI_ID"], let ackPath = Self.env["PEON_AUDIT_MULTI_ACK"],
              let count = Self.env["PEON_AUDIT_MULTI_COUNT"].flatMap(Int.init) else { return }
        let filler = String(repeating: "x", count: Self.env["PEON_AUDIT_MULTI_FILLER"].flatMap(Int.init) ?? 0)
        let signer = try CheckpointSigner.load(keyPath: keyPath)
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 50)
        let ack = open(ackPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        try #require(ack >= 0)
        defer { close(ack) }
        let deadline = Date().addingTimeInterval(60)  // an orphaned child (count 0: until killed) cannot run forever
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            var i = thread
            while count == 0 ? Date() < deadline : i < count {
                var r = record(i, call: "fs.write", thread: thread)
                r.run = id
                if !filler.isEmpty { r.details["filler"] = filler }
                do {
                    let seq = try log.append(r, durable: i % 2 == 0)
                    let text = Array("\(id) \(i) \(seq)\n".utf8)
                    _ = text.withUnsafeBytes { write(ack, $0.baseAddress, $0.count) }
                } catch {
                    failures.add(1, ordering: .relaxed)
                    return
                }
                i += 2
            }
        }
        try log.close()
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    /// Starts `count` children appending `entries` each (0: until killed) to the log at `path`.
    static func startChildren(_ count: Int, path: String, keyPath: String, mode: AuditSyncMode, entries: Int,
                              filler: Int = 0, ackDirectory: String) throws -> [Process] {
        let exe = try #require(CrashTests.selfExecutable)
        return try (0..<count).map { id in
            let child = Process()
            child.executableURL = URL(fileURLWithPath: exe)
            child.arguments = ["--testing-library", "swift-testing", "--filter", "childAppends"]
            var environment = ProcessInfo.processInfo.environment
            environment["PEON_AUDIT_MULTI_CHILD"] = path
            environment["PEON_AUDIT_MULTI_KEY"] = keyPath
            environment["PEON_AUDIT_MULTI_MODE"] = mode.rawValue
            environment["PEON_AUDIT_MULTI_ID"] = "p\(id)"
            environment["PEON_AUDIT_MULTI_ACK"] = "\(ackDirectory)/ack-\(id)"
            environment["PEON_AUDIT_MULTI_COUNT"] = String(entries)
            environment["PEON_AUDIT_MULTI_FILLER"] = String(filler)
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            return child
        }
    }

    /// Every acknowledgement `ID I SEQ` the children wrote.
    static func acknowledgements(_ directory: String, children: Int) throws -> [(id: String, i: String, seq: Int)] {
        var out: [(String, String, Int)] = []
        for id in 0..<children {
            let path = "\(directory)/ack-\(id)"
            guard FileManager.default.fileExists(atPath: path) else { continue }
            for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 3, let seq = Int(parts[2]) else { continue }  // a line cut by the kill
                out.append((String(parts[0]), String(parts[1]), seq))
            }
        }
        return out
    }

    /// The `(run, i)` of every entry of the log, by `seq`.
    static func identities(_ path: String) throws -> [(run: String, i: String?)] {
        try lines(of: path).map { line in
            let record = try AuditEntry.parse(line).get().record
            return (record.run, record.details["i"])
        }
    }

    @Test(.enabled(if: childLog == nil && CrashTests.selfExecutable != nil, "needs /proc/self/exe to start children"),
          arguments: AuditSyncMode.allCases)
    func eightProcessesAppendToOneLogWhileAReaderVerifiesIt(mode: AuditSyncMode) throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let keyPath = dir.path + "/audit.key"
        let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "peon-wasm/multi-test")
        let path = dir.path + "/multi.jsonl"
        let (processes, perProcess) = (8, 300)
        let children = try Self.startChildren(processes, path: path, keyPath: keyPath, mode: mode, entries: perProcess,
                                              ackDirectory: dir.path)
        // The reader: verify again and again during the appends, keeping each checkpoint it saw.
        var saved: [String] = []
        var readerFailures: [String] = []
        while children.contains(where: \.isRunning) {
            if FileManager.default.fileExists(atPath: path + ".checkpoint") {
                do {
                    let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
                    #expect(!summary.skippedLiveTail)
                    let copy = dir.path + "/seen-\(saved.count).checkpoint"
                    if (try? FileManager.default.copyItem(atPath: path + ".checkpoint", toPath: copy)) != nil { saved.append(copy) }
                } catch where error.code == .emptyLog {
                    // Signed at creation (size 0) before the first entry: nothing to verify yet.
                } catch {
                    readerFailures.append(error.message)
                }
            }
            usleep(5000)
        }
        for child in children { child.waitUntilExit() }
        #expect(children.allSatisfy { $0.terminationReason == .exit && $0.terminationStatus == 0 })
        #expect(readerFailures.isEmpty, "\(readerFailures.prefix(3))")

        // One log: every entry once, in one chain, under a checkpoint that extends every one seen during the run.
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey, extraCheckpoints: saved)
        #expect(summary.size == UInt64(processes * perProcess))
        #expect(summary.uncheckpointed == 0)
        let ids = try Self.identities(path)
        let expected = Set((0..<processes).flatMap { p in (0..<perProcess).map { "p\(p) \($0)" } })
        #expect(Set(ids.map { "\($0.run) \($0.i ?? "")" }) == expected)
        #expect(ids.count == expected.count)
        // Each appender got back the seq its entry has in the file.
        let acks = try Self.acknowledgements(dir.path, children: processes)
        #expect(acks.count == processes * perProcess)
        #expect(acks.allSatisfy { ack in ack.seq < ids.count && ids[ack.seq].run == ack.id && ids[ack.seq].i == ack.i })
        print("multi-process \(mode.rawValue): the reader verified \(saved.count) times during the appends")
    }

    /// A checkpoint of this log published by another process is kept over an older one this process signed,
    /// although it claims more entries than this process has seen: publishing first catches up with the lines the
    /// other process appended (and so checks that the file holds every entry the checkpoint claims).
    @Test(.enabled(if: childLog == nil && CrashTests.selfExecutable != nil, "needs /proc/self/exe to start children"),
          arguments: AuditSyncMode.allCases)
    func aNewerCheckpointAnotherProcessPublishedIsKept(mode: AuditSyncMode) throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let keyPath = dir.path + "/audit.key"
        let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "peon-wasm/multi-test")
        let path = dir.path + "/newer.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 0)
        for i in 0..<3 { try log.append(record(i), durable: true) }
        try log.writeCheckpoint()
        let older = try String(contentsOfFile: path + ".checkpoint", encoding: .utf8)
        let children = try Self.startChildren(1, path: path, keyPath: keyPath, mode: mode, entries: 20,
                                              ackDirectory: dir.path)
        for child in children { child.waitUntilExit() }
        #expect(children.allSatisfy { $0.terminationReason == .exit && $0.terminationStatus == 0 })
        let published = try String(contentsOfFile: path + ".checkpoint", encoding: .utf8)
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 23)
        #expect(log.size == 3, "this process has not yet read what the other one appended")
        try log.publish(older, size: 3)
        #expect(try String(contentsOfFile: path + ".checkpoint", encoding: .utf8) == published,
                "the other process's newer checkpoint was replaced by an older one")
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 23)
        #expect(summary.checkpoint.size == 23)
    }

    @Test(.enabled(if: childLog == nil && CrashTests.selfExecutable != nil, "needs /proc/self/exe to start children"),
          arguments: [AuditSyncMode.always, .effects])
    func processesKilledWhileOthersAppendLoseNothingAcknowledged(mode: AuditSyncMode) throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let keyPath = dir.path + "/audit.key"
        let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "peon-wasm/multi-kill")
        let path = dir.path + "/killed.jsonl"
        let processes = 6
        // Large entries make a kill land inside a `write` now and then, tearing the line.
        let children = try Self.startChildren(processes, path: path, keyPath: keyPath, mode: mode, entries: 0,
                                              filler: 20_000, ackDirectory: dir.path)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, children.allSatisfy(\.isRunning),
              ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) < 2_000_000 {
            usleep(2000)
        }
        // Kill them one at a time at random moments; the others go on appending after each kill.
        for child in children.shuffled() {
            usleep(UInt32.random(in: 0..<40_000))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            #expect(child.terminationReason == .uncaughtSignal, "a child stopped by itself (exit \(child.terminationStatus))")
        }

        let log = try AuditLog.open(path: path, signer: signer)
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        let ids = try Self.identities(path)
        #expect(summary.size == UInt64(ids.count))
        let acks = try Self.acknowledgements(dir.path, children: processes)
        #expect(acks.count > 10)
        let missing = acks.filter { ack in !(ack.seq < ids.count && ids[ack.seq].run == ack.id && ids[ack.seq].i == ack.i) }
        #expect(missing.isEmpty, "acknowledged entries missing or changed: \(missing.prefix(3))")
        let recovered = ids.filter { $0.run.isEmpty }.count
        print("multi-process kill \(mode.rawValue): \(ids.count) entries, \(recovered) log.recovered")
    }

    /// Not a test: with `PEON_AUDIT_MULTI_BENCH` set, prints appends/s for 1, 4 and 16 processes × 2,000 entries in
    /// each sync mode (wall time from starting the children to the last exit, process start included).
    @Test(.enabled(if: childLog == nil && env["PEON_AUDIT_MULTI_BENCH"] != nil && CrashTests.selfExecutable != nil,
                   "set PEON_AUDIT_MULTI_BENCH to run"))
    func benchmark() throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let keyPath = dir.path + "/audit.key"
        let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "peon-wasm/multi-bench")
        for mode in AuditSyncMode.allCases {
            for processes in [1, 4, 16] {
                let path = dir.path + "/bench-\(mode.rawValue)-\(processes).jsonl"
                let ackDirectory = dir.path + "/ack-\(mode.rawValue)-\(processes)"
                try FileManager.default.createDirectory(atPath: ackDirectory, withIntermediateDirectories: true)
                let start = Date()
                let children = try Self.startChildren(processes, path: path, keyPath: keyPath, mode: mode, entries: 2000,
                                                      ackDirectory: ackDirectory)
                for child in children { child.waitUntilExit() }
                let wall = Date().timeIntervalSince(start)
                let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
                #expect(summary.size == UInt64(processes * 2000))
                print("bench \(mode.rawValue) \(processes) processes: \(summary.size) entries in \(String(format: "%.2f", wall)) s, \(Int(Double(summary.size) / wall)) appends/s")
            }
        }
    }
}
