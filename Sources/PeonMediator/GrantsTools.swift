// The logic behind `peon-wasm grants check` and `peon-wasm policy explain`, kept here (engine-free)
// so it is tested with the mediator; the CLI only reads files and prints.

import Crypto
import PeonInterface
import Foundation
import PeonPolicy
import PeonSystem

/// Lowercase hex SHA-256 of `bytes` (a module's identity in grants pins and the audit log).
package func sha256Hex(_ bytes: [UInt8]) -> String {
    hex(SHA256.hash(data: bytes))
}

/// The `peon:host` functions and the policy actions each can ask for.
package enum HostImports {
    /// `(import module, field)` → the actions a call through it is decided on. `log` needs none.
    package static let actions: [String: [String: [String]]] = [
        "peon:host/fs@0.1.0": [
            "read": ["fs.read"], "write": ["fs.write"], "append": ["fs.append"], "read-dir": ["fs.list"],
            "remove": ["fs.remove"],
        ],
        "peon:host/http@0.1.0": ["send": ["http.*"]],
        "peon:host/db@0.1.0": [
            "query": ["db.read"], "execute": ["db.insert", "db.update", "db.delete", "db.schema", "db.read"],
        ],
        "peon:host/exec@0.1.0": ["run": ["exec.run"]],
        "peon:host/log@0.1.0": ["log": []],
    ]
}

/// What `grants check` found.
package struct GrantsCheckReport: Sendable, Hashable {
    /// One `peon:host` import and whether a grant can ever allow it.
    package struct Line: Sendable, Hashable {
        /// `peon:host/fs@0.1.0#read`.
        package var importName: String
        /// `granted`, `not granted (every call will be denied)`, `no grant needed` or `unknown import`.
        package var status: String
        /// The grants that can allow it (`fs[0] (g.toml:12)`).
        package var grants: [String]
    }

    /// One line per `peon:host` import, in the module's order.
    package var imports: [Line]
    /// Grants the module cannot use, and unknown `peon:host` imports.
    package var warnings: [String]
    /// Whether the module has an import the host does not know (it will not load).
    package var hasUnknownImports: Bool
    /// For each information-flow label a grant brings: the grants that acquire it and the sinks that may
    /// still send data out once a run holds it.
    package var labelFlows: [String] = []
}

/// Checks a module's imports against grants.
package func checkGrants(imports: [(module: String, name: String)], grants: Grants) -> GrantsCheckReport {
    let compiled = CompiledGrants(grants)
    var lines: [GrantsCheckReport.Line] = []
    var warnings: [String] = []
    var unknown = false
    var usedActions: Set<String> = []
    for item in imports where item.module.hasPrefix("peon:host/") {
        let name = "\(item.module)#\(item.name)"
        guard let actions = HostImports.actions[item.module]?[item.name] else {
            lines.append(.init(importName: name, status: "unknown import", grants: []))
            warnings.append("\(name) is not part of peon:host@0.1.0; the module will fail to load")
            unknown = true
            continue
        }
        if actions.isEmpty {
            lines.append(.init(importName: name, status: "no grant needed", grants: []))
            continue
        }
        usedActions.formUnion(actions)
        // In order, each once (a set beside the list: a file of 100,000 grants took minutes with a list search).
        var granting: [String] = []
        var seen: Set<String> = []
        for rule in compiled.rules where actionCovered(rule[2], by: actions) {
            for reference in compiled.references(for: rule) {
                let label = "\(reference) (\(compiled.source(of: reference)))"
                if seen.insert(label).inserted { granting.append(label) }
            }
        }
        lines.append(.init(importName: name,
                           status: granting.isEmpty ? "not granted (every call will be denied)" : "granted",
                           grants: granting))
    }
    var unused: [String] = []
    var unusedActions: [String: [String]] = [:]
    let used = Array(usedActions)
    for rule in compiled.rules where !actionCovered(rule[2], by: used) {
        for reference in compiled.references(for: rule) {
            let label = "\(reference) (\(compiled.source(of: reference)))"
            if unusedActions[label] == nil { unused.append(label) }
            if !(unusedActions[label]?.contains(rule[2]) ?? false) { unusedActions[label, default: []].append(rule[2]) }
        }
    }
    for label in unused {
        warnings.append("grant \(label) allows \(unusedActions[label, default: []].joined(separator: ", ")), which the module never calls")
    }
    warnings += riskyCombinations(in: grants)
    var report = GrantsCheckReport(imports: lines, warnings: warnings, hasUnknownImports: unknown)
    report.labelFlows = labelFlowReport(compiled)
    return report
}

