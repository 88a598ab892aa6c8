// Compiling a matcher expression tree into closures, once per snapshot. Names are resolved,
// arities checked and patterns compiled here, so that enforce never parses anything.

/// The per-call state a compiled matcher reads: the request and the policy row being tried.
final class Evaluation {
    let request: [PolicyValue]
    /// The request's time (Unix seconds, UTC), read once, for temporal role links.
    let time: Int64
    var row = -1
    var policy: [String] = []

    init(request: [PolicyValue], time: Int64) {
        self.request = request
        self.time = time
    }
}

typealias Evaluator = @Sendable (Evaluation) throws(PolicyError) -> PolicyValue

struct MatcherCompiler {
    var requestFields: [String]
    var policyFields: [String]
    var roleArity: [String: Int]
    var functions: FunctionRegistry
    /// The `p` rows, in evaluation order, for per-row pattern and `eval()` compilation.
    var rows: [PolicyLine]
    var roleGraphs: [String: RoleGraph]
    var locator: TextLocator
    /// Set while compiling an `eval()` rule: the row it belongs to, whose `p.` fields become constants.
    var fixedRow: [String]? = nil

    func compile(_ expression: Expression) throws(PolicyError) -> Evaluator {
        let locator = self.locator
        switch expression {
        case .literal(let value, _):
            return { _ in value }

        case .path(let path, let offset):
            return try compilePath(path, offset: offset)

        case .not(let inner, let offset):
            let operand = try compile(inner)
            return { context throws(PolicyError) in
                guard case .bool(let value) = try operand(context) else {
                    throw locator.error(at: offset, "'!' needs a boolean operand")
                }
                return .bool(!value)
            }

        case .negate(let inner, let offset):
            let operand = try compile(inner)
            return { context throws(PolicyError) in
                guard case .number(let value) = try operand(context) else {
                    throw locator.error(at: offset, "unary '-' needs a number")
                }
                return .number(-value)
            }

        case .and(let lhs, let rhs):
            let left = try compile(lhs), right = try compile(rhs)
            let leftOffset = lhs.offset, rightOffset = rhs.offset
            return { context throws(PolicyError) in
                guard case .bool(let first) = try left(context) else { throw locator.error(at: leftOffset, "'&&' needs boolean operands") }
                if !first { return .bool(false) }
                guard case .bool(let second) = try right(context) else { throw locator.error(at: rightOffset, "'&&' needs boolean operands") }
                return .bool(second)
            }

        case .or(let lhs, let rhs):
            let left = try compile(lhs), right = try compile(rhs)
            let leftOffset = lhs.offset, rightOffset = rhs.offset
            return { context throws(PolicyError) in
                guard case .bool(let first) = try left(context) else { throw locator.error(at: leftOffset, "'||' needs boolean operands") }
                if first { return .bool(true) }
                guard case .bool(let second) = try right(context) else { throw locator.error(at: rightOffset, "'||' needs boolean operands") }
                return .bool(second)
            }

        case .membership(let needle, let items, _):
            let value = try compile(needle)
            var list: [Evaluator] = []
            for item in items { list.append(try compile(item)) }
            return { [list] context throws(PolicyError) in
                let candidate = try value(context)
                for item in list where Self.same(candidate, try item(context)) { return .bool(true) }
                return .bool(false)
            }

        case .binary(let op, let lhs, let rhs, let offset):
            // The common exact-match term `r.x == p.y` compares the strings directly.
            if op == .equal || op == .notEqual, fixedRow == nil,
               let (request, field) = Self.exactTerm(lhs, rhs, requestFields: requestFields, policyFields: policyFields)
            {
                let wantEqual = op == .equal
                return { context in
                    guard case .string(let text) = context.request[request] else { return .bool(!wantEqual) }
                    return .bool(sameBytes(text, context.policy[field]) == wantEqual)
                }
            }
            let left = try compile(lhs), right = try compile(rhs)
            return { context throws(PolicyError) in
                try Self.apply(op, try left(context), try right(context), at: offset, locator)
            }

        case .call(let name, let arguments, let offset):
            return try compileCall(name, arguments, offset: offset)
        }
    }

