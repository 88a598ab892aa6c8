import ArgumentParser
import PeonInterface
import PeonRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonSystem

/// Writes all of `bytes` to a file descriptor, retrying partial writes; gives up quietly on a closed pipe.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    _ = writeFully(fd, bytes)
}

/// Prints one line to stderr, escaped (``TerminalText``): whatever it quotes (a guest's message, a path,
/// a file's contents) can neither break the line nor drive the terminal.
func printError(_ line: String) {
    let text = TerminalText.escaped(line) + "\n"
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
