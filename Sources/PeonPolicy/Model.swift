// Reading Casbin model files (`.conf`) and policy files (`.csv`).

/// A position in a source text.
struct SourcePosition: Sendable, Hashable {
    var line: Int
    var column: Int
}

/// One `key = value` entry of a model file, with the position of every character of the value (a
/// value may span continuation lines), so matcher errors can point at the exact column.
struct ModelEntry: Sendable {
    var key: String
    var value: String
    var keyPosition: SourcePosition
    var valuePositions: [SourcePosition]

    func position(ofCharacter offset: Int) -> SourcePosition {
        if offset < valuePositions.count { return valuePositions[offset] }
        if let last = valuePositions.last { return SourcePosition(line: last.line, column: last.column + 1) }
        return SourcePosition(line: keyPosition.line, column: keyPosition.column + key.count + 3)
    }
}

/// How the matched policies' effects combine into one decision.
enum PolicyEffect: Sendable {
    /// `some(where (p.eft == allow))`: allow if any matching rule allows.
    case allowOverride
    /// `!some(where (p.eft == deny))`: allow unless a matching rule denies.
    case denyOverride
    /// `some(where (p.eft == allow)) && !some(where (p.eft == deny))`.
    case allowAndDeny
    /// `priority(p.eft) || deny`: the first matching rule (in priority order) decides.
    case priority
    /// `subjectPriority(p.eft) || deny`: as `priority`, with the rules ordered by how specific their
    /// subject is in the `g` role hierarchy (a user's own rules before its roles' rules).
    case subjectPriority
}

/// A parsed model: the field names of each definition, the role definitions, the effect and the
/// matcher text (compiled later, together with the policy).
struct Model: Sendable {
    var source: String
    var requestFields: [String: [String]] = [:]
    var policyFields: [String: [String]] = [:]
    var roleArity: [String: Int] = [:]
    /// The role definitions whose links carry a validity window (`g = _, _, (_, _)`).
    var timedRoles: Set<String> = []
    var effect: PolicyEffect = .allowOverride
    var matcher: ModelEntry
    var entries: [String: ModelEntry]

    /// Pattern functions for role names and domains, from `[role_matching]` (see `RolePatterns`).
    var rolePatterns: [String: RolePatterns] = [:]

    /// RBAC invariants from `[constraint_definition]`, checked against the role links at load time.
    var constraints: [RoleConstraint] = []

    static let sections = [
        "request_definition", "policy_definition", "role_definition", "role_matching", "constraint_definition", "policy_effect", "matchers",
    ]

