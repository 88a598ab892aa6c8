import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an enforcer reads the time: temporal role links (`g = _, _, (_, _)`) grant only inside
/// their validity window. Tests inject a fixed clock; the runtime uses the system clock.
public struct PolicyClock: Sendable {
    /// The current time in whole seconds since 1970-01-01 00:00:00 UTC.
    public var now: @Sendable () -> Int64

    /// A clock reading `now` on every request.
    public init(now: @escaping @Sendable () -> Int64) {
        self.now = now
    }

    /// The system's real-time clock.
    public static let system = PolicyClock { Int64(time(nil)) }

    /// A clock stopped at `seconds` since the epoch (UTC).
    public static func fixed(_ seconds: Int64) -> PolicyClock {
        PolicyClock { seconds }
    }
}

/// One policy rule as written: `p, alice, data1, read` at `policy.csv:3`.
///
/// A decision names the rule that decided it, so the audit log can record why a call was allowed.
public struct PolicyRule: Sendable, Hashable, CustomStringConvertible {
    /// The rule type: `p` (or `p2`...) for policies, `g` (or `g2`...) for role links.
    public var section: String
    /// The rule's fields after the type, in `policy_definition` order.
    public var values: [String]
    /// The file (or label, such as `grants.toml`) the rule came from.
    public var source: String
    /// The 1-based line in `source`.
    public var line: Int

    /// Creates a rule; the grants layer uses this to add compiled grants to a snapshot.
    public init(section: String, values: [String], source: String, line: Int) {
        self.section = section
        self.values = values
        self.source = source
        self.line = line
    }

    /// The rule in policy-file form: `p, alice, data1, read`.
    public var description: String {
        // Built in one reserved string: every allowed or denied call quotes its rule in the audit log.
        var text = section
        text.reserveCapacity(values.reduce(section.utf8.count) { $0 + $1.utf8.count + 2 })
        for value in values {
            text += ", "
            text += value
        }
        return text
    }

    /// The rule as a line of a policy file that reads back as the same rule: ``description`` with every field that
    /// holds a comma or a quote, or begins or ends with white space, in double quotes (a quote doubled). So
    /// `p, "alice, bob", data1, read` is not shown as five fields. A rule whose fields need no quotes reads exactly
    /// as its ``description``: this is the form the audit log's reasons and `policy explain` quote.
    public var csvLine: String { Self.csvLine(section: section, values: values) }

    /// `section` and `values` as one policy-file line (see ``csvLine``).
    public static func csvLine(section: String, values: [String]) -> String {
        var text = section
        text.reserveCapacity(values.reduce(section.utf8.count) { $0 + $1.utf8.count + 2 })
        for value in values {
            text += ", "
            guard needsQuotes(value) else { text += value; continue }
            text += "\""
            for character in value { text += character == "\"" ? "\"\"" : String(character) }
            text += "\""
        }
        return text
    }

    /// Whether `value` must be quoted to read back as one field: it holds a comma or a quote, or begins or ends with
    /// white space (which a CSV reader trims).
    private static func needsQuotes(_ value: String) -> Bool {
        // ASCII bytes first: the common field (a name, a path, an action) is decided without building a Character.
        if value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") }) { return true }
        return value.first.map(\.isWhitespace) == true || value.last.map(\.isWhitespace) == true
    }

    /// Where the rule was written: `policy.csv:3`.
    public var location: String { "\(source):\(line)" }
}

/// The answer to one request.
public struct PolicyDecision: Sendable, Hashable {
    /// Whether the request is allowed.
    public var isAllowed: Bool
    /// The rule that decided: the first matching allow rule for an allow, the first matching deny
    /// rule for a deny. `nil` when no rule decided: a default deny (nothing matched), or, under
    /// `!some(where (p.eft == deny))`, a default allow with no matching allow rule.
    public var rule: PolicyRule?
}

