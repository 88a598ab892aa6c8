import Foundation
@testable import PeonAudit
import Testing
import PeonSystem

/// The reader every scan of a log goes through (opening, catching up with other writers, proofs) hands lines out in
/// place; these tests hold it to a plain reference split of the same bytes, wherever the lines fall against its
/// reads, and hold the in-place chain check to the line a writer builds.
@Suite struct LineReaderTests {
    /// What the reader must report for `bytes`: each newline-terminated line (or `nil` for one over `maxLine`), then
    /// the bytes after the last newline as a torn tail.
    static func reference(_ bytes: [UInt8], maxLine: Int) -> (lines: [[UInt8]?], tail: [UInt8]?) {
        var lines: [[UInt8]?] = []
        var start = 0
        for (index, byte) in bytes.enumerated() where byte == 0x0A {
            let line = Array(bytes[start..<index])
            lines.append(line.count > maxLine ? nil : line)
            start = index + 1
        }
        if start == bytes.count { return (lines, nil) }
        let tail = Array(bytes[start...])
        if tail.count > maxLine { lines.append(nil); return (lines, nil) }
        return (lines, tail)
    }

    /// Reads `bytes` from a file with both `next()` and `nextSpan()` and returns what each reported.
    static func read(_ bytes: [UInt8], maxLine: Int, offset: Int64 = 0) throws -> (items: [String], spans: [String]) {
        let path = NSTemporaryDirectory() + "line-reader-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        var items: [String] = []
        var reader = LineReader(fd: fd, path: path, maxLine: maxLine, offset: offset)
        while let item = try reader.next() {
            switch item {
            case .line(let line): items.append("line \(line)")
            case .tooLong: items.append("too long")
            case .partial(let tail): items.append("partial \(tail)")
            }
        }
        var spans: [String] = []
        var spanReader = LineReader(fd: fd, path: path, maxLine: maxLine, offset: offset)
        while let span = try spanReader.nextSpan() {
            switch span {
            case .line(let range): spans.append("line \(spanReader.withBytes(range) { Array($0) })")
            case .tooLong: spans.append("too long")
            case .partial(let range): spans.append("partial \(spanReader.withBytes(range) { Array($0) })")
            }
        }
        return (items, spans)
    }

    static func expected(_ bytes: [UInt8], maxLine: Int) -> [String] {
        let (lines, tail) = reference(bytes, maxLine: maxLine)
        return lines.map { $0.map { "line \($0)" } ?? "too long" } + (tail.map { ["partial \($0)"] } ?? [])
    }