/// Grants that are each fine alone and dangerous together or in detail: an exec argument pattern that
/// admits options, and a program an exec grant names, or a file its arguments name, that an fs grant lets the
/// module write.
func riskyCombinations(in grants: Grants) -> [String] {
    var warnings: [String] = []
    for (index, grant) in grants.exec.enumerated() {
        for (position, pattern) in grant.arguments.enumerated() where ArgumentVector.admitsOptions(pattern) {
            warnings.append("grant exec[\(index)] (\(grant.source)) args[\(position)] `\(pattern)` admits options "
                + "(e.g. `--files0-from=FILE` makes some programs read any file); name each option you mean")
        }
        for (fsIndex, fileGrant) in grants.fileSystem.enumerated()
        where fileGrant.access.contains(where: { $0 == .write || $0 == .append || $0 == .remove }) {
            for path in fileGrant.paths where globMatches(grant.program, pattern: path) {
                warnings.append("grant fs[\(fsIndex)] (\(fileGrant.source)) lets the module write \(grant.program), which exec[\(index)] "
                    + "runs; peon-wasm clears the execute bits of every file a guest writes, so the program would stop working, "
                    + "but do not grant both")
            }
            // An argument is a file the program may run as a script (`/bin/sh job.sh`, `python3 x.py`, `--rcfile=F`):
            // clearing execute bits does not stop that. Where a path starts in the argument, each side is tried with
            // its wildcards standing for one letter against the other: the argument's pattern against the fs grant's,
            // and the other way round (`/srv/w/*` against a writable `/srv/w/job-*.sh`).
            for (position, argument) in grant.arguments.enumerated() {
                guard let slash = argument.firstIndex(of: "/") else { continue }
                // `/srv/work/./y.pl`, `/srv/jobs/../work/y.pl` and `//srv/work/y.pl` name the same file as the fs
                // grant's `/srv/work/y.pl`.
                let text = String(argument[slash...])
                let named = (try? GuestPath(parsing: text, relativeTo: nil).description) ?? text
                func filled(_ pattern: String) -> String {
                    pattern.replacingOccurrences(of: "**", with: "x").map { $0 == "*" || $0 == "?" ? "x" : String($0) }.joined()
                }
                guard let path = fileGrant.paths.first(where: { written in
                    globMatches(filled(named), pattern: written)
                        || ArgumentVector.matches(ArgumentVector.encode([filled(written)]), patterns: ArgumentVector.encodePatterns([named]))
                }) else { continue }
                warnings.append("grant fs[\(fsIndex)] (\(fileGrant.source)) `\(path)` lets the module write what exec[\(index)] "
                    + "args[\(position)] `\(argument)` names; if \(grant.program) reads it as a script or its input, the module "
                    + "decides what runs: do not grant both")
            }
        }
    }
    // A shell or interpreter given code to run (`sh -c "echo *"`): a wildcard there lets the module write the program.
    let interpreters: Set = ["sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "python", "python3", "perl", "ruby", "node",
                             "php", "lua", "awk", "gawk", "env", "xargs"]
    for (index, grant) in grants.exec.enumerated() {
        let name = String(grant.program.split(separator: "/").last ?? "")
        let base = name.hasPrefix("python") ? "python" : name
        guard interpreters.contains(base) || interpreters.contains(name) else { continue }
        for (position, pattern) in grant.arguments.enumerated() where position > 0 && (pattern.contains("*") || pattern.contains("?")) {
            let previous = grant.arguments[position - 1]
            // `-c`, or a cluster holding it (`bash -lc`, `sh -ec`, `python3 -uc`); `-e`/`-E`/`-r` for perl, ruby, node, php.
            let cluster = previous.hasPrefix("-") && !previous.hasPrefix("--") && previous.dropFirst().allSatisfy(\.isLetter)
                && previous.dropFirst().contains(where: { "ceEr".contains($0) })
            guard cluster || ["--eval", "--command"].contains(previous) || base == "env" || base == "xargs" else { continue }
            warnings.append("grant exec[\(index)] (\(grant.source)) args[\(position)] `\(pattern)` after `\(previous)` lets the module "
                + "choose the code \(grant.program) runs; grant the exact command instead")
        }
    }
    return warnings
}

