import Foundation
import PeonTestSupport
import Testing

/// Nothing a run starts outlives it, whatever ends `peon-wasm`; and the signals a user sends to the
/// `peon-wasm` they started (the supervisor) do what docs/security.md ("Process containment") and docs/cli.md ("Signals") say.
///
/// Each test runs an agent that starts, through `exec`, a program that double-forks through two
/// `setsid` levels into a detached `sleep` (the "daemon"), then a `sleep` it waits for (the "direct"
/// program). The test finds both in `/proc`, finds the supervisor as the direct program's grandparent
/// (its parent is the worker), signals the supervisor, and checks what is left.
@Suite("process containment and signals", .serialized)
struct ProcessContainmentTests {
    /// One scenario: which signal the supervisor gets, under which forced containment (`nil`: automatic).
    struct Scenario: Sendable, CustomStringConvertible {
        let signal: Int32
        let containment: String?
        let index: Int
        var description: String { "signal \(signal), containment \(containment ?? "automatic")" }
        /// `sleep` arguments unique to this scenario, to find its processes among all others.
        var daemonMarker: String { "27.\(index)1" }
        var directMarker: String { "26.\(index)3" }
    }

    static let stops = [
        Scenario(signal: SIGTERM, containment: nil, index: 1),
        Scenario(signal: SIGINT, containment: nil, index: 2),
        Scenario(signal: SIGTERM, containment: "subreaper", index: 3),
        // Ctrl-\ on a terminal: it used to reach the Swift runtime, which printed a crash backtrace.
        Scenario(signal: SIGQUIT, containment: nil, index: 8),
    ]

    static let kills = [
        Scenario(signal: SIGKILL, containment: nil, index: 4),
        Scenario(signal: SIGKILL, containment: "user-namespace", index: 5),
        Scenario(signal: SIGKILL, containment: "subreaper", index: 6),
    ]

    @Test("SIGTERM, SIGINT or SIGQUIT to peon-wasm stops the run: its programs die, run.end says so, exit 128+signal", arguments: stops)
    func terminationStopsTheRunCleanly(scenario: Scenario) throws {
        try withTemporaryDirectory { folder in
            let run = try ContainedRun(folder: folder, scenario: scenario)
            let started = try run.waitForPrograms()
            #expect(kill(started.supervisor, scenario.signal) == 0)
            let result = try run.result()
            #expect(result.status == 128 + scenario.signal, "stderr: \(result.stderr)")
            let name = [SIGTERM: "TERM", SIGINT: "INT", SIGQUIT: "QUIT"][scenario.signal] ?? "?"
            #expect(result.stderr.contains("peon-wasm received SIG\(name); the run was stopped"))
            #expect(!result.stderr.contains("Backtrace") && !result.stderr.contains("Crash"), "stderr: \(result.stderr)")
            #expect(run.waitUntilGone(started), "a program the run started outlived it")
            let ends = try run.entries(call: "run.end")
            #expect(ends.count == 1)
            #expect(ends.first?["outcome"] as? String == "signal:\(name)")
            let verified = try runPeonWasm(["audit", "verify", run.audit.path])
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        }
    }

    @Test("SIGKILL of peon-wasm leaves no program behind, a double-setsid daemon included, and run.end says supervisor-killed",
          arguments: kills)
    func killedSupervisorLeavesNothing(scenario: Scenario) throws {
        try withTemporaryDirectory { folder in
            let run = try ContainedRun(folder: folder, scenario: scenario)
            let started = try run.waitForPrograms()
            let ours = namespace("pid", of: getpid())
            switch scenario.containment {
            case "subreaper":
                #expect(namespace("pid", of: started.worker) == ours)
            case "user-namespace":
                #expect(namespace("user", of: started.worker) != namespace("user", of: getpid()))
                #expect(namespace("pid", of: started.worker) != ours)
            default:
                #expect(namespace("pid", of: started.worker) != ours, "as root the worker gets its own PID namespace")
            }
            #expect(kill(started.supervisor, SIGKILL) == 0)
            let result = try run.result()
            #expect(result.status == SIGKILL)
            #expect(run.waitUntilGone(started), "a program the run started outlived the killed peon-wasm")
            let ends = try run.waitForEntries(call: "run.end")
            #expect(ends.count == 1)
            #expect(ends.first?["outcome"] as? String == "supervisor-killed")
            let verified = try runPeonWasm(["audit", "verify", run.audit.path])
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
            let warned = result.stderr.contains("peon-wasm: warning: no PID namespace for this run")
            #expect(warned == (scenario.containment == "subreaper"), "stderr: \(result.stderr)")
        }
    }

