#if canImport(Glibc)
import Glibc
#endif
import CPeonSupport
import Foundation
import PeonInterface

/// A call waiting for a person's (or a program's) approval, as the approver sees it.
///
/// Payloads appear by SHA-256 and length only, and injected secrets never appear.
public struct ApprovalRequest: Sendable, Hashable {
    /// The run id.
    package var run: String
    /// The module name.
    package var module: String
    /// The module's SHA-256.
    package var moduleSHA256: String
    /// The call, e.g. `exec.run`.
    package var call: String
    /// The resource, e.g. `exec:/usr/bin/wc`.
    package var resource: String
    /// Exec arguments (empty for other calls).
    package var arguments: [String]
    /// The same facts the audit entry carries (`payload_sha256`, `payload_len`, `method`, ...).
    package var details: [String: String]
    /// The grant that asks for approval, `file:line`.
    package var grant: String
    /// The labels the run holds when it asks (its own and those this call's reads brought so far): the request
    /// (a path, a URL, arguments) may spell what the run read, so an approver that shows it to someone who can
    /// pass it on (an MCP client, ``ElicitationApprover``) hands them data under these labels.
    package var labels: [String] = []

    /// The JSON object a command approver reads on stdin (keys sorted).
    package var json: [UInt8] {
        let object: [String: Any] = [
            "run": run, "module": module, "module_sha256": moduleSHA256, "call": call, "resource": resource,
            "arguments": arguments, "details": details, "grant": grant,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Array(data) + [0x0A]
    }

    /// One human-readable line: `summarizer wants exec.run exec:/usr/bin/wc ["-l", "x"]`.
    ///
    /// Every part a guest controls (the resource, the arguments, details) is escaped with
    /// ``TerminalText``, so a path like `x\r\u{1b}[2K...` cannot erase the real request from the prompt
    /// and show a forged one.
    package var summary: String {
        var line = "\(module) wants \(call) \(resource)"
        // Each argument quoted with its own `\` and `"` escaped: `notes.txt" "ok` is one argument, never shown as two.
        if !arguments.isEmpty { line += " " + arguments.map(Self.quoted).joined(separator: " ") }
        for (key, value) in details.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        return TerminalText.escaped(line)
    }

    /// `text` in double quotes, its backslashes and quotes escaped with a backslash.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for character in text {
            if character == "\\" || character == "\"" { result.append("\\") }
            result.append(character)
        }
        return result + "\""
    }
}

/// An approver's answer; recorded in the audit entry with the approver's identity.
public struct ApprovalAnswer: Sendable, Hashable {
    /// Whether the call may run.
    package var approved: Bool
    /// What the approver said: `yes`, `no`, `exit 3`, `timeout`, `approval required` ...
    package var answer: String
    /// Labels the answer carries: whoever answered held data under them and may have chosen the answer by it
    /// (an MCP client holding what its session's calls returned). They join the run before it learns the answer.
    package var labels: [String]

    /// Creates an answer.
    package init(approved: Bool, answer: String, labels: [String] = []) {
        self.approved = approved
        self.answer = answer
        self.labels = labels
    }
}

/// Decides calls whose grant says `approval = true`. Called on the guest's thread; must return by
/// `deadline` (a late answer is a refusal).
public protocol Approver: Sendable {
    /// Who approves, for the audit entry: `none`, `tty:/dev/tty`, `command:/usr/local/bin/ok`.
    var identity: String { get }
    /// Asks about `request`.
    func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer
}

/// The default: nobody is there to approve, so every call that needs approval is refused with
/// "approval required".
package struct RefusingApprover: Approver {
    /// Told about each refusal (a run says once on stderr which option would have asked someone).
    private let onRefusal: (@Sendable (ApprovalRequest) -> Void)?

    /// Creates the approver; `onRefusal` is told about each call it refuses.
    package init(onRefusal: (@Sendable (ApprovalRequest) -> Void)? = nil) {
        self.onRefusal = onRefusal
    }
    /// `none`.
    package var identity: String { "none" }
    /// Always refuses.
    package func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        onRefusal?(request)
        return ApprovalAnswer(approved: false, answer: "approval required")
    }
}