/// Warnings for `fs` grants that cover one of `files` (the grants file, the module): peon-wasm refuses every guest
/// call on them whatever the grants say (``HostFiles``), so such a grant is wider than it can ever act, and the
/// operator may have meant something narrower.
package func hostFilesCovered(by grants: Grants, files: [(what: String, path: String)]) -> [String] {
    var warnings: [String] = []
    for (index, grant) in grants.fileSystem.enumerated() {
        for file in files {
            let canonical = HostFiles.canonical(file.path)
            guard let pattern = grant.paths.first(where: { globMatches(canonical, pattern: $0) }) else { continue }
            warnings.append("grant fs[\(index)] (\(grant.source)) `\(pattern)` covers \(file.what) \(canonical); a run refuses every "
                + "guest call on it (a module must not rewrite what decides for it), but narrow the grant to what the module needs")
        }
    }
    return warnings
}

/// Warnings for `fs` grants that name nothing on this machine: an exact path that is not there (unless the grant may
/// create it, and its folder is there), or a pattern whose fixed folder (the part before its first `*`, `?`, `[` or
/// `{`) is not there. The usual cause is a relative path written from the repository root, where paths are resolved
/// against the grants file's folder (`policies/`): such a grant allows nothing a module will ask for, and the run's
/// first call is a `denied` that looks like a policy decision. A warning, not an error: the file may appear later.
package func missingGrantedPaths(in grants: Grants, exists: (String) -> Bool = { access($0, F_OK) == 0 }) -> [String] {
    var warnings: [String] = []
    for (index, grant) in grants.fileSystem.enumerated() {
        let creates = grant.access.contains(.write) || grant.access.contains(.append)
        for pattern in grant.paths {
            let fixed: String
            if let special = pattern.firstIndex(where: { "*?[{".contains($0) }) {
                // The folder that holds the first pattern component.
                let head = pattern[..<special]
                guard let slash = head.lastIndex(of: "/") else { continue }
                fixed = slash == head.startIndex ? "/" : String(head[..<slash])
            } else if creates {
                fixed = (pattern as NSString).deletingLastPathComponent
            } else {
                fixed = pattern
            }
            if exists(fixed) { continue }
            let what = fixed == pattern ? "it does not exist" : "\(fixed) does not exist"
            warnings.append("grant fs[\(index)] (\(grant.source)) `\(pattern)`: \(what); relative paths in grants are resolved "
                + "against the grants file's folder, not the current one: check the path (a file created later is fine)")
        }
    }
    return warnings
}

private func actionCovered(_ action: String, by actions: [String]) -> Bool {
    actions.contains { $0 == action || ($0.hasSuffix(".*") && action.hasPrefix($0.dropLast())) }
}

/// The answer of `policy explain`.
package struct PolicyExplanation: Sendable, Hashable {
    /// Whether the engine allows the request (before rate limits and approval).
    package var isAllowed: Bool
    /// Human-readable lines: the request as the engine saw it, the verdict, the deciding line and the
    /// grant conditions, or for a denial the grants of the same kind and why each does not apply.
    package var lines: [String]
}

/// Turns the CLI's `ACTION RESOURCE` into the engine's object with the same parsers a run uses
/// (``GuestPath``, ``CanonicalURL``, ``ProgramPath``, ``DatabaseName``), so `policy explain` asks exactly
/// the question the mediator would: `fs.read a/../b` → `fs:/WD/b`, `http.GET HTTP://X.org/%7Eu` →
/// `http:http://x.org/~u`, `db.read analytics/orders` → `db:analytics/orders`, `db.open analytics` →
/// `db:analytics`, `exec.run /usr/bin/wc` → `exec:/usr/bin/wc`. A resource may also carry its kind
/// (`fs:/a`). `nil` when the action is not one peon-wasm asks or the resource does not parse
/// (``policyObjectOrReason(action:resource:workingDirectory:)`` says which).
package func policyObject(action: String, resource: String, workingDirectory: String) -> String? {
    try? policyObjectOrReason(action: action, resource: resource, workingDirectory: workingDirectory).get()
}

/// Why `action` and `resource` cannot make a request (a message for the command line).
package struct PolicyObjectProblem: Error, Sendable {
    /// What is wrong, and what is expected instead.
    package var message: String
}

/// The actions the host asks policy about, by kind: what `policy explain` accepts (an `http` action is `http.`
/// and a method in capitals).
package let explainableActions: [String: [String]] = [
    "fs": FileSystemAccess.allCases.map(\.rawValue),
    "db": ["open"] + DatabaseOperation.allCases.map(\.rawValue),
    "exec": ["run"],
]