/// An immutable, compiled authorization snapshot: model, policy rules, role graphs and indexes.
///
/// Building one parses and checks everything (matchers are compiled once to closures, patterns
/// once per rule, role inheritance resolved once), so `enforce` only evaluates. It is a value you
/// can share across threads; to change policies build a new one and swap it in a `PolicyStore`.
///
/// Semantics follow Casbin: the request is evaluated against the `p` rules in file order (sorted
/// by `p.priority` when the policy definition has that field), the matcher `m` decides which rules
/// match, and the effect in `[policy_effect]` combines them. With no `p` rules at all the matcher
/// is evaluated once with empty policy fields, as Casbin does.
public struct Enforcer: Sendable {
    private let snapshot: Snapshot

    /// The field names of the `p` policy definition of `model` (`["sub", "obj", "act", "args", "eft"]`),
    /// for callers that add rules of their own and must shape them to the model.
    package static func policyFields(model: String, modelSource: String) throws(PolicyError) -> [String] {
        try Model(text: model, source: modelSource).policyFields["p"] ?? []
    }

    /// Builds a snapshot from a model (`.conf` text) and a policy (CSV text), plus rules added
    /// programmatically (`additionalRules`, e.g. grants compiled to `p` lines, which are evaluated
    /// after the file's rules). `modelSource` and `policySource` name the texts in error messages
    /// and decisions. `clock` is read once per request, for temporal role links. `rolePatterns`
    /// declares pattern roles (as a model's `[role_matching]` section does; these win). Throws the
    /// first problem found, located as `FILE:LINE:COLUMN`.
    public init(
        model: String, modelSource: String, policy: String, policySource: String,
        additionalRules: [PolicyRule] = [], functions: FunctionRegistry = .standard, clock: PolicyClock = .system,
        rolePatterns: [String: RolePatterns] = [:]
    ) throws(PolicyError) {
        var parsedModel = try Model(text: model, source: modelSource)
        for (key, patterns) in rolePatterns {
            guard let arity = parsedModel.roleArity[key] else {
                throw PolicyError(source: modelSource, line: 0, column: 0, message: "pattern functions are declared for '\(key)', which [role_definition] does not define")
            }
            if patterns.domains != nil, arity != 3 {
                throw PolicyError(source: modelSource, line: 0, column: 0, message: "'\(key)' has no domain ('_, _'), so its domains cannot be patterns")
            }
            parsedModel.rolePatterns[key] = patterns
        }
        var lines = try PolicyCSV.parse(policy, source: policySource)
        lines += additionalRules.map {
            PolicyLine(key: $0.section, values: $0.values, source: $0.source, line: $0.line, columns: [])
        }
        snapshot = try Snapshot(
            model: parsedModel, lines: lines, functions: functions, clock: clock,
            version: Self.version(model: model, policy: policy, additionalRules: additionalRules, rolePatterns: rolePatterns))
    }

    /// The role types (`g`, `g2`, ...) the model `text` defines in `[role_definition]`, each with its arity (2 for
    /// `_, _`, 3 with a domain); throws as loading it would. For a command line to check its pattern declarations
    /// against the model before loading a policy.
    public static func roleTypes(inModel text: String, source: String) throws(PolicyError) -> [String: Int] {
        try Model(text: text, source: source).roleArity
    }

    /// The snapshot's version: lowercase hex SHA-256 over the model text, the policy text, the
    /// additional rules and any `rolePatterns` (each length-prefixed, so no two inputs share a version).
    public var version: String { snapshot.version }

    /// The request field names, in `request_definition` order (`["sub", "obj", "act"]`).
    public var requestFields: [String] { snapshot.requestFields }

    /// The number of `p` rules the matcher is evaluated against.
    public var ruleCount: Int { snapshot.rows.count }

    /// Whether a decision can depend on the time it is made: the model has temporal role links
    /// (`g = _, _, (_, _)`). Otherwise ``enforce(_:)`` is a pure function of the request, so a caller
    /// may keep its decisions for as long as it keeps this enforcer.
    public var readsClock: Bool { snapshot.readsClock }

    /// Decides a request whose values are in `request_definition` order.
    ///
    /// Throws when the request has the wrong number of values, or when the matcher cannot be
    /// evaluated on it (an attribute read on a non-object, a custom
    /// function failing). Callers enforcing access should treat an error as a deny.
    public func enforce(_ request: [PolicyValue]) throws(PolicyError) -> PolicyDecision {
        try snapshot.enforce(request)
    }

