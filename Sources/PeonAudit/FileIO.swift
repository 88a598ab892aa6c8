#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonSystem

/// The few POSIX file operations the log needs, each turning errno into an ``AuditError`` that names the path.
package enum FileIO {
    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func ioError(_ path: String, _ what: String) -> AuditError {
        AuditError(.io, "\(path): \(what): \(errnoText())")
    }

    /// The permission bits of a file, or nil if it does not exist (or cannot be examined).
    static func mode(path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode) & 0o7777
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// `mkdir -p` of the directory containing `path`, new directories with mode 0700.
    static func createDirectories(parentOf path: String) throws(AuditError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/").dropLast() {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST { throw ioError(current, "cannot create directory") }
        }
    }

    enum CreateResult { case created, exists, failed(AuditError) }

    /// Creates a new file with exactly `contents` and `mode`, fsynced, failing with `.exists` if it is already there.
    static func createExclusive(path: String, contents: [UInt8], mode: mode_t) -> CreateResult {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { return errno == EEXIST ? .exists : .failed(ioError(path, "cannot create")) }
        defer { close(fd) }
        do throws(AuditError) {
            try writeAll(fd: fd, contents[...], path: path)
            guard fsync(fd) == 0 else { return .failed(ioError(path, "fsync failed")) }
        } catch {
            return .failed(error)
        }
        return .created
    }

    /// Opens an existing regular file for reading. Refuses FIFOs, devices and directories, whose reads could block
    /// forever or never end (a hostile "log" such as `/dev/zero`).
    package static func openRegularForReading(path: String) throws(AuditError) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            // The commonest mistake, a mistyped path, says so and what to do rather than quote strerror.
            if errno == ENOENT { throw AuditError(.io, "\(path): no such file; check the path") }
            throw ioError(path, "cannot open")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = ioError(path, "cannot examine")
            close(fd)
            throw e
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            let what = nonRegularFileKind(mode: UInt32(st.st_mode))
            throw AuditError(.io, "\(path): not a regular file (it is \(what)); name the file itself")
        }
        return fd
    }

    /// Why the file open at `fd` is not an audit log, judged by its first line, or `nil` when that line is an entry
    /// with `seq` 0 (or the file is empty, or its first line is cut short: a writer's crash, not another kind of
    /// file). Read with `pread`, so the descriptor's offset is unchanged. For a log found without its checkpoint:
    /// "it was deleted" is the story only when the file is a log at all (a grants file given to `--audit` is not).
    package static func notALogReason(fd: Int32, path: String) -> String? {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var offset: off_t = 0
        while line.count <= AuditLog.maxLineBytes {
            let count = buffer.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress, raw.count, offset) }
            guard count > 0 else { return nil }
            let chunk = buffer[0..<count]
            if let end = chunk.firstIndex(of: 0x0A) {
                line.append(contentsOf: chunk[..<end])
                switch AuditEntry.parse(line) {
                case .success(let entry): return entry.seq == 0 ? nil : "its first line is entry seq \(entry.seq), not seq 0"
                case .failure(let error): return "its first line is not an audit entry (\(error.reason))"
                }
            }
            line.append(contentsOf: chunk)
            offset += off_t(count)
        }
        return "its first line is longer than \(AuditLog.maxLineBytes) bytes"
    }

    /// Reads a whole regular file, refusing one larger than `limit` bytes by its size, unread, and a FIFO,
    /// device or directory without waiting on it (``BoundedRead``).
    package static func readAll(path: String, limit: Int) throws(AuditError) -> [UInt8] {
        do throws(BoundedReadError) {
            return try BoundedRead.contents(ofPath: path, limit: limit)
        } catch {
            switch error.kind {
            case .tooLarge: throw AuditError(.io, "\(path): larger than \(limit) bytes; is this the right file?")
            case .directory: throw AuditError(.io, "\(path): not a regular file (it is a directory); name the file itself")
            case .notRegular: throw AuditError(.io, "\(path): not a regular file (it is a FIFO, a socket or a device); name the file itself")
            case .cannotOpen: throw AuditError(.io, "\(path): cannot open: \(String(cString: strerror(error.errno)))")
            case .readFailed: throw AuditError(.io, "\(path): read failed: \(String(cString: strerror(error.errno)))")
            }
        }
    }

    /// Writes every byte, retrying short writes and EINTR.
    static func writeAll(fd: Int32, _ bytes: ArraySlice<UInt8>, path: String) throws(AuditError) {
        let failure = writeFully(fd, bytes)
        if failure != 0 {
            errno = failure
            throw ioError(path, "write failed")
        }
    }

    /// Replaces `path` atomically: write a temporary file beside it, fsync, rename over, fsync the directory.
    static func replaceAtomically(path: String, contents: [UInt8], mode: mode_t = 0o644,
                                  syncingDirectory: Bool = true) throws(AuditError) {
        try StagedFile(replacing: path, contents: contents, mode: mode).commit()
        if syncingDirectory { syncDirectory(of: path) }
    }

    /// Takes (`LOCK_SH` or `LOCK_EX`) or releases (`LOCK_UN`) the `flock` on `fd`, waiting for it and retrying EINTR.
    static func flockWaiting(_ fd: Int32, _ operation: Int32, path: String) throws(AuditError) {
        if retryingInterrupts({ flock(fd, operation) }) != 0 {
            throw ioError(path, "cannot lock the audit log")
        }
    }

    /// Fsyncs the directory holding `path` so a new or renamed entry survives a machine crash (best effort).
    static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.lastIndex(of: "/") { dir = slash == path.startIndex ? "/" : String(path[..<slash]) } else { dir = "." }
        let fd = open(dir, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}

