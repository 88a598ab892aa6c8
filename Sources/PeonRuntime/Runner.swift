public import PeonEngine
import PeonWASI
import PeonABI
import PeonInterface
import Synchronization

/// The limits every run has. The defaults are finite: a module that says nothing gets these.
public struct RunLimits: Sendable, Hashable {
    /// The linear memory cap. Default: 256 MiB.
    public var memoryBytes: Int = 256 << 20
    /// The wall-clock limit for the whole run. Default: 30 s.
    public var timeout: Duration = .seconds(30)
    /// The instruction budget, or `nil` for none. Default: none.
    public var fuel: UInt64?
    /// The most host calls (WASI and `peon:host` together) one run may make. Default: 1,000,000.
    public var hostCalls: Int = 1_000_000
    /// The most bytes stdout and stderr together may receive. Default: 16 MiB.
    public var outputBytes: Int = 16 << 20

    /// Creates the default limits.
    public init() {}
}

/// Everything one run needs.
public struct RunRequest: Sendable {
    /// The module.
    public var module: ModuleFile
    /// The engine that runs it.
    public var engine: any WasmEngine
    /// The limits.
    public var limits = RunLimits()
    /// The guest's `argv` after the program name (the arguments after `--`).
    public var arguments: [String] = []
    /// The guest's environment. Default: empty.
    public var environment: [(name: String, value: String)] = []
    /// The guest's standard input. Default: empty.
    public var stdin: [UInt8] = []
    /// The input string given to an agent's `run` export.
    public var input = ""
    /// Whether the input was given explicitly (`--input`, `--input-file`): a WASI command, which has no `run` to take
    /// it, is then refused rather than run without it.
    public var inputGiven = false
    /// Where the guest's stdout goes: answers 0 when every byte was written, else the POSIX error that stopped it,
    /// which a WASI guest's `fd_write` then returns.
    public var stdout: @Sendable (UnsafeRawBufferPointer) -> Int32 = { _ in 0 }
    /// Where the guest's stderr goes, answering as ``stdout``.
    public var stderr: @Sendable (UnsafeRawBufferPointer) -> Int32 = { _ in 0 }
    /// The `peon:host` functions, bound to the run's mediator (``AgentSession/hostFunctions``). With
    /// default deny they are always all present; without a session, a module that imports one cannot run.
    public var peonHostFunctions: [HostFunction] = []
    /// The same functions for a component guest (``AgentSession/componentFunctions``), bound to the same
    /// mediator.
    public var peonComponentFunctions: [ComponentHostFunction] = []
    /// Stops the run at its next host call once cancelled (see ``RunCancellation``); `nil` for none.
    public var cancellation: RunCancellation?
    /// When the run ends at the latest; `nil`: ``RunLimits/timeout`` after ``Runner/run(_:)`` starts. A caller with
    /// an ``AgentSession`` passes the session's deadline, so that the engine, WASI and the mediator (an approval
    /// waiting for its answer) all stop at one instant, and never later than `limits.timeout` from now.
    public var deadline: ContinuousClock.Instant?

    /// Creates a request with the default limits and an empty sandbox.
    public init(module: ModuleFile, engine: any WasmEngine) {
        self.module = module
        self.engine = engine
    }
}

/// What an agent's `run` export returned.
public enum AgentResult: Sendable, Hashable {
    /// `ok(string)`: the agent's answer.
    case success(String)
    /// `err(string)`: the agent's own error message.
    case failure(String)
}

/// How a run ended when it ended normally.
public enum RunResult: Sendable, Hashable {
    /// A WASI command returned from `_start` (code 0) or called `proc_exit(code)`.
    case exited(code: UInt32)
    /// An agent's `run` export returned.
    case agent(AgentResult)
}

/// A flag another thread sets to stop a run early (an MCP client's `notifications/cancelled`).
///
/// The run stops at its next host call (WASI or `peon:host`): the call is refused and the run ends with
/// ``RunError/Kind/cancelled``. Guest code that makes no host call runs on until its deadline (an engine
/// that interrupts running code) or its fuel; a guest asleep in `poll_oneoff` wakes at its own time.
public final class RunCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    /// A flag that is not set.
    public init() {}

    /// Asks the run to stop. Safe from any thread; later calls do nothing more.
    public func cancel() { flag.store(true, ordering: .releasing) }

    /// Whether ``cancel()`` was called.
    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

/// Thrown at a host call of a run that was cancelled.
struct RunCancelled: Error {}

/// Thrown when a guest makes more host calls than its limit allows.
struct HostCallLimitExceeded: Error {
    let limit: Int
}

