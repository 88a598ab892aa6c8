// Checking a tool call's arguments against the tool's declared input schema, before the module runs.
//
// MCP says servers "MUST validate all tool inputs". A subset of JSON Schema is checked here, the keywords a tool's
// input schema uses to say what it takes: `type` (one or a list), `properties`, `required`, `additionalProperties`,
// `items`, `enum`, `const`, `minLength`/`maxLength` (in Unicode scalars), `minimum`/`maximum` and their exclusive
// forms, `minItems`/`maxItems`, and `allOf`/`anyOf`/`oneOf`/`not`. Other keywords (`pattern`, `format`, `$ref`, ...)
// are not checked here: the module still checks its input itself. Beside `patternProperties` or `prefixItems`, which
// change what `additionalProperties` and `items` cover, those two are not checked either (they would refuse what the
// schema allows). Integers compare exactly. A call that does not fit is answered with `isError` and what does not
// fit, and the module is not run (nothing ran, so the audit log has no entry of it).

import MCP

/// Checks tool arguments against a JSON Schema subset (see the file's header).
enum ToolInputSchema {
    /// How deeply schemas and values are followed; deeper is refused as not fitting (a schema is the operator's, and
    /// a value is bounded by the message size, but recursion must stay bounded either way).
    static let maxDepth = 64

    /// Why `value` does not fit `schema` (the first reason found, naming where: `arguments.items[2]`), or `nil`.
    static func problem(_ value: Value, _ schema: Value, at path: String = "arguments", depth: Int = 0) -> String? {
        guard depth < maxDepth else { return "\(path) nests deeper than \(maxDepth) levels" }
        guard case .object(let rules) = schema else {
            // `true` (or anything that is not an object) admits everything; `false` nothing.
            if case .bool(false) = schema { return "\(path) is not allowed" }
            return nil
        }
        if let types = rules["type"], let reason = typeProblem(value, types, path) { return reason }
        if let allowed = rules["enum"], case .array(let options) = allowed, !options.contains(where: { same($0, value) }) {
            return "\(path) must be one of \(options.map(render).joined(separator: ", ")); got \(render(value))"
        }
        if let constant = rules["const"], !same(constant, value) {
            return "\(path) must be \(render(constant)); got \(render(value))"
        }
        switch value {
        case .string(let text):
            let length = text.unicodeScalars.count
            if let minimum = number(rules["minLength"]), Double(length) < minimum {
                return "\(path) must be at least \(Int(minimum)) characters long"
            }
            if let maximum = number(rules["maxLength"]), Double(length) > maximum {
                return "\(path) must be at most \(Int(maximum)) characters long"
            }
        case .int, .double:
            if let bound = rules["minimum"], let order = compare(value, bound), order < 0 { return "\(path) must be at least \(render(bound))" }
            if let bound = rules["maximum"], let order = compare(value, bound), order > 0 { return "\(path) must be at most \(render(bound))" }
            if let bound = rules["exclusiveMinimum"], let order = compare(value, bound), order <= 0 { return "\(path) must be more than \(render(bound))" }
            if let bound = rules["exclusiveMaximum"], let order = compare(value, bound), order >= 0 { return "\(path) must be less than \(render(bound))" }
        case .array(let items):
            if let minimum = number(rules["minItems"]), Double(items.count) < minimum { return "\(path) must have at least \(Int(minimum)) items" }
            if let maximum = number(rules["maxItems"]), Double(items.count) > maximum { return "\(path) must have at most \(Int(maximum)) items" }
            // `items` means something else beside `prefixItems` (the items after them): not checked then.
            if let itemSchema = rules["items"], rules["prefixItems"] == nil {
                for (index, item) in items.enumerated() {
                    if let reason = problem(item, itemSchema, at: "\(path)[\(index)]", depth: depth + 1) { return reason }
                }
            }
        case .object(let members):
            if case .array(let required)? = rules["required"] {
                for case .string(let name) in required where members[name] == nil {
                    return "\(path) lacks the required member '\(name)'"
                }
            }
            var properties: [String: Value] = [:]
            if case .object(let declared)? = rules["properties"] { properties = declared }
            for name in members.keys.sorted() {
                guard let member = members[name] else { continue }
                let memberPath = "\(path).\(name)"
                if let propertySchema = properties[name] {
                    if let reason = problem(member, propertySchema, at: memberPath, depth: depth + 1) { return reason }
                } else if let additional = rules["additionalProperties"], rules["patternProperties"] == nil {
                    // Beside `patternProperties` (not checked here), `additionalProperties` covers only the names no
                    // pattern matches: not checked then, rather than refusing what a pattern allows.
                    if case .bool(false) = additional {
                        let known = properties.keys.sorted().joined(separator: ", ")
                        return "\(path) has no member '\(name)'\(known.isEmpty ? "" : " (it takes \(known))")"
                    }
                    if let reason = problem(member, additional, at: memberPath, depth: depth + 1) { return reason }
                }
            }
        default:
            break
        }
        if case .array(let all)? = rules["allOf"] {
            for part in all { if let reason = problem(value, part, at: path, depth: depth + 1) { return reason } }
        }
        if case .array(let any)? = rules["anyOf"], !any.contains(where: { problem(value, $0, at: path, depth: depth + 1) == nil }) {
            return "\(path) fits none of the schemas anyOf lists"
        }
        if case .array(let one)? = rules["oneOf"] {
            let fitting = one.filter { problem(value, $0, at: path, depth: depth + 1) == nil }.count
            if fitting != 1 { return "\(path) fits \(fitting) of the schemas oneOf lists, not exactly one" }
        }
        if let negated = rules["not"], problem(value, negated, at: path, depth: depth + 1) == nil {
            return "\(path) fits the schema it must not"
        }
        return nil
    }

