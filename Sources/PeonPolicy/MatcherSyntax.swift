// The matcher language: a lexer and a recursive-descent parser producing an expression tree, which
// `MatcherCompiler` turns into closures once per snapshot.
//
// Precedence, loosest first: `||`, `&&`, comparisons and `in`, `+ -`, `* / %`, unary `! -`,
// then literals, `r.field[.attribute...]`, `p.field`, calls and parentheses.

/// Maps character offsets of an expression's text back to file positions for error messages.
struct TextLocator: Sendable {
    var source: String
    var positions: [SourcePosition]
    /// Where an empty text sits (its line and column), so that an error about it still names a line.
    var start = SourcePosition(line: 0, column: 0)

    func error(at offset: Int, _ message: String) -> PolicyError {
        let position: SourcePosition
        if offset < positions.count {
            position = positions[offset]
        } else if let last = positions.last {
            position = SourcePosition(line: last.line, column: last.column + 1 + (offset - positions.count))
        } else {
            position = start
        }
        return PolicyError(source: source, line: position.line, column: position.column, message: message)
    }

    /// A locator for a text that sits on one line starting at `column`.
    static func singleLine(source: String, line: Int, column: Int, count: Int) -> TextLocator {
        TextLocator(source: source, positions: (0..<count).map { SourcePosition(line: line, column: column + $0) },
                    start: SourcePosition(line: line, column: column))
    }
}

enum BinaryOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
}

/// A parsed matcher expression; every node keeps the character offset it starts at.
indirect enum Expression: Sendable {
    case literal(PolicyValue, offset: Int)
    case path([String], offset: Int)
    case not(Expression, offset: Int)
    case negate(Expression, offset: Int)
    case binary(BinaryOperator, Expression, Expression, offset: Int)
    case and(Expression, Expression)
    case or(Expression, Expression)
    case membership(Expression, [Expression], offset: Int)
    case call(String, [Expression], offset: Int)

    var offset: Int {
        switch self {
        case .literal(_, let offset), .path(_, let offset), .not(_, let offset), .negate(_, let offset),
            .binary(_, _, _, let offset), .membership(_, _, let offset), .call(_, _, let offset):
            return offset
        case .and(let lhs, _), .or(let lhs, _):
            return lhs.offset
        }
    }
}

struct MatcherParser {
    private enum Token: Equatable {
        case identifier(String)
        case number(Double)
        case string(String)
        case symbol(String)
        case end
    }

    private var tokens: [(token: Token, offset: Int)] = []
    private var index = 0
    private var depth = 0
    private var operators = 0
    private let locator: TextLocator
    /// Bounds on an expression's shape. Compiled matchers evaluate recursively, possibly on a
    /// small-stack thread, so depth (nesting plus operator chains) must stay small; real matchers
    /// use a handful of each.
    static let maxDepth = 64
    static let maxOperators = 256

    /// Counts one more operator node, refusing expressions past `maxOperators`.
    private mutating func countOperator(at offset: Int) throws(PolicyError) {
        operators += 1
        if operators > Self.maxOperators {
            throw locator.error(at: offset, "expression too long (over \(Self.maxOperators) operators); split it or use eval() rules")
        }
    }

    /// The characters after a backslash that Python's string literals read as an escape (pycasbin evaluates matchers
    /// as Python) while Go Casbin reads the backslash as itself: `\\ \' \" \a \b \f \n \r \t \v`, octal digits,
    /// `\x`, `\u`, `\U`, `\N`.
    static let ambiguousEscapes: Set<Character> = ["\\", "'", "\"", "a", "b", "f", "n", "r", "t", "v", "0", "1", "2", "3", "4", "5", "6", "7",
                                                   "x", "u", "U", "N"]

    /// Parses `text` completely; errors are located with `locator`.
    static func parse(_ text: String, locator: TextLocator) throws(PolicyError) -> Expression {
        var parser = MatcherParser(locator: locator)
        try parser.tokenize(Array(text))
        if parser.tokens.first?.token == .end {
            throw locator.error(at: 0, "empty expression; expected a matcher such as r.sub == p.sub")
        }
        let expression = try parser.parseOr()
        if case let (token, offset) = parser.tokens[parser.index], token != .end {
            throw locator.error(at: offset, "unexpected \(describe(token)); expected an operator or the end of the expression")
        }
        return expression
    }

    private init(locator: TextLocator) {
        self.locator = locator
    }

