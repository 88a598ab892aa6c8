#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import PeonSystem

/// The verdict recorded for a host call.
public enum AuditDecision: String, Sendable, Equatable, CaseIterable {
    /// The call was permitted and will run.
    case allow
    /// The call was refused.
    case deny

    /// The decision spelled byte for byte `allow` or `deny`; `nil` otherwise. Unlike `init(rawValue:)`, which compares
    /// as `String` does (canonical equivalence, quadratic in a run of combining marks), a hostile log line's value
    /// costs no more than its length.
    public init?(exactly text: String) {
        guard let match = Self.allCases.first(where: { text.utf8.elementsEqual($0.rawValue.utf8) }) else { return nil }
        self = match
    }
}

/// What a caller asks the log to record: one decision, outcome or lifecycle event.
///
/// The log adds `seq`, `time` and `prev`. Record payloads by hash and length in ``details``
/// (`payload_sha256`, `payload_len`), never by content: the log is readable by anyone who audits it.
///
/// ```swift
/// let seq = try log.append(AuditRecord(run: runID, module: "report.wasm", moduleSHA256: digest,
///     call: "fs.write", resource: "fs:/srv/out.txt", decision: .allow, reason: "grant fs-out",
///     policy: "v3", details: ["payload_sha256": sha, "payload_len": "42"]), durable: true)
/// ```
public struct AuditRecord: Sendable, Equatable {
    /// The id of the module run this record belongs to.
    public var run: String
    /// The module's name (as given on the command line or in the agent manifest).
    public var module: String
    /// Lowercase hex SHA-256 of the module's bytes.
    public var moduleSHA256: String
    /// The host call (`fs.read`, `http.request`, ...) or lifecycle event (`run.start`, `run.end`, `log.recovered`).
    public var call: String
    /// The resource the call touches, prefixed by its kind (`fs:/srv/reports/q1.txt`, `http:GET https://...`).
    public var resource: String
    /// The decision; nil for lifecycle and outcome entries that decide nothing.
    public var decision: AuditDecision?
    /// The deciding rule, or why the call was refused.
    public var reason: String
    /// The policy version that decided.
    public var policy: String
    /// For outcome entries: `ok` or an error code. Nil for decisions.
    public var outcome: String?
    /// Extra facts as strings (`payload_sha256`, `payload_len`, `approver`, `sql_sha256`), serialized in key order.
    public var details: [String: String]

    /// Creates a record; every field but the five identifying ones defaults to empty.
    public init(run: String, module: String, moduleSHA256: String, call: String, resource: String,
                decision: AuditDecision? = nil, reason: String = "", policy: String = "", outcome: String? = nil,
                details: [String: String] = [:]) {
        self.run = run
        self.module = module
        self.moduleSHA256 = moduleSHA256
        self.call = call
        self.resource = resource
        self.decision = decision
        self.reason = reason
        self.policy = policy
        self.outcome = outcome
        self.details = details
    }
}

/// One entry of the log as written: a record plus the fields the log adds.
///
/// Serialized as one JSON object per line with keys in this fixed order: `seq`, `time`, `run`, `module`,
/// `module_sha256`, `call`, `resource`, `decision`, `reason`, `policy`, `outcome`, `details`, `prev`.
/// `decision` and `outcome` are `null` when absent; `details` keys are sorted by their UTF-8 bytes.
public struct AuditEntry: Sendable, Equatable {
    /// The entry's 0-based position in the log (its RFC 6962 leaf index).
    public var seq: UInt64
    /// When the entry was appended, RFC 3339 UTC with microseconds (`2026-11-21T20:05:22.123456Z`).
    public var time: String
    /// The caller's record.
    public var record: AuditRecord
    /// Lowercase hex leaf hash of the previous entry; 64 zeros for `seq` 0.
    public var prev: String

    /// Creates an entry.
    public init(seq: UInt64, time: String, record: AuditRecord, prev: String) {
        self.seq = seq
        self.time = time
        self.record = record
        self.prev = prev
    }

    /// The `prev` of entry 0.
    public static let zeroPrev = String(repeating: "0", count: 64)

    /// The exact line bytes (without newline): the leaf of the Merkle tree.
    public func serialized() -> [UInt8] {
        let fields = Self.serializedFields(of: record)
        var out: [UInt8] = []
        out.reserveCapacity(fields.count + 160)
        Self.appendHead(seq: seq, to: &out)
        JSONWriter.appendString(time, to: &out)
        out += fields
        Self.appendTail(prevHex: Array(prev.utf8), to: &out)
        return out
    }

