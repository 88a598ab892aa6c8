import Crypto
import Foundation
@testable import PeonAudit
import PeonSystem
import Testing

/// The small formatters every entry goes through, against independent references: the entry's time against the
/// C library's calendar, hex against `String(format:)`.
@Suite struct EntryFormattingTests {
    /// The time as the C library's calendar gives it (`gmtime_r`), the reference for the arithmetic path.
    static func reference(_ seconds: Int, _ microseconds: Int) -> String {
        var out: [UInt8] = []
        AuditClock.appendFromCalendar(seconds: seconds, microseconds: microseconds, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func formatted(_ seconds: Int, _ microseconds: Int) -> String {
        var out: [UInt8] = Array("x".utf8)
        AuditClock.append(seconds: seconds, microseconds: microseconds, to: &out)
        return String(decoding: out.dropFirst(), as: UTF8.self)
    }

    /// Every day boundary around the leap days and century years that make the calendar hard, the ends of the
    /// range the arithmetic covers, a day's last microsecond, and many seconds drawn at random: the same text
    /// as `gmtime_r` gives. Outside the range (negative, past year 9999, odd microseconds) the calendar answers.
    @Test func entryTimesAreTheCalendarsTextAtEveryDate() {
        var seconds: [Int] = [0, 59, 60, 3_599, 3_600, 86_399, 86_400, 951_782_400, 951_868_799, 951_868_800,
                              4_107_456_000, 4_107_542_400, 253_402_300_799, 1_796_195_172]
        for year in [1972, 1999, 2000, 2024, 2026, 2100, 2400, 9_996] {
            var parts = tm()
            parts.tm_year = Int32(year - 1900)
            parts.tm_mon = 1
            parts.tm_mday = 28
            let feb28 = Int(timegm(&parts))
            seconds += [feb28 - 1, feb28, feb28 + 86_399, feb28 + 86_400, feb28 + 2 * 86_400 - 1, feb28 + 2 * 86_400]
            parts.tm_mon = 11
            parts.tm_mday = 31
            let dec31 = Int(timegm(&parts))
            seconds += [dec31 + 86_399, dec31 + 86_400]
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 { seconds.append(Int.random(in: 0..<253_402_300_800, using: &generator)) }
        for second in seconds {
            for micro in [0, 1, 999_999] {
                #expect(Self.formatted(second, micro) == Self.reference(second, micro), "\(second).\(micro)")
            }
        }
        #expect(Self.formatted(0, 0) == "1970-01-01T00:00:00.000000Z")
        #expect(Self.formatted(951_825_600, 123_456) == "2000-02-29T12:00:00.123456Z")
        for (second, micro) in [(-1, 0), (253_402_300_800, 5), (1_000, -3), (1_000, 1_000_000)] {
            #expect(Self.formatted(second, micro) == Self.reference(second, micro))
        }
    }

    /// Hex of contiguous bytes, of a digest and of a sequence without contiguous storage: the same lowercase text.
    @Test func hexIsTheSameTextFromEveryKindOfBytes() {
        for count in [0, 1, 2, 15, 16, 31, 32, 33, 100] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let expected = bytes.map { String(format: "%02x", $0) }.joined()
            #expect(hex(bytes) == expected)
            #expect(hex(bytes[...]) == expected)
            #expect(hex(bytes.lazy.map { $0 }) == expected, "no contiguous storage")
            var out: [UInt8] = Array("ab".utf8)
            appendHex(bytes, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == "ab" + expected)
            out = Array("cd".utf8)
            bytes.withUnsafeBytes { appendHex(raw: $0, to: &out) }
            #expect(String(decoding: out, as: UTF8.self) == "cd" + expected)
        }
        let digest = SHA256.hash(data: Array("abc".utf8))
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        #expect(digest.withUnsafeBytes { hex(raw: $0) } == expected)
        #expect(hex(digest) == expected)
        #expect(AuditRecord.payloadDetails(of: Array("abc".utf8), prefix: "p") == ["p_sha256": expected, "p_len": "3"])
    }
}