/// ``policyObject(action:resource:workingDirectory:)`` with the reason when there is none: an action the host never
/// asks about (`fs.raed`) is named as such rather than answered "deny".
package func policyObjectOrReason(action: String, resource: String, workingDirectory: String) -> Result<String, PolicyObjectProblem> {
    let expected = "fs.read|write|append|list|remove, http.METHOD (e.g. http.GET), db.open|read|insert|update|delete|schema or exec.run"
    // The audit log's CALL column names the host call; policy decides its action. A call name given here is answered
    // with the action(s) it asks about.
    let callActions = [
        "fs.read-dir": "fs.list", "http.send": "http.METHOD (the request's method, e.g. http.GET)",
        "db.query": "db.open, then db.read (and the other table actions its SQL needs) on each table",
        "db.execute": "db.open, then db.read|insert|update|delete|schema on each table its SQL touches",
    ]
    if let actions = callActions[action] {
        return .failure(PolicyObjectProblem(message: "'\(action)' is a host call, as the audit log names it; policy decides its action: \(actions)"))
    }
    let parts = action.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
    guard parts.count == 2, ["fs", "http", "db", "exec"].contains(parts[0]) else {
        return .failure(PolicyObjectProblem(message: "'\(action)' is not an action the host asks about; give \(expected)"))
    }
    let (kind, verb) = (parts[0], parts[1])
    if kind == "http" {
        guard !verb.isEmpty, verb.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) }) else {
            return .failure(PolicyObjectProblem(message: "'\(action)': an http action is http. and a method in capitals, such as http.GET"))
        }
    } else if let verbs = explainableActions[kind], !verbs.contains(verb) {
        return .failure(PolicyObjectProblem(message: "'\(action)' is not an action the host asks about; a \(kind) action is \(kind).\(verbs.joined(separator: "|"))"))
    }
    // `fs:/a`, `db:x/t`, `exec:/p`, `http:https://h/`; a bare `http://h/` starts with `http:` too.
    let prefixed = resource.hasPrefix(kind + ":") && !(kind == "http" && resource.hasPrefix("http://"))
    let text = prefixed ? String(resource.dropFirst(kind.count + 1)) : resource
    do throws(HostError) {
        switch kind {
        case "fs":
            let base = try GuestPath(parsing: workingDirectory, relativeTo: nil)
            return .success(Resource.file(try GuestPath(parsing: text, relativeTo: base)).description)
        case "http":
            return .success(Resource.url(try CanonicalURL(parsing: text)).description)
        case "db":
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try DatabaseName(parsing: String(parts[0]))
            return .success(parts.count == 2 ? Resource.table(name, String(parts[1])).description : Resource.database(name).description)
        default:
            return .success(Resource.program(try ProgramPath(parsing: text)).description)
        }
    } catch {
        let what = switch kind {
        case "fs": "a path"
        case "http": "an http or https URL"
        case "db": "DATABASE or DATABASE/TABLE"
        default: "an absolute program path"
        }
        // A URL that parses but is refused (a `;` in its path) is an http URL all the same: say that it is refused.
        let scheme = text.prefix(8).lowercased()
        let refused = kind == "http" && (scheme.hasPrefix("http://") || scheme.hasPrefix("https://"))
        return .failure(PolicyObjectProblem(message: refused
            ? "'\(resource)' would be refused before any decision for \(action): \(error.message)"
            : "'\(resource)' is not \(what) for \(action): \(error.message)"))
    }
}

