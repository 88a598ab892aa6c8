import Foundation
@testable import PeonCLI
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A long compile shows its elapsed seconds on a terminal, on one line erased at the end, and nothing when
/// stderr is piped.
@Suite struct ElapsedProgressTests {
    /// Everything written to a pipe while `body` runs with the pipe's write end.
    func captured(_ body: (_ write: Int32, _ read: Int32) -> Void) -> String {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return "" }
        body(fds[1], fds[0])
        close(fds[1])
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        close(fds[0])
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func aLongStepShowsElapsedSecondsAndErasesTheLine() throws {
        let text = captured { fd, readEnd in
            let progress = ElapsedProgress(label: "compiling the module 'a\u{1B}[31m.wasm' with wasmtime", fd: fd, isTerminal: true)
            // The step lasts until the first redraw is in the pipe (at most 30 s), not a fixed time: on a loaded
            // machine the timer's queue may run late, and the property is the line, not its punctuality.
            progress?.during(every: .milliseconds(20)) {
                var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, 30_000)
                usleep(50_000)
            }
        }
        #expect(text.contains("peon-wasm: compiling the module 'a"))
        // Whole seconds elapsed; on a loaded machine the first redraw may come a second or more late (CI once
        // showed "1 s" first), so any count is the line this checks.
        #expect(text.contains(/: \d+ s/), "\(text)")
        #expect(!text.contains("\u{1B}[31m"), "the label reached the terminal unescaped")
        #expect(text.hasSuffix("\r\u{1B}[K"), "the line was not erased at the end")
    }

    @Test func aQuickStepShowsNothing() {
        let text = captured { fd, _ in
            ElapsedProgress(label: "compiling", fd: fd, isTerminal: true)?.during { () }
        }
        #expect(text.isEmpty)
    }

    @Test func aPipeGetsNoProgressLine() {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        #expect(ElapsedProgress(label: "compiling", fd: fds[1]) == nil)
    }
}
