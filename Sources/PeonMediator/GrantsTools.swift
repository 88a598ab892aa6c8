// The logic behind `peon-wasm grants check` and `peon-wasm policy explain`, kept here (engine-free)
// so it is tested with the mediator; the CLI only reads files and prints.

import Crypto

/// Lowercase hex SHA-256 of `bytes` (a module's identity in grants pins and the audit log).
public func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// The `peon:host` functions and the policy actions each can ask for.
public enum HostImports {
    /// `(import module, field)` → the actions a call through it is decided on. `log` needs none.
    public static let actions: [String: [String: [String]]] = [
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
public struct GrantsCheckReport: Sendable, Hashable {
    /// One `peon:host` import and whether a grant can ever allow it.
    public struct Line: Sendable, Hashable {
        /// `peon:host/fs@0.1.0#read`.
        public var importName: String
        /// `granted`, `not granted (every call will be denied)`, `no grant needed` or `unknown import`.
        public var status: String
        /// The grants that can allow it (`fs[0] (g.toml:12)`).
        public var grants: [String]
    }

    /// One line per `peon:host` import, in the module's order.
    public var imports: [Line]
    /// Grants the module cannot use, and unknown `peon:host` imports.
    public var warnings: [String]
    /// Whether the module has an import the host does not know (it will not load).
    public var hasUnknownImports: Bool
}

/// Checks a module's imports against grants.
public func checkGrants(imports: [(module: String, name: String)], grants: Grants) -> GrantsCheckReport {
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
        var granting: [String] = []
        for rule in compiled.rules where actionCovered(rule[2], by: actions) {
            for reference in compiled.origins[rule] ?? [] {
                let label = "\(reference) (\(compiled.source(of: reference)))"
                if !granting.contains(label) { granting.append(label) }
            }
        }
        lines.append(.init(importName: name,
                           status: granting.isEmpty ? "not granted (every call will be denied)" : "granted",
                           grants: granting))
    }
    var unused: [String] = []
    var unusedActions: [String: [String]] = [:]
    for rule in compiled.rules where !actionCovered(rule[2], by: Array(usedActions)) {
        for reference in compiled.origins[rule] ?? [] {
            let label = "\(reference) (\(compiled.source(of: reference)))"
            if !unused.contains(label) { unused.append(label) }
            if !(unusedActions[label]?.contains(rule[2]) ?? false) { unusedActions[label, default: []].append(rule[2]) }
        }
    }
    for label in unused {
        warnings.append("grant \(label) allows \(unusedActions[label, default: []].joined(separator: ", ")), which the module never calls")
    }
    return GrantsCheckReport(imports: lines, warnings: warnings, hasUnknownImports: unknown)
}

private func actionCovered(_ action: String, by actions: [String]) -> Bool {
    actions.contains { $0 == action || ($0.hasSuffix(".*") && action.hasPrefix($0.dropLast())) }
}

/// The answer of `policy explain`.
public struct PolicyExplanation: Sendable, Hashable {
    /// Whether the engine allows the request (before rate limits and approval).
    public var isAllowed: Bool
    /// Human-readable lines: the request as the engine saw it, the verdict, the deciding line and the
    /// grant conditions, or for a denial the grants of the same kind and why each does not apply.
    public var lines: [String]
}

/// Turns the CLI's `ACTION RESOURCE` into the engine's object: `fs.read /a` → `fs:/a` (relative paths
/// against `workingDirectory`), `http.GET URL` → `http:` + canonical URL, `db.read analytics/orders`
/// → `db:analytics/orders`, `exec.run /usr/bin/wc` → `exec:/usr/bin/wc`. An argument that already
/// starts with its kind (`fs:/a`) is taken as is. `nil` when the action is not one peon-wasm asks.
public func policyObject(action: String, resource: String, workingDirectory: String) -> String? {
    guard let kind = action.split(separator: ".").first.map(String.init),
          ["fs", "http", "db", "exec"].contains(kind)
    else { return nil }
    if resource.hasPrefix(kind + ":") { return resource }
    switch kind {
    case "fs":
        return "fs:" + normalizeLexically(resource.hasPrefix("/") ? resource : workingDirectory + "/" + resource)
    case "http":
        return canonicalHTTPURL(resource).map { "http:" + $0 }
    case "db":
        return "db:" + resource
    default:
        return "exec:" + resource
    }
}

/// Explains the decision for one request on `snapshot`.
public func explainPolicy(
    snapshot: PolicySnapshot, module: String, action: String, object: String, arguments: [String]
) -> PolicyExplanation {
    let request = PolicyRequest(subject: module, object: object, action: action,
                                arguments: ArgumentVector.encode(arguments))
    let verdict = snapshot.decide(request)
    var lines = ["request: sub=\(module) obj=\(object) act=\(action) args=\(request.arguments)",
                 "policy version: \(verdict.version)"]
    lines.append((verdict.isAllowed ? "allow: " : "deny: ") + verdict.reason)
    if let compiled = snapshot.compiled {
        if verdict.isAllowed, let rule = verdict.rule {
            for (reference, conditions) in compiled.conditions(for: rule) {
                var notes: [String] = []
                if let rate = conditions.rate { notes.append("rate limit \(rate)") }
                if conditions.approval { notes.append("each call needs approval (--approver)") }
                if !notes.isEmpty { lines.append("  grant \(reference) (\(compiled.source(of: reference))): \(notes.joined(separator: "; "))") }
            }
        } else if !verdict.isAllowed {
            let kind = action.split(separator: ".").first.map(String.init) ?? action
            var any = false
            for rule in compiled.rules where rule[2].hasPrefix(kind + ".") {
                any = true
                var why: [String] = []
                if rule[0] != module { why.append("it is for module \(rule[0])") }
                if rule[2] != action { why.append("it allows \(rule[2]), not \(action)") }
                if !globMatches(object, pattern: rule[1]) { why.append("\(object) does not match \(rule[1])") }
                if !ArgumentVector.matches(request.arguments, patterns: rule[3]) {
                    why.append("the arguments \(request.arguments) do not match \(rule[3])")
                }
                let origin = (compiled.origins[rule] ?? []).map { "\($0) (\(compiled.source(of: $0)))" }
                    .joined(separator: ", ")
                lines.append("  not \(origin): " + (why.isEmpty ? "matches, but the model's matcher refused it" : why.joined(separator: "; ")))
            }
            if !any { lines.append("  no grant mentions \(kind) at all (default deny)") }
        }
    }
    return PolicyExplanation(isAllowed: verdict.isAllowed, lines: lines)
}
