// The pattern functions Casbin ships: keyMatch...keyMatch5, regexMatch, globMatch and ipMatch.
// Each is split into "compile the pattern" (done once per policy line at load time, so a bad
// pattern is a load error) and "match a subject against the compiled pattern" (per request).
// Semantics follow Go Casbin (`util/builtin_operators.go`); where pycasbin differs we say so.

/// A built-in pattern function.
enum BuiltinMatcher: String, Sendable, CaseIterable {
    case keyMatch, keyMatch2, keyMatch3, keyMatch4, keyMatch5, regexMatch, globMatch, ipMatch
}

/// A pattern compiled for one built-in matcher.
enum CompiledPattern: Sendable {
    case prefix(String, wildcard: Bool)
    case regex(LinearRegex)
    case repeatedTokens(LinearRegex, tokens: [String])
    case pathRegex(LinearRegex)  // keyMatch5: the subject's query string is ignored
    case glob(GlobPattern)
    case network(IPNetwork)

    /// Compiles `pattern` for `matcher`; the error message says what is wrong with the pattern.
    static func compile(_ matcher: BuiltinMatcher, _ pattern: String) throws(RegexSyntaxError) -> CompiledPattern {
        switch matcher {
        case .keyMatch:
            if let star = pattern.utf8.firstIndex(of: UInt8(ascii: "*")) {
                return .prefix(String(pattern.utf8[..<star]) ?? "", wildcard: true)
            }
            return .prefix(pattern, wildcard: false)
        case .keyMatch2:
            var regex = pattern.replacing("/*", with: "/.*")
            regex = replacePlaceholders(in: regex, opening: ":", closing: nil)
            if regex == "*" { regex = ".*" }
            return .regex(try LinearRegex("^" + regex + "$"))
        case .keyMatch3:
            let regex = replacePlaceholders(in: pattern.replacing("/*", with: "/.*"), opening: "{", closing: "}")
            return .regex(try LinearRegex("^" + regex + "$"))
        case .keyMatch4:
            var tokens: [String] = []
            let regex = replacePlaceholders(in: pattern.replacing("/*", with: "/.*"), opening: "{", closing: "}", greedy: true, capture: true) {
                tokens.append($0)
            }
            let compiled = try LinearRegex("^" + regex + "$")
            if compiled.captureCount != tokens.count {
                throw RegexSyntaxError(message: "keyMatch4 patterns may not contain their own regex groups", offset: 0)
            }
            return .repeatedTokens(compiled, tokens: tokens)
        case .keyMatch5:
            let regex = replacePlaceholders(in: pattern.replacing("/*", with: "/.*"), opening: "{", closing: "}")
            return .pathRegex(try LinearRegex("^" + regex + "$"))
        case .regexMatch:
            return .regex(try LinearRegex(pattern))
        case .globMatch:
            return .glob(try GlobPattern(pattern))
        case .ipMatch:
            guard let network = IPNetwork(pattern) else {
                throw RegexSyntaxError(message: "'\(pattern)' is not an IP address or CIDR block", offset: 0)
            }
            return .network(network)
        }
    }

    /// Whether `subject` matches. Errors only for subjects a matcher cannot read (ipMatch on a
    /// non-address, a text too long for the regex bound).
    func matches(_ subject: String) throws(RegexSyntaxError) -> Bool {
        switch self {
        case .prefix(let prefix, let wildcard):
            if !wildcard { return subject.utf8.elementsEqual(prefix.utf8) }
            // Go: a longer key must start with the part before `*`; an equal-length key must equal it.
            return subject.utf8.starts(with: prefix.utf8)
        case .regex(let regex):
            return try regex.matches(subject)
        case .pathRegex(let regex):
            let path = subject.firstIndex(of: "?").map { String(subject[..<$0]) } ?? subject
            return try regex.matches(path)
        case .repeatedTokens(let regex, let tokens):
            guard let groups = try regex.submatches(subject) else { return false }
            var seen: [String: String] = [:]
            for (token, value) in zip(tokens, groups.dropFirst()) {
                let value = value ?? ""
                if let earlier = seen[token] {
                    if !earlier.utf8.elementsEqual(value.utf8) { return false }
                } else {
                    seen[token] = value
                }
            }
            return true
        case .glob(let glob):
            return glob.matches(subject)
        case .network(let network):
            guard let address = IPNetwork.parseAddress(subject) else {
                throw RegexSyntaxError(message: "ipMatch: '\(subject)' is not an IP address", offset: 0)
            }
            return network.contains(address)
        }
    }

