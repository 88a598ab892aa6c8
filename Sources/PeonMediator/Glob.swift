/// The two pattern languages of the grants, both decided inside the policy engine through matcher
/// functions registered by name (see ``PeonMatchers``):
///
/// - **resource globs** (`peonGlob`): the object is split on `/`; `*` matches any characters within one
///   segment, a segment that is exactly `**` matches zero or more whole segments. So
///   `fs:/srv/reports/**` matches `fs:/srv/reports`, `fs:/srv/reports/q1.txt` and
///   `fs:/srv/reports/2024/q1.txt`, but not `fs:/srv/reports-old/x`; `fs:/srv/*.txt` matches
///   `fs:/srv/a.txt` but not `fs:/srv/a/b.txt`. No other character is special.
///   In a URL (`http:https://...`, or a bare `http(s)://` URL) the query is not a path: the path (before
///   the first `?`) is matched against the pattern's path and the query against the pattern's query, where
///   `*` matches any characters, `/` too. So `https://h/users/?/profile` (a request for `/users/`) is not
///   matched by `https://h/users/*/profile`, and `https://h/files/*.txt` never matches
///   `https://h/files/secret.key?.txt`. A pattern without a query admits one only where it ends in a wildcard
///   (`https://h/v1/*` matches `https://h/v1/items?x=1`, `https://h/admin/**` matches `https://h/admin?x=1`; an exact
///   URL admits no query); a pattern with one constrains it (`https://h/search?q=*`).
/// - **argument patterns** (`peonArgs`): an exec argument vector is compared position by position;
///   `*` matches any characters including `/`, `?` exactly one character; the counts must be equal. In a
///   pattern that writes a `/` (a path), an argument may have no more `..` segments than the pattern writes.

/// Matches `text` against the resource glob `pattern` (see the file comment).
///
/// Runs in O(segments(text) × segments(pattern) × segment length) at worst, with no recursion, so a
/// hostile pattern or path cannot blow the stack or take exponential time.
package func globMatches(_ text: String, pattern: String) -> Bool {
    // Matched on UTF-8 bytes: `/` and `*` never occur inside a multi-byte scalar, and a literal scalar's
    // bytes can only match at scalar boundaries, so byte matching answers exactly as scalar matching would.
    withContiguousUTF8(text) { textBytes in
        withContiguousUTF8(pattern) { patternBytes in globMatches(textBytes, patternBytes) }
    }
}

private func withContiguousUTF8<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = string.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(string.utf8).withUnsafeBufferPointer(body)
}

private func globMatches(_ text: UnsafeBufferPointer<UInt8>, _ pattern: UnsafeBufferPointer<UInt8>) -> Bool {
    let patternURL = urlStart(of: pattern)
    let textQuery = urlStart(of: text).flatMap { queryStart(of: text, from: $0) }
    let patternQuery = patternURL.flatMap { queryStart(of: pattern, from: $0) }
    let textPath = UnsafeBufferPointer(rebasing: text[..<(textQuery ?? text.count)])
    let patternPath = UnsafeBufferPointer(rebasing: pattern[..<(patternQuery ?? pattern.count)])
    let isURL = patternURL != nil
    switch (textQuery, patternQuery) {
    case (nil, nil):
        return segmentsMatch(text, pattern, url: isURL)
    case let (textAt?, patternAt?):
        // The path against the pattern's path, the query against the pattern's query: a `*` in the path never
        // reaches into the query, so `/files/*.txt?*` never matches `/files/secret.key?x.txt?y`.
        return segmentsMatch(textPath, patternPath, url: true)
            && segmentMatches(UnsafeBufferPointer(rebasing: text[(textAt + 1)...]),
                              UnsafeBufferPointer(rebasing: pattern[(patternAt + 1)...]))
    case (nil, _?):
        return false
    case (_?, nil):
        // A pattern without a query admits one only where it ends in a wildcard (`/v1/*`, `/admin/**`), and then on
        // a path the pattern matches by itself: the query never supplies what the pattern's path must match
        // (`/files/*.txt` never covers `/files/secret.key?.txt`), and a grant of one exact URL
        // (`https://example.com/status.txt`) sends no data in a query. `X/**` covers `X?q` too (a request for `X`),
        // so a deny rule on it holds; a deny rule on an exact URL needs `URL?*` beside it.
        return pattern.last == star && segmentsMatch(textPath, pattern, url: true)
    }
}

