import Foundation
import PeonAudit
import Testing

/// The line the log writes for an entry is exactly ``AuditEntry/serialized()`` of that entry (the format
/// the independent vectors pin down), whatever the number of details, their order, or characters that
/// need escaping; so a faster writer can never drift from the documented format.
@Suite struct AuditLineTests {
    /// Records shaped like the mediator's: a decision without details, outcomes with two to five details
    /// given in unsorted order, denials with a reason, and values that need escaping.
    static func records(_ count: Int) -> [AuditRecord] {
        (0..<count).map { i in
            var details: [String: String] = [:]
            switch i % 4 {
            case 0: break
            case 1: details = ["result_sha256": String(repeating: "c", count: 64), "result_len": "4096"]
            case 2: details = ["decision_seq": String(i - 1), "result_len": "16", "result_sha256": "00ff", "z": "", "a\"\n": "é\u{2028}"]
            default: details = ["within_seq": String(i)]
            }
            return AuditRecord(
                run: "run-1", module: "agent.wasm", moduleSHA256: String(repeating: "ab", count: 32),
                call: i % 2 == 0 ? "fs.read" : "db.query", resource: "fs:/srv/data/file-\(i).txt",
                decision: i % 3 == 0 ? nil : (i % 3 == 1 ? .allow : .deny),
                reason: i % 5 == 0 ? "" : "grant fs[0] allows read on /srv/data/**", policy: "v\(i % 2)",
                outcome: i % 3 == 0 ? "ok" : nil, details: details)
        }
    }

    @Test(arguments: [AuditSyncMode.batch, .effects])
    func everyLineTheLogWritesIsTheReferenceSerializationOfItsEntry(_ mode: AuditSyncMode) throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 9, count: 32))
        let path = dir.path + "/lines.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 0)
        let records = Self.records(2000)
        for (i, record) in records.enumerated() { try log.append(record, durable: i % 7 == 0) }
        try log.close()
        let written = try lines(of: path)
        #expect(written.count == records.count)
        var mismatches = 0
        for (line, record) in zip(written, records) {
            let entry = try AuditEntry.parse(line).get()
            if entry.record != record || entry.serialized() != line { mismatches += 1 }
        }
        #expect(mismatches == 0)
        // The details of the third record, sorted by key bytes and escaped, exactly as the format documents them.
        let third = String(decoding: written[2], as: UTF8.self)
        #expect(third.contains(#""outcome":null,"details":{"a\"\n":"é\u2028","decision_seq":"1","result_len":"16","result_sha256":"00ff","z":""},"prev":""#),
                "\(third)")
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == UInt64(records.count))
    }
}
