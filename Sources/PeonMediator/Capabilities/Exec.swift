// The `exec` capability: runs one program, never a shell, and bounds it in time and output.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CPeonSupport
import PeonInterface
import PeonSystem

/// Runs a program the mediator authorized, with nothing the grant did not give it.
///
/// Rules (each enforced here, tested in `ExecTests`):
/// - No shell, ever: the program is `posix_spawn`ed directly from an absolute, lexically normal path
///   (no `.`/`..`/`//` components, no `PATH` search); arguments reach it byte for byte, so `;`, `|`,
///   `$(...)` and globs are plain text.
/// - The environment is exactly `environment`, nothing inherited; names with `=` or NUL are refused.
/// - The working folder is ``workingDirectory``; every descriptor except stdin/stdout/stderr is closed
///   in the child; signal dispositions and the signal mask are reset to the defaults.
/// - The child leads its own session and process group, without a controlling terminal. At the timeout the whole group gets `SIGKILL` and the call
///   is `timeout`; when the child exits, whatever is left in its group is killed too, so nothing it
///   started outlives the call (a process that calls `setsid` escapes this — contain it with the OS).
/// - stdin, stdout and stderr are served together by one `poll` loop (no pipe deadlock). A stream
///   past `maxOutputBytes` kills the group and the call is `limit-exceeded`: the guest never gets a
///   silently truncated result. stdout and stderr are pipes; stdin with bytes to send is a socket
///   pair written with `MSG_NOSIGNAL`, so a child that stops reading cannot raise `SIGPIPE` in the
///   host, and empty stdin is a pipe already at end of file.
/// - The exit code is the program's, or 128 + the signal that killed it.
struct ExecCapability: Sendable {
    /// The folder every program starts in.
    let workingDirectory: String

    /// Creates the capability.
    ///
    /// - Parameters:
    ///   - workingDirectory: the absolute folder programs run in.
    ///   - waitsOnPidfd: whether the exit is awaited on a pidfd (`false` only in tests, to run the
    ///   fallback a kernel without `pidfd_open` gets).
    init(workingDirectory: String, waitsOnPidfd: Bool = true) {
        self.workingDirectory = workingDirectory
        self.waitsOnPidfd = waitsOnPidfd
    }

    /// Whether ``run(program:arguments:stdin:environment:timeout:maxOutputBytes:)`` awaits the child's exit on
    /// its pidfd; otherwise (and on a kernel without `pidfd_open`) it polls `waitpid` with backoff.
    let waitsOnPidfd: Bool