    /// Why `value` is none of the JSON types `types` names (a name or a list of names), or `nil`.
    private static func typeProblem(_ value: Value, _ types: Value, _ path: String) -> String? {
        let names: [String]
        switch types {
        case .string(let name): names = [name]
        case .array(let list): names = list.compactMap { if case .string(let name) = $0 { name } else { nil } }
        default: return nil
        }
        if names.contains(where: { fits(value, $0) }) { return nil }
        return "\(path) must be \(names.map { article($0) }.joined(separator: " or ")); got \(kind(of: value))"
    }

    /// Whether `value` is of the JSON Schema type `name` (an integer is a number; 2.0 is an integer).
    private static func fits(_ value: Value, _ name: String) -> Bool {
        switch (name, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("string", .data), ("array", .array), ("object", .object):
            return true
        case ("number", .int), ("number", .double), ("integer", .int):
            return true
        case ("integer", .double(let x)):
            // A whole number written as a fraction (2.0); not one past 2^53, which a `Double` has already rounded (a
            // client's 9007199254740993 would reach the module as another number).
            return x.isFinite && x.rounded() == x && abs(x) <= 9_007_199_254_740_992
        default:
            return false
        }
    }

    private static func article(_ name: String) -> String {
        switch name {
        case "array", "object", "integer": "an \(name)"
        case "null": "null"
        default: "a \(name)"
        }
    }

    /// How a value is named in a message (`an integer`, `null`).
    static func kind(of value: Value) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string, .data: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    private static func number(_ value: Value?) -> Double? {
        switch value {
        case .int(let x)?: Double(x)
        case .double(let x)?: x
        default: nil
        }
    }

    /// How two numbers compare (-1, 0, 1): two integers exactly (a `Double` cannot tell 2^53 from 2^53 + 1), otherwise
    /// as `Double`; `nil` when either is not a number.
    private static func compare(_ a: Value, _ b: Value) -> Int? {
        if case .int(let x) = a, case .int(let y) = b { return x < y ? -1 : (x == y ? 0 : 1) }
        guard let x = number(a), let y = number(b), !x.isNaN, !y.isNaN else { return nil }
        return x < y ? -1 : (x == y ? 0 : 1)
    }

    /// JSON equality, numbers by value (1 equals 1.0; two integers exactly).
    private static func same(_ a: Value, _ b: Value) -> Bool {
        if let order = compare(a, b) { return order == 0 }
        switch (a, b) {
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { same(value, $0) } ?? false }
        default: return a == b
        }
    }

    /// A short rendering of a value for a message.
    private static func render(_ value: Value) -> String {
        switch value {
        case .null: return "null"
        case .bool(let x): return String(x)
        case .int(let x): return String(x)
        case .double(let x): return String(x)
        case .string(let text): return "\"" + String(text.prefix(64)) + (text.count > 64 ? "…" : "") + "\""
        case .data: return "binary data"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