/// Links a module to the sandboxed WASI and the `peon:host` functions, runs its entry point under
/// limits, and turns every way it can end into a ``RunResult`` or a ``RunError``.
public enum Runner {
    /// Checks that a compiled core module can be linked to this host and started: every import is a WASI or
    /// `peon:host` function with its signature (else ``RunError/Kind/link``), its exports fit the `peon:host` ABI, and it
    /// exports `run` or `_start` (else ``RunError/Kind/noEntryPoint``). What a run checks before it runs anything; also
    /// `grants check` and `mcp` at start, so a module that cannot run is not reported or served as one that can.
    package static func linkCheck(_ compiled: any CompiledModule, path: String) throws(RunError) -> EntryPoint {
        let interface = ModuleInterface(compiled)
        if let unknown = interface.firstUnknownImport { throw unknown }
        do {
            try PeonHostBindings.checkModule(imports: compiled.imports, exports: compiled.exports)
        } catch {
            throw RunError(.link, "'\(path)': \(error.message)")
        }
        guard let entryPoint = interface.entryPoint else {
            throw RunError(.noEntryPoint,
                "'\(path)' exports neither _start (a WASI command) nor run (a peon agent), so there is nothing to run; build it as a WASI command or export run (docs/writing-agents.md)")
        }
        return entryPoint
    }

    /// Runs the request on the calling thread.
    public static func run(_ request: RunRequest) throws(RunError) -> RunResult {
        let deadline = min(request.deadline ?? .now + request.limits.timeout, .now + request.limits.timeout)
        if ComponentBinary.isComponent(request.module.bytes) {
            return try runComponent(request, deadline: deadline)
        }
        let compiled: any CompiledModule
        do {
            compiled = try request.engine.compile(request.module.bytes)
        } catch {
            throw invalidModule("'\(request.module.path)'", error.message)
        }
        let entryPoint = try linkCheck(compiled, path: request.module.path)
        if entryPoint == .command && request.inputGiven {
            throw RunError(.configuration,
                "'\(request.module.path)' is a WASI command (it exports _start, not run), so an input string has nowhere to go; give it arguments after -- or standard input with --stdin, or drop --input")
        }

        var wasi = WASIConfiguration()
        wasi.arguments = [programName(request.module.path)] + request.arguments
        wasi.environment = request.environment
        wasi.stdin = request.stdin
        wasi.stdout = request.stdout
        wasi.stderr = request.stderr
        wasi.outputLimit = request.limits.outputBytes
        wasi.deadline = deadline
        let counter = HostCallCounter(limit: request.limits.hostCalls, cancellation: request.cancellation)
        let sandbox = WASISandbox(wasi)
        let functions = (sandbox.hostFunctions + request.peonHostFunctions).map(counter.counting)
        let limits = ResourceLimits(memoryBytes: request.limits.memoryBytes, fuel: request.limits.fuel, deadline: deadline)

        do {
            if request.cancellation?.isCancelled == true { throw RunCancelled() }
            let instance = try compiled.instantiate(functions, limits: limits)
            switch entryPoint {
            case .command:
                _ = try instance.call("_start", [])
                return .exited(code: 0)
            case .agent:
                if instance.guest.hasExport("_initialize") { _ = try instance.call("_initialize", []) }
                let result = try PeonHostBindings.callRun(instance, input: request.input)
                return try agentResult(result, written: sandbox.outputWritten, limit: request.limits.outputBytes)
            }
        } catch let exit as WASIExit {
            return .exited(code: exit.code)
        } catch {
            throw classify(error, request: request)
        }
    }

    /// The one-line refusal of a module that is no valid WebAssembly (exit 65): what the engine found, and what to do.
    /// `what` names the file as the caller's message does (`'m.wasm'`, or `g.toml: [tool] wasm 'm.wasm'`).
    package static func invalidModule(_ what: String, _ reason: String) -> RunError {
        RunError(.invalidModule, "\(what) is not a valid WebAssembly module: \(reason); "
                 + "check that it is the module you meant and build it again (`wasm-tools validate` says more)")
    }

    /// The one-line refusal of a component on an engine that cannot run components.
    package static func componentNeedsWasmtime(_ path: String) -> RunError {
        RunError(.configuration, "'\(path)' is a WebAssembly component; run it with --engine wasmtime")
    }

