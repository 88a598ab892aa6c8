/// The role links of one role definition (`g` or `g2`).
///
/// When no link has a validity window, every subject's reachable roles are computed once when the
/// snapshot is built: that is the memo, and enforce only does set lookups. Links with a window
/// (`g = _, _, (_, _)`, a temporal role) depend on the time of the request, so a graph that has any
/// is searched at enforce time instead, following only the links valid at that instant.
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
    /// Whether some link has a validity window, so reachability depends on the time.
    private let timed: Bool

    init(links: [Link]) {
        var edges: [ExactKey: [ExactKey: [Edge]]] = [:]
        for link in links {
            edges[ExactKey(link.domain), default: [:]][ExactKey(link.subject), default: []]
                .append(Edge(role: ExactKey(link.role), window: link.window))
        }
        timed = links.contains { $0.window != nil }
        if timed {
            self.edges = edges
            return
        }
        for (domain, graph) in edges {
            var result: [ExactKey: Set<ExactKey>] = [:]
            for subject in graph.keys {
                var roles = Self.search(from: subject, in: graph, at: nil)
                roles.remove(subject)
                result[subject] = roles
            }
            reachable[domain] = result
        }
    }

    /// Every name reachable from `subject` (itself included) over links valid at `time` (all links
    /// when `time` is nil), breadth first, at most `maxHops` links deep.
    private static func search(from subject: ExactKey, in graph: [ExactKey: [Edge]], at time: Int64?) -> Set<ExactKey> {
        var seen: Set<ExactKey> = [subject]
        var frontier = [subject]
        var hops = 0
        while !frontier.isEmpty, hops < maxHops {
            var next: [ExactKey] = []
            for name in frontier {
                for edge in graph[name] ?? [] {
                    if let time, let window = edge.window, !window.contains(time) { continue }
                    if seen.insert(edge.role).inserted { next.append(edge.role) }
                }
            }
            frontier = next
            hops += 1
        }
        return seen
    }

    /// Whether `subject` has `role` (directly, transitively, or by being it) in `domain` at `time`
    /// (Unix seconds, UTC; only links with a validity window look at it).
    func hasLink(_ subject: String, _ role: String, domain: String, at time: Int64) -> Bool {
        if sameBytes(subject, role) { return true }
        if timed {
            guard let graph = edges[ExactKey(domain)] else { return false }
            return Self.search(from: ExactKey(subject), in: graph, at: time).contains(ExactKey(role))
        }
        return reachable[ExactKey(domain)]?[ExactKey(subject)]?.contains(ExactKey(role)) ?? false
    }

    /// `subject` and every role it has in `domain` at `time`.
    func rolesIncludingSelf(_ subject: String, domain: String, at time: Int64) -> [ExactKey] {
        let key = ExactKey(subject)
        if timed {
            guard let graph = edges[ExactKey(domain)] else { return [key] }
            var roles = Self.search(from: key, in: graph, at: time)
            roles.remove(key)
            return [key] + Array(roles)
        }
        return [key] + (reachable[ExactKey(domain)]?[key].map(Array.init) ?? [])
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
