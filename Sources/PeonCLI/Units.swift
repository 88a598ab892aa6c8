import ArgumentParser
import PeonMediator

/// A byte size on the command line, with the same rules as sizes in grants files (`4096`, `64KiB`,
/// `256MiB`, `1GiB`, `2MB`), so a value means the same thing in both places.
///
/// Parsing never fails here: a malformed or overflowing value is kept as text and refused by
/// ``checked(_:minimum:)`` from the command's `validate()`, so the error says what range is accepted
/// instead of ArgumentParser's generic "invalid value".
struct SizeArgument: ExpressibleByArgument, Sendable {
    /// The text as given.
    let text: String
    /// The size, or `nil` when `text` is not a size that fits in `Int`.
    let bytes: Int?

    init(argument: String) {
        text = argument
        bytes = ByteSize(parsing: argument)?.bytes
    }

    /// The byte count, or a usage error naming `option` when the value is malformed, overflows or is
    /// below `minimum`.
    func checked(_ option: String, minimum: Int = 1) throws -> Int {
        guard let bytes else {
            throw ValidationError("\(option) takes a size such as 64KiB, 16MiB or 1GiB (at most \(Int.max) bytes), got '\(text)'")
        }
        guard bytes >= minimum else {
            throw ValidationError("\(option) must be at least \(ByteSize(bytes: minimum)), got '\(text)'")
        }
        return bytes
    }
}

/// A duration on the command line, with the same rules and range as durations in grants files
/// (`500ms`, `30s`, `2m`, `1h`; at most ``longestGrantDuration``).
///
/// Like ``SizeArgument``, a bad value is refused from `validate()` with the accepted range.
struct DurationArgument: ExpressibleByArgument, Sendable {
    /// The text as given.
    let text: String
    /// The duration, or `nil` when `text` is not a duration in range.
    let duration: Duration?

    init(argument: String) {
        text = argument
        duration = parseGrantDuration(argument)
    }

    /// The duration, or a usage error naming `option`.
    func checked(_ option: String) throws -> Duration {
        guard let duration else { throw ValidationError("\(option) takes \(grantDurationHint), got '\(text)'") }
        return duration
    }
}