    private static func describe(_ token: Token) -> String {
        switch token {
        case .identifier(let name): "'\(name)'"
        case .number(let value): "number \(value)"
        case .string(let value): "string '\(value)'"
        case .symbol(let symbol): "'\(symbol)'"
        case .end: "end of expression"
        }
    }

    private mutating func tokenize(_ characters: [Character]) throws(PolicyError) {
        var offset = 0
        while offset < characters.count {
            let character = characters[offset]
            let start = offset
            if character.isWhitespace {
                offset += 1
                continue
            }
            if character.isLetter || character == "_" {
                var name = ""
                while offset < characters.count, characters[offset].isLetter || characters[offset].isNumber || characters[offset] == "_" {
                    name.append(characters[offset])
                    offset += 1
                }
                tokens.append((.identifier(name), start))
                continue
            }
            if character.isASCII, character.isNumber {
                var text = ""
                while offset < characters.count, characters[offset].isASCII, characters[offset].isNumber || characters[offset] == "." {
                    text.append(characters[offset])
                    offset += 1
                }
                guard let value = Double(text) else { throw locator.error(at: start, "malformed number '\(text)'") }
                tokens.append((.number(value), start))
                continue
            }
            if character == "'" || character == "\"" {
                var text = ""
                offset += 1
                var closed = false
                while offset < characters.count {
                    let next = characters[offset]
                    if next == character {
                        closed = true
                        offset += 1
                        break
                    }
                    // A backslash before a character no string escape uses is itself (`'^/v1\.0/\d+$'` is the regex the
                    // author wrote), as both pycasbin (Python keeps unknown escapes) and Go Casbin since v2.134 (which
                    // reads every backslash as itself) read it; peon-wasm used to drop it, and `\.` became `.`. Before a
                    // character that Python reads as an escape (`\\`, `\n`, `\1`, ...) the two disagree (one backslash
                    // or a control character against two characters): refused, so no policy means one thing here and
                    // another there. A string cannot hold its own quote; write the other one (`"it's"`).
                    if next == "\\", offset + 1 < characters.count, Self.ambiguousEscapes.contains(characters[offset + 1]) {
                        throw locator.error(at: offset, "'\\\(characters[offset + 1])' in a matcher string is an escape to pycasbin but two characters to Go Casbin (since v2.134); write it so both read it alike: a literal character, a character class such as [.] in a regex, or the value in the policy file")
                    }
                    text.append(next)
                    offset += 1
                }
                guard closed else { throw locator.error(at: start, "unterminated string; expected a closing \(character)") }
                tokens.append((.string(text), start))
                continue
            }
            let pair = offset + 1 < characters.count ? String([character, characters[offset + 1]]) : ""
            if ["&&", "||", "==", "!=", "<=", ">="].contains(pair) {
                tokens.append((.symbol(pair), start))
                offset += 2
                continue
            }
            switch character {
            case "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",", ".":
                tokens.append((.symbol(String(character)), start))
                offset += 1
            case "&": throw locator.error(at: start, "unexpected '&'; expected '&&'")
            case "|": throw locator.error(at: start, "unexpected '|'; expected '||'")
            case "=": throw locator.error(at: start, "unexpected '='; expected '==' (comparison)")
            default: throw locator.error(at: start, "unexpected character '\(character)'")
            }
        }
        tokens.append((.end, characters.count))
    }

    private var current: Token { tokens[index].token }
    private var currentOffset: Int { tokens[index].offset }

    private mutating func accept(_ symbol: String) -> Bool {
        if current == .symbol(symbol) {
            index += 1
            return true
        }
        return false
    }

    private mutating func expect(_ symbol: String, _ what: String) throws(PolicyError) {
        guard accept(symbol) else {
            throw locator.error(at: currentOffset, "unexpected \(Self.describe(current)); expected \(what)")
        }
    }