    /// Runs `program` with `arguments` and waits for it, within `timeout`.
    ///
    /// - Parameters:
    ///   - path: the program the mediator parsed and authorized.
    ///   - arguments: the arguments after `argv[0]` (which is `program`).
    ///   - stdin: the bytes the program reads on its standard input, followed by end of file.
    ///   - environment: the complete environment.
    ///   - timeout: wall-clock bound for the whole run.
    ///   - maxOutputBytes: the cap for stdout and for stderr, each.
    /// - Throws: `invalid-argument` (relative or non-normal program path, NUL in an argument or the
    ///   environment), `not-found` (no such program), `denied` (not executable), `timeout`,
    ///   `limit-exceeded` (output over the cap), `io`.
    func run(
        program path: ProgramPath,
        arguments: [String],
        stdin: [UInt8],
        environment: [String: String],
        timeout: Duration,
        maxOutputBytes: Int
    ) throws(HostError) -> ExecOutput {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let program = path.description
        try Self.validate(program: program, arguments: arguments, environment: environment)
        guard workingDirectory.hasPrefix("/") else {
            throw HostError(.invalidArgument, "exec '\(program)': the host's working directory is not absolute")
        }

        // stdout and stderr are close-on-exec pipes: the cheapest stream the kernel has, and one that cannot carry
        // descriptors back to the host. stdin is a pipe whose write end is closed at once when there is nothing to
        // send (the program reads end of file), and otherwise a socket pair, so writes can use MSG_NOSIGNAL.
        let stdinPair = stdin.isEmpty ? try Self.inputAtEndOfFile(program) : try Self.socketPair(program, "stdin")
        let stdinParent = Descriptor(stdinPair.parent)
        let stdinChild = Descriptor(stdinPair.child)
        let outPair = try Self.pipe(program, "stdout")
        let outRead = Descriptor(outPair.parent)
        let outWrite = Descriptor(outPair.child)
        let errPair = try Self.pipe(program, "stderr")
        let errRead = Descriptor(errPair.parent)
        let errWrite = Descriptor(errPair.child)

        let pid = try spawn(
            program: program, arguments: arguments, environment: environment,
            stdin: stdinChild.raw, stdout: outWrite.raw, stderr: errWrite.raw)
        // The child has its copies; the parent must not keep the write ends open or EOF never comes.
        _ = consume stdinChild
        _ = consume outWrite
        _ = consume errWrite

        // Readable when the child exits, so the loop below waits on it with its streams instead of polling
        // `waitpid` (-1 on a kernel without pidfd_open: then it looks again with backoff). The pid cannot be
        // reused before this process reaps it.
        let exitFD = waitsOnPidfd ? peon_pidfd_open(pid) : -1
        defer { if exitFD >= 0 { _ = close(exitFD) } }
        var session = ChildSession(pid: pid, program: program, maxOutputBytes: max(0, maxOutputBytes), exitFD: exitFD)
        return try session.serve(
            stdin: stdin, stdinFD: stdin.isEmpty ? nil : stdinParent.raw, stdoutFD: outRead.raw, stderrFD: errRead.raw,
            deadline: deadline)
    }

    /// A close-on-exec pipe for an output stream: the host keeps the read end, the child gets the write end.
    private static func pipe(_ program: String, _ stream: String) throws(HostError) -> (parent: Int32, child: Int32) {
        var ends: [Int32] = [-1, -1]
        if peon_pipe_cloexec(&ends) != 0 {
            throw hostError(errno: currentErrno, "exec '\(program)': \(stream)")
        }
        return (ends[0], ends[1])
    }

    /// The read end of a close-on-exec pipe whose write end is already closed: an empty stdin, at end of file from
    /// the first read. The host keeps nothing (`parent` is -1, which closing ignores).
    private static func inputAtEndOfFile(_ program: String) throws(HostError) -> (parent: Int32, child: Int32) {
        var ends: [Int32] = [-1, -1]
        if peon_pipe_cloexec(&ends) != 0 {
            throw hostError(errno: currentErrno, "exec '\(program)': stdin")
        }
        _ = close(ends[1])
        return (-1, ends[0])
    }

    /// glibc's `POSIX_SPAWN_SETSID` (since 2.26), from <spawn.h> through CPeonSupport.
    static let spawnSetSession = Int32(peon_posix_spawn_setsid())

