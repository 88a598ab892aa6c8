// Reading a file the operator named, with a size bound, from one descriptor, without hanging on a FIFO.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a file that is not a regular one is, by its `st_mode`: "a directory", or "a FIFO, a socket or a device"
/// (one wording for every message that refuses such a file where a regular one is expected).
package func nonRegularFileKind(mode: UInt32) -> String {
    mode & UInt32(S_IFMT) == UInt32(S_IFDIR) ? "a directory" : "a FIFO, a socket or a device"
}

/// Why ``BoundedRead`` could not return a file's bytes. ``reason`` is the middle of a one-line error
/// ("it is a FIFO, a socket or a device, not a regular file"); each caller adds what the file was for and
/// what to do, and maps the failure to its own documented exit code.
package struct BoundedReadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    package enum Kind: Sendable, Hashable {
        /// `open` failed (`errno` says why: no such file, permission denied, ...).
        case cannotOpen
        /// The path names a directory.
        case directory
        /// The path names a FIFO, socket or device where only a regular file is read.
        case notRegular
        /// The file holds more than the bound.
        case tooLarge
        /// `fstat`, `poll` or `read` failed (`errno` says why).
        case readFailed
    }

    /// What went wrong.
    package var kind: Kind
    /// The `errno` of the failed system call (0 when none failed).
    package var errno: Int32
    /// The bound that was applied, in bytes.
    package var limit: Int

    /// Creates an error.
    package init(_ kind: Kind, errno: Int32 = 0, limit: Int) {
        self.kind = kind
        self.errno = errno
        self.limit = limit
    }

    /// Why the file was not read, e.g. `no such file`, `it is larger than 4 MiB`.
    package var reason: String {
        switch kind {
        case .cannotOpen:
            switch errno {
            case ENOENT: return "no such file"
            case EACCES: return "permission denied"
            default: return String(cString: strerror(errno)).lowercased()
            }
        case .directory: return "it is a directory"
        case .notRegular: return "it is a FIFO, a socket or a device, not a regular file"
        case .tooLarge: return "it is larger than \(BoundedRead.describe(limit))"
        case .readFailed: return "read failed: \(String(cString: strerror(errno)).lowercased())"
        }
    }

    /// The ``reason``.
    package var description: String { reason }
}

/// Reads a file the operator named (a grants, policy or model file, a run's `--input-file`, a module) with a
/// size bound, from one descriptor: the path is opened once, the descriptor is examined with `fstat` and read,
/// so a file swapped in after the check is never the one read. The open never waits (`O_NONBLOCK`): a FIFO
/// with no writer, which `String(contentsOfFile:)` would wait on forever, is refused, unless the caller reads
/// streams (``Streams/pipes``), and then it is waited on, read as a stream up to the bound plus one byte.
package enum BoundedRead {
    /// What a path may name besides a regular file.
    package enum Streams: Sendable {
        /// Only a regular file: a FIFO, socket or device is refused unread.
        case refused
        /// A regular file or a pipe (a named FIFO, or `/dev/fd/N` from a shell's `<(...)`), read as a stream.
        case pipes
    }

    /// The bytes of the file at `path`, refusing one larger than `limit` bytes: a regular file by its size
    /// before a byte is read, a pipe once it has given `limit + 1` bytes.
    package static func contents(ofPath path: String, limit: Int, streams: Streams = .refused) throws(BoundedReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw BoundedReadError(.cannotOpen, errno: errno, limit: limit) }
        defer { close(fd) }
        return try contents(ofDescriptor: fd, limit: limit, streams: streams)
    }

    /// The bytes of the open descriptor `fd` (not closed here), by the rules of ``contents(ofPath:limit:streams:)``.
    package static func contents(ofDescriptor fd: Int32, limit: Int, streams: Streams) throws(BoundedReadError) -> [UInt8] {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw BoundedReadError(.readFailed, errno: errno, limit: limit) }
        switch status.st_mode & S_IFMT {
        case S_IFREG:
            guard status.st_size <= limit else { throw BoundedReadError(.tooLarge, limit: limit) }
            return try readUpTo(fd, limit: limit, waiting: false)
        case S_IFDIR:
            throw BoundedReadError(.directory, limit: limit)
        case S_IFIFO where streams == .pipes:
            return try readUpTo(fd, limit: limit, waiting: true)
        default:
            throw BoundedReadError(.notRegular, limit: limit)
        }
    }

    /// Everything on the stream `fd` (standard input: a pipe, a terminal or a redirected file), refusing more
    /// than `limit` bytes once `limit + 1` have arrived. A non-blocking descriptor is waited on with `poll`.
    package static func contents(ofStream fd: Int32, limit: Int) throws(BoundedReadError) -> [UInt8] {
        try readUpTo(fd, limit: limit, waiting: true)
    }

    /// `limit` in the largest whole unit: `4 MiB`, `1 KiB`, `1000 bytes`.
    package static func describe(_ limit: Int) -> String {
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where limit > 0 && limit % (1 << shift) == 0 {
            return "\(limit >> shift) \(unit)"
        }
        return "\(limit) bytes"
    }

    /// Reads until end of file or `limit + 1` bytes. With `waiting`, each read is preceded by a `poll` for input:
    /// a FIFO opened with `O_NONBLOCK` before any writer came reads as end of file, while `poll` waits for the
    /// writer's bytes or its close (Linux reports the hang-up only once a writer has come and gone).
    private static func readUpTo(_ fd: Int32, limit: Int, waiting: Bool) throws(BoundedReadError) -> [UInt8] {
        let cap = limit < Int.max ? limit + 1 : limit
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while out.count < cap {
            if waiting {
                var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if retryingInterrupts({ poll(&request, 1, -1) }) < 0 {
                    throw BoundedReadError(.readFailed, errno: errno, limit: limit)
                }
            }
            let want = min(chunk.count, cap - out.count)
            let n = chunk.withUnsafeMutableBytes { raw in retryingInterrupts { read(fd, raw.baseAddress, want) } }
            if n < 0 {
                if waiting && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
                throw BoundedReadError(.readFailed, errno: errno, limit: limit)
            }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
        throw BoundedReadError(.tooLarge, limit: limit)
    }
}
