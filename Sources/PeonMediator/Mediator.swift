public import PeonAudit
public import PeonInterface
import PeonCapabilities
import PeonPolicy
import Foundation
import Synchronization

/// Sends an HTTP request that the mediator has already authorized (the transport seam: the runtime
/// passes `PeonCapabilities`' HTTP capability here). It must not follow redirects, must check the
/// resolved addresses (refusing private ones unless listed in `allowedAddresses`) and must cap the
/// response and the time.
public protocol HTTPSender: Sendable {
    /// Sends `request` with `injectedHeaders` added (replacing any guest header of the same name).
    func send(
        _ request: HTTPRequestValue, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
        maxResponseBytes: Int, deadline: ContinuousClock.Instant
    ) throws(HostError) -> HTTPResponseValue
}

/// Everything one run's mediator needs. Every default is the safe one: no policy lines (deny all),
/// a refusing approver, no databases, no HTTP transport.
public struct MediatorConfiguration: Sendable {
    /// The module (policy subject, audit `module`).
    public var module: String
    /// The module's SHA-256, lowercase hex.
    public var moduleSHA256: String
    /// The run id.
    public var runID: String
    /// The policy store (shared with a ``PolicyReloader``).
    public var policy: MediatorPolicyStore
    /// The audit log every decision and outcome is appended to.
    public var audit: AuditLog
    /// Who approves calls whose grant asks for approval.
    public var approver: any Approver = RefusingApprover()
    /// Database names bound to SQLite files (`--db NAME=PATH`).
    public var databases: [String: String] = [:]
    /// The folder relative guest paths start from and programs run in.
    public var workingDirectory: String
    /// When the run ends; every call is bounded by it.
    public var deadline: ContinuousClock.Instant
    /// Host calls per run; `nil` takes the grants' `limits.calls`, and without that 10 000.
    public var callQuota: Int?
    /// The HTTP transport; `nil` makes every allowed request fail with `io`.
    public var http: (any HTTPSender)?
    /// The host environment `env:NAME` header values are read from.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Where `log` lines go (default: the host's stderr).
    public var logSink: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
    /// Size caps and defaults for the capabilities.
    public var caps = CapabilityDefaults()
    /// Time source for rate limits and the `ctx.hour` policy attribute.
    public var now: @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }

    /// Creates a configuration with the safe defaults described on each property.
    public init(module: String, moduleSHA256: String, runID: String, policy: MediatorPolicyStore, audit: AuditLog,
                workingDirectory: String, deadline: ContinuousClock.Instant) {
        self.module = module
        self.moduleSHA256 = moduleSHA256
        self.runID = runID
        self.policy = policy
        self.audit = audit
        self.workingDirectory = workingDirectory
        self.deadline = deadline
    }
}

/// Capability defaults used when a grant says nothing.
public struct CapabilityDefaults: Sendable, Hashable {
    /// Largest file read (64 MiB).
    public var maxReadBytes = 64 << 20
    /// Largest write or append (64 MiB).
    public var maxWriteBytes = 64 << 20
    /// Largest HTTP response body (8 MiB).
    public var maxResponseBytes = 8 << 20
    /// HTTP request time (30 s).
    public var httpTimeout: Duration = .seconds(30)
    /// Most rows a query returns (10 000).
    public var maxRows = 10_000
    /// Largest query result (16 MiB).
    public var maxResultBytes = 16 << 20
    /// Exec time (10 s).
    public var execTimeout: Duration = .seconds(10)
    /// Exec stdout/stderr cap, each (1 MiB).
    public var maxOutputBytes = 1 << 20
    /// `log` lines per second on average, and burst (20/s, burst 100).
    public var logRate = Rate(count: 100, period: .seconds(5))
    /// Longest log line (4 KiB; longer lines are cut).
    public var maxLogBytes = 4096

    /// The defaults above.
    public init() {}
}

