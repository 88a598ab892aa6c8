import ArgumentParser
import Foundation
import PeonEngine
import PeonEngineWasmtime
import PeonInterface
import PeonMediator
import PeonAudit
import PeonRuntime
import PeonSystem
import Synchronization

/// `peon-wasm run`: runs a module in a supervised worker process under hard limits.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a module: a WASI command (_start) or a peon agent (run).",
        discussion: """
            The module runs in a sandbox: no files, no network, no environment, empty stdin, unless \
            granted. Every run has a wall-clock timeout, a memory cap, a host-call cap and an output \
            cap. Arguments after -- are passed to the module.

            Example: peon-wasm run modules/hello/hello.wat -- world
            """)

    @Argument(help: "The module: a .wasm binary or a .wat text file.")
    var module: String

    @Option(help: "Grants file (policies/NAME.toml): what the module may do. Without grants or a policy it may do nothing.")
    var grants: String?

    @OptionGroup(title: "Policy, audit, limits and engine")
    var host: HostOptions

    @Option(help: "The input string for an agent's run export.")
    var input: String?

    /// The most bytes `--input-file` and `--stdin` read, each: 64 MiB. Past it the run is refused (exit 78)
    /// before the guest starts, so a path to a huge file or an endless pipe never fills the host's memory.
    static let maxInputBytes = 64 << 20

    @Option(name: .customLong("input-file"), help: "Read the agent's input string from this file or pipe, or standard input for '-' (at most 64MiB).")
    var inputFile: String?

    @Flag(help: "Give the module this process's standard input, at most 64MiB (default: the module's stdin is empty).")
    var stdin = false

    @Option(name: .customLong("env"), help: ArgumentHelp("Add NAME=VALUE to the module's environment (repeatable; default: only the grants' [env]).", valueName: "NAME=VALUE"))
    var environment: [String] = []

    @Option(name: .customLong("supervisor-fd"), help: .private)
    var supervisor: Int32?

    /// When the supervisor's clock for this run ends, on the shared monotonic clock (``Supervisor/workerDeadline(monotonicNanoseconds:timeout:)``).
    @Option(name: .customLong("supervisor-deadline"), help: .private)
    var supervisorDeadline: Int64?

    @Option(name: .customLong("run-id"), help: .private)
    var runID: String?

    @Flag(name: .customLong("in-process"), help: .private)
    var inProcess = false

    @Argument(parsing: .postTerminator, help: "Arguments for the module, after --.")
    var arguments: [String] = []

    func validate() throws {
        if input != nil && inputFile != nil { throw ValidationError("give --input or --input-file, not both") }
        if inputFile == "-" && stdin {
            throw ValidationError("--input-file - and --stdin both want standard input: give the agent's input with --input-file -, or the module's stdin with --stdin")
        }
        var named: [String: String] = [:]
        for entry in environment {
            guard entry.contains("="), !entry.hasPrefix("=") else { throw ValidationError("--env takes NAME=VALUE, got '\(entry)'") }
            let name = Self.variableName(entry)
            if let earlier = named[name] {
                throw ValidationError("--env sets '\(name)' twice ('\(earlier)' and '\(entry)'); a module's environment has one value per name: give it once")
            }
            named[name] = entry
        }
    }

    /// The variable an `--env NAME=VALUE` entry sets: everything before its first `=`.
    private static func variableName(_ entry: String) -> String {
        String(entry.prefix { $0 != "=" })
    }

    /// Says once on stderr (here, in the supervisor) when a `--db NAME` names a database no `[[db]]` grant names, or a
    /// `[[db]]` grant names one no `--db` binds: the module meets either only at its first `db` call, as "denied" or
    /// "not-found". A grants file is what can say; with a policy of one's own, nothing is said.
    static func noteDatabaseBindings(_ plan: RunPlan) {
        guard let grants = plan.policy.compiled?.grants, plan.options.policy.policyPath == nil,
              plan.options.policy.policyStore == nil else { return }
        let granted = Set(grants.database.map(\.database))
        let bound = Set(plan.options.databases.keys)
        for name in bound.subtracting(granted).sorted() {
            printError(TerminalText.escaped("peon-wasm: note: --db \(name)=... is bound, but no [[db]] grant names database '\(name)', so every call on it is denied; check the name against the grants (\(granted.isEmpty ? "they grant no database" : "they grant " + granted.sorted().joined(separator: ", ")))"))
        }
        for name in granted.subtracting(bound).sorted() {
            printError(TerminalText.escaped("peon-wasm: note: a [[db]] grant names database '\(name)', but no --db \(name)=PATH binds it, so the module's calls on it fail not-found; add --db \(name)=PATH"))
        }
    }

    /// Refuses an `--env` that names a variable the grants' `[env]` already sets: the module would get both entries
    /// and most guests' `getenv` would answer the first, so one of the two values would silently not count.
    private func refuseEnvironmentConflicts(_ plan: RunPlan) throws {
        let granted = Set(plan.grantedEnvironment.map(\.0))
        if let entry = environment.first(where: { granted.contains(Self.variableName($0)) }) {
            throw ValidationError("--env sets '\(Self.variableName(entry))', which the grants' [env] already sets; a module's environment has one value per name: change the grants' [env] or drop this --env")
        }
    }

    func run() throws {
        do {
            var options = try sessionOptions()
            if let supervisor {
                Supervisor.becomeWorker(livenessDescriptor: supervisor)
            } else if !inProcess {
                options.runID = UUID().uuidString.lowercased()
                let plan = try RunPlan(modulePath: module, options: options, overrides: overrides)
                try refuseEnvironmentConflicts(plan)
                try refuseComponentOnWasmKit(plan)
                Self.noteDatabaseBindings(plan)
                try warmComponentCache(plan)
                try superviseWorker(plan)
                return
            }
            let plan = try RunPlan(modulePath: module, options: options, overrides: overrides)
            try refuseEnvironmentConflicts(plan)
            try refuseComponentOnWasmKit(plan)
            try runInProcess(plan)
        } catch let error as RunError {
            throw fail(error)
        }
    }

    private var overrides: LimitOverrides { host.overrides }

    private func sessionOptions() throws(RunError) -> SessionOptions {
        var options = try host.sessionOptions(grants: grants)
        if let runID { options.runID = runID }
        return options
    }

    /// Starts this same command in a worker process and enforces the wall clock from here.
    private func superviseWorker(_ plan: RunPlan) throws {
        let all = CommandLine.arguments
        let tail = all.firstIndex(of: "run").map { Array(all[($0 + 1)...]) } ?? []
        // Where the worker's entries can begin: the supervisor looks after it for a `run.start` the worker may not
        // have written (``AgentSession/recordAbnormalEnd(plan:outcome:reason:logSizeAtStart:)``).
        var status = stat()
        let logSizeAtStart = (plan.options.auditPath ?? SessionOptions.defaultAuditPath()).flatMap { path in
            stat(path, &status) == 0 ? Int(status.st_size) : 0
        }
        // The worker's clock ends with this one, not `timeout` after its own (later) start.
        let deadline = Supervisor.deadlineArgument(after: plan.limits.timeout)
        let exit = try Supervisor.run(
            executable: Supervisor.currentExecutable,
            arguments: ["run", "--supervisor-fd", String(Supervisor.livenessDescriptor), "--run-id", plan.options.runID] + deadline + tail,
            timeout: plan.limits.timeout + Supervisor.grace)
        switch exit {
        case .exited(let code):
            if code != 0 { throw ExitCode(code) }
        case .timedOut:
            let message = "'\(module)' did not finish within its wall-clock timeout of \(Runner.format(plan.limits.timeout)); it was stopped. Raise the limit with --timeout"
            AgentSession.recordAbnormalEnd(plan: plan, outcome: "timeout", reason: message, logSizeAtStart: logSizeAtStart)
            throw fail(RunError(.timeout, message))
        case .stopped(let signal, let recorded):
            let name = Supervisor.signalName(signal)
            let message = "peon-wasm received SIG\(name); the run was stopped"
            if !recorded {
                AgentSession.recordAbnormalEnd(plan: plan, outcome: "signal:\(name)", reason: message, logSizeAtStart: logSizeAtStart)
            }
            printError("peon-wasm: stopped: \(message) (exit \(128 + signal))")
            throw ExitCode(128 + signal)
        case .signaled(let signal):
            let message = "the worker running '\(module)' was killed by signal \(signal); if nothing outside killed it, this is a bug in peon-wasm or its engine — please report it"
            AgentSession.recordAbnormalEnd(plan: plan, outcome: "crashed", reason: message, logSizeAtStart: logSizeAtStart)
            throw fail(RunError(.internalError, message))
        }
    }

    /// Waits the milliseconds (at most 10 s) that the environment variable `name` gives, for tests that widen a
    /// moment of a worker's start; nothing when it is unset.
    private static func testDelay(_ name: String) {
        guard let delay = ProcessInfo.processInfo.environment[name].flatMap(Int.init), (0...10_000).contains(delay) else { return }
        // Whole, although a signal interrupts a sleep.
        let until = ContinuousClock.now + .milliseconds(delay)
        while ContinuousClock.now < until { usleep(10_000) }
    }

    private func runInProcess(_ plan: RunPlan) throws {
        let engine = try makeEngine(fuel: plan.limits.fuel != nil)
        if supervisor != nil {
            // For tests only: a worker slow to start (more than the supervisor's grace), whose deadline must still
            // be the supervisor's (`AgentRunTests.aSlowWorkerEndsWithTheSupervisorsClock`).
            Self.testDelay("PEON_WASM_TEST_START_DELAY_MS")
        }
        let deadline = Supervisor.workerDeadline(monotonicNanoseconds: supervisor == nil ? nil : supervisorDeadline,
                                                 timeout: plan.limits.timeout)
        let session = try AgentSession(plan: plan, deadline: deadline, handleHangup: supervisor == nil)
        try session.recordStart(engine: engine.name)
        if supervisor != nil {
            // For tests only: widen the moment between `run.start` and the monitor learning of the session, where a
            // stop once left the run without any `run.end` (`AgentRunTests.aStopRightAfterRunStartIsRecorded`).
            Self.testDelay("PEON_WASM_TEST_ATTACH_DELAY_MS")
            Supervisor.attach(session)
        }
        var request = RunRequest(module: plan.module, engine: engine)
        request.limits = plan.limits
        request.deadline = deadline
        request.arguments = arguments
        request.environment = plan.grantedEnvironment + environment.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        if stdin {
            do throws(BoundedReadError) {
                request.stdin = try BoundedRead.contents(ofStream: 0, limit: Self.maxInputBytes)
            } catch {
                session.finish(outcome: "error", reason: "cannot read --stdin")
                let advice = error.kind == .tooLarge
                    ? "give the module less input"
                    : "give --stdin a file or a pipe to read (e.g. `< input.txt`), or leave --stdin out"
                throw RunError(.configuration, "cannot read standard input for --stdin: \(error.reason); \(advice)")
            }
        }
        if let inputFile {
            let data: [UInt8]
            // A pipe or FIFO is read until its writer closes it, within the run's timeout; a FIFO nobody writes would
            // otherwise end in a timeout that seems the module's. Said once, after two seconds, only if still waiting.
            let waiting = DispatchWorkItem {
                printError("peon-wasm: note: still waiting for --input-file '\(inputFile)' to be written and closed (a pipe or FIFO is read to its end; the run's --timeout bounds the wait)")
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(2), execute: waiting)
            defer { waiting.cancel() }
            do throws(BoundedReadError) {
                // `-` is standard input, as for `policy eval` (a file named `-` is `./-`).
                data = inputFile == "-"
                    ? try BoundedRead.contents(ofStream: 0, limit: Self.maxInputBytes)
                    : try BoundedRead.contents(ofPath: inputFile, limit: Self.maxInputBytes, streams: .pipes)
            } catch {
                session.finish(outcome: "error", reason: "cannot read --input-file")
                throw RunError(.configuration, "cannot read --input-file '\(inputFile)': \(error.reason); check the path")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                session.finish(outcome: "error", reason: "--input-file is not UTF-8 text")
                throw RunError(.configuration, "--input-file '\(inputFile)' is not UTF-8 text; the input of an agent's run is a string")
            }
            request.input = text
            request.inputGiven = true
        } else {
            request.input = input ?? ""
            request.inputGiven = input != nil
        }
        let output = OutputWriter()
        let stdout = session.guardingOutput { output.write(1, $0) }
        request.stdout = stdout
        request.stderr = session.guardingOutput { output.write(2, $0) }
        request.peonHostFunctions = session.hostFunctions
        request.peonComponentFunctions = session.componentFunctions
        let result: RunResult
        do {
            result = try Runner.run(request)
        } catch {
            session.finish(outcome: error.outcome, reason: error.message)
            throw error
        }
        switch result {
        case .exited(let code):
            try reportLostOutput(output, session)
            session.finish(outcome: code == 0 ? "ok" : "exit:\(code)", reason: "")
            try reportUnfinishedLog(session)
            // An exit status holds 8 bits: a failure whose low byte is 0 (`proc_exit(256)`) must not read as success.
            if code != 0 { throw ExitCode(code & 0xff == 0 ? 1 : Int32(truncatingIfNeeded: code & 0xff)) }
        case .agent(.success(let answer)):
            // The answer is the agent's output: bytes as they are into a pipe or file, escaped on a terminal. Written
            // before `run.end`, so that an answer that could not be written (a full disk) is the run's outcome.
            let line = (isatty(1) == 1 ? TerminalText.escaped(answer) : answer) + "\n"
            // Behind the log, as the module's own output: the entries of the reads it came from are in the file first.
            _ = line.utf8CString.withUnsafeBytes { stdout(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
            try reportLostOutput(output, session)
            session.finish(outcome: "ok", reason: "")
            try reportUnfinishedLog(session)
        case .agent(.failure(let message)):
            // Output lost before the agent gave up is still lost: the loss is the run's outcome, its error is said too.
            try reportLostOutput(output, session, agentError: message)
            session.finish(outcome: "agent-error", reason: message)
            try reportUnfinishedLog(session)
            printError("peon-wasm: the agent returned an error: \(message)")
            throw ExitCode(1)
        }
    }

    /// A run whose output could not be written (a full disk, an I/O error) lost data, whatever its module did about
    /// the error its write returned: `run.end` says `error:output`, and the run exits 74 with one line saying what was
    /// lost. A reader that went away (`| head`, `EPIPE`) is not a loss: the run goes on to its own end.
    /// `agentError`: the error an agent returned, recorded and shown as well.
    private func reportLostOutput(_ output: OutputWriter, _ session: AgentSession, agentError: String? = nil) throws {
        guard let (descriptor, code) = output.firstFailure, code != EPIPE else { return }
        let stream = descriptor == 1 ? "stdout" : "stderr"
        let message = "the module's output could not be written to \(stream) (\(String(cString: strerror(code)).lowercased())), so some of it is lost; free the space or choose another place for it"
        session.finish(outcome: "error:output", reason: message + (agentError.map { "; the agent returned an error: " + $0 } ?? ""))
        try reportUnfinishedLog(session)
        if let agentError { printError("peon-wasm: the agent returned an error: \(agentError)") }
        printError("peon-wasm: error: \(message)")
        throw ExitCode(74)
    }

    /// A run whose `run.end` or final checkpoint could not be written did not finish cleanly, whatever its
    /// module answered: one error line and exit 74.
    private func reportUnfinishedLog(_ session: AgentSession) throws {
        guard let failure = session.endFailure else { return }
        printError("peon-wasm: error: the run ended but its audit log was not completed: \(TerminalText.escaped(failure)); "
                   + "check it with `peon-wasm audit verify LOG` and sign it with `peon-wasm audit checkpoint LOG --refresh`")
        throw ExitCode(74)
    }

    /// WasmKit cannot host a component's imports: refuse it before the run starts (and before the audit
    /// log records a run), with the option that works. The engine is never switched silently: the two
    /// engines meter fuel differently and wasmtime needs an extra install, so the choice stays the user's.
    private func refuseComponentOnWasmKit(_ plan: RunPlan) throws(RunError) {
        if host.engine == "wasmkit", ComponentBinary.isComponent(plan.module.bytes) {
            throw Runner.componentNeedsWasmtime(module)
        }
    }

    /// Compiles a component, or a core module of at least ``largeModuleBytes``, into wasmtime's cache before
    /// the worker starts, so that the run's wall-clock limit measures the agent, not Cranelift: a
    /// componentize-py component carries CPython (~18 MB) and compiles for tens of seconds the first time, then
    /// loads from the cache in well under a second. On a terminal the elapsed seconds show meanwhile
    /// (``ElapsedProgress``). Failures are left to the worker, which reports them as for any run.
    private func warmComponentCache(_ plan: RunPlan) throws(RunError) {
        let bytes = plan.module.bytes
        let isComponent = ComponentBinary.isComponent(bytes)
        guard host.engine == "wasmtime", isComponent || bytes.count >= Self.largeModuleBytes,
              let wasmtime = try? WasmtimeEngine.load(libraryPath: host.wasmtimeLibrary)
        else { return }
        let started = ContinuousClock.now
        let what = isComponent ? "component" : "module"
        let progress = ElapsedProgress(label: "compiling the \(what) '\(module)' with wasmtime")
        // A hostile module can make Cranelift work for hours (its time grows with the square of the nesting):
        // the compile gets a budget of its own, the run's timeout but at least `compileBudget`, since the run's
        // clock starts only after it. It runs on a thread of its own; past the budget the process ends (the
        // thread cannot be interrupted), before anything was recorded.
        let budget = max(plan.limits.timeout, Self.compileBudget)
        let outcome = Mutex<CompilationCacheOutcome??>(nil)
        let done = DispatchSemaphore(value: 0)
        let worker = Thread {
            let result = isComponent ? (try? wasmtime.compileComponentReportingCache(bytes))?.1 : (try? wasmtime.compileReportingCache(bytes))?.1
            outcome.withLock { $0 = .some(result) }
            done.signal()
        }
        worker.stackSize = 64 << 20
        worker.start()
        let wait = { () -> Bool in done.wait(timeout: .now() + .milliseconds(Int(Runner.milliseconds(budget)))) == .success }
        let finished = progress.map({ $0.during(wait) }) ?? wait()
        guard finished else {
            throw RunError(.timeout, "compiling the \(what) '\(module)' with wasmtime took longer than \(Runner.format(budget)); it was stopped before the run started")
        }
        guard let cache = outcome.withLock({ $0 }) ?? nil else { return }
        switch cache {
        case .miss, .discarded:
            let seconds = Double(Runner.milliseconds(ContinuousClock.now - started)) / 1000
            printError("peon-wasm: note: compiled the \(what) in \(String(format: "%.1f", seconds))s before the run; later runs load it from the cache")
        default:
            break
        }
    }

    /// Core modules at least this large are compiled (and cached) before the worker starts, with progress.
    static let largeModuleBytes = 1 << 20
    /// The least time a module's compile before the run may take (a componentize-py component needs tens of
    /// seconds the first time).
    static let compileBudget: Duration = .seconds(120)

    private func makeEngine(fuel: Bool) throws(RunError) -> any WasmEngine {
        try host.makeEngine(fuel: fuel)
    }
}
