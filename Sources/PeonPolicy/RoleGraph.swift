/// The role links of one role definition (`g` or `g2`).
///
/// When no link has a validity window and no names are patterns, every subject's reachable roles
/// are computed once when the snapshot is built: that is the memo, and enforce only does set
/// lookups. Links with a window (`g = _, _, (_, _)`, a temporal role) depend on the time of the
/// request, and pattern roles (`RolePatterns`) on names the policy never lists, so such a graph is
/// searched at enforce time instead, following only the links that apply to that request.
///
/// Inheritance is transitive up to `maxHops` links, as Casbin's default role manager does (a chain
/// of at most 10 names; pycasbin 1.43 answers `false` for 10 links). Cycles are harmless: the
/// search visits each name once.
struct RoleGraph: Sendable {
    static let maxHops = 9

    /// One role link as read from the policy.
    struct Link: Sendable {
        var subject: String
        var role: String
        var domain: String
        /// When the link grants anything; nil for a link that always does.
        var window: ValidityWindow? = nil
    }

    private struct Edge: Sendable {
        var role: ExactKey
        var window: ValidityWindow?
    }

    /// domain → subject → every role reachable from it (not including itself); untimed graphs only.
    private var reachable: [ExactKey: [ExactKey: Set<ExactKey>]] = [:]
    /// domain → subject → its direct links; timed graphs only.
    private var edges: [ExactKey: [ExactKey: [Edge]]] = [:]
    /// Whether reachability is computed per request: some link has a validity window, or names
    /// or domains are patterns.
    private let dynamic: Bool
    /// The most link traversals spent computing every subject's roles when the snapshot is built. Past it
    /// the graph is searched per request instead (``dynamic``), which costs at most one traversal of the
    /// links per request: without a bound, a policy of a few thousand densely linked names (a 250 KB file
    /// with 16,000 `g` lines) took 18 s and 560 MB to load, growing with the square of its size.
    static let precomputeBudget = 1_000_000
    private let namePatterns: PatternSet?
    private let domainPatterns: PatternSet?


    /// Builds the graph; with `patterns`, every name (or domain) in a link is also compiled as a
    /// pattern of that function (a name that is not a valid pattern only matches itself).
    init(links: [Link], patterns: RolePatterns = RolePatterns()) {
        var edges: [ExactKey: [ExactKey: [Edge]]] = [:]
        for link in links {
            edges[ExactKey(link.domain), default: [:]][ExactKey(link.subject), default: []]
                .append(Edge(role: ExactKey(link.role), window: link.window))
        }
        namePatterns = patterns.names.map { PatternSet($0, names: links.flatMap { [$0.subject, $0.role] }) }
        domainPatterns = patterns.domains.map { PatternSet($0, names: links.map(\.domain)) }
        if links.contains(where: { $0.window != nil }) || namePatterns != nil || domainPatterns != nil {
            dynamic = true
            self.edges = edges
            return
        }
        var budget = Self.precomputeBudget
        var reachable: [ExactKey: [ExactKey: Set<ExactKey>]] = [:]
        precompute: for (domain, graph) in edges {
            var result: [ExactKey: Set<ExactKey>] = [:]
            for subject in graph.keys {
                var roles = Self.search(from: subject, in: graph, at: nil, budget: &budget)
                // Over budget: forget what was computed and search per request.
                guard budget >= 0 else { reachable = [:]; break precompute }
                roles.remove(subject)
                result[subject] = roles
            }
            reachable[domain] = result
        }
        if budget < 0 {
            dynamic = true
            self.edges = edges
        } else {
            dynamic = false
            self.reachable = reachable
        }
    }

    /// Every name reachable from `subject` (itself included) over links valid at `time` (all links
    /// when `time` is nil), breadth first, at most `maxHops` links deep. Each link followed costs one of
    /// `budget`, which may end below zero (the search stops as soon as it does).
    private static func search(from subject: ExactKey, in graph: [ExactKey: [Edge]], at time: Int64?) -> Set<ExactKey> {
        var unbounded = Int.max
        return search(from: subject, in: graph, at: time, budget: &unbounded)
    }