/// Reads a file line by line with bounded memory: a line longer than `maxLine` bytes (without its newline) is reported
/// as ``Item/tooLong`` wherever it starts, not buffered whole.
///
/// ``nextSpan()`` hands out each line in place (a range of the reader's buffer, read with ``withBytes(_:_:)``), so a
/// caller that only hashes or checks a line copies nothing; ``next()`` copies each line into an array of its own.
package struct LineReader {
    /// What ``next()`` returns.
    package enum Item {
        /// A complete line (without its newline).
        case line([UInt8])
        /// A line longer than the limit; its bytes were skipped.
        case tooLong
        /// The final bytes after the last newline (a torn tail).
        case partial([UInt8])
    }

    /// What ``nextSpan()`` returns: as ``Item``, with the bytes as a range of the reader's buffer, valid until the
    /// next call.
    package enum Span {
        /// A complete line (without its newline).
        case line(Range<Int>)
        /// A line longer than the limit; its bytes were skipped.
        case tooLong
        /// The final bytes after the last newline (a torn tail).
        case partial(Range<Int>)
    }

    let fd: Int32
    let path: String
    let maxLine: Int
    /// The file offset of the next read (reads use `pread`, so the descriptor's own offset is never moved).
    private var offset: Int64
    /// Where reading stops (a snapshot of the file size), or nil to read to the end of the file.
    private let end: Int64?
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private var skipping = false

    /// The most bytes one `pread` asks for.
    private static let readSize = 1 << 16

    /// Reads the bytes of `fd` from `offset` up to `end` (nil: the end of the file).
    package init(fd: Int32, path: String, maxLine: Int, offset: Int64 = 0, end: Int64? = nil) {
        self.fd = fd
        self.path = path
        self.maxLine = maxLine
        self.offset = offset
        self.end = end
    }

    /// The next item, or nil at the end of the file.
    package mutating func next() throws(AuditError) -> Item? {
        guard let span = try nextSpan() else { return nil }
        switch span {
        case .line(let range): return .line(Array(buffer[range]))
        case .tooLong: return .tooLong
        case .partial(let range): return .partial(Array(buffer[range]))
        }
    }

    /// Calls `body` with the bytes of a range ``nextSpan()`` returned (before the next call to it).
    package func withBytes<R, E: Error>(
        _ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R
    ) throws(E) -> R {
        try buffer.withUnsafeBufferPointer { (all) throws(E) -> R in try body(UnsafeBufferPointer(rebasing: all[range])) }
    }

    /// The next item as a range of the buffer, or nil at the end of the file.
    package mutating func nextSpan() throws(AuditError) -> Span? {
        while true {
            if let nl = newline(from: start) {
                // The length is checked here too: the check below runs only between reads, so without this a line
                // up to a read's size longer than `maxLine` came back whole or not depending on where it began in a
                // read (two readers of one file, starting at different offsets, disagreed about the same line).
                let lineStart = start
                start = nl + 1
                if skipping || nl - lineStart > maxLine { skipping = false; return .tooLong }
                return .line(lineStart..<nl)
            }
            if buffer.count - start > maxLine {
                // Drop what we have of this over-long line and keep scanning for its end.
                skipping = true
                buffer.removeAll(keepingCapacity: true)
                start = 0
            }
            if eof {
                if skipping {
                    skipping = false
                    buffer.removeAll(keepingCapacity: true)
                    start = 0
                    return .tooLong
                }
                guard start < buffer.count else { return nil }
                let tail = start..<buffer.count
                start = buffer.count
                return .partial(tail)
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            var want = Self.readSize
            if let end {
                guard end > offset else { eof = true; continue }
                want = Int(min(Int64(want), end - offset))
            }
            // Read straight into the buffer's end (no chunk array per read).
            let filled = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: want))
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return retryingInterrupts { pread(fd, base + filled, want, off_t(offset)) }
            }
            buffer.removeLast(want - max(0, min(n, want)))
            if n < 0 { throw FileIO.ioError(path, "read failed") }
            if n == 0 {
                eof = true
            } else {
                offset += Int64(n)
            }
        }
    }

    /// The index of the first newline at or after `index`, if the buffer holds one.
    private func newline(from index: Int) -> Int? {
        buffer.withUnsafeBufferPointer { bytes -> Int? in
            guard index < bytes.count, let base = bytes.baseAddress,
                  let found = memchr(base + index, 0x0A, bytes.count - index) else { return nil }
            return UnsafeRawPointer(found) - UnsafeRawPointer(base)
        }
    }
}

