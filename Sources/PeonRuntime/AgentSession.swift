public import PeonAudit
public import PeonEngine
import PeonInterface
package import PeonMediator
import Synchronization
import PeonSystem

/// One run's connection to the world: the audit log, the mediator that every `peon:host` call goes
/// through, the approver, and the policy reloader. It writes the `run.start` and `run.end` entries
/// that bracket every run in the audit log.
public final class AgentSession: Sendable {
    /// The resolved plan.
    public let plan: RunPlan
    /// The audit log (held open, and locked, for the run).
    public let audit: AuditLog
    /// The mediator: the only implementation of the guest interface.
    package let mediator: Mediator
    private let reloader: PolicyReloader?
    /// Whether this session opened the log (and so checkpoints and closes it at the end).
    private let ownsAudit: Bool
    /// When the run must be over: the audit sink's last shipping waits no longer (a supervised worker still running
    /// then is stopped as timed out).
    private let deadline: ContinuousClock.Instant
    /// Facts added to `run.start` and `run.end` (e.g. the MCP request id and client).
    private let lifecycleDetails: [String: String]
    /// Labels the run starts holding (an MCP session's, ``ToolSessionLabels``): label to the run that brought it.
    private let inheritedLabels: [String: String]
    private let ended = Atomic<Bool>(false)
    private let endProblem = Mutex<String?>(nil)
    /// Set just before `run.end` is appended: the session's own entries (a policy store's outage) stop there.
    private let endMarker: RunEndMarker
    private let stopping = Atomic<Bool>(false)

    /// Opens the audit log (creating the signing key on first use), builds the mediator and starts
    /// watching the policy files for reloads, and `SIGHUP` too when `handleHangup` (a supervised worker
    /// passes `false`: its monitor gets `SIGHUP` and calls ``reloadPolicy()``).
    public init(plan: RunPlan, deadline: ContinuousClock.Instant, handleHangup: Bool = true) throws(RunError) {
        let audit = try Self.openAudit(plan.options)
        let store = MediatorPolicyStore(plan.policy)
        self.audit = audit
        self.ownsAudit = true
        self.deadline = deadline
        self.lifecycleDetails = [:]
        self.inheritedLabels = [:]
        self.plan = plan
        self.mediator = try Self.makeMediator(plan: plan, audit: audit, store: store, deadline: deadline)
        let options = plan.options
        let moduleName = plan.moduleName
        let storeName = options.policy.policyStore?.name ?? ""
        let endMarker = RunEndMarker()
        self.endMarker = endMarker
        let reloader = PolicyReloader(
            sources: options.policy, defaultModule: moduleName, store: store, moduleSHA256: plan.module.sha256,
            // The message can carry text from a policy store someone else controls: escaped, one line.
            report: { message in printLine("peon-wasm: \(TerminalText.escaped(message))", to: 2) },
            event: { event in
                // The log says when decisions rest on a snapshot the store can no longer confirm, and when an
                // edit of the policy was refused (the previous policy goes on deciding).
                let (call, resource, outcome, reason) = event.auditFields(storeName: storeName)
                // Never after `run.end`: a reload still queued when the run ended belongs to no run.
                _ = try? audit.append(
                    AuditRecord(run: options.runID, module: moduleName, moduleSHA256: plan.module.sha256,
                                call: call, resource: resource, decision: nil, reason: reason,
                                policy: store.current.version, outcome: outcome),
                    durability: .written, onlyIf: { !endMarker.isSet })
            })
        self.reloader = reloader
        if !options.policy.files.isEmpty || options.policy.policyStore != nil {
            reloader.start(handleHangup: handleHangup)
        }
        options.auditSink?.start(log: audit)
    }

