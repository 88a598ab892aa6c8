import Foundation
import PeonTestSupport
import Synchronization
import Testing

/// An agent run end to end through the CLI: allowed calls act and are audited; with no grants or a
/// narrowed grant the same calls are denied, audited, and leave the world untouched; a run killed at
/// its deadline still ends in the log; and the log verifies afterwards.
///
/// The fixture, in a fresh temporary folder that is also the run's working folder:
///
///     note.txt                               the file the agent reads (its input)
///     modules/wat-minimal/out/               where the agent appends its ledger line
///     grants.toml                            written per test
///     audit.jsonl                            the run's audit log
@Suite("agent runs under grants", .serialized)
struct AgentRunTests {
    static let agent = repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm").path

    struct Fixture {
        let folder: URL
        var note: URL { folder.appendingPathComponent("note.txt") }
        var ledger: URL { folder.appendingPathComponent("modules/wat-minimal/out/ledger.txt") }
        var grants: URL { folder.appendingPathComponent("grants.toml") }
        var audit: URL { folder.appendingPathComponent("audit.jsonl") }

        init(_ folder: URL) throws {
            self.folder = folder
            try Data("twelve bytes".utf8).write(to: note)
            try FileManager.default.createDirectory(at: ledger.deletingLastPathComponent(), withIntermediateDirectories: true)
        }

        func writeGrants(_ text: String) throws { try Data(text.utf8).write(to: grants) }

        func run(_ extra: [String] = [], module: String = AgentRunTests.agent) throws -> CommandResult {
            try runPeonWasm(["run", module, "--input", note.path, "--audit", audit.path] + extra, directory: folder)
        }

        /// The audit log's entries as dictionaries.
        func entries() throws -> [[String: Any]] {
            let text = try String(contentsOf: audit, encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            }
        }

        func entries(call: String) throws -> [[String: Any]] { try entries().filter { $0["call"] as? String == call } }

        func verify() throws -> CommandResult { try runPeonWasm(["audit", "verify", audit.path]) }
    }

    /// An agent whose `run` loops forever without a host call.
    static let spinner = """
        (module (memory (export "memory") 1)
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
          (func (export "run") (param i32 i32) (result i32) (loop (br 0)) (i32.const 0)))
        """

    static let fullGrants = """
        module = "ledger"
        [[fs]]
        paths = ["note.txt"]
        allow = ["read"]
        [[fs]]
        paths = ["modules/wat-minimal/out/ledger.txt"]
        allow = ["append"]
        """

