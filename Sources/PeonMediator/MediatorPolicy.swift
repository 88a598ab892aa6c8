package import PeonPolicy
import Foundation
import PeonInterface
import PeonSystem
import Synchronization

/// Where a run's policy comes from: grants, an organization's model and policy, both, or nothing.
///
/// - grants only: the built-in model (``BuiltinModel``) with the grants compiled to `p` lines.
/// - `--model`/`--policy`: the organization's model and CSV decide; grants given as well are added
///   as extra `p, sub, obj, act, args` lines (the model must then declare `p = sub, obj, act, args`)
///   and still supply their conditions (rate, approval, caps, injected headers).
/// - nothing: the built-in model with no lines, so every call is denied (and audited).
public struct PolicySources: Sendable, Hashable {
    /// The grants file (`--grants`), if any.
    public var grantsPath: String?
    /// The organization's model (`--model`), if any.
    public var modelPath: String?
    /// The organization's policy CSV (`--policy`), if any.
    public var policyPath: String?
    /// The organization's policy store (`--policy postgresql://...`), if any; it takes the place of
    /// ``policyPath`` (give one or the other).
    public var policyStore: (any PolicyLineStore)?

    /// Creates sources; every default is "none".
    public init(grantsPath: String? = nil, modelPath: String? = nil, policyPath: String? = nil,
                policyStore: (any PolicyLineStore)? = nil) {
        self.grantsPath = grantsPath
        self.modelPath = modelPath
        self.policyPath = policyPath
        self.policyStore = policyStore
    }

    /// The files a reloader watches.
    package var files: [String] { [grantsPath, modelPath, policyPath].compactMap { $0 } }

    /// Sources are equal when they name the same files and the same store object.
    public static func == (lhs: PolicySources, rhs: PolicySources) -> Bool {
        lhs.grantsPath == rhs.grantsPath && lhs.modelPath == rhs.modelPath && lhs.policyPath == rhs.policyPath
            && lhs.policyStore.map(ObjectIdentifier.init) == rhs.policyStore.map(ObjectIdentifier.init)
    }

    /// Hashes the file paths and the store's identity.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(grantsPath)
        hasher.combine(modelPath)
        hasher.combine(policyPath)
        hasher.combine(policyStore.map(ObjectIdentifier.init))
    }
}

/// A policy loading problem: one line naming the file and what to do.
public struct PolicyLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message, starting with `FILE:LINE:`.
    public var description: String
    /// True when a policy store could not be reached (rather than holding a bad policy): a run then
    /// refuses to start with its own exit status, and a running reloader keeps the last snapshot.
    package var storeUnavailable: Bool

    /// Creates an error.
    package init(_ description: String, storeUnavailable: Bool = false) {
        self.description = description
        self.storeUnavailable = storeUnavailable
    }
}

/// One compiled, immutable policy: the engine snapshot plus the grants that supplied its rules.
///
/// The mediator takes the current snapshot once per call, so a reload in the middle of a call never
/// mixes two policies; each audit entry names ``version``.
public struct PolicySnapshot: Sendable {
    /// The policy engine snapshot that decides.
    package let enforcer: Enforcer
    /// The grants, compiled; `nil` when only a model and policy were given.
    package let compiled: CompiledGrants?
    /// The module name requests are made for: the grants' `module`, else the `defaultModule` given
    /// when loading.
    package let subject: String
    /// Why this snapshot denies every call regardless of its rules, or `nil` when its rules decide.
    ///
    /// Set by ``judged(forModuleSHA256:)`` when the grants pin a `sha256` other than the running
    /// module's: a fresh start with such grants is refused, so a reload that brings them in must stop
    /// the run's further calls the same way. ``decide(_:)`` then denies each request with this reason.
    package private(set) var refusal: String? = nil
    /// Verdicts already reached on this snapshot (``VerdictCache``); `nil` when a verdict can change while
    /// the snapshot stays (the model reads `ctx` or has temporal role links).
    private let verdicts: VerdictCache?

