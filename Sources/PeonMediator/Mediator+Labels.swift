#if canImport(Glibc)
import Glibc
#endif
import PeonAudit
import PeonInterface
import PeonSystem
import Synchronization

// Information-flow labels. A grant that reads may say `labels = ["hr"]`: data read under it carries
// those labels, and so does the run from then on. A grant that sends data out (a sink) may say
// `clearance = ["hr"]`. The pipeline's decision step (``Mediator/admit``) refuses, audited, any sink
// call whose deciding grant does not clear every label the run holds, and notes the labels a source
// decision brings; they join the run's set only when the call succeeds (``Mediator/mediate``).
// Files carry labels across runs in the extended attribute `user.peon.labels` (``FileSystemCapability``).

/// What a policy action does with data, for labels: reads bring labels in, sinks send data out.
struct FlowRole {
    /// Data comes in (its grant's labels join the run).
    var isSource: Bool
    /// Data can go out (the grant's clearance must cover the run's labels).
    var isSink: Bool

    /// The role of a policy action. `http.*` is both: every request (a GET's URL and headers too) can
    /// carry data out, and every response brings data in. `fs.remove` is a sink: which files exist is
    /// data another run can observe. An action not known here is a sink (fail closed).
    init(action: String) {
        switch action {
        case "fs.read", "fs.list", "db.read": (isSource, isSink) = (true, false)
        case "db.open": (isSource, isSink) = (false, false)
        // A program's output is data read (its grant's `labels`), and its arguments and stdin go out.
        case "exec.run": (isSource, isSink) = (true, true)
        default: (isSource, isSink) = (action.hasPrefix("http."), true)
        }
    }
}

/// The labels one run holds, each with the audit seq of the decision of the read that first brought it.
final class RunLabels: Sendable {
    private let held = SleepingLock<[String: UInt64]>([:])

    /// The labels held now.
    var current: [String: UInt64] { held.withLock { $0 } }

    /// Adds `labels` (a label already held keeps its first seq); returns the names that are new, sorted.
    func acquire(_ labels: [String: UInt64]) -> [String] {
        held.withLock { held in
            var new: [String] = []
            for (name, seq) in labels where held[name] == nil {
                held[name] = seq
                new.append(name)
            }
            return new.sorted()
        }
    }
}

/// The clearance one grant gives a sink decision.
struct GrantClearance: Sendable {
    /// Where the grant was written (`file:line`).
    var source: GrantSource
    /// Its `clearance` list.
    var clearance: Set<String>
}

/// One call's label bookkeeping, shared with its nested decisions: the labels its reads bring (they join
/// the run only when the call succeeds) and the sink decisions it made (a statement's tables are reported
/// in no fixed order, so they are checked again once all its reads are known).
final class CallFlow: Sendable {
    /// A sink decision of this call.
    struct Sink: Sendable {
        var action: String
        var resource: String
        var grants: [GrantClearance]
    }

    private struct State {
        var pending: [String: UInt64] = [:]
        var sinks: [Sink] = []
        var nestedFlowRefusal: HostError?
    }

    private let state = Mutex(State())

    /// Labels this call's reads bring so far.
    var pending: [String: UInt64] { state.withLock { $0.pending } }

    /// Sink decisions so far.
    var sinks: [Sink] { state.withLock { $0.sinks } }

    /// Notes labels a read of this call brings, with the seq of the decision that allowed it.
    func bring(_ labels: [String], seq: UInt64) {
        state.withLock { state in
            for label in labels where state.pending[label] == nil { state.pending[label] = seq }
        }
    }

    /// Notes a sink decision.
    func noteSink(_ sink: Sink) {
        state.withLock { $0.sinks.append(sink) }
    }

    /// The first nested decision of this call refused for the labels it would send (a table a statement writes, a
    /// link's target): the capability that asked only learns "not granted", and the guest is told this instead.
    var nestedFlowRefusal: HostError? { state.withLock { $0.nestedFlowRefusal } }