    @Test("an --input-file that is missing or not UTF-8 is exit 78 with one line, and the run's end says error")
    func aBadInputFileIsAConfigurationError() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.fullGrants)
            let binary = folder.appendingPathComponent("latin1.txt")
            try Data([0x63, 0x61, 0x66, 0xE9, 0xFF]).write(to: binary)
            for (file, words) in [(binary.path, "not UTF-8"), (folder.path + "/absent.txt", "no such file")] {
                let result = try runPeonWasm(["run", Self.agent, "--input-file", file, "--grants", fixture.grants.path,
                                              "--audit", fixture.audit.path], directory: folder)
                #expect(result.status == 78, "\(result.stderr)")
                let lines = result.stderr.split(separator: "\n")
                #expect(lines.count == 1 && lines.first?.hasPrefix("peon-wasm: error: ") == true && result.stderr.contains(words),
                        "\(result.stderr)")
                #expect(try fixture.entries(call: "run.end").last?["outcome"] as? String == "error")
            }
            #expect(try fixture.verify().status == 0)
        }
    }

    @Test("granted calls act, and every decision is in a log that verifies")
    func grantedRunActsAndIsAudited() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.fullGrants)
            let result = try fixture.run(["--grants", fixture.grants.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "\(fixture.note.path): 12 bytes\n")
            #expect(try String(contentsOf: fixture.ledger, encoding: .utf8) == "\(fixture.note.path): 12 bytes\n")
            let read = try fixture.entries(call: "fs.read")
            #expect(read.first?["decision"] as? String == "allow")
            #expect(read.first?["resource"] as? String == "fs:\(fixture.note.path)")
            #expect(read.first?["module"] as? String == "ledger")
            #expect(try fixture.entries(call: "fs.append").first?["decision"] as? String == "allow")
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "ok")
            #expect(try fixture.entries().first?["call"] as? String == "run.start")
            #expect(try fixture.verify().status == 0)
        }
    }

    @Test("runs started at the same time on one audit log all succeed, into one log that verifies")
    func concurrentRunsShareOneLog() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.fullGrants)
            let runs = 4
            let statuses = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: runs) { _ in
                let outcome: String
                do {
                    let result = try fixture.run(["--grants", fixture.grants.path])
                    outcome = result.status == 0 ? "ok" : "exit \(result.status): \(result.stderr)"
                } catch {
                    outcome = "\(error)"
                }
                statuses.withLock { $0.append(outcome) }
            }
            let outcomes = statuses.withLock { $0 }
            #expect(outcomes == Array(repeating: "ok", count: runs), "\(outcomes)")
            #expect(try fixture.entries(call: "run.start").count == runs)
            #expect(try fixture.entries(call: "run.end").count == runs)
            #expect(try fixture.entries().enumerated().allSatisfy { ($0.element["seq"] as? Int) == $0.offset })
            let verified = try fixture.verify()
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
            // Progress is for terminals: piped, verify prints its verdict and nothing on stderr.
            #expect(verified.stderr.isEmpty, "\(verified.stderr)")
        }
    }

    @Test("with no grants every call is denied and audited, the module still runs, and nothing changes")
    func defaultDeny() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let result = try fixture.run()
            #expect(result.status == 1)
            #expect(result.stderr.contains("is not granted to minimal"))
            // A newcomer is told once why, not left to think the module broken.
            let note = "peon-wasm: note: a host call was denied because no --grants or --policy was given"
            #expect(result.stderr.components(separatedBy: note).count == 2, "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fixture.ledger.path))
            let read = try fixture.entries(call: "fs.read")
            #expect(read.first?["decision"] as? String == "deny")
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "agent-error")
            #expect(try fixture.verify().status == 0)
        }
    }

    @Test("a narrowed grant denies exactly the removed capability, and the log says so")
    func narrowedGrantDeniesTheRemovedCall() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("""
                module = "ledger"
                [[fs]]
                paths = ["note.txt"]
                allow = ["read"]
                """)
            let result = try fixture.run(["--grants", fixture.grants.path])
            #expect(result.status == 1)
            #expect(!FileManager.default.fileExists(atPath: fixture.ledger.path))
            #expect(try fixture.entries(call: "fs.read").first?["decision"] as? String == "allow")
            let append = try fixture.entries(call: "fs.append")
            #expect(append.count == 1)
            #expect(append.first?["decision"] as? String == "deny")
            #expect(try fixture.verify().status == 0)
        }
    }

    @Test("a module that does not match the grants' sha256 pin is refused before it runs (exit 78)")
    func shaPinIsEnforced() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("sha256 = \"\(String(repeating: "0", count: 64))\"\n" + Self.fullGrants)
            let result = try fixture.run(["--grants", fixture.grants.path])
            #expect(result.status == 78)
            #expect(result.stderr.hasPrefix("peon-wasm: error: refusing to run"))
            #expect(!FileManager.default.fileExists(atPath: fixture.ledger.path))
        }
    }

    @Test("a malformed grants file is a one-line error naming the file and line (exit 78)")
    func malformedGrantsAreRefused() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"ledger\"\n[[fs]]\npaths = [\"note.txt\"]\nallow = [\"read\"]\nteleport = true\n")
            let result = try fixture.run(["--grants", fixture.grants.path])
            #expect(result.status == 78)
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains("grants.toml:5"))
        }
    }

    /// A timeout under a second is that long, not zero: the supervisor passed its worker the whole seconds only, and
    /// `--timeout 900ms` stopped every run at once (found reviewing this change).
    @Test("a --timeout under a second lets a quick run finish")
    func aTimeoutUnderASecondIsNotZero() throws {
        try withTemporaryDirectory { folder in
            let result = try runPeonWasm(["run", repositoryRoot.appendingPathComponent("modules/hello/hello.wat").path, "--timeout", "900ms",
                                          "--audit", folder.appendingPathComponent("a.jsonl").path], directory: folder)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stdout.isEmpty)
        }
    }

    @Test("a run killed at its deadline still ends in the audit log, which verifies")
    func killedRunIsRecorded() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let spinner = folder.appendingPathComponent("spin.wat")
            try Data(Self.spinner.utf8).write(to: spinner)
            let result = try fixture.run(["--timeout", "500ms"], module: spinner.path)
            #expect(result.status == 124)
            let end = try #require(try fixture.entries(call: "run.end").first)
            #expect(end["outcome"] as? String == "timeout")
            #expect(try fixture.entries(call: "run.start").first?["run"] as? String == end["run"] as? String)
            #expect(try fixture.verify().status == 0)
        }
    }

    /// `--input-file -` reads the agent's input from standard input, as `policy eval` reads `-`; it was "no such file".
    /// With `--stdin` too (both want standard input) it is a usage error.
    @Test("--input-file - is standard input; with --stdin it is a usage error")
    func inputFromStandardInput() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.fullGrants)
            let result = try runPeonWasm(["run", Self.agent, "--input-file", "-", "--audit", fixture.audit.path,
                                          "--grants", fixture.grants.path], stdin: fixture.note.path, directory: folder)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("12 bytes"), "\(result.stdout)")
            let both = try runPeonWasm(["run", Self.agent, "--input-file", "-", "--stdin", "--audit", fixture.audit.path],
                                       stdin: "", directory: folder)
            #expect(both.status == 64 && both.stderr.contains("both want standard input"), "\(both.stderr)")
        }
    }

    /// The worker counted its `--timeout` from its own start, later than the supervisor, which kills it 500 ms after
    /// its own clock ends. A worker slow to start (here 1.5 s, by a test hook) was still waiting for an approval when
    /// it was killed, and the log never said which call was waiting. The worker now ends with the supervisor's clock:
    /// the approval times out, is recorded as the call's denial, and the run ends on its own.
    @Test("a worker slow to start still ends with the supervisor's clock; a pending approval is recorded")
    func aSlowWorkerEndsWithTheSupervisorsClock() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.fullGrants.replacingOccurrences(of: "allow = [\"read\"]", with: "allow = [\"read\"]\napproval = true"))
            let approver = folder.appendingPathComponent("slow-approver.sh")
            try Data("#!/bin/sh\nexec sleep 60\n".utf8).write(to: approver)
            #expect(chmod(approver.path, 0o755) == 0)
            let result = try runPeonWasm(["run", Self.agent, "--input", fixture.note.path, "--audit", fixture.audit.path,
                                          "--grants", fixture.grants.path, "--approver", approver.path, "--timeout", "2s"],
                                         environment: ["PEON_WASM_TEST_START_DELAY_MS": "1500"], directory: folder)
            let reads = try fixture.entries(call: "fs.read")
            #expect(reads.count == 1 && reads.first?["decision"] as? String == "deny", "\(reads) \(result.stderr)")
            #expect((reads.first?["reason"] as? String)?.contains("not approved (timeout)") == true, "\(reads)")
            // The run ended once, on its own (a worker the supervisor kills records nothing itself).
            #expect(try fixture.entries(call: "run.end").count == 1, "\(result.stderr)")
            #expect(try fixture.verify().status == 0)
        }
    }

    /// An agent's answer and its error text are output like any other: they count against `--max-output`
    /// together with what the guest wrote. A guest answering 100 bytes under a 50-byte cap is the output
    /// limit (73) and none of the answer is shown; it used to be printed whole, however big.
    @Test("an agent's answer or error text past --max-output is exit 73 and is not shown", arguments: [0, 1])
    func answerCountsAgainstMaxOutput(tag: Int) throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let answerer = folder.appendingPathComponent("answer.wat")
            let answer = String(repeating: "A", count: 90) + "0123456789"
            try Data("""
                (module
                  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
                  (memory (export "memory") 1)
                  (data (i32.const 100) "\(answer)")
                  (data (i32.const 16) "\\0\(tag)\\00\\00\\00\\64\\00\\00\\00\\64\\00\\00\\00")
                  (data (i32.const 300) "\\be\\00\\00\\00\\0a\\00\\00\\00")
                  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
                  (func (export "run") (param i32 i32) (result i32)
                    (drop (call $w (i32.const 2) (i32.const 300) (i32.const 1) (i32.const 400)))
                    (i32.const 16)))
                """.utf8).write(to: answerer)
            let stream: KeyPath<CommandResult, String> = tag == 0 ? \.stdout : \.stderr
            // 10 bytes written by the guest plus the 100-byte answer: 110 fit, 109 do not.
            let fits = try fixture.run(["--max-output", "110"], module: answerer.path)
            #expect(fits[keyPath: stream].contains(answer))
            #expect(fits.status == (tag == 0 ? 0 : 1))
            let cut = try fixture.run(["--max-output", "109"], module: answerer.path)
            #expect(cut.status == 73)
            #expect(!cut.stdout.contains("AAAA") && !cut.stderr.contains("AAAA"))
            #expect(cut.stderr.contains("100 bytes") && cut.stderr.contains("--max-output"))
            let end = try #require(try fixture.entries(call: "run.end").last)
            #expect((end["outcome"] as? String)?.contains("output") == true)
            #expect(try fixture.verify().status == 0)
        }
    }

    /// A stop that reaches the worker after its `run.start` is written but before its monitor knows the session: the
    /// worker exited at once with the stop's code, which the supervisor took for "run.end written", so the run had a
    /// `run.start` and no `run.end`, and the log still verified. The stop now waits for the session and ends the run.
    /// (`PEON_WASM_TEST_ATTACH_DELAY_MS` widens that moment from microseconds to two seconds.)
    @Test("a stop between run.start and the worker's monitor learning of the run still writes run.end")
    func aStopRightAfterRunStartIsRecorded() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let spinner = folder.appendingPathComponent("spin.wat")
            try Data(Self.spinner.utf8).write(to: spinner)
            let marker = "attach-\(UUID().uuidString)"
            let audit = folder.appendingPathComponent("\(marker).jsonl")
            let finished = DispatchSemaphore(value: 0)
            let outcome = RunOutcome()
            Thread {
                outcome.result = try? runPeonWasm(["run", spinner.path, "--audit", audit.path, "--timeout", "30s"],
                                                  environment: ["PEON_WASM_TEST_ATTACH_DELAY_MS": "2000"], directory: folder)
                finished.signal()
            }.start()
            // Wait for run.start, then stop the supervisor (the process whose arguments name the log but not a worker's fd).
            let giveUp = Date().addingTimeInterval(20)
            while Date() < giveUp, (try? String(contentsOf: audit, encoding: .utf8))?.contains("\"run.start\"") != true {
                Thread.sleep(forTimeInterval: 0.01)
            }
            let supervisor = try #require(processes().first {
                $0.arguments.contains(audit.path) && !$0.arguments.contains("--supervisor-fd")
            })
            #expect(kill(supervisor.pid, SIGTERM) == 0)
            #expect(finished.wait(timeout: .now() + 30) == .success)
            let result = try #require(outcome.result)
            #expect(result.status == 143, "\(result.stderr)")
            _ = fixture
            let lines = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n")
            let ends = lines.filter { $0.contains("\"call\":\"run.end\"") }
            #expect(ends.count == 1 && ends.first?.contains("\"outcome\":\"signal:TERM\"") == true, "\(ends)")
            #expect(try runPeonWasm(["audit", "verify", audit.path]).status == 0)
        }
    }

    /// A worker that dies (here: SIGKILL from outside) while a program it started is running must not leave
    /// that program behind: the supervisor is the subreaper, and kills and reaps every orphan it inherits.
    @Test("a worker killed while its program runs leaves no orphan process")
    func killedWorkerLeavesNoOrphan() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let marker = "29.8125"  // sleep's argument, to find the child among all processes
            try fixture.writeGrants("""
                module = "sleeper"
                [[exec]]
                program = "/usr/bin/sleep"
                args = ["\(marker)"]
                timeout = "60s"
                """)
            let module = folder.appendingPathComponent("sleeper.wat")
            try Data("""
                (module
                  (import "peon:host/exec@0.1.0" "run" (func $run (param i32 i32 i32 i32 i32 i32 i32)))
                  (memory (export "memory") 1)
                  (data (i32.const 100) "/usr/bin/sleep")
                  (data (i32.const 200) "\(marker)")
                  (data (i32.const 300) "\\c8\\00\\00\\00\\07\\00\\00\\00")
                  (global $heap (mut i32) (i32.const 4096))
                  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
                    (local $p i32)
                    (local.set $p (global.get $heap))
                    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
                    (local.get $p))
                  (func (export "run") (param i32 i32) (result i32)
                    (call $run (i32.const 100) (i32.const 14) (i32.const 300) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 2048))
                    (i32.const 3000)))
                """.utf8).write(to: module)
            let finished = DispatchSemaphore(value: 0)
            let outcome = RunOutcome()
            Thread {
                outcome.result = try? fixture.run(["--grants", fixture.grants.path, "--timeout", "60s"], module: module.path)
                finished.signal()
            }.start()
            // Wait for the program, then kill its parent (the worker) the hard way.
            var child: (pid: Int32, parent: Int32)?
            let giveUp = Date().addingTimeInterval(30)
            while child == nil && Date() < giveUp {
                child = processes().first { $0.arguments == ["/usr/bin/sleep", marker] }.map { ($0.pid, $0.parent) }
                if child == nil { Thread.sleep(forTimeInterval: 0.02) }
            }
            let sleeper = try #require(child, "the guest's program never started")
            #expect(kill(sleeper.parent, SIGKILL) == 0)
            #expect(finished.wait(timeout: .now() + 30) == .success)
            let result = try #require(outcome.result)
            #expect(result.status != 0)
            #expect(!processes().contains { $0.pid == sleeper.pid && $0.arguments == ["/usr/bin/sleep", marker] },
                    "the program outlived its killed worker")
            let end = try #require(try fixture.entries(call: "run.end").first)
            #expect(end["outcome"] as? String == "crashed")
        }
    }

    /// Every process's pid, parent and argument vector, from /proc.
    private func processes() -> [(pid: Int32, parent: Int32, arguments: [String])] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in
            guard let pid = Int32(name),
                  let commandLine = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
                  let status = try? String(contentsOfFile: "/proc/\(name)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
                  let parent = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
            else { return nil }
            let arguments = commandLine.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
            return (pid, parent, arguments)
        }
    }
}

/// A run's result, handed from the thread that waited for it.
private final class RunOutcome: @unchecked Sendable {
    // Written before the semaphore is signalled, read after it is waited on.
    var result: CommandResult?
}