/// `--approver 'COMMAND ARG...'`: runs the command (no shell; the string is split on spaces, with
/// single or double quotes grouping), writes the call as JSON on its stdin, and approves when it exits
/// with status 0 within the timeout. Its output is ignored; it is killed at the timeout.
package struct CommandApprover: Approver {
    /// The program and its arguments.
    package let command: [String]
    /// How long the command may take (also bounded by the call's deadline).
    package let timeout: Duration

    /// Parses `commandLine`; `nil` when it is empty or has an unterminated quote.
    package init?(commandLine: String, timeout: Duration = .seconds(60)) {
        guard let words = splitCommandLine(commandLine), !words.isEmpty else { return nil }
        self.command = words
        self.timeout = timeout
    }

    /// `command:` + the program.
    package var identity: String { "command:" + command.joined(separator: " ") }

    /// Why the program cannot run, or `nil` when it is an executable file: a path (with a `/`) as given, a bare name
    /// on `searchPath` (`PATH`), as `/usr/bin/env` will look it up. Checked when the run starts, so a mistyped
    /// approver is one error then rather than every approval refused later.
    package func programProblem(searchPath: String?) -> String? {
        let program = command[0]
        func isExecutableFile(_ path: String) -> Bool {
            var entry = stat()
            return stat(path, &entry) == 0 && entry.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
        }
        if program.contains("/") {
            var entry = stat()
            guard stat(program, &entry) == 0 else { return "there is no such file" }
            guard entry.st_mode & S_IFMT == S_IFREG else { return "it is not a regular file" }
            return access(program, X_OK) == 0 ? nil : "it is not executable"
        }
        let folders = (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false)
        for folder in folders where isExecutableFile((folder.isEmpty ? "." : String(folder)) + "/" + program) { return nil }
        return "no executable of that name is on PATH"
    }

    /// Runs the command and maps its exit status.
    ///
    /// The command runs in a process group of its own. Its answer is its own exit: a process it left running in the
    /// background (`notify-send ... &`) neither delays the answer nor keeps it from arriving. Past the timeout the
    /// whole group is killed, whatever the command started, and the call is refused with `timeout`; before, a
    /// background child kept a timed-out approver's call waiting until the run's own deadline, with no answer
    /// recorded.
    package func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        let program = command[0]
        let (path, arguments) = program.contains("/") ? (program, command) : ("/usr/bin/env", ["env"] + command)
        var input: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { return ApprovalAnswer(approved: false, answer: "approver failed to start: no pipe") }
        var writeEnd = input[1]
        var readEnd = input[0]
        defer {
            if readEnd >= 0 { close(readEnd) }
            if writeEnd >= 0 { close(writeEnd) }
        }
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFL, fcntl(writeEnd, F_GETFL) | O_NONBLOCK)
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        guard null >= 0 else { return ApprovalAnswer(approved: false, answer: "approver failed to start: no /dev/null") }

        var pid: pid_t = 0
        // A process group of its own, so a timeout kills everything it started.
        let spawned = withSpawnSetup(stdin: readEnd, stdout: null, stderr: null, spawnFlags: Int32(POSIX_SPAWN_SETPGROUP)) { actions, attributes in
            withCStringArray(arguments) { posix_spawn(&pid, path, &actions, &attributes, $0, environ) } ?? ENOMEM
        }
        guard let result = spawned else { return ApprovalAnswer(approved: false, answer: "approver failed to start: spawn attributes") }
        guard result == 0 else {
            return ApprovalAnswer(approved: false, answer: "approver failed to start: \(String(cString: strerror(result)))")
        }
        close(readEnd)
        readEnd = -1

        // A command that exits without reading its input must not take this process down with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let end = min(deadline, ContinuousClock.now.advanced(by: timeout))
        // The request goes in as far as the command reads it (a command that reads nothing is answered all the same).
        var pending = request.json[...]
        var status: Int32 = 0
        while true {
            if writeEnd >= 0 {
                let written = pending.withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
                if written > 0 { pending = pending.dropFirst(written) } else if written < 0, errno != EAGAIN, errno != EINTR { pending = [] }
                // All of it (or all the command would take): end of input, so a command reading to the end goes on.
                if pending.isEmpty {
                    close(writeEnd)
                    writeEnd = -1
                }
            }
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0, errno != EINTR {
                return ApprovalAnswer(approved: false, answer: "approver lost (\(String(cString: strerror(errno))))")
            }
            if ContinuousClock.now >= end {
                // The whole group: a shell approver's `sleep` as well as the shell.
                _ = kill(-pid, SIGKILL)
                _ = kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                return ApprovalAnswer(approved: false, answer: "timeout")
            }
            usleep(writeEnd < 0 ? 2_000 : 500)
        }
        // WIFSIGNALED / WEXITSTATUS by hand: the macros are not imported.
        let signal = status & 0x7F
        if signal != 0 { return ApprovalAnswer(approved: false, answer: "killed by signal \(signal)") }
        let code = (status >> 8) & 0xFF
        return code == 0
            ? ApprovalAnswer(approved: true, answer: "exit 0")
            : ApprovalAnswer(approved: false, answer: "exit \(code)")
    }
}