    /// Replaces each placeholder (`:name` up to the next `/`, or `{name}`) with `[^/]+`, or with
    /// `([^/]+)` when capturing, reporting each name.
    private static func replacePlaceholders(
        in text: String, opening: Character, closing: Character?, greedy: Bool = false, capture: Bool = false,
        name: (String) -> Void = { _ in }
    ) -> String {
        let characters = Array(text)
        var output = ""
        var index = 0
        let replacement = capture ? "([^/]+)" : "[^/]+"
        while index < characters.count {
            let character = characters[index]
            guard character == opening else {
                output.append(character)
                index += 1
                continue
            }
            var end = index + 1
            if let closing {
                // `{` then one or more non-`/` characters, then `}` (lazy: the first `}`; greedy: the last before a `/`).
                var found: Int? = nil
                while end < characters.count, characters[end] != "/" {
                    if characters[end] == closing, end > index + 1 {
                        found = end
                        if !greedy { break }
                    }
                    end += 1
                }
                guard let close = found else {
                    output.append(character)
                    index += 1
                    continue
                }
                name(String(characters[(index + 1)..<close]))
                output += replacement
                index = close + 1
            } else {
                while end < characters.count, characters[end] != "/" { end += 1 }
                guard end > index + 1 else {
                    output.append(character)
                    index += 1
                    continue
                }
                name(String(characters[(index + 1)..<end]))
                output += replacement
                index = end
            }
        }
        return output
    }
}

// MARK: globMatch

/// A glob with Go `path.Match` semantics: `*` matches any run of non-`/` characters, `?` one
/// non-`/` character, `[...]`/`[^...]` a character class (with ranges), `\` escapes. Matching is
/// a dynamic program over (pattern item, text position), so it is O(pattern × text), never exponential.
struct GlobPattern: Sendable {
    private enum Item: Sendable {
        case literal(UInt32)
        case anyOne
        case anyRun
        case oneOf(ScalarSet)
    }

    private let items: [Item]

    init(_ pattern: String) throws(RegexSyntaxError) {
        let scalars = Array(pattern.unicodeScalars.map(\.value))
        var items: [Item] = []
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            let start = index
            index += 1
            switch scalar {
            case 0x2A: items.append(.anyRun)
            case 0x3F: items.append(.anyOne)
            case 0x5C:
                guard index < scalars.count else { throw RegexSyntaxError(message: "glob pattern ends with a backslash", offset: start) }
                items.append(.literal(scalars[index]))
                index += 1
            case 0x5B:
                var negated = false
                if index < scalars.count, scalars[index] == 0x5E {
                    negated = true
                    index += 1
                }
                var ranges: [ClosedRange<UInt32>] = []
                func next(_ index: inout Int) throws(RegexSyntaxError) -> UInt32 {
                    guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '[' in glob pattern", offset: start) }
                    var value = scalars[index]
                    index += 1
                    if value == 0x5C {
                        guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '[' in glob pattern", offset: start) }
                        value = scalars[index]
                        index += 1
                    }
                    return value
                }
                while true {
                    guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '[' in glob pattern", offset: start) }
                    if scalars[index] == 0x5D {
                        if ranges.isEmpty { throw RegexSyntaxError(message: "empty character class in glob pattern", offset: start) }
                        index += 1
                        break
                    }
                    if scalars[index] == 0x2D { throw RegexSyntaxError(message: "'-' without a range start in glob pattern", offset: index) }
                    let low = try next(&index)
                    var high = low
                    if index < scalars.count, scalars[index] == 0x2D {
                        index += 1
                        high = try next(&index)
                        if high < low { throw RegexSyntaxError(message: "invalid range in glob pattern", offset: start) }
                    }
                    ranges.append(low...high)
                }
                items.append(.oneOf(ScalarSet(ranges: ranges, negated: negated)))
            default:
                items.append(.literal(scalar))
            }
        }
        self.items = items
    }

    func matches(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars.map(\.value))
        let slash: UInt32 = 0x2F
        // reachable[j]: the pattern prefix consumed so far can match text[0..<j].
        var reachable = [Bool](repeating: false, count: scalars.count + 1)
        reachable[0] = true
        for item in items {
            var next = [Bool](repeating: false, count: scalars.count + 1)
            switch item {
            case .anyRun:
                var open = false
                for j in 0...scalars.count {
                    if reachable[j] { open = true }
                    next[j] = open
                    if j < scalars.count, scalars[j] == slash { open = false }
                }
            default:
                for j in 0..<scalars.count where reachable[j] {
                    let scalar = scalars[j]
                    let accepted: Bool
                    switch item {
                    case .literal(let expected): accepted = scalar == expected
                    case .anyOne: accepted = scalar != slash
                    case .oneOf(let set): accepted = set.contains(scalar)
                    case .anyRun: accepted = false
                    }
                    if accepted { next[j + 1] = true }
                }
            }
            reachable = next
        }
        return reachable[scalars.count]
    }
}

// MARK: ipMatch

/// An IPv4 or IPv6 network (an address is a network with a full-length prefix). Go's
/// `net.ParseCIDR` semantics: host bits after the prefix are ignored. IPv4 and IPv6 never match
/// each other.
struct IPNetwork: Sendable {
    var bytes: [UInt8]
    var prefixLength: Int

    init?(_ text: String) {
        if let slash = text.firstIndex(of: "/") {
            guard let address = Self.parseAddress(String(text[..<slash])) else { return nil }
            let digits = text[text.index(after: slash)...]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let length = Int(digits), length <= address.count * 8 else { return nil }
            bytes = address
            prefixLength = length
        } else {
            guard let address = Self.parseAddress(text) else { return nil }
            bytes = address
            prefixLength = address.count * 8
        }
    }

    func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var remaining = prefixLength
        for index in 0..<bytes.count where remaining > 0 {
            let bits = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if address[index] & mask != bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// Parses dotted-quad IPv4 (4 bytes) or IPv6 (16 bytes, `::` and a trailing IPv4 allowed).
    static func parseAddress(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(Substring(text)) }
        return parseIPv4(Substring(text))
    }

    private static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var result: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(part.count > 1 && part.first == "0"), let value = UInt8(part) else { return nil }
            result.append(value)
        }
        return result
    }

    private static func parseIPv6(_ text: Substring) -> [UInt8]? {
        var head: [UInt8] = [], tail: [UInt8] = []
        var halves: [String] = []
        var rest = text
        while let range = rest.firstRange(of: "::") {
            halves.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        halves.append(String(rest))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, into output: inout [UInt8], allowIPv4: Bool) -> Bool {
            if part.isEmpty { return true }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowIPv4, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return false }
                    output += v4
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, piece.allSatisfy({ $0.isHexDigit && $0.isASCII }),
                      let value = UInt16(piece, radix: 16) else { return false }
                output += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return true
        }
        if halves.count == 2 {
            guard groups(halves[0], into: &head, allowIPv4: false), groups(halves[1], into: &tail, allowIPv4: true),
                  head.count + tail.count <= 14 else { return nil }
            return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
        }
        guard groups(halves[0], into: &head, allowIPv4: true), head.count == 16 else { return nil }
        return head
    }
}
