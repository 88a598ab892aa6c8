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
            + "*durable* is the flag the mediator sets for entries of side-effecting calls (`effects` fsyncs only those; `always` fsyncs all; `batch` fsyncs per 256 KiB). "
            + "Concurrent appenders share fsyncs (group commit).")
        report.line()
        var rows: [[String]] = []
        var target = ""
        var counter = 0
        for (sync, durable) in [(AuditSyncMode.always, true), (.effects, true), (.effects, false), (.batch, true)] {
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
                                _ = try log.append(Self.record(index), durable: durable)
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
                rows.append([sync.rawValue, durable ? "yes" : "no", String(writers), formatCount(count), formatRate(rate), formatNS(wall * 1e9 / Double(count) * Double(writers))])
                if sync == .batch && writers == 16 { target = "Batched sync, 16 writers: \(formatRate(rate)) appends (target ≥ 100 k/s)" }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        report.table(["sync", "durable", "writers", "entries", "appends/s", "latency per append (writer's view)"], rows)
        report.line("- " + target)
        report.line()

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
        let leaves = try AuditProofs.leafHashes(logPath: path)
        let treeProof = seconds { _ = try? RFC6962.inclusionProof(index: size / 2 + 7, leafHashes: leaves[...]) }
        report.table(["measure", "entries", "time", "rate"], [
            ["fill (16 writers, batch sync)", formatCount(size), String(format: "%.2f s", writeTime), formatRate(Double(size) / writeTime)],
            ["`audit verify` (chain, Merkle root, signed checkpoint; \(bytes / 1_000_000) MB)", formatCount(size), String(format: "%.2f s", verifyTime), formatRate(Double(size) / verifyTime) + " entries"],
            ["inclusion proof, from the file (re-reads and re-hashes every line, \(inclusion?.hashes.count ?? 0) hashes)", formatCount(size), String(format: "%.2f s", inclusionTime), "—"],
            ["consistency proof, from the file", formatCount(size), String(format: "%.2f s", consistencyTime), "—"],
            ["inclusion proof from leaf hashes already in memory", formatCount(size), formatNS(treeProof * 1e9), "—"],
        ])
        try? FileManager.default.removeItem(atPath: path)
    }
}