/// `--approver tty`: shows the call on `/dev/tty` and reads `y` or `yes` (anything else, end of input
/// or the deadline refuses). Calls are asked one at a time.
package struct TerminalApprover: Approver {
    /// The terminal device.
    package let device: String

    /// Creates the approver for `device` (default `/dev/tty`).
    package init(device: String = "/dev/tty") { self.device = device }

    /// `tty:` + the device.
    package var identity: String { "tty:" + device }

    /// Prompts and waits for a line.
    package func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        terminalLock.lock()
        defer { terminalLock.unlock() }
        let fd = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return ApprovalAnswer(approved: false, answer: "no terminal (\(device))") }
        defer { close(fd) }
        // On a line of its own with the terminal's text reset: what the guest wrote to stderr (a forged prompt, then
        // hidden text) cannot hide or imitate this one.
        let prompt = TerminalText.resetBeforeHostText + "\r\n"
            + "peon-wasm: approve? \(request.summary) (grant \(TerminalText.escaped(request.grant))) [y/N] "
        // Only an answer typed after the question is shown counts: a second Enter typed earlier must not approve it.
        // The flush comes before the prompt, not after: a person who reads the prompt and answers at once must not
        // have the answer thrown away (it then waited, unanswered, until the deadline denied the call).
        _ = tcflush(fd, TCIFLUSH)
        _ = prompt.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        var line: [UInt8] = []
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return ApprovalAnswer(approved: false, answer: "timeout") }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + 1)
            guard poll(&descriptor, 1, min(milliseconds, 1000)) >= 0 else {
                return ApprovalAnswer(approved: false, answer: "terminal error")
            }
            guard descriptor.revents != 0 else { continue }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { return ApprovalAnswer(approved: false, answer: "end of input") }
            if byte == 0x0A { break }
            if line.count < 64 { line.append(byte) }
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
        return text == "y" || text == "yes"
            ? ApprovalAnswer(approved: true, answer: "yes")
            : ApprovalAnswer(approved: false, answer: text.isEmpty ? "no" : "no (\(text))")
    }
}

/// One prompt on the terminal at a time.
private let terminalLock = NSLock()

/// Splits `a 'b c' "d"` into words; `nil` on an unterminated quote.
func splitCommandLine(_ line: String) -> [String]? {
    var words: [String] = []
    var current = ""
    var inWord = false
    var quote: Character?
    for character in line {
        if let open = quote {
            if character == open { quote = nil } else { current.append(character) }
        } else if character == "'" || character == "\"" {
            quote = character
            inWord = true
        } else if character == " " || character == "\t" {
            if inWord { words.append(current) }
            current = ""
            inWord = false
        } else {
            current.append(character)
            inWord = true
        }
    }
    guard quote == nil else { return nil }
    if inWord { words.append(current) }
    return words
}