    @Test("A program the run started, as the same user, cannot read the worker's or the supervisor's memory or environment through /proc",
          arguments: ["subreaper", "user-namespace"])
    func aProgramOfTheRunCannotInspectIt(containment: String) throws {
        let asRoot = getuid() == 0
        let setpriv = "/usr/bin/setpriv"
        let user = asRoot ? [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        if containment == "user-namespace" {
            // Only where this user may make a user namespace at all (a kernel or AppArmor setting may forbid it):
            // the worker's id maps must still be writable by an unprivileged supervisor that is not dumpable.
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: user.first ?? "/usr/bin/unshare")
            probe.arguments = Array(user.dropFirst()) + (user.isEmpty ? [] : ["/usr/bin/unshare"]) + ["--user", "--pid", "--fork", "/bin/true"]
            probe.standardError = FileHandle.nullDevice
            guard (try? probe.run()) != nil else { return }
            probe.waitUntilExit()
            guard probe.terminationStatus == 0 else { return }
        }
        try withTemporaryDirectory { folder in
            // Root may read any process, so as root the whole run goes to an unprivileged user (65534), whose
            // program then tries to read its own user's peon-wasm processes.
            if asRoot {
                try #require(FileManager.default.isExecutableFile(atPath: setpriv), "as root this test needs setpriv (util-linux)")
                try #require(chown(folder.path, 65534, 65534) == 0 && chmod(folder.path, 0o755) == 0)
            }
            let binary = folder.appendingPathComponent("peon-wasm")
            try FileManager.default.copyItem(at: peonWasmExecutable, to: binary)
            let grants = folder.appendingPathComponent("grants.toml")
            let audit = folder.appendingPathComponent("audit.jsonl")
            let out = folder.path
            // The worker is this shell's parent and the supervisor the worker's (field 4 of /proc/PID/stat), read from
            // /proc rather than $PPID: in a PID namespace $PPID is 1, while /proc still numbers as the host does.
            let attack = "read -r a b c p rest < /proc/self/stat; read -r a b c s rest < /proc/$p/stat; "
                + "cat /proc/$p/environ > \(out)/worker.env 2>/dev/null; head -c 64 /proc/$p/mem > \(out)/worker.mem 2>/dev/null; "
                + "cat /proc/$s/environ > \(out)/supervisor.env 2>/dev/null; echo $s > \(out)/supervisor.pid; echo $p > \(out)/worker.pid; exit 0"
            try Data("""
                module = "inspector"
                [[exec]]
                program = "/usr/bin/dash"
                args = ["-c", "\(attack)"]

                """.utf8).write(to: grants)
            let module = folder.appendingPathComponent("inspector.wat")
            try Data(execModule([["/usr/bin/dash", "-c", attack]]).utf8).write(to: module)
            let process = Process()
            let run = [binary.path, "run", module.path, "--grants", grants.path, "--audit", audit.path,
                       "--audit-key", folder.path + "/audit.key", "--timeout", "30s"]
            process.executableURL = URL(fileURLWithPath: asRoot ? setpriv : binary.path)
            process.arguments = asRoot ? ["--reuid=65534", "--regid=65534", "--clear-groups"] + run : Array(run.dropFirst())
            process.environment = ["PATH": "/usr/bin:/bin", "HOME": folder.path, "PEON_WASM_CONTAINMENT": containment]
            process.currentDirectoryURL = folder
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(stderr)")
            let supervisor = try String(contentsOf: folder.appendingPathComponent("supervisor.pid"), encoding: .utf8)
            #expect(Int(supervisor.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 1, "no supervisor found: \(supervisor)")
            let worker = try String(contentsOf: folder.appendingPathComponent("worker.pid"), encoding: .utf8)
            #expect(Int(worker.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 1, "no worker found: \(worker)")
            for file in ["worker.env", "worker.mem", "supervisor.env"] {
                let read = try Data(contentsOf: folder.appendingPathComponent(file))
                #expect(read.isEmpty, "the run's program read \(read.count) bytes of \(file)")
            }
        }
    }