    /// Decides a request given as strings.
    public func enforce(_ request: String...) throws(PolicyError) -> PolicyDecision {
        try snapshot.enforce(request.map(PolicyValue.string))
    }

    static func version(model: String, policy: String, additionalRules: [PolicyRule], rolePatterns: [String: RolePatterns] = [:]) -> String {
        var hasher = SHA256()
        func add(_ text: String) {
            var length = UInt64(text.utf8.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(data: Array(text.utf8))
        }
        add("peon-policy-snapshot-v1")
        add(model)
        add(policy)
        for rule in additionalRules {
            add(rule.source)
            add(String(rule.line))
            add(rule.section)
            add(String(rule.values.count))
            for value in rule.values { add(value) }
        }
        // Pattern roles declared from Swift change decisions, so they are part of the version (only
        // when present, so snapshots without them keep their versions).
        for key in rolePatterns.keys.sorted() {
            add("role-patterns")
            add(key)
            add(rolePatterns[key]?.names?.rawValue ?? "_")
            add(rolePatterns[key]?.domains?.rawValue ?? "_")
        }
        let hex = Array("0123456789abcdef")
        return String(hasher.finalize().flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0x0F)]] })
    }
}

/// A matcher conjunct that lets enforce look rules up instead of scanning them all.
private enum IndexTerm: Sendable {
    /// `r.x == p.y`: only rules whose `p.y` equals the request's `r.x` can match.
    case exact(request: Int, field: Int)
    /// `g(r.x, p.y[, domain])`: only rules whose `p.y` is `r.x` or one of its roles can match.
    case role(graph: String, request: Int, field: Int, domain: DomainSource)
}

private enum DomainSource: Sendable {
    case none
    case request(Int)
    case literal(String)
}

private final class Snapshot: Sendable {
    let version: String
    let requestFields: [String]
    let policyFields: [String]
    let rows: [PolicyLine]
    /// `rows[i].values`, kept apart so trying a row copies one array reference.
    let rowValues: [[String]]
    /// Whether the model has temporal role links, the one way a decision depends on ``clock``.
    let readsClock: Bool
    let effect: PolicyEffect
    let effectField: Int?
    let matcher: Evaluator
    let matcherLocator: TextLocator
    let roleGraphs: [String: RoleGraph]
    let terms: [IndexTerm]
    let indexes: [Int: [ExactKey: [Int]]]
    let clock: PolicyClock