/// Where an `http(s)` URL resource's text starts (after the `http:` kind, if any), or `nil` for anything that is
/// not one. The objects the policy sees are `http:` + a ``CanonicalURL`` (whose host and path never hold a `?`);
/// the HTTP grant code also matches bare URLs against bare URL patterns.
private func urlStart(of bytes: UnsafeBufferPointer<UInt8>) -> Int? {
    func hasPrefix(_ prefix: StaticString, at offset: Int) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count - offset >= count else { return false }
        return prefix.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[offset + $0] == expected[$0] }
        }
    }
    let start = hasPrefix("http:http://", at: 0) || hasPrefix("http:https://", at: 0) ? 5 : 0
    return hasPrefix("http://", at: start) || hasPrefix("https://", at: start) ? start : nil
}

/// Where the query of a URL's text begins (its first `?` at or after `start`), or `nil` when it has none.
private func queryStart(of bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
    var index = start
    while index < bytes.count {
        if bytes[index] == question { return index }
        index += 1
    }
    return nil
}

/// The segment-by-segment match. In a URL's path an empty segment before the last (`/u//profile`) is matched only by
/// an empty one or `**`, never by a `*`: servers that merge slashes serve it as `/u/profile`.
private func segmentsMatch(_ text: UnsafeBufferPointer<UInt8>, _ pattern: UnsafeBufferPointer<UInt8>, url: Bool = false) -> Bool {
    let textCount = segmentCount(text)
    let patternCount = segmentCount(pattern)
    return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: textCount) { textSegments in
        fillSegments(of: text, into: textSegments)
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: patternCount) { patternSegments in
            fillSegments(of: pattern, into: patternSegments)
            return wildcardMatch(
                count: textCount, patternCount: patternCount,
                isStar: { patternSegments[$0].count == 2 && pattern[patternSegments[$0].lowerBound] == star
                    && pattern[patternSegments[$0].lowerBound + 1] == star },
                isOne: { _ in false },
                matches: { t, p in
                    if url && textSegments[t].isEmpty && t < textCount - 1 && !patternSegments[p].isEmpty { return false }
                    return segmentMatches(UnsafeBufferPointer(rebasing: text[textSegments[t]]),
                                          UnsafeBufferPointer(rebasing: pattern[patternSegments[p]]))
                })
        }
    }
}

private let slash = UInt8(ascii: "/")
private let star = UInt8(ascii: "*")
private let question = UInt8(ascii: "?")

/// The number of `/`-separated segments, empty ones included (`/a` has two).
private func segmentCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
    var count = 1
    for byte in bytes where byte == slash { count += 1 }
    return count
}

/// The byte range of each segment, in order.
private func fillSegments(of bytes: UnsafeBufferPointer<UInt8>, into segments: UnsafeMutableBufferPointer<Range<Int>>) {
    var start = 0
    var index = 0
    for position in 0..<bytes.count where bytes[position] == slash {
        segments.initializeElement(at: index, to: start..<position)
        index += 1
        start = position + 1
    }
    segments.initializeElement(at: index, to: start..<bytes.count)
}

/// Whether a resource glob is well formed: `**` only as a whole segment, no `***`.
func globIsWellFormed(_ pattern: String) -> Bool {
    // A URL's query is not made of segments: `*` there matches anything already, so `**` in it is only two stars.
    let isURL = pattern.hasPrefix("http://") || pattern.hasPrefix("https://")
    let path = isURL ? pattern.prefix { $0 != "?" } : Substring(pattern)
    for segment in path.split(separator: "/", omittingEmptySubsequences: false) where segment != "**" {
        if segment.contains("**") { return false }
    }
    return true
}

/// One segment: `*` matches any run of scalars (the segment contains no `/`).
private func segmentMatches(_ text: UnsafeBufferPointer<UInt8>, _ pattern: UnsafeBufferPointer<UInt8>) -> Bool {
    wildcardMatch(
        count: text.count, patternCount: pattern.count,
        isStar: { pattern[$0] == star },
        isOne: { _ in false },
        matches: { text[$0] == pattern[$1] })
}

/// The classic linear-backtracking wildcard match (a star remembers where to resume); correct for
/// patterns whose only repetition operator is the star, and O(n × m) at worst.
private func wildcardMatch(
    count: Int, patternCount: Int,
    isStar: (Int) -> Bool, isOne: (Int) -> Bool, matches: (Int, Int) -> Bool
) -> Bool {
    var t = 0
    var p = 0
    var starAt = -1
    var resumeAt = 0
    while t < count {
        if p < patternCount, !isStar(p), isOne(p) || matches(t, p) {
            t += 1
            p += 1
        } else if p < patternCount, isStar(p) {
            starAt = p
            resumeAt = t
            p += 1
        } else if starAt >= 0 {
            resumeAt += 1
            t = resumeAt
            p = starAt + 1
        } else {
            return false
        }
    }
    while p < patternCount, isStar(p) { p += 1 }
    return p == patternCount
}

