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

    /// A `decision` is `allow` or `deny` byte for byte, compared as bytes (as a `String` a value of a run of combining
    /// marks took quadratic time: 90,000 of them held `verify` for seconds), and a refused one is quoted short: the
    /// whole value, as long as a line, was the error message.
    @Test func aDecisionIsReadAsBytesAndARefusedOneIsQuotedShort() throws {
        let record = Self.records(2)[1]
        #expect(record.decision == .allow)
        let line = String(decoding: AuditEntry(seq: 0, time: "2026-12-02T00:00:00.000000Z", record: record, prev: AuditEntry.zeroPrev).serialized(),
                          as: UTF8.self)
        #expect(line.contains(#""decision":"allow""#))
        let marks = String(repeating: "\u{0301}\u{0316}\u{0334}", count: 2_000)
        for spelled in ["a" + marks, "allow\u{0301}", "Allow", "allow "] {
            let forged = line.replacingOccurrences(of: #""decision":"allow""#, with: "\"decision\":\"\(spelled)\"")
            guard case .failure(let error) = AuditEntry.parse(Array(forged.utf8)) else {
                Issue.record("decision \(spelled.unicodeScalars.count) scalars was read")
                continue
            }
            #expect(error.reason.contains("expected allow, deny or null") && error.reason.utf8.count < 200, "\(error.reason.utf8.count) bytes")
        }
        #expect(AuditDecision(exactly: "deny") == .deny && AuditDecision(exactly: "allow") == .allow && AuditDecision(exactly: "") == nil)
    }

    /// A line the reader takes apart must mean one thing: a key given twice is refused wherever it is, in a small
    /// object (checked key by key) or a large one (checked through a set), and strings with and without escapes,
    /// ASCII or not, read back as written.
    @Test func duplicateKeysAreRefusedInObjectsOfEverySize() throws {
        for count in [2, 15, 16, 17, 40] {
            var record = Self.records(1)[0]
            for k in 0..<count { record.details["k\(k)"] = "v\(k)" }
            let line = AuditEntry(seq: 0, time: "2026-12-02T00:00:00.000000Z", record: record, prev: AuditEntry.zeroPrev).serialized()
            #expect(try AuditEntry.parse(line).get().record == record)
            for (first, second) in [(0, 1), (count - 2, count - 1), (0, count - 1)] {
                let text = String(decoding: line, as: UTF8.self)
                let doubled = text.replacingOccurrences(of: "\"k\(second)\":", with: "\"k\(first)\":")
                #expect(doubled != text)
                guard case .failure(let error) = AuditEntry.parse(Array(doubled.utf8)) else {
                    Issue.record("a duplicate key k\(first) among \(count) was accepted")
                    continue
                }
                #expect(error.reason.contains("duplicate key"), "\(error.reason)")
            }
        }
        var record = Self.records(1)[0]
        record.details = ["plain": "abc", "escaped": "a\"b\\c\n\u{1}", "utf8": "é\u{2028}😀", "empty": ""]
        let line = AuditEntry(seq: 0, time: "2026-12-02T00:00:00.000000Z", record: record, prev: AuditEntry.zeroPrev).serialized()
        #expect(try AuditEntry.parse(line).get().record == record)
        // Bytes that are not UTF-8 inside a string are refused, not repaired.
        var broken = line
        let position = try #require(line.firstIndex(of: 0xC3), "é's first byte")
        broken[position] = 0xFF
        guard case .failure = AuditEntry.parse(broken) else { Issue.record("invalid UTF-8 was accepted"); return }
    }

    /// A key is at most ``AuditRecord/maxFieldBytes`` long, as every writer bounds it: a longer one (here of combining
    /// marks out of canonical order, which Swift compares and hashes in quadratic time) is refused by its length
    /// before it is compared with another, so a hostile line cannot stall `audit verify`.
    @Test func aKeyLongerThanAnyWriterWritesIsRefused() throws {
        var record = Self.records(1)[0]
        let longest = String(repeating: "k", count: AuditRecord.maxFieldBytes)
        record.details = [longest: "v", "a": "b"]
        let line = AuditEntry(seq: 0, time: "2026-12-02T00:00:00.000000Z", record: record, prev: AuditEntry.zeroPrev).serialized()
        #expect(try AuditEntry.parse(line).get().record == record)
        // One byte over: refused by its length.
        let over = String(decoding: line, as: UTF8.self).replacingOccurrences(of: longest, with: longest + "k")
        guard case .failure = AuditEntry.parse(Array(over.utf8)) else {
            Issue.record("a key of \(AuditRecord.maxFieldBytes + 1) bytes was accepted")
            return
        }
        let marks = String(repeating: "\u{301}\u{316}", count: AuditRecord.maxFieldBytes)
        let hostile = String(decoding: line, as: UTF8.self).replacingOccurrences(of: longest, with: "x" + marks)
        guard case .failure(let error) = AuditEntry.parse(Array(hostile.utf8)) else {
            Issue.record("a key of \(marks.utf8.count) bytes was accepted")
            return
        }
        #expect(error.reason.contains("key longer than"), "\(error.reason)")
        // A short key with a long run of combining marks: compared in quadratic time too.
        let marked = String(decoding: line, as: UTF8.self).replacingOccurrences(of: #""a":"b""#, with: "\"x" + String(repeating: "\u{301}\u{316}", count: 17) + #"":"b""#)
        guard case .failure(let markError) = AuditEntry.parse(Array(marked.utf8)) else {
            Issue.record("a key of 34 combining marks in a row was accepted")
            return
        }
        #expect(markError.reason.contains("combining marks"), "\(markError.reason)")
        // A writer bounds a longer key to its prefix and digest, which reads back.
        record.details = [longest + "k": "v"]
        let bounded = try #require(AuditEntry.parse(AuditEntry(seq: 0, time: "2026-12-02T00:00:00.000000Z", record: record.bounded(),
                                                              prev: AuditEntry.zeroPrev).serialized()).get().record.details.keys.first)
        #expect(bounded.hasPrefix(String(repeating: "k", count: 256)) && bounded.contains("sha256:"))
    }

    /// Every byte that must be escaped is, wherever it falls in a long run of plain bytes (the writer skips plain
    /// bytes eight at a time): the line has no control byte, no DEL and no raw U+2028 or U+2029, parses back to
    /// the exact text, and every other character (ASCII or not, `E2` lead bytes of other characters too) is copied.
    @Test func everyEscapedCharacterIsFoundAtEveryOffsetOfALongPlainRun() throws {
        let specials = (0..<0x80).map { Unicode.Scalar(UInt8($0)) }
            + ["\u{80}", "\u{E9}", "\u{2028}", "\u{2029}", "\u{20AC}", "\u{2027}", "\u{1F600}"].map { Unicode.Scalar($0) }
        for special in specials {
            for offset in 0..<20 {
                var text = String(repeating: "a", count: offset)
                text.unicodeScalars.append(special)
                text += String(repeating: "b", count: 23 - offset % 9)
                var entry = try AuditEntry.parse(Self.referenceLine()).get()
                entry.record.reason = text
                let line = entry.serialized()
                #expect(!line.contains { $0 < 0x20 || $0 == 0x7F }, "raw control byte for U+\(String(special.value, radix: 16)) at \(offset)")
                let raw2028 = line.indices.dropLast(2).contains { line[$0] == 0xE2 && line[$0 + 1] == 0x80 && (line[$0 + 2] == 0xA8 || line[$0 + 2] == 0xA9) }
                #expect(!raw2028, "raw line separator at \(offset)")
                let back = try AuditEntry.parse(line).get()
                #expect(Array(back.record.reason.utf8) == Array(text.utf8))
                let plain = special.value >= 0x20 && special.value != 0x22 && special.value != 0x5C && special.value != 0x7F
                    && special.value != 0x2028 && special.value != 0x2029
                if plain { #expect(line.count == Array(Self.referenceLine()).count - 4 + text.utf8.count, "copied as it is") }
            }
        }
    }

    /// A line the writer wrote, with `"reason":"abcd"`.
    static func referenceLine() -> [UInt8] {
        let entry = AuditEntry(seq: 3, time: "2026-12-02T07:00:00.000000Z",
                               record: AuditRecord(run: "r", module: "m", moduleSHA256: String(repeating: "ab", count: 32),
                                                   call: "fs.read", resource: "fs:/x", decision: .deny, reason: "abcd"),
                               prev: AuditEntry.zeroPrev)
        return entry.serialized()
    }
}