    /// Runs a component: checks its imports (only `peon:host` interfaces and WASI preview 2), links
    /// them to the run's mediator and a sandboxed WASI, calls its `run` export with the input.
    static func runComponent(_ request: RunRequest, deadline: ContinuousClock.Instant) throws(RunError) -> RunResult {
        let path = request.module.path
        guard let engine = request.engine as? any ComponentEngine else { throw componentNeedsWasmtime(path) }
        let interface: ComponentBinary.Interface
        do {
            interface = try ComponentBinary.interface(request.module.bytes)
        } catch {
            throw RunError(.invalidModule, "'\(path)' is not a valid WebAssembly component: \(error.message)")
        }
        func compile() throws(RunError) -> any CompiledComponent {
            do {
                return try engine.compileComponent(request.module.bytes)
            } catch {
                throw RunError(.invalidModule, "'\(path)' is not a valid WebAssembly component: \(error.message)")
            }
        }
        // The interface is read first, by our own parser, so a component that cannot run here is refused before it is
        // compiled; but that parser does not validate, so a refusal is given only once the engine has found the
        // component valid: an invalid one (a type nested too deep) is exit 65, not "does not export run".
        for item in interface.imports where !PeonHostBindings.servesComponentImport(item.name) || item.kind != "instance" {
            _ = try compile()
            throw RunError(.link,
                "'\(path)' imports \(item.kind) \(item.name), which this host does not serve (it serves the peon:host@\(PeonHostBindings.version) interfaces and WASI preview 2); it cannot run here")
        }
        guard interface.exports.contains(where: { $0.name == PeonHostBindings.runExport && $0.kind == "func" }) else {
            _ = try compile()
            throw RunError(.noEntryPoint,
                "'\(path)' is a component that does not export run: func(input: string) -> result<string, string> (the peon:host agent world), so there is nothing to run")
        }
        let compiled = try compile()
        let output = OutputBudget(limit: request.limits.outputBytes)
        var sandbox = ComponentSandbox()
        sandbox.arguments = [programName(path)] + request.arguments
        sandbox.environment = request.environment
        sandbox.stdin = request.stdin
        let stdout = request.stdout
        let stderr = request.stderr
        sandbox.stdout = { bytes in output.take(bytes, into: stdout) }
        sandbox.stderr = { bytes in output.take(bytes, into: stderr) }
        let counter = HostCallCounter(limit: request.limits.hostCalls, cancellation: request.cancellation)
        let functions = request.peonComponentFunctions.map(counter.counting)
        let limits = ResourceLimits(memoryBytes: request.limits.memoryBytes, fuel: request.limits.fuel, deadline: deadline)
        do {
            if request.cancellation?.isCancelled == true { throw RunCancelled() }
            let instance = try compiled.instantiate(
                functions, instances: PeonHostBindings.componentInterfaces.sorted(), sandbox: sandbox, limits: limits)
            let result = try PeonHostBindings.callComponentRun(instance, input: request.input)
            if output.exceeded { throw WASIOutputLimitExceeded(limit: request.limits.outputBytes) }
            return try agentResult(result, written: output.taken, limit: request.limits.outputBytes)
        } catch {
            if output.exceeded { throw classify(WASIOutputLimitExceeded(limit: request.limits.outputBytes), request: request) }
            throw classify(error, request: request)
        }
    }

    /// An agent's answer (or its error text) as the run's result, if it fits in what `--max-output` has left.
    ///
    /// The answer is printed to stdout, the error text to stderr, or either is sent to an MCP client, so
    /// both count against the same cap as the guest's own stdout and stderr: a guest cannot pass the cap
    /// by answering instead of writing. One that does not fit is the output-limit error and none of it is
    /// shown; the message says how big it was.
    static func agentResult(_ result: Result<String, GuestRunError>, written: Int, limit: Int) throws(RunError) -> RunResult {
        let text: String
        switch result {
        case .success(let answer): text = answer
        case .failure(let error): text = error.message
        }
        let room = max(0, limit - written)
        let size = text.utf8.count
        guard size <= room else {
            let what = if case .success = result { "answer" } else { "error text" }
            let left = written == 0 ? "the limit of \(limit) bytes" : "the \(room) bytes left of the \(limit)-byte limit after \(written) bytes of output"
            throw RunError(.outputLimit,
                "the module's \(what) is \(size) bytes, more than \(left) for stdout and stderr; none of it is shown; raise it with --max-output")
        }
        switch result {
        case .success(let answer): return .agent(.success(answer))
        case .failure(let error): return .agent(.failure(error.message))
        }
    }