    /// Notes a nested decision refused for its labels (the first one is kept).
    func noteNestedFlowRefusal(_ error: HostError) {
        state.withLock { if $0.nestedFlowRefusal == nil { $0.nestedFlowRefusal = error } }
    }
}

extension Mediator {
    /// The labels this run holds, each with the audit seq of the entry that brought it.
    package var labelsHeld: [String: UInt64] { runLabels.current }

    /// The labels this run holds as the audit entries write them (`hr@3`), empty for none.
    package var labelsHeldDetail: String { labelDetail(runLabels.current) }

    /// Starts the run holding `labels`, as if the entry `seq` had read them: an MCP session's later calls
    /// hold what its earlier calls returned to the client (``ToolSessionLabels``), because the client's next
    /// arguments can carry it.
    package func inherit(_ labels: [String], seq: UInt64) {
        _ = acquireLabels(Dictionary(labels.map { ($0, seq) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Adds `labels` to the run's; returns the names that are new, and why they could not be recorded on the audit
    /// files if they could not.
    ///
    /// What a labelled run does reaches its audit log (the paths it chose, a labelled database's error text) and the
    /// log's first-use index (the resources it used): those files carry the run's labels from the moment it acquires
    /// them, before the entry that says so is written, as any file a labelled run writes does. Another run that an
    /// operator lets read a log (per-agent logs in one folder) then brings them. A file system that cannot record them
    /// does not fail the call: the outcome entry says so (`audit_labels_unrecorded`).
    func acquireLabels(_ labels: [String: UInt64]) -> (acquired: [String], unrecorded: String?) {
        let acquired = runLabels.acquire(labels)
        guard !acquired.isEmpty else { return ([], nil) }
        let log = configuration.audit.path
        let index = firstUses.path
        // The index is created now if it is missing, so that a line added later is never there unlabelled.
        let fd = open(index, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        if fd >= 0 { close(fd) }
        do throws(HostError) {
            try FileLabels.add(acquired, to: .path(log), what: "the audit log")
            try FileLabels.add(acquired, to: .path(index), what: "the audit log's first-use index")
            return (acquired, nil)
        } catch {
            return (acquired, error.message)
        }
    }

    /// The labels a call must be cleared for: the run's, and those this call's own reads brought so far.
    func heldLabels(_ flow: CallFlow) -> [String: UInt64] {
        runLabels.current.merging(flow.pending) { first, _ in first }
    }

    /// The clearance of each grant behind a decision.
    func clearances(_ snapshot: PolicySnapshot, _ references: [CompiledGrants.GrantReference]) -> [GrantClearance] {
        guard let compiled = snapshot.compiled else { return [] }
        return references.map { GrantClearance(source: compiled.source(of: $0), clearance: Set(compiled.clearance(of: $0))) }
    }

    /// The labels a grant brings to a source decision.
    func sourceLabels(_ snapshot: PolicySnapshot, _ references: [CompiledGrants.GrantReference]) -> [String] {
        guard let compiled = snapshot.compiled else { return [] }
        return Array(Set(references.flatMap { compiled.labels(of: $0) })).sorted()
    }

    /// `confidential@3,hr@3`: labels with the audit seq that brought each, for the audit entries.
    func labelDetail(_ labels: [String: UInt64]) -> String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ",")
    }

    /// Why a sink is refused, or `nil` when every grant behind it clears every held label (see
    /// ``labelFlowDenial(held:origin:action:resource:grants:)``); each label names the audit seq that brought it.
    func flowDenial(
        held: [String: UInt64], action: String, resource: String, grants: [GrantClearance]
    ) -> (message: String, missing: [String])? {
        labelFlowDenial(held: Set(held.keys), origin: { label in "read at audit seq \(held[label].map(String.init) ?? "?")" },
                        action: action, resource: resource, grants: grants)
    }

    /// Checks every sink decision of a call again against the labels known now (the run's and every read of
    /// the call): a statement's reads and writes are reported in no fixed order. Audits and throws a refusal.
    func recheckFlow(_ ticket: Ticket) throws(HostError) {
        let held = heldLabels(ticket.flow)
        for sink in ticket.flow.sinks {
            guard let denial = flowDenial(held: held, action: sink.action, resource: sink.resource, grants: sink.grants)
            else { continue }
            try record(call: ticket.call, resource: sink.resource, decision: .deny, reason: denial.message,
                       version: ticket.version, outcome: HostErrorCode.denied.description,
                       details: ["within_seq": String(ticket.decisionSeq), "run_labels": labelDetail(held),
                                 "missing_clearance": denial.missing.joined(separator: ",")],
                       durability: .buffered)
            throw HostError(.denied, denial.message)
        }
    }
}

/// Why a sink is refused, or `nil` when every grant behind it clears every held label. A policy line
/// several grants produced must be cleared by each of them (the strictest reading, like rate and
/// approval); a line no grant produced (an organization's own policy) clears nothing. `origin` says where
/// a label came from (an audit seq in a run, `--labels` in `policy explain`).
func labelFlowDenial(
    held: Set<String>, origin: (String) -> String, action: String, resource: String, grants: [GrantClearance]
) -> (message: String, missing: [String])? {
    guard !held.isEmpty else { return nil }
    var needs: [(GrantSource, [String])] = []
    for grant in grants {
        let missing = held.filter { !grant.clearance.contains($0) }.sorted()
        if !missing.isEmpty { needs.append((grant.source, missing)) }
    }
    if !grants.isEmpty && needs.isEmpty { return nil }
    let missing = grants.isEmpty ? held.sorted() : Array(Set(needs.flatMap(\.1))).sorted()
    let origins = missing.map { label in "\(label) (\(origin(label)))" }
    var message = "\(action) on \(guestVisible(resource)) would send data labelled \(origins.joined(separator: ", "))"
    if grants.isEmpty {
        message += "; no grant allows this call, so none can clear the labels"
    } else {
        let fixes = needs.map { source, labels in
            "the grant at \(sanitize(source.description)) would need clearance = [\(labels.map { "\"\($0)\"" }.joined(separator: ", "))]"
        }
        message += "; " + fixes.joined(separator: "; ")
    }
    return (message, missing)
}