    /// A snapshot of `enforcer` and `compiled`.
    package init(enforcer: Enforcer, compiled: CompiledGrants?, subject: String) {
        self.enforcer = enforcer
        self.compiled = compiled
        self.subject = subject
        let pure = !enforcer.readsClock && !enforcer.requestFields.contains("ctx")
        verdicts = pure ? VerdictCache() : nil
    }

    /// The engine's version (a SHA-256 over model, policy and grant lines).
    package var version: String { enforcer.version }

    /// The request field names peon-wasm fills, in the order a model may use any subset of.
    ///
    /// - `sub`: the module name; `obj`: the resource string; `act`: the action;
    /// - `args`: the exec argument vector (``ArgumentVector``), `0:` for other calls;
    /// - `ctx`: an object with `hour` (0-23, UTC), `weekday` (1 = Sunday ... 7), `run` (the run id) and
    ///   `sha256` (the module's hash), for time-of-day and pinning rules (`r.ctx.hour >= 9`).
    package static let requestFields = ["sub", "obj", "act", "args", "ctx"]

    /// Whether the model's request reads `ctx`: when it does not (the built-in model), the mediator skips building
    /// the object for every call.
    package var usesContext: Bool { enforcer.requestFields.contains("ctx") }

    /// Builds a snapshot from files. Throws one clear line on any problem.
    ///
    /// `defaultModule` is the subject name when no grants file names one (the runtime passes the
    /// module's file name); it is kept as ``subject`` for tools that decide outside a run.
    ///
    /// With a ``PolicySources/policyStore``, its lines are read now, unless `storeRules` supplies
    /// lines already read from it (the reloader's last good read, so that a grants edit reloads while
    /// the store is unreachable).
    package static func load(_ sources: PolicySources, defaultModule: String,
                            storeRules: [PolicyRule]? = nil) throws(PolicyLoadError) -> PolicySnapshot {
        var compiled: CompiledGrants?
        if let grantsPath = sources.grantsPath {
            do {
                compiled = CompiledGrants(try GrantsParser.load(path: grantsPath))
            } catch {
                throw PolicyLoadError(error.description)
            }
        }
        var model = BuiltinModel.text
        var modelSource = "policies/model.conf (built in)"
        var policy = ""
        var policySource = "(no policy file)"
        if let modelPath = sources.modelPath {
            model = try readText(modelPath, limit: maxModelBytes)
            modelSource = modelPath
        }
        if let policyPath = sources.policyPath {
            policy = try readText(policyPath, limit: maxPolicyBytes)
            policySource = policyPath
        }
        var rules: [PolicyRule] = []
        if let store = sources.policyStore {
            if let storeRules { rules = storeRules } else { rules = try store.loadRules() }
            policySource = store.name
        }
        return try build(model: model, modelSource: modelSource, policy: policy, policySource: policySource,
                         compiled: compiled, defaultModule: defaultModule, storeRules: rules)
    }

    /// Builds a snapshot from in-memory grants and the built-in model.
    package static func build(grants: Grants) throws(PolicyLoadError) -> PolicySnapshot {
        try build(model: BuiltinModel.text, modelSource: "policies/model.conf (built in)", policy: "",
                  policySource: "(no policy file)", compiled: CompiledGrants(grants))
    }