    /// A session inside a long-running host (`peon-wasm mcp`): it appends to `audit`, which the host
    /// opened and keeps open across runs, and decides on `store`, whose reloader the host runs. `details`
    /// are added to `run.start` and `run.end`. Its end writes `run.end` but neither checkpoints nor closes
    /// the shared log. `approver`, when given, approves instead of the options' `--approver` (an MCP
    /// client asked through elicitation). `inheritedLabels` (label to the run id that brought it) are held
    /// from `run.start` on, which records them (`session_labels`, `session_label_runs`). `rates`, when given, are
    /// the grants' rate buckets shared with the host's other runs (``MediatorConfiguration/rates``).
    package init(plan: RunPlan, deadline: ContinuousClock.Instant, sharedAudit audit: AuditLog,
                store: MediatorPolicyStore, details: [String: String], approver: (any Approver)? = nil,
                inheritedLabels: [String: String] = [:], rates: RateLimiter? = nil,
                denialSink: (@Sendable (_ action: String, _ object: String) -> Void)? = nil) throws(RunError) {
        self.audit = audit
        self.ownsAudit = false
        self.deadline = deadline
        self.lifecycleDetails = details
        self.inheritedLabels = inheritedLabels
        self.plan = plan
        self.reloader = nil
        self.endMarker = RunEndMarker()
        self.mediator = try Self.makeMediator(plan: plan, audit: audit, store: store, deadline: deadline,
                                              approver: approver, rates: rates, denialSink: denialSink)
    }

    /// `sink` behind the audit log: before any byte of guest output leaves the process, the entries this
    /// process holds in its buffer (`batch` mode) are written, so no data a guest read reaches a terminal, pipe
    /// or client before the read's entry is in the log. If the log has failed, the output is dropped (`EIO`).
    public func guardingOutput(
        _ sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Int32
    ) -> @Sendable (UnsafeRawBufferPointer) -> Int32 {
        { [audit] bytes in
            guard (try? audit.flush()) != nil else { return EIO }
            return sink(bytes)
        }
    }

    private static func makeMediator(
        plan: RunPlan, audit: AuditLog, store: MediatorPolicyStore, deadline: ContinuousClock.Instant,
        approver: (any Approver)? = nil, rates: RateLimiter? = nil,
        denialSink: (@Sendable (_ action: String, _ object: String) -> Void)? = nil
    ) throws(RunError) -> Mediator {
        let options = plan.options
        var configuration = MediatorConfiguration(
            module: plan.moduleName, moduleSHA256: plan.module.sha256, runID: options.runID, policy: store,
            audit: audit, workingDirectory: options.workingDirectory, deadline: deadline)
        configuration.databases = options.databases
        configuration.rates = rates
        if let keyPath = options.auditKeyPath ?? CheckpointSigner.defaultKeyPath() { configuration.hostFiles.add(keyPath) }
        // What decides and what runs is not the guest's to rewrite either: the grants, model and policy are reloaded
        // while the run goes on (a guest that wrote `[[fs]] paths = ["/**"]` into its own grants held them a second
        // later), and the module file is what the next run loads.
        for file in options.policy.files + [plan.module.path] { configuration.hostFiles.add(file) }
        configuration.hostFiles.formUnion(options.hostFiles)
        switch options.approver {
        case nil:
            // Nobody to ask: the call is refused, and the module may report only "approval required". Say once per
            // process (under `mcp`, each call is a session of its own) which grant asked and how to name someone to ask.
            configuration.approver = RefusingApprover { request in
                guard Self.approverNoteShown.claim() else { return }
                printLine(TerminalText.escaped("peon-wasm: note: \(request.call) on \(request.resource) needs approval (grant \(request.grant)) and no --approver was given, so it was refused; pass --approver tty, or --approver COMMAND (docs/grants.md)"), to: 2)
            }
        case "tty": configuration.approver = TerminalApprover()
        case let commandLine?:
            guard let approver = CommandApprover(commandLine: commandLine) else {
                throw RunError(.configuration, "--approver '\(commandLine)' is not a command line; give 'tty' or a command such as '/usr/local/bin/approve --team ops'")
            }
            configuration.approver = approver
        }
        if let approver { configuration.approver = approver }
        // A `log` line may carry what the guest read: the read's entry reaches the file first (batch mode buffers it).
        configuration.logSink = { line in
            guard (try? audit.flush()) != nil else { return }
            printLine(line, to: 2)
        }
        configuration.denialSink = denialSink
        let policy = options.policy
        if denialSink == nil, let grantsPath = policy.grantsPath {
            // The classic mix-up: a module's relative paths resolve against the folder `peon-wasm` runs in, a grants
            // file's against its own folder. Said once, and only when a grant would have allowed the denied path had
            // the run started in the grants file's folder.
            // Denied calls are a measured path (a hostile module makes many): the note is looked for in the first 32 `fs`
            // denials only, and not at all once said.
            let looks = Atomic<Int>(0)
            let said = OnceFlag()
            let working = options.workingDirectory
            let grantsFolder = ((grantsPath.hasPrefix("/") ? grantsPath : working + "/" + grantsPath) as NSString)
                .deletingLastPathComponent
            configuration.denialSink = { action, object in
                guard action.hasPrefix("fs."), looks.add(1, ordering: .relaxed).newValue <= 32,
                      let note = Self.workingFolderNote(object: object, working: working, grantsFolder: grantsFolder,
                                                        grants: store.current.compiled?.grants)
                else { return }
                looks.store(.max / 2, ordering: .relaxed)
                guard said.claim() else { return }
                printLine(TerminalText.escaped(note), to: 2)
            }
        } else if denialSink == nil, policy.grantsPath == nil, policy.policyPath == nil, policy.policyStore == nil {
            // Default deny is easy to take for a broken module: the first denial says once why every call is refused.
            let first = OnceFlag()
            configuration.denialSink = { _, _ in
                guard first.claim() else { return }
                printLine(Self.noGrantsNote, to: 2)
            }
        }
        return Mediator(configuration)
    }