    private func compilePath(_ path: [String], offset: Int) throws(PolicyError) -> Evaluator {
        let locator = self.locator
        let dotted = path.joined(separator: ".")
        guard path.count >= 2 else {
            throw locator.error(at: offset, "unknown name '\(dotted)'; expected r.<field>, p.<field>, true, false or a function call")
        }
        switch path[0] {
        case "r":
            guard let field = requestFields.firstIndex(of: path[1]) else {
                throw locator.error(at: offset, "undefined request field '\(dotted)'; request_definition has r = \(requestFields.joined(separator: ", "))")
            }
            let attributes = Array(path.dropFirst(2))
            if attributes.isEmpty { return { context in context.request[field] } }
            return { context throws(PolicyError) in
                var value = context.request[field]
                var reached = "r.\(path[1])"
                for attribute in attributes {
                    guard case .object(let object) = value else {
                        throw locator.error(at: offset, "\(reached) is a \(value.typeName), not an object, so it has no attribute '\(attribute)'")
                    }
                    guard let next = object[attribute] else {
                        throw locator.error(at: offset, "\(reached) has no attribute '\(attribute)'")
                    }
                    value = next
                    reached += ".\(attribute)"
                }
                return value
            }
        case "p":
            guard let field = policyFields.firstIndex(of: path[1]) else {
                throw locator.error(at: offset, "undefined policy field '\(dotted)'; policy_definition has p = \(policyFields.joined(separator: ", "))")
            }
            guard path.count == 2 else {
                throw locator.error(at: offset, "policy fields are strings and have no attributes ('\(dotted)')")
            }
            if let fixedRow {
                let value = PolicyValue.string(fixedRow[field])
                return { _ in value }
            }
            return { context in .string(context.policy[field]) }
        default:
            throw locator.error(at: offset, "unknown name '\(dotted)'; matcher m can use r.<field> and p.<field>")
        }
    }

    private func compileCall(_ name: String, _ arguments: [Expression], offset: Int) throws(PolicyError) -> Evaluator {
        let locator = self.locator
        func checkArity(_ expected: Int) throws(PolicyError) {
            guard arguments.count == expected else {
                throw locator.error(at: offset, "\(name)() takes \(expected) argument\(expected == 1 ? "" : "s"), found \(arguments.count)")
            }
        }
        if name == "eval" {
            try checkArity(1)
            guard case .path(let path, let argumentOffset) = arguments[0], path.count == 2, path[0] == "p",
                  let field = policyFields.firstIndex(of: path[1]) else {
                throw locator.error(at: arguments[0].offset, "eval() takes a policy field, as in eval(p.rule), naming a field of policy_definition")
            }
            _ = argumentOffset
            guard fixedRow == nil else { throw locator.error(at: offset, "eval() cannot be used inside an eval() rule") }
            var rules: [Evaluator] = []
            for row in rows {
                let text = row.values[field]
                let column = field < row.columns.count ? row.columns[field] : 0
                let ruleLocator = TextLocator.singleLine(source: row.source, line: row.line, column: column, count: text.count)
                let expression = try MatcherParser.parse(text, locator: ruleLocator)
                var inner = self
                inner.locator = ruleLocator
                inner.fixedRow = row.values
                rules.append(try inner.compile(expression))
            }
            return { [rules] context throws(PolicyError) in
                guard context.row >= 0, context.row < rules.count else {
                    throw locator.error(at: offset, "eval() needs at least one policy rule to evaluate")
                }
                return try rules[context.row](context)
            }
        }
        if let arity = roleArity[name] {
            try checkArity(arity)
            var evaluated: [Evaluator] = []
            for argument in arguments { evaluated.append(try compile(argument)) }
            let graph = roleGraphs[name] ?? RoleGraph(links: [])
            let offsets = arguments.map(\.offset)
            return { [evaluated] context throws(PolicyError) in
                var names: [String] = []
                for (index, argument) in evaluated.enumerated() {
                    guard case .string(let text) = try argument(context) else {
                        throw locator.error(at: offsets[index], "\(name)() needs string arguments")
                    }
                    names.append(text)
                }
                return .bool(graph.hasLink(names[0], names[1], domain: names.count > 2 ? names[2] : "", at: context.time))
            }
        }
        guard let entry = functions.entries[name] else {
            let known = (functions.names + roleArity.keys.sorted() + ["eval"]).joined(separator: ", ")
            throw locator.error(at: offset, "unknown function '\(name)'; expected one of \(known)")
        }
        try checkArity(entry.arity)
        var evaluated: [Evaluator] = []
        for argument in arguments { evaluated.append(try compile(argument)) }
        switch entry.body {
        case .custom(let body):
            return { [evaluated] context throws(PolicyError) in
                var values: [PolicyValue] = []
                for argument in evaluated { values.append(try argument(context)) }
                do {
                    return try body(values)
                } catch {
                    throw locator.error(at: offset, "\(name)() failed: \(error)")
                }
            }
        case .builtin(let matcher):
            return try compileBuiltin(matcher, arguments, evaluated, offset: offset)
        }
    }