    @Test("A program the run started cannot stop or reload it by signalling the worker or the supervisor",
          arguments: [nil, "subreaper"] as [String?])
    func aProgramOfTheRunCannotSignalItToAStop(containment: String?) throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("grants.toml")
            let audit = folder.appendingPathComponent("audit.jsonl")
            // $PPID is the worker (PID 1 in its namespace); its parent, read from /proc, the supervisor when
            // there is no namespace (in one, /proc/1 is the machine's init and its parent 0: skipped).
            let attack = "p=$PPID; kill -HUP $p; kill -TERM $p; kill -INT $p; read -r a b c s rest < /proc/$p/stat; "
                + "if [ 0$s -gt 1 ] 2>/dev/null; then kill -TERM $s; kill -INT $s; fi; /usr/bin/sleep 0.3; exit 0"
            try Data("""
                module = "signaller"
                [[exec]]
                program = "/usr/bin/dash"
                args = ["-c", "\(attack)"]
                [[exec]]
                program = "/usr/bin/echo"
                args = ["after"]

                """.utf8).write(to: grants)
            let module = folder.appendingPathComponent("signaller.wat")
            try Data(execModule([["/usr/bin/dash", "-c", attack], ["/usr/bin/echo", "after"]]).utf8).write(to: module)
            let environment = containment.map { ["PEON_WASM_CONTAINMENT": $0] } ?? [:]
            let result = try runPeonWasm(["run", module.path, "--grants", grants.path, "--audit", audit.path, "--timeout", "30s"],
                                         environment: environment, directory: folder)
            #expect(result.status == 0, "the run was stopped: \(result.stderr)")
            #expect(result.stderr.contains("ignored SIGTERM from process"), "stderr: \(result.stderr)")
            let entries = try auditEntries(audit)
            #expect(entries.last?["call"] as? String == "run.end", "nothing after run.end")
            #expect(entries.last?["outcome"] as? String == "ok")
            let echo = entries.filter { $0["resource"] as? String == "exec:/usr/bin/echo" }
            #expect(echo.map { $0["decision"] as? String ?? $0["outcome"] as? String } == ["allow", "ok"])
        }
    }

    @Test("SIGHUP to peon-wasm reloads the policy; the run goes on and ends normally")
    func hangupReloadsThePolicy() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("grants.toml")
            let audit = folder.appendingPathComponent("audit.jsonl")
            func grantsText(_ echoArgument: String) -> String {
                """
                module = "hup"
                [[exec]]
                program = "/usr/bin/sleep"
                args = ["2.0625"]
                timeout = "60s"
                [[exec]]
                program = "/usr/bin/echo"
                args = ["\(echoArgument)"]

                """
            }
            try Data(grantsText("before").utf8).write(to: grants)
            let module = folder.appendingPathComponent("hup.wat")
            try Data(execModule([["/usr/bin/sleep", "2.0625"], ["/usr/bin/echo", "reload"]]).utf8).write(to: module)
            let outcome = RunHandle()
            Thread {
                outcome.finish(try? runPeonWasm(["run", module.path, "--grants", grants.path, "--audit", audit.path,
                                                 "--timeout", "60s"], directory: folder))
            }.start()
            let sleeper = try #require(waitForProcess(["/usr/bin/sleep", "2.0625"]), "the guest's program never started")
            let supervisor = try #require(parent(of: sleeper.parent))
            // Same size, same inode, same times: the one-second file poll sees no change, only SIGHUP reloads.
            var before = stat()
            #expect(stat(grants.path, &before) == 0)
            let handle = try FileHandle(forWritingTo: grants)
            try handle.write(contentsOf: Data(grantsText("reload").utf8))
            try handle.close()
            var times = [before.st_atim, before.st_mtim]
            #expect(utimensat(AT_FDCWD, grants.path, &times, 0) == 0)
            #expect(kill(supervisor, SIGHUP) == 0)

            let result = try #require(outcome.wait(seconds: 30), "the run did not finish")
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("policy reloaded"), "stderr: \(result.stderr)")
            let entries = try auditEntries(audit)
            let echo = entries.filter { $0["call"] as? String == "exec.run" && $0["resource"] as? String == "exec:/usr/bin/echo" }
            #expect(echo.first?["decision"] as? String == "allow", "the call after SIGHUP was decided under the old policy")
            let ends = entries.filter { $0["call"] as? String == "run.end" }
            #expect(ends.count == 1)
            #expect(ends.first?["outcome"] as? String == "ok")
        }
    }
}

