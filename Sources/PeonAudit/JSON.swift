/// The small JSON writer and reader the log needs, written so the bytes are fixed and hostile input is bounded.
///
/// The writer emits keys in the order the caller gives, no whitespace, and escapes `"`, `\`, every control
/// character and U+2028/U+2029, so an entry is always exactly one line and the same entry always hashes the same.
/// The reader accepts standard JSON (RFC 8259) up to a small nesting depth, rejects duplicate keys (two tools must
/// never see two different values for one field), and never recurses deeper than ``JSONReader/maxDepth``.
import PeonSystem
enum JSONWriter {
    /// Appends `s` as a JSON string literal.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            // No `reserveCapacity` here: growing to an exact size on every string would copy the buffer again
            // for each one; callers size the buffer once, and `append` grows it geometrically otherwise.
            var i = 0
            while i < bytes.count {
                // Copy the run of bytes that need no escape in one go.
                var end = plainRunEnd(bytes, from: i)
                while end < bytes.count, isPlain(bytes[end]) { end += 1 }
                if end > i {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<end]))
                    i = end
                    if i == bytes.count { break }
                }
                let b = bytes[i]
                switch b {
                case 0x22: out.append(0x5C); out.append(0x22)
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
                case 0x00..<0x20, 0x7F: appendUnicodeEscape(UInt32(b), to: &out)
                case 0xE2 where i + 2 < bytes.count && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9):
                    // U+2028 and U+2029 end a line for some readers; escaped so an entry is always one line.
                    appendUnicodeEscape(bytes[i + 2] == 0xA8 ? 0x2028 : 0x2029, to: &out)
                    i += 2
                default:
                    // A Swift String's UTF-8 is always valid, so every other byte is copied as it is.
                    out.append(b)
                }
                i += 1
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// How far from `start` the bytes need no escape, eight at a time (a whole word or none of it: the caller goes
    /// on byte by byte from the result). The tests on a word are exact: a byte below 0x20, or equal to one of the
    /// four others ``isPlain(_:)`` refuses, makes the word's test true, and nothing else does.
    @inline(__always)
    private static func plainRunEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return start }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        /// Whether a byte of `word` is zero.
        @inline(__always) func hasZero(_ word: UInt64) -> Bool { (word &- ones) & ~word & highs != 0 }
        var end = start
        while bytes.count - end >= 8 {
            let word = UnsafeRawPointer(base + end).loadUnaligned(as: UInt64.self)
            let below0x20 = (word &- ones &* 0x20) & ~word & highs != 0
            if below0x20 || hasZero(word ^ (ones &* 0x22)) || hasZero(word ^ (ones &* 0x5C))
                || hasZero(word ^ (ones &* 0x7F)) || hasZero(word ^ (ones &* 0xE2)) {
                break
            }
            end += 8
        }
        return end
    }

    /// Whether a byte of `bytes` is below 0x20 (a control byte, the newline among them), eight bytes at a time: the
    /// word test is exact (true if and only if one of its bytes is below 0x20), the last few bytes one by one.
    static func containsControlByte(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var at = 0
        while bytes.count - at >= 8 {
            let word = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
            if (word &- ones &* 0x20) & ~word & highs != 0 { return true }
            at += 8
        }
        while at < bytes.count {
            if bytes[at] < 0x20 { return true }
            at += 1
        }
        return false
    }

    /// Whether `byte` is copied as it is: printable ASCII other than `"` and `\`, or a UTF-8 byte other than
    /// 0xE2 (the lead byte of U+2028 and U+2029).
    @inline(__always)
    private static func isPlain(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte != 0x22 && byte != 0x5C && byte != 0x7F && byte != 0xE2
    }

    /// Appends `\uXXXX` with lowercase hex digits.
    private static func appendUnicodeEscape(_ value: UInt32, to out: inout [UInt8]) {
        out.append(0x5C)
        out.append(UInt8(ascii: "u"))
        for shift in stride(from: 12, through: 0, by: -4) {
            out.append(hexDigit(UInt8((value >> UInt32(shift)) & 0xF)))
        }
    }

    /// Appends a non-negative integer in decimal.
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        let start = out.count
        var v = value
        while v > 0 {
            out.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        }
        out[start...].reverse()
    }
}

/// A parsed JSON value. Numbers keep their literal text; the log only uses non-negative integers.
enum JSONValue: Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case let (.string(a), .string(b)), let (.number(a), .number(b)): a == b
        case let (.bool(a), .bool(b)): a == b
        case (.null, .null): true
        case let (.array(a), .array(b)): a == b
        case let (.object(a), .object(b)): a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// The member named `key`, for an object.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }
}

/// A strict, bounded JSON parser over bytes. Errors are short phrases with the byte column.
struct JSONReader {
    /// The deepest nesting accepted; the log's entries nest two levels deep.
    static let maxDepth = 8
    /// The most combining marks a key may hold in a row (``CombiningMarks``).
    static let maxMarksInARow = 32
    /// Up to this many keys, an object's keys are checked for duplicates one by one; past it, through a set.
    static let linearKeyCheck = 16