    private func compileBuiltin(
        _ matcher: BuiltinMatcher, _ arguments: [Expression], _ evaluated: [Evaluator], offset: Int
    ) throws(PolicyError) -> Evaluator {
        let locator = self.locator
        let name = matcher.rawValue
        let subject = evaluated[0]
        let subjectOffset = arguments[0].offset, patternOffset = arguments[1].offset

        @Sendable func string(_ value: PolicyValue, _ at: Int) throws(PolicyError) -> String {
            guard case .string(let text) = value else {
                throw locator.error(at: at, "\(name)() needs string arguments, found a \(value.typeName)")
            }
            return text
        }
        @Sendable func run(_ pattern: CompiledPattern, _ context: Evaluation) throws(PolicyError) -> PolicyValue {
            guard case .string(let text) = try subject(context) else {
                throw locator.error(at: subjectOffset, "\(name)() needs string arguments")
            }
            do {
                return .bool(try pattern.matches(text))
            } catch {
                throw locator.error(at: subjectOffset, "\(name)(): \(error.message)")
            }
        }

        // A constant pattern: compile once, now.
        var constant: String? = nil
        if case .literal(.string(let text), _) = arguments[1] { constant = text }
        if let fixedRow, case .path(let path, _) = arguments[1], path.count == 2, path[0] == "p",
           let field = policyFields.firstIndex(of: path[1]) {
            constant = fixedRow[field]
        }
        if let constant {
            let pattern: CompiledPattern
            do {
                pattern = try CompiledPattern.compile(matcher, constant)
            } catch {
                throw locator.error(at: patternOffset, "invalid \(name) pattern '\(constant)': \(error.message)")
            }
            return { context throws(PolicyError) in try run(pattern, context) }
        }

        // A pattern from a policy field: compile it for every row at load time.
        if case .path(let path, _) = arguments[1], path.count == 2, path[0] == "p",
           let field = policyFields.firstIndex(of: path[1]) {
            var patterns: [CompiledPattern] = []
            for row in rows {
                do {
                    patterns.append(try CompiledPattern.compile(matcher, row.values[field]))
                } catch {
                    throw PolicyError(
                        source: row.source, line: row.line, column: field < row.columns.count ? row.columns[field] : 0,
                        message: "invalid \(name) pattern '\(row.values[field])' (field p.\(path[1])): \(error.message)")
                }
            }
            return { [patterns] context throws(PolicyError) in
                if context.row >= 0, context.row < patterns.count {
                    return try run(patterns[context.row], context)
                }
                let text = context.policy[field]
                return try run(try Self.pattern(matcher, text, locator.error(at: patternOffset, "invalid \(name) pattern '\(text)'")), context)
            }
        }

        // A pattern computed per request: compile per call (bounded like every pattern).
        let patternEvaluator = evaluated[1]
        return { context throws(PolicyError) in
            let text = try string(try patternEvaluator(context), patternOffset)
            return try run(try Self.pattern(matcher, text, locator.error(at: patternOffset, "invalid \(name) pattern '\(text)'")), context)
        }
    }