    init(text: String, source: String) throws(PolicyError) {
        self.source = source
        func fail(_ position: SourcePosition, _ message: String) -> PolicyError {
            PolicyError(source: source, line: position.line, column: position.column, message: message)
        }
        var entries: [String: ModelEntry] = [:]
        var matchingEntries: [String: ModelEntry] = [:]
        var constraintEntries: [ModelEntry] = []
        var section: String? = nil
        var pending: ModelEntry? = nil
        var continuing = false

        func finish(_ entry: ModelEntry, in section: String) throws(PolicyError) {
            let entry = Self.removingComment(entry)
            let prefix: String
            switch section {
            case "request_definition": prefix = "r"
            case "policy_definition": prefix = "p"
            case "role_definition", "role_matching": prefix = "g"
            case "constraint_definition": prefix = "c"
            case "policy_effect": prefix = "e"
            default: prefix = "m"
            }
            let suffix = entry.key.dropFirst(prefix.count)
            guard entry.key.hasPrefix(prefix), suffix.isEmpty || suffix.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw fail(entry.keyPosition, "unknown key '\(entry.key)' in [\(section)]; expected \(prefix), \(prefix)2, ...")
            }
            if section == "constraint_definition" {
                guard !constraintEntries.contains(where: { $0.key == entry.key }) else {
                    throw fail(entry.keyPosition, "'\(entry.key)' is defined twice in [constraint_definition]")
                }
                constraintEntries.append(entry)
                return
            }
            if section == "role_matching" {
                guard matchingEntries[entry.key] == nil else { throw fail(entry.keyPosition, "'\(entry.key)' is defined twice in [role_matching]") }
                matchingEntries[entry.key] = entry
                return
            }
            if entries[entry.key] != nil {
                throw fail(entry.keyPosition, "'\(entry.key)' is defined twice")
            }
            entries[entry.key] = entry
        }

        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (lineIndex, rawLine) in lines.enumerated() {
            let lineNumber = lineIndex + 1
            var line = Array(rawLine)
            if line.last == "\r" { line.removeLast() }
            var start = 0
            while start < line.count, line[start] == " " || line[start] == "\t" { start += 1 }
            var end = line.count
            while end > start, line[end - 1] == " " || line[end - 1] == "\t" { end -= 1 }
            let continues = end > start && line[end - 1] == "\\"
            let contentEnd = continues ? end - 1 : end

            if continuing, var entry = pending {
                // A continuation line: its trimmed text joins the value.
                for offset in start..<contentEnd {
                    entry.value.append(line[offset])
                    entry.valuePositions.append(SourcePosition(line: lineNumber, column: offset + 1))
                }
                pending = entry
                continuing = continues
                if !continues, let section {
                    try finish(entry, in: section)
                    pending = nil
                }
                continue
            }
            if start == end || line[start] == "#" || line[start] == ";" { continue }
            if line[start] == "[" {
                guard line[end - 1] == "]" else { throw fail(SourcePosition(line: lineNumber, column: end + 1), "expected ']' to close the section name") }
                let name = String(line[(start + 1)..<(end - 1)]).trimmingSpaces
                guard Self.sections.contains(name) else {
                    throw fail(SourcePosition(line: lineNumber, column: start + 2),
                               "unknown section [\(name)]; expected one of " + Self.sections.map { "[\($0)]" }.joined(separator: ", "))
                }
                section = name
                continue
            }
            guard let currentSection = section else {
                throw fail(SourcePosition(line: lineNumber, column: start + 1), "expected a section header such as [request_definition] before the first key")
            }
            guard let equals = line[start..<contentEnd].firstIndex(of: "=") else {
                throw fail(SourcePosition(line: lineNumber, column: contentEnd + 1), "expected 'key = value'")
            }
            let key = String(line[start..<equals]).trimmingSpaces
            guard !key.isEmpty else { throw fail(SourcePosition(line: lineNumber, column: start + 1), "expected a key before '='") }
            var valueStart = equals + 1
            while valueStart < contentEnd, line[valueStart] == " " || line[valueStart] == "\t" { valueStart += 1 }
            var entry = ModelEntry(key: key, value: "", keyPosition: SourcePosition(line: lineNumber, column: start + 1), valuePositions: [])
            for offset in valueStart..<max(valueStart, contentEnd) {
                entry.value.append(line[offset])
                entry.valuePositions.append(SourcePosition(line: lineNumber, column: offset + 1))
            }
            if continues {
                pending = entry
                continuing = true
            } else {
                try finish(entry, in: currentSection)
            }
        }
        if let entry = pending, let section { try finish(entry, in: section) }