    /// The note for a denied `fs` object (`fs:/abs/path`) under `working` that a grant would allow had the run
    /// started in another folder (the same relative path, resolved there); `nil` otherwise.
    static func workingFolderNote(object: String, working: String, grantsFolder: String, grants: Grants?) -> String? {
        guard let grants, object.hasPrefix("fs:") else { return nil }
        let path = String(object.dropFirst(3))
        let base = working.hasSuffix("/") ? working : working + "/"
        guard path.hasPrefix(base) else { return nil }
        let relative = String(path.dropFirst(base.count))
        for grant in grants.fileSystem {
            for pattern in grant.paths {
                // Each folder the pattern names before its first wildcard is a place the run could have started in.
                let segments = pattern.split(separator: "/")
                for count in stride(from: segments.count - 1, through: 1, by: -1) {
                    let head = segments[0..<count]
                    guard !head.contains(where: { $0.contains(where: { "*?[{".contains($0) }) }) else { continue }
                    let folder = "/" + head.joined(separator: "/")
                    guard folder + "/" != base else { continue }
                    // The path must enter a folder the pattern names (not fall into its `**`, which takes any path at
                    // all: a module probing `policies/x.toml` is no mix-up).
                    let next = segments[count]
                    guard !next.contains(where: { "*?[{".contains($0) }),
                          relative.split(separator: "/").first.map({ $0 == next }) == true else { continue }
                    if globMatches(folder + "/" + relative, pattern: pattern) {
                        return "peon-wasm: note: \(path) was denied, but the same relative path from \(folder) would be granted: the module's relative paths resolve against the folder peon-wasm runs in (\(working)), the grants file's against its own folder (\(grantsFolder)); run from \(folder), or give the module absolute paths"
                    }
                }
            }
        }
        return nil
    }

    /// Whether this process has said why a call needing approval was refused (``makeMediator``).
    static let approverNoteShown = OnceFlag()

    /// Printed on stderr at a run's first denial when it was given neither grants nor a policy.
    static let noGrantsNote = "peon-wasm: note: a host call was denied because no --grants or --policy was given, so the module may do nothing (default deny); name its grants with --grants policies/NAME.toml"

    /// Loads the policy files again now (what `SIGHUP` asks for), whether or not they look changed.
    public func reloadPolicy() {
        reloader?.reloadIfChanged(force: true)
    }

    /// The `peon:host` functions bound to this session's mediator.
    public var hostFunctions: [HostFunction] { PeonHostBindings.hostFunctions(for: mediator) }

    /// The same `peon:host` functions for a component guest, bound to the same mediator.
    public var componentFunctions: [ComponentHostFunction] { PeonHostBindings.componentFunctions(for: mediator) }

    /// Appends `run.start`: which module, which engine, under which limits and policy version.
    public func recordStart(engine: String) throws(RunError) {
        let limits = plan.limits
        var details = [
            "engine": engine,
            "memory": String(limits.memoryBytes),
            "timeout_ms": String(Runner.milliseconds(limits.timeout)),
            "path": plan.module.path,
        ]
        if let fuel = limits.fuel { details["fuel"] = String(fuel) }
        details.merge(lifecycleDetails) { own, _ in own }
        if !inheritedLabels.isEmpty {
            details["session_labels"] = inheritedLabels.keys.sorted().joined(separator: ",")
            details["session_label_runs"] = Set(inheritedLabels.values).sorted().joined(separator: ",")
        }
        let seq = try append(Self.lifecycle(plan, call: "run.start", outcome: nil, reason: "", details: details), durable: true)
        // Held from the run's first call on, brought by the entry that says where they came from.
        if !inheritedLabels.isEmpty { mediator.inherit(Array(inheritedLabels.keys), seq: seq) }
    }