    @Test func linesAcrossReadBoundariesComeBackExactly() throws {
        // Lines of every length around the 64 KiB read size, so some straddle one read and the next, a line over
        // the limit in the middle and a torn tail at the end.
        var generator = SystemRandomNumberGenerator()
        let maxLine = 70_000
        for round in 0..<6 {
            var bytes: [UInt8] = []
            while bytes.count < 300_000 {
                let length = round % 2 == 0 ? Int.random(in: 0..<600, using: &generator) : Int.random(in: 60_000..<75_000, using: &generator)
                bytes += (0..<length).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }
                bytes.append(0x0A)
            }
            if round >= 3 { bytes += Array("torn {\"seq\":".utf8) }
            let (items, spans) = try Self.read(bytes, maxLine: maxLine)
            let want = Self.expected(bytes, maxLine: maxLine)
            #expect(items == want)
            #expect(spans == want)
        }
    }

    @Test(arguments: [
        "", "\n", "\n\n", "a", "a\n", "a\nb", "abc\ndefgh\n", "0123456789\n", "01234567890\nx\n", "01234567890",
        "0123456789abcdef\nshort\n0123456789abcdef",
    ])
    func smallFilesAndOverLongLines(_ text: String) throws {
        let bytes = Array(text.utf8)
        let (items, spans) = try Self.read(bytes, maxLine: 10)
        let want = Self.expected(bytes, maxLine: 10)
        #expect(items == want)
        #expect(spans == want)
    }

    @Test func readingFromAnOffsetStartsThere() throws {
        let bytes = Array("first\nsecond\nthird".utf8)
        let (items, spans) = try Self.read(bytes, maxLine: 100, offset: 6)
        #expect(items == ["line \(Array("second".utf8))", "partial \(Array("third".utf8))"])
        #expect(spans == items)
    }

    /// The line a writer builds for entry `seq` after `prev`, with `middle` between its head and tail.
    static func line(seq: UInt64, prev: [UInt8], middle: String = #""2026-12-02T11:00:00.000000Z","run":"r""#) -> [UInt8] {
        var out: [UInt8] = []
        AuditEntry.appendHead(seq: seq, to: &out)
        out += Array(middle.utf8)
        AuditEntry.appendTail(prev: prev, to: &out)
        return out
    }

    @Test(arguments: [UInt64(0), 1, 9, 10, 99, 100, 12_345, 999_999_999, UInt64.max])
    func theInPlaceChainCheckAcceptsExactlyTheLineAWriterBuilds(_ seq: UInt64) {
        let prev = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(seq % 251)) }
        let good = Self.line(seq: seq, prev: prev)
        #expect(AuditEntry.isChainedLine(good, seq: seq, prev: prev))
        // Another number, another previous hash, or any byte of the head or tail changed: not chained.
        #expect(!AuditEntry.isChainedLine(good, seq: seq &+ 1, prev: prev))
        if seq > 0 { #expect(!AuditEntry.isChainedLine(good, seq: seq - 1, prev: prev)) }
        var otherPrev = prev
        otherPrev[31] ^= 1
        #expect(!AuditEntry.isChainedLine(good, seq: seq, prev: otherPrev))
        let headEnd = String(seq).utf8.count + #"{"seq":,"time":"#.utf8.count
        let tailStart = good.count - (#","prev":""}"#.utf8.count + 64)
        for index in good.indices where index < headEnd || index >= tailStart {
            for replacement: UInt8 in [0x30, 0x41, 0x61, 0x22, 0x7D] where replacement != good[index] {
                var bad = good
                bad[index] = replacement
                #expect(!AuditEntry.isChainedLine(bad, seq: seq, prev: prev), "byte \(index) changed to \(replacement)")
            }
        }
        // Uppercase hex is not what a writer writes.
        var upper = good
        for index in (good.count - 66)..<(good.count - 2) where (0x61...0x66).contains(upper[index]) { upper[index] -= 0x20 }
        if upper != good { #expect(!AuditEntry.isChainedLine(upper, seq: seq, prev: prev)) }
        // A control byte anywhere, a line cut short, a leading zero in the number: not chained.
        for control: UInt8 in [0x00, 0x0A, 0x0D, 0x1F] {
            var bad = good
            bad.insert(control, at: headEnd + 3)
            #expect(!AuditEntry.isChainedLine(bad, seq: seq, prev: prev))
        }
        #expect(!AuditEntry.isChainedLine(Array(good.dropLast()), seq: seq, prev: prev))
        #expect(!AuditEntry.isChainedLine(Array(good.prefix(headEnd)), seq: seq, prev: prev))
        var padded = Array(#"{"seq":0"#.utf8)
        padded += good.dropFirst(#"{"seq":"#.utf8.count)
        #expect(!AuditEntry.isChainedLine(padded, seq: seq, prev: prev))
    }

    @Test func theInPlaceChainCheckHandlesHexOfEveryByte() {
        let prev = (0..<32).map { UInt8($0 * 8 + 7) }
        let good = Self.line(seq: 5, prev: prev)
        #expect(AuditEntry.isChainedLine(good, seq: 5, prev: prev))
        for value in 0...255 {
            var other = prev
            other[value % 32] = UInt8(value)
            #expect(AuditEntry.isChainedLine(Self.line(seq: 5, prev: other), seq: 5, prev: other))
            if other != prev { #expect(!AuditEntry.isChainedLine(good, seq: 5, prev: other)) }
        }
    }
}

extension LineReaderTests {
    @Test func theWordAtATimeControlByteTestFindsEveryControlByteAtEveryOffset() {
        let plain = (0..<45).map { UInt8(0x20 + ($0 * 7) % 0x60) } + [0x7F, 0x80, 0xE2, 0xFF, 0x21]
        #expect(!plain.withUnsafeBufferPointer { JSONWriter.containsControlByte($0) })
        for byte in UInt8(0)...UInt8(255) {
            for offset in plain.indices {
                var line = plain
                line[offset] = byte
                let found = line.withUnsafeBufferPointer { JSONWriter.containsControlByte($0) }
                #expect(found == (byte < 0x20), "byte \(byte) at \(offset)")
            }
        }
        for length in 0..<20 {
            let short = [UInt8](repeating: 0x41, count: length)
            #expect(!short.withUnsafeBufferPointer { JSONWriter.containsControlByte($0) })
        }
    }
}

extension LineReaderTests {
    @Test func theVerifiersPrevComparisonIsTheLowercaseHexExactly() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = hex(bytes)
            #expect(isLowercaseHex(text, of: bytes))
            #expect(!isLowercaseHex(text.uppercased(), of: bytes) || text.uppercased() == text)
            #expect(!isLowercaseHex(String(text.dropLast()), of: bytes))
            #expect(!isLowercaseHex(text + "0", of: bytes))
            var other = bytes
            other[Int.random(in: 0..<32, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            #expect(!isLowercaseHex(text, of: other))
        }
        #expect(isLowercaseHex("", of: []))
        #expect(!isLowercaseHex("0", of: []))
    }
}

extension LineReaderTests {
    @Test func aLineOutOfTheWritersKeyOrderParsesToTheSameEntry() throws {
        let record = AuditRecord(run: "r", module: "m", moduleSHA256: "ab", call: "fs.read", resource: "fs:/a",
                                 decision: .allow, reason: "why", policy: "v1", outcome: nil, details: ["k": "v"])
        let entry = AuditEntry(seq: 7, time: "2026-12-02T11:00:00.000000Z", record: record, prev: String(repeating: "0f", count: 32))
        let line = entry.serialized()
        #expect(try AuditEntry.parse(line).get() == entry)
        // The same members in reverse order, and with an extra member: the same entry, found by name.
        guard case .success(.object(let members)) = JSONReader.parse(line) else { Issue.record("not an object"); return }
        func text(_ members: [(key: String, value: JSONValue)]) -> [UInt8] {
            var out = Array("{".utf8)
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                switch member.value {
                case .string(let s): JSONWriter.appendString(s, to: &out)
                case .number(let n): out += Array(n.utf8)
                case .null: out += Array("null".utf8)
                case .object: out += Array(#"{"k":"v"}"#.utf8)
                default: Issue.record("unexpected member \(member.key)")
                }
            }
            return out + Array("}".utf8)
        }
        #expect(try AuditEntry.parse(text(members.reversed())).get() == entry)
        #expect(try AuditEntry.parse(text(members + [(key: "extra", value: .string("x"))])).get() == entry)
        // A field missing or mistyped is named the same way in either order.
        for (index, member) in members.enumerated() where member.key != "details" {
            var missing = members
            missing.remove(at: index)
            let inOrder = AuditEntry.parse(text(missing))
            let reversed = AuditEntry.parse(text(missing.reversed()))
            guard case .failure(let a) = inOrder, case .failure(let b) = reversed else {
                Issue.record("a line without \(member.key) parsed"); continue
            }
            #expect(a == b)
            #expect(a.reason.contains(member.key))
        }
        var badPrev = members
        badPrev[12] = (key: "prev", value: .string(String(repeating: "g", count: 64)))
        #expect(throws: EntryParseError.self) { try AuditEntry.parse(text(badPrev)).get() }
        badPrev[12] = (key: "prev", value: .string(String(repeating: "AB", count: 32)))
        #expect(try AuditEntry.parse(text(badPrev)).get().prev == String(repeating: "AB", count: 32))
    }
}

extension LineReaderTests {
    @Test func isHexAcceptsWhatUnhexDecodes() {
        for byte in UInt8(0)...UInt8(127) {
            let text = String(repeating: String(UnicodeScalar(byte)), count: 2)
            #expect(isHex(text) == (unhex(text) != nil), "byte \(byte)")
        }
        #expect(isHex(String(repeating: "aF09", count: 16)))
        #expect(!isHex("é0"))
        #expect(isHex(""))
    }
}
