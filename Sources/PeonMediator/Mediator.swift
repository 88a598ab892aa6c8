package import PeonAudit
package import PeonInterface
import PeonPolicy
import Foundation
import Synchronization

/// Everything one run's mediator needs. Every default is the safe one: no policy lines (deny all),
/// a refusing approver, no databases.
package struct MediatorConfiguration: Sendable {
    /// The module (policy subject, audit `module`).
    package var module: String
    /// The module's SHA-256, lowercase hex.
    package var moduleSHA256: String
    /// The run id.
    package var runID: String
    /// The policy store (shared with a ``PolicyReloader``).
    package var policy: MediatorPolicyStore
    /// The audit log every decision and outcome is appended to.
    package var audit: AuditLog
    /// Who approves calls whose grant asks for approval.
    package var approver: any Approver = RefusingApprover()
    /// Database names bound to SQLite files (`--db NAME=PATH`). Setting them makes each one's rollback journal,
    /// write-ahead log and shared-memory index host files (``HostFiles/addJournals(of:)``).
    package var databases: [String: String] = [:] {
        didSet { for path in databases.values { hostFiles.addJournals(of: path) } }
    }
    /// The folder relative guest paths start from and programs run in.
    package var workingDirectory: String
    /// When the run ends; every call is bounded by it.
    package var deadline: ContinuousClock.Instant
    /// Host calls per run; `nil` takes the grants' `limits.calls`, and without that 10 000.
    package var callQuota: Int?
    /// The host environment `env:NAME` header values are read from.
    package var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Where `log` lines go (default: the host's stderr).
    package var logSink: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
    /// Told of every call the policy denied (action and policy object), after its audit entry is
    /// written; a tool server uses it to explain a failed call to the client. `nil`: nobody is told.
    package var denialSink: (@Sendable (_ action: String, _ object: String) -> Void)?
    /// Size caps and defaults for the capabilities.
    package var caps = CapabilityDefaults()
    /// Time source for rate limits and the `ctx.hour` policy attribute.
    package var now: @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    /// The token buckets of the grants' `rate`s, when they are shared with other runs: an `mcp` server passes one
    /// for all its tool calls, each of which is a run of its own, so `rate = "10/hour"` limits the server's calls
    /// together and a client cannot reset it by calling again. `nil`: the run's own buckets, full at its start.
    package var rates: RateLimiter?
    /// A replacement HTTP transport (tests only); `nil` uses the HTTP capability.
    var http: (any HTTPSender)?
    /// The host's own files, refused to every `fs` call before policy (``HostFiles``): the audit log's, always;
    /// the session adds the signing key.
    package var hostFiles = HostFiles()

    /// Creates a configuration with the safe defaults described on each property.
    package init(module: String, moduleSHA256: String, runID: String, policy: MediatorPolicyStore, audit: AuditLog,
                workingDirectory: String, deadline: ContinuousClock.Instant) {
        self.module = module
        self.moduleSHA256 = moduleSHA256
        self.runID = runID
        self.policy = policy
        self.audit = audit
        self.workingDirectory = workingDirectory
        self.deadline = deadline
        hostFiles.add(audit.path)
    }
}

/// Capability defaults used when a grant says nothing.
package struct CapabilityDefaults: Sendable, Hashable {
    /// Largest file read (64 MiB).
    package var maxReadBytes = 64 << 20
    /// Largest write or append (64 MiB).
    package var maxWriteBytes = 64 << 20
    /// Largest HTTP response body (8 MiB).
    package var maxResponseBytes = 8 << 20
    /// HTTP request time (30 s).
    package var httpTimeout: Duration = .seconds(30)
    /// Most rows a query returns (10 000).
    package var maxRows = 10_000
    /// Largest query result (16 MiB).
    package var maxResultBytes = 16 << 20
    /// Exec time (10 s).
    package var execTimeout: Duration = .seconds(10)
    /// Exec stdout/stderr cap, each (1 MiB).
    package var maxOutputBytes = 1 << 20
    /// `log` lines per second on average, and burst (20/s, burst 100).
    package var logRate = Rate(count: 100, period: .seconds(5))
    /// Longest log line (4 KiB; longer lines are cut).
    package var maxLogBytes = 4096

    /// The defaults above.
    package init() {}
}

/// The only door a module has to the world. Every guest call takes the same pipeline:
///
/// 1. its resource is parsed once into a typed ``Resource`` (a path, URL, program or table);
/// 2. deadline and call quota;
/// 3. policy decision on that resource's one string form;
///    then the information-flow check: a call that sends data out is refused unless the clearance of its
///    grant covers every label the run has read (`Mediator+Labels.swift`);
/// 4. rate limits and approval of the grants behind the deciding line;
/// 5. the write-ahead audit entry (durable first for side effects);
/// 6. the capability, which takes the same typed value;
/// 7. the outcome entry.
///
/// Decisions a capability needs in the middle of its work (a symbolic link's target, each table
/// SQLite's authorizer reports, also when SQLite re-prepares a statement) go through steps 3–5 as
/// well, through one callback that always decides *and* audits.
///
/// - Default deny: with no policy line for a call, it is refused with `denied` and audited.
/// - Every decision, allow and deny, is appended to the audit log before anything happens. If the log
///   cannot be written the call is refused (`io`): no unaudited action.
/// - Payloads are recorded by SHA-256 and length, never content; injected header values never appear
///   in the audit log or in anything returned to the guest.
/// - Each call reads the policy snapshot once, so a reload swaps atomically between calls.
///
/// The capabilities live in this module with internal access: nothing outside the mediator can
/// construct or call one. Thread-safe: calls may arrive concurrently from several guest threads.
package final class Mediator: HostInterface {
    let configuration: MediatorConfiguration
    /// Where relative guest paths start; `nil` when the configured folder is not absolute.
    let workingDirectory: GuestPath?
    let fileSystem: any FileSystemProvider
    let databases: any DatabaseProvider
    let programs: any ProgramRunner
    let http: any HTTPSender
    private let ownHTTP: HTTPCapability?
    private let rates: RateLimiter
    let logLimiter: RateLimiter
    /// Host calls the guest made (each counts toward the quota, refused or not).
    let callCount = Atomic<Int>(0)
    /// Set by ``shutdown()``: the run has ended and makes no more calls.
    private let callsEnded = Atomic<Bool>(false)
    let droppedLogLines = Atomic<Int>(0)
    /// The information-flow labels this run has read (see `Mediator+Labels.swift`).
    let runLabels = RunLabels()
    /// Which (module, action, resource) pairs were allowed before on this audit log (`FirstUse.swift`).
    let firstUses: FirstUseStore
    private let quota: Int

    /// Creates the mediator for one run, with the real capabilities.
    package convenience init(_ configuration: MediatorConfiguration) {
        let caps = configuration.caps
        let transport: any HTTPSender
        let httpCapability: HTTPCapability?
        if let injected = configuration.http {
            transport = injected
            httpCapability = nil
        } else {
            let capability = HTTPCapability(maxResponseBytes: caps.maxResponseBytes, timeout: caps.httpTimeout)
            transport = capability
            httpCapability = capability
        }
        self.init(
            configuration,
            fileSystem: FileSystemCapability(maxReadBytes: caps.maxReadBytes, maxWriteBytes: caps.maxWriteBytes),
            databases: DatabaseCapability(databases: configuration.databases, maxValueBytes: caps.maxResultBytes),
            programs: ExecCapability(workingDirectory: configuration.workingDirectory),
            http: transport, ownHTTP: httpCapability)
    }

    /// Creates the mediator with the given capabilities (tests inject their own here).
    init(_ configuration: MediatorConfiguration, fileSystem: any FileSystemProvider, databases: any DatabaseProvider,
         programs: any ProgramRunner, http: any HTTPSender, ownHTTP: HTTPCapability? = nil) {
        self.configuration = configuration
        workingDirectory = try? GuestPath(parsing: configuration.workingDirectory, relativeTo: nil)
        self.fileSystem = fileSystem
        self.databases = databases
        self.programs = programs
        self.http = http
        self.ownHTTP = ownHTTP
        rates = configuration.rates ?? RateLimiter(now: configuration.now)
        logLimiter = RateLimiter(now: configuration.now)
        firstUses = FirstUseStore.shared(for: configuration.audit)
        quota = configuration.callQuota ?? configuration.policy.current.compiled?.grants.limits.calls ?? 10_000
    }

    /// Ends the run's calls: from now on no call is decided or made, and no entry of a call reaches the log
    /// (the log asks under its ordering lock, so an entry that would follow the run's `run.end` is refused;
    /// see ``record(call:resource:decision:reason:version:outcome:details:durability:)``). A call between its
    /// decision and its action stops before the action. New HTTP calls are refused; calls already running
    /// finish or time out on their own, their outcome unrecorded. Idempotent.
    package func shutdown() {
        callsEnded.store(true, ordering: .sequentiallyConsistent)
        ownHTTP?.shutdown()
    }

    /// Whether ``shutdown()`` has ended the run's calls.
    var hasEnded: Bool { callsEnded.load(ordering: .sequentiallyConsistent) }

    // MARK: Refused before decoding

    /// A call whose arguments were over the host's size limits: audited as a denial on `KIND:?` (the arguments
    /// were never decoded, so the resource is unknown). If the log cannot be written the log has stopped, and
    /// every later call is refused.
    package func refused(call: String, error: HostError) {
        callCount.add(1, ordering: .relaxed)
        let kind = call.split(separator: ".", maxSplits: 1).first.map(String.init) ?? call
        _ = try? refuseEarly(call, resource: kind + ":?", error)
    }

    // MARK: The pipeline

    /// One call (or one decision in the middle of a call) as the pipeline sees it.
    struct CallRequest {
        /// The WIT function, e.g. `fs.read`.
        var call: String
        /// What it acts on, parsed once.
        var resource: Resource
        /// The policy action, e.g. `fs.read`, `http.GET`, `db.read`.
        var action: String
        /// The exec argument vector; empty for other calls.
        var arguments: [String] = []
        /// Whether the call changes the world (its decision entry is durable first).
        var sideEffect: Bool
        /// Extra audit facts (payload hashes, method, argument vector).
        var details: [String: String] = [:]
        /// The data this call sends out, by part (`body`, `header X-Note`, `argument 2`, `data`, ...), for the
        /// egress check (`Mediator+Egress.swift`); empty for calls that send nothing.
        var outgoing: [(part: String, bytes: [UInt8])] = []
    }

    /// An admitted call: what the outcome entry, the capability and nested decisions need.
    ///
    /// A class, immutable: the closures of the call and its nested decisions share one ticket, and passing it on
    /// costs one retain instead of one for each of its fields.
    final class Ticket: Sendable {
        let call: String
        let resource: Resource
        /// `resource.description`, the policy object and the entries' `resource` (worked out once per call).
        let object: String
        let version: String
        let decisionSeq: UInt64
        let sideEffect: Bool
        let snapshot: PolicySnapshot
        let references: [CompiledGrants.GrantReference]
        /// Grants whose rate and approval this call has already taken (shared with nested decisions).
        let charged: ChargedGrants
        /// The labels this call's reads bring and its sink decisions (shared with nested decisions).
        let flow: CallFlow

        init(call: String, resource: Resource, object: String, version: String, decisionSeq: UInt64, sideEffect: Bool,
             snapshot: PolicySnapshot, references: [CompiledGrants.GrantReference], charged: ChargedGrants, flow: CallFlow) {
            self.call = call
            self.resource = resource
            self.object = object
            self.version = version
            self.decisionSeq = decisionSeq
            self.sideEffect = sideEffect
            self.snapshot = snapshot
            self.references = references
            self.charged = charged
            self.flow = flow
        }

        var httpGrants: [HTTPGrant] {
            guard let grants = snapshot.compiled?.grants else { return [] }
            return references.compactMap { if case .http(let index) = $0 { grants.http[index] } else { nil } }
        }

        var execGrants: [ExecGrant] {
            guard let grants = snapshot.compiled?.grants else { return [] }
            return references.compactMap { if case .exec(let index) = $0 { grants.exec[index] } else { nil } }
        }
    }

    /// The grants one call has charged its rate and approval to, so a nested decision on the same grant
    /// (a second table, a link inside the same grant) neither takes a second token nor asks twice.
    final class ChargedGrants: Sendable {
        private let references = Mutex<Set<CompiledGrants.GrantReference>>([])

        /// Marks `reference` charged; `false` when it already was.
        func charge(_ reference: CompiledGrants.GrantReference) -> Bool {
            references.withLock { $0.insert(reference).inserted }
        }
    }

    /// Parses a call's resource; a malformed one is an audited `invalid-argument` on `KIND:?`.
    func parse<T>(_ call: String, kind: String, _ body: () throws(HostError) -> T) throws(HostError) -> T {
        do {
            return try body()
        } catch {
            // A call refused for its arguments is a call all the same: it counts toward the quota.
            callCount.add(1, ordering: .relaxed)
            throw try refuseEarly(call, resource: kind + ":?", error)
        }
    }

    /// Checks the deadline and the call quota (both audited as denials).
    func begin(_ call: String, _ resource: Resource) throws(HostError) {
        let count = callCount.add(1, ordering: .relaxed).newValue
        if ContinuousClock.now >= configuration.deadline {
            throw try refuseEarly(call, resource: resource.description, HostError(.timeout, "the run's time limit has passed"))
        }
        if count > quota {
            throw try refuseEarly(call, resource: resource.description,
                                  HostError(.limitExceeded, "the run's host-call quota (\(quota) calls) is used up"))
        }
    }

    /// How many calls past its quota a run may make (each refused and audited) before it is stopped: enough
    /// for a guest to notice `limit-exceeded` and wind down, few enough that a guest looping on refused calls
    /// cannot fill the disk with audit entries.
    package static let callsPastQuota = 100

    /// Why the run must stop: it went on calling ``callsPastQuota`` calls after its quota refused it.
    package var stopReason: String? {
        let count = callCount.load(ordering: .relaxed)
        // Saturating: a grants file may set `calls` up to Int.max, and `quota + 100` must not trap then.
        let (stopAt, overflow) = quota.addingReportingOverflow(Self.callsPastQuota)
        guard !overflow, count >= stopAt else { return nil }
        return "the module made \(Self.callsPastQuota) more host calls after its call quota of \(quota) was used up, so the run was stopped; raise `calls` in its grants"
    }

    /// Runs one whole call through the pipeline: decide, rate, approval, write-ahead entry, the capability
    /// (`body`, which returns the value and the outcome entry's details), outcome entry.
    func mediate<T>(
        _ request: CallRequest, _ body: (Ticket) throws(HostError) -> (T, [String: String])
    ) throws(HostError) -> T {
        let snapshot = configuration.policy.current
        let ticket = try admit(request, snapshot: snapshot, charged: ChargedGrants(), flow: CallFlow(), within: nil)
        // The run may have ended while the decision was written: the action is not begun after its end.
        if hasEnded { throw HostError(.io, "the run has ended; \(request.call) was not made") }
        do {
            let (value, details) = try body(ticket)
            var outcome = details
            outcome["decision_seq"] = String(ticket.decisionSeq)
            // The call succeeded: the labels its reads brought join the run before the data reaches the guest.
            let (acquired, unrecorded) = acquireLabels(ticket.flow.pending)
            if !acquired.isEmpty { outcome["labels_acquired"] = acquired.joined(separator: ",") }
            if let unrecorded { outcome["audit_labels_unrecorded"] = unrecorded }
            let held = runLabels.current
            if !held.isEmpty { outcome["run_labels"] = labelDetail(held) }
            try record(call: ticket.call, resource: ticket.object, decision: nil, reason: "",
                       version: ticket.version, outcome: "ok", details: outcome, durability: .buffered)
            return value
        } catch {
            var outcome = ["decision_seq": String(ticket.decisionSeq)]
            // A failure is information too (which name is missing, how large a file is): the labels the call
            // brought (its grant's, and those where a file call stopped) join the run as on success.
            let (acquired, unrecorded) = acquireLabels(ticket.flow.pending)
            if !acquired.isEmpty { outcome["labels_acquired"] = acquired.joined(separator: ",") }
            if let unrecorded { outcome["audit_labels_unrecorded"] = unrecorded }
            try record(call: ticket.call, resource: ticket.object, decision: nil, reason: error.loggedMessage,
                       version: ticket.version, outcome: error.code.description, details: outcome, durability: .buffered)
            throw error
        }
    }

    /// The callback a capability asks in the middle of a call (a link target, a table): the same policy
    /// question on the call's snapshot, then rate and approval, always audited as its own decision
    /// (durable first when the call has side effects). `false` refuses.
    func nestedCheck(_ ticket: Ticket) -> @Sendable (Resource, String) -> Bool {
        { [self] resource, action in
            var details = ["within_seq": String(ticket.decisionSeq)]
            if case .file = resource { details["via_link_from"] = ticket.object }
            let request = CallRequest(call: ticket.call, resource: resource, action: action, sideEffect: ticket.sideEffect,
                                      details: details)
            do {
                _ = try admit(request, snapshot: ticket.snapshot, charged: ticket.charged, flow: ticket.flow, within: ticket)
                return true
            } catch {
                return false
            }
        }
    }

    /// Audits a refusal decided before policy (bad argument, quota, deadline) and returns the error.
    func refuseEarly(_ call: String, resource: String, _ error: HostError) throws(HostError) -> HostError {
        try record(call: call, resource: resource, decision: .deny, reason: error.loggedMessage,
                   version: configuration.policy.current.version, outcome: error.code.description, details: [:],
                   durability: .buffered)
        return error
    }

    /// The `r.ctx` object: time of day, run, module hash, the labels the run holds (sorted, comma-separated,
    /// `""` for none: `!regexMatch(r.ctx.labels, "(^|,)hr(,|$)")` writes a flow rule in the policy itself)
    /// and whether this is the module's first use of the resource.
    private func requestContext(labels: [String: UInt64], firstUse: Bool) -> [String: PolicyValue] {
        let seconds = Int(Date().timeIntervalSince1970)
        let hour = (seconds / 3600) % 24
        let weekday = ((seconds / 86_400) + 4) % 7 + 1  // 1970-01-01 was a Thursday (5).
        return ["hour": .number(Double(hour)), "weekday": .number(Double(weekday)),
                "run": .string(configuration.runID), "sha256": .string(configuration.moduleSHA256),
                "labels": .string(labels.keys.sorted().joined(separator: ",")), "first_use": .bool(firstUse)]
    }

    /// The audit reason of a call refused because it names one of the host's own files.
    static let hostFileReason = "the host's own file (the audit log, its checkpoint and index files, the signing key, the grants, model or policy file, the module, a bound database's journal): no grant reaches it"

    /// Policy decision, then the information-flow check (a sink's grants must clear every label the run
    /// holds), then rate limits and approval for the grants behind the deciding line, then the decision
    /// entry. Every refusal is audited before it is thrown.
    private func admit(
        _ request: CallRequest, snapshot: PolicySnapshot, charged: ChargedGrants, flow: CallFlow, within parent: Ticket?
    ) throws(HostError) -> Ticket {
        let object = request.resource.description
        var details = request.details
        let arguments = ArgumentVector.encode(request.arguments)
        let useName: String
        switch request.resource {
        case .url: useName = request.resource.firstUseName
        // A program counts with its arguments: a person who approved `rm tmp.txt` once did not approve `rm` with
        // whatever arguments come later. The program is one more percent-encoded word of the vector, so a path with
        // a space in it (`/opt/a 2:x`) cannot pass for another program's arguments (`/opt/a` with `x 0:`).
        case .program: useName = ArgumentVector.encode([object] + request.arguments)
        default: useName = object
        }
        let useKey = FirstUseStore.key(module: configuration.module, action: request.action, resource: useName)
        let firstUse = firstUses.isFirstUse(useKey)
        if firstUse { details["first_use"] = "true" }
        if case .file(let path) = request.resource, configuration.hostFiles.contains(path.description) {
            // Whatever the grants say: the record of what the guest did is not the guest's (``HostFiles``).
            try record(call: request.call, resource: object, decision: .deny, reason: Self.hostFileReason, version: snapshot.version,
                       outcome: HostErrorCode.denied.description, details: details, durability: .buffered)
            configuration.denialSink?(request.action, object)
            throw HostError(.denied, "\(request.action) on \(guestVisible(object)): the host's own files (the audit log, its signing key, the grants, model and policy files, the module and the journals of bound databases) are never reachable by a guest")
        }
        let verdict = snapshot.decide(PolicyRequest(
            subject: configuration.module, object: object, action: request.action,
            arguments: arguments,
            context: snapshot.usesContext ? requestContext(labels: heldLabels(flow), firstUse: firstUse) : [:]))
        guard verdict.isAllowed else {
            try record(call: request.call, resource: object, decision: .deny, reason: verdict.reason, version: verdict.version,
                       outcome: HostErrorCode.denied.description, details: details, durability: .buffered)
            configuration.denialSink?(request.action, object)
            let how = parent.map { " (reached through \(guestVisible($0.object)))" } ?? ""
            throw HostError(.denied, "\(request.action) on \(guestVisible(object))\(how) is not granted to \(configuration.module)")
        }
        var references: [CompiledGrants.GrantReference] = []
        if let compiled = snapshot.compiled, let rule = verdict.rule {
            for (reference, _) in compiled.conditions(for: rule) where !references.contains(reference) {
                references.append(reference)
            }
        }
        // The grants whose labels, rate and approval apply: those behind the deciding line, and every other
        // grant that covers the request too. The engine names only the first line that matches, so a broader
        // grant written first (`/data/**`) would otherwise let a read of `/data/hr/x` skip the labels, rate
        // and approval of a narrower one (`/data/hr/**`). Clearance, caps and injected headers stay those of
        // the deciding line's grants.
        var conditionReferences = references
        if let compiled = snapshot.compiled {
            for reference in compiled.coveringReferences(
                subject: configuration.module, object: object, action: request.action, arguments: arguments)
            where !conditionReferences.contains(reference) {
                conditionReferences.append(reference)
            }
        }
        if let finding = egressFinding(request, snapshot: snapshot) {
            details["egress_pattern"] = finding.pattern
            details["egress_part"] = finding.part
            let message = "\(request.call) on \(guestVisible(object)) refused: its \(finding.part) contains a match of the egress pattern '\(finding.pattern)'"
            try record(call: request.call, resource: object, decision: .deny, reason: message, version: verdict.version,
                       outcome: HostErrorCode.denied.description, details: details, durability: .buffered)
            throw HostError(.denied, message)
        }
        let role = FlowRole(action: request.action)
        if role.isSink {
            let held = heldLabels(flow)
            let grants = clearances(snapshot, references)
            flow.noteSink(CallFlow.Sink(action: request.action, resource: object, grants: grants))
            if !held.isEmpty { details["run_labels"] = labelDetail(held) }
            if let denial = flowDenial(held: held, action: request.action, resource: object, grants: grants) {
                details["missing_clearance"] = denial.missing.joined(separator: ",")
                try record(call: request.call, resource: object, decision: .deny, reason: denial.message,
                           version: verdict.version, outcome: HostErrorCode.denied.description, details: details,
                           durability: .buffered)
                let refusal = HostError(.denied, denial.message)
                if parent != nil { flow.noteNestedFlowRefusal(refusal) }
                throw refusal
            }
        }
        // The labels the approvers' answers carry: they join the run with the entry that records the decision.
        var answerLabels: [String] = []
        if let compiled = snapshot.compiled {
            // A call takes one token of a grant's rate and asks its approver once, however many nested
            // decisions fall under the grant (a second table); but a link's target is another file, and the
            // approver is asked about it too: approving `notes` is not approving the file it points to.
            var linkTarget = false
            if parent != nil, case .file = request.resource { linkTarget = true }
            for reference in conditionReferences {
                let firstCharge = charged.charge(reference)
                guard firstCharge || linkTarget else { continue }
                let conditions = compiled.conditions(of: reference)
                if firstCharge, let rate = conditions.rate {
                    let key = "\(configuration.module)|\(compiled.source(of: reference))|\(reference)|\(rate)"
                    if !rates.take(key, rate: rate) {
                        let message = "the rate limit \(rate) of grant \(reference) is exhausted; try again later"
                        try record(call: request.call, resource: object, decision: .deny, reason: message,
                                   version: verdict.version, outcome: HostErrorCode.limitExceeded.description,
                                   details: details, durability: .buffered)
                        throw HostError(.limitExceeded, message)
                    }
                }
                if conditions.approval == .everyCall || (conditions.approval == .firstUse && firstUse) {
                    let approval = ApprovalRequest(
                        run: configuration.runID, module: configuration.module, moduleSHA256: configuration.moduleSHA256,
                        call: request.call, resource: object, arguments: request.arguments, details: details,
                        grant: compiled.source(of: reference).description,
                        labels: heldLabels(flow).keys.sorted())
                    let answer = configuration.approver.approve(approval, deadline: configuration.deadline)
                    details["approver"] = configuration.approver.identity
                    details["approval"] = answer.answer
                    if !answer.labels.isEmpty {
                        answerLabels += answer.labels
                        details["approval_labels"] = Set(answerLabels).sorted().joined(separator: ",")
                    }
                    guard answer.approved else {
                        let message = answer.answer == "approval required"
                            ? "approval required" : "not approved (\(answer.answer))"
                        let seq = try record(call: request.call, resource: object, decision: .deny, reason: message,
                                             version: verdict.version, outcome: HostErrorCode.denied.description,
                                             details: details, durability: .buffered)
                        inherit(answerLabels, seq: seq)
                        throw HostError(.denied, "\(request.call) on \(guestVisible(object)): \(message)")
                    }
                }
            }
        }
        // A side effect's entry is durable first; a call whose data can leave the process (an HTTP GET) is written
        // first; a read may wait in the log's buffer (batch mode) until something leaves the process.
        let durability: AuditDurability = request.sideEffect ? .durable : (role.isSink ? .written : .buffered)
        let seq = try record(call: request.call, resource: object, decision: .allow, reason: verdict.reason,
                             version: verdict.version, outcome: nil, details: details, durability: durability)
        if !answerLabels.isEmpty { inherit(answerLabels, seq: seq) }
        if firstUse { firstUses.markUsed(useKey) }
        if role.isSource { flow.bring(sourceLabels(snapshot, conditionReferences), seq: seq) }
        return Ticket(call: request.call, resource: request.resource, object: object, version: verdict.version, decisionSeq: seq,
                      sideEffect: request.sideEffect, snapshot: snapshot, references: references, charged: charged,
                      flow: flow)
    }

    /// Appends one audit entry; a log failure refuses the call with `io`.
    @discardableResult
    func record(
        call: String, resource: String, decision: AuditDecision?, reason: String, version: String, outcome: String?,
        details: [String: String], durability: AuditDurability
    ) throws(HostError) -> UInt64 {
        let entry = AuditRecord(
            run: configuration.runID, module: configuration.module, moduleSHA256: configuration.moduleSHA256,
            call: call, resource: resource, decision: decision, reason: reason, policy: version, outcome: outcome,
            details: details)
        do {
            return try configuration.audit.append(entry, durability: durability) { !self.hasEnded }
        } catch {
            if hasEnded { throw HostError(.io, "the run has ended; \(call) was not made") }
            throw HostError(.io, "the audit log cannot be written, so the call is refused")
        }
    }
}

/// `PREFIX_sha256` and `PREFIX_len` of a payload: the audit log never holds content.
func payloadDetails(_ bytes: [UInt8], prefix: String) -> [String: String] {
    AuditRecord.payloadDetails(of: bytes, prefix: prefix)
}

/// Control characters (C0, DEL, C1, and the line break) escaped, so a guest cannot forge log or
/// message lines, or move a terminal's cursor.
func sanitize(_ text: String) -> String {
    TerminalText.escaped(text)
}

/// The kind prefixes a resource string starts with, in the order they are cut off.
private let resourceKinds: [[UInt8]] = ["fs:", "http:", "db:", "exec:"].map { Array($0.utf8) }

/// The resource as shown to the guest, without its kind prefix (`fs:`, `http:` ...): the guest sent
/// it, so it is no secret; escaped and cut at 200 characters.
func guestVisible(_ resource: String) -> String {
    var resource = resource
    // By bytes: each prefix is ASCII, so where it ends is a scalar boundary whatever follows it.
    let kindBytes = resource.withUTF8 { bytes in
        var at = 0
        for kind in resourceKinds where bytes.count - at >= kind.count && kind.indices.allSatisfy({ bytes[at + $0] == kind[$0] }) {
            at += kind.count
        }
        return at
    }
    let text = kindBytes == 0 ? resource : String(Substring(resource.utf8.dropFirst(kindBytes)))
    let clean = sanitize(text)
    return clean.utf8.count > 200 && clean.count > 200 ? String(clean.prefix(200)) + "…" : clean
}