    private let bytes: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one complete JSON document, or returns the reason it is not one.
    static func parse(_ bytes: [UInt8]) -> Result<JSONValue, ParseError> {
        var reader = JSONReader(bytes)
        do throws(ParseError) {
            reader.skipSpace()
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.i == bytes.count else { throw ParseError(reason: "trailing bytes after the JSON value", column: reader.i + 1) }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    /// Why bytes are not JSON, and at which 1-based byte column.
    struct ParseError: Error {
        var reason: String
        var column: Int
    }

    private func fail(_ reason: String) -> ParseError { ParseError(reason: reason, column: i + 1) }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    private mutating func value(depth: Int) throws(ParseError) -> JSONValue {
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected byte 0x\(hex([bytes[i]]))")
        }
    }

    private mutating func literal(_ word: String) throws(ParseError) {
        let w = Array(word.utf8)
        guard bytes.count - i >= w.count, Array(bytes[i..<i + w.count]) == w else { throw fail("invalid literal") }
        i += w.count
    }

    private mutating func number() throws(ParseError) -> String {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ r: inout JSONReader) -> Int {
            let s = r.i
            while r.i < r.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.i]) { r.i += 1 }
            return r.i - s
        }
        guard i < bytes.count else { throw fail("invalid number") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else if digits(&self) == 0 { throw fail("invalid number") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    private mutating func hex4() throws(ParseError) -> UInt32 {
        guard bytes.count - i >= 4, let v = unhex(String(decoding: bytes[i..<i + 4], as: UTF8.self)), v.count == 2 else {
            throw fail("invalid \\u escape")
        }
        i += 4
        return UInt32(v[0]) << 8 | UInt32(v[1])
    }

    private mutating func string() throws(ParseError) -> String {
        i += 1   // opening quote
        // The common case, a string without escapes: found in one pass and decoded from the line's own bytes.
        let start = i
        var end = start
        var high: UInt8 = 0
        while end < bytes.count {
            let b = bytes[end]
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b < 0x20 { break }
            high |= b
            end += 1
        }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            let text = bytes.withUnsafeBufferPointer { all -> String? in
                let slice = UnsafeBufferPointer(rebasing: all[start..<end])
                // ASCII is valid UTF-8 as it is (and decoding it is the cheap, specialized path).
                return high < 0x80 ? String(decoding: slice, as: UTF8.self) : String(validating: slice, as: UTF8.self)
            }
            // Reject invalid UTF-8 instead of repairing it: a repaired string would hash differently from the line.
            guard let text else { throw fail("string is not valid UTF-8") }
            i = end + 1
            return text
        }
        // Escapes (or an error further on): byte by byte, from the start.
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                // Reject invalid UTF-8 instead of repairing it: a repaired string would hash differently from the line.
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if (0xD800..<0xDC00).contains(v) {
                        guard bytes.count - i >= 2, bytes[i] == 0x5C, bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00..<0xE000).contains(lo) else { throw fail("unpaired surrogate") }
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(v) {
                        throw fail("unpaired surrogate")
                    }
                    guard let scalar = Unicode.Scalar(v) else { throw fail("invalid \\u escape") }
                    out += Array(String(scalar).utf8)
                default: throw fail("invalid escape")
                }
            case 0x00..<0x20:
                throw fail("raw control character in string")
            default:
                out.append(b)
                i += 1
            }
        }
    }

    private mutating func array(depth: Int) throws(ParseError) -> JSONValue {
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected , or ]")
        }
    }

    private mutating func object(depth: Int) throws(ParseError) -> JSONValue {
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        var seen: Set<String> = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyColumn = i + 1
            let key = try string()
            // No writer writes a longer key (``AuditRecord/bounded()``), and comparing or hashing a long one is quadratic
            // in a run of combining marks written out of canonical order: a hostile line must not stall a verifier.
            guard key.utf8.count <= AuditRecord.maxFieldBytes else {
                throw ParseError(reason: "a key longer than \(AuditRecord.maxFieldBytes) bytes", column: keyColumn)
            }
            // Nor holds a run of combining marks, which the comparison sorts in quadratic time (no writer writes one: the
            // keys are the log's own names).
            guard CombiningMarks.longestRun(in: key) <= Self.maxMarksInARow else {
                throw ParseError(reason: "a key with more than \(Self.maxMarksInARow) combining marks in a row", column: keyColumn)
            }
            // An entry's objects hold about a dozen keys: compared one by one; a set only for a larger (hostile) one,
            // so a line of many keys costs no more than linear time.
            let duplicate: Bool
            if members.count < Self.linearKeyCheck {
                duplicate = members.contains { $0.key == key }
            } else {
                if seen.isEmpty { seen = Set(members.map(\.key)) }
                duplicate = !seen.insert(key).inserted
            }
            guard !duplicate else { throw ParseError(reason: "duplicate key \"\(key)\"", column: keyColumn) }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected :") }
            i += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected , or }")
        }
    }
}