    /// A connected, close-on-exec `AF_UNIX` stream pair; the caller owns both descriptors.
    private static func socketPair(_ program: String, _ stream: String) throws(HostError) -> (parent: Int32, child: Int32) {
        var pair: [Int32] = [-1, -1]
        if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) != 0 {
            throw hostError(errno: currentErrno, "exec '\(program)': \(stream)")
        }
        return (pair[0], pair[1])
    }

    /// The program path is a ``ProgramPath`` (absolute, normal, no NUL); what is left to check here.
    static func validate(program: String, arguments: [String], environment: [String: String]) throws(HostError) {
        if arguments.contains(where: { $0.utf8.contains(0) }) {
            throw HostError(.invalidArgument, "exec '\(program)': an argument contains a NUL byte")
        }
        for (name, value) in environment {
            if name.isEmpty || name.utf8.contains(UInt8(ascii: "=")) || name.utf8.contains(0) || value.utf8.contains(0) {
                throw HostError(.invalidArgument, "exec '\(program)': environment variable '\(name)' has an invalid name or value")
            }
        }
    }

    /// `posix_spawn`s the program in a new process group with exactly the given stdio, environment and
    /// working folder. Returns the child's pid.
    private func spawn(
        program: String, arguments: [String], environment: [String: String],
        stdin: Int32, stdout: Int32, stderr: Int32
    ) throws(HostError) -> pid_t {
        let argv = [program] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }.sorted()
        var pid: pid_t = 0
        // A new session (which is also a new process group led by the child): no controlling
        // terminal, so the program can neither read the user's terminal nor write fake prompts to it.
        let spawned = withSpawnSetup(stdin: stdin, stdout: stdout, stderr: stderr, workingDirectory: workingDirectory,
                                     spawnFlags: Self.spawnSetSession) { actions, attributes -> Int32? in
            var result: Int32?
            // ETXTBSY is transient when another thread's child briefly holds a write descriptor of the program
            // across fork (between its fork and exec); retry a few times before reporting it.
            for attempt in 0..<5 {
                result = withCStringArray(argv) { argvPointer in
                    withCStringArray(envp) { envpPointer in
                        posix_spawn(&pid, program, &actions, &attributes, argvPointer, envpPointer)
                    }
                }.flatMap { $0 }
                guard result == ETXTBSY, attempt < 4 else { break }
                usleep(10_000)
            }
            return result
        }
        guard let spawned else { throw HostError(.io, "exec '\(program)': could not prepare the spawn attributes") }
        guard let result = spawned else {
            throw HostError(.limitExceeded, "exec '\(program)': out of memory copying the arguments")
        }
        if result != 0 {
            throw hostError(errno: result, "exec '\(program)'")
        }
        return pid
    }
}

/// Calls `body` with a NULL-terminated `char *[]` of `strings`, valid only during the call; `nil` if
/// the copies could not be allocated.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R? {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for pointer in copies { free(pointer) } }
    if copies.dropLast().contains(where: { $0 == nil }) { return nil }
    return copies.withUnsafeBufferPointer { buffer in buffer.baseAddress.map(body) }
}

/// The parent's side of one running child: feeds stdin, drains stdout and stderr, reaps, kills.
private struct ChildSession {
    let pid: pid_t
    let program: String
    let maxOutputBytes: Int
    /// The child's pidfd (readable once it exited), or -1: then the exit is found by polling `waitpid`.
    let exitFD: Int32
    var exitStatus: Int32?

    init(pid: pid_t, program: String, maxOutputBytes: Int, exitFD: Int32) {
        self.pid = pid
        self.program = program
        self.maxOutputBytes = maxOutputBytes
        self.exitFD = exitFD
    }

    /// Sends `SIGKILL` to the child's whole process group and reaps the child if not yet reaped.
    mutating func killGroup() {
        _ = kill(-pid, SIGKILL)
        reap(blocking: true)
    }

    /// Collects the child's exit status (`waitpid`), once.
    mutating func reap(blocking: Bool) {
        guard exitStatus == nil else { return }
        var status: Int32 = 0
        let result = retryingInterrupts { waitpid(pid, &status, blocking ? 0 : WNOHANG) }
        if result == pid {
            exitStatus = status
            // The leader is gone; take down anything it left running in its group.
            _ = kill(-pid, SIGKILL)
        } else if result < 0 {
            exitStatus = -1
        }
    }