/// The only door a module has to the world: every guest call goes policy decision -> rate limit ->
/// approval -> write-ahead audit -> capability -> audit outcome.
///
/// - Default deny: with no policy line for a call, it is refused with `denied` and audited.
/// - Every decision, allow and deny, is appended to the audit log before anything happens; for side
///   effects (fs write/append/remove, HTTP other than GET/HEAD, `db.execute`, exec) the entry is
///   durable first. If the log cannot be written the call is refused (`io`): no unaudited action.
/// - Payloads are recorded by SHA-256 and length, never content; injected header values never appear
///   in the audit log or in anything returned to the guest.
/// - Rate limits and the call quota refuse with `limit-exceeded`, audited as denials.
/// - Each call reads the policy snapshot once, so a reload swaps atomically between calls.
///
/// Thread-safe: calls may arrive concurrently from several guest threads.
public final class Mediator: HostInterface {
    private let configuration: MediatorConfiguration
    private let fileSystem: FileSystemCapability
    private let database: DatabaseCapability
    private let exec: ExecCapability
    private let rates: RateLimiter
    private let logLimiter: RateLimiter
    private let callCount = Atomic<Int>(0)
    private let droppedLogLines = Atomic<Int>(0)
    private let quota: Int

    /// Creates the mediator for one run.
    public init(_ configuration: MediatorConfiguration) {
        self.configuration = configuration
        fileSystem = FileSystemCapability(workingDirectory: configuration.workingDirectory,
                                          maxReadBytes: configuration.caps.maxReadBytes,
                                          maxWriteBytes: configuration.caps.maxWriteBytes)
        database = DatabaseCapability(databases: configuration.databases)
        exec = ExecCapability(workingDirectory: configuration.workingDirectory)
        rates = RateLimiter(now: configuration.now)
        logLimiter = RateLimiter(now: configuration.now)
        quota = configuration.callQuota ?? configuration.policy.current.compiled?.grants.limits.calls ?? 10_000
    }

    // MARK: fs

    /// `fs.read`.
    public func read(path: String) throws(HostError) -> [UInt8] {
        let normalized = try normalizedPath("fs.read", path)
        let ticket = try authorize(call: "fs.read", object: "fs:" + normalized, action: "fs.read", sideEffect: false)
        return try perform(ticket) { () throws(HostError) in
            let data = try fileSystem.read(normalized, authorize: linkCheck(ticket, action: "fs.read"))
            return (data, payloadDetails(data, prefix: "result"))
        }
    }

    /// `fs.write`.
    public func write(path: String, data: [UInt8]) throws(HostError) {
        let normalized = try normalizedPath("fs.write", path)
        let ticket = try authorize(call: "fs.write", object: "fs:" + normalized, action: "fs.write",
                                   sideEffect: true, details: payloadDetails(data, prefix: "payload"))
        try perform(ticket) { () throws(HostError) in
            try fileSystem.write(normalized, data: data, authorize: linkCheck(ticket, action: "fs.write"))
            return ((), [:])
        }
    }

    /// `fs.append`.
    public func append(path: String, data: [UInt8]) throws(HostError) {
        let normalized = try normalizedPath("fs.append", path)
        let ticket = try authorize(call: "fs.append", object: "fs:" + normalized, action: "fs.append",
                                   sideEffect: true, details: payloadDetails(data, prefix: "payload"))
        try perform(ticket) { () throws(HostError) in
            try fileSystem.append(normalized, data: data, authorize: linkCheck(ticket, action: "fs.append"))
            return ((), [:])
        }
    }

    /// `fs.read-dir` (policy action `fs.list`).
    public func readDirectory(path: String) throws(HostError) -> [String] {
        let normalized = try normalizedPath("fs.read-dir", path)
        let ticket = try authorize(call: "fs.read-dir", object: "fs:" + normalized, action: "fs.list",
                                   sideEffect: false)
        return try perform(ticket) { () throws(HostError) in
            let names = try fileSystem.readDirectory(normalized, authorize: linkCheck(ticket, action: "fs.list"))
            return (names, ["entries": String(names.count)])
        }
    }

    /// `fs.remove`.
    public func remove(path: String) throws(HostError) {
        let normalized = try normalizedPath("fs.remove", path)
        let ticket = try authorize(call: "fs.remove", object: "fs:" + normalized, action: "fs.remove",
                                   sideEffect: true)
        try perform(ticket) { () throws(HostError) in
            try fileSystem.remove(normalized, authorize: linkCheck(ticket, action: "fs.remove"))
            return ((), [:])
        }
    }

    // MARK: http