    private static func search(from subject: ExactKey, in graph: [ExactKey: [Edge]], at time: Int64?, budget: inout Int) -> Set<ExactKey> {
        var seen: Set<ExactKey> = [subject]
        var frontier = [subject]
        var hops = 0
        while !frontier.isEmpty, hops < maxHops {
            var next: [ExactKey] = []
            for name in frontier {
                let links = graph[name] ?? []
                budget -= links.count + 1
                if budget < 0 { return seen }
                for edge in links {
                    if let time, let window = edge.window, !window.contains(time) { continue }
                    if seen.insert(edge.role).inserted { next.append(edge.role) }
                }
            }
            frontier = next
            hops += 1
        }
        return seen
    }

    /// The links that apply in `domain`: its own, and (with domain patterns) those of every link
    /// domain that, as a pattern, matches it.
    private func view(_ domain: String) -> [ExactKey: [Edge]] {
        let key = ExactKey(domain)
        guard let domainPatterns else { return edges[key] ?? [:] }
        var merged = edges[key] ?? [:]
        for (pattern, links) in edges where pattern != key && domainPatterns.matches(domain, pattern) {
            merged.merge(links) { $0 + $1 }
        }
        return merged
    }

    /// Everything reachable from `subject` in `graph` at `time`. With name patterns a name also has
    /// the roles of every linked name that, as a pattern, matches it (Go Casbin's matching function).
    private func dynamicSearch(from subject: ExactKey, in graph: [ExactKey: [Edge]], at time: Int64) -> Set<ExactKey> {
        guard let namePatterns else { return Self.search(from: subject, in: graph, at: time) }
        var seen: Set<ExactKey> = [subject]
        var frontier = [subject]
        var hops = 0
        while !frontier.isEmpty, hops < Self.maxHops {
            var next: [ExactKey] = []
            for name in frontier {
                var links = graph[name] ?? []
                for (pattern, patternLinks) in graph where pattern != name && namePatterns.matches(name.text, pattern) {
                    links += patternLinks
                }
                for edge in links {
                    if let window = edge.window, !window.contains(time) { continue }
                    if seen.insert(edge.role).inserted { next.append(edge.role) }
                }
            }
            frontier = next
            hops += 1
        }
        return seen
    }

    /// Whether `subject` has `role` (directly, transitively, or by being it) in `domain` at `time`
    /// (Unix seconds, UTC; only links with a validity window look at it). The role must be reached
    /// by name: as in pycasbin, `g(/book/1, /book/:id)` is false unless a link leads to `/book/:id`
    /// itself (Go Casbin also accepts a role that, as a pattern, matches a name reached; we keep
    /// the stricter reading).
    func hasLink(_ subject: String, _ role: String, domain: String, at time: Int64) -> Bool {
        if sameBytes(subject, role) { return true }
        guard dynamic else {
            return reachable[ExactKey(domain)]?[ExactKey(subject)]?.contains(ExactKey(role)) ?? false
        }
        return dynamicSearch(from: ExactKey(subject), in: view(domain), at: time).contains(ExactKey(role))
    }

    /// `subject` and every role it has in `domain` at `time`.
    func rolesIncludingSelf(_ subject: String, domain: String, at time: Int64) -> [ExactKey] {
        let key = ExactKey(subject)
        if dynamic {
            var roles = dynamicSearch(from: key, in: view(domain), at: time)
            roles.remove(key)
            return [key] + Array(roles)
        }
        return [key] + (reachable[ExactKey(domain)]?[key].map(Array.init) ?? [])
    }
}

/// Which built-in pattern function, if any, matches the role names and the domains of one role
/// definition: what Go Casbin registers from code with `AddNamedMatchingFunc(e, "g2", "keyMatch2",
/// util.KeyMatch2)` and `AddNamedDomainMatchingFunc`. With `names: .keyMatch2`, the link
/// `g2, /book/:id, book_group` makes `/book/1` a member of `book_group`; with
/// `domains: .keyMatch2`, a link in domain `*` applies in every domain.
public struct RolePatterns: Sendable, Hashable {
    /// The function role names are matched with, or nil for exact names.
    public var names: BuiltinPatternFunction?
    /// The function domains are matched with, or nil for exact domains.
    public var domains: BuiltinPatternFunction?

