#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PeonInterface
import Synchronization
import Testing
@testable import PeonMediator

/// `--approver tty` on a real pseudo-terminal. A guest writes to the same terminal (its stderr), so it could print a
/// forged prompt and then switch on hidden text (`ESC [8m`), and the real prompt was drawn invisibly after it; an
/// answer typed before the prompt appeared (a second Enter) approved it sight unseen; and an argument holding a quote
/// was shown as two arguments. Found by a red-team pass.
@Suite struct TerminalApproverTests {
    /// A pseudo-terminal: the master end (the "person") and the path of the slave end (the approver's terminal).
    final class Terminal: Sendable {
        let master: Int32
        let path: String

        init() throws {
            // posix_openpt and friends are not in Swift's Glibc module: their ioctls (Linux's generic numbers,
            // TIOCSPTLCK to unlock the slave and TIOCGPTN for its number) do the same.
            let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard master >= 0 else { throw POSIXError(.ENXIO) }
            var unlock: CInt = 0
            var number: CUnsignedInt = 0
            guard ioctl(master, UInt(0x4004_5431), &unlock) == 0, ioctl(master, UInt(0x8004_5430), &number) == 0 else {
                close(master)
                throw POSIXError(.ENXIO)
            }
            self.master = master
            self.path = "/dev/pts/\(number)"
        }

        deinit { close(master) }

        func type(_ text: String) {
            _ = text.utf8CString.withUnsafeBufferPointer { write(master, $0.baseAddress, $0.count - 1) }
        }

        /// What the terminal shows until `marker` arrives (or 10 s pass).
        func read(until marker: String) -> String {
            var seen: [UInt8] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline, !String(decoding: seen, as: UTF8.self).contains(marker) {
                var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, 100) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = Glibc.read(master, &buffer, buffer.count)
                if count <= 0 { break }
                seen += buffer[..<count]
            }
            return String(decoding: seen, as: UTF8.self)
        }
    }

    static let request = ApprovalRequest(
        run: "r", module: "probe", moduleSHA256: "", call: "exec.run", resource: "exec:/bin/echo",
        arguments: ["notes.txt\" \"ok"], details: [:], grant: "g.toml:2")

    /// Where the background approver leaves its answer.
    final class AnswerBox: Sendable {
        let value = Mutex<ApprovalAnswer?>(nil)
        var current: ApprovalAnswer? { value.withLock { $0 } }

        /// The answer, once given (at most 15 s).
        func wait() -> ApprovalAnswer? {
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                if let given = current { return given }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return nil
        }
    }

    /// Asks on `terminal` in the background.
    static func ask(on terminal: Terminal) -> AnswerBox {
        let box = AnswerBox()
        let approver = TerminalApprover(device: terminal.path)
        let thread = Thread {
            let given = approver.approve(request, deadline: .now + .seconds(20))
            box.value.withLock { $0 = given }
        }
        thread.start()
        return box
    }

    @Test func thePromptResetsTheTerminalAndShowsEachArgumentAsOne() throws {
        let terminal = try Terminal()
        let answer = Self.ask(on: terminal)
        let shown = terminal.read(until: "[y/N] ")
        #expect(shown.hasPrefix(TerminalText.resetBeforeHostText + "\r"), "\(shown.debugDescription)")
        #expect(shown.contains(#"probe wants exec.run exec:/bin/echo "notes.txt\" \"ok""#), "\(shown.debugDescription)")
        terminal.type("y\n")
        #expect(answer.wait() == ApprovalAnswer(approved: true, answer: "yes"))
    }

    @Test func anAnswerTypedBeforeThePromptDoesNotCount() throws {
        let terminal = try Terminal()
        // Typed ahead, before any prompt: waiting in the terminal's input when the approver opens it.
        let early = open(terminal.path, O_RDWR | O_NOCTTY)
        defer { close(early) }
        terminal.type("y\n")
        Thread.sleep(forTimeInterval: 0.2)
        let answer = Self.ask(on: terminal)
        _ = terminal.read(until: "[y/N] ")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(answer.current == nil, "the early `y` answered the prompt")
        terminal.type("n\n")
        #expect(answer.wait() == ApprovalAnswer(approved: false, answer: "no (n)"))
    }
}