    /// Builds a snapshot from model and policy texts plus optional compiled grants.
    /// `storeRules` (a policy store's lines) are evaluated after the policy text and before the grants.
    package static func build(
        model: String, modelSource: String, policy: String, policySource: String, compiled: CompiledGrants?,
        defaultModule: String = "agent", storeRules: [PolicyRule] = []
    ) throws(PolicyLoadError) -> PolicySnapshot {
        var rules: [PolicyRule] = storeRules
        if let compiled {
            // A model with deny rules declares `p = sub, obj, act, args, eft`: a grant is an allow.
            let fields = (try? Enforcer.policyFields(model: model, modelSource: modelSource)) ?? []
            let effect: [String] = fields.count == 5 && fields[4] == "eft" ? ["allow"] : []
            // Grants compile to four values (sub, obj, act, args) and an `eft` where the model has one. A model declaring
            // another shape was blamed on a grants line ("fs[0]: 'p' rule has 4 values"), which names no rule the user wrote.
            if !fields.isEmpty && fields.count - effect.count != 4 {
                throw PolicyLoadError("\(modelSource): policy_definition p = \(fields.joined(separator: ", ")) has \(fields.count) fields, but grants compile to p = sub, obj, act, args (and eft, for a model with deny rules); a model used with grants must declare that shape (docs/grants.md#your-own-model)")
            }
            for rule in compiled.rules {
                let source = compiled.citation(for: rule)
                rules.append(PolicyRule(section: "p", values: rule + effect, source: source?.file ?? "grants",
                                        line: source?.line ?? 0))
            }
        }
        let enforcer: Enforcer
        do {
            enforcer = try Enforcer(model: model, modelSource: modelSource, policy: policy, policySource: policySource,
                                    additionalRules: rules, functions: PeonMatchers.registry)
        } catch {
            throw PolicyLoadError(error.description)
        }
        for field in enforcer.requestFields where !requestFields.contains(field) {
            throw PolicyLoadError(
                "\(modelSource): the model's request_definition uses `\(field)`; peon-wasm fills only \(requestFields.joined(separator: ", "))")
        }
        return PolicySnapshot(enforcer: enforcer, compiled: compiled,
                              subject: compiled?.grants.module ?? defaultModule)
    }

    /// This snapshot judged the way a fresh start judges its grants for the module whose SHA-256 is
    /// `moduleSHA256` (lowercase hex): when the grants pin a different hash, or pin one and the module's
    /// hash is unknown (`nil`), the result denies every call with a reason naming the mismatch
    /// (``refusal``). Otherwise the snapshot is returned unchanged.
    package func judged(forModuleSHA256 moduleSHA256: String?) -> PolicySnapshot {
        guard let pin = compiled?.grants.sha256?.lowercased() else { return self }
        let actual = moduleSHA256?.lowercased()
        guard pin != actual else { return self }
        var judged = self
        judged.refusal = "the grants pin sha256 \(pin) but the running module's is \(actual ?? "unknown"); "
            + "a run with these grants would be refused, so every call is denied"
        return judged
    }

    /// The largest Casbin model file (`--model`) read: 4 MiB; a model is a few sections of text.
    package static let maxModelBytes = 4 << 20
    /// The largest Casbin policy file (`--policy FILE.csv`) read: 64 MiB, room for about a million policy lines.
    package static let maxPolicyBytes = 64 << 20

    /// The text of a model or policy file, read with ``BoundedRead``: one descriptor, no waiting on a FIFO, at
    /// most `limit` bytes; one leading byte order mark is dropped (``OperatorText``).
    private static func readText(_ path: String, limit: Int) throws(PolicyLoadError) -> String {
        let bytes: [UInt8]
        do throws(BoundedReadError) {
            bytes = try BoundedRead.contents(ofPath: path, limit: limit)
        } catch {
            throw PolicyLoadError("\(path): cannot read: \(error.reason); check the path")
        }
        do throws(OperatorTextError) {
            return try OperatorText.decode(bytes)
        } catch {
            throw PolicyLoadError("\(path): cannot read: \(error.message)")
        }
    }

