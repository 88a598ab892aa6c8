// Decoding the text files an operator writes by hand, as the editors they use save them.

/// Why ``OperatorText/decode(_:)`` refused a file's bytes. ``message`` is the end of a one-line error (why, then
/// what to do); each caller puts what the file was for before it and maps the failure to its own exit code. Text
/// read from standard input (`-`) takes ``message(readFromStandardInput:)`` instead, which names no path.
package enum OperatorTextError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not valid UTF-8; `line` is the 1-based line of the first byte that is not.
    case notUTF8(line: Int)
    /// A second byte order mark follows the first one at the start of the file.
    case repeatedByteOrderMark

    /// Why the text was refused and what to do, e.g. `line 2 is not UTF-8 text; check that the path names the right
    /// file, or save it as UTF-8`.
    package var message: String {
        switch self {
        case .notUTF8(let line): "line \(line) is not UTF-8 text; check that the path names the right file, or save it as UTF-8"
        case .repeatedByteOrderMark: "it starts with two UTF-8 byte order marks (EF BB BF EF BB BF); save it as UTF-8 with one or none"
        }
    }

    /// Why text read from standard input was refused and what to do, where ``message`` would send the operator to a
    /// path there is none of: `what` names the text, e.g. `the requests read from standard input`, giving
    /// `it is not UTF-8 text; the requests read from standard input must be UTF-8`.
    package func message(readFromStandardInput what: String) -> String {
        switch self {
        case .notUTF8(let line): "line \(line) is not UTF-8 text; \(what) must be UTF-8"
        case .repeatedByteOrderMark: "it starts with two UTF-8 byte order marks (EF BB BF EF BB BF); \(what) may start with one or none"
        }
    }

    /// The ``message``.
    package var description: String { message }
}

/// The text of a file an operator edits by hand: a grants file (TOML), a `[tool]` `input-schema` file (JSON), a
/// Casbin model (`.conf`) or policy (`.csv`), `policy eval` requests (JSON Lines), a module's WebAssembly text (`.wat`).
///
/// Windows editors (Notepad) save UTF-8 with a leading byte order mark, EF BB BF, that no editor shows. Kept, it
/// is glued to the file's first key or line: the policy line `p, alice, data1, read` names the rule type
/// "\u{FEFF}p" (which Casbin's own file adapter, pycasbin's, drops without a word while the operator believes the
/// rule is in effect), and a model's first section header is not a header. So exactly one byte order mark at the
/// very start is dropped before the text is parsed, whatever the format. Two there are refused: the TOML and JSON
/// parsers would skip the second one silently too. A mark anywhere else stays in the text, where each parser
/// rejects it or takes it as data, as before. Line numbers are unchanged (the mark is not a line), and columns on
/// the first line are the ones the editor shows.
package enum OperatorText {
    /// U+FEFF in UTF-8: the byte order mark an editor may put at the start of a file.
    package static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// `bytes` as UTF-8 text without one leading byte order mark.
    package static func decode(_ bytes: [UInt8]) throws(OperatorTextError) -> String {
        var body = bytes[...]
        if body.starts(with: byteOrderMark) {
            body = body.dropFirst(byteOrderMark.count)
            if body.starts(with: byteOrderMark) { throw .repeatedByteOrderMark }
        }
        guard let text = String(validating: body, as: UTF8.self) else { throw .notUTF8(line: firstInvalidLine(body)) }
        return text
    }

    /// The 1-based line of the first byte of `bytes` that is not part of valid UTF-8 (1 if none is found).
    static func firstInvalidLine(_ bytes: ArraySlice<UInt8>) -> Int {
        var line = 1
        var lineStart = bytes.startIndex
        for index in bytes.indices where bytes[index] == 0x0A {
            // The lines before the first invalid one decode; the first that does not holds it.
            if String(validating: bytes[lineStart..<index], as: UTF8.self) == nil { return line }
            line += 1
            lineStart = index + 1
        }
        return line
    }
}
