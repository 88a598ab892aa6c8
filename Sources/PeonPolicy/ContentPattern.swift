// Patterns searched for in data leaving a run (egress checks): a private key in a POST body, a cloud
// credential in an exec argument, the host's own injected secret in a written file.
//
// The data is guest-controlled and can be large (a 64 MiB write), so a search must be both linear and
// fast. Every pattern therefore starts with a literal of at least ``minimumPrefix`` bytes: the scan looks
// for that literal, and only where it occurs runs the whole pattern (``LinearRegex``, linear in its
// input) anchored there on at most ``maxMatchBytes`` bytes. Data is matched byte by byte (each byte one
// character), so patterns are ASCII; a match longer than ``maxMatchBytes`` is still found when its first
// ``maxMatchBytes`` bytes match (every detector here needs far fewer).

/// A named pattern refused in outgoing data.
public struct ContentPattern: Sendable, Hashable {
    /// The literal every pattern begins with must be at least this long.
    public static let minimumPrefix = 4
    /// The longest stretch of data one match is tried on.
    public static let maxMatchBytes = 256
    /// The most places one scan runs the pattern at. Data crafted to repeat a pattern's literal start
    /// (`AKIAAKIA...` for 64 MiB) would otherwise cost a regex run per occurrence; past this budget the
    /// pattern counts as found, so the call is refused (fail closed) instead of the host being kept busy.
    public static let maxCandidates = 4096

    /// The name audited when it matches (the match itself is never recorded).
    public let name: String
    /// The pattern as written, for messages.
    public let source: String
    private let prefix: [UInt8]
    private let regex: LinearRegex?

    public static func == (lhs: ContentPattern, rhs: ContentPattern) -> Bool {
        lhs.name == rhs.name && lhs.source == rhs.source
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(source)
    }

    /// A pattern that is exactly these bytes (an injected secret). Empty bytes never match.
    public init(name: String, literal: [UInt8]) {
        self.name = name
        source = "(a literal of \(literal.count) bytes)"
        prefix = literal
        regex = nil
    }

    /// A regular expression (the RE2 subset `regexMatch` accepts) beginning with at least
    /// ``minimumPrefix`` literal ASCII characters.
    ///
    /// - Throws: a message saying what is wrong: not ASCII, too short a literal start, bad syntax, or a
    ///   pattern too large to run in bounded time.
    public init(name: String, regex pattern: String) throws(ContentPatternError) {
        guard pattern.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw ContentPatternError(message: "egress patterns are printable ASCII (data is matched byte by byte)")
        }
        let literal = Self.literalPrefix(pattern)
        guard literal.count >= Self.minimumPrefix else {
            throw ContentPatternError(message: "must begin with at least \(Self.minimumPrefix) literal characters (found \(literal.count)) so it can be searched for quickly; e.g. \"EMP-[0-9]{6}\"")
        }
        let compiled: LinearRegex
        do {
            compiled = try LinearRegex("^(?:" + pattern + ")")
        } catch {
            throw ContentPatternError(message: "invalid pattern at character \(max(error.offset - 4, 0) + 1): \(error.message)")
        }
        guard compiled.programSize * (Self.maxMatchBytes + 1) <= LinearRegex.stateBudget else {
            throw ContentPatternError(message: "the pattern is too large to search in bounded time; split it")
        }
        self.name = name
        source = pattern
        prefix = literal
        regex = compiled
    }

    /// The literal characters a pattern starts with: up to the first metacharacter, without a last
    /// character that a quantifier applies to; an alternation at the top level means none.
    static func literalPrefix(_ pattern: String) -> [UInt8] {
        let bytes = Array(pattern.utf8)
        // An alternation at the top level (outside groups and classes, not escaped) means no common start.
        var depth = 0
        var inClass = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                index += 2
                continue
            }
            if inClass {
                if byte == UInt8(ascii: "]") { inClass = false }
            } else if byte == UInt8(ascii: "[") {
                inClass = true
            } else if byte == UInt8(ascii: "(") {
                depth += 1
            } else if byte == UInt8(ascii: ")") {
                depth -= 1
            } else if byte == UInt8(ascii: "|"), depth == 0 {
                return []
            }
            index += 1
        }
        var out: [UInt8] = []
        let meta = Set(".[](){}*+?|^$\\".utf8)
        for byte in bytes {
            if meta.contains(byte) {
                if byte == UInt8(ascii: "*") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "{") { out.removeLast(min(1, out.count)) }
                break
            }
            out.append(byte)
        }
        return out
    }

    /// Whether the pattern occurs anywhere in `data`.
    public func occurs(in data: some Collection<UInt8>) -> Bool {
        guard !prefix.isEmpty else { return false }
        let bytes = Array(data)
        return bytes.withUnsafeBufferPointer { buffer in occurs(in: buffer) }
    }

    private func occurs(in data: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = data.count
        guard count >= prefix.count, let first = prefix.first else { return false }
        var index = 0
        var candidates = 0
        let last = count - prefix.count
        while index <= last {
            if data[index] == first {
                var same = true
                var k = 1
                while k < prefix.count {
                    if data[index + k] != prefix[k] { same = false; break }
                    k += 1
                }
                if same {
                    guard let regex else { return true }
                    candidates += 1
                    if candidates > Self.maxCandidates { return true }
                    let end = min(count, index + Self.maxMatchBytes)
                    let window = data[index..<end].map { UInt32($0) }
                    // A pattern that cannot be run (it cannot: the size was bounded at load) counts as found.
                    if (try? regex.matches(scalars: window)) ?? true { return true }
                }
            }
            index += 1
        }
        return false
    }

    /// Built-in detectors a grants file names in `egress.refuse`, each a pattern with a fixed literal start.
    public static let builtIn: [String: [String]] = [
        "private-key": ["-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----"],
        "aws-access-key": ["AKIA[0-9A-Z]{16}", "ASIA[0-9A-Z]{16}"],
        "github-token": ["ghp_[A-Za-z0-9]{36}", "gho_[A-Za-z0-9]{36}", "ghu_[A-Za-z0-9]{36}", "ghs_[A-Za-z0-9]{36}",
                         "ghr_[A-Za-z0-9]{36}", "github_pat_[A-Za-z0-9_]{22,}"],
        "slack-token": ["xoxb-[A-Za-z0-9-]{10,}", "xoxp-[A-Za-z0-9-]{10,}", "xoxa-[A-Za-z0-9-]{10,}", "xoxs-[A-Za-z0-9-]{10,}"],
        "google-api-key": ["AIza[0-9A-Za-z_-]{35}"],
        "openai-key": ["sk-proj-[A-Za-z0-9_-]{20,}"],
    ]
}

/// Why an egress pattern was refused when grants were loaded.
public struct ContentPatternError: Error, Sendable {
    /// One line: what is wrong and what to do.
    public var message: String
}