    /// The labels the run holds now (sorted): what it read, and what it started with.
    package var labelsHeld: [String] { mediator.labelsHeld.keys.sorted() }

    /// Appends `run.end` with how the run ended, writes a checkpoint, and closes the log.
    ///
    /// The log gets one `run.end`: if a stop (``claimEndForStop()``, by signal or because the supervisor
    /// died) has claimed the end first, the stop writes it and exits the process, so this call parks the
    /// calling thread instead of returning into an exit that would cut the stop short.
    public func finish(outcome: String, reason: String) {
        guard claim() else {
            while stopping.load(ordering: .acquiring) { _ = sleep(60) }
            return
        }
        writeEnd(outcome: outcome, reason: reason)
    }

    /// Claims the run's end for a stop: later ``finish(outcome:reason:)`` calls park. Returns `false`
    /// when the run already ended on its own (its `run.end` is written or being written).
    func claimEndForStop() -> Bool {
        stopping.store(true, ordering: .releasing)
        if claim() { return true }
        stopping.store(false, ordering: .releasing)
        return false
    }

    private func claim() -> Bool {
        ended.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    /// Ends the run's calls (``Mediator/shutdown()``): none is decided or begun, and none of their entries
    /// is appended, from now on.
    func endCalls() {
        mediator.shutdown()
    }

    /// Why `run.end`, the final checkpoint or closing the log failed, when one did (``writeEnd(outcome:reason:)``):
    /// the run's entries are then not all signed, and `peon-wasm run` says so and exits 74.
    public var endFailure: String? { endProblem.withLock { $0 } }

    /// Writes `run.end`, a checkpoint, and closes the log (after a successful claim).
    func writeEnd(outcome: String, reason: String) {
        reloader?.stop()
        mediator.shutdown()
        var problem: String?
        endMarker.set()
        do {
            // Whoever gets the run's output (a terminal, an MCP client) got data under these labels.
            var details = lifecycleDetails
            let held = mediator.labelsHeldDetail
            if !held.isEmpty { details["run_labels"] = held }
            _ = try audit.append(Self.lifecycle(plan, call: "run.end", outcome: outcome, reason: reason, details: details),
                                 durable: true)
        } catch {
            problem = "run.end could not be written (\(error.message))"
        }
        if ownsAudit {
            do {
                try audit.writeCheckpoint()
            } catch {
                problem = problem ?? "the final checkpoint could not be written (\(error.message))"
            }
            do {
                try audit.close()
            } catch {
                problem = problem ?? "the log could not be closed (\(error.message))"
            }
            // At most 5 s, and never past the run's deadline: the supervisor stops a worker still running then, and a
            // finished run was reported as timed out (exit 124, a second run.end, its answer lost) while an unreachable
            // sink was waited for. What is not shipped now is shipped by the next run or `audit ship`.
            let left = deadline - .now
            plan.options.auditSink?.finish(timeout: max(.zero, min(.seconds(5), left)))
        }
        endProblem.withLock { $0 = problem }
    }

    /// How long the supervisor waits to record a dead worker's `run.end`.
    static let abnormalEndWait: Duration = .seconds(5)

    /// Records the end of a run whose worker died (killed at the deadline, or crashed): opens the log
    /// (which cuts a torn last line and records that), appends `run.end`, and checkpoints it.
    ///
    /// Waits at most ``abnormalEndWait`` for the log's lock: a process that holds it (a stuck writer, or anyone who
    /// can lock the file) kept a run stopped at its 2 s deadline waiting 45 s to exit. Past the wait the end is not
    /// recorded, and a warning says so.
    ///
    /// `logSizeAtStart` is the log's size before the worker started, if known (``recordedMarks(path:runID:from:)``).
    package static func recordAbnormalEnd(plan: RunPlan, outcome: String, reason: String, logSizeAtStart: Int? = nil) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            if let audit = try? openAudit(plan.options) {
                // A worker killed while it waited to exit may have written its `run.end` already (it finished, then
                // the log's lock or a stop held it past the deadline): a second one would say the run ended twice.
                // One stopped before it wrote its `run.start` (a busy machine, a log another writer held) gets one
                // from here, so the run is still bracketed.
                let marks = recordedMarks(path: audit.path, runID: plan.options.runID, from: logSizeAtStart)
                if marks.start == .absent {
                    _ = try? audit.append(lifecycle(plan, call: "run.start", outcome: nil,
                                                    reason: "recorded by the supervisor: the worker was stopped before it recorded the run's start",
                                                    details: ["recorded_by": "supervisor"]), durable: false)
                }
                if marks.end != .present {
                    _ = try? audit.append(lifecycle(plan, call: "run.end", outcome: outcome, reason: reason, details: [:]), durable: true)
                }
                try? audit.writeCheckpoint()
                try? audit.close()
            }
            done.signal()
        }
        thread.name = "peon-wasm run.end"
        thread.start()
        let seconds = Double(abnormalEndWait.components.seconds)
        if done.wait(timeout: .now() + seconds) == .timedOut {
            printLine("peon-wasm: warning: the run's end (\(outcome)) was not recorded within \(Int(seconds)) s: the audit log \(plan.options.auditPath ?? SessionOptions.defaultAuditPath() ?? "") was locked by another process or too slow to open", to: 2)
        }
    }

    /// Whether a log holds an entry, as far as ``recordedMarks(path:runID:)`` looked.
    package enum RecordedMark: Sendable, Equatable {
        /// Found.
        case present
        /// Not in the log: the whole file was read.
        case absent
        /// Not in the part that was read (the last 8 MiB of a larger log).
        case unknown
    }

    /// Whether the log at `path` holds the `run.start` and the `run.end` of run `runID` (a dead worker's own).
    ///
    /// `from` is the log's size before the run's worker started, when the caller knows it: nothing before it can be
    /// the run's, so the start is looked for in the 8 MiB after it, and is known absent when the log has grown less
    /// than that since. The end is looked for in the last 8 MiB (a run's end follows its last entries within moments,
    /// and the log may be large). Without `from`, both are looked for in the last 8 MiB. One read per part and a byte
    /// search: under load, a slower scan (split into lines) took seconds and used up the supervisor's wait.
    package static func recordedMarks(path: String, runID: String, from: Int? = nil) -> (start: RecordedMark, end: RecordedMark) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return (.unknown, .unknown) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return (.unknown, .unknown) }
        let size = Int(status.st_size)
        let window = 8 << 20
        // A log smaller than it was (replaced or cut meanwhile) says nothing about where the run began.
        let begin = from.map { $0 <= size ? $0 : 0 } ?? max(0, size - window)
        let startPart = scan(fd, from: begin, to: min(size, begin + window), runID: runID)
        let endBegin = max(begin, size - window)
        let endPart = endBegin == begin && size - begin <= window
            ? startPart : scan(fd, from: endBegin, to: size, runID: runID)
        let startKnown = startPart.read && (from != nil || begin == 0) && size - begin <= window
        let endKnown = endPart.read && (from != nil || endBegin == 0)
        return (startPart.start ? .present : startKnown ? .absent : .unknown,
                endPart.end ? .present : endKnown ? .absent : .unknown)
    }

    /// Reads `from..<to` of `fd` and looks for run `runID`'s `run.start` and `run.end` lines there; `read` says the
    /// whole range was read.
    private static func scan(_ fd: Int32, from: Int, to: Int, runID: String) -> (start: Bool, end: Bool, read: Bool) {
        guard to > from else { return (false, false, true) }
        var buffer = [UInt8](repeating: 0, count: to - from)
        var filled = 0
        while filled < buffer.count {
            let got = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + filled, raw.count - filled, off_t(from + filled))
            }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            filled += got
        }
        let marker = Array(#""run":""#.utf8) + Array(runID.utf8) + [UInt8(ascii: "\"")]
        let start = Array(#""call":"run.start""#.utf8)
        let end = Array(#""call":"run.end""#.utf8)
        var sawStart = false, sawEnd = false
        buffer.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            // The first `needle` in `from..<to`: `memchr` for its first byte, then a compare.
            func find(_ needle: [UInt8], from: Int, to: Int) -> Int? {
                guard let first = needle.first else { return nil }
                var index = from
                while to - index >= needle.count {
                    guard let found = memchr(base + index, Int32(first), to - needle.count + 1 - index) else { return nil }
                    let position = UnsafeRawPointer(found) - base
                    let same = needle.withUnsafeBytes { pattern -> Bool in
                        guard let bytes = pattern.baseAddress else { return false }
                        return memcmp(base + position, bytes, needle.count) == 0
                    }
                    if same { return position }
                    index = position + 1
                }
                return nil
            }
            var at = 0
            while let hit = find(marker, from: at, to: filled) {
                // The line holding it: quotes inside JSON strings are escaped, so these byte strings occur only as keys.
                var lineStart = hit
                while lineStart > 0 && raw[lineStart - 1] != 0x0A { lineStart -= 1 }
                let lineEnd = memchr(base + hit, 0x0A, filled - hit).map { UnsafeRawPointer($0) - base } ?? filled
                if find(start, from: lineStart, to: lineEnd) != nil { sawStart = true }
                if find(end, from: lineStart, to: lineEnd) != nil { sawEnd = true }
                at = lineEnd
            }
        }
        return (sawStart, sawEnd, filled == buffer.count)
    }

    /// Whether the last 8 MiB of the log at `path` hold a `run.end` of run `runID` (``recordedMarks(path:runID:)``).
    package static func runEndRecorded(path: String, runID: String) -> Bool {
        recordedMarks(path: path, runID: runID).end == .present
    }

    @discardableResult
    private func append(_ record: AuditRecord, durable: Bool) throws(RunError) -> UInt64 {
        do {
            return try audit.append(record, durable: durable)
        } catch {
            throw RunError(.configuration, "cannot write the audit log '\(audit.path)': \(error); the run was not started")
        }
    }

    private static func lifecycle(_ plan: RunPlan, call: String, outcome: String?, reason: String,
                                  details: [String: String]) -> AuditRecord {
        AuditRecord(run: plan.options.runID, module: plan.moduleName, moduleSHA256: plan.module.sha256, call: call,
                    resource: "module:\(plan.module.path)", decision: nil, reason: reason,
                    policy: plan.policy.version, outcome: outcome, details: details)
    }

    /// Opens the audit log `options` name (creating its folder and the signing key on first use).
    public static func openAudit(_ options: SessionOptions) throws(RunError) -> AuditLog {
        guard let path = options.auditPath ?? SessionOptions.defaultAuditPath() else {
            throw RunError(.configuration, "no place for the audit log: set HOME, or pass --audit PATH")
        }
        guard let keyPath = options.auditKeyPath ?? CheckpointSigner.defaultKeyPath() else {
            throw RunError(.configuration, "no place for the audit signing key: set HOME, or pass --audit-key PATH")
        }
        // A log already signed cannot be continued by a key made now: say so before making one (a mistyped
        // --audit-key created a fresh key there, and the run then failed on the checkpoint's signature).
        if !FileManager.default.fileExists(atPath: keyPath), FileManager.default.fileExists(atPath: path + ".checkpoint") {
            throw RunError(.configuration,
                           "audit log '\(path)': its checkpoint is signed, and there is no signing key at '\(keyPath)'; name the key the log was signed with (--audit-key), or start a new log (--audit)")
        }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                         attributes: [.posixPermissions: 0o700])
            }
            let signer = try CheckpointSigner.loadOrCreate(keyPath: keyPath, name: CheckpointSigner.defaultName())
            return try AuditLog.open(path: path, signer: signer, sync: options.auditSync)
        } catch {
            throw RunError(.configuration, "audit log '\(path)': \(error)")
        }
    }
}

import Foundation

/// Writes one line to a file descriptor without buffering.
func printLine(_ line: String, to fd: Int32) {
    _ = writeFully(fd, Array((line + "\n").utf8))
}

/// A flag that answers `true` to the first ``claim()`` only, from any thread.
final class OnceFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    /// `true` the first time, `false` ever after.
    func claim() -> Bool { !flag.exchange(true, ordering: .acquiringAndReleasing) }
}

/// A flag set once, when a run's `run.end` is about to be appended.
final class RunEndMarker: Sendable {
    private let flag = Atomic<Bool>(false)

    /// Sets the flag.
    func set() { flag.store(true, ordering: .sequentiallyConsistent) }

    /// Whether it is set.
    var isSet: Bool { flag.load(ordering: .sequentiallyConsistent) }
}
