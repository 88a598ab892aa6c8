import Foundation
public import PeonAudit
public import PeonEngine
import PeonInterface
public import PeonMediator
import Synchronization

/// What every tool of one long-running tool server shares: the audit log (opened once, by this process),
/// the session options each call starts from, the command-line limit overrides and the engine.
public struct ToolHostConfiguration: Sendable {
    /// The audit log every call appends to.
    public var audit: AuditLog
    /// `--db`, `--approver`, the working folder; each call gets its own run id and its tool's grants.
    public var options: SessionOptions
    /// `--timeout`, `--memory`, `--fuel`, `--max-host-calls`, `--max-output`; the grants decide the rest.
    public var overrides: LimitOverrides
    /// Makes the engine for one call; its argument says whether the call runs with a fuel budget.
    public var engine: @Sendable (_ fuel: Bool) throws(RunError) -> any WasmEngine

    /// Creates a configuration.
    public init(audit: AuditLog, options: SessionOptions, overrides: LimitOverrides,
                engine: @escaping @Sendable (_ fuel: Bool) throws(RunError) -> any WasmEngine) {
        self.audit = audit
        self.options = options
        self.overrides = overrides
        self.engine = engine
    }
}

/// One call of a tool, as the server received it.
public struct ToolCall: Sendable {
    /// The string given to the module's `run` export.
    public var input: String
    /// The client's request id (for `run.start`/`run.end`).
    public var requestID: String
    /// The client's name (for `run.start`/`run.end`).
    public var client: String
    /// Set when the client cancels the call.
    public var cancellation: RunCancellation

    /// Creates a call.
    public init(input: String, requestID: String, client: String, cancellation: RunCancellation = RunCancellation()) {
        self.input = input
        self.requestID = requestID
        self.client = client
        self.cancellation = cancellation
    }
}

/// What a call returns to the client.
public struct ToolAnswer: Sendable, Hashable {
    /// The module's `ok` text (or a command's stdout); for an error, what went wrong.
    public var text: String
    /// Whether the call failed (`err`, a trap, a timeout, a denial that failed the call ...).
    public var isError: Bool
    /// The run id of the call in the audit log.
    public var runID: String
    /// How `run.end` recorded the end: `ok`, `agent-error`, `error:timeout`, `cancelled` ...
    public var outcome: String
}

/// A module served as a tool: one grants file with a `[tool]` table. Each call is a fresh instance
/// with its own run id under the grants in force when it starts, through the same path as
/// `peon-wasm run` (``RunPlan``, ``AgentSession``, ``Runner``), appending to the host's shared audit log.
///
/// The grants file (and a model or policy file given with it) is watched: a change is swapped in for
/// the next calls and reported to `changed`; a broken edit keeps the old grants and says why on stderr.
/// The module binary is read once, at start. Nothing a call does can change the grants: only an edit
/// of the file does.
public final class ToolService: Sendable {
    /// The tool's name: the grants' `module` at start.
    public let name: String
    /// The grants file.
    public let grantsPath: String
    /// The module, read at start.
    public let module: ModuleFile
    private let startTool: ToolGrant
    private let store: MediatorPolicyStore
    private let reloader: PolicyReloader
    private let host: ToolHostConfiguration
    private let sources: PolicySources

    /// Loads the grants file, which must have a `[tool]` table, and the module it names.
    public init(grantsPath: String, host: ToolHostConfiguration, modelPath: String? = nil, policyPath: String? = nil,
                changed: @escaping @Sendable (PolicyReloader.Outcome) -> Void = { _ in }) throws(RunError) {
        let sources = PolicySources(grantsPath: grantsPath, modelPath: modelPath, policyPath: policyPath)
        let snapshot: PolicySnapshot
        do {
            snapshot = try PolicySnapshot.load(sources, defaultModule: Runner.programName(grantsPath))
        } catch {
            throw RunError(.configuration, error.description)
        }
        guard let grants = snapshot.compiled?.grants else {
            throw RunError(.configuration, "\(grantsPath): no grants loaded")
        }
        guard let tool = grants.tool else {
            throw RunError(.configuration,
                "\(grantsPath): no [tool] table, so there is no tool to serve; add [tool] with wasm = \"...\" and description = \"...\"")
        }
        let module = try ModuleFile(path: tool.wasm)
        let store = MediatorPolicyStore(snapshot.judged(forModuleSHA256: module.sha256))
        if let refusal = store.current.refusal { throw RunError(.configuration, "\(grantsPath): \(refusal)") }
        self.name = grants.module
        self.grantsPath = grantsPath
        self.module = module
        self.startTool = tool
        self.store = store
        self.host = host
        self.sources = sources
        self.reloader = PolicyReloader(sources: sources, defaultModule: Runner.programName(grantsPath), store: store,
                                       moduleSHA256: module.sha256, report: { message in
                                           printLine("peon-wasm: \(grantsPath): \(message)", to: 2)
                                       }, changed: changed)
    }