    /// Declares the pattern functions of one role definition.
    public init(names: BuiltinPatternFunction? = nil, domains: BuiltinPatternFunction? = nil) {
        self.names = names
        self.domains = domains
    }
}

/// A built-in pattern function by its matcher name, for `RolePatterns`.
public enum BuiltinPatternFunction: String, Sendable, Hashable, CaseIterable {
    case keyMatch, keyMatch2, keyMatch3, keyMatch4, keyMatch5, regexMatch, globMatch, ipMatch

    var matcher: BuiltinMatcher {
        switch self {
        case .keyMatch: .keyMatch
        case .keyMatch2: .keyMatch2
        case .keyMatch3: .keyMatch3
        case .keyMatch4: .keyMatch4
        case .keyMatch5: .keyMatch5
        case .regexMatch: .regexMatch
        case .globMatch: .globMatch
        case .ipMatch: .ipMatch
        }
    }
}

/// The names of a graph compiled as patterns of one function, once, at load time.
private struct PatternSet: Sendable {
    /// name → its pattern, or nil when the name is not a valid pattern of the function (such a
    /// name then only matches itself, as an exact name).
    let patterns: [ExactKey: CompiledPattern?]

    init(_ function: BuiltinPatternFunction, names: [String]) {
        var patterns: [ExactKey: CompiledPattern?] = [:]
        for name in names where patterns[ExactKey(name)] == nil {
            patterns[ExactKey(name)] = try? CompiledPattern.compile(function.matcher, name)
        }
        self.patterns = patterns
    }

    /// Whether `name` matches the linked name `pattern` read as a pattern.
    func matches(_ name: String, _ pattern: ExactKey) -> Bool {
        guard let compiled = patterns[pattern] ?? nil else { return false }
        return (try? compiled.matches(name)) ?? false
    }

}

/// When a conditional role link (`g = _, _, (_, _)`) grants anything: Go Casbin's `TimeMatchFunc`
/// semantics. The link is valid strictly after `start` and strictly before `end`; `_` leaves that
/// side open. Times are written `YYYY-MM-DD HH:MM:SS` and read as UTC, as Go's `time.Parse` does.
struct ValidityWindow: Sendable {
    var start: Int64?
    var end: Int64?

    func contains(_ time: Int64) -> Bool {
        if let start, time <= start { return false }
        if let end, time >= end { return false }
        return true
    }

    /// Parses the two window values of a link; the error says which value is wrong and why.
    init(start: String, end: String) throws(ValidityWindowError) {
        self.start = try Self.parse(start, which: 0)
        self.end = try Self.parse(end, which: 1)
    }

    /// `_` (open) or `YYYY-MM-DD HH:MM:SS`, as Unix seconds.
    static func parse(_ text: String, which: Int) throws(ValidityWindowError) -> Int64? {
        if text == "_" { return nil }
        let bytes = Array(text.utf8)
        func failure() -> ValidityWindowError {
            ValidityWindowError(index: which, message: "expected a time 'YYYY-MM-DD HH:MM:SS' (UTC) or '_', found '\(text)'")
        }
        guard bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: " "),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { throw failure() }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else { throw failure() }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let monthDays: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), day >= 1, day <= monthDays[Int(month - 1)], hour < 24, minute < 60, second < 60 else {
            throw failure()
        }
        // Days from 1970-01-01 to the date (proleptic Gregorian; Howard Hinnant's days_from_civil).
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + hour * 3_600 + minute * 60 + second
    }
}

/// A malformed validity-window value: which of the two (0 = start, 1 = end) and why.
struct ValidityWindowError: Error, Sendable {
    var index: Int
    var message: String
}