/// The exec argument vector as it travels through the policy engine's fourth request field (`r.args`).
///
/// Matching: one pattern per argument, `*` any characters and `?` one; a pattern that *begins* with a
/// wildcard never matches an argument that begins with `-`, so `args = ["-l", "*"]` cannot be fed
/// `--files0-from=/etc/passwd`. To allow options, write the dash: `-*`, `--format=*`. After an argument
/// that is exactly `--` (which a grant can only admit by writing it), wildcards match anything: `--`
/// ends option parsing for getopt-style programs (`grep -c -F -- *`); check that the program honours it.
///
/// Encoding: `N:` (the argument count in decimal) followed by the arguments separated by single
/// spaces, each percent-encoded except for `A-Z a-z 0-9 - . _ ~ / = : @ +`. So `["-l", "/tmp/a b"]`
/// is `2:-l /tmp/a%20b` and `[]` is `0:`. Commas, quotes, spaces, `*` and `?` are always encoded, so
/// the field is a single CSV cell and a literal `*` in an argument can never act as a wildcard.
/// Calls other than `exec.run` send `0:`.
package enum ArgumentVector {
    /// Encodes a vector for the request.
    package static func encode(_ arguments: [String]) -> String {
        // Every call other than exec has none: its field is the constant `0:`.
        if arguments.isEmpty { return "0:" }
        return "\(arguments.count):" + arguments.map { percentEncode($0, keepWildcards: false) }.joined(separator: " ")
    }

    /// Encodes grant patterns for a policy line: like ``encode(_:)`` except that `*` and `?` stay raw
    /// and act as wildcards. The policy value `*` alone (no count) matches every vector; grants use it
    /// for every capability other than exec.
    package static func encodePatterns(_ patterns: [String]) -> String {
        "\(patterns.count):" + patterns.map { percentEncode($0, keepWildcards: true) }.joined(separator: " ")
    }

    /// Decodes a request field; `nil` if malformed.
    package static func decode(_ field: String) -> [String]? {
        guard let tokens = split(field) else { return nil }
        var result: [String] = []
        for token in tokens {
            guard let pieces = percentDecode(token, wildcards: false) else { return nil }
            var bytes: [UInt8] = []
            for case .literal(let byte) in pieces { bytes.append(byte) }
            guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
            result.append(text)
        }
        return result
    }

    /// Whether the request field `field` matches the policy field `patterns` (the `peonArgs` matcher).
    /// Malformed fields never match.
    package static func matches(_ field: String, patterns: String) -> Bool {
        // Every call other than exec sends the empty vector, and grants send `*` for it: answered without decoding.
        if field == "0:", patterns == "*" || patterns == "0:" { return true }
        if patterns == "*" { return decode(field) != nil }
        guard let arguments = decode(field), let tokens = split(patterns), tokens.count == arguments.count
        else { return false }
        var optionsEnded = false
        for (argument, token) in zip(arguments, tokens) {
            guard let pattern = percentDecode(token, wildcards: true),
                  let compiled = compilePattern(pattern),
                  optionsEnded || !(startsWithWildcard(compiled) && argument.utf8.first == UInt8(ascii: "-")),
                  !wildcardsCoverParentSegments(argument, compiled),
                  argumentMatches(Array(argument.unicodeScalars), compiled)
            else { return false }
            if argument == "--" { optionsEnded = true }
        }
        return true
    }

    /// Whether a grant's argument pattern admits arguments that are options: it begins with a written
    /// `-` followed by a wildcard somewhere (`-*`, `--format=*`). A pattern that begins with a wildcard
    /// never matches an option (see ``matches(_:patterns:)``), so only these can; `grants check` warns
    /// about them, since an option can turn a harmless program into a file reader (`wc --files0-from=F`).
    package static func admitsOptions(_ pattern: String) -> Bool {
        pattern.hasPrefix("-") && (pattern.contains("*") || pattern.contains("?"))
    }

    /// Splits `N:a b c` into its tokens and checks the count.
    private static func split(_ field: String) -> [Substring]? {
        guard let colon = field.firstIndex(of: ":"),
              let count = Int(field[..<colon]), count >= 0, count <= 1 << 16
        else { return nil }
        let body = field[field.index(after: colon)...]
        if count == 0 { return body.isEmpty ? [] : nil }
        let tokens = body.split(separator: " ", omittingEmptySubsequences: false)
        return tokens.count == count ? tokens : nil
    }
}

