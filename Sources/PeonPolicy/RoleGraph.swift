/// The role links of one role definition (`g` or `g2`), with every subject's reachable roles
/// computed once when the snapshot is built: that is the memo, and enforce only does set lookups.
///
/// Inheritance is transitive up to `maxHops` links, as Casbin's default role manager does (a chain
/// of at most 10 names; pycasbin 1.43 answers `false` for 10 links). Cycles are harmless: the
/// search visits each name once.
struct RoleGraph: Sendable {
    static let maxHops = 9

    /// domain → subject → every role reachable from it (not including itself).
    private var reachable: [ExactKey: [ExactKey: Set<ExactKey>]] = [:]

    init(links: [(subject: String, role: String, domain: String)]) {
        var edges: [ExactKey: [ExactKey: [ExactKey]]] = [:]
        for link in links {
            edges[ExactKey(link.domain), default: [:]][ExactKey(link.subject), default: []].append(ExactKey(link.role))
        }
        for (domain, graph) in edges {
            var result: [ExactKey: Set<ExactKey>] = [:]
            for subject in graph.keys {
                var seen: Set<ExactKey> = [subject]
                var frontier = [subject]
                var hops = 0
                while !frontier.isEmpty, hops < Self.maxHops {
                    var next: [ExactKey] = []
                    for name in frontier {
                        for role in graph[name] ?? [] where seen.insert(role).inserted {
                            next.append(role)
                        }
                    }
                    frontier = next
                    hops += 1
                }
                seen.remove(subject)
                result[subject] = seen
            }
            reachable[domain] = result
        }
    }

    /// Whether `subject` has `role` (directly, transitively, or by being it) in `domain`.
    func hasLink(_ subject: String, _ role: String, domain: String) -> Bool {
        if sameBytes(subject, role) { return true }
        return reachable[ExactKey(domain)]?[ExactKey(subject)]?.contains(ExactKey(role)) ?? false
    }

    /// `subject` and every role it has in `domain`.
    func rolesIncludingSelf(_ subject: String, domain: String) -> [ExactKey] {
        let key = ExactKey(subject)
        return [key] + (reachable[ExactKey(domain)]?[key].map(Array.init) ?? [])
    }
}