    init(model: Model, lines: [PolicyLine], functions: FunctionRegistry, clock: PolicyClock, version: String) throws(PolicyError) {
        self.version = version
        self.clock = clock
        requestFields = model.requestFields["r"] ?? []
        policyFields = model.policyFields["p"] ?? []
        effect = model.effect
        effectField = policyFields.firstIndex(of: "eft")
        readsClock = !model.timedRoles.isEmpty

        // Check every line against its definition; collect p rows and role links.
        var rows: [PolicyLine] = []
        var links: [String: [RoleGraph.Link]] = [:]
        for line in lines {
            func fail(_ message: String) -> PolicyError {
                PolicyError(source: line.source, line: line.line, column: line.columns.isEmpty ? 0 : 1, message: message)
            }
            if let fields = model.policyFields[line.key] {
                guard line.values.count == fields.count else {
                    throw fail("'\(line.key)' rule has \(line.values.count) values; policy_definition \(line.key) = \(fields.joined(separator: ", ")) expects \(fields.count)")
                }
                if line.key == "p" { rows.append(line) }
            } else if let arity = model.roleArity[line.key] {
                let timed = model.timedRoles.contains(line.key)
                let expected = timed ? arity + 2 : arity
                guard line.values.count >= expected else {
                    throw fail("'\(line.key)' rule has \(line.values.count) values; role_definition \(line.key) expects \(expected)"
                        + (timed ? " (the last two are the validity window: a start and an end time, or '_')" : ""))
                }
                var link = RoleGraph.Link(subject: line.values[0], role: line.values[1], domain: arity == 3 ? line.values[2] : "")
                if timed {
                    do {
                        link.window = try ValidityWindow(start: line.values[arity], end: line.values[arity + 1])
                    } catch {
                        let field = arity + error.index
                        throw PolicyError(
                            source: line.source, line: line.line, column: field < line.columns.count ? line.columns[field] : 0,
                            message: "'\(line.key)' link's validity window \(error.index == 0 ? "start" : "end"): \(error.message)")
                    }
                }
                links[line.key, default: []].append(link)
            } else {
                let known = (model.policyFields.keys.sorted() + model.roleArity.keys.sorted()).joined(separator: ", ")
                throw PolicyError(source: line.source, line: line.line, column: 1, message: "unknown rule type '\(line.key)'; the model defines \(known)")
            }
        }
        if let priorityField = policyFields.firstIndex(of: "priority") {
            var keyed: [(priority: Int, order: Int, line: PolicyLine)] = []
            for (order, row) in rows.enumerated() {
                guard let priority = Int(row.values[priorityField]) else {
                    throw PolicyError(
                        source: row.source, line: row.line,
                        column: priorityField < row.columns.count ? row.columns[priorityField] : 0,
                        message: "p.priority must be an integer, found '\(row.values[priorityField])'")
                }
                keyed.append((priority, order, row))
            }
            keyed.sort { ($0.priority, $0.order) < ($1.priority, $1.order) }
            rows = keyed.map(\.line)
        }
        if !model.constraints.isEmpty {
            var order: [String] = []
            var assigned: [String: Set<String>] = [:]
            for link in links["g"] ?? [] {
                if assigned[link.subject] == nil { order.append(link.subject) }
                assigned[link.subject, default: []].insert(link.role)
            }
            let table = order.map { (subject: $0, roles: assigned[$0] ?? []) }
            for constraint in model.constraints {
                if let problem = constraint.violation(table) {
                    throw PolicyError(source: model.source, line: constraint.position.line, column: constraint.position.column,
                                      message: "constraint \(constraint.name) is violated by the policy: \(problem)")
                }
            }
        }
        if effect == .subjectPriority {
            rows = try Self.sortedBySubjectHierarchy(rows, links: links["g"] ?? [], domainField: policyFields.firstIndex(of: "dom"))
        }
        self.rows = rows
        rowValues = rows.map(\.values)
        var graphs: [String: RoleGraph] = [:]
        for key in model.roleArity.keys {
            graphs[key] = RoleGraph(links: links[key] ?? [], patterns: model.rolePatterns[key] ?? RolePatterns())
        }
        roleGraphs = graphs

        let locator = TextLocator(source: model.source, positions: model.matcher.valuePositions,
                                  start: model.matcher.position(ofCharacter: 0))
        matcherLocator = locator
        let expression = try MatcherParser.parse(model.matcher.value, locator: locator)
        let compiler = MatcherCompiler(
            requestFields: requestFields, policyFields: policyFields, roleArity: model.roleArity,
            functions: functions, rows: rows, roleGraphs: graphs, locator: locator)
        matcher = try compiler.compile(expression)

        // Index the top-level conjuncts that pin a policy field to a request value.
        var terms: [IndexTerm] = []
        var conjuncts: [Expression] = []
        func flatten(_ expression: Expression) {
            if case .and(let lhs, let rhs) = expression {
                flatten(lhs)
                flatten(rhs)
            } else {
                conjuncts.append(expression)
            }
        }
        flatten(expression)
        func requestField(_ expression: Expression) -> Int? {
            guard case .path(let path, _) = expression, path.count == 2, path[0] == "r" else { return nil }
            return model.requestFields["r"]?.firstIndex(of: path[1])
        }
        func policyField(_ expression: Expression) -> Int? {
            guard case .path(let path, _) = expression, path.count == 2, path[0] == "p" else { return nil }
            return model.policyFields["p"]?.firstIndex(of: path[1])
        }
        for conjunct in conjuncts {
            switch conjunct {
            case .binary(.equal, let lhs, let rhs, _):
                if let (request, field) = MatcherCompiler.exactTerm(lhs, rhs, requestFields: requestFields, policyFields: policyFields) {
                    terms.append(.exact(request: request, field: field))
                }
            case .call(let name, let arguments, _) where model.roleArity[name] != nil && functions.entries[name] == nil:
                guard arguments.count >= 2, let request = requestField(arguments[0]), let field = policyField(arguments[1]) else { continue }
                var domain = DomainSource.none
                if arguments.count == 3 {
                    if let index = requestField(arguments[2]) {
                        domain = .request(index)
                    } else if case .literal(.string(let text), _) = arguments[2] {
                        domain = .literal(text)
                    } else {
                        continue
                    }
                }
                terms.append(.role(graph: name, request: request, field: field, domain: domain))
            default:
                continue
            }
        }
        // Exact terms first: one dictionary lookup each, and usually a handful of rows, after which the role
        // terms (a union over every role of the subject, then a sort) are not worth building.
        self.terms = terms.filter { if case .exact = $0 { true } else { false } }
            + terms.filter { if case .role = $0 { true } else { false } }
        var indexes: [Int: [ExactKey: [Int]]] = [:]
        for term in terms {
            let field: Int
            switch term {
            case .exact(_, let f), .role(_, _, let f, _): field = f
            }
            if indexes[field] != nil { continue }
            var index: [ExactKey: [Int]] = [:]
            for (position, row) in rows.enumerated() { index[ExactKey(row.values[field]), default: []].append(position) }
            indexes[field] = index
        }
        self.indexes = indexes
    }

