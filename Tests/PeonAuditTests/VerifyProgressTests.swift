import Foundation
import PeonAudit
import Testing

/// `audit verify` of a large log reports progress: the verifier calls back every N entries with what it has read.
@Suite struct VerifyProgressTests {
    @Test func progressIsReportedEveryNEntriesWithTheBytesRead() throws {
        let dir = try TemporaryDirectory()
        let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 3, count: 32))
        let path = dir.path + "/progress.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<35 { try log.append(record(i), durable: false) }
        try log.close()
        let size = Int64(try Data(contentsOf: URL(fileURLWithPath: path)).count)
        var reports: [(UInt64, Int64, Int64?)] = []
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey, progressEvery: 10) {
            reports.append(($0, $1, $2))
        }
        #expect(summary.size == 35)
        #expect(reports.map(\.0) == [10, 20, 30])
        let lines = try lines(of: path)
        for (entries, bytes, total) in reports {
            // Exactly the first `entries` lines (and their newlines) were read, out of the whole file.
            #expect(bytes == Int64(lines.prefix(Int(entries)).reduce(0) { $0 + $1.count + 1 }))
            #expect(total == size)
        }
    }
}
