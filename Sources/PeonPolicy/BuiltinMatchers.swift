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
            // As Go and pycasbin: one placeholder runs from a `{` to the last `}` before the next `/`, so
            // `/api/{group}_{name}/info` matches `/api/project1/info`.
            let regex = replacePlaceholders(in: pattern.replacing("/*", with: "/.*"), opening: "{", closing: "}", greedy: true)
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

    /// Whether `subject` matches. Errors only for a text too long for the regex bound; an ipMatch
    /// subject that is not an IP address does not match.
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
            // A text that is not an address is in no network. Casbin raises an error here instead, but
            // only for the rules it happens to evaluate; answering false makes the decision the same
            // whichever rules the index leaves to try.
            guard let address = IPNetwork.parseAddress(subject) else { return false }
            return network.contains(address)
        }
    }

    /// Replaces each placeholder (`:name` up to the next `/`, or `{name}`) with `[^/]+`, or with
    /// `([^/]+)` when capturing, reporting each name.
    static func replacePlaceholders(
        in text: String, opening: Character, closing: Character?, greedy: Bool = false, capture: Bool = false,
        lazyCapture: Bool = false, name: (String) -> Void = { _ in }
    ) -> String {
        let characters = Array(text)
        var output = ""
        var index = 0
        let replacement = capture ? (lazyCapture ? "([^/]+?)" : "([^/]+)") : "[^/]+"
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

// MARK: keyGet

/// Go Casbin's `keyGet`, `keyGet2` and `keyGet3`: the part of a key a pattern's wildcard or named
/// placeholder matched (`""` when the key does not match), for matchers such as
/// `keyGet2(r.obj, p.obj, 'id') == r.sub`.
enum KeyGet {
    /// `keyGet("/foo/bar/baz", "/foo/*")` is `"bar/baz"`: what follows the text before the first `*`.
    static func keyGet(_ key: String, _ pattern: String) -> String {
        let keyBytes = Array(key.utf8), patternBytes = Array(pattern.utf8)
        guard let star = patternBytes.firstIndex(of: UInt8(ascii: "*")), keyBytes.count > star,
              keyBytes[..<star].elementsEqual(patternBytes[..<star]) else { return "" }
        return String(decoding: keyBytes[star...], as: UTF8.self)
    }

    /// `keyGet2("/resource1", "/:resource", "resource")` is `"resource1"` (keyMatch2 placeholders);
    /// `keyGet3` does the same for `{name}` placeholders (keyMatch3).
    static func keyGet(_ key: String, _ pattern: String, variable: String, braces: Bool) throws(RegexSyntaxError) -> String {
        var names: [String] = []
        // Go's keyGet3 captures lazily (`([^/]+?)`): `/api/{g}_{gn}/...` splits `group1_group_name` as
        // `group1` and `group_name`; keyGet2 captures greedily.
        var regex = CompiledPattern.replacePlaceholders(
            in: pattern.replacing("/*", with: "/.*"), opening: braces ? "{" : ":", closing: braces ? "}" : nil, capture: true,
            lazyCapture: braces
        ) { names.append($0) }
        if regex == "*" { regex = "(.*)" }
        let compiled = try LinearRegex("^" + regex + "$")
        guard compiled.captureCount == max(names.count, regex == "(.*)" ? 1 : 0) else {
            throw RegexSyntaxError(message: "keyGet\(braces ? "3" : "2") patterns may not contain their own regex groups", offset: 0)
        }
        guard let groups = try compiled.submatches(key), let index = names.firstIndex(of: variable),
              index + 1 < groups.count else { return "" }
        return groups[index + 1] ?? ""
    }
}

// MARK: globMatch

/// A glob with the semantics of current Go Casbin (`doublestar.Match`, since v2.99.0) and pycasbin:
/// `*` matches any run of non-`/` characters; `**` as a whole path component matches any number of
/// components (`/a/**/b` matches `/a/b` and `/a/x/y/b`, `/a/**` matches `/a` and everything under it,
/// `**/b` matches `b` anywhere), elsewhere `**` is a `*`; `?` matches one non-`/` character;
/// `[...]` is a character class with ranges, negated by `[!...]` or `[^...]`, never matching `/`;
/// `{a,b}` matches either alternative (nesting allowed); `\` escapes the next character.
///
/// Braces are expanded at compile time (at most `maxAlternatives`, so a hostile pattern cannot
/// explode) and each alternative is matched by a dynamic program over (pattern item, text
/// position): O(pattern × text), never exponential.
struct GlobPattern: Sendable {
    /// The most alternatives a pattern's braces may expand to.
    static let maxAlternatives = 256
    /// The most characters all alternatives together may hold, bounding the matching work.
    static let maxExpandedScalars = 16_384

    private enum Item: Sendable {
        case literal(UInt32)
        case anyOne
        case anyRun
        case oneOf(ScalarSet)
        /// A `**` component between slashes or at the start: nothing, or any text ending in `/`.
        case directories
        /// A trailing `/**`: nothing, or `/` followed by anything.
        case slashAndAnything
        /// A pattern that is only `**`: anything.
        case anything
    }

    private static let slash: UInt32 = 0x2F
    private let alternatives: [[Item]]

    init(_ pattern: String) throws(RegexSyntaxError) {
        let scalars = Array(pattern.unicodeScalars.map(\.value))
        var alternatives: [[Item]] = []
        for expanded in try Self.expandBraces(scalars) {
            alternatives.append(try Self.items(expanded.scalars, escaped: expanded.escaped))
        }
        self.alternatives = alternatives
    }

    /// One brace-free alternative: its scalars and, per scalar, whether a `\` made it literal.
    private struct Expansion {
        var scalars: [UInt32] = []
        var escaped: [Bool] = []
    }

    /// Expands `{a,b}` groups (outside character classes) into every combination, in order.
    private static func expandBraces(_ scalars: [UInt32]) throws(RegexSyntaxError) -> [Expansion] {
        var index = 0
        let result = try expandSequence(scalars, &index, nested: false)
        let total = result.reduce(0) { $0 + $1.scalars.count }
        if total > max(maxExpandedScalars, scalars.count) {
            throw RegexSyntaxError(message: "glob pattern's braces expand to more than \(maxExpandedScalars) characters", offset: 0)
        }
        return result
    }

    /// Expands from `index` to the end, or (when `nested`) to the `,` or `}` that ends this alternative.
    private static func expandSequence(_ scalars: [UInt32], _ index: inout Int, nested: Bool) throws(RegexSyntaxError) -> [Expansion] {
        var results = [Expansion()]
        func append(_ scalar: UInt32, escaped: Bool) {
            for position in results.indices {
                results[position].scalars.append(scalar)
                results[position].escaped.append(escaped)
            }
        }
        var inClass = false
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == 0x5C {  // backslash: the next scalar is literal
                guard index + 1 < scalars.count else { throw RegexSyntaxError(message: "glob pattern ends with a backslash", offset: index) }
                append(scalars[index + 1], escaped: true)
                index += 2
                continue
            }
            if inClass {
                if scalar == 0x5D { inClass = false }
                append(scalar, escaped: false)
                index += 1
                continue
            }
            switch scalar {
            case 0x5B:
                inClass = true
                append(scalar, escaped: false)
                index += 1
                // A `]` right after `[`, `[!` or `[^` is an error later, not a class end; keep scanning.
            case 0x7B:
                let open = index
                index += 1
                var options: [Expansion] = []
                while true {
                    options += try expandSequence(scalars, &index, nested: true)
                    guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '{' in glob pattern", offset: open) }
                    let closing = scalars[index]
                    index += 1
                    if closing == 0x7D { break }
                }
                var combined: [Expansion] = []
                for prefix in results {
                    for option in options {
                        combined.append(Expansion(scalars: prefix.scalars + option.scalars, escaped: prefix.escaped + option.escaped))
                        if combined.count > maxAlternatives {
                            throw RegexSyntaxError(message: "glob pattern's braces expand to more than \(maxAlternatives) alternatives", offset: open)
                        }
                    }
                }
                results = combined
            case 0x2C where nested, 0x7D where nested:
                return results
            default:
                append(scalar, escaped: false)
                index += 1
            }
        }
        return results
    }

    /// Compiles one brace-free alternative.
    private static func items(_ scalars: [UInt32], escaped: [Bool]) throws(RegexSyntaxError) -> [Item] {
        var items: [Item] = []
        var index = 0
        func isSlash(_ position: Int) -> Bool { scalars[position] == slash }
        while index < scalars.count {
            let scalar = scalars[index]
            let start = index
            index += 1
            if escaped[start] {
                items.append(.literal(scalar))
                continue
            }
            switch scalar {
            case 0x2A:
                while index < scalars.count, scalars[index] == 0x2A, !escaped[index] { index += 1 }
                let run = index - start
                let startsComponent = start == 0 || isSlash(start - 1)
                let endsComponent = index == scalars.count || isSlash(index)
                guard run >= 2, startsComponent, endsComponent else {
                    items.append(.anyRun)
                    continue
                }
                if index == scalars.count {
                    if start == 0 {
                        items.append(.anything)
                    } else if case .literal(slash) = items.last {
                        items[items.count - 1] = .slashAndAnything  // `/**` at the end: the `/` is optional
                    } else {
                        items.append(.anything)  // `/**/**`: the first `**` already took the `/`
                    }
                } else {
                    items.append(.directories)
                    index += 1  // the `/` after `**` is part of the item
                }
            case 0x3F:
                items.append(.anyOne)
            case 0x5B:
                var negated = false
                if index < scalars.count, scalars[index] == 0x21 || scalars[index] == 0x5E, !escaped[index] {
                    negated = true
                    index += 1
                }
                var ranges: [ClosedRange<UInt32>] = []
                func next(_ index: inout Int) throws(RegexSyntaxError) -> UInt32 {
                    guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '[' in glob pattern", offset: start) }
                    let value = scalars[index]
                    index += 1
                    return value
                }
                while true {
                    guard index < scalars.count else { throw RegexSyntaxError(message: "unclosed '[' in glob pattern", offset: start) }
                    if scalars[index] == 0x5D, !escaped[index] {
                        if ranges.isEmpty { throw RegexSyntaxError(message: "empty character class in glob pattern", offset: start) }
                        index += 1
                        break
                    }
                    // A `-` that cannot be a range's middle (first in the class, or just before its `]`) is itself,
                    // as in Go Casbin's doublestar and in shells: `[a-z0-9-]`, `[-a]`.
                    let low = try next(&index)
                    var high = low
                    if index + 1 < scalars.count, scalars[index] == 0x2D, !escaped[index], !(scalars[index + 1] == 0x5D && !escaped[index + 1]) {
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
        return items
    }

    func matches(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars.map(\.value))
        return alternatives.contains { Self.matches(scalars, $0) }
    }

    private static func matches(_ scalars: [UInt32], _ items: [Item]) -> Bool {
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
            case .anything:
                var open = false
                for j in 0...scalars.count {
                    if reachable[j] { open = true }
                    next[j] = open
                }
            case .directories:
                // Nothing, or any text (slashes included) that ends with a `/`.
                var open = false
                for j in 0...scalars.count {
                    next[j] = reachable[j] || (open && j > 0 && scalars[j - 1] == slash)
                    if reachable[j] { open = true }
                }
            case .slashAndAnything:
                // Nothing, or a `/` and then anything.
                var open = false
                for j in 0...scalars.count {
                    next[j] = reachable[j] || open
                    if reachable[j], j < scalars.count, scalars[j] == slash { open = true }
                }
            case .literal, .anyOne, .oneOf:
                for j in 0..<scalars.count where reachable[j] {
                    let scalar = scalars[j]
                    let accepted: Bool
                    switch item {
                    case .literal(let expected): accepted = scalar == expected
                    case .anyOne: accepted = scalar != slash
                    case .oneOf(let set): accepted = scalar != slash && set.contains(scalar)
                    default: accepted = false
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
