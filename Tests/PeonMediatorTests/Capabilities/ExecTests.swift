import Foundation
@testable import PeonMediator
import PeonInterface
import PeonTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Threat: a guest turns `exec` into a shell (metacharacters, a relative program found on `PATH`),
/// reads the host's environment or descriptors, floods the host with output, or leaves processes
/// running after the call. The programs used (`/bin/sh`, `/bin/echo`, ...) are the tests' choice, as
/// a grant's would be.
@Suite struct ExecTests {
    static func run(
        _ program: String, _ arguments: [String] = [], stdin: [UInt8] = [], environment: [String: String] = [:],
        timeout: Duration = .seconds(20), maxOutputBytes: Int = 1 << 20, in directory: String = "/"
    ) throws(HostError) -> ExecOutput {
        try ExecCapability(workingDirectory: directory).run(
            program: program, arguments: arguments, stdin: stdin, environment: environment,
            timeout: timeout, maxOutputBytes: maxOutputBytes)
    }

    @Test(arguments: ["sh", "bin/sh", "./sh", "", "/bin/../bin/sh", "/bin//sh", "/bin/./sh"])
    func aRelativeOrUnnormalizedProgramIsRefused(program: String) {
        #expect(hostError { () throws(HostError) in try Self.run(program, ["-c", "true"]) }?.code == .invalidArgument)
    }

    @Test func shellMetacharactersReachTheProgramLiterally() throws {
        try withTemporaryDirectory { url in
            let hostile = ["; touch pwned", "$(touch pwned)", "`touch pwned`", "| touch pwned", "&& touch pwned", "*", "~", "$HOME"]
            let output = try Self.run("/bin/echo", hostile, in: url.path)
            #expect(String(decoding: output.stdout, as: UTF8.self) == hostile.joined(separator: " ") + "\n")
            #expect(!FileManager.default.fileExists(atPath: url.path + "/pwned"))
        }
    }

