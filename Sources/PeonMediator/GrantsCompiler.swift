/// Grants compiled into policy lines for the built-in model (``BuiltinModel``), so the same engine
/// decides every call whether the user wrote grants or an organization wrote its own policy.
///
/// Each grant becomes one `p` line per (resource, action): `[[fs]] paths = ["/srv/**"] allow = ["read"]`
/// in module `summarizer` becomes `p, summarizer, fs:/srv/**, fs.read, *`. A `[[db]]` grant on database
/// `analytics` also gives `p, summarizer, db:analytics, db.open, *`: a statement's database is opened only
/// after that decision is in the log, and then each table it touches is decided on its own line. The mediator maps the line
/// the engine names back to the grants that produced it, to apply what the engine cannot decide
/// (rate, approval, caps, injected headers).
package struct CompiledGrants: Sendable {
    /// A reference to one grant: which kind and its index in the file.
    package enum GrantReference: Sendable, Hashable, CustomStringConvertible {
        case fileSystem(Int), http(Int), database(Int), exec(Int)

        /// `fs[0]`, `http[1]`, ...: the key path used in grants errors.
        package var description: String {
            switch self {
            case .fileSystem(let index): "fs[\(index)]"
            case .http(let index): "http[\(index)]"
            case .database(let index): "db[\(index)]"
            case .exec(let index): "exec[\(index)]"
            }
        }
    }

    /// The grants compiled.
    package let grants: Grants
    /// The policy lines' fields after the `p` (subject, object, action, args), in file order, unique.
    package let rules: [[String]]
    /// For each rule, the grants that produced it (several grants can produce the same line; all apply).
    package let origins: [[String]: [GrantReference]]
    /// The rules whose grants carry labels, a rate or an approval, by action (their third field), in file order:
    /// what ``coveringReferences(subject:object:action:arguments:)`` tries. Other grants add nothing to a decision
    /// that their line did not make, so a call under grants without such conditions tries none.
    private let conditionalRulesByAction: [String: [[String]]]
    /// For a rule no grant produces alone (a database's `db.open`, implied by its `[[db]]` grants), the first grant
    /// that implies it: where a decision by it is cited, though it carries none of that grant's conditions.
    private let impliedBy: [[String]: GrantSource]

    /// The grants file line a decision by `rule` cites: the first grant that produced it, or that implies it.
    package func citation(for rule: [String]) -> GrantSource? {
        origins[rule]?.first.map { source(of: $0) } ?? impliedBy[rule]
    }

    /// Compiles `grants`.
    package init(_ grants: Grants) {
        var rules: [[String]] = []
        var origins: [[String]: [GrantReference]] = [:]
        var impliedBy: [[String]: GrantSource] = [:]
        func add(_ rule: [String], _ origin: GrantReference?) {
            if origins[rule] == nil { rules.append(rule) }
            origins[rule, default: []].append(contentsOf: origin.map { [$0] } ?? [])
        }
        let subject = grants.module
        for (index, grant) in grants.fileSystem.enumerated() {
            for path in grant.paths {
                for access in grant.access {
                    add([subject, "fs:" + path, "fs." + access.rawValue, "*"], .fileSystem(index))
                }
            }
        }
        for (index, grant) in grants.http.enumerated() {
            for url in grant.urls {
                for method in grant.methods {
                    add([subject, "http:" + url, "http." + method, "*"], .http(index))
                }
            }
        }
        for (index, grant) in grants.database.enumerated() {
            // Opening the database needs a grant on some table of it; the tables are decided one by one
            // afterwards, so this line carries no grant's rate or approval.
            let open = [subject, "db:\(grant.database)", "db.open", "*"]
            add(open, nil)
            if impliedBy[open] == nil { impliedBy[open] = grant.source }
            for table in grant.tables {
                for access in grant.access {
                    add([subject, "db:\(grant.database)/\(table)", "db." + access.rawValue, "*"], .database(index))
                }
            }
        }
        for (index, grant) in grants.exec.enumerated() {
            add([subject, "exec:" + grant.program, "exec.run", ArgumentVector.encodePatterns(grant.arguments)],
                .exec(index))
        }
        self.grants = grants
        self.rules = rules
        self.origins = origins
        self.impliedBy = impliedBy
        func isConditional(_ reference: GrantReference) -> Bool {
            let (labels, conditions): ([String], GrantConditions) = switch reference {
            case .fileSystem(let index): (grants.fileSystem[index].labels, grants.fileSystem[index].conditions)
            case .http(let index): (grants.http[index].labels, grants.http[index].conditions)
            case .database(let index): (grants.database[index].labels, grants.database[index].conditions)
            case .exec(let index): (grants.exec[index].labels, grants.exec[index].conditions)
            }
            return !labels.isEmpty || conditions.rate != nil || conditions.approval != .never
        }
        conditionalRulesByAction = Dictionary(grouping: rules.filter { (origins[$0] ?? []).contains(where: isConditional) },
                                              by: { $0[2] })
    }

    /// Every grant with labels, a rate or an approval whose line matches the request by the grants' own rules
    /// (`peonGlob`, `peonArgs`), in file order, whichever line the engine named. The engine stops at the first
    /// matching line, so with overlapping grants (`/data/**`, then `/data/hr/**` with `labels`, `approval` or
    /// `rate`) the line it names can be the broader grant's: the narrower grant's labels, rate and approval must
    /// apply all the same, whatever the order of the grants in the file.
    package func coveringReferences(subject: String, object: String, action: String, arguments: String) -> [GrantReference] {
        guard let candidates = conditionalRulesByAction[action] else { return [] }
        var found: [GrantReference] = []
        for rule in candidates
        where rule[0] == subject && globMatches(object, pattern: rule[1]) && ArgumentVector.matches(arguments, patterns: rule[3]) {
            for reference in origins[rule] ?? [] where !found.contains(reference) { found.append(reference) }
        }
        return found
    }

    /// The policy file text: one `p, sub, obj, act, args` line per rule.
    package var policyText: String {
        rules.map { (["p"] + $0).joined(separator: ", ") + "\n" }.joined()
    }

    /// The grant conditions for the rule the engine named (strictest union: approval if any grant
    /// asks for it, every rate applies).
    package func conditions(for rule: [String]) -> [(GrantReference, GrantConditions)] {
        references(for: rule).map { ($0, conditions(of: $0)) }
    }

    /// The grants behind a policy line's values. Under a model with deny rules (`p = sub, obj, act, args,
    /// eft`) a grant's line carries its effect, `allow`, as a fifth value.
    package func references(for rule: [String]) -> [GrantReference] {
        if let found = origins[rule] { return found }
        if rule.count == 5, rule[4] == "allow", let found = origins[Array(rule.prefix(4))] { return found }
        return []
    }

    /// The conditions of one grant.
    package func conditions(of reference: GrantReference) -> GrantConditions {
        switch reference {
        case .fileSystem(let index): grants.fileSystem[index].conditions
        case .http(let index): grants.http[index].conditions
        case .database(let index): grants.database[index].conditions
        case .exec(let index): grants.exec[index].conditions
        }
    }

    /// Where a grant was written.
    package func source(of reference: GrantReference) -> GrantSource {
        switch reference {
        case .fileSystem(let index): grants.fileSystem[index].source
        case .http(let index): grants.http[index].source
        case .database(let index): grants.database[index].source
        case .exec(let index): grants.exec[index].source
        }
    }
}

