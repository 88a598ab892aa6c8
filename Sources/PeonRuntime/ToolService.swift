import Foundation
package import PeonAudit
package import PeonEngine
import PeonInterface
package import PeonMediator
import Synchronization

/// What every tool of one long-running tool server shares: the audit log (opened once, by this process),
/// the session options each call starts from, the command-line limit overrides and the engine.
package struct ToolHostConfiguration: Sendable {
    /// The audit log every call appends to.
    package var audit: AuditLog
    /// `--db`, `--approver`, the working folder; each call gets its own run id and its tool's grants.
    package var options: SessionOptions
    /// `--timeout`, `--memory`, `--fuel`, `--max-host-calls`, `--max-output`; the grants decide the rest.
    package var overrides: LimitOverrides
    /// Makes the engine for one call; its argument says whether the call runs with a fuel budget.
    package var engine: @Sendable (_ fuel: Bool) throws(RunError) -> any WasmEngine
    /// Every tool's grants, model, policy and module file, once all are loaded: no call of any tool reaches them
    /// (a tool granted a folder that holds another's grants would otherwise widen them; they reload while serving).
    package let toolFiles = LockedBox(HostFiles())
    /// The grants' `rate` buckets, shared by every call of the server: each call is a run of its own, and a rate
    /// kept per run would start full at every call, so a client could make any number of calls a grant limits.
    package let rates = RateLimiter()

    /// Creates a configuration.
    package init(audit: AuditLog, options: SessionOptions, overrides: LimitOverrides,
                engine: @escaping @Sendable (_ fuel: Bool) throws(RunError) -> any WasmEngine) {
        self.audit = audit
        self.options = options
        self.overrides = overrides
        self.engine = engine
    }
}

/// The information-flow labels of one client session: every label a call of the session held when it
/// answered. Whatever a call returned is in the client's hands (an LLM's context), and the client's next
/// calls can carry it on in their arguments, so each later call of the session starts holding these labels:
/// a tool that read `hr` data and a tool that posts are two allowed actions that leak together across calls
/// just as within one run. Labels only grow, for as long as the session lasts.
package final class ToolSessionLabels: Sendable {
    private let held = Mutex<[String: String]>([:])

    /// An empty set.
    package init() {}

    /// Each label with the run id of the call that first brought it to the session.
    package var current: [String: String] { held.withLock { $0 } }

    /// Adds the labels a call of `runID` held when it answered.
    package func add(_ labels: [String], from runID: String) {
        held.withLock { held in
            for label in labels where held[label] == nil { held[label] = runID }
        }
    }
}

/// One call of a tool, as the server received it.
package struct ToolCall: Sendable {
    /// The string given to the module's `run` export.
    package var input: String
    /// The client's request id (for `run.start`/`run.end`'s `mcp_request`), without JSON quoting: `7` and `"7"`
    /// both read `7` there.
    package var requestID: String
    /// The request id's JSON spelling (`7`, `"7"`), for `run.start`/`run.end`'s `mcp_request_json`, which tells the
    /// two apart; `nil`: not recorded.
    package var requestIDJSON: String?
    /// The client's name (for `run.start`/`run.end`).
    package var client: String
    /// Set when the client cancels the call.
    package var cancellation: RunCancellation
    /// Who approves the call's requests whose grant says `approval = true`, when not the host's
    /// `--approver` (the MCP client, through elicitation); `nil` takes `--approver`.
    package var approver: (any Approver)?
    /// The labels of the client's session: the call starts holding them, and adds its own when it answers
    /// (``ToolSessionLabels``). `nil`: a call on its own.
    package var sessionLabels: ToolSessionLabels?

    /// Creates a call.
    package init(input: String, requestID: String, client: String, cancellation: RunCancellation = RunCancellation(),
                approver: (any Approver)? = nil, sessionLabels: ToolSessionLabels? = nil, requestIDJSON: String? = nil) {
        self.input = input
        self.requestID = requestID
        self.requestIDJSON = requestIDJSON
        self.client = client
        self.cancellation = cancellation
        self.approver = approver
        self.sessionLabels = sessionLabels
    }
}