    /// The rows ordered for `subjectPriority(p.eft) || deny`, as pycasbin orders them: subjects that
    /// are nobody's role (users) are level 0; removing them, the subjects that are now nobody's role
    /// are level 1, and so on. Rows are stably sorted by their subject's level (in the row's domain,
    /// when the policy has a `dom` field); a subject that appears in no link is level 0. A cycle
    /// in the hierarchy has no levels and is a load error, as in pycasbin.
    private static func sortedBySubjectHierarchy(_ rows: [PolicyLine], links: [RoleGraph.Link], domainField: Int?) throws(PolicyError) -> [PolicyLine] {
        struct Name: Hashable {
            var domain: ExactKey
            var name: ExactKey
        }
        // Kahn's algorithm, round by round: a name's level is the round in which every link naming it as the
        // role has been removed (its members all had lower levels). Linear in the links: the former loop
        // rebuilt the set of parents once per level, so a chain of 20,000 links took minutes to load.
        var parentsOf: [Name: [Name]] = [:]
        var memberLinks: [Name: Int] = [:]
        var names: [Name] = []
        var known: Set<Name> = []
        for link in links {
            let child = Name(domain: ExactKey(link.domain), name: ExactKey(link.subject))
            let parent = Name(domain: ExactKey(link.domain), name: ExactKey(link.role))
            for name in [child, parent] where known.insert(name).inserted { names.append(name) }
            parentsOf[child, default: []].append(parent)
            memberLinks[parent, default: 0] += 1
        }
        var level: [Name: Int] = [:]
        var round = 0
        var leaves = names.filter { memberLinks[$0, default: 0] == 0 }
        while !leaves.isEmpty {
            var next: [Name] = []
            for name in leaves {
                level[name] = round
                for parent in parentsOf[name] ?? [] {
                    memberLinks[parent, default: 0] -= 1
                    if memberLinks[parent] == 0 { next.append(parent) }
                }
            }
            leaves = next
            round += 1
        }
        if level.count < names.count {
            let unsorted = names.filter { level[$0] == nil }.map(\.name.text).sorted().prefix(5).joined(separator: ", ")
            throw PolicyError(source: "policy", line: 0, column: 0,
                              message: "subjectPriority(p.eft) needs a role hierarchy without cycles; these roles form one: \(unsorted)")
        }
        let keyed = rows.enumerated().map { order, row in
            let domain = domainField.map { $0 < row.values.count ? row.values[$0] : "" } ?? ""
            let name = Name(domain: ExactKey(domain), name: ExactKey(row.values.first ?? ""))
            return (level: level[name] ?? 0, order: order, row: row)
        }
        return keyed.sorted { ($0.level, $0.order) < ($1.level, $1.order) }.map(\.row)
    }

