import ArgumentParser
import PeonInterface
import PeonRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import PeonSystem
import Synchronization

/// Writes all of `bytes` to a file descriptor, retrying partial writes; gives up quietly on a closed pipe.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    _ = writeFully(fd, bytes)
}

/// Writes a run's module output to stdout and stderr, remembering the first write that failed: the module's
/// `fd_write` gets the error, and the run reports the loss at its end (``RunCommand``).
final class OutputWriter: Sendable {
    private let failure = Mutex<(descriptor: Int32, code: Int32)?>(nil)

    /// Writes every byte to `descriptor`, waiting while it is full (a non-blocking pipe answers `EAGAIN`); 0, or the
    /// POSIX error that stopped it.
    func write(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        var rest = bytes
        var code: Int32 = 0
        while !rest.isEmpty {
            let written = retryingInterrupts { Glibc.write(descriptor, rest.baseAddress, rest.count) }
            if written > 0 {
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
                continue
            }
            code = written == 0 ? EIO : errno
            guard code == EAGAIN || code == EWOULDBLOCK else { break }
            code = 0
            var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            _ = poll(&ready, 1, 1000)
        }
        // A reader that went away (`EPIPE`) is remembered only until a real loss (a full disk) replaces it.
        if code != 0 { failure.withLock { if $0 == nil || $0?.code == EPIPE { $0 = (descriptor, code) } } }
        return code
    }

    /// The descriptor and error of the first write that lost data (or else of the first that found no reader).
    var firstFailure: (descriptor: Int32, code: Int32)? { failure.withLock { $0 } }
}

/// Prints one line to stderr, escaped (``TerminalText``): whatever it quotes (a guest's message, a path,
/// a file's contents) can neither break the line nor drive the terminal.
func printError(_ line: String) {
    // On a terminal, the line starts on its own with the text attributes reset: a guest's stderr (an escape left
    // open, hidden text) cannot swallow or hide it.
    let reset = isatty(2) == 1 ? TerminalText.resetBeforeHostText : ""
    let text = reset + TerminalText.escaped(line) + "\n"
    text.utf8CString.withUnsafeBytes { writeAll(2, UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
}

/// Prints `peon-wasm: error: MESSAGE` and exits with the error's documented code.
func fail(_ error: RunError) -> ExitCode {
    printError("peon-wasm: error: \(error.message)")
    return ExitCode(error.kind.exitCode)
}

/// Prints `peon-wasm: error: MESSAGE` (escaped) and returns `code` to throw: the one voice every
/// subcommand's failure speaks in (docs/cli.md lists each command's codes).
func failure(_ message: String, code: Int32) -> ExitCode {
    printError("peon-wasm: error: \(message)")
    return ExitCode(code)
}

/// Prints `peon-wasm: warning: MESSAGE` (escaped) on stderr.
func printWarning(_ message: String) {
    printError("peon-wasm: warning: \(message)")
}

/// A one-line progress report on stderr for long operations (`audit verify` of a large log), redrawn in place.
/// Exists only when stderr is a terminal: piped or redirected, a command stays quiet.
struct ProgressLine {
    let label: String

    /// A progress line for `label`, or nil when stderr is not a terminal.
    init?(label: String) {
        guard isatty(2) == 1 else { return nil }
        self.label = TerminalText.escaped(label)
    }

    /// Redraws the line: `count` items, and the percentage of `done` bytes in `total` when known.
    func show(done: Int64, total: Int64?, count: UInt64) {
        var text = "\r\u{1B}[Kpeon-wasm: \(label): \(count) entries"
        if let total, total > 0 { text += " (\(min(100, done * 100 / total)) %)" }
        Array(text.utf8).withUnsafeBytes { writeAll(2, $0) }
    }

    /// Erases the line, so the command's own output starts on a clean line.
    func clear() {
        Array("\r\u{1B}[K".utf8).withUnsafeBytes { writeAll(2, $0) }
    }
}

/// "peon-wasm: LABEL: N s" on stderr, redrawn every second while a long step runs (compiling a large module
/// with wasmtime), from one second in, and erased when the step ends. Exists only when stderr is a terminal:
/// piped or redirected, a command stays quiet.
final class ElapsedProgress: Sendable {
    private let label: String
    private let fd: Int32
    /// Whether the line is on screen, and whether the step ended (no redraw after that).
    private let state = Mutex<(shown: Bool, ended: Bool)>((false, false))

    /// A progress line for `label` on `fd`, or nil when `fd` is not a terminal (`isTerminal` is for tests).
    init?(label: String, fd: Int32 = 2, isTerminal: Bool? = nil) {
        guard isTerminal ?? (isatty(fd) == 1) else { return nil }
        self.label = TerminalText.escaped(label)
        self.fd = fd
    }

    /// Runs `body`, showing the elapsed seconds while it runs.
    @discardableResult
    func during<T>(every interval: Duration = .seconds(1), _ body: () throws -> T) rethrows -> T {
        let started = ContinuousClock.now
        let timer = DispatchSource.makeTimerSource(queue: .global())
        let nanoseconds = Int(clamping: interval.components.seconds) * 1_000_000_000
            + Int(interval.components.attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler { [self] in
            let seconds = (ContinuousClock.now - started).components.seconds
            state.withLock { state in
                guard !state.ended else { return }
                state.shown = true
                Array("\r\u{1B}[Kpeon-wasm: \(label): \(seconds) s".utf8).withUnsafeBytes { writeAll(fd, $0) }
            }
        }
        timer.resume()
        defer {
            timer.cancel()
            state.withLock { state in
                state.ended = true
                if state.shown { Array("\r\u{1B}[K".utf8).withUnsafeBytes { writeAll(fd, $0) } }
            }
        }
        return try body()
    }
}