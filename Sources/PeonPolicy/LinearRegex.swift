// A regular-expression matcher whose running time is linear in the text, for the RE2-style subset that
// Casbin policies use (`regexMatch`, and the patterns `keyMatch2`...`keyMatch5` build internally).
//
// Why our own: a policy author controls the pattern and a guest controls the text, so a backtracking
// engine (Foundation's `NSRegularExpression`, Swift `Regex`) can be made to run for minutes on
// `(a+)+$`. This engine is a "bit-state" backtracker (as in RE2): it explores the compiled program
// depth-first in priority order but never visits the same (instruction, position) pair twice, so a
// match costs at most `program.count * (text.count + 1)` steps, and it still yields leftmost-first
// submatches, which `keyMatch4` needs.
//
// Supported syntax: literals, `.`, `[...]`/`[^...]` with ranges, `\d \D \w \W \s \S`, escaped
// punctuation, `\n \t \r \f \v`, `^ $ \A \z`, groups `(...)` and `(?:...)`, alternation `|`,
// and the quantifiers `* + ? {n} {n,} {n,m}` with lazy `?` variants (counts up to 1000, as Go).
// Not supported (a load-time error, never a silent difference): flags such as `(?i)`, word
// boundaries, back-references, look-around, named classes `[[:alpha:]]` and Unicode classes `\p{..}`.

/// A set of Unicode scalars: ranges, possibly negated.
struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>]
    var negated: Bool

    func contains(_ scalar: UInt32) -> Bool {
        var found = false
        for range in ranges where range.contains(scalar) {
            found = true
            break
        }
        return found != negated
    }

    static let digits: [ClosedRange<UInt32>] = [0x30...0x39]
    static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    static let space: [ClosedRange<UInt32>] = [0x09...0x0A, 0x0C...0x0D, 0x20...0x20]
}

/// A syntax error in a regular expression: what went wrong and the scalar offset where it did.
struct RegexSyntaxError: Error, Sendable {
    var message: String
    var offset: Int
}

/// A compiled regular expression with a linear-time matcher.
struct LinearRegex: Sendable {
    private enum Instruction: Sendable {
        case literal(UInt32)  // one exact scalar: the common case, with no payload to retain
        case scalar(ScalarSet)
        case split(Int, Int)  // try the first, then the second
        case jump(Int)
        case save(Int)
        case textStart
        case textEnd
        case match
    }

    private indirect enum Node {
        case empty
        case scalar(ScalarSet)
        case concat([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?, greedy: Bool)
        case group(Node, capture: Int?)
        case textStart
        case textEnd
    }

    /// The largest number of (instruction, position) pairs one match may visit. Above it the
    /// matcher refuses (an error), so memory and time per call stay bounded.
    static let stateBudget = 1 << 25
    /// The largest compiled program accepted.
    static let maxProgram = 50_000

    private let program: [Instruction]
    /// The compiled program's length: a match on `n` characters costs at most `programSize * (n + 1)` steps.
    var programSize: Int { program.count }
    /// The number of capturing groups (not counting the whole match).
    let captureCount: Int
    private let startsAnchored: Bool
    /// For a pattern anchored at the start, the literal scalars every match begins with: a text
    /// without them is rejected before the matcher runs (most keyMatch2 rules fail right there).
    private let requiredPrefix: [UInt32]

    init(_ pattern: String) throws(RegexSyntaxError) {
        var parser = Parser(scalars: Array(pattern.unicodeScalars.map(\.value)))
        let node = try parser.parseAlternation()
        if parser.index < parser.scalars.count {
            throw RegexSyntaxError(message: "unexpected ')'", offset: parser.index)
        }
        captureCount = parser.captures
        var emitter = Emitter()
        emitter.emit(.save(0))
        try emitter.compile(node)
        emitter.emit(.save(1))
        emitter.emit(.match)
        program = emitter.program
        if case .textStart = Self.first(node) { startsAnchored = true } else { startsAnchored = false }
        var prefix: [UInt32] = []
        if startsAnchored {
            // Literal instructions right after `save(0), textStart`, before any branch, must match in order.
            var pc = 2
            while pc < program.count, case .literal(let scalar) = program[pc] {
                prefix.append(scalar)
                pc += 1
            }
        }
        requiredPrefix = prefix
    }

    private static func first(_ node: Node) -> Node? {
        switch node {
        case .concat(let nodes): return nodes.first.flatMap(first)
        case .group(let inner, _): return first(inner)
        default: return node
        }
    }

    /// Whether the pattern matches anywhere in `text`, given as scalar values.
    func matches(scalars text: [UInt32]) throws(RegexSyntaxError) -> Bool {
        try run(text, captures: false) != nil
    }

    /// Whether the pattern matches anywhere in `text` (Go's `regexp.MatchString`).
    func matches(_ text: String) throws(RegexSyntaxError) -> Bool {
        try run(Array(text.unicodeScalars.map(\.value)), captures: false) != nil
    }

    /// The leftmost-first submatches of the first match in `text`, or nil if there is none.
    /// Element 0 is the whole match; an unset group is nil.
    func submatches(_ text: String) throws(RegexSyntaxError) -> [String?]? {
        let scalars = Array(text.unicodeScalars)
        guard let slots = try run(scalars.map(\.value), captures: true) else { return nil }
        var result: [String?] = []
        for group in 0...captureCount {
            let start = slots[2 * group], end = slots[2 * group + 1]
            if start >= 0, end >= start {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[start..<end])
                result.append(String(view))
            } else {
                result.append(nil)
            }
        }
        return result
    }

    private enum Job {
        case explore(Int, Int)
        case restore(Int, Int)
    }

    private func run(_ text: [UInt32], captures: Bool) throws(RegexSyntaxError) -> [Int]? {
        if !requiredPrefix.isEmpty, !text.starts(with: requiredPrefix) { return nil }
        let width = text.count + 1
        let (states, overflow) = program.count.multipliedReportingOverflow(by: width)
        if overflow || states > Self.stateBudget {
            throw RegexSyntaxError(
                message: "text of \(text.count) characters is too long for this pattern (bound: \(Self.stateBudget) regex states)",
                offset: 0)
        }
        var visited = [UInt64](repeating: 0, count: (states + 63) / 64)
        var slots = [Int](repeating: -1, count: 2 * (captureCount + 1))
        var stack: [Job] = []
        let lastStart = startsAnchored ? 0 : text.count
        for start in 0...lastStart {
            stack.append(.explore(0, start))
            while let job = stack.popLast() {
                switch job {
                case .restore(let slot, let value):
                    slots[slot] = value
                case .explore(var pc, var position):
                    explore: while true {
                        let bit = pc * width + position
                        if visited[bit >> 6] & (1 << UInt64(bit & 63)) != 0 { break explore }
                        visited[bit >> 6] |= 1 << UInt64(bit & 63)
                        switch program[pc] {
                        case .literal(let scalar):
                            guard position < text.count, text[position] == scalar else { break explore }
                            pc += 1
                            position += 1
                        case .scalar(let set):
                            guard position < text.count, set.contains(text[position]) else { break explore }
                            pc += 1
                            position += 1
                        case .split(let preferred, let other):
                            stack.append(.explore(other, position))
                            pc = preferred
                        case .jump(let target):
                            pc = target
                        case .save(let slot):
                            if captures {
                                stack.append(.restore(slot, slots[slot]))
                                slots[slot] = position
                            }
                            pc += 1
                        case .textStart:
                            guard position == 0 else { break explore }
                            pc += 1
                        case .textEnd:
                            guard position == text.count else { break explore }
                            pc += 1
                        case .match:
                            return slots
                        }
                    }
                }
            }
        }
        return nil
    }

    // MARK: Compiling

    private struct Emitter {
        var program: [Instruction] = []

        mutating func emit(_ instruction: Instruction) {
            program.append(instruction)
        }

        mutating func compile(_ node: Node) throws(RegexSyntaxError) {
            if program.count > LinearRegex.maxProgram {
                throw RegexSyntaxError(message: "pattern too large (over \(LinearRegex.maxProgram) instructions)", offset: 0)
            }
            switch node {
            case .empty:
                break
            case .scalar(let set):
                if !set.negated, set.ranges.count == 1, set.ranges[0].lowerBound == set.ranges[0].upperBound {
                    emit(.literal(set.ranges[0].lowerBound))
                } else {
                    emit(.scalar(set))
                }
            case .textStart:
                emit(.textStart)
            case .textEnd:
                emit(.textEnd)
            case .concat(let nodes):
                for node in nodes { try compile(node) }
            case .group(let inner, let capture):
                if let capture { emit(.save(2 * capture)) }
                try compile(inner)
                if let capture { emit(.save(2 * capture + 1)) }
            case .alternation(let branches):
                var jumps: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = program.count
                        emit(.split(split + 1, -1))
                        try compile(branch)
                        jumps.append(program.count)
                        emit(.jump(-1))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try compile(branch)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repetition(let inner, let min, let max, let greedy):
                for _ in 0..<min { try compile(inner) }
                if let max {
                    // (inner (inner (...)?)?)? — each optional copy may be skipped.
                    var splits: [Int] = []
                    for _ in min..<max {
                        splits.append(program.count)
                        emit(.split(-1, -1))
                        try compile(inner)
                    }
                    for split in splits {
                        program[split] = greedy ? .split(split + 1, program.count) : .split(program.count, split + 1)
                    }
                } else {
                    let loop = program.count
                    emit(.split(-1, -1))
                    try compile(inner)
                    emit(.jump(loop))
                    program[loop] = greedy ? .split(loop + 1, program.count) : .split(program.count, loop + 1)
                }
            }
        }
    }

    // MARK: Parsing

    private struct Parser {
        let scalars: [UInt32]
        var index = 0
        var captures = 0
        var depth = 0

        private var current: UInt32? { index < scalars.count ? scalars[index] : nil }

        private func isAt(_ character: Character) -> Bool {
            current == character.unicodeScalars.first?.value
        }

        mutating func parseAlternation() throws(RegexSyntaxError) -> Node {
            depth += 1
            defer { depth -= 1 }
            if depth > 50 { throw RegexSyntaxError(message: "groups nested too deeply (over 50 levels)", offset: index) }
            var branches = [try parseConcatenation()]
            while isAt("|") {
                index += 1
                branches.append(try parseConcatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        private mutating func parseConcatenation() throws(RegexSyntaxError) -> Node {
            var nodes: [Node] = []
            while let scalar = current, scalar != 0x7C /* | */, scalar != 0x29 /* ) */ {
                let atom = try parseAtom()
                nodes.append(try parseQuantifiers(atom))
            }
            return nodes.isEmpty ? .empty : (nodes.count == 1 ? nodes[0] : .concat(nodes))
        }

        private mutating func parseQuantifiers(_ atom: Node) throws(RegexSyntaxError) -> Node {
            var node = atom
            var quantified = false
            while let scalar = current {
                let start = index
                var bounds: (Int, Int?)
                switch scalar {
                case 0x2A: bounds = (0, nil); index += 1  // *
                case 0x2B: bounds = (1, nil); index += 1  // +
                case 0x3F: bounds = (0, 1); index += 1  // ?
                case 0x7B:  // {
                    guard let counted = try parseCount() else { return node }
                    bounds = counted
                default:
                    return node
                }
                if quantified {
                    throw RegexSyntaxError(message: "invalid nested repetition operator", offset: start)
                }
                if case .textStart = node {} else if case .textEnd = node {} else if case .empty = node {
                    throw RegexSyntaxError(message: "missing argument to repetition operator", offset: start)
                }
                var greedy = true
                if isAt("?") {
                    greedy = false
                    index += 1
                }
                node = .repetition(node, min: bounds.0, max: bounds.1, greedy: greedy)
                quantified = true
            }
            return node
        }

        /// Parses `{n}`, `{n,}` or `{n,m}` at the cursor; returns nil (cursor unmoved) when the brace
        /// does not start a valid count, in which case it is a literal `{`, as in Go.
        private mutating func parseCount() throws(RegexSyntaxError) -> (Int, Int?)? {
            let start = index
            var cursor = index + 1
            func number(_ cursor: inout Int) -> Int? {
                var value = 0, digits = 0
                while cursor < scalars.count, (0x30...0x39).contains(scalars[cursor]) {
                    value = min(value * 10 + Int(scalars[cursor] - 0x30), 100_000)
                    digits += 1
                    cursor += 1
                }
                return digits > 0 ? value : nil
            }
            guard let low = number(&cursor) else { return nil }
            var high: Int? = low
            if cursor < scalars.count, scalars[cursor] == 0x2C {
                cursor += 1
                high = number(&cursor)
            }
            guard cursor < scalars.count, scalars[cursor] == 0x7D else { return nil }
            index = cursor + 1
            if low > 1000 || (high ?? 0) > 1000 || (high.map { $0 < low } ?? false) {
                throw RegexSyntaxError(message: "invalid repeat count (at most 1000, and min <= max)", offset: start)
            }
            return (low, high)
        }

        private mutating func parseAtom() throws(RegexSyntaxError) -> Node {
            guard let scalar = current else { return .empty }
            let start = index
            index += 1
            switch scalar {
            case 0x28:  // (
                var capture: Int? = nil
                if isAt("?") {
                    guard index + 1 < scalars.count, scalars[index + 1] == 0x3A /* : */ else {
                        throw RegexSyntaxError(message: "unsupported group syntax '(?' (flags, look-around and named groups are not supported)", offset: start)
                    }
                    index += 2
                } else {
                    captures += 1
                    capture = captures
                }
                let inner = try parseAlternation()
                guard isAt(")") else { throw RegexSyntaxError(message: "missing closing ')'", offset: start) }
                index += 1
                return .group(inner, capture: capture)
            case 0x5B:  // [
                return .scalar(try parseClass(start: start))
            case 0x2E:  // .
                return .scalar(ScalarSet(ranges: [0x0A...0x0A], negated: true))
            case 0x5E:  // ^
                return .textStart
            case 0x24:  // $
                return .textEnd
            case 0x5C:  // backslash
                return try parseEscape(start: start, inClass: false)
            case 0x2A, 0x2B, 0x3F:  // * + ?
                throw RegexSyntaxError(message: "missing argument to repetition operator", offset: start)
            default:
                return .scalar(ScalarSet(ranges: [scalar...scalar], negated: false))
            }
        }

        private mutating func parseEscape(start: Int, inClass: Bool) throws(RegexSyntaxError) -> Node {
            guard let scalar = current else { throw RegexSyntaxError(message: "trailing backslash", offset: start) }
            index += 1
            func set(_ ranges: [ClosedRange<UInt32>], _ negated: Bool = false) -> Node {
                .scalar(ScalarSet(ranges: ranges, negated: negated))
            }
            switch scalar {
            case 0x64: return set(ScalarSet.digits)  // d
            case 0x44: return set(ScalarSet.digits, true)  // D
            case 0x77: return set(ScalarSet.word)  // w
            case 0x57: return set(ScalarSet.word, true)  // W
            case 0x73: return set(ScalarSet.space)  // s
            case 0x53: return set(ScalarSet.space, true)  // S
            case 0x6E: return set([0x0A...0x0A])  // n
            case 0x74: return set([0x09...0x09])  // t
            case 0x72: return set([0x0D...0x0D])  // r
            case 0x66: return set([0x0C...0x0C])  // f
            case 0x76: return set([0x0B...0x0B])  // v
            case 0x41 where !inClass: return .textStart  // A
            case 0x7A where !inClass: return .textEnd  // z
            default:
                let isAlphanumeric = (0x30...0x39).contains(scalar) || (0x41...0x5A).contains(scalar) || (0x61...0x7A).contains(scalar)
                if isAlphanumeric || scalar > 0x7F {
                    throw RegexSyntaxError(message: "unsupported escape sequence '\\\(Character(Unicode.Scalar(scalar) ?? "?"))'", offset: start)
                }
                return set([scalar...scalar])
            }
        }

        private mutating func parseClass(start: Int) throws(RegexSyntaxError) -> ScalarSet {
            var negated = false
            if isAt("^") {
                negated = true
                index += 1
            }
            var ranges: [ClosedRange<UInt32>] = []
            var first = true
            while true {
                guard let scalar = current else { throw RegexSyntaxError(message: "missing closing ']'", offset: start) }
                if scalar == 0x5D && !first {  // ]
                    index += 1
                    break
                }
                first = false
                if scalar == 0x5B, index + 1 < scalars.count, scalars[index + 1] == 0x3A {
                    throw RegexSyntaxError(message: "named character classes like [:alpha:] are not supported", offset: index)
                }
                let low: UInt32
                let itemStart = index
                index += 1
                if scalar == 0x5C {
                    guard case .scalar(let escaped) = try parseEscape(start: itemStart, inClass: true) else {
                        throw RegexSyntaxError(message: "invalid escape in character class", offset: itemStart)
                    }
                    if escaped.negated || escaped.ranges.count != 1 || escaped.ranges[0].count != 1 {
                        if escaped.negated {
                            throw RegexSyntaxError(message: "negated escapes like \\D are not supported inside [...]", offset: itemStart)
                        }
                        ranges.append(contentsOf: escaped.ranges)
                        continue
                    }
                    low = escaped.ranges[0].lowerBound
                } else {
                    low = scalar
                }
                if isAt("-"), index + 1 < scalars.count, scalars[index + 1] != 0x5D {
                    index += 1
                    guard var high = current else { throw RegexSyntaxError(message: "missing closing ']'", offset: start) }
                    index += 1
                    if high == 0x5C {
                        guard let escaped = current else { throw RegexSyntaxError(message: "trailing backslash", offset: index) }
                        index += 1
                        high = escaped
                    }
                    guard low <= high else { throw RegexSyntaxError(message: "invalid character class range", offset: itemStart) }
                    ranges.append(low...high)
                } else {
                    ranges.append(low...low)
                }
            }
            return ScalarSet(ranges: ranges, negated: negated)
        }
    }
}