        func required(_ key: String, _ section: String) throws(PolicyError) -> ModelEntry {
            guard let entry = entries[key] else {
                throw PolicyError(source: source, line: 0, column: 0, message: "missing '\(key) = ...' in [\(section)]")
            }
            return entry
        }
        func fields(_ entry: ModelEntry) throws(PolicyError) -> [String] {
            var names: [String] = []
            var offset = 0
            for part in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
                let name = String(part).trimmingSpaces
                let leading = part.prefix { $0 == " " || $0 == "\t" }.count
                let position = entry.position(ofCharacter: offset + leading)
                guard let first = name.first, first.isLetter || first == "_",
                      name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                    throw fail(position, "expected a field name (letters, digits, '_'), found '\(name)'")
                }
                guard !names.contains(name) else { throw fail(position, "field '\(name)' is listed twice") }
                names.append(name)
                offset += part.count + 1
            }
            return names
        }

        _ = try required("r", "request_definition")
        _ = try required("p", "policy_definition")
        let effectEntry = try required("e", "policy_effect")
        matcher = try required("m", "matchers")
        self.entries = entries
        for (key, entry) in entries {
            switch key.first {
            case "r": requestFields[key] = try fields(entry)
            case "p": policyFields[key] = try fields(entry)
            case "g":
                // `_, _` or `_, _, _` (with a domain), optionally followed by `(_, _)`: a validity window.
                var compact = entry.value.filter { !$0.isWhitespace }
                if compact.hasSuffix(",(_,_)") {
                    compact.removeLast(",(_,_)".count)
                    timedRoles.insert(key)
                }
                let parts = compact.split(separator: ",", omittingEmptySubsequences: false)
                guard parts.allSatisfy({ $0 == "_" }), parts.count == 2 || parts.count == 3 else {
                    throw fail(entry.position(ofCharacter: 0),
                               "expected '_, _' or '_, _, _' (with a domain), optionally followed by ', (_, _)' (a validity window), for role definition '\(key)'")
                }
                roleArity[key] = parts.count
            default: break
            }
        }
        // pycasbin rewrites `p.eft` to `p_eft` before evaluating, so models spell it either way.
        // `[role_matching]`: `g2 = keyMatch2` (role names are keyMatch2 patterns), `g = _, keyMatch2`
        // (domains are), `g = keyMatch2, keyMatch2` (both). Casbin ignores the section; Go Casbin
        // users register the same functions from code.
        for (key, entry) in matchingEntries {
            guard roleArity[key] != nil else {
                throw fail(entry.keyPosition, "[role_matching] names '\(key)', which [role_definition] does not define")
            }
            let parts = entry.value.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
            var functions: [BuiltinPatternFunction?] = []
            for part in parts {
                if part == "_" {
                    functions.append(nil)
                } else if let function = BuiltinPatternFunction(rawValue: part) {
                    functions.append(function)
                } else {
                    throw fail(entry.position(ofCharacter: 0),
                               "expected a pattern function (\(BuiltinPatternFunction.allCases.map(\.rawValue).joined(separator: ", "))) or '_' for the role names, then optionally one for the domains; found '\(part)'")
                }
            }
            guard functions.count == 1 || functions.count == 2 else {
                throw fail(entry.position(ofCharacter: 0), "expected 'NAMES' or 'NAMES, DOMAINS' pattern functions for '\(key)'")
            }
            if functions.count == 2, functions[1] != nil, roleArity[key] != 3 {
                throw fail(entry.position(ofCharacter: 0), "'\(key)' has no domain ('_, _'), so its domains cannot be patterns")
            }
            rolePatterns[key] = RolePatterns(names: functions[0], domains: functions.count == 2 ? functions[1] : nil)
        }
        for entry in constraintEntries {
            guard roleArity["g"] != nil else {
                throw fail(entry.keyPosition, "[constraint_definition] constrains role links, but [role_definition] defines no 'g'")
            }
            constraints.append(try RoleConstraint(entry, source: source))
        }
        let normalized = effectEntry.value.filter { !$0.isWhitespace }.replacing("p_eft", with: "p.eft")
        switch normalized {
        case "some(where(p.eft==allow))": effect = .allowOverride
        case "!some(where(p.eft==deny))": effect = .denyOverride
        case "some(where(p.eft==allow))&&!some(where(p.eft==deny))": effect = .allowAndDeny
        case "priority(p.eft)||deny": effect = .priority
        case "subjectPriority(p.eft)||deny": effect = .subjectPriority
        default:
            throw fail(effectEntry.position(ofCharacter: 0),
                       "unsupported policy effect '\(effectEntry.value)'; expected some(where (p.eft == allow)), !some(where (p.eft == deny)), some(where (p.eft == allow)) && !some(where (p.eft == deny)), priority(p.eft) || deny or subjectPriority(p.eft) || deny")
        }
    }
}

extension Model {
    /// The entry without a trailing comment: Casbin ignores everything from a `#` in a model value
    /// (`e = some(where (p.eft == allow)) # allow-override`), and Go Casbin also a `;` comment. We cut
    /// at the first `#` or `;` outside a quoted string (neither is an operator of the matcher
    /// language) and drop the spaces before it.
    static func removingComment(_ entry: ModelEntry) -> ModelEntry {
        var quote: Character? = nil
        var cut: Int? = nil
        for (offset, character) in entry.value.enumerated() {
            if let open = quote {
                if character == open { quote = nil }
                continue
            }
            if character == "'" || character == "\"" {
                quote = character
            } else if character == "#" || character == ";" {
                cut = offset
                break
            }
        }
        guard var end = cut else { return entry }
        let characters = Array(entry.value)
        while end > 0, characters[end - 1] == " " || characters[end - 1] == "\t" { end -= 1 }
        var result = entry
        result.value = String(characters[0..<end])
        result.valuePositions = Array(entry.valuePositions.prefix(end))
        return result
    }
}

/// One line of a policy file: its type (`p`, `g`, ...), its values and where it came from.
struct PolicyLine: Sendable {
    var key: String
    var values: [String]
    var source: String
    var line: Int
    /// The 1-based column of each value (0 when the line was added programmatically).
    var columns: [Int]
}