/// The built-in Casbin model, also shipped as `policies/model.conf` (a test keeps them identical).
///
/// Request: `r = sub, obj, act, args` — the module name, a resource string, an action and the exec
/// argument vector (``ArgumentVector``; `0:` for every other call). Policy: `p = sub, obj, act, args`.
/// `g` lets an organization's policy give modules roles. Allow when any policy line matches.
package enum BuiltinModel {
    /// The model text.
    package static let text = """
        # peon-wasm built-in model: what the compiled grants (policies/NAME.toml) are decided by.
        #
        # A request is (sub, obj, act, args):
        #   sub   the module name from the grants file (or the run's module name)
        #   obj   fs:/abs/path | http:https://host/path?query | db:DATABASE | db:DATABASE/TABLE | exec:/abs/program
        #   act   fs.read fs.write fs.append fs.list fs.remove | http.GET http.POST ... |
        #         db.open (on db:DATABASE) db.read db.insert db.update db.delete db.schema | exec.run
        #   args  the exec argument vector "N:arg1 arg2" (percent-encoded), "0:" for other calls
        # peonGlob: * within one /-segment, ** (a whole segment) across segments.
        # peonArgs: "*" matches any vector; otherwise one pattern per argument (* any characters, ? one).

        [request_definition]
        r = sub, obj, act, args

        [policy_definition]
        p = sub, obj, act, args

        [role_definition]
        g = _, _

        [policy_effect]
        e = some(where (p.eft == allow))

        [matchers]
        m = (r.sub == p.sub || g(r.sub, p.sub)) && r.act == p.act && peonGlob(r.obj, p.obj) && peonArgs(r.args, p.args)

        """
}

extension CompiledGrants {
    /// The information-flow labels data read under a grant carries (for an exec grant: its output).
    package func labels(of reference: GrantReference) -> [String] {
        switch reference {
        case .fileSystem(let index): grants.fileSystem[index].labels
        case .http(let index): grants.http[index].labels
        case .database(let index): grants.database[index].labels
        case .exec(let index): grants.exec[index].labels
        }
    }

    /// The labels a grant lets its sink calls carry.
    package func clearance(of reference: GrantReference) -> [String] {
        switch reference {
        case .fileSystem(let index): grants.fileSystem[index].clearance
        case .http(let index): grants.http[index].clearance
        case .database(let index): grants.database[index].clearance
        case .exec(let index): grants.exec[index].clearance
        }
    }
}