    /// Starts watching the grants file (polling every `interval`; `SIGHUP` is the host's to route).
    public func startWatching(interval: Duration = .milliseconds(500)) {
        reloader.start(interval: interval, handleHangup: false)
    }

    /// Loads the files again now if they changed (or unconditionally when `force`).
    @discardableResult
    public func reload(force: Bool = false) -> PolicyReloader.Outcome {
        reloader.reloadIfChanged(force: force)
    }

    /// Stops watching.
    public func stop() { reloader.stop() }

    /// The grants in force.
    public var grants: Grants? { store.current.compiled?.grants }

    /// The `[tool]` table in force (the one at start if the grants now in force have none).
    public var tool: ToolGrant { grants?.tool ?? startTool }

    /// Whether calls get the whole arguments object as JSON text (a declared schema) rather than the
    /// `input` string.
    public var hasDeclaredSchema: Bool { tool.inputSchema != nil }

    /// The input schema as JSON text.
    public var inputSchema: String { tool.inputSchema ?? ToolGrant.defaultInputSchema }

    /// Runs one call to its end on the calling thread (which it blocks).
    public func call(_ call: ToolCall) -> ToolAnswer {
        var options = host.options
        options.runID = UUID().uuidString.lowercased()
        options.policy = sources
        let runID = options.runID
        let plan: RunPlan
        do {
            plan = try RunPlan(module: module, policy: store.current, options: options, overrides: host.overrides)
        } catch {
            return ToolAnswer(text: error.message, isError: true, runID: runID, outcome: "error:\(error.kind)")
        }
        let denials = LockedBox<[(action: String, object: String)]>([])
        let session: AgentSession
        let engine: any WasmEngine
        do {
            engine = try host.engine(plan.limits.fuel != nil)
            session = try AgentSession(
                plan: plan, deadline: ContinuousClock.now + plan.limits.timeout, sharedAudit: host.audit, store: store,
                details: ["mcp_request": call.requestID, "mcp_client": call.client, "tool": name],
                denialSink: { action, object in
                    denials.withLock { if $0.count < 16 { $0.append((action, object)) } }
                })
            try session.recordStart(engine: engine.name)
        } catch {
            return ToolAnswer(text: error.message, isError: true, runID: runID, outcome: "error:\(error.kind)")
        }
        let output = LockedBox<[UInt8]>([])
        var request = RunRequest(module: plan.module, engine: engine)
        request.limits = plan.limits
        request.environment = plan.grantedEnvironment
        request.input = call.input
        request.stdout = { bytes in output.withLock { $0.append(contentsOf: bytes) } }
        request.stderr = { bytes in
            printLine("peon-wasm: \(self.name): " + TerminalText.escaped(String(decoding: bytes, as: UTF8.self)), to: 2)
        }
        request.peonHostFunctions = session.hostFunctions
        request.peonComponentFunctions = session.componentFunctions
        request.cancellation = call.cancellation
        var answer: ToolAnswer
        do {
            switch try Runner.run(request) {
            case .agent(.success(let text)):
                answer = ToolAnswer(text: text, isError: false, runID: runID, outcome: "ok")
            case .agent(.failure(let message)):
                answer = ToolAnswer(text: message, isError: true, runID: runID, outcome: "agent-error")
            case .exited(let code):
                let text = String(decoding: output.withLock { $0 }, as: UTF8.self)
                answer = code == 0
                    ? ToolAnswer(text: text, isError: false, runID: runID, outcome: "ok")
                    : ToolAnswer(text: text + "\n(the module exited with status \(code))", isError: true, runID: runID,
                                 outcome: "exit:\(code)")
            }
        } catch {
            let outcome = error.kind == .cancelled ? "cancelled" : "error:\(error.kind)"
            answer = ToolAnswer(text: error.message, isError: true, runID: runID, outcome: outcome)
        }
        session.finish(outcome: answer.outcome, reason: answer.isError ? answer.text : "")
        if answer.isError {
            answer.text += explanation(of: denials.withLock { $0 }, snapshot: plan.policy)
        }
        return answer
    }

    /// For each denial of the call: the request and why no grant allowed it, as `policy explain` says it
    /// (grant lines and patterns; never an injected header value, which no rule holds).
    private func explanation(of denials: [(action: String, object: String)], snapshot: PolicySnapshot) -> String {
        guard !denials.isEmpty else { return "" }
        var text = "\n\nDenied by the grants in \(grantsPath) (only a person editing that file can change them):"
        var seen = Set<String>()
        for denial in denials where seen.insert(denial.action + " " + denial.object).inserted {
            let explained = explainPolicy(snapshot: snapshot, module: snapshot.subject, action: denial.action,
                                          object: denial.object, arguments: [])
            text += "\n- \(denial.action) on \(TerminalText.escaped(denial.object)):"
            for line in explained.lines.dropFirst(2) { text += "\n  " + TerminalText.escaped(line) }
        }
        return text
    }
}

/// A value behind a lock that escaping closures can share (a `Mutex` itself cannot be captured).
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