enum PolicyCSV {
    /// Parses Casbin's CSV policy format: one rule per line, fields separated by commas with the
    /// surrounding white space (spaces, tabs, no-break spaces: any Unicode white space) trimmed, a field in double quotes may contain commas (`""` is a quote),
    /// blank lines and lines starting with `#` are ignored.
    static func parse(_ text: String, source: String) throws(PolicyError) -> [PolicyLine] {
        var result: [PolicyLine] = []
        for (lineIndex, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let lineNumber = lineIndex + 1
            var characters = Array(rawLine)
            if characters.last == "\r" { characters.removeLast() }
            let firstNonSpace = characters.firstIndex { $0 != " " && $0 != "\t" }
            guard let firstNonSpace, characters[firstNonSpace] != "#" else { continue }
            var fields: [String] = []
            var columns: [Int] = []
            var index = 0
            func fail(_ column: Int, _ message: String) -> PolicyError {
                PolicyError(source: source, line: lineNumber, column: column, message: message)
            }
            while true {
                // Any Unicode white space around a field is trimmed, as Go Casbin (`strings.TrimSpace`) and pycasbin
                // (`str.strip`) trim it: an invisible no-break space after a comma kept `alice` from matching.
                while index < characters.count, characters[index].isWhitespace { index += 1 }
                columns.append(index + 1)
                var field = ""
                if index < characters.count, characters[index] == "\"" {
                    let open = index
                    index += 1
                    var closed = false
                    while index < characters.count {
                        if characters[index] == "\"" {
                            if index + 1 < characters.count, characters[index + 1] == "\"" {
                                field.append("\"")
                                index += 2
                                continue
                            }
                            index += 1
                            closed = true
                            break
                        }
                        field.append(characters[index])
                        index += 1
                    }
                    guard closed else { throw fail(open + 1, "unterminated quoted field; expected a closing '\"'") }
                    while index < characters.count, characters[index].isWhitespace { index += 1 }
                    guard index == characters.count || characters[index] == "," else {
                        throw fail(index + 1, "expected ',' after a quoted field")
                    }
                } else {
                    while index < characters.count, characters[index] != "," {
                        if characters[index] == "\"" { throw fail(index + 1, "a '\"' may only start a field; quote the whole field and write \"\" for a quote") }
                        field.append(characters[index])
                        index += 1
                    }
                    field = field.trimmingWhitespace
                }
                fields.append(field)
                if index >= characters.count { break }
                index += 1  // the comma
            }
            let key = fields.removeFirst()
            let keyColumn = columns.removeFirst()
            guard !key.isEmpty else { throw fail(keyColumn, "expected a policy type such as 'p' or 'g' at the start of the line") }
            result.append(PolicyLine(key: key, values: fields, source: source, line: lineNumber, columns: columns))
        }
        return result
    }
}

extension String {
    /// The string without leading and trailing Unicode white space (spaces, tabs, no-break spaces, ...).
    var trimmingWhitespace: String {
        var characters = Substring(self)
        while let first = characters.first, first.isWhitespace { characters.removeFirst() }
        while let last = characters.last, last.isWhitespace { characters.removeLast() }
        return String(characters)
    }

    /// The string without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var characters = Substring(self)
        while let first = characters.first, first == " " || first == "\t" { characters.removeFirst() }
        while let last = characters.last, last == " " || last == "\t" { characters.removeLast() }
        return String(characters)
    }
}

/// One RBAC invariant from `[constraint_definition]`, over the direct `g` links (the roles a
/// subject is assigned, in any domain). A policy that breaks one does not load.
struct RoleConstraint: Sendable {
    enum Kind: Sendable {
        /// `sod("a", "b")`: no subject is assigned both roles.
        case separation(String, String)
        /// `sodMax(["a", "b", "c"], n)`: no subject is assigned more than n of the roles.
        case separationMax([String], Int)
        /// `roleMax("a", n)`: at most n subjects are assigned the role.
        case roleMax(String, Int)
        /// `rolePre("a", "b")`: every subject assigned a is also assigned b.
        case prerequisite(String, String)
    }

    var name: String
    var kind: Kind
    var position: SourcePosition