    /// `allowed by p, agent, fs:/data/**, fs.read (grants.toml:7)`: the verdict's reason, quoting the rule
    /// and where it was written, built in one reserved string (every call's entry carries one). The rule is quoted as
    /// a policy line that reads back as the same rule (``PolicyRule/csvLine``): a field holding a comma is in double
    /// quotes, so `p, "alice, bob", …` is never recorded as if it were five fields.
    private static func reason(_ verb: StaticString, _ rule: PolicyRule) -> String {
        let text = rule.csvLine
        let line = String(rule.line)
        var reason = ""
        reason.reserveCapacity(verb.utf8CodeUnitCount + text.utf8.count + rule.source.utf8.count + line.utf8.count + 4)
        reason += verb.description
        reason += text
        reason += " ("
        reason += rule.source
        reason += ":"
        reason += line
        reason += ")"
        return reason
    }

    /// Decides one request. An engine error is a deny whose reason quotes the error.
    /// With a ``refusal`` every request is denied with that reason.
    package func decide(_ request: PolicyRequest) -> PolicyVerdict {
        if let refusal { return PolicyVerdict(isAllowed: false, reason: refusal, rule: nil, version: version) }
        guard let verdicts, request.context.isEmpty else { return evaluate(request) }
        if let known = verdicts.verdict(for: request) { return known }
        let verdict = evaluate(request)
        verdicts.remember(verdict, for: request)
        return verdict
    }

    /// How many verdicts ``decide(_:)`` keeps now; `nil` when it keeps none because they could change (for tests).
    package var keptVerdictCount: Int? { verdicts?.count }

    /// Runs the engine on one request.
    private func evaluate(_ request: PolicyRequest) -> PolicyVerdict {
        let values: [PolicyValue] = enforcer.requestFields.map { field in
            switch field {
            case "sub": .string(request.subject)
            case "obj": .string(request.object)
            case "act": .string(request.action)
            case "args": .string(request.arguments)
            default: .object(request.context)
            }
        }
        do {
            let decision = try enforcer.enforce(values)
            guard decision.isAllowed else {
                let reason = decision.rule.map { Self.reason("denied by ", $0) }
                    ?? "no policy line allows \(request.action) on \(request.object)"
                return PolicyVerdict(isAllowed: false, reason: reason, rule: decision.rule?.values, version: version)
            }
            let reason = decision.rule.map { Self.reason("allowed by ", $0) } ?? "allowed by the policy effect"
            return PolicyVerdict(isAllowed: true, reason: reason, rule: decision.rule?.values, version: version)
        } catch {
            return PolicyVerdict(isAllowed: false, reason: "policy evaluation failed: \(error.description)",
                                 rule: nil, version: version, failed: true)
        }
    }
}

/// The verdicts one ``PolicySnapshot`` has reached, so a request made again is answered without running the
/// engine (Casbin's `CachedEnforcer`, made safe by construction rather than by invalidation).
///
/// A snapshot never changes: a reload builds a new one with an empty cache, so no verdict outlives the policy
/// that reached it. It is only used when the engine is a pure function of the request: the model reads
/// neither `ctx` (time of day, first use, labels) nor the clock (temporal role links), and every matcher
/// function peon-wasm registers is pure. A verdict's evaluation *failure* is not kept. Bounded: requests
/// over ``maxRequestBytes`` are not kept, and at ``capacity`` entries the cache starts again empty.
final class VerdictCache: Sendable {
    /// The most verdicts kept.
    static let capacity = 4096
    /// The longest request (subject, object, action and arguments together, in UTF-8 bytes) kept.
    static let maxRequestBytes = 1024

    private let entries = SleepingLock<[Key: PolicyVerdict]>([:])

    /// A request by its fields' exact bytes (``ExactText``), not `PolicyRequest` itself: Swift compares strings by
    /// canonical equivalence, so `é` and `e` + U+0301 would be one key, while the engine compares Unicode scalars
    /// exactly and two such paths are two files. A key must never be shared by two requests the engine could
    /// answer differently.
    struct Key: Hashable {
        let subject: ExactText
        let object: ExactText
        let action: ExactText
        let arguments: ExactText