    /// Compiles a pattern, turning a syntax error into `failure` with the reason appended.
    static func pattern(_ matcher: BuiltinMatcher, _ text: String, _ failure: PolicyError) throws(PolicyError) -> CompiledPattern {
        let result: Result<CompiledPattern, RegexSyntaxError> = Result { () throws(RegexSyntaxError) in
            try CompiledPattern.compile(matcher, text)
        }
        switch result {
        case .success(let pattern): return pattern
        case .failure(let error):
            var failure = failure
            failure.message += ": \(error.message)"
            throw failure
        }
    }

    // MARK: Semantics of values

    /// `r.x == p.y` (either order): the request field and policy field it compares.
    static func exactTerm(
        _ lhs: Expression, _ rhs: Expression, requestFields: [String], policyFields: [String]
    ) -> (request: Int, field: Int)? {
        func request(_ expression: Expression) -> Int? {
            guard case .path(let path, _) = expression, path.count == 2, path[0] == "r" else { return nil }
            return requestFields.firstIndex(of: path[1])
        }
        func policy(_ expression: Expression) -> Int? {
            guard case .path(let path, _) = expression, path.count == 2, path[0] == "p" else { return nil }
            return policyFields.firstIndex(of: path[1])
        }
        if let r = request(lhs), let p = policy(rhs) { return (r, p) }
        if let r = request(rhs), let p = policy(lhs) { return (r, p) }
        return nil
    }

    /// Equality as Casbin's evaluators see it: same type and same value; strings compared exactly.
    static func same(_ lhs: PolicyValue, _ rhs: PolicyValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): sameBytes(a, b)
        case (.number(let a), .number(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.object(let a), .object(let b)): a == b
        default: false
        }
    }

    static func apply(
        _ op: BinaryOperator, _ lhs: PolicyValue, _ rhs: PolicyValue, at offset: Int, _ locator: TextLocator
    ) throws(PolicyError) -> PolicyValue {
        switch op {
        case .equal: return .bool(same(lhs, rhs))
        case .notEqual: return .bool(!same(lhs, rhs))
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            let order: Int
            switch (lhs, rhs) {
            case (.number(let a), .number(let b)): order = a < b ? -1 : (a == b ? 0 : 1)
            case (.string(let a), .string(let b)):
                order = a.utf8.elementsEqual(b.utf8) ? 0 : (a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1)
            default:
                throw locator.error(at: offset, "cannot compare a \(lhs.typeName) with a \(rhs.typeName) using '\(op.rawValue)'")
            }
            switch op {
            case .less: return .bool(order < 0)
            case .lessOrEqual: return .bool(order <= 0)
            case .greater: return .bool(order > 0)
            default: return .bool(order >= 0)
            }
        case .add:
            switch (lhs, rhs) {
            case (.number(let a), .number(let b)): return .number(a + b)
            case (.string(let a), .string(let b)): return .string(a + b)
            default: throw locator.error(at: offset, "cannot add a \(lhs.typeName) and a \(rhs.typeName)")
            }
        case .subtract, .multiply, .divide, .remainder:
            guard case .number(let a) = lhs, case .number(let b) = rhs else {
                throw locator.error(at: offset, "'\(op.rawValue)' needs numbers, found a \(lhs.typeName) and a \(rhs.typeName)")
            }
            switch op {
            case .subtract: return .number(a - b)
            case .multiply: return .number(a * b)
            default:
                guard b != 0 else { throw locator.error(at: offset, "division by zero") }
                return .number(op == .divide ? a / b : a.truncatingRemainder(dividingBy: b))
            }
        }
    }
}