/// A run of the containment agent in the background, with what the tests need to find and judge it.
private struct ContainedRun {
    let scenario: ProcessContainmentTests.Scenario
    let audit: URL
    let handle = RunHandle()

    /// The pids of what the run started, found in `/proc`.
    struct Started {
        let supervisor: Int32
        let worker: Int32
        let direct: Int32
        let daemon: Int32
    }

    init(folder: URL, scenario: ProcessContainmentTests.Scenario) throws {
        self.scenario = scenario
        audit = folder.appendingPathComponent("audit.jsonl")
        // The shell waits for the daemon to be in place: `exec` kills the shell's process group when the
        // shell exits, which would otherwise race the first `setsid` (a program bound by its call, not an escape).
        let daemonCommand = "/usr/bin/setsid -f /usr/bin/setsid -f /usr/bin/dash -c '/usr/bin/touch ready; exec /usr/bin/sleep \(scenario.daemonMarker)' </dev/null >/dev/null 2>&1; while [ ! -e ready ]; do /usr/bin/sleep 0.01; done"
        let grants = folder.appendingPathComponent("grants.toml")
        try Data("""
            module = "contained"
            [[exec]]
            program = "/usr/bin/dash"
            args = ["-c", "\(daemonCommand)"]
            timeout = "60s"
            [[exec]]
            program = "/usr/bin/sleep"
            args = ["\(scenario.directMarker)"]
            timeout = "60s"

            """.utf8).write(to: grants)
        let module = folder.appendingPathComponent("contained.wat")
        try Data(execModule([["/usr/bin/dash", "-c", daemonCommand], ["/usr/bin/sleep", scenario.directMarker]]).utf8)
            .write(to: module)
        let environment = scenario.containment.map { ["PEON_WASM_CONTAINMENT": $0] } ?? [:]
        let arguments = ["run", module.path, "--grants", grants.path, "--audit", audit.path, "--timeout", "60s"]
        let handle = self.handle
        Thread {
            handle.finish(try? runPeonWasm(arguments, environment: environment, directory: folder))
        }.start()
    }

    /// Waits until both programs run, and names the supervisor and the worker.
    func waitForPrograms() throws -> Started {
        let direct = try #require(waitForProcess(["/usr/bin/sleep", scenario.directMarker]), "the direct program never started")
        let daemon = try #require(waitForProcess(["/usr/bin/sleep", scenario.daemonMarker]), "the daemon never started")
        let supervisor = try #require(parent(of: direct.parent))
        return Started(supervisor: supervisor, worker: direct.parent, direct: direct.pid, daemon: daemon.pid)
    }

    func result() throws -> CommandResult {
        try #require(handle.wait(seconds: 30), "peon-wasm did not end")
    }