    /// `{"seq":N,"time":` — what precedes the time literal.
    static func appendHead(seq: UInt64, to out: inout [UInt8]) {
        appendStatic(#"{"seq":"#, to: &out)
        JSONWriter.appendDecimal(seq, to: &out)
        appendStatic(#","time":"#, to: &out)
    }

    /// Whether `line` begins `{"seq":SEQ,"time":"` and ends `,"prev":"HEX(prev)"}` with no control byte in between:
    /// what a writer of this format writes for entry `seq` after the line whose leaf hash is `prev`. A cheap check
    /// for lines another process appended (a full parse of each would cost every writer more than its own append).
    static func isChainedLine(_ line: [UInt8], seq: UInt64, prev: [UInt8]) -> Bool {
        line.withUnsafeBufferPointer { isChainedLine($0, seq: seq, prev: prev) }
    }

    /// ``isChainedLine(_:seq:prev:)`` on bytes in place (a line of the reader's buffer): compared piece by piece,
    /// nothing copied or built.
    static func isChainedLine(_ line: UnsafeBufferPointer<UInt8>, seq: UInt64, prev: [UInt8]) -> Bool {
        let headOpen: StaticString = #"{"seq":"#
        let headClose: StaticString = #","time":"#
        let tailOpen: StaticString = #","prev":""#
        let tailClose: StaticString = #""}"#
        var digits = 1
        var rest = seq / 10
        while rest > 0 { digits += 1; rest /= 10 }
        let head = headOpen.utf8CodeUnitCount + digits + headClose.utf8CodeUnitCount
        let tail = tailOpen.utf8CodeUnitCount + 2 * prev.count + tailClose.utf8CodeUnitCount
        guard line.count > head + tail else { return false }
        func matches(_ text: StaticString, at offset: Int) -> Bool {
            let count = text.utf8CodeUnitCount
            return UnsafeBufferPointer(start: text.utf8Start, count: count).elementsEqual(line[offset..<offset + count])
        }
        // The head: `{"seq":`, the decimal digits of `seq` (checked from the last), `,"time":`.
        guard matches(headOpen, at: 0) else { return false }
        var value = seq
        var at = headOpen.utf8CodeUnitCount + digits
        while at > headOpen.utf8CodeUnitCount {
            at -= 1
            guard line[at] == UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value % 10) else { return false }
            value /= 10
        }
        guard matches(headClose, at: headOpen.utf8CodeUnitCount + digits) else { return false }
        // The tail: `,"prev":"`, the lowercase hex of `prev`, `"}`.
        let tailStart = line.count - tail
        guard matches(tailOpen, at: tailStart), matches(tailClose, at: line.count - tailClose.utf8CodeUnitCount) else {
            return false
        }
        var hexAt = tailStart + tailOpen.utf8CodeUnitCount
        for byte in prev {
            guard line[hexAt] == hexDigit(byte >> 4), line[hexAt + 1] == hexDigit(byte & 0x0F) else {
                return false
            }
            hexAt += 2
        }
        return !JSONWriter.containsControlByte(line)
    }

    /// `,"prev":"…"}` — the end of the line, from the previous leaf hash as hex text.
    static func appendTail(prevHex: [UInt8], to out: inout [UInt8]) {
        out += #","prev":""#.utf8
        out += prevHex
        out += #""}"#.utf8
    }

    /// `,"prev":"…"}` — the end of the line, from the raw 32-byte previous leaf hash.
    static func appendTail(prev: [UInt8], to out: inout [UInt8]) {
        appendStatic(#","prev":""#, to: &out)
        appendHex(prev, to: &out)
        appendStatic(#""}"#, to: &out)
    }

    /// The record's part of the line, `,"run":…,"details":{…}`: everything the log does not add. It depends on the
    /// record alone, so ``AuditLog`` serializes it before taking its lock.
    ///
    /// Written in one pass into one buffer sized up front (the text plus room for a few escapes), with the keys as
    /// static bytes and the details visited in key order through a stack buffer of dictionary positions: no key
    /// array, no lookups, no intermediate strings.
    static func serializedFields(of record: AuditRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(estimatedFieldBytes(of: record))
        appendStatic(#","run":"#, to: &out); JSONWriter.appendString(record.run, to: &out)
        appendStatic(#","module":"#, to: &out); JSONWriter.appendString(record.module, to: &out)
        appendStatic(#","module_sha256":"#, to: &out); JSONWriter.appendString(record.moduleSHA256, to: &out)
        appendStatic(#","call":"#, to: &out); JSONWriter.appendString(record.call, to: &out)
        appendStatic(#","resource":"#, to: &out); JSONWriter.appendString(record.resource, to: &out)
        appendStatic(#","decision":"#, to: &out)
        switch record.decision {
        case .allow?: appendStatic(#""allow""#, to: &out)
        case .deny?: appendStatic(#""deny""#, to: &out)
        case nil: appendStatic("null", to: &out)
        }
        appendStatic(#","reason":"#, to: &out); JSONWriter.appendString(record.reason, to: &out)
        appendStatic(#","policy":"#, to: &out); JSONWriter.appendString(record.policy, to: &out)
        appendStatic(#","outcome":"#, to: &out)
        if let outcome = record.outcome { JSONWriter.appendString(outcome, to: &out) } else { appendStatic("null", to: &out) }
        appendStatic(#","details":{"#, to: &out)
        appendDetails(record.details, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The details as `"key":"value"` pairs, keys sorted by their UTF-8 bytes.
    private static func appendDetails(_ details: [String: String], to out: inout [UInt8]) {
        let count = details.count
        if count == 0 { return }
        if count == 1, let only = details.first {
            appendPair(only.key, only.value, to: &out)
            return
        }
        withUnsafeTemporaryAllocation(of: Dictionary<String, String>.Index.self, capacity: count) { positions in
            var filled = 0
            var index = details.startIndex
            while index != details.endIndex, filled < count {
                positions.initializeElement(at: filled, to: index)
                filled += 1
                index = details.index(after: index)
            }
            var sorted = UnsafeMutableBufferPointer(rebasing: positions[..<filled])
            sorted.sort { details[$0].key.utf8.lexicographicallyPrecedes(details[$1].key.utf8) }
            for (offset, position) in sorted.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                let member = details[position]
                appendPair(member.key, member.value, to: &out)
            }
            _ = sorted.deinitialize()
        }
    }

    @inline(__always)
    private static func appendPair(_ key: String, _ value: String, to out: inout [UInt8]) {
        JSONWriter.appendString(key, to: &out)
        out.append(UInt8(ascii: ":"))
        JSONWriter.appendString(value, to: &out)
    }

    /// Bytes a record's fields take unescaped, plus the fixed keys and room for some escapes.
    private static func estimatedFieldBytes(of record: AuditRecord) -> Int {
        var total = 160 + record.run.utf8.count + record.module.utf8.count + record.moduleSHA256.utf8.count
            + record.call.utf8.count + record.resource.utf8.count + record.reason.utf8.count + record.policy.utf8.count
            + (record.outcome?.utf8.count ?? 4)
        for (key, value) in record.details { total += key.utf8.count + value.utf8.count + 6 }
        return total + total / 8
    }

    /// Appends the bytes of a literal.
    @inline(__always)
    static func appendStatic(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Parses one line (without newline) into an entry, or explains in a short phrase why it is not one.
    ///
    /// Field types are checked strictly; unknown extra fields are allowed (they are covered by the leaf hash).
    public static func parse(_ line: [UInt8]) -> Result<AuditEntry, EntryParseError> {
        let value: JSONValue
        switch JSONReader.parse(line) {
        case .success(let v): value = v
        case .failure(let e): return .failure(EntryParseError(reason: "not JSON: \(e.reason) at column \(e.column)"))
        }
        guard case .object = value else { return .failure(EntryParseError(reason: "not a JSON object")) }
        func string(_ k: String) -> Result<String, EntryParseError> {
            guard case .string(let s)? = value[k] else {
                return .failure(EntryParseError(reason: value[k] == nil ? "field \"\(k)\" is missing" : "field \"\(k)\" is not a string"))
            }
            return .success(s)
        }
        func optionalString(_ k: String) -> Result<String?, EntryParseError> {
            switch value[k] {
            case .string(let s)?: .success(s)
            case .null?: .success(nil)
            case nil: .failure(EntryParseError(reason: "field \"\(k)\" is missing"))
            default: .failure(EntryParseError(reason: "field \"\(k)\" is not a string or null"))
            }
        }
        do {
            guard case .number(let seqText)? = value["seq"] else {
                throw EntryParseError(reason: value["seq"] == nil ? "field \"seq\" is missing" : "field \"seq\" is not a number")
            }
            guard let seq = UInt64(seqText), String(seq) == seqText else {
                throw EntryParseError(reason: "field \"seq\" is not a non-negative integer")
            }
            let decisionText = try optionalString("decision").get()
            var decision: AuditDecision?
            if let decisionText {
                guard let d = AuditDecision(exactly: decisionText) else {
                    // At most 16 scalars of it: the value is the log's, as long as a line.
                    let shown = String(String.UnicodeScalarView(decisionText.unicodeScalars.prefix(16)))
                        + (decisionText.unicodeScalars.count > 16 ? "…" : "")
                    throw EntryParseError(reason: "field \"decision\" is \"\(shown)\", expected allow, deny or null")
                }
                decision = d
            }
            var details: [String: String] = [:]
            switch value["details"] {
            case nil: break
            case .object(let members)?:
                for m in members {
                    guard case .string(let s) = m.value else { throw EntryParseError(reason: "details.\(m.key) is not a string") }
                    details[m.key] = s
                }
            default: throw EntryParseError(reason: "field \"details\" is not an object")
            }
            let prev = try string("prev").get()
            guard prev.utf8.count == 64, isHex(prev) else {
                throw EntryParseError(reason: "field \"prev\" is not 64 hex digits")
            }
            let record = AuditRecord(
                run: try string("run").get(), module: try string("module").get(),
                moduleSHA256: try string("module_sha256").get(), call: try string("call").get(),
                resource: try string("resource").get(), decision: decision, reason: try string("reason").get(),
                policy: try string("policy").get(), outcome: try optionalString("outcome").get(), details: details)
            return .success(AuditEntry(seq: seq, time: try string("time").get(), record: record, prev: prev))
        } catch let e as EntryParseError {
            return .failure(e)
        } catch {
            return .failure(EntryParseError(reason: "\(error)"))
        }
    }
}

/// Whether every byte of `text` is a hex digit, of either case (what `unhex(text) != nil` says of text of even
/// length, without decoding it).
func isHex(_ text: String) -> Bool {
    var text = text
    return text.withUTF8 { bytes in
        bytes.allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
        }
    }
}

/// Why a line is not an entry.
public struct EntryParseError: Error, Sendable, Equatable {
    /// A short phrase such as `field "seq" is missing`.
    public var reason: String
}

/// RFC 3339 UTC time with microseconds, from the system's real-time clock.
enum AuditClock {
    /// The current time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    static func now() -> String {
        var out: [UInt8] = []
        appendNow(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the current time, formatted as ``now()`` formats it, without building a `String`.
    static func appendNow(to out: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        append(seconds: Int(ts.tv_sec), microseconds: Int(ts.tv_nsec) / 1000, to: &out)
    }

    static func format(seconds: Int, microseconds: Int) -> String {
        var out: [UInt8] = []
        append(seconds: seconds, microseconds: microseconds, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The first second of year 10000, past which the four-digit year of the fast path no longer holds.
    private static let endOfYear9999 = 253_402_300_800

    /// Appends `seconds` since 1970 (UTC) and `microseconds` as ``now()`` formats them. For years 1970–9999 (every
    /// clock reading) the date is worked out by arithmetic (days to a proleptic Gregorian date, as `gmtime_r`
    /// does) into one 27-byte field; anything else takes ``appendFromCalendar(seconds:microseconds:to:)``.
    static func append(seconds: Int, microseconds: Int, to out: inout [UInt8]) {
        guard seconds >= 0, seconds < endOfYear9999, microseconds >= 0, microseconds < 1_000_000 else {
            appendFromCalendar(seconds: seconds, microseconds: microseconds, to: &out)
            return
        }
        let days = seconds / 86_400
        let secondOfDay = seconds - days * 86_400
        // Days since 1970-01-01 to year, month and day, counted in 400-year eras that begin on 0000-03-01.
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 27) { field in
            func put(_ value: Int, width: Int, at start: Int, then separator: UInt8) {
                var v = value
                for i in stride(from: start + width - 1, through: start, by: -1) {
                    field[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
                    v /= 10
                }
                field[start + width] = separator
            }
            put(year, width: 4, at: 0, then: UInt8(ascii: "-"))
            put(month, width: 2, at: 5, then: UInt8(ascii: "-"))
            put(day, width: 2, at: 8, then: UInt8(ascii: "T"))
            put(secondOfDay / 3_600, width: 2, at: 11, then: UInt8(ascii: ":"))
            put(secondOfDay / 60 % 60, width: 2, at: 14, then: UInt8(ascii: ":"))
            put(secondOfDay % 60, width: 2, at: 17, then: UInt8(ascii: "."))
            put(microseconds, width: 6, at: 20, then: UInt8(ascii: "Z"))
            out.append(contentsOf: UnsafeBufferPointer(field))
        }
    }

    /// ``append(seconds:microseconds:to:)`` through the C library's calendar (`gmtime_r`), for any value.
    static func appendFromCalendar(seconds: Int, microseconds: Int, to out: inout [UInt8]) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        // Fixed-width decimal fields written in place (years past 9999 keep only their last four digits).
        func digits(_ value: Int, _ width: Int, then separator: UInt8) {
            let start = out.count
            for _ in 0..<width { out.append(UInt8(ascii: "0")) }
            var v = max(0, value)
            var i = out.count - 1
            while v > 0 && i >= start {
                out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                i -= 1
            }
            out.append(separator)
        }
        digits(Int(parts.tm_year) + 1900, 4, then: UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2, then: UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2, then: UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2, then: UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2, then: UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2, then: UInt8(ascii: "."))
        digits(microseconds, 6, then: UInt8(ascii: "Z"))
    }
}

extension AuditRecord {
    /// `PREFIX_sha256` and `PREFIX_len` of a payload, for ``details``: how an entry identifies content (a body, a
    /// file, SQL text) that must not appear in a log anyone who audits can read.
    public static func payloadDetails(of bytes: [UInt8], prefix: String) -> [String: String] {
        // Most payloads of a call are empty (no stdin, no stderr); their digest is the same every time.
        let digest = bytes.isEmpty ? emptySHA256 : SHA256.hash(data: bytes).withUnsafeBytes { hex(raw: $0) }
        return [prefix + "_sha256": digest, prefix + "_len": String(bytes.count)]
    }

    /// The SHA-256 of no bytes, lowercase hex (computed once, so it is the same function's answer).
    static let emptySHA256 = hex(SHA256.hash(data: [UInt8]()))
}

extension AuditRecord {
    /// The longest value (in UTF-8 bytes) a field keeps as it is; longer values are recorded by
    /// ``boundedValue(_:)``.
    public static let maxFieldBytes = 4096
    /// How many leading bytes of an oversized value an entry keeps, so a reader sees what it was about.
    public static let oversizedPrefixBytes = 256

    /// A value as the log records it: unchanged up to ``maxFieldBytes``; past that, its first
    /// ``oversizedPrefixBytes`` bytes (cut at a character boundary), then `…[sha256:HEX len:N]` naming
    /// the whole value. So every decision gets its entry whatever the size of what the guest sent
    /// (a 1.2 MB exec argument, 60 header names of 20 kB), and the entry still identifies it exactly.
    public static func boundedValue(_ value: String) -> String {
        let count = value.utf8.count
        guard count > maxFieldBytes else { return value }
        let bytes = Array(value.utf8)
        // Cut where no character continues, so the prefix stays valid UTF-8.
        var cut = min(oversizedPrefixBytes, bytes.count)
        while cut > 0, cut < bytes.count, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        let digest = hex(SHA256.hash(data: bytes))
        return String(decoding: bytes[..<cut], as: UTF8.self) + "…[sha256:\(digest) len:\(count)]"
    }

    /// Whether some field or detail is longer than ``maxFieldBytes`` (so ``bounded()`` changes it).
    var exceedsBounds: Bool {
        func isLarge(_ text: String) -> Bool { text.utf8.count > Self.maxFieldBytes }
        return isLarge(run) || isLarge(module) || isLarge(moduleSHA256) || isLarge(call) || isLarge(resource)
            || isLarge(reason) || isLarge(policy) || (outcome.map(isLarge) ?? false)
            || details.contains { isLarge($0.key) || isLarge($0.value) }
    }

    /// This record with every field and detail value bounded by ``boundedValue(_:)``.
    public func bounded() -> AuditRecord {
        guard exceedsBounds else { return self }
        var copy = self
        copy.run = Self.boundedValue(run)
        copy.module = Self.boundedValue(module)
        copy.moduleSHA256 = Self.boundedValue(moduleSHA256)
        copy.call = Self.boundedValue(call)
        copy.resource = Self.boundedValue(resource)
        copy.reason = Self.boundedValue(reason)
        copy.policy = Self.boundedValue(policy)
        copy.outcome = outcome.map(Self.boundedValue)
        var bounded: [String: String] = [:]
        for (key, value) in details { bounded[Self.boundedValue(key)] = Self.boundedValue(value) }
        copy.details = bounded
        return copy
    }
}