        init(_ request: PolicyRequest) {
            subject = ExactText(request.subject)
            object = ExactText(request.object)
            action = ExactText(request.action)
            arguments = ExactText(request.arguments)
        }
    }

    /// The verdict reached on `request` before, if any.
    func verdict(for request: PolicyRequest) -> PolicyVerdict? {
        guard Self.fits(request) else { return nil }
        let key = Key(request)
        return entries.withLock { $0[key] }
    }

    /// Keeps `verdict` for `request` (unless the request is too long, or the verdict an evaluation failure).
    func remember(_ verdict: PolicyVerdict, for request: PolicyRequest) {
        guard Self.fits(request), !verdict.failed else { return }
        let key = Key(request)
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = verdict
        }
    }

    /// Whether `request` is short enough to be kept (``maxRequestBytes``).
    private static func fits(_ request: PolicyRequest) -> Bool {
        request.subject.utf8.count + request.object.utf8.count + request.action.utf8.count
            + request.arguments.utf8.count <= maxRequestBytes
    }

    /// How many verdicts are kept (for tests).
    var count: Int { entries.withLock { $0.count } }
}

/// What the mediator asks the engine (see ``PolicySnapshot/requestFields``).
package struct PolicyRequest: Sendable, Hashable {
    /// The module name.
    package var subject: String
    /// The resource string, e.g. `fs:/srv/reports/q1.txt`.
    package var object: String
    /// The action, e.g. `fs.read`.
    package var action: String
    /// The encoded exec argument vector; `0:` for other calls.
    package var arguments: String
    /// The `ctx` object.
    package var context: [String: PolicyValue]

    /// Creates a request.
    package init(subject: String, object: String, action: String, arguments: String = "0:",
                context: [String: PolicyValue] = [:]) {
        self.subject = subject
        self.object = object
        self.action = action
        self.arguments = arguments
        self.context = context
    }
}

/// The engine's answer, with the line that decided it.
package struct PolicyVerdict: Sendable, Hashable {
    /// Whether the call may proceed (before rate and approval).
    package var isAllowed: Bool
    /// Why, quoting the deciding line and its `file:line`.
    package var reason: String
    /// The deciding policy line's fields (after the section name), if one decided.
    package var rule: [String]?
    /// The policy version that decided.
    package var version: String
    /// Whether the engine failed to evaluate the request (a deny whose reason quotes the error).
    package var failed: Bool = false
}

/// The matcher functions peon-wasm registers in the policy engine.
package enum PeonMatchers {
    /// `FunctionRegistry.standard` plus `peonGlob(obj, pattern)` (``globMatches(_:pattern:)``) and
    /// `peonArgs(args, patterns)` (``ArgumentVector/matches(_:patterns:)``).
    package static var registry: FunctionRegistry {
        var registry = FunctionRegistry.standard
        registry.register("peonGlob", arity: 2) { arguments in
            guard case .string(let text) = arguments[0], case .string(let pattern) = arguments[1] else {
                return .bool(false)
            }
            return .bool(globMatches(text, pattern: pattern))
        }
        registry.register("peonArgs", arity: 2) { arguments in
            guard case .string(let field) = arguments[0], case .string(let patterns) = arguments[1] else {
                return .bool(false)
            }
            return .bool(ArgumentVector.matches(field, patterns: patterns))
        }
        return registry
    }
}

/// Holds the current ``PolicySnapshot`` and swaps it atomically; readers copy it under a lock held
/// only for the copy.
package final class MediatorPolicyStore: Sendable {
    private let state: SleepingLock<PolicySnapshot>

    /// Creates a store serving `snapshot`.
    package init(_ snapshot: PolicySnapshot) { state = SleepingLock(snapshot) }

    /// The snapshot deciding calls now.
    package var current: PolicySnapshot { state.withLock { $0 } }

    /// Swaps in `snapshot`.
    package func replace(with snapshot: PolicySnapshot) { state.withLock { $0 = snapshot } }
}