/// The new contents of a file, written and fsynced beside it, waiting to replace it.
///
/// Staging does the slow part (the write and its fsync) with no lock held; ``commit()`` is a `rename`, cheap enough
/// to run under the locks that decide whether the file should be replaced at all. A staged file that is not
/// committed must be ``discard()``ed.
///
/// Where the file system can (`O_TMPFILE`, and `/proc` to link it by), the staged file has no name until
/// ``commit()`` links it under one and renames it over `path` at once: a process killed while it writes, fsyncs or
/// waits for the locks (a run stopped mid-checkpoint) leaves nothing beside the log. Elsewhere it waits under a
/// name of its own, which such a kill leaves behind.
struct StagedFile: ~Copyable {
    /// The file it replaces.
    let path: String
    /// Where it waits, or is linked just before it is renamed over `path`.
    let temp: String
    /// The unnamed file, while it has no name; -1 once it has one (or never lacked one).
    private var unnamed: Int32
    /// What an unnamed file holds, written again under `temp` if it cannot be linked there (``commit()``).
    private let contents: [UInt8]
    private let mode: mode_t
    private let durable: Bool

    /// Writes `contents` (with `mode`) to a new file beside `path` and fsyncs it (unless `durable` is false: for a
    /// file whose loss costs time, not data).
    init(replacing path: String, contents: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws(AuditError) {
        // A name of its own, created exclusively: a file, hard link or symbolic link someone put at a fixed
        // `PATH.tmp` is never opened (a hard link's target would be overwritten) and cannot block the write.
        let temp = path + ".tmp.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
        let unnamed = Self.openUnnamed(beside: path, mode: mode)
        if unnamed >= 0 {
            do throws(AuditError) {
                try Self.fill(unnamed, contents, durable: durable, path: temp)
            } catch {
                close(unnamed)
                throw error
            }
        } else {
            try Self.writeNamed(temp, contents, mode: mode, durable: durable)
        }
        self.path = path
        self.temp = temp
        self.unnamed = unnamed
        self.contents = unnamed >= 0 ? contents : []
        self.mode = mode
        self.durable = durable
    }

    /// Writes `contents` to the open file `fd` and fsyncs it (when `durable`).
    private static func fill(_ fd: Int32, _ contents: [UInt8], durable: Bool, path: String) throws(AuditError) {
        try FileIO.writeAll(fd: fd, contents[...], path: path)
        guard !durable || fsync(fd) == 0 else { throw FileIO.ioError(path, "fsync failed") }
    }

    /// Creates `temp` exclusively and writes `contents` there; removes it again on failure.
    private static func writeNamed(_ temp: String, _ contents: [UInt8], mode: mode_t, durable: Bool) throws(AuditError) {
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw FileIO.ioError(temp, "cannot create") }
        do throws(AuditError) {
            try fill(fd, contents, durable: durable, path: temp)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
    }

    /// An unnamed file (`O_TMPFILE`) in `path`'s folder, or -1 where the file system or the system cannot make one
    /// or could not give it a name later (no `/proc`).
    private static func openUnnamed(beside path: String, mode: mode_t) -> Int32 {
        #if os(Linux)
        guard access("/proc/self/fd", X_OK) == 0 else { return -1 }
        var folder = path
        if let slash = folder.lastIndex(of: "/") {
            folder = slash == folder.startIndex ? "/" : String(folder[..<slash])
        } else {
            folder = "."
        }
        // `O_TMPFILE` is `__O_TMPFILE | O_DIRECTORY`, a macro Swift does not import; `__O_TMPFILE` is 020000000 on
        // every architecture Linux shares flag values on (x86-64, arm64).
        let temporaryFile: Int32 = 0o20000000 | O_DIRECTORY
        return open(folder, temporaryFile | O_WRONLY | O_CLOEXEC, mode)
        #else
        return -1
        #endif
    }

    /// Renames the staged file over `path` (the directory is not fsynced). An unnamed one is first linked at its
    /// own name, then renamed at once.
    consuming func commit() throws(AuditError) {
        if unnamed >= 0 {
            let fd = unnamed
            unnamed = -1
            let linked = linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, temp, AT_SYMLINK_FOLLOW) == 0
            close(fd)
            // `/proc` hidden since, or a file system that refuses the link: written again under its own name.
            if !linked { try Self.writeNamed(temp, contents, mode: mode, durable: durable) }
        }
        guard rename(temp, path) == 0 else {
            let failure = FileIO.ioError(path, "cannot rename \(temp) over it")
            unlink(temp)
            throw failure
        }
    }

    /// Removes the staged file: `path` keeps what it holds.
    consuming func discard() {
        if unnamed >= 0 {
            close(unnamed)
            unnamed = -1
        } else {
            unlink(temp)
        }
    }
}
