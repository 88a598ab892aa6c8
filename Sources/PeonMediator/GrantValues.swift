/// The small value languages a grants file uses: sizes (`64MiB`), durations (`30s`) and rates (`60/minute`).
///
/// Each parser is strict: no signs, no fractions, no spaces inside a number, no silent overflow. A value
/// that does not parse returns `nil`, and the grants parser turns that into an error naming file, line and key.

/// A byte count written with a binary or decimal unit, e.g. `64MiB`, `2MB`, `512`, `1 KiB`.
package struct ByteSize: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The number of bytes.
    package var bytes: Int

    /// Creates a size of `bytes` bytes.
    package init(bytes: Int) { self.bytes = bytes }

    /// Parses `N`, `N B`, `N KiB|MiB|GiB|TiB` (powers of 1024) or `N KB|MB|GB|TB` (powers of 1000),
    /// with an optional single space before the unit. Units are case-sensitive the way they are
    /// written in IEC 80000-13 except that `kB`/`KB` are both accepted. Returns `nil` on anything
    /// else, including overflow of `Int`.
    package init?(parsing text: String) {
        let (digits, unit) = splitNumber(text)
        guard let count = parseDecimal(digits) else { return nil }
        let multiplier: Int
        switch unit {
        case "", "B": multiplier = 1
        case "KiB": multiplier = 1 << 10
        case "MiB": multiplier = 1 << 20
        case "GiB": multiplier = 1 << 30
        case "TiB": multiplier = 1 << 40
        case "KB", "kB": multiplier = 1_000
        case "MB": multiplier = 1_000_000
        case "GB": multiplier = 1_000_000_000
        case "TB": multiplier = 1_000_000_000_000
        default: return nil
        }
        let (product, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        self.bytes = product
    }

    /// The size in the largest binary unit that divides it exactly, e.g. `2MiB`.
    package var description: String {
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes > 0 {
            if bytes % (1 << shift) == 0 { return "\(bytes >> shift)\(unit)" }
        }
        return "\(bytes)B"
    }

    /// Orders sizes by byte count.
    package static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }
}

/// The longest duration a grants file or the command line may give (`--timeout`, `[limits] timeout`,
/// a grant's `timeout`): one week, `168h`.
///
/// A deadline is computed as "now + duration" and turned into milliseconds for the audit log and the
/// worker's timers; bounding every duration here keeps all of that arithmetic far from overflow, and a
/// run meant to outlive a week has no use for a wall-clock limit that large anyway.
package let longestGrantDuration: Duration = .seconds(168 * 3_600)

/// Parses a wall-clock duration: `N` followed by `ms`, `s`, `m` or `h`, e.g. `30s`, `500ms`, `2m`.
///
/// Returns `nil` for anything else, for zero, and for values longer than ``longestGrantDuration``
/// (which includes every value that would overflow). A bare number is refused, because `30` could mean
/// seconds or milliseconds.
package func parseGrantDuration(_ text: String) -> Duration? {
    let (digits, unit) = splitNumber(text)
    guard let count = parseDecimal(digits), count > 0 else { return nil }
    let milliseconds: Int
    switch unit {
    case "ms": milliseconds = 1
    case "s": milliseconds = 1_000
    case "m", "min": milliseconds = 60_000
    case "h": milliseconds = 3_600_000
    default: return nil
    }
    let (total, overflow) = count.multipliedReportingOverflow(by: milliseconds)
    guard !overflow else { return nil }
    let duration = Duration.milliseconds(total)
    guard duration <= longestGrantDuration else { return nil }
    return duration
}

/// How a rejected duration should be written: the accepted range and examples, for error messages.
package let grantDurationHint = "a duration from 1ms to 168h, e.g. \"500ms\", \"30s\", \"2m\""

/// A rate limit, e.g. `60/minute`: at most `count` calls per `period`, refilled continuously (a token
/// bucket whose capacity is `count`).
package struct Rate: Sendable, Hashable, CustomStringConvertible {
    /// Calls allowed per period, and the bucket's capacity.
    package var count: Int
    /// The period over which `count` tokens refill.
    package var period: Duration

    /// Creates a rate of `count` calls per `period`.
    package init(count: Int, period: Duration) {
        self.count = count
        self.period = period
    }

    /// Parses `N/second`, `N/minute`, `N/hour` or `N/day` (also `N/s`, `N/min`, `N/h`, `N/d`), with
    /// `N` greater than zero. Returns `nil` otherwise.
    package init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = parseDecimal(Substring(parts[0])), count > 0 else { return nil }
        switch parts[1] {
        case "second", "s", "sec": period = .seconds(1)
        case "minute", "min", "m": period = .seconds(60)
        case "hour", "h": period = .seconds(3_600)
        case "day", "d": period = .seconds(86_400)
        default: return nil
        }
        self.count = count
    }

    /// `N/Ts` with the period in seconds.
    package var description: String { "\(count)/\(period.components.seconds)s" }
}

/// Splits `64MiB` or `64 MiB` into the digit run (underscores allowed between digits, as TOML
/// integers allow) and the unit that follows.
private func splitNumber(_ text: String) -> (Substring, Substring) {
    let end = text.firstIndex { !($0.isASCII && ($0.isNumber || $0 == "_")) } ?? text.endIndex
    var unit = text[end...]
    if unit.first == " " { unit = unit.dropFirst() }
    return (text[..<end], unit)
}

/// A non-negative decimal integer with optional `_` separators between digits; `nil` if empty,
/// malformed or larger than `Int.max`.
private func parseDecimal(_ digits: Substring) -> Int? {
    guard let first = digits.first, first != "_", digits.last != "_", !digits.contains("__") else { return nil }
    return Int(digits.filter { $0 != "_" })
}
