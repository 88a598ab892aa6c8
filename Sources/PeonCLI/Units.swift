import ArgumentParser
import PeonMediator

/// A byte size on the command line, with the same rules as sizes in grants files (`4096`, `64KiB`,
/// `256MiB`, `1GiB`, `2MB`), so a value means the same thing in both places.
struct SizeArgument: ExpressibleByArgument, Sendable {
    let bytes: Int

    init?(argument: String) {
        guard let size = ByteSize(parsing: argument) else { return nil }
        bytes = size.bytes
    }
}

/// A duration on the command line, with the same rules as durations in grants files
/// (`500ms`, `30s`, `2m`, `1h`).
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    init?(argument: String) {
        guard let duration = parseGrantDuration(argument) else { return nil }
        self.duration = duration
    }
}
