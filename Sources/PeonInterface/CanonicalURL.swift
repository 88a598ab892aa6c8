// Strict URL parsing for `http.send`: one canonical spelling per resource, so that policy, the audit
// log and the server can never read a URL differently. This is the only URL parser in peon-wasm: the
// mediator parses a guest's URL here once, grants' URL patterns are normalized by the same rules, and
// the HTTP capability sends exactly ``CanonicalURL/target``.

/// A parsed, canonical `http`/`https` URL.
///
/// Accepted: `http://` or `https://` (any case), a host name of letters, digits, `-`, `_` and `.`
/// (lowercased, one trailing dot dropped), or a dotted-quad IPv4 literal, or a bracketed IPv6 literal
/// without zone; an optional port 1...65535; a path and query of RFC 3986 characters with valid
/// percent-escapes.
///
/// Refused (`invalid-argument`), because parsers disagree about them: anything outside printable
/// ASCII (spaces, controls, UTF-8 — use `xn--` names and percent-escapes), `\`, user info (`@` in the
/// authority), fragments (`#`), numeric hosts other than four decimal parts without leading zeros
/// (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`), percent-escapes in the host, an empty port,
/// encoded `/`, `\` or NUL (`%2F`, `%5C`, `%00`) in the path, and a `.` or `..` segment with path
/// parameters (`..;`, read as `..` by servers that strip parameters first).
///
/// Canonical form: lowercase scheme and host, the port only when not the scheme's default,
/// percent-escapes of unreserved characters decoded and all others in uppercase hex, `.` and `..`
/// segments removed (also when written as `%2E`, `.%2E`, `%2e.` or any other mix: escapes are decoded
/// before dot segments are removed), an empty path as `/`, no empty `?`. Parsing the canonical form
/// again yields the same value.
package struct CanonicalURL: Sendable, Hashable, CustomStringConvertible {
    /// The host: a name, or an IP literal.
    package enum Host: Sendable, Hashable {
        /// A lowercase DNS name without a trailing dot.
        case name(String)
        /// An IPv4 or IPv6 literal.
        case address(IPAddress)
    }

    /// `http` or `https`.
    package let scheme: String
    /// The host.
    package let host: Host
    /// The port (the scheme's default when the URL gives none).
    package let port: Int
    /// The request target: the path (starting with `/`) and the query with its `?`, if any. This is,
    /// byte for byte, what the HTTP capability puts on the request line.
    package let target: String

    /// The longest URL accepted, in bytes.
    package static let maxLength = 8192

    /// Whether ``port`` is the scheme's default (and so left out of ``description``).
    package var isDefaultPort: Bool { port == (scheme == "https" ? 443 : 80) }

    /// `example.com`, `127.0.0.1` or `[::1]`.
    package var hostText: String {
        switch host {
        case .name(let name): name
        case .address(let address): address.isIPv6 ? "[\(address)]" : "\(address)"
        }
    }

    /// The canonical URL: `scheme://host[:port]target`.
    package var description: String {
        "\(scheme)://\(hostText)\(isDefaultPort ? "" : ":\(port)")\(target)"
    }

    /// Parses a guest's URL.
    ///
    /// - Throws: `invalid-argument`, with the reason, for anything listed as refused above.
    package init(parsing url: String) throws(HostError) {
        try self.init(parsing: url, wildcards: false)
    }

    /// Normalizes a grant's URL pattern by the same rules, so a pattern and the URLs it should match
    /// are spelled alike (`HTTPS://API.example.com:443/v1/%7Eu/**` is `https://api.example.com/v1/~u/**`).
    /// `*` may appear in the host (`https://*.example.com/**`); to the policy's glob the host and port are one
    /// segment, so there `*` stands for any characters of it, dots and a port included. In the path it is an
    /// ordinary character here and a wildcard to the policy's glob.
    ///
    /// - Throws: `invalid-argument`, with the reason, when the pattern is no http(s) URL.
    package static func normalizedPattern(_ pattern: String) throws(HostError) -> String {
        try CanonicalURL(parsing: pattern, wildcards: true).description
    }

    private init(parsing url: String, wildcards: Bool) throws(HostError) {
        func refuse(_ reason: String) -> HostError {
            HostError(.invalidArgument, "URL refused: \(reason)")
        }
        let bytes = Array(url.utf8)
        if bytes.count > Self.maxLength { throw refuse("longer than \(Self.maxLength) bytes") }
        if let bad = bytes.first(where: { $0 <= 0x20 || $0 >= 0x7f }) {
            throw refuse(bad >= 0x80
                ? "non-ASCII characters; percent-encode them (and use the xn-- form for international host names)"
                : "spaces or control characters; percent-encode them")
        }
        if bytes.contains(UInt8(ascii: "\\")) { throw refuse("backslash") }
        if bytes.contains(UInt8(ascii: "#")) { throw refuse("fragment ('#...'); fragments are never sent to a server, remove it") }

        let lower = url.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            scheme = "http"
            rest = url.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            scheme = "https"
            rest = url.dropFirst(8)
        } else {
            throw refuse("only http:// and https:// URLs are allowed")
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        if authority.utf8.contains(UInt8(ascii: "@")) { throw refuse("user information ('user@host') is not allowed; use a header") }

        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw refuse("unclosed '[' in the host") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw refuse("unexpected characters after ']'") }
                portPart = after.dropFirst()
            }
            if hostPart.utf8.contains(UInt8(ascii: "%")) { throw refuse("IPv6 zone identifiers are not allowed") }
            guard let address = IPAddress(String(hostPart)), address.isIPv6 else { throw refuse("'[\(hostPart)]' is not an IPv6 address") }
            host = .address(address)
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostPart = authority[..<colon]
                portPart = authority[authority.index(after: colon)...]
            }
            host = try Self.parseHost(hostPart, wildcards: wildcards, refuse: refuse)
        }

        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(portPart), (1...65535).contains(number)
            else { throw refuse("the port must be a number from 1 to 65535") }
            port = number
        } else {
            port = scheme == "https" ? 443 : 80
        }

        let pathAndQuery = rest[authorityEnd...]
        let queryStart = pathAndQuery.firstIndex(of: "?")
        let rawPath = pathAndQuery[..<(queryStart ?? pathAndQuery.endIndex)]
        let rawQuery = queryStart.map { pathAndQuery[pathAndQuery.index(after: $0)...] } ?? ""
        let path = try Self.canonicalPath(rawPath, refuse: refuse)
        let query = try Self.canonicalEscapes(rawQuery, extra: "/?", refuse: refuse)
        target = query.isEmpty ? path : path + "?" + query
    }

    private static func parseHost(_ text: Substring, wildcards: Bool, refuse: (String) -> HostError) throws(HostError) -> Host {
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name.isEmpty { throw refuse("the host is empty") }
        if name.utf8.contains(UInt8(ascii: "%")) { throw refuse("percent-escapes in the host are not allowed") }
        if name.utf8.count > 253 { throw refuse("the host name is longer than 253 bytes") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            if label.isEmpty { throw refuse("the host has an empty label ('..')") }
            if label.count > 63 { throw refuse("a host label is longer than 63 bytes") }
            if wildcards && label == "*" { continue }
            if !label.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) {
                throw refuse("the host '\(text)' contains characters other than letters, digits, '-', '_' and '.'")
            }
        }
        // WHATWG parsers read a host whose last label is numeric as an IPv4 address in any of several
        // notations; accept only the one notation everybody reads the same way.
        let last = labels[labels.count - 1]
        let lastIsNumeric = last.utf8.allSatisfy(isDigit)
            || (last.hasPrefix("0x") && last.dropFirst(2).utf8.allSatisfy(isHexDigit))
        if lastIsNumeric {
            let strict = labels.count == 4 && labels.allSatisfy { label in
                label.utf8.allSatisfy(isDigit) && label.count <= 3 && (label == "0" || !label.hasPrefix("0"))
                    && (Int(label) ?? 256) <= 255
            }
            guard strict, let address = IPAddress(name), !address.isIPv6 else {
                throw refuse("ambiguous numeric host '\(text)'; write an IPv4 address as four decimal numbers (e.g. 93.184.215.14)")
            }
            return .address(address)
        }
        return .name(name)
    }

    /// The path with escapes normalized and dot segments removed; `/` when empty.
    private static func canonicalPath(_ raw: Substring, refuse: (String) -> HostError) throws(HostError) -> String {
        let escaped = try canonicalEscapes(raw, extra: "/", refuse: refuse)
        // Escapes are uppercase by now; the text is ASCII, so bytes are characters.
        let text = Array(escaped.utf8)
        for forbidden in ["%2F", "%5C", "%00"] where containsBytes(text, Array(forbidden.utf8)) {
            throw refuse("the path contains \(forbidden) (an encoded '/', '\\' or NUL)")
        }
        // A `?` or control character written encoded: a server that decodes the path before it splits off the query
        // (an nginx `proxy_pass ...$uri`) serves `/files/secret.key%3F.txt` as `/files/secret.key`, outside a grant on
        // `/files/*.txt`. (`%23` stays: `C%23` is a real page name, and no server splits a fragment off a request.)
        // And one encoded twice (`%252E`) is a dot, a slash or a delimiter to a server that decodes twice. An empty
        // segment (`//`) stays too (`https://r.jina.ai/https://example.com/`); a `*` never matches one (Glob.swift).
        // Escapes are well formed and uppercase by now (`canonicalEscapes`).
        func escapeValue(at index: Int) -> UInt8? { Self.escapeValue(in: text, at: index) }
        for index in text.indices {
            guard let byte = escapeValue(at: index) else { continue }
            if byte == UInt8(ascii: "?") || byte < 0x20 || byte == 0x7F {
                let spelled = String(decoding: text[index..<(index + 3)], as: UTF8.self)
                throw refuse("the path contains \(spelled) (an encoded '?' or control character), which a server that decodes the path first reads as a delimiter")
            }
            // `%25` then two hex digits: an escape encoded twice.
            if byte == UInt8(ascii: "%"), index + 4 < text.count, isHexDigit(text[index + 3]), isHexDigit(text[index + 4]) {
                let inner = hexValue(text[index + 3]) << 4 | hexValue(text[index + 4])
                if inner < 0x20 || inner == 0x7F || #"./\;?#%"#.utf8.contains(inner) {
                    let twice = String(decoding: text[index..<(index + 5)], as: UTF8.self)
                    throw refuse("the path contains \(twice) (an escape encoded twice), which a server that decodes twice reads as a delimiter or dot")
                }
            }
        }
        // A dot, slash or delimiter in disguise: an overlong UTF-8 form (`%C0%AE` is '.' to a decoder that does not
        // check the shortest form, as IIS's once did) or a character that Unicode normalization (NFC or NFKC, which some
        // servers and frameworks apply to paths) turns into one (fullwidth `%EF%BC%8E` becomes '.'); written once, or
        // encoded twice (`%25C0%25AE`) for a server that decodes twice.
        let onceDecoded = Self.decodingEncodedPercents(text)
        for view in onceDecoded == text ? [text] : [text, onceDecoded] {
            if let disguised = Self.firstDisguisedDelimiter(in: view) {
                throw refuse("the path contains \(disguised.spelled) (\(disguised.reason)), which a server that decodes or normalizes it reads as a dot, slash or delimiter")
            }
        }
        var output: [Substring] = []
        let segments = escaped.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        // Servers that strip RFC 2396 path parameters (Tomcat, Jetty, Spring) serve `/files/secret.key;.txt` as
        // `/files/secret.key`, which a grant on `/files/*.txt` does not cover, and read `..;x` as `..`
        // (`/allowed/..;/secret` decided inside `/allowed/`, served outside it); others serve the path as written.
        // A pattern cannot say which file such a path names, so a `;` in the path is refused, written or encoded
        // (a server that decodes before it strips reads `%3B` the same way: the reason Spring's firewall refuses it).
        // Escapes are uppercase by now, so `%3B` has one spelling. A query may hold `;`.
        for segment in segments where segment.contains(";") || segment.contains("%3B") {
            let dot = ["..;", ".;", "..%3B", ".%3B"].contains(where: { segment.hasPrefix($0) })
            throw refuse(dot ? "a '.' or '..' segment with parameters ('..;'), which servers read as a dot segment"
                             : "the path contains ';' (or %3B), which some servers read as the start of path parameters and strip; a grant could not say which file is served")
        }
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            switch segment {
            case ".":
                if isLast { output.append("") }
            case "..":
                _ = output.popLast()
                if isLast { output.append("") }
            default:
                output.append(segment)
            }
        }
        return "/" + output.joined(separator: "/")
    }

    /// The code points whose NFKC normalization (and so NFC's, a subset) holds `.`, `/`, `\`, `;`, `?`, `#` or `%`:
    /// every one in Unicode 14 (fullwidth and small forms, the dot leaders and ellipsis, U+037E GREEK QUESTION MARK,
    /// which NFC alone turns into `;`, U+2100 ACCOUNT OF, which becomes `a/c`, "1." to "20.", ...). Sorted.
    static let normalizingToDelimiters: [UInt32] = [
        0x37E, 0x2024, 0x2025, 0x2026, 0x2047, 0x2048, 0x2049, 0x2100, 0x2101, 0x2105, 0x2106, 0x2488, 0x2489, 0x248A,
        0x248B, 0x248C, 0x248D, 0x248E, 0x248F, 0x2490, 0x2491, 0x2492, 0x2493, 0x2494, 0x2495, 0x2496, 0x2497, 0x2498,
        0x2499, 0x249A, 0x249B, 0x33C2, 0x33C7, 0x33D8, 0xFE14, 0xFE16, 0xFE19, 0xFE30, 0xFE52, 0xFE54, 0xFE56, 0xFE5F,
        0xFE68, 0xFE6A, 0xFF03, 0xFF05, 0xFF0E, 0xFF0F, 0xFF1B, 0xFF1F, 0xFF3C, 0x1F100,
    ]

    /// The byte the escape `%XY` at `index` of `text` stands for, or `nil` where none starts there.
    private static func escapeValue(in text: [UInt8], at index: Int) -> UInt8? {
        guard index >= 0, index + 2 < text.count, text[index] == UInt8(ascii: "%"),
              isHexDigit(text[index + 1]), isHexDigit(text[index + 2]) else { return nil }
        return hexValue(text[index + 1]) << 4 | hexValue(text[index + 2])
    }

    /// `text` (canonical escapes, uppercase) with every `%25XY` (an escape encoded twice) read once: `%XY`.
    static func decodingEncodedPercents(_ text: [UInt8]) -> [UInt8] {
        guard containsBytes(text, Array("%25".utf8)) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var index = 0
        while index < text.count {
            if index + 4 < text.count, text[index] == UInt8(ascii: "%"), text[index + 1] == UInt8(ascii: "2"),
               text[index + 2] == UInt8(ascii: "5"), isHexDigit(text[index + 3]), isHexDigit(text[index + 4]) {
                out += [UInt8(ascii: "%"), text[index + 3], text[index + 4]]
                index += 5
            } else {
                out.append(text[index])
                index += 1
            }
        }
        return out
    }

    /// The first run of escapes in `text` that spells, as UTF-8 or as a lenient decoder reads it, something a server
    /// could take for a dot, slash or delimiter: an overlong form (`%C0%AE`, `%E0%80%AE`, the 5- and 6-byte forms of
    /// old decoders), a lead byte no UTF-8 has (`F5`-`FF`) before continuation bytes, or a code point in
    /// ``normalizingToDelimiters``. Bytes that do not form such a run (Latin-1 `%C1lvaro`, EUC-KR `%C0%CC`) pass: they
    /// are text in another encoding, which no decoder reads as a delimiter.
    static func firstDisguisedDelimiter(in text: [UInt8]) -> (spelled: String, reason: String)? {
        func escape(at index: Int) -> UInt8? { escapeValue(in: text, at: index) }
        var index = 0
        while index < text.count {
            guard let lead = escape(at: index), lead >= 0xC0 else { index += 1; continue }
            // The length the lead byte announces, 2 to 6 (5 and 6: the original UTF-8, which some decoders still read).
            let length = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : lead < 0xFC ? 5 : lead < 0xFE ? 6 : 1
            var value = UInt32(lead) & (length == 1 ? 0 : (UInt32(1) << (7 - length)) - 1)
            var count = 1
            while count < length, let next = escape(at: index + 3 * count), next & 0xC0 == 0x80 {
                value = value << 6 | UInt32(next & 0x3F)
                count += 1
            }
            guard count == length, length > 1 else { index += 3; continue }
            let spelled = String(decoding: text[index..<(index + 3 * length)], as: UTF8.self)
            let shortest = value < 0x80 ? 1 : value < 0x800 ? 2 : value < 0x1_0000 ? 3 : value < 0x20_0000 ? 4 : value < 0x400_0000 ? 5 : 6
            if length > shortest { return (spelled, "an overlong UTF-8 form") }
            if length > 4 || value > 0x10_FFFF { return (spelled, "a UTF-8 form past U+10FFFF, which only old decoders read") }
            if normalizingToDelimiters.contains(value) {
                return (spelled, "a character Unicode normalization turns into a dot or delimiter")
            }
            index += 3 * length
        }
        return nil
    }

    /// Checks the characters of a path or query and normalizes percent-escapes: unreserved characters
    /// decoded, everything else kept escaped with uppercase hex.
    private static func canonicalEscapes(_ raw: Substring, extra: String, refuse: (String) -> HostError) throws(HostError) -> String {
        let bytes = Array(raw.utf8)
        let allowedExtra = Array(extra.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isHexDigit(bytes[index + 1]), isHexDigit(bytes[index + 2])
                else { throw refuse("a '%' that does not start a two-digit hex escape") }
                let value = hexValue(bytes[index + 1]) << 4 | hexValue(bytes[index + 2])
                if isUnreserved(value) {
                    output.append(value)
                } else {
                    output.append(UInt8(ascii: "%"))
                    output.append(upperHex(value >> 4))
                    output.append(upperHex(value & 0xf))
                }
                index += 3
                continue
            }
            guard isUnreserved(byte) || isSubDelimiter(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "@")
                || allowedExtra.contains(byte)
            else {
                throw refuse("the character '\(Character(Unicode.Scalar(byte)))' must be percent-encoded")
            }
            output.append(byte)
            index += 1
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Whether `needle` occurs in `haystack`.
private func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
    }
    return false
}

private func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
private func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte) }
private func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) }
private func isUnreserved(_ byte: UInt8) -> Bool {
    isAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
}
private func isSubDelimiter(_ byte: UInt8) -> Bool { "!$&'()*+,;=".utf8.contains(byte) }
private func hexValue(_ byte: UInt8) -> UInt8 {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    default: byte - 0x61 + 10
    }
}
private func upperHex(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x41 + nibble - 10 }
