package import PeonEngine
import PeonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The guest's `proc_exit`: thrown out of the host function to end the run with the guest's exit code.
package struct WASIExit: Error, Sendable, Equatable {
    /// The exit code the guest passed.
    package var code: UInt32
    /// Creates the exit.
    package init(code: UInt32) { self.code = code }
}

/// Thrown when the guest writes more to stdout and stderr together than its output limit allows.
/// What fit under the limit was written; the run ends.
package struct WASIOutputLimitExceeded: Error, Sendable, Equatable, CustomStringConvertible {
    /// The limit, in bytes.
    package var limit: Int
    /// Creates the error.
    package init(limit: Int) { self.limit = limit }
    /// One line for users.
    package var description: String { "the module wrote more than its output limit of \(limit) bytes to stdout/stderr" }
}

/// What a sandboxed WASI guest sees. Every default is "nothing".
///
/// There are no preopened directories and no sockets: files and the network are reached only through
/// the mediated `peon:host` interface. Standard input is empty unless given, the environment is empty
/// unless granted, and output goes to the sinks up to ``outputLimit`` bytes.
package struct WASIConfiguration: Sendable {
    /// `argv`, with the program name first. Default: `["module"]`.
    package var arguments: [String] = ["module"]
    /// The environment, as ordered `NAME=value` pairs. Default: empty.
    package var environment: [(name: String, value: String)] = []
    /// The bytes `fd_read(0)` returns, then end of file. Default: empty.
    package var stdin: [UInt8] = []
    /// Where the guest's stdout goes: answers 0 when every byte was written, else the POSIX error that stopped it
    /// (`EPIPE`, `ENOSPC`, ...), which the guest's `fd_write` then returns. Default: discarded.
    package var stdout: @Sendable (UnsafeRawBufferPointer) -> Int32 = { _ in 0 }
    /// Where the guest's stderr goes, answering as ``stdout``. Default: discarded.
    package var stderr: @Sendable (UnsafeRawBufferPointer) -> Int32 = { _ in 0 }
    /// The most bytes stdout and stderr together may receive. Default: 16 MiB.
    package var outputLimit: Int = 16 << 20
    /// Sleeps in `poll_oneoff` never go past this instant; reaching it ends the run with a timeout.
    package var deadline: ContinuousClock.Instant?

    /// Creates a configuration with every default.
    package init() {}
}