    private mutating func parseOr() throws(PolicyError) -> Expression {
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw locator.error(at: currentOffset, "expression nested too deeply (over \(Self.maxDepth) levels)") }
        var lhs = try parseAnd()
        while accept("||") {
            try countOperator(at: currentOffset)
            lhs = .or(lhs, try parseAnd())
        }
        return lhs
    }

    private mutating func parseAnd() throws(PolicyError) -> Expression {
        var lhs = try parseComparison()
        while accept("&&") {
            try countOperator(at: currentOffset)
            lhs = .and(lhs, try parseComparison())
        }
        return lhs
    }

    private mutating func parseComparison() throws(PolicyError) -> Expression {
        let lhs = try parseAdditive()
        let offset = currentOffset
        if case .identifier("in") = current {
            try countOperator(at: offset)
            index += 1
            // Casbin accepts the list in parentheses or (as Go Casbin's govaluate arrays) in brackets.
            let closing: String
            if accept("[") {
                closing = "]"
            } else {
                try expect("(", "'(' or '[' to start the list after 'in', as in r.sub in ('alice', 'bob')")
                closing = ")"
            }
            var items: [Expression] = []
            if !accept(closing) {
                repeat { items.append(try parseOr()) } while accept(",")
                try expect(closing, "',' or '\(closing)' in the list after 'in'")
            }
            return .membership(lhs, items, offset: offset)
        }
        for symbol in ["==", "!=", "<=", ">=", "<", ">"] where accept(symbol) {
            try countOperator(at: offset)
            let rhs = try parseAdditive()
            return .binary(BinaryOperator(rawValue: symbol) ?? .equal, lhs, rhs, offset: offset)
        }
        return lhs
    }

    private mutating func parseAdditive() throws(PolicyError) -> Expression {
        var lhs = try parseMultiplicative()
        while true {
            let offset = currentOffset
            if current == .symbol("+") || current == .symbol("-") { try countOperator(at: offset) }
            if accept("+") {
                lhs = .binary(.add, lhs, try parseMultiplicative(), offset: offset)
            } else if accept("-") {
                lhs = .binary(.subtract, lhs, try parseMultiplicative(), offset: offset)
            } else {
                return lhs
            }
        }
    }

    private mutating func parseMultiplicative() throws(PolicyError) -> Expression {
        var lhs = try parseUnary()
        while true {
            let offset = currentOffset
            if current == .symbol("*") || current == .symbol("/") || current == .symbol("%") { try countOperator(at: offset) }
            if accept("*") {
                lhs = .binary(.multiply, lhs, try parseUnary(), offset: offset)
            } else if accept("/") {
                lhs = .binary(.divide, lhs, try parseUnary(), offset: offset)
            } else if accept("%") {
                lhs = .binary(.remainder, lhs, try parseUnary(), offset: offset)
            } else {
                return lhs
            }
        }
    }

    private mutating func parseUnary() throws(PolicyError) -> Expression {
        let offset = currentOffset
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw locator.error(at: offset, "expression nested too deeply (over \(Self.maxDepth) levels)") }
        if current == .symbol("!") || current == .symbol("-") { try countOperator(at: offset) }
        if accept("!") { return .not(try parseUnary(), offset: offset) }
        if accept("-") { return .negate(try parseUnary(), offset: offset) }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(PolicyError) -> Expression {
        let offset = currentOffset
        switch current {
        case .number(let value):
            index += 1
            return .literal(.number(value), offset: offset)
        case .string(let value):
            index += 1
            return .literal(.string(value), offset: offset)
        case .identifier("true"):
            index += 1
            return .literal(.bool(true), offset: offset)
        case .identifier("false"):
            index += 1
            return .literal(.bool(false), offset: offset)
        case .identifier(let name):
            index += 1
            if accept("(") {
                var arguments: [Expression] = []
                try countOperator(at: offset)
                if !accept(")") {
                    repeat { arguments.append(try parseOr()) } while accept(",")
                    try expect(")", "',' or ')' after a function argument")
                }
                return .call(name, arguments, offset: offset)
            }
            // `r_sub` is `r.sub` and `p_obj` is `p.obj`, as Go Casbin and pycasbin read them (both rewrite `r.sub` to
            // `r_sub` before evaluating, so a matcher may be written either way).
            var path = [name]
            for prefix in ["r", "p"] where name.hasPrefix(prefix + "_") && name.count > prefix.count + 1 {
                path = [prefix, String(name.dropFirst(prefix.count + 1))]
            }
            while accept(".") {
                guard case .identifier(let part) = current else {
                    throw locator.error(at: currentOffset, "unexpected \(Self.describe(current)); expected a field name after '.'")
                }
                index += 1
                path.append(part)
            }
            return .path(path, offset: offset)
        case .symbol("("):
            index += 1
            let inner = try parseOr()
            try expect(")", "')'")
            return inner
        default:
            throw locator.error(at: offset, "unexpected \(Self.describe(current)); expected a value, r.<field>, p.<field>, a function call or '('")
        }
    }
}