    /// Maps anything thrown during a run to the user-facing error.
    static func classify(_ error: any Error, request: RunRequest) -> RunError {
        let limits = request.limits
        switch error {
        case let error as RunError:
            return error
        case let error as WASIOutputLimitExceeded:
            return RunError(.outputLimit, "\(error); raise it with --max-output")
        case is RunCancelled:
            return RunError(.cancelled, "the run was cancelled before it finished")
        case let error as HostCallLimitExceeded:
            return RunError(.hostCallLimit, "the module made more than \(error.limit) host calls; raise the limit with --max-host-calls")
        case let error as RunStoppedByHost:
            return RunError(.hostCallLimit, error.reason)
        case let error as GuestMemoryError:
            // Raised by lifting a host call's arguments or `run`'s own result: not only pointers (a tag, text, a length).
            return RunError(.trap, "the module handed the host a value it cannot read (in a host call's arguments or in run's result): \(error.message); the module's bindings are broken: rebuild it with a peon SDK (docs/guest-abi.md)")
        case let error as CanonicalValueMismatch:
            return RunError(.trap, "the module broke the canonical ABI: \(error)")
        case let error as CanonicalLimitExceeded:
            return RunError(.trap, "the module broke a canonical ABI limit: \(error)")
        case let error as EngineError:
            switch error.kind {
            case .unknownImport, .incompatibleImport:
                return RunError(.link, error.message)
            case .invalidModule:
                return invalidModule("'\(request.module.path)'", error.message)
            case .instantiation:
                return RunError(.trap, error.message)
            case .trap(.timeout):
                return RunError(.timeout, "'\(request.module.path)' did not finish within its wall-clock timeout of \(format(limits.timeout)); it was stopped. Raise the limit with --timeout")
            case .trap(.outOfFuel):
                return RunError(.outOfFuel, "the module ran out of fuel (\(limits.fuel ?? 0) instructions); raise the budget with --fuel")
            case .trap(let reason):
                let detail = error.message.hasPrefix(reason.description) ? error.message : "\(reason) (\(error.message))"
                return RunError(.trap, "'\(request.module.path)' trapped: \(detail); the module failed on its own (a bug, or a deliberate abort), not by a refusal: see what it printed, and its run.end in the audit log")
            case .missingExport:
                return RunError(.noEntryPoint, error.message)
            case .unavailable:
                return RunError(.internalError, error.message)
            }
        default:
            return RunError(.internalError, "internal error: \(error)")
        }
    }

    static func programName(_ path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? path
        for suffix in [".wasm", ".wat"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        return name
    }

    /// A duration as users write it: `30s`, `250ms`.
    package static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(milliseconds(duration))ms"
    }

    /// `duration` in whole milliseconds, saturating at `Int.min`/`Int.max` instead of overflowing (a
    /// library caller may pass any `Duration`; the CLI and grants bound theirs by `longestGrantDuration`).
    package static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (total, sumOverflow) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        guard !sumOverflow else { return seconds < 0 ? .min : .max }
        return Int(clamping: total)
    }
}

/// The output cap of a component run: stdout and stderr together, as for core modules' WASI. A chunk
/// that would pass the cap is refused whole (the guest's write fails) and the run ends with
/// ``RunError/Kind/outputLimit``.
final class OutputBudget: Sendable {
    private let used = Mutex<Int>(0)
    private let overflowed = Atomic<Bool>(false)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Whether a write was refused.
    var exceeded: Bool { overflowed.load(ordering: .acquiring) }

    /// The bytes taken so far.
    var taken: Int { used.withLock { $0 } }

    /// Passes `bytes` to `sink` if they fit under the cap; returns whether they did.
    func take(_ bytes: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) -> Int32) -> Bool {
        let fits = used.withLock { total in
            guard bytes.count <= limit - total else { return false }
            total += bytes.count
            return true
        }
        guard fits else {
            overflowed.store(true, ordering: .releasing)
            return false
        }
        // A component's WASI is wasmtime's: a failed write reaches the host's own record of it (the CLI's exit), not
        // the guest.
        _ = sink(bytes)
        return true
    }
}

/// Counts host calls across every function of one run and refuses the one past the limit.
final class HostCallCounter: Sendable {
    private let count = Atomic<Int>(0)
    let limit: Int
    let cancellation: RunCancellation?

    init(limit: Int, cancellation: RunCancellation? = nil) {
        self.limit = limit
        self.cancellation = cancellation
    }

    func counting(_ function: HostFunction) -> HostFunction {
        var wrapped = function
        let body = function.body
        wrapped.body = { [self] guest, arguments in
            let calls = count.wrappingAdd(1, ordering: .relaxed).newValue
            if calls > limit { throw HostCallLimitExceeded(limit: limit) }
            if cancellation?.isCancelled == true { throw RunCancelled() }
            return try body(guest, arguments)
        }
        return wrapped
    }

    /// The same for a component's function: its body and its answer to oversized arguments both count
    /// (a call refused for its size is still a call).
    func counting(_ function: ComponentHostFunction) -> ComponentHostFunction {
        var wrapped = function
        let body = function.body
        wrapped.body = { [self] arguments in
            try admit()
            return try body(arguments)
        }
        if let oversized = function.oversized {
            wrapped.oversized = { [self] description in
                try admit()
                return try oversized(description)
            }
        }
        return wrapped
    }

    /// Counts one call; throws when it is past the limit or the run is cancelled.
    private func admit() throws {
        let calls = count.wrappingAdd(1, ordering: .relaxed).newValue
        if calls > limit { throw HostCallLimitExceeded(limit: limit) }
        if cancellation?.isCancelled == true { throw RunCancelled() }
    }
}
