import Foundation
import PeonAudit
import Synchronization

/// Section 5: audit appends per second per sync mode and writer count, verification speed, proof time.
struct AuditBench {
    let report: Report
    let quick: Bool

    static func record(_ index: Int) -> AuditRecord {
        AuditRecord(run: "9f1c2b7e-0d4a-4e55-9a61-3f7b2c1d0e8a", module: "bench", moduleSHA256: String(repeating: "ab", count: 32),
                    call: "fs.read", resource: "fs:/srv/agent/data/file\(index % 1000).txt", decision: .allow,
                    reason: "policies/bench.toml:12 fs[0]", policy: "sha256:" + String(repeating: "cd", count: 8),
                    outcome: nil, details: ["bytes": "4096"])
    }

    func run() throws {
        report.line("## 5. Audit log")
        report.line()
        let directory = try makeTemporaryDirectory("audit")
        let signer = try CheckpointSigner.generate(name: "bench.peon-wasm")
        let budget = quick ? 0.5 : 1.5
        report.line("Appends per second: each writer thread appends typical `fs.read` decision entries (~420 bytes a line) for \(budget) s into one log; "
            + "*durability* is what the mediator asks for: `durable` for the decision of a side-effecting call (`effects` fsyncs only those; `always` fsyncs all), `written` for an HTTP GET's, `buffered` for reads, denials and outcomes (in `batch` mode these wait in the process's buffer while it holds the log's lock, at most 10 ms). "
            + "Concurrent appenders share fsyncs (group commit).")
        report.line()
        var rows: [[String]] = []
        var target = ""
        var counter = 0
        for (sync, durability) in [(AuditSyncMode.always, AuditDurability.durable), (.effects, .durable), (.effects, .written),
                                   (.batch, .written), (.batch, .buffered)] {
            for writers in [1, 16] {
                counter += 1
                let path = "\(directory)/append-\(counter).jsonl"
                let log = try AuditLog.open(path: path, signer: signer, sync: sync)
                let total = Atomic<Int>(0)
                let failures = Atomic<Int>(0)
                let deadline = ContinuousClock.now + .milliseconds(Int(budget * 1000))
                let wall = seconds {
                    DispatchQueue.concurrentPerform(iterations: writers) { writer in
                        var index = writer
                        while ContinuousClock.now < deadline {
                            do {
                                _ = try log.append(Self.record(index), durability: durability)
                                total.add(1, ordering: .relaxed)
                            } catch {
                                failures.add(1, ordering: .relaxed)
                                return
                            }
                            index += writers
                        }
                    }
                }
                try log.writeCheckpoint()
                try log.close()
                guard failures.load(ordering: .relaxed) == 0 else { throw BenchFailure("audit append failed") }
                let count = total.load(ordering: .relaxed)
                let summary = try AuditVerifier.verify(logPath: path, verifierKey: nil)
                guard summary.size == UInt64(count) else { throw BenchFailure("the log holds \(summary.size) entries, \(count) were appended") }
                let rate = Double(count) / wall
                rows.append([sync.rawValue, "\(durability)", String(writers), formatCount(count), formatRate(rate), formatNS(wall * 1e9 / Double(count) * Double(writers))])
                if sync == .batch && durability == .buffered && writers == 16 {
                    target = "Batched sync, buffered entries, 16 writers: \(formatRate(rate)) appends (target ≥ 100 k/s)"
                }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        report.table(["sync", "durability", "writers", "entries", "appends/s", "latency per append (writer's view)"], rows)
        report.line("- " + target)
        report.line()
        try processes(directory: directory, budget: budget)

        // Verification and proofs on one large log.
        let size = quick ? 200_000 : 1_000_000
        let path = "\(directory)/large.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 1_000_000_000)
        let failures = Atomic<Int>(0)
        let writeTime = seconds {
            DispatchQueue.concurrentPerform(iterations: 16) { writer in
                for index in stride(from: writer, to: size, by: 16) {
                    if (try? log.append(Self.record(index), durable: false)) == nil { failures.add(1, ordering: .relaxed) }
                }
            }
        }
        try log.writeCheckpoint()
        try log.close()
        guard failures.load(ordering: .relaxed) == 0 else { throw BenchFailure("audit append failed while filling the large log") }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let key = signer.verifierKey
        var summary: VerificationSummary?
        let verifyTime = try seconds { summary = try AuditVerifier.verify(logPath: path, verifierKey: key) }
        guard let summary, summary.size == UInt64(size), summary.signatureChecked else { throw BenchFailure("the large log did not verify") }
        var inclusion: AuditProofs.Inclusion?
        let inclusionTime = try seconds { inclusion = try AuditProofs.inclusion(logPath: path, seq: UInt64(size / 2 + 7), verifierKey: key) }
        let consistencyTime = try seconds { _ = try AuditProofs.consistency(logPath: path, oldSize: UInt64(size / 3), newSize: nil, verifierKey: key) }
        var leaves: [[UInt8]] = []
        _ = try AuditProofs.streamLeafHashes(logPath: path) { _, hash in leaves.append(hash) }
        let treeProof = seconds { _ = try? RFC6962.inclusionProof(index: size / 2 + 7, leafHashes: leaves[...]) }
        // Opening the log to append, as every `peon-wasm run` does: from `LOG.frontier`, then with it removed (the
        // full scan every open made before it existed).
        func reopen() throws -> (seconds: Double, hashed: UInt64) {
            var hashed: UInt64 = 0
            let time = try seconds {
                let again = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 1_000_000_000)
                hashed = again.entriesHashedAtOpen
                try again.close()
            }
            return (time, hashed)
        }
        let resumed = try reopen()
        try? FileManager.default.removeItem(atPath: path + ".frontier")
        let scanned = try reopen()
        guard resumed.hashed == 0, scanned.hashed == UInt64(size) else {
            throw BenchFailure("reopening hashed \(resumed.hashed) entries from the frontier and \(scanned.hashed) without it")
        }
        report.table(["measure", "entries", "time", "rate"], [
            ["fill (16 writers, batch sync)", formatCount(size), String(format: "%.2f s", writeTime), formatRate(Double(size) / writeTime)],
            ["`audit verify` (chain, Merkle root, signed checkpoint; \(bytes / 1_000_000) MB)", formatCount(size), String(format: "%.2f s", verifyTime), formatRate(Double(size) / verifyTime) + " entries"],
            ["inclusion proof, from the file (re-reads and re-hashes every line, \(inclusion?.hashes.count ?? 0) hashes)", formatCount(size), String(format: "%.2f s", inclusionTime), "—"],
            ["consistency proof, from the file", formatCount(size), String(format: "%.2f s", consistencyTime), "—"],
            ["inclusion proof from leaf hashes already in memory", formatCount(size), formatNS(treeProof * 1e9), "—"],
            ["open for appending (what every run does), resuming from `LOG.frontier`; close", formatCount(size), formatNS(resumed.seconds * 1e9), "—"],
            ["open for appending with `LOG.frontier` deleted (re-hashes every entry, as every open did before); close", formatCount(size), String(format: "%.2f s", scanned.seconds), "—"],
        ])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Appends/s with 1, 4 and 16 processes on one log: each is this executable started with `--append-child`, which
    /// opens the log itself (its own descriptor, its own writer) and appends for the same time; the log must then
    /// verify with exactly the entries they report.
    private func processes(directory: String, budget: Double) throws {
        report.line("Processes on one log: 1, 4 and 16 processes (each its own `AuditLog`, as concurrent `peon-wasm run`s are) append for \(budget) s; "
            + "*buffered* entries are what the mediator appends for reads, denials and outcomes (in `batch` mode a process holds the lock for up to 10 ms and writes them together), "
            + "*written* is an entry that must reach the file before the call returns (an HTTP GET's decision). The log verifies with exactly the entries appended.")
        report.line()
        let keyPath = directory + "/processes.key"
        _ = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: "bench.peon-wasm")
        let signer = try CheckpointSigner.load(keyPath: keyPath)
        var rows: [[String]] = []
        var counter = 0
        for (sync, durability) in [(AuditSyncMode.batch, "buffered"), (.batch, "written"), (.effects, "written")] {
            for count in [1, 4, 16] {
                counter += 1
                let path = "\(directory)/processes-\(counter).jsonl"
                let children = try (0..<count).map { _ -> (Process, Pipe) in
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
                    process.arguments = ["--append-child", path, keyPath, String(budget), sync.rawValue, durability]
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    try process.run()
                    return (process, pipe)
                }
                var total = 0
                var wall = 0.0
                for (process, pipe) in children {
                    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    process.waitUntilExit()
                    let fields = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
                    guard process.terminationStatus == 0, fields.count == 2, let appended = Int(fields[0]), let seconds = Double(fields[1]) else {
                        throw BenchFailure("an appending process failed: \(output)")
                    }
                    total += appended
                    wall = max(wall, seconds)
                }
                let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
                guard summary.size == UInt64(total) else { throw BenchFailure("the log holds \(summary.size) entries, \(total) were appended") }
                progress("audit \(count) processes \(sync.rawValue) \(durability): \(formatRate(Double(total) / wall))")
                rows.append([String(count), sync.rawValue, durability, formatCount(total), formatRate(Double(total) / wall), "yes"])
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        report.table(["processes", "sync", "durability", "entries appended", "appends/s (all processes)", "log verifies with exactly these entries"], rows)
        report.line()
    }

    /// The body of `PeonBench --append-child LOG KEY SECONDS SYNC DURABILITY`: appends until the time is up, then
    /// prints `COUNT SECONDS`. Returns the exit status.
    static func appendChild(log path: String, arguments: [String]) -> Int32 {
        guard arguments.count == 4, let budget = Double(arguments[1]), let sync = AuditSyncMode(rawValue: arguments[2]) else {
            print("usage: --append-child LOG KEY SECONDS SYNC buffered|written|durable")
            return 2
        }
        let durability: AuditDurability = switch arguments[3] {
        case "buffered": .buffered
        case "durable": .durable
        default: .written
        }
        do {
            let signer = try CheckpointSigner.load(keyPath: arguments[0])
            let log = try AuditLog.open(path: path, signer: signer, sync: sync)
            var count = 0
            let start = ContinuousClock.now
            let deadline = start + .milliseconds(Int(budget * 1000))
            while ContinuousClock.now < deadline {
                _ = try log.append(record(count), durability: durability)
                count += 1
            }
            try log.close()
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("\(count) \(seconds)")
            return 0
        } catch {
            print("failed: \(error)")
            return 1
        }
    }
}