/// Where labelled data can go under one grants file: for each label a grant brings, the grants through
/// which a run holding it can still send data out (their `clearance` lists it). Shown by `grants check`.
func labelFlowReport(_ compiled: CompiledGrants) -> [String] {
    var actions: [CompiledGrants.GrantReference: Set<String>] = [:]
    for rule in compiled.rules {
        for reference in compiled.origins[rule] ?? [] { actions[reference, default: []].insert(rule[2]) }
    }
    let references = actions.keys.sorted { $0.description < $1.description }
    func name(_ reference: CompiledGrants.GrantReference) -> String {
        "\(reference) (\(compiled.source(of: reference)))"
    }
    var acquiredBy: [String: [CompiledGrants.GrantReference]] = [:]
    for reference in references {
        guard actions[reference, default: []].contains(where: { FlowRole(action: $0).isSource }) else { continue }
        for label in compiled.labels(of: reference) { acquiredBy[label, default: []].append(reference) }
    }
    let sinks = references.filter { actions[$0, default: []].contains(where: { FlowRole(action: $0).isSink }) }
    var lines: [String] = []
    for label in acquiredBy.keys.sorted() {
        let from = acquiredBy[label, default: []].map(name).joined(separator: ", ")
        let cleared = sinks.filter { compiled.clearance(of: $0).contains(label) }
        let to = cleared.isEmpty
            ? "no sink: once read, nothing this module sends out may follow it"
            : cleared.map(name).joined(separator: ", ") + " (every other sink refuses it)"
        lines.append("label \(label): acquired through \(from); may leave through \(to)")
    }
    return lines
}