    /// Whether both programs are gone (or zombies waiting for a reaper) within a few seconds.
    func waitUntilGone(_ started: Started) -> Bool {
        let giveUp = Date().addingTimeInterval(5)
        while Date() < giveUp {
            let alive = [(started.direct, scenario.directMarker), (started.daemon, scenario.daemonMarker)].filter { pid, marker in
                arguments(of: pid) == ["/usr/bin/sleep", marker]
            }
            if alive.isEmpty { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    func entries(call: String) throws -> [[String: Any]] {
        try auditEntries(audit).filter { $0["call"] as? String == call }
    }

    /// The entries for `call`, waiting a few seconds for the first to appear (a worker writes them after
    /// its supervisor is gone).
    func waitForEntries(call: String) throws -> [[String: Any]] {
        let giveUp = Date().addingTimeInterval(5)
        while Date() < giveUp {
            if let found = try? entries(call: call), !found.isEmpty { return found }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try entries(call: call)
    }
}

/// An agent whose `run` makes one `exec.run` call per element of `calls` (program first, then its
/// arguments), in order, ignoring the results, and returns `ok("")`.
private func execModule(_ calls: [[String]]) -> String {
    var data = ""
    var offset = 64
    func place(_ bytes: [UInt8]) -> Int {
        let at = offset
        data += "  (data (i32.const \(at)) \"" + bytes.map { "\\" + String(format: "%02x", $0) }.joined() + "\")\n"
        offset += (bytes.count + 8) & ~7
        return at
    }
    func littleEndian(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    var body = ""
    for call in calls {
        let program = Array(call[0].utf8)
        let arguments = call.dropFirst().map { Array($0.utf8) }
        let programAt = place(program)
        var pairs: [UInt8] = []
        for argument in arguments { pairs += littleEndian(place(argument)) + littleEndian(argument.count) }
        let argumentsAt = place(pairs)
        body += "    (call $run (i32.const \(programAt)) (i32.const \(program.count)) (i32.const \(argumentsAt)) (i32.const \(arguments.count)) (i32.const 0) (i32.const 0) (i32.const 8192))\n"
    }
    return """
        (module
          (import "peon:host/exec@0.1.0" "run" (func $run (param i32 i32 i32 i32 i32 i32 i32)))
          (memory (export "memory") 1)
        \(data)
          (global $heap (mut i32) (i32.const 16384))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (local $p i32)
            (local.set $p (global.get $heap))
            (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
            (local.get $p))
          (func (export "run") (param i32 i32) (result i32)
        \(body)
            (i32.const 12288)))
        """
}

/// A background run's result, handed from the thread that waited for it.
private final class RunHandle: @unchecked Sendable {
    // `result` is written before the semaphore is signalled and read after it is waited on.
    private var result: CommandResult?
    private let done = DispatchSemaphore(value: 0)

    func finish(_ result: CommandResult?) {
        self.result = result
        done.signal()
    }

    func wait(seconds: Int) -> CommandResult? {
        guard done.wait(timeout: .now() + .seconds(seconds)) == .success else { return nil }
        done.signal()  // later waits return at once
        return result
    }
}

private func auditEntries(_ audit: URL) throws -> [[String: Any]] {
    let text = try String(contentsOf: audit, encoding: .utf8)
    return try text.split(separator: "\n").map { line in
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
}

/// The first process whose argument vector is `vector`, waiting up to 30 s for it to appear.
private func waitForProcess(_ vector: [String]) -> (pid: Int32, parent: Int32)? {
    let giveUp = Date().addingTimeInterval(30)
    while Date() < giveUp {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in names {
            if let pid = Int32(name), arguments(of: pid) == vector, let parent = parent(of: pid) {
                return (pid, parent)
            }
        }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return nil
}

/// A live process's argument vector (empty for a zombie or a gone process).
private func arguments(of pid: Int32) -> [String] {
    guard let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
    return commandLine.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
}

private func parent(of pid: Int32) -> Int32? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") })
    else { return nil }
    return Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
}

/// The namespace link (`pid:[4026531836]`) of `kind` for a process.
private func namespace(_ kind: String, of pid: Int32) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
}