/// A piece of a decoded pattern token.
private enum PatternPiece: Equatable {
    case literal(UInt8)
    case star
    case one
}

/// An argument pattern after UTF-8 decoding of its literal runs.
private enum ArgumentPatternElement: Equatable {
    case scalar(Unicode.Scalar)
    case star
    case one
}

private func isUnreserved(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default:
        "-._~/=:@+".utf8.contains(byte)
    }
}

private func percentEncode(_ text: String, keepWildcards: Bool) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for byte in text.utf8 {
        if isUnreserved(byte) || (keepWildcards && (byte == UInt8(ascii: "*") || byte == UInt8(ascii: "?"))) {
            out.append(byte)
        } else {
            out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
        }
    }
    return String(decoding: out, as: UTF8.self)
}

private func percentDecode(_ token: Substring, wildcards: Bool) -> [PatternPiece]? {
    var pieces: [PatternPiece] = []
    let bytes = Array(token.utf8)
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            guard index + 2 < bytes.count,
                  let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            else { return nil }
            pieces.append(.literal(high << 4 | low))
            index += 3
        } else if wildcards && byte == UInt8(ascii: "*") {
            pieces.append(.star)
            index += 1
        } else if wildcards && byte == UInt8(ascii: "?") {
            pieces.append(.one)
            index += 1
        } else if isUnreserved(byte) {
            pieces.append(.literal(byte))
            index += 1
        } else {
            return nil
        }
    }
    return pieces
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    default: nil
    }
}

/// Turns decoded pieces into scalars and wildcards; `nil` if a literal run is not UTF-8.
private func compilePattern(_ pieces: [PatternPiece]) -> [ArgumentPatternElement]? {
    var elements: [ArgumentPatternElement] = []
    var run: [UInt8] = []
    func flush() -> Bool {
        guard !run.isEmpty else { return true }
        guard let text = String(validating: run, as: UTF8.self) else { return false }
        elements += text.unicodeScalars.map { .scalar($0) }
        run.removeAll()
        return true
    }
    for piece in pieces {
        switch piece {
        case .literal(let byte): run.append(byte)
        case .star: guard flush() else { return nil }; elements.append(.star)
        case .one: guard flush() else { return nil }; elements.append(.one)
        }
    }
    return flush() ? elements : nil
}

private func argumentMatches(_ text: [Unicode.Scalar], _ pattern: [ArgumentPatternElement]) -> Bool {
    wildcardMatch(
        count: text.count, patternCount: pattern.count,
        isStar: { pattern[$0] == .star },
        isOne: { pattern[$0] == .one },
        matches: { pattern[$1] == .scalar(text[$0]) })
}

/// Whether the pattern's wildcards would have to stand for one of `argument`'s `..` path segments (`..`, `../x`,
/// `a/../b`). `wc -c /srv/reports/*` written for the files of one folder admitted `/srv/reports/../../etc/shadow`:
/// an argument has no more `..` segments than the pattern writes. Each `..` segment the pattern writes matches one
/// of the argument's, so with as many, none is left for a wildcard (`/srv/g/../*` admits `/srv/g/../x`, not
/// `/srv/g/../../../etc/shadow`; a `..` inside a name, as in `*..bak`, is not a segment).
///
/// Only a pattern that writes a `/` is a path: a wildcard meant as free text (`grep -F -- *`, `sed -e *`, `jq *`)
/// may be given `../` as a search string or `..` as a filter.
private func wildcardsCoverParentSegments(_ argument: String, _ pattern: [ArgumentPatternElement]) -> Bool {
    let inArgument = argument.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        .count { $0.elementsEqual("..".utf8) }
    guard inArgument > 0, pattern.contains(where: { $0 == .star || $0 == .one }), pattern.contains(.scalar("/"))
    else { return false }
    let parent: [ArgumentPatternElement] = [.scalar("."), .scalar(".")]
    let inPattern = pattern.split(separator: .scalar("/"), omittingEmptySubsequences: false).count { $0.elementsEqual(parent) }
    return inArgument > inPattern
}

/// Whether a compiled argument pattern begins with `*` or `?`.
private func startsWithWildcard(_ pattern: [ArgumentPatternElement]) -> Bool {
    guard let first = pattern.first else { return false }
    return first == .star || first == .one
}