    /// A candidate list this short is tried as it is: evaluating the matcher on a few rows costs less than
    /// narrowing it further through a role term.
    private static let fewEnoughCandidates = 4

    /// The rows that can possibly match, in order, or nil when every row must be tried.
    private func candidates(_ request: [PolicyValue], at time: Int64) -> [Int]? {
        var best: [Int]? = nil
        for term in terms {
            var list: [Int]
            switch term {
            case .exact(let requestField, let field):
                guard case .string(let text) = request[requestField] else { return [] }
                list = indexes[field]?[ExactKey(text)] ?? []
            case .role(let graphName, let requestField, let field, let domainSource):
                if let best, best.count <= Self.fewEnoughCandidates { return best }
                guard case .string(let subject) = request[requestField], let graph = roleGraphs[graphName] else { continue }
                var domain = ""
                switch domainSource {
                case .none: break
                case .literal(let text): domain = text
                case .request(let index):
                    guard case .string(let text) = request[index] else { continue }
                    domain = text
                }
                let roles = graph.rolesIncludingSelf(subject, domain: domain, at: time)
                list = []
                for role in roles { list += indexes[field]?[role] ?? [] }
                if roles.count > 1 { list.sort() }
            }
            if best == nil || list.count < (best?.count ?? 0) { best = list }
            if list.isEmpty { break }
        }
        return best
    }

    private func matched(_ context: Evaluation) throws(PolicyError) -> Bool {
        switch try matcher(context) {
        case .bool(let value): return value
        case .number(let value): return value != 0
        case let other: throw matcherLocator.error(at: 0, "the matcher must produce a boolean, but produced a \(other.typeName)")
        }
    }

    private func rule(_ row: Int) -> PolicyRule {
        let line = rows[row]
        return PolicyRule(section: line.key, values: line.values, source: line.source, line: line.line)
    }

    func enforce(_ request: [PolicyValue]) throws(PolicyError) -> PolicyDecision {
        guard request.count == requestFields.count else {
            throw PolicyError(
                source: "request", line: 0, column: 0,
                message: "the request has \(request.count) \(request.count == 1 ? "value" : "values"); request_definition r = \(requestFields.joined(separator: ", ")) expects \(requestFields.count)")
        }
        let context = Evaluation(request: request, time: clock.now())
        if rows.isEmpty {
            // Casbin evaluates the matcher once with empty policy fields.
            context.policy = Array(repeating: "", count: policyFields.count)
            let allowed = try matched(context)
            switch effect {
            case .allowOverride, .priority, .subjectPriority, .allowAndDeny: return PolicyDecision(isAllowed: allowed, rule: nil)
            case .denyOverride: return PolicyDecision(isAllowed: true, rule: nil)
            }
        }
        var firstAllow: Int? = nil
        func consider(_ row: Int) throws(PolicyError) -> PolicyDecision? {
            context.row = row
            context.policy = rowValues[row]
            guard try matched(context) else { return nil }
            var isAllow = true, isDeny = false
            if let effectField {
                let value = context.policy[effectField]
                isAllow = value == "allow"
                isDeny = value == "deny"
            }
            switch effect {
            case .allowOverride:
                if isAllow { return PolicyDecision(isAllowed: true, rule: rule(row)) }
            case .denyOverride, .allowAndDeny:
                if isDeny { return PolicyDecision(isAllowed: false, rule: rule(row)) }
                if isAllow, firstAllow == nil { firstAllow = row }
            case .priority, .subjectPriority:
                if isAllow || isDeny { return PolicyDecision(isAllowed: isAllow, rule: rule(row)) }
            }
            return nil
        }
        if let candidates = candidates(request, at: context.time) {
            for row in candidates { if let decision = try consider(row) { return decision } }
        } else {
            for row in rows.indices { if let decision = try consider(row) { return decision } }
        }
        switch effect {
        case .allowOverride, .priority, .subjectPriority: return PolicyDecision(isAllowed: false, rule: nil)
        case .denyOverride: return PolicyDecision(isAllowed: true, rule: firstAllow.map(rule))
        case .allowAndDeny: return PolicyDecision(isAllowed: firstAllow != nil, rule: firstAllow.map(rule))
        }
    }
}