    /// `http.send`: decided on `http:` + the canonical URL and `http.` + the method.
    public func send(_ request: HTTPRequestValue) throws(HostError) -> HTTPResponseValue {
        let method = request.method.uppercased()
        guard !method.isEmpty, method.utf8.count <= 32, method.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "-") })
        else {
            throw try refuseEarly("http.send", resource: "http:?", HostError(.invalidArgument, "'\(request.method)' is not an HTTP method"))
        }
        guard let url = canonicalHTTPURL(request.url) else {
            throw try refuseEarly("http.send", resource: "http:?",
                                  HostError(.invalidArgument, "the URL must be an absolute http(s) URL with a host and no user info"))
        }
        try begin("http.send", resource: "http:" + url)
        var details = payloadDetails(request.body, prefix: "payload")
        details["method"] = method
        details["guest_headers"] = request.headers.map(\.name).joined(separator: ",")
        let sideEffect = method != "GET" && method != "HEAD"
        let ticket = try authorize(call: "http.send", object: "http:" + url, action: "http." + method,
                                   sideEffect: sideEffect, details: details)
        let grants = ticket.httpGrants
        var injected: [HTTPHeader] = []
        var allowed: Set<String> = []
        var maxResponse = configuration.caps.maxResponseBytes
        var timeout = configuration.caps.httpTimeout
        for grant in grants {
            for header in grant.headers {
                switch header.value {
                case .literal(let value): injected.append(HTTPHeader(name: header.name, value: value))
                case .environment(let name):
                    guard let value = configuration.environment[name] else {
                        throw try fail(ticket, HostError(.io, "the host has no value for a header this grant injects; ask the operator"))
                    }
                    injected.append(HTTPHeader(name: header.name, value: value))
                }
            }
            for pattern in grant.urls { if let host = literalAddress(pattern) { allowed.insert(host) } }
            if let cap = grant.maxResponse { maxResponse = min(maxResponse, cap.bytes) }
            if let cap = grant.timeout { timeout = min(timeout, cap) }
        }
        let injectedNames = Set(injected.map { $0.name.lowercased() })
        var outgoing = request
        outgoing.method = method
        outgoing.url = url
        outgoing.headers = request.headers.filter { !injectedNames.contains($0.name.lowercased()) }
        let deadline = min(configuration.deadline, ContinuousClock.now.advanced(by: timeout))
        return try perform(ticket) { () throws(HostError) in
            guard let sender = configuration.http else {
                throw HostError(.io, "this host has no HTTP transport configured")
            }
            var response = try sender.send(outgoing, injectedHeaders: injected, allowedAddresses: allowed,
                                           maxResponseBytes: maxResponse, deadline: deadline)
            // A server echoing a secret back in a header is not the guest's business either.
            let secrets = Set(injected.map(\.value)).filter { !$0.isEmpty }
            response.headers = response.headers.filter { !secrets.contains($0.value) }
            var outcome = payloadDetails(response.body, prefix: "result")
            outcome["status"] = String(response.status)
            return (response, outcome)
        }
    }

    // MARK: db

    /// `db.query`: one read-only statement; each table access is decided as `db:NAME/TABLE`, `db.read`.
    public func query(database name: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> DatabaseRows {
        let (statement, ticket) = try prepare(call: "db.query", database: name, sql: sql, parameters: parameters,
                                              sideEffect: false)
        guard statement.isReadOnly else {
            throw try fail(ticket, HostError(.denied, "db.query runs read-only statements; use db.execute to write"))
        }
        let deadline = configuration.deadline
        let maxRows = configuration.caps.maxRows
        let maxBytes = configuration.caps.maxResultBytes
        return try perform(ticket) { () throws(HostError) in
            let rows = try statement.query(parameters, maxRows: maxRows, maxBytes: maxBytes, deadline: deadline)
            return (rows, ["rows": String(rows.rows.count)])
        }
    }

    /// `db.execute`: one statement; every table access is decided by policy through SQLite's authorizer.
    public func execute(database name: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> UInt64 {
        let (statement, ticket) = try prepare(call: "db.execute", database: name, sql: sql, parameters: parameters,
                                              sideEffect: true)
        let deadline = configuration.deadline
        return try perform(ticket) { () throws(HostError) in
            let changed = try statement.execute(parameters, deadline: deadline)
            return (changed, ["changed": String(changed)])
        }
    }

    private func prepare(
        call: String, database name: String, sql: String, parameters: [DatabaseValue], sideEffect: Bool
    ) throws(HostError) -> (PreparedStatement, Ticket) {
        try begin(call, resource: "db:" + name)
        let snapshot = configuration.policy.current
        let collected = Mutex<[DatabaseRule]>([])
        let subject = configuration.module
        let context = requestContext()
        var details = payloadDetails(Array(sql.utf8), prefix: "sql")
        details["parameters"] = String(parameters.count)
        let statement: PreparedStatement
        do {
            statement = try database.prepare(database: name, sql: sql) { access in
                let object = "db:\(name)/\(access.table)"
                let action = "db." + access.operation.rawValue
                let verdict = snapshot.decide(PolicyRequest(subject: subject, object: object, action: action,
                                                            context: context))
                collected.withLock { $0.append(DatabaseRule(object: object, action: action, verdict: verdict)) }
                return verdict.isAllowed
            }
        } catch {
            // A refusal from the authorizer is audited with every access it decided.
            let decisions = collected.withLock { $0 }
            var denyDetails = details
            denyDetails["accesses"] = decisions.map { "\($0.action) \($0.object) \($0.verdict.isAllowed ? "allow" : "deny")" }
                .joined(separator: "; ")
            let firstDenied = decisions.first { !$0.verdict.isAllowed }
            let reason = firstDenied?.verdict.reason ?? error.message
            try record(call: call, resource: "db:" + name, decision: .deny, reason: reason,
                       version: snapshot.version, outcome: error.code.description, details: denyDetails, durable: false)
            throw error
        }
        let decisions = collected.withLock { $0 }
        details["accesses"] = decisions.map { "\($0.action) \($0.object)" }.joined(separator: "; ")
        let rules = decisions.compactMap(\.verdict.rule)
        let reason = decisions.isEmpty ? "the statement touches no table" : decisions.map(\.verdict.reason).joined(separator: "; ")
        let ticket = try admit(call: call, resource: "db:" + name, arguments: [], snapshot: snapshot,
                               verdict: PolicyVerdict(isAllowed: true, reason: reason, rule: nil, version: snapshot.version),
                               rules: rules, sideEffect: sideEffect, details: details)
        return (statement, ticket)
    }

    // MARK: exec

    /// `exec.run`: decided on `exec:PROGRAM`, `exec.run` and the argument vector (``ArgumentVector``).
    public func run(program: String, arguments: [String], stdin: [UInt8]) throws(HostError) -> ExecOutput {
        // Bounded first: the checks below split the path, and the ABI lets a guest pass up to 64 MiB.
        guard program.utf8.count <= FileSystemCapability.maxPathBytes else {
            throw try refuseEarly("exec.run", resource: "exec:?",
                                  HostError(.invalidArgument, "the program path is longer than \(FileSystemCapability.maxPathBytes) bytes"))
        }
        guard FileSystemCapability.isAbsolute(program), normalizeLexically(program).utf8.elementsEqual(program.utf8), !program.utf8.contains(0),
              !arguments.contains(where: { $0.utf8.contains(0) })
        else {
            throw try refuseEarly("exec.run", resource: "exec:" + sanitize(program),
                                  HostError(.invalidArgument, "exec needs an absolute, normalized program path and arguments without NUL"))
        }
        try begin("exec.run", resource: "exec:" + program)
        var details = payloadDetails(stdin, prefix: "stdin")
        details["args"] = ArgumentVector.encode(arguments)
        let ticket = try authorize(call: "exec.run", object: "exec:" + program, action: "exec.run",
                                   arguments: arguments, sideEffect: true, details: details)
        let grant = ticket.execGrants.first
        let timeout = grant?.timeout ?? configuration.caps.execTimeout
        let remaining = configuration.deadline - ContinuousClock.now
        let bounded = min(timeout, max(remaining, .milliseconds(1)))
        let maxOutput = grant?.maxOutput?.bytes ?? configuration.caps.maxOutputBytes
        let environment = grant?.environment ?? [:]
        return try perform(ticket) { () throws(HostError) in
            let output = try exec.run(program: program, arguments: arguments, stdin: stdin, environment: environment,
                                      timeout: bounded, maxOutputBytes: maxOutput)
            var outcome = payloadDetails(output.stdout, prefix: "stdout")
            outcome.merge(payloadDetails(output.stderr, prefix: "stderr")) { $1 }
            outcome["exit"] = String(output.code)
            return (output, outcome)
        }
    }

    // MARK: log

    /// `log.log`: one line on stderr, `[module] level: message`, control characters escaped, cut at
    /// the cap, rate-limited (dropped lines are counted and reported with the next line that passes).
    /// Needs no grant; it is not audited and reaches nothing but the host's stderr.
    public func log(level: LogLevel, message: String) {
        guard logLimiter.take("log", rate: configuration.caps.logRate) else {
            droppedLogLines.add(1, ordering: .relaxed)
            return
        }
        var text = sanitize(message)
        if text.utf8.count > configuration.caps.maxLogBytes {
            text = String(decoding: text.utf8.prefix(configuration.caps.maxLogBytes), as: UTF8.self) + "…"
        }
        let dropped = droppedLogLines.exchange(0, ordering: .relaxed)
        if dropped > 0 {
            configuration.logSink("[\(configuration.module)] warn: \(dropped) log lines dropped (rate limit)")
        }
        configuration.logSink("[\(configuration.module)] \(level): \(text)")
    }

    // MARK: Refused before decoding

    /// A call whose arguments were over the host's size limits: audited as a denial on `KIND:?` (the arguments
    /// were never decoded, so the resource is unknown). If the log cannot be written the log has stopped, and
    /// every later call is refused.
    public func refused(call: String, error: HostError) {
        let kind = call.split(separator: ".", maxSplits: 1).first.map(String.init) ?? call
        _ = try? refuseEarly(call, resource: kind + ":?", error)
    }

    // MARK: The pipeline

    /// An admitted call: what the outcome entry and the capability need.
    struct Ticket {
        var call: String
        var resource: String
        var version: String
        var decisionSeq: UInt64
        var sideEffect: Bool
        var snapshot: PolicySnapshot
        var arguments: [String]
        var references: [CompiledGrants.GrantReference]

        var httpGrants: [HTTPGrant] {
            guard let grants = snapshot.compiled?.grants else { return [] }
            return references.compactMap { if case .http(let index) = $0 { grants.http[index] } else { nil } }
        }

        var execGrants: [ExecGrant] {
            guard let grants = snapshot.compiled?.grants else { return [] }
            return references.compactMap { if case .exec(let index) = $0 { grants.exec[index] } else { nil } }
        }
    }

    private struct DatabaseRule: Sendable {
        var object: String
        var action: String
        var verdict: PolicyVerdict
    }

    /// Checks the deadline and the call quota (both audited as denials).
    private func begin(_ call: String, resource: String) throws(HostError) {
        let count = callCount.add(1, ordering: .relaxed).newValue
        if ContinuousClock.now >= configuration.deadline {
            throw try refuseEarly(call, resource: resource, HostError(.timeout, "the run's time limit has passed"))
        }
        if count > quota {
            throw try refuseEarly(call, resource: resource,
                                  HostError(.limitExceeded, "the run's host-call quota (\(quota) calls) is used up"))
        }
    }

    /// The lexically normalized absolute path policy decides on; a malformed path is an audited
    /// `invalid-argument`. Then the deadline and quota checks.
    private func normalizedPath(_ call: String, _ path: String) throws(HostError) -> String {
        let normalized: String
        do {
            normalized = try fileSystem.normalize(path)
        } catch {
            throw try refuseEarly(call, resource: "fs:" + guestVisible(path), error)
        }
        try begin(call, resource: "fs:" + normalized)
        return normalized
    }

    /// Audits a refusal decided before policy (bad argument, quota, deadline) and returns the error.
    private func refuseEarly(_ call: String, resource: String, _ error: HostError) throws(HostError) -> HostError {
        try record(call: call, resource: resource, decision: .deny, reason: error.message,
                   version: configuration.policy.current.version, outcome: error.code.description, details: [:],
                   durable: false)
        return error
    }

    private func requestContext() -> [String: PolicyValue] {
        let seconds = Int(Date().timeIntervalSince1970)
        let hour = (seconds / 3600) % 24
        let weekday = ((seconds / 86_400) + 4) % 7 + 1  // 1970-01-01 was a Thursday (5).
        return ["hour": .number(Double(hour)), "weekday": .number(Double(weekday)),
                "run": .string(configuration.runID), "sha256": .string(configuration.moduleSHA256)]
    }

    /// Policy decision, then rate limits and approval, then the write-ahead audit entry.
    private func authorize(
        call: String, object: String, action: String, arguments: [String] = [], sideEffect: Bool,
        details: [String: String] = [:]
    ) throws(HostError) -> Ticket {
        let snapshot = configuration.policy.current
        let verdict = snapshot.decide(PolicyRequest(
            subject: configuration.module, object: object, action: action,
            arguments: ArgumentVector.encode(arguments), context: requestContext()))
        guard verdict.isAllowed else {
            try record(call: call, resource: object, decision: .deny, reason: verdict.reason, version: verdict.version,
                       outcome: HostErrorCode.denied.description, details: details, durable: false)
            throw HostError(.denied, "\(action) on \(guestVisible(object)) is not granted to \(configuration.module)")
        }
        return try admit(call: call, resource: object, arguments: arguments, snapshot: snapshot, verdict: verdict,
                         rules: verdict.rule.map { [$0] } ?? [], sideEffect: sideEffect, details: details)
    }

    /// Applies rate and approval for the grants behind `rules`, then writes the allow entry.
    private func admit(
        call: String, resource: String, arguments: [String], snapshot: PolicySnapshot, verdict: PolicyVerdict,
        rules: [[String]], sideEffect: Bool, details: [String: String]
    ) throws(HostError) -> Ticket {
        var details = details
        var references: [CompiledGrants.GrantReference] = []
        if let compiled = snapshot.compiled {
            for rule in rules {
                for (reference, _) in compiled.conditions(for: rule) where !references.contains(reference) {
                    references.append(reference)
                }
            }
            for reference in references {
                let conditions = compiled.conditions(of: reference)
                guard let rate = conditions.rate else { continue }
                let key = "\(configuration.module)|\(compiled.source(of: reference))|\(reference)|\(rate)"
                if !rates.take(key, rate: rate) {
                    let message = "the rate limit \(rate) of grant \(reference) is exhausted; try again later"
                    try record(call: call, resource: resource, decision: .deny, reason: message,
                               version: verdict.version, outcome: HostErrorCode.limitExceeded.description,
                               details: details, durable: false)
                    throw HostError(.limitExceeded, message)
                }
            }
            if let asking = references.first(where: { compiled.conditions(of: $0).approval }) {
                let request = ApprovalRequest(
                    run: configuration.runID, module: configuration.module, moduleSHA256: configuration.moduleSHA256,
                    call: call, resource: resource, arguments: arguments, details: details,
                    grant: compiled.source(of: asking).description)
                let answer = configuration.approver.approve(request, deadline: configuration.deadline)
                details["approver"] = configuration.approver.identity
                details["approval"] = answer.answer
                guard answer.approved else {
                    let message = answer.answer == "approval required"
                        ? "approval required" : "not approved (\(answer.answer))"
                    try record(call: call, resource: resource, decision: .deny, reason: message,
                               version: verdict.version, outcome: HostErrorCode.denied.description,
                               details: details, durable: false)
                    throw HostError(.denied, "\(call) on \(guestVisible(resource)): \(message)")
                }
            }
        }
        let seq = try record(call: call, resource: resource, decision: .allow, reason: verdict.reason,
                             version: verdict.version, outcome: nil, details: details, durable: sideEffect)
        return Ticket(call: call, resource: resource, version: verdict.version, decisionSeq: seq,
                      sideEffect: sideEffect, snapshot: snapshot, arguments: arguments, references: references)
    }

    /// Runs the capability and writes the outcome entry (`ok` or the error code).
    private func perform<T>(_ ticket: Ticket, _ body: () throws(HostError) -> (T, [String: String])) throws(HostError) -> T {
        do {
            let (value, details) = try body()
            var outcome = details
            outcome["decision_seq"] = String(ticket.decisionSeq)
            try record(call: ticket.call, resource: ticket.resource, decision: nil, reason: "",
                       version: ticket.version, outcome: "ok", details: outcome, durable: false)
            return value
        } catch {
            throw try fail(ticket, error)
        }
    }

    /// Records a failed outcome for an admitted call and returns the error.
    private func fail(_ ticket: Ticket, _ error: HostError) throws(HostError) -> HostError {
        try record(call: ticket.call, resource: ticket.resource, decision: nil, reason: error.message,
                   version: ticket.version, outcome: error.code.description,
                   details: ["decision_seq": String(ticket.decisionSeq)], durable: false)
        return error
    }

    /// The `authorize` closure for symbolic-link targets: the same policy question for the target,
    /// decided on the same snapshot and audited as its own decision.
    private func linkCheck(_ ticket: Ticket, action: String) -> (String) -> Bool {
        { [self] target in
            let object = "fs:" + target
            let verdict = ticket.snapshot.decide(PolicyRequest(subject: configuration.module, object: object,
                                                               action: action, context: requestContext()))
            let approvalNeeded = verdict.rule.flatMap { rule in
                ticket.snapshot.compiled?.conditions(for: rule).contains { $0.1.approval }
            } ?? false
            let allowed = verdict.isAllowed && !approvalNeeded
            let reason = approvalNeeded ? "link target needs approval; follow links only inside grants without approval"
                : verdict.reason
            let recorded = try? record(
                call: ticket.call, resource: object, decision: allowed ? .allow : .deny, reason: reason,
                version: verdict.version, outcome: allowed ? nil : HostErrorCode.denied.description,
                details: ["via_link_from": ticket.resource], durable: ticket.sideEffect)
            return allowed && recorded != nil
        }
    }

    /// Appends one audit entry; a log failure refuses the call with `io`.
    @discardableResult
    private func record(
        call: String, resource: String, decision: AuditDecision?, reason: String, version: String, outcome: String?,
        details: [String: String], durable: Bool
    ) throws(HostError) -> UInt64 {
        let entry = AuditRecord(
            run: configuration.runID, module: configuration.module, moduleSHA256: configuration.moduleSHA256,
            call: call, resource: resource, decision: decision, reason: reason, policy: version, outcome: outcome,
            details: details)
        do {
            return try configuration.audit.append(entry, durable: durable)
        } catch {
            throw HostError(.io, "the audit log cannot be written, so the call is refused")
        }
    }
}

/// `PREFIX_sha256` and `PREFIX_len` of a payload: the audit log never holds content.
func payloadDetails(_ bytes: [UInt8], prefix: String) -> [String: String] {
    AuditRecord.payloadDetails(of: bytes, prefix: prefix)
}

/// Control characters (and the line break) escaped, so a guest cannot forge log or message lines.
func sanitize(_ text: String) -> String {
    // Most text has no control character: return it unchanged without rebuilding it scalar by scalar.
    // C1 controls (U+0080–U+009F) are 0xC2 0x80–0x9F in UTF-8.
    var previous: UInt8 = 0
    let clean = text.utf8.allSatisfy { byte in
        defer { previous = byte }
        return byte >= 0x20 && byte != 0x7F && !(previous == 0xC2 && (0x80...0x9F).contains(byte))
    }
    if clean { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// The resource as shown to the guest, without its kind prefix (`fs:`, `http:` ...): the guest sent
/// it, so it is no secret; escaped and cut at 200 characters.
private func guestVisible(_ resource: String) -> String {
    var text = resource
    for kind in ["fs:", "http:", "db:", "exec:"] where text.hasPrefix(kind) { text.removeFirst(kind.count) }
    let clean = sanitize(text)
    return clean.utf8.count > 200 && clean.count > 200 ? String(clean.prefix(200)) + "…" : clean
}

/// `scheme://host[:port]/path[?query]` with lowercase scheme and host, default port dropped, no user
/// info, no fragment; `nil` if the URL is not absolute http(s) with a host.
func canonicalHTTPURL(_ text: String) -> String? {
    guard text.utf8.count <= 8192, !text.contains(where: { $0.isWhitespace || $0 == "\\" }),
          let components = URLComponents(string: text),
          let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
          var host = components.percentEncodedHost?.lowercased(), !host.isEmpty,
          components.user == nil, components.password == nil
    else { return nil }
    if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
    var result = "\(scheme)://\(host)"
    if let port = components.port {
        guard (1...65535).contains(port) else { return nil }
        if !(scheme == "https" && port == 443) && !(scheme == "http" && port == 80) { result += ":\(port)" }
    }
    let path = components.percentEncodedPath
    guard !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else { return nil }
    result += path.isEmpty ? "/" : path
    if let query = components.percentEncodedQuery { result += "?" + query }
    return result
}

/// The host of a URL pattern when it is an IP literal (`http://127.0.0.1:8080/**` → `127.0.0.1`).
private func literalAddress(_ pattern: String) -> String? {
    guard let schemeEnd = pattern.range(of: "://") else { return nil }
    let authority = pattern[schemeEnd.upperBound...].prefix { $0 != "/" }
    var host = String(authority)
    if host.hasPrefix("[") {
        guard let close = host.firstIndex(of: "]") else { return nil }
        return String(host[host.index(after: host.startIndex)..<close])
    }
    if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
    let parts = host.split(separator: ".")
    return parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) ? host : nil
}