    @Test("the program starts with no blocked and no ignored signal, whatever the host's mask and dispositions")
    func theChildsSignalsAreReset() throws {
        // Block SIGUSR1 on this thread (spawning inherits the thread's mask) and ignore SIGPIPE in the process
        // (as servers do); the child must see neither.
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR1)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &block, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let oldPipe = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, oldPipe) }
        let status = String(decoding: try Self.run("/bin/cat", ["/proc/self/status"]).stdout, as: UTF8.self)
        let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
        }, uniquingKeysWith: { first, _ in first })
        #expect(fields["SigBlk"] == "0000000000000000", "status: \(status)")
        // glibc's posix_spawn leaves its two internal signals (32 and 33, used for thread cancellation and setxid)
        // ignored in the child on purpose, and no program can name them; every other signal must be at its default.
        let ignored = UInt64(fields["SigIgn"] ?? "", radix: 16)
        let glibcInternal: UInt64 = (1 << 31) | (1 << 32)
        #expect(ignored.map { $0 & ~glibcInternal } == 0, "status: \(status)")
    }

    @Test func theEnvironmentIsExactlyWhatWasGiven() throws {
        // The test process has PATH, HOME and more; none of it may reach the child.
        let output = try Self.run("/usr/bin/env", environment: ["LANG": "C.UTF-8", "A": "1"])
        #expect(String(decoding: output.stdout, as: UTF8.self) == "A=1\nLANG=C.UTF-8\n")
        let empty = try Self.run("/usr/bin/env")
        #expect(empty.stdout.isEmpty)
    }

    @Test(arguments: [["": "x"], ["A=B": "x"], ["A": "x\u{0}y"]])
    func aMalformedEnvironmentIsRefused(environment: [String: String]) {
        #expect(hostError { () throws(HostError) in try Self.run("/usr/bin/env", environment: environment) }?.code == .invalidArgument)
    }

    @Test func aNULInAnArgumentIsRefused() {
        #expect(hostError { () throws(HostError) in try Self.run("/bin/echo", ["a\u{0}b"]) }?.code == .invalidArgument)
    }

    @Test func theProgramRunsInTheFixedWorkingDirectory() throws {
        try withTemporaryDirectory { url in
            let output = try Self.run("/bin/pwd", in: url.path)
            #expect(String(decoding: output.stdout, as: UTF8.self) == url.path + "\n")
        }
    }

    @Test func stdinIsDeliveredAndLargeStreamsBothWaysDoNotDeadlock() throws {
        let input = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let output = try Self.run("/bin/cat", stdin: input, maxOutputBytes: 2 << 20)
        #expect(output.code == 0)
        // A Bool, not `==` on the arrays: a failing comparison of two 1 MiB arrays makes the test library diff them
        // for minutes, which looks like a hang.
        #expect(output.stdout.count == input.count)
        #expect(output.stdout.elementsEqual(input), "stdout differs from the stdin sent")
        let both = try Self.run("/bin/sh", ["-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"])
        #expect(both.stdout.count == 300_000 && both.stderr.count == 300_000)
    }

    @Test func anEmptyStdinIsAtEndOfFileAndSmallStdinArrivesWhole() throws {
        // `cat` ends only at end of file: with the host still holding stdin open it would run into the timeout.
        let empty = try Self.run("/bin/cat", stdin: [], timeout: .seconds(10))
        #expect(empty.code == 0 && empty.stdout.isEmpty)
        let reads = try Self.run("/bin/sh", ["-c", "read line; echo \"got:$line\"; cat /dev/stdin | wc -c"], stdin: Array("hi\n".utf8))
        #expect(String(decoding: reads.stdout, as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                == ["got:hi", "0"])
    }

    @Test func outputStreamsArePipesThatCannotCarryDescriptorsBack() throws {
        // A socket would let the program pass the host descriptors (SCM_RIGHTS); a pipe carries bytes only.
        let kinds = try Self.run("/bin/sh", ["-c", "stat -L -c %F /dev/stdout; stat -L -c %F /dev/stderr >&2"])
        #expect(String(decoding: kinds.stdout, as: UTF8.self) == "fifo\n")
        #expect(String(decoding: kinds.stderr, as: UTF8.self) == "fifo\n")
    }

    @Test func aChildThatIgnoresStdinDoesNotHurtTheHost() throws {
        let output = try Self.run("/bin/true", stdin: [UInt8](repeating: 1, count: 4 << 20))
        #expect(output.code == 0)
    }

    @Test func exitCodesAndSignalsAreReported() throws {
        #expect(try Self.run("/bin/sh", ["-c", "exit 7"]).code == 7)
        #expect(try Self.run("/bin/sh", ["-c", "kill -9 $$"]).code == 128 + 9)
        let stderr = try Self.run("/bin/sh", ["-c", "echo oops >&2; exit 1"])
        #expect(stderr.code == 1 && String(decoding: stderr.stderr, as: UTF8.self) == "oops\n")
    }

    @Test func outputOverTheCapKillsTheProgramAndIsLimitExceeded() {
        let error = hostError { () throws(HostError) in try Self.run("/usr/bin/yes", maxOutputBytes: 1000) }
        #expect(error?.code == .limitExceeded)
        let stderr = hostError { () throws(HostError) in try Self.run("/bin/sh", ["-c", "yes >&2"], maxOutputBytes: 1000) }
        #expect(stderr?.code == .limitExceeded)
    }

    /// The exit is awaited on the child's pidfd, or (on a kernel without `pidfd_open`) by polling `waitpid`:
    /// both collect the status of a program that closed its output long before it exited, and of one that exits
    /// at once.
    @Test(arguments: [true, false])
    func theExitStatusIsCollectedWhenOutputClosesBeforeTheExit(waitsOnPidfd: Bool) throws {
        let capability = ExecCapability(workingDirectory: "/", waitsOnPidfd: waitsOnPidfd)
        let late = try capability.run(program: "/bin/sh", arguments: ["-c", "echo early; exec >&- 2>&-; sleep 0.3; exit 7"],
                                      stdin: [], environment: [:], timeout: .seconds(20), maxOutputBytes: 1 << 10)
        #expect(late.code == 7)
        #expect(late.stdout == Array("early\n".utf8))
        for _ in 0..<20 {
            let quick = try capability.run(program: "/bin/sh", arguments: ["-c", "exit 3"], stdin: [], environment: [:],
                                           timeout: .seconds(20), maxOutputBytes: 1 << 10)
            #expect(quick.code == 3)
        }
    }

    @Test func aMissingProgramIsNotFound() {
        #expect(hostError { () throws(HostError) in try Self.run("/nonexistent/program") }?.code == .notFound)
    }

    @Test func noHostDescriptorLeaksIntoTheChild() throws {
        // A descriptor opened without close-on-exec must still not reach the child.
        let leaky = open("/etc/hostname", O_RDONLY)
        defer { if leaky >= 0 { close(leaky) } }
        let output = try Self.run("/bin/ls", ["/proc/self/fd"])
        let descriptors = String(decoding: output.stdout, as: UTF8.self).split(separator: "\n")
        // 0, 1, 2 and the descriptor `ls` itself opened to list the folder.
        #expect(leaky > 2)
        #expect(descriptors.count <= 4)
    }

    @Test func theProgramLeadsItsOwnSessionWithoutATerminal() throws {
        let output = try Self.run("/bin/sh", ["-c", "cat /proc/$$/stat"])
        let text = String(decoding: output.stdout, as: UTF8.self)
        let pid = try #require(text.split(separator: " ").first.flatMap { Int($0) })
        let close = try #require(text.lastIndex(of: ")"))
        // After the command name: state, ppid, pgrp, session, tty_nr.
        let fields = text[text.index(after: close)...].split(separator: " ")
        #expect(fields.count > 4)
        #expect(Int(fields[2]) == pid)
        #expect(Int(fields[3]) == pid)
        #expect(fields[4] == "0")
    }

    @Test func theTimeoutKillsTheProgramAndItsWholeProcessGroup() throws {
        try withTemporaryDirectory { url in
            let start = ContinuousClock.now
            let error = hostError { () throws(HostError) in
                try Self.run("/bin/sh", ["-c", "/bin/sleep 30 & echo $! > child.pid; wait"], timeout: .milliseconds(500), in: url.path)
            }
            #expect(error?.code == .timeout)
            #expect(ContinuousClock.now - start < .seconds(10))
            let pid = try #require(Int32(String(contentsOfFile: url.path + "/child.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(Self.processEnds(pid))
        }
    }

    @Test func aBackgroundProcessLeftBehindIsKilledWhenTheProgramExits() throws {
        try withTemporaryDirectory { url in
            let start = ContinuousClock.now
            let output = try Self.run("/bin/sh", ["-c", "/bin/sleep 30 & echo $! > child.pid"], in: url.path)
            #expect(output.code == 0)
            #expect(ContinuousClock.now - start < .seconds(10))
            let pid = try #require(Int32(String(contentsOfFile: url.path + "/child.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(Self.processEnds(pid))
        }
    }

    /// Whether `pid` is gone (or a zombie waiting for its new parent) within a few seconds.
    static func processEnds(_ pid: Int32) -> Bool {
        for _ in 0..<300 {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            // The state follows the parenthesized command name.
            if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") {
                return true
            }
            usleep(10_000)
        }
        return false
    }
}

extension ExecCapability {
    /// Runs a program given as text, parsed the way the mediator parses it (``ProgramPath``).
    func run(
        program: String, arguments: [String], stdin: [UInt8], environment: [String: String], timeout: Duration,
        maxOutputBytes: Int
    ) throws(HostError) -> ExecOutput {
        try run(program: ProgramPath(parsing: program), arguments: arguments, stdin: stdin, environment: environment,
                timeout: timeout, maxOutputBytes: maxOutputBytes)
    }
}
