import Foundation
import PeonAudit
import Testing

/// Every kind of tampering with a log or its checkpoint is detected, with the right kind of error and the first
/// bad entry named.
///
/// The signed logs in `Vectors/tamper/` were written by `Vectors/generate.py` (Python hashlib and Ed25519, not our
/// Swift code), one per tampering and named after it: a modified byte, a deleted, reordered or inserted entry, a
/// truncated log, a replaced checkpoint, a wrong key, garbage, a torn tail, an empty log. All mismatches are
/// reported together in one failure.
@Suite struct TamperVectorTests {
    struct Vector: Decodable {
        var desc: String
        var log_base64: String
        var checkpoint: String?
        var verifier_key: String
        var want_error: String?
        var want_seq: UInt64?
        var want_line: Int?
        var want_size: UInt64?
        var want_root: String?
    }

    static func vectors() throws -> [(String, Vector)] {
        let dir = try #require(Bundle.module.url(forResource: "Vectors/tamper", withExtension: nil))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { name in
            (String(name.dropLast(5)), try JSONDecoder().decode(Vector.self, from: Data(contentsOf: dir.appendingPathComponent(name))))
        }
    }

    @Test func thereIsAVectorForEveryTamperingKindTheIssueNames() throws {
        let names = try Self.vectors().map(\.0)
        for kind in ["happy-path", "modified-byte", "deleted-entry", "reordered-entries", "inserted-entry", "truncated",
                     "replaced-checkpoint", "wrong-key", "garbage-line", "non-json-line", "missing-checkpoint",
                     "malformed-checkpoint", "empty-log", "torn-tail"] {
            #expect(names.contains { $0.hasPrefix(kind) }, "no vector for \(kind)")
        }
    }

    @Test func everyTamperVectorGivesItsExpectedVerdict() throws {
        let vectors = try Self.vectors()
        #expect(vectors.count >= 20)
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        var failures: [String] = []
        for (name, v) in vectors {
            let log = dir.path + "/\(name).jsonl"
            try #require(Data(base64Encoded: v.log_base64)).write(to: URL(fileURLWithPath: log))
            if let cp = v.checkpoint { try Data(cp.utf8).write(to: URL(fileURLWithPath: log + ".checkpoint")) }
            do {
                let summary = try AuditVerifier.verify(logPath: log, verifierKey: v.verifier_key)
                if let want = v.want_error {
                    failures.append("\(name): verified (size \(summary.size)) but wanted \(want)")
                } else if summary.size != v.want_size || toHex(summary.rootHash) != v.want_root || !summary.signatureChecked {
                    failures.append("\(name): size \(summary.size) root \(toHex(summary.rootHash)), wanted \(v.want_size ?? 0) \(v.want_root ?? "")")
                }
            } catch {
                if v.want_error != error.code.rawValue {
                    failures.append("\(name): got \(error.code) (\(error.message)) but wanted \(v.want_error ?? "success")")
                } else if error.seq != v.want_seq || error.line != v.want_line {
                    failures.append("\(name): named seq \(error.seq.map(String.init) ?? "-") line \(error.line.map(String.init) ?? "-"), wanted seq \(v.want_seq.map(String.init) ?? "-") line \(v.want_line.map(String.init) ?? "-")")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(vectors.count) vectors failed:\n\(failures.joined(separator: "\n"))")
    }

    /// The entries Python wrote re-serialize to the very same bytes: our writer's key order and escaping are the
    /// documented ones, so an independent tool can rebuild and hash entries.
    @Test func entriesWrittenByAnIndependentToolReserializeByteForByte() throws {
        let happy = try #require(try Self.vectors().first { $0.0 == "happy-path" }?.1)
        let bytes = try #require(Data(base64Encoded: happy.log_base64))
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { Array($0) }
        #expect(lines.count == 10)
        for line in lines {
            let entry = try AuditEntry.parse(line).get()
            #expect(entry.serialized() == line, "\(String(decoding: line, as: UTF8.self))")
        }
    }

    @Test(arguments: [
        "", "{", "[]", "null", "{\"seq\":0}", String(repeating: "[", count: 100_000), "{\"seq\":-1}", "{\"seq\":1e3}",
        "{\"seq\":99999999999999999999999}", "\"\\ud800\"", "{\"a\":\"\\u00\"}", "{\"seq\":0,\"seq\":0}",
    ])
    func hostileLinesAreRefusedWithAReasonNotACrash(_ line: String) {
        guard case .failure(let error) = AuditEntry.parse(Array(line.utf8)) else {
            Issue.record("accepted \(line.prefix(40))")
            return
        }
        #expect(!error.reason.isEmpty)
    }
}

/// A fresh directory under the system temporary directory, removed when the value is deinitialized
/// (keep it alive with `withExtendedLifetime` while it is in use).
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "peon-audit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