/// A sandboxed `wasi_snapshot_preview1`: the host functions of all 46 preview-1 functions.
///
/// Functions that touch the world beyond stdio, clocks and randomness return the proper errno
/// (`EBADF` for file descriptors and paths that cannot exist here, `ENOSYS` for `proc_raise`) and never
/// trap. A guest pointer outside memory is answered with `EFAULT`.
package final class WASISandbox: Sendable {
    /// The import module name.
    package static let moduleName = "wasi_snapshot_preview1"

    private let configuration: WASIConfiguration
    private let state = Mutex(State())

    private struct State {
        var stdinOffset = 0
        var outputWritten = 0
    }

    /// Creates a sandbox for one run.
    package init(_ configuration: WASIConfiguration) {
        self.configuration = configuration
    }

    /// The bytes stdout and stderr have received so far, counted against ``WASIConfiguration/outputLimit``.
    package var outputWritten: Int { state.withLock { $0.outputWritten } }

    /// The host functions to link; a module importing any of them gets these semantics.
    package var hostFunctions: [HostFunction] {
        Self.signatures.map { name, parameters in
            let results: [WasmValueType] = name == "proc_exit" ? [] : [.i32]
            return HostFunction(module: Self.moduleName, name: name,
                                signature: FunctionSignature(parameters, results)) { [self] guest, arguments in
                do {
                    let errno = try self.dispatch(name, guest, arguments)
                    return name == "proc_exit" ? nil : .i32(UInt32(errno.rawValue))
                } catch is GuestMemoryError {
                    return .i32(UInt32(Errno.fault.rawValue))
                }
            }
        }
    }

    /// The preview-1 errno values this sandbox returns.
    enum Errno: UInt16 {
        case success = 0, badf = 8, fault = 21, inval = 28, io = 29, nospc = 51, nosys = 52, notsup = 58, pipe = 64, spipe = 70
    }

    // MARK: Signatures

    private static let signatures: [(String, [WasmValueType])] = [
        ("args_get", [.i32, .i32]), ("args_sizes_get", [.i32, .i32]),
        ("environ_get", [.i32, .i32]), ("environ_sizes_get", [.i32, .i32]),
        ("clock_res_get", [.i32, .i32]), ("clock_time_get", [.i32, .i64, .i32]),
        ("fd_advise", [.i32, .i64, .i64, .i32]), ("fd_allocate", [.i32, .i64, .i64]),
        ("fd_close", [.i32]), ("fd_datasync", [.i32]), ("fd_fdstat_get", [.i32, .i32]),
        ("fd_fdstat_set_flags", [.i32, .i32]), ("fd_fdstat_set_rights", [.i32, .i64, .i64]),
        ("fd_filestat_get", [.i32, .i32]), ("fd_filestat_set_size", [.i32, .i64]),
        ("fd_filestat_set_times", [.i32, .i64, .i64, .i32]), ("fd_pread", [.i32, .i32, .i32, .i64, .i32]),
        ("fd_prestat_get", [.i32, .i32]), ("fd_prestat_dir_name", [.i32, .i32, .i32]),
        ("fd_pwrite", [.i32, .i32, .i32, .i64, .i32]), ("fd_read", [.i32, .i32, .i32, .i32]),
        ("fd_readdir", [.i32, .i32, .i32, .i64, .i32]), ("fd_renumber", [.i32, .i32]),
        ("fd_seek", [.i32, .i64, .i32, .i32]), ("fd_sync", [.i32]), ("fd_tell", [.i32, .i32]),
        ("fd_write", [.i32, .i32, .i32, .i32]),
        ("path_create_directory", [.i32, .i32, .i32]), ("path_filestat_get", [.i32, .i32, .i32, .i32, .i32]),
        ("path_filestat_set_times", [.i32, .i32, .i32, .i32, .i64, .i64, .i32]),
        ("path_link", [.i32, .i32, .i32, .i32, .i32, .i32, .i32]),
        ("path_open", [.i32, .i32, .i32, .i32, .i32, .i64, .i64, .i32, .i32]),
        ("path_readlink", [.i32, .i32, .i32, .i32, .i32, .i32]), ("path_remove_directory", [.i32, .i32, .i32]),
        ("path_rename", [.i32, .i32, .i32, .i32, .i32, .i32]), ("path_symlink", [.i32, .i32, .i32, .i32, .i32]),
        ("path_unlink_file", [.i32, .i32, .i32]),
        ("poll_oneoff", [.i32, .i32, .i32, .i32]), ("proc_exit", [.i32]), ("proc_raise", [.i32]),
        ("random_get", [.i32, .i32]), ("sched_yield", []),
        ("sock_accept", [.i32, .i32, .i32]), ("sock_recv", [.i32, .i32, .i32, .i32, .i32, .i32]),
        ("sock_send", [.i32, .i32, .i32, .i32, .i32]), ("sock_shutdown", [.i32, .i32]),
    ]

    // MARK: Dispatch

    private func dispatch(_ name: String, _ guest: any GuestAccess, _ a: HostArguments) throws -> Errno {
        switch name {
        case "args_sizes_get": return try writeSizes(of: configuration.arguments, guest, a.i32(0), a.i32(1))
        case "args_get": return try writeStrings(configuration.arguments, guest, a.i32(0), a.i32(1))
        case "environ_sizes_get": return try writeSizes(of: environmentStrings, guest, a.i32(0), a.i32(1))
        case "environ_get": return try writeStrings(environmentStrings, guest, a.i32(0), a.i32(1))
        case "clock_res_get":
            guard a.i32(0) <= 3 else { return .inval }
            try guest.writeUInt64(1_000, at: a.i32(1))
            return .success
        case "clock_time_get":
            guard let now = Self.clockTime(a.i32(0)) else { return .inval }
            try guest.writeUInt64(now, at: a.i32(2))
            return .success
        case "fd_write": return try write(guest, fd: a.i32(0), iovs: a.i32(1), count: a.i32(2), written: a.i32(3))
        case "fd_read": return try read(guest, fd: a.i32(0), iovs: a.i32(1), count: a.i32(2), read: a.i32(3))
        case "fd_fdstat_get":
            guard a.i32(0) <= 2 else { return .badf }
            var stat = [UInt8](repeating: 0, count: 24)
            stat[0] = 2  // character device
            let rights: UInt64 = a.i32(0) == 0 ? 1 << 1 : 1 << 6  // fd_read or fd_write
            withUnsafeBytes(of: rights.littleEndian) { stat.replaceSubrange(8..<16, with: $0) }
            try guest.writeBytes(stat, at: try aligned(a.i32(1), 8))
            return .success
        case "fd_filestat_get":
            guard a.i32(0) <= 2 else { return .badf }
            var stat = [UInt8](repeating: 0, count: 64)
            stat[16] = 2  // character device
            try guest.writeBytes(stat, at: try aligned(a.i32(1), 8))
            return .success
        case "fd_close", "fd_sync", "fd_datasync":
            return a.i32(0) <= 2 ? .success : .badf
        case "fd_seek", "fd_tell", "fd_pread", "fd_pwrite":
            return a.i32(0) <= 2 ? .spipe : .badf
        case "fd_advise", "fd_allocate", "fd_fdstat_set_flags", "fd_fdstat_set_rights", "fd_filestat_set_size",
            "fd_filestat_set_times", "fd_readdir", "fd_renumber":
            return a.i32(0) <= 2 ? .notsup : .badf
        case "poll_oneoff": return try poll(guest, a.i32(0), a.i32(1), a.i32(2), a.i32(3))
        case "proc_exit": throw WASIExit(code: a.i32(0))
        case "proc_raise": return .nosys
        case "sched_yield": return .success
        case "random_get":
            try fillRandom(guest, at: a.i32(0), count: a.i32(1))
            return .success
        default:
            // fd_prestat_*, path_* and sock_*: there are no preopened directories and no sockets, so
            // every descriptor they could name is bad.
            return .badf
        }
    }

    /// `random_get`: `count` random bytes at `pointer`, made eight at a time and written 64 KiB at a time, with the
    /// run's deadline checked before each piece. One call may ask for the whole memory (4 GiB), and it is one host
    /// call: it charges no fuel, and nothing else would stop it at the deadline (an MCP server's call has no
    /// supervisor to kill it). A byte at a time, 200 MB held a tool call 157 s past its 2 s limit.
    private func fillRandom(_ guest: any GuestAccess, at pointer: UInt32, count: UInt32) throws {
        try guest.checkRange(pointer, count)
        var generator = SystemRandomNumberGenerator()
        var done: UInt32 = 0
        while done < count {
            if let deadline = configuration.deadline, ContinuousClock.now >= deadline {
                throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed while the guest asked for random bytes")
            }
            let piece = min(count - done, 64 << 10)
            try guest.withMutableMemory(at: pointer + done, count: piece) { buffer in
                var index = 0
                while buffer.count - index >= 8 {
                    buffer.storeBytes(of: generator.next() as UInt64, toByteOffset: index, as: UInt64.self)
                    index += 8
                }
                if index < buffer.count {
                    var last = generator.next() as UInt64
                    while index < buffer.count {
                        buffer[index] = UInt8(truncatingIfNeeded: last)
                        last >>= 8
                        index += 1
                    }
                }
            }
            done += piece
        }
    }

    private var environmentStrings: [String] { configuration.environment.map { "\($0.name)=\($0.value)" } }

    private func aligned(_ pointer: UInt32, _ alignment: UInt32) throws -> UInt32 {
        guard pointer % alignment == 0 else { throw GuestMemoryError("misaligned pointer 0x\(String(pointer, radix: 16))") }
        return pointer
    }

    private func writeSizes(of strings: [String], _ guest: any GuestAccess, _ countPointer: UInt32, _ sizePointer: UInt32) throws -> Errno {
        try guest.writeUInt32(UInt32(strings.count), at: countPointer)
        try guest.writeUInt32(UInt32(strings.reduce(0) { $0 + $1.utf8.count + 1 }), at: sizePointer)
        return .success
    }

    private func writeStrings(_ strings: [String], _ guest: any GuestAccess, _ pointers: UInt32, _ buffer: UInt32) throws -> Errno {
        var offset = UInt64(buffer)
        for (index, string) in strings.enumerated() {
            guard offset + UInt64(string.utf8.count) + 1 <= UInt64(guest.memorySize) else { return .fault }
            try guest.writeUInt32(UInt32(offset), at: pointers &+ UInt32(index * 4))
            try guest.writeBytes(Array(string.utf8) + [0], at: UInt32(offset))
            offset += UInt64(string.utf8.count) + 1
        }
        return .success
    }

    /// The `(buf, len)` pairs of an iovec array, each checked to lie in memory.
    private func ioVectors(_ guest: any GuestAccess, _ pointer: UInt32, _ count: UInt32) throws -> [(UInt32, UInt32)] {
        // At most IOV_MAX (1024) vectors, as Linux allows: the byte count can then neither overflow 32 bits (a
        // 4 GiB memory would let `count * 8` reach 2^32) nor make the host copy gigabytes of vectors.
        guard count <= 1024 else { throw GuestMemoryError("iovec count \(count) is more than 1024") }
        guard UInt64(count) * 8 <= UInt64(guest.memorySize) else { throw GuestMemoryError("iovec count \(count) exceeds memory") }
        let raw = try guest.readBytes(at: try aligned(pointer, 4), count: count * 8)
        return (0..<Int(count)).map { index in
            raw.withUnsafeBytes { bytes in
                (UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt32.self)),
                 UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8 + 4, as: UInt32.self)))
            }
        }
    }

    /// The bytes `vectors` name together, each vector checked to lie in memory (`GuestMemoryError`, EFAULT, if one
    /// does not); `nil` when the total does not fit the 32-bit count WASI answers with (EINVAL, as `writev` does
    /// when a total overflows).
    private static func checkedTotal(_ vectors: [(UInt32, UInt32)], _ guest: any GuestAccess) throws -> UInt32? {
        var total: UInt64 = 0
        for (base, length) in vectors {
            try guest.checkRange(base, length)
            total += UInt64(length)
        }
        return total <= UInt64(UInt32.max) ? UInt32(total) : nil
    }

    private func write(_ guest: any GuestAccess, fd: UInt32, iovs: UInt32, count: UInt32, written: UInt32) throws -> Errno {
        guard fd == 1 || fd == 2 else { return .badf }
        // Where the count goes is checked before anything is written: a bad pointer was EFAULT after the bytes had gone
        // out, and a guest that retried on the error wrote them twice.
        try guest.writeUInt32(0, at: written)
        let sink = fd == 1 ? configuration.stdout : configuration.stderr
        let limit = configuration.outputLimit
        let vectors = try ioVectors(guest, iovs, count)
        // All or nothing, as for the count: every vector is checked before a byte goes out (a bad second one was
        // EFAULT after the first had been written and charged to the output limit), and the total must fit the
        // 32-bit count the guest is told (two 3 GiB vectors were told 2 GiB, and a guest writing "the rest" wrote
        // 4 GiB twice).
        guard try Self.checkedTotal(vectors, guest) != nil else { return .inval }
        var total: UInt32 = 0
        for (base, length) in vectors {
            let allowed = state.withLock { state -> Int in
                let room = max(0, limit - state.outputWritten)
                let take = min(room, Int(length))
                state.outputWritten += take
                return take
            }
            if allowed > 0 {
                let failure = try guest.withMemory(at: base, count: UInt32(allowed)) { sink($0) }
                if failure != 0 {
                    // Nothing reached the reader (a closed pipe, a full disk): the guest is told, and the bytes are not
                    // counted against its output limit. They were counted as not written before, and a guest writing
                    // into a closed pipe went on until the limit stopped it with a misleading error.
                    state.withLock { $0.outputWritten -= allowed }
                    try guest.writeUInt32(total, at: written)
                    return failure == EPIPE ? .pipe : failure == ENOSPC ? .nospc : .io
                }
                total += UInt32(allowed)
            }
            if allowed < Int(length) { throw WASIOutputLimitExceeded(limit: limit) }
        }
        try guest.writeUInt32(total, at: written)
        return .success
    }

    private func read(_ guest: any GuestAccess, fd: UInt32, iovs: UInt32, count: UInt32, read: UInt32) throws -> Errno {
        guard fd == 0 else { return .badf }
        // As for writes: a bad count pointer is found before any input is consumed.
        try guest.writeUInt32(0, at: read)
        // Every vector checked before any input is taken: a bad second one lost the bytes the first had consumed.
        let vectors = try ioVectors(guest, iovs, count)
        guard try Self.checkedTotal(vectors, guest) != nil else { return .inval }
        var total: UInt32 = 0
        for (base, length) in vectors {
            let chunk: ArraySlice<UInt8> = state.withLock { state in
                let end = min(configuration.stdin.count, state.stdinOffset + Int(length))
                defer { state.stdinOffset = end }
                return configuration.stdin[state.stdinOffset..<end]
            }
            if chunk.isEmpty { break }
            try guest.writeBytes(chunk, at: base)
            total += UInt32(chunk.count)
            if chunk.count < Int(length) { break }
        }
        try guest.writeUInt32(total, at: read)
        return .success
    }

    // MARK: Clocks and polling

    private static func clockTime(_ id: UInt32) -> UInt64? {
        let clock: clockid_t
        switch id {
        case 0: clock = CLOCK_REALTIME
        case 1: clock = CLOCK_MONOTONIC
        case 2: clock = CLOCK_PROCESS_CPUTIME_ID
        case 3: clock = CLOCK_THREAD_CPUTIME_ID
        default: return nil
        }
        var time = timespec()
        guard clock_gettime(clock, &time) == 0 else { return nil }
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// `poll_oneoff`: clock subscriptions sleep (never past the run's deadline); stdio subscriptions
    /// are always ready; any other descriptor reports `EBADF` in its event.
    private func poll(_ guest: any GuestAccess, _ input: UInt32, _ output: UInt32, _ count: UInt32, _ eventsPointer: UInt32) throws -> Errno {
        guard count > 0 else { return .inval }
        guard UInt64(count) * 48 <= UInt64(guest.memorySize) else { return .fault }
        let subscriptions = try guest.readBytes(at: try aligned(input, 8), count: count * 48)
        try guest.checkRange(try aligned(output, 8), count * 32)
        func load<T: FixedWidthInteger>(_ index: Int, _ offset: Int, _: T.Type) -> T {
            subscriptions.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: index * 48 + offset, as: T.self)) }
        }
        var events: [(userdata: UInt64, error: Errno, type: UInt8)] = []
        var earliestWake: UInt64?  // nanoseconds from now
        var clockSubscriptions: [(userdata: UInt64, wake: UInt64)] = []
        for index in 0..<Int(count) {
            let userdata: UInt64 = load(index, 0, UInt64.self)
            let tag: UInt8 = load(index, 8, UInt8.self)
            switch tag {
            case 0:
                let clock: UInt32 = load(index, 16, UInt32.self)
                let timeout: UInt64 = load(index, 24, UInt64.self)
                let flags: UInt16 = load(index, 40, UInt16.self)
                guard let now = Self.clockTime(clock) else {
                    events.append((userdata, .inval, 0))
                    continue
                }
                let relative = flags & 1 == 1 ? (timeout > now ? timeout - now : 0) : timeout
                clockSubscriptions.append((userdata, relative))
                earliestWake = min(earliestWake ?? relative, relative)
            case 1, 2:
                let fd: UInt32 = load(index, 16, UInt32.self)
                let ready = (tag == 1 && fd == 0) || (tag == 2 && (fd == 1 || fd == 2))
                events.append((userdata, ready ? .success : .badf, tag))
            default:
                events.append((userdata, .inval, tag))
            }
        }
        if events.isEmpty, let wake = earliestWake {
            try sleep(nanoseconds: wake)
            for subscription in clockSubscriptions where subscription.wake <= wake {
                events.append((subscription.userdata, .success, 0))
            }
        }
        for (index, event) in events.enumerated() {
            var bytes = [UInt8](repeating: 0, count: 32)
            withUnsafeBytes(of: event.userdata.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: event.error.rawValue.littleEndian) { bytes.replaceSubrange(8..<10, with: $0) }
            bytes[10] = event.type
            try guest.writeBytes(bytes, at: output + UInt32(index * 32))
        }
        try guest.writeUInt32(UInt32(events.count), at: eventsPointer)
        return .success
    }

    private func sleep(nanoseconds: UInt64) throws {
        var duration = Duration.nanoseconds(Int64(clamping: nanoseconds))
        if let deadline = configuration.deadline {
            let remaining = deadline - .now
            if remaining < duration {
                if remaining > .zero { Self.block(for: remaining) }
                throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed while the guest slept")
            }
        }
        duration = max(duration, .zero)
        Self.block(for: duration)
    }

    private static func block(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        // A signal cuts the sleep short: sleep again for what was left.
        _ = retryingInterrupts {
            defer { request = remaining }
            return nanosleep(&request, &remaining)
        }
    }
}

extension GuestAccess {
    /// Writes a little-endian `u64` at `offset`, which must be 8-byte aligned.
    func writeUInt64(_ value: UInt64, at offset: UInt32) throws {
        guard offset % 8 == 0 else { throw GuestMemoryError("guest pointer 0x\(String(offset, radix: 16)) is not 8-byte aligned") }
        try withMutableMemory(at: offset, count: 8) { $0.storeBytes(of: value.littleEndian, as: UInt64.self) }
    }
}