    /// Parses `name(arguments)`: string literals, a bracketed list of string literals, integers.
    init(_ entry: ModelEntry, source: String) throws(PolicyError) {
        name = entry.key
        position = entry.position(ofCharacter: 0)
        let text = Array(entry.value)
        var index = 0
        func fail(_ message: String) -> PolicyError {
            let at = entry.position(ofCharacter: min(index, max(text.count - 1, 0)))
            return PolicyError(source: source, line: at.line, column: at.column, message: message)
        }
        func skipSpaces() { while index < text.count, text[index] == " " || text[index] == "\t" { index += 1 } }
        enum Argument { case string(String), list([String]), number(Int) }
        func string() throws(PolicyError) -> String {
            guard index < text.count, text[index] == "\"" || text[index] == "'" else { throw fail("expected a quoted role name") }
            let quote = text[index]
            index += 1
            var value = ""
            while index < text.count, text[index] != quote {
                value.append(text[index])
                index += 1
            }
            guard index < text.count else { throw fail("unterminated string; expected a closing \(quote)") }
            index += 1
            return value
        }
        func argument() throws(PolicyError) -> Argument {
            skipSpaces()
            guard index < text.count else { throw fail("expected an argument") }
            if text[index] == "[" {
                index += 1
                var items: [String] = []
                skipSpaces()
                while index < text.count, text[index] != "]" {
                    items.append(try string())
                    skipSpaces()
                    if index < text.count, text[index] == "," { index += 1 }
                    skipSpaces()
                }
                guard index < text.count else { throw fail("expected ']' to close the list") }
                index += 1
                return .list(items)
            }
            if text[index].isASCII, text[index].isNumber {
                var digits = ""
                while index < text.count, text[index].isASCII, text[index].isNumber, digits.count < 9 {
                    digits.append(text[index])
                    index += 1
                }
                guard let value = Int(digits) else { throw fail("expected a small integer") }
                return .number(value)
            }
            return .string(try string())
        }
        skipSpaces()
        var function = ""
        while index < text.count, text[index].isLetter {
            function.append(text[index])
            index += 1
        }
        skipSpaces()
        guard index < text.count, text[index] == "(" else { throw fail("expected sod(...), sodMax(...), roleMax(...) or rolePre(...)") }
        index += 1
        var arguments: [Argument] = []
        skipSpaces()
        while index < text.count, text[index] != ")" {
            arguments.append(try argument())
            skipSpaces()
            if index < text.count, text[index] == "," { index += 1 }
            skipSpaces()
        }
        guard index < text.count else { throw fail("expected ')'") }
        index += 1
        skipSpaces()
        guard index == text.count else { throw fail("unexpected text after the constraint") }
        switch (function, arguments.count == 2 ? (arguments[0], arguments[1]) : nil) {
        case ("sod", (.string(let first), .string(let second))?): kind = .separation(first, second)
        case ("sodMax", (.list(let roles), .number(let limit))?): kind = .separationMax(roles, limit)
        case ("roleMax", (.string(let role), .number(let limit))?): kind = .roleMax(role, limit)
        case ("rolePre", (.string(let role), .string(let prerequisite))?): kind = .prerequisite(role, prerequisite)
        default:
            index = 0
            throw fail("expected sod(\"role\", \"role\"), sodMax([\"role\", ...], n), roleMax(\"role\", n) or rolePre(\"role\", \"required role\")")
        }
    }

    /// The first violation in `assigned` (subject → its directly assigned roles, subjects in first
    /// appearance order), described, or nil.
    func violation(_ assigned: [(subject: String, roles: Set<String>)]) -> String? {
        switch kind {
        case .separation(let first, let second):
            if let hit = assigned.first(where: { $0.roles.contains(first) && $0.roles.contains(second) }) {
                return "'\(hit.subject)' has both '\(first)' and '\(second)'"
            }
        case .separationMax(let roles, let limit):
            if let hit = assigned.first(where: { entry in roles.filter { entry.roles.contains($0) }.count > limit }) {
                return "'\(hit.subject)' has more than \(limit) of \(roles.map { "'\($0)'" }.joined(separator: ", "))"
            }
        case .roleMax(let role, let limit):
            let holders = assigned.filter { $0.roles.contains(role) }
            if holders.count > limit {
                return "\(holders.count) subjects have '\(role)', more than \(limit)"
            }
        case .prerequisite(let role, let prerequisite):
            if let hit = assigned.first(where: { $0.roles.contains(role) && !$0.roles.contains(prerequisite) }) {
                return "'\(hit.subject)' has '\(role)' without '\(prerequisite)'"
            }
        }
        return nil
    }
}