    /// Feeds `stdin` through `stdinFD` (nil when there is nothing to send: the child's end is already at end of
    /// file), drains stdout and stderr, and reaps the child, all before `deadline`.
    mutating func serve(
        stdin: [UInt8], stdinFD givenStdinFD: Int32?, stdoutFD: Int32, stderrFD: Int32, deadline: ContinuousClock.Instant
    ) throws(HostError) -> ExecOutput {
        let stdinFD = givenStdinFD ?? -1
        var stdinOpen = givenStdinFD != nil
        var stdinOffset = 0
        if stdinOpen {
            _ = fcntl(stdinFD, F_SETFL, fcntl(stdinFD, F_GETFL) | O_NONBLOCK)
        }
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var stdoutOpen = true
        var stderrOpen = true
        // Not zero-filled: `read` writes it, and only what it wrote is copied out.
        var chunk = [UInt8](unsafeUninitializedCapacity: 64 << 10) { _, count in count = 64 << 10 }
        var exitBackoffMicroseconds = 50

        while stdoutOpen || stderrOpen || exitStatus == nil {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero {
                killGroup()
                throw HostError(.timeout, "exec '\(program)': killed after the timeout")
            }
            var fds: [pollfd] = []
            if stdinOpen { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            if stdoutOpen { fds.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
            if stderrOpen { fds.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
            if exitFD >= 0 && exitStatus == nil { fds.append(pollfd(fd: exitFD, events: Int16(POLLIN), revents: 0)) }
            let (seconds, attoseconds) = remaining.components
            if fds.isEmpty {
                // Every stream is closed, so the child is exiting (or has let go of its output): look again
                // after 50 µs, backing off to 5 ms. A fixed 5 ms step cost most programs 5 ms after their exit.
                let remainingMicroseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000 + 1
                _ = usleep(UInt32(min(Int64(exitBackoffMicroseconds), remainingMicroseconds)))
                exitBackoffMicroseconds = min(exitBackoffMicroseconds * 2, 5_000)
                reap(blocking: false)
                continue
            }
            // Otherwise until data or the deadline. Not `retryingInterrupts`: an interrupted poll goes round the loop,
            // which checks the deadline again before the next one.
            let remainingMilliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(remainingMilliseconds, 100)))
            if ready < 0 && currentErrno != EINTR {
                killGroup()
                throw hostError(errno: currentErrno, "exec '\(program)': poll")
            }
            for entry in fds where entry.revents != 0 {
                // The child exited: it is reaped after this loop, as on every round.
                if entry.fd == exitFD { continue }
                if entry.fd == stdinFD {
                    let count = stdin.withUnsafeBytes { raw in
                        retryingInterrupts {
                            send(stdinFD, raw.baseAddress.map { $0 + stdinOffset }, stdin.count - stdinOffset, Int32(MSG_NOSIGNAL))
                        }
                    }
                    if count > 0 { stdinOffset += count }
                    // Done, or the child stopped reading (EPIPE/ECONNRESET): either way stdin is over.
                    if stdinOffset >= stdin.count || (count < 0 && currentErrno != EAGAIN) {
                        _ = shutdown(stdinFD, Int32(SHUT_WR))
                        stdinOpen = false
                    }
                    continue
                }
                let isStdout = entry.fd == stdoutFD
                let count = chunk.withUnsafeMutableBytes { raw in
                    retryingInterrupts { read(entry.fd, raw.baseAddress, raw.count) }
                }
                if count <= 0 {
                    if count == 0 || currentErrno != EAGAIN {
                        if isStdout { stdoutOpen = false } else { stderrOpen = false }
                    }
                    continue
                }
                if isStdout { stdout.append(contentsOf: chunk[..<count]) } else { stderr.append(contentsOf: chunk[..<count]) }
                if (isStdout ? stdout.count : stderr.count) > maxOutputBytes {
                    killGroup()
                    let stream = isStdout ? "stdout" : "stderr"
                    throw HostError(.limitExceeded, "exec '\(program)': \(stream) passed the limit of \(maxOutputBytes) bytes; the program was killed")
                }
            }
            reap(blocking: false)
        }
        guard let status = exitStatus, status >= 0 else {
            throw HostError(.io, "exec '\(program)': could not collect the exit status")
        }
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return ExecOutput(code: code, stdout: stdout, stderr: stderr)
    }
}