/// Explains the decision for one request on `snapshot`.
///
/// `labels` are the information-flow labels the run is taken to hold (`--labels`): a sink the policy allows
/// is then refused, as in a run, unless every grant behind it clears them, and the explanation names the
/// clearance each grant would need. They are also the `r.ctx.labels` a model sees.
package func explainPolicy(
    snapshot: PolicySnapshot, module: String, action: String, object: String, arguments: [String],
    labels: [String] = []
) -> PolicyExplanation {
    let held = Set(labels)
    let request = PolicyRequest(subject: module, object: object, action: action,
                                arguments: ArgumentVector.encode(arguments),
                                context: ["labels": .string(held.sorted().joined(separator: ",")), "first_use": .bool(false),
                                          "hour": .number(0), "weekday": .number(1), "run": .string("explain"), "sha256": .string("")])
    let verdict = snapshot.decide(request)
    var lines = ["request: sub=\(module) obj=\(object) act=\(action) args=\(request.arguments)"
                    + (held.isEmpty ? "" : " labels=\(held.sorted().joined(separator: ","))"),
                 "policy version: \(verdict.version)"]
    var references: [CompiledGrants.GrantReference] = []
    if let compiled = snapshot.compiled, let rule = verdict.rule {
        for (reference, _) in compiled.conditions(for: rule) where !references.contains(reference) { references.append(reference) }
    }
    if verdict.isAllowed, FlowRole(action: action).isSink {
        let grants = references.compactMap { reference in
            snapshot.compiled.map { GrantClearance(source: $0.source(of: reference), clearance: Set($0.clearance(of: reference))) }
        }
        if let denial = labelFlowDenial(held: held, origin: { _ in "given with --labels" }, action: action, resource: object,
                                        grants: grants) {
            lines.append("deny: " + denial.message)
            lines.append("  the policy alone allows it: " + verdict.reason)
            return PolicyExplanation(isAllowed: false, lines: lines)
        }
    }
    lines.append((verdict.isAllowed ? "allow: " : "deny: ") + verdict.reason)
    if let compiled = snapshot.compiled {
        if verdict.isAllowed {
            // The deciding line's grants, then every other grant covering the request: a run applies the
            // labels, rate and approval of them all (``CompiledGrants/coveringReferences(subject:object:action:arguments:)``).
            var covering = verdict.rule.map { compiled.references(for: $0) } ?? []
            for reference in compiled.coveringReferences(subject: module, object: object, action: action,
                                                         arguments: request.arguments) where !covering.contains(reference) {
                covering.append(reference)
            }
            for reference in covering {
                let conditions = compiled.conditions(of: reference)
                var notes: [String] = []
                let labels = compiled.labels(of: reference)
                if !labels.isEmpty, FlowRole(action: action).isSource { notes.append("data read carries labels \(labels.joined(separator: ","))") }
                if let rate = conditions.rate { notes.append("rate limit \(rate)") }
                switch conditions.approval {
                case .never: break
                case .everyCall: notes.append("each call needs approval (--approver)")
                case .firstUse: notes.append("a first use needs approval (--approver)")
                }
                if !notes.isEmpty { lines.append("  grant \(reference) (\(compiled.source(of: reference))): \(notes.joined(separator: "; "))") }
            }
        } else if !verdict.isAllowed {
            let kind = action.split(separator: ".").first.map(String.init) ?? action
            // One line per grant and resource: a grant allowing `read` and `list` compiles to a policy line for each
            // action, and was explained twice ("it allows fs.read, not fs.write", "it allows fs.list, not fs.write").
            var groups: [(key: [String], origin: String, actions: [String])] = []
            var groupIndex: [[String]: Int] = [:]  // where each key's group is (a list search was quadratic in the grants)
            for rule in compiled.rules where rule[2].hasPrefix(kind + ".") {
                let references = compiled.references(for: rule)
                // A line no single grant wrote (`db.open`, implied by every `[[db]]` grant on that database) was shown with
                // an empty name ("not : it allows db.open").
                let origin = references.isEmpty
                    ? "the implied \(rule[2]) line for \(rule[1])"
                    : references.map { "\($0) (\(compiled.source(of: $0)))" }.joined(separator: ", ")
                let key = [origin, rule[0], rule[1], rule[3]]
                if let index = groupIndex[key] {
                    if !groups[index].actions.contains(rule[2]) { groups[index].actions.append(rule[2]) }
                } else {
                    groupIndex[key] = groups.count
                    groups.append((key, origin, [rule[2]]))
                }
            }
            for group in groups {
                let (ruleModule, pattern, arguments) = (group.key[1], group.key[2], group.key[3])
                var why: [String] = []
                if ruleModule != module { why.append("it is for module \(ruleModule)") }
                if !group.actions.contains(action) {
                    why.append("it allows \(group.actions.joined(separator: " and ")), not \(action)")
                }
                if !globMatches(object, pattern: pattern) { why.append("\(object) does not match \(pattern)") }
                if !ArgumentVector.matches(request.arguments, patterns: arguments) {
                    why.append("the arguments \(request.arguments) do not match \(arguments)")
                }
                // A grant that matches was overruled: by the deny line the verdict names, or by the model's matcher.
                let overruled = verdict.rule != nil ? "matches, but the deny line above overrules it" : "matches, but the model's matcher refused it"
                lines.append("  not \(group.origin): " + (why.isEmpty ? overruled : why.joined(separator: "; ")))
            }
            if groups.isEmpty { lines.append("  no grant mentions \(kind) at all (default deny)") }
        }
    }
    return PolicyExplanation(isAllowed: verdict.isAllowed, lines: lines)
}