/// What a call returns to the client.
package struct ToolAnswer: Sendable, Hashable {
    /// The module's `ok` text (or a command's stdout); for an error, what went wrong.
    package var text: String
    /// Whether the call failed (`err`, a trap, a timeout, a denial that failed the call ...).
    package var isError: Bool
    /// The run id of the call in the audit log.
    package var runID: String
    /// How `run.end` recorded the end: `ok`, `agent-error`, `error:timeout`, `cancelled` ...
    package var outcome: String

    /// Creates an answer.
    package init(text: String, isError: Bool, runID: String, outcome: String) {
        self.text = text
        self.isError = isError
        self.runID = runID
        self.outcome = outcome
    }
}

/// A module served as a tool: one grants file with a `[tool]` table. Each call is a fresh instance
/// with its own run id under the grants in force when it starts, through the same path as
/// `peon-wasm run` (``RunPlan``, ``AgentSession``, ``Runner``), appending to the host's shared audit log.
///
/// The grants file (and a model or policy file given with it) is watched: a change is swapped in for
/// the next calls and reported to `changed`; a broken edit keeps the old grants and says why on stderr.
/// The module binary is read once, at start. Nothing a call does can change the grants: only an edit
/// of the file does.
package final class ToolService: Sendable {
    /// The tool's name: the grants' `module` at start.
    package let name: String
    /// The grants file.
    package let grantsPath: String
    /// The module, read at start.
    package let module: ModuleFile
    private let startTool: ToolGrant
    private let store: MediatorPolicyStore
    private let reloader: PolicyReloader
    private let host: ToolHostConfiguration
    private let sources: PolicySources
    /// The calls running now, by run id.
    private let running: Mutex<[String: RunningCall]> = Mutex([:])
    /// Set by ``stopCalls(signal:)``: the signal's name.
    private let stopSignal: Mutex<String?> = Mutex(nil)

    /// Loads the grants file, which must have a `[tool]` table, and the module it names.
    package convenience init(grantsPath: String, host: ToolHostConfiguration, modelPath: String? = nil, policyPath: String? = nil,
                            changed: @escaping @Sendable (PolicyReloader.Outcome) -> Void = { _ in }) throws(RunError) {
        try self.init(sources: PolicySources(grantsPath: grantsPath, modelPath: modelPath, policyPath: policyPath),
                      host: host, changed: changed)
    }

    /// Loads the tool from `sources`: its grants file (``PolicySources/grantsPath``, required, with a
    /// `[tool]` table) and the module it names, with the model and the policy file or store given
    /// with it. A policy store that cannot be reached throws ``RunError/Kind/unavailable``: there is no
    /// snapshot to decide on. While serving, the store's outages and recoveries are written to the
    /// host's audit log (`policy.store` entries under the host's run id) as `run` writes them.
    package init(sources: PolicySources, host: ToolHostConfiguration,
                changed: @escaping @Sendable (PolicyReloader.Outcome) -> Void = { _ in }) throws(RunError) {
        guard let grantsPath = sources.grantsPath else {
            throw RunError(.configuration, "a tool needs a grants file with a [tool] table")
        }
        let snapshot: PolicySnapshot
        do {
            snapshot = try PolicySnapshot.load(sources, defaultModule: Runner.programName(grantsPath))
        } catch {
            throw RunError(error.storeUnavailable ? .unavailable : .configuration, error.description)
        }
        guard let grants = snapshot.compiled?.grants else {
            throw RunError(.configuration, "\(grantsPath): no grants loaded")
        }
        guard let tool = grants.tool else {
            throw RunError(.configuration,
                "\(grantsPath): no [tool] table, so there is no tool to serve; add [tool] with wasm = \"...\" and description = \"...\"")
        }
        let module = try ModuleFile(path: tool.wasm)
        try Self.checkRunnable(module, grantsPath: grantsPath, engine: try host.engine(false))
        let store = MediatorPolicyStore(snapshot.judged(forModuleSHA256: module.sha256))
        if let refusal = store.current.refusal { throw RunError(.configuration, "\(grantsPath): \(refusal)") }
        let name = grants.module
        self.name = name
        self.grantsPath = grantsPath
        self.module = module
        self.startTool = tool
        self.store = store
        self.host = host
        self.sources = sources
        let audit = host.audit
        let hostRun = host.options.runID
        let storeName = sources.policyStore?.name ?? ""
        self.reloader = PolicyReloader(
            sources: sources, defaultModule: Runner.programName(grantsPath), store: store, moduleSHA256: module.sha256,
            report: { message in printLine("peon-wasm: \(TerminalText.escaped("\(grantsPath): \(message)"))", to: 2) }, changed: changed,
            event: { event in
                // As in `run`: the log says when decisions rest on a snapshot the store can no longer confirm, and
                // when an edit of the tool's grants or policy was refused.
                let (call, resource, outcome, reason) = event.auditFields(storeName: storeName)
                _ = try? audit.append(
                    AuditRecord(run: hostRun, module: name, moduleSHA256: module.sha256, call: call,
                                resource: resource, decision: nil, reason: reason,
                                policy: store.current.version, outcome: outcome),
                    durable: false)
            })
    }

    /// Starts watching the grants file (polling every `interval`; `SIGHUP` is the host's to route).
    package func startWatching(interval: Duration = .milliseconds(500)) {
        reloader.start(interval: interval, handleHangup: false)
    }

    /// Loads the files again now if they changed (or unconditionally when `force`).
    @discardableResult
    package func reload(force: Bool = false) -> PolicyReloader.Outcome {
        reloader.reloadIfChanged(force: force)
    }

    /// Stops watching.
    package func stop() { reloader.stop() }

    /// Stops the tool for a shutdown on `signal` (`TERM`, `INT`): calls not yet started are refused,
    /// running ones are cancelled (they stop at their next host call and end with `run.end` outcome
    /// `signal:NAME`).
    package func stopCalls(signal: String) {
        stopSignal.withLock { $0 = signal }
        for call in running.withLock({ Array($0.values) }) { call.cancellation.cancel() }
    }

    /// How many calls are running now.
    package var runningCalls: Int { running.withLock { $0.count } }

    /// Ends the calls still running after a stop's grace period: writes their `run.end` (outcome
    /// `signal:NAME`) now, so the log is complete when the process exits under them. A call ending
    /// meanwhile on its own writes its own `run.end`; each run gets exactly one.
    package func endStragglers(signal: String) {
        for call in running.withLock({ Array($0.values) }) where call.session.claimEndForStop() {
            call.session.writeEnd(outcome: "signal:\(signal)",
                                  reason: "peon-wasm received SIG\(signal); the call did not stop in time and was cut off")
        }
    }

    /// The grants in force.
    package var grants: Grants? { store.current.compiled?.grants }

    /// The `[tool]` table in force (the one at start if the grants now in force have none).
    package var tool: ToolGrant { grants?.tool ?? startTool }

    /// Refuses a tool's core module that could never run (every call would fail), as a run refuses it: one that does
    /// not compile (``RunError/Kind/invalidModule``), imports what this host does not provide (``RunError/Kind/link``)
    /// or exports neither `run` nor `_start` (``RunError/Kind/noEntryPoint``). A component is checked when it runs.
    package static func checkRunnable(_ module: ModuleFile, grantsPath: String, engine: any WasmEngine) throws(RunError) {
        guard !ComponentBinary.isComponent(module.bytes) else { return }
        let compiled: any CompiledModule
        do throws(EngineError) {
            compiled = try engine.compile(module.bytes)
            // The bodies too (WasmKit checks them only when it instantiates): every call would fail on one that does
            // not check.
            try compiled.checkBodies(memoryBytes: ResourceLimits.defaultMemoryBytes)
        } catch {
            throw Runner.invalidModule("\(grantsPath): [tool] wasm '\(module.path)'", error.message)
        }
        do throws(RunError) {
            _ = try Runner.linkCheck(compiled, path: module.path)
        } catch {
            throw RunError(error.kind, "\(grantsPath): [tool] wasm: \(error.message)")
        }
    }

    /// The files this tool's decisions and code come from: its grants, model and policy files and its module.
    package var protectedFiles: [String] { sources.files + [module.path] }

    /// Whether calls get the whole arguments object as JSON text (a declared schema) rather than the
    /// `input` string.
    package var hasDeclaredSchema: Bool { tool.inputSchema != nil }

    /// The input schema as JSON text.
    package var inputSchema: String { tool.inputSchema ?? ToolGrant.defaultInputSchema }

    /// Runs one call to its end on the calling thread (which it blocks).
    package func call(_ call: ToolCall) -> ToolAnswer {
        if let signal = stopSignal.withLock({ $0 }) {
            return ToolAnswer(text: "peon-wasm is stopping (SIG\(signal)); the call was not started", isError: true,
                              runID: "", outcome: "signal:\(signal)")
        }
        var options = host.options
        options.runID = UUID().uuidString.lowercased()
        options.policy = sources
        options.hostFiles.formUnion(host.toolFiles.withLock { $0 })
        let runID = options.runID
        let plan: RunPlan
        do {
            plan = try RunPlan(module: module, policy: store.current, options: options, overrides: host.overrides)
        } catch {
            return ToolAnswer(text: error.message, isError: true, runID: runID, outcome: error.outcome)
        }
        let denials = LockedBox<[(action: String, object: String)]>([])
        let session: AgentSession
        let engine: any WasmEngine
        var details = ["mcp_request": call.requestID, "mcp_client": call.client, "tool": name]
        if let spelling = call.requestIDJSON { details["mcp_request_json"] = spelling }
        let deadline = ContinuousClock.now + plan.limits.timeout
        do {
            engine = try host.engine(plan.limits.fuel != nil)
            session = try AgentSession(
                plan: plan, deadline: deadline, sharedAudit: host.audit, store: store,
                details: details,
                approver: call.approver, inheritedLabels: call.sessionLabels?.current ?? [:], rates: host.rates,
                denialSink: { action, object in
                    denials.withLock { if $0.count < 16 { $0.append((action, object)) } }
                })
            try session.recordStart(engine: engine.name)
        } catch {
            return ToolAnswer(text: error.message, isError: true, runID: runID, outcome: error.outcome)
        }
        running.withLock { $0[runID] = RunningCall(session: session, cancellation: call.cancellation) }
        defer { running.withLock { _ = $0.removeValue(forKey: runID) } }
        // A stop that came between the check above and the registration still reaches this call.
        if stopSignal.withLock({ $0 }) != nil { call.cancellation.cancel() }
        let output = LockedBox<[UInt8]>([])
        var request = RunRequest(module: plan.module, engine: engine)
        request.limits = plan.limits
        request.deadline = deadline
        request.environment = plan.grantedEnvironment
        request.input = call.input
        request.stdout = { bytes in output.withLock { $0.append(contentsOf: bytes) }; return 0 }
        request.stderr = session.guardingOutput { bytes in
            printLine("peon-wasm: \(self.name): " + TerminalText.escaped(String(decoding: bytes, as: UTF8.self)), to: 2)
            return 0
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
            var outcome = error.outcome
            var text = error.message
            if error.kind == .cancelled, let signal = stopSignal.withLock({ $0 }) {
                outcome = "signal:\(signal)"
                text = "peon-wasm received SIG\(signal) and is stopping; the call was stopped"
            }
            answer = ToolAnswer(text: text, isError: true, runID: runID, outcome: outcome)
        }
        session.finish(outcome: answer.outcome, reason: answer.isError ? answer.text : "")
        // The answer, an error's text too, goes to the client with whatever the run read.
        call.sessionLabels?.add(session.labelsHeld, from: runID)
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

/// A call in progress: its session (to end it at a stop) and its cancellation flag.
struct RunningCall: Sendable {
    let session: AgentSession
    let cancellation: RunCancellation
}

/// A value behind a lock that escaping closures can share (a `Mutex` itself cannot be captured).
package final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    package init(_ value: Value) { mutex = Mutex(value) }

    package func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
