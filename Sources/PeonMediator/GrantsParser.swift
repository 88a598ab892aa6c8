import PeonInterface
import PeonPolicy
import PeonSystem
import Foundation
import TOMLKit

/// A grants file that does not parse or does not make sense: one line saying what, where and which key.
///
/// Rendered as `FILE:LINE: KEY: MESSAGE`, e.g.
/// `policies/summarizer.toml:12: fs[0].allow: the allow list is empty; name at least one of read, write, append, list, remove`.
package struct GrantsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The grants file path as given.
    package var file: String
    /// The 1-based line of the key (or of its table when the key is missing).
    package var line: Int
    /// The dotted key path, e.g. `fs[0].allow` (array-of-tables indices are 0-based).
    package var key: String
    /// What is wrong and what to do.
    package var message: String

    /// Creates an error.
    package init(file: String, line: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `FILE:LINE: KEY: MESSAGE` (the key is left out when the whole document is at fault).
    package var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// Parses `policies/NAME.toml` into ``Grants``, strictly: unknown keys, wrong types, empty allow lists
/// and malformed sizes, durations, rates, globs, URLs and programs are errors naming file, line and key.
///
/// TOMLKit reports positions only for syntax errors, so for everything else the parser finds the
/// key's line itself in the source text (``KeyLineIndex``).
package enum GrantsParser {
    /// The largest grants file, and the largest `[tool] input-schema` file, read: 4 MiB. A grants file is a
    /// page of TOML; the bound keeps a mistyped path (a disk image, a log) from being read whole.
    package static let maxFileBytes = 4 << 20

    /// Reads and parses the file at `path`; relative paths in `[[fs]]` are resolved against its folder.
    ///
    /// The file is read from one descriptor (``BoundedRead``): a FIFO, socket or device is refused without
    /// waiting on it, and a file over ``maxFileBytes`` is refused by its size.
    package static func load(path: String) throws(GrantsError) -> Grants {
        // Line 0 in both errors: the file as a whole (the description then names no line).
        let bytes: [UInt8]
        do throws(BoundedReadError) {
            bytes = try BoundedRead.contents(ofPath: path, limit: maxFileBytes)
        } catch {
            throw GrantsError(file: path, line: 0, key: "", message: "cannot read the grants file: \(error.reason); check the path")
        }
        // A module given where the grants go (`grants check GRANTS --grants MODULE`) was "line 2 is not UTF-8 text".
        if bytes.starts(with: [0x00, 0x61, 0x73, 0x6D]) {
            throw GrantsError(file: path, line: 0, key: "",
                              message: "this is a WebAssembly module, not a grants file; were the module and the grants swapped? (a grants file is TOML: docs/grants.md)")
        }
        // One leading byte order mark (Notepad's) is dropped (``OperatorText``).
        let text: String
        do throws(OperatorTextError) {
            text = try OperatorText.decode(bytes)
        } catch {
            throw GrantsError(file: path, line: 0, key: "", message: "cannot read the grants file: \(error.message)")
        }
        let folder = (absolutePath(path) as NSString).deletingLastPathComponent
        return try parse(text, file: path, baseDirectory: folder)
    }

    /// Parses grants text. `file` is used in messages; `baseDirectory` resolves relative `fs` paths.
    /// What to do about a TOML syntax error: the parser's own words name the symptom, often at the end of the file.
    static let syntaxHint = "check the quotes, brackets and commas at or before that line (docs/grants.md shows the format)"

    package static func parse(_ text: String, file: String, baseDirectory: String) throws(GrantsError) -> Grants {
        let bytes = Array(text.utf8)
        // A NUL byte anywhere (TOML allows none): the TOML library reads the text as a C string and dropped everything
        // after it, so `allow = ["read"]   #<NUL>` then `approval = true` granted the read without the approval.
        if let nul = bytes.firstIndex(of: 0) {
            throw GrantsError(file: file, line: bytes[..<nul].reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }, key: "",
                              message: "a NUL byte, which TOML does not allow and which would hide the rest of the file; remove it")
        }
        var scanner = TOMLHeaderScanner(bytes)
        switch scanner.firstProblem() {
        case .malformedHeader(let line):
            throw GrantsError(file: file, line: line, key: "",
                              message: "TOML syntax error: `[` must be followed by a table name, e.g. [[fs]] or [limits]")
        case .nestedTooDeeply(let line):
            throw GrantsError(file: file, line: line, key: "",
                              message: "keys nested more than \(TOMLHeaderScanner.maxKeyDepth) levels deep (table names, dotted keys, inline tables and arrays together); a grants file needs a few, see docs/grants.md")
        case .escapedNUL(let line):
            throw GrantsError(file: file, line: line, key: "",
                              message: "a string holds an escaped NUL (\\u0000), which no grant value may contain; remove it")
        case nil:
            break
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw GrantsError(file: file, line: error.source.begin.line, key: "",
                              message: "TOML syntax error at column \(error.source.begin.column): \(error.description); \(Self.syntaxHint)")
        } catch {
            throw GrantsError(file: file, line: 1, key: "", message: "TOML syntax error: \(error); \(Self.syntaxHint)")
        }
        var reader = Reader(file: file, lines: KeyLineIndex(text), baseDirectory: baseDirectory)
        return try reader.grants(root)
    }
}

/// The 1-based line of the first table header whose `[` or `[[` (and any spaces or tabs after it) is not followed
/// by a key (a letter, digit, `_`, `-` or a quote), a `]` or the end of the text, or `nil`. TOMLKit's bundled toml++
/// does not check that character before its key parser asserts it (`[` then a line break or a `\`): the
/// assertion aborts the process (undefined behaviour without assertions), and a grants file is user input that a
/// hot reload reads inside a running host, so these are refused here before TOMLKit sees the text.
///
/// A header is found where toml++ looks for one: at the start of a statement, that is of a line outside strings,
/// comments and multi-line arrays. So the text is scanned as TOML is lexed: basic and literal strings, their
/// multi-line forms (which may end in up to two extra quotes), escapes in basic strings, `#` comments to the end of
/// the line, and `[`/`{` nesting in values. (A scan that only counted `"""` per line read one in a comment as the
/// start of a string and let the next line's `[\` through.) Where the text is not valid TOML the scan goes on as
/// best it can; toml++ stops at its first error anyway. The first line is read as toml++ reads it: after one byte
/// order mark, which toml++ skips.
func firstMalformedHeader(in text: String) -> Int? {
    var scanner = TOMLHeaderScanner(Array(text.utf8))
    if case .malformedHeader(let line) = scanner.firstProblem() { return line }
    return nil
}

/// The 1-based line where a key path first goes deeper than ``TOMLHeaderScanner/maxKeyDepth`` levels, or `nil`.
///
/// toml++ bounds how deeply arrays and inline tables nest (256) but not how many parts a dotted key or a table
/// name has, and it walks the tables a key makes recursively: `a.a.a…` with 30,000 parts in a table name
/// overflowed the stack (a crash with a backtrace, not an error). The depth counted here is what that recursion
/// follows: the parts of the current table's name, of each key whose inline table or array is still open, of the
/// key being read, and one for each open array or inline table.
func firstOverDeepKey(in text: String) -> Int? {
    var scanner = TOMLHeaderScanner(Array(text.utf8))
    if case .nestedTooDeeply(let line) = scanner.firstProblem() { return line }
    return nil
}

/// The lexer behind ``firstMalformedHeader(in:)`` and ``firstOverDeepKey(in:)``: just enough of TOML's to know
/// where statements start and which dots separate the parts of a key.
struct TOMLHeaderScanner {
    /// The deepest key path accepted (see ``firstOverDeepKey(in:)``); toml++'s own bound on nested values is 256.
    static let maxKeyDepth = 128

    /// What the scan found first.
    enum Problem: Equatable {
        /// A table header whose `[` is not followed by a name, on this line.
        case malformedHeader(Int)
        /// A key path deeper than ``maxKeyDepth``, on this line.
        case nestedTooDeeply(Int)
        /// A NUL written as an escape (`\u0000`, `\U00000000`) in a basic string, on this line: TOML allows it, but
        /// the TOML library hands back the string cut at it, so `"/home/**\u0000/public/*.txt"` would grant `/home/**`.
        case escapedNUL(Int)
    }

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    /// Open `[` and `{` of values (and of the header being read) not yet closed.
    private var depth = 0
    /// Whether the bytes being read are a key (or a table header's name), where a `.` starts another part.
    private var inKey = false
    /// Whether the key being read is a table header's name (which starts from the root, not the current table).
    private var inHeader = false
    /// The parts of the key being read.
    private var keyParts = 0
    /// The parts of the last table header's name: the depth every key of that table starts from.
    private var tableParts = 0
    /// The parts of the key whose value is being read (what an inline table or array opened next sits under).
    private var valueParts = 0
    /// The open arrays (`false`) and inline tables (`true`) of values, each with the parts of the key it is under.
    private var values: [(isTable: Bool, parts: Int)] = []
    /// The depth of ``values`` in key parts, kept with it.
    private var valuesDepth = 0
    /// The line of the first escaped NUL in a basic string (``Problem/escapedNUL(_:)``).
    private var nulLine: Int?

    /// The depth of the key being read: the table's name (unless this is a header), the keys of the open values,
    /// one per open value, and the key itself.
    private var keyDepth: Int { (inHeader ? 0 : tableParts) + valuesDepth + values.count + (inKey ? keyParts : 0) }

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: OperatorText.byteOrderMark) { index = OperatorText.byteOrderMark.count }
    }

    private static let quote = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")
    private static let newline = UInt8(ascii: "\n"), hash = UInt8(ascii: "#")
    private static let open = UInt8(ascii: "["), close = UInt8(ascii: "]")

    private func byte(at offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// What toml++'s key parser accepts as a key's first byte (or reports properly when it does not: `]`).
    private static func startsKey(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == quote || byte == apostrophe || byte == close
    }

    /// Scans the whole text (or up to the first problem) and returns the first problem, or `nil`.
    mutating func firstProblem() -> Problem? {
        var atStatementStart = true
        while index < bytes.count {
            if atStatementStart {
                atStatementStart = false
                while let b = byte(at: index), Self.isSpace(b) { index += 1 }
                if byte(at: index) == Self.open {
                    var next = index + 1
                    if byte(at: next) == Self.open { next += 1 }
                    while let b = byte(at: next), Self.isSpace(b) { next += 1 }
                    if let b = byte(at: next), !Self.startsKey(b) { return .malformedHeader(line) }
                    // The header's name: its `[` (or `[[`) is read below, as every bracket is.
                    (inKey, inHeader, keyParts) = (true, true, 1)
                } else if let b = byte(at: index), b != Self.newline, b != Self.hash, b != UInt8(ascii: "\r") {
                    (inKey, inHeader, keyParts) = (true, false, 1)
                }
                continue
            }
            let b = bytes[index]
            switch b {
            case Self.newline:
                line += 1
                index += 1
                atStatementStart = depth == 0
                if atStatementStart { (inKey, inHeader, values, valuesDepth) = (false, false, [], 0) }
            case Self.hash:
                while let c = byte(at: index), c != Self.newline { index += 1 }
            case Self.quote, Self.apostrophe:
                skipString(delimiter: b)
                if let nulLine { return .escapedNUL(nulLine) }
            case UInt8(ascii: "."):
                if inKey {
                    keyParts += 1
                    if keyDepth > Self.maxKeyDepth { return .nestedTooDeeply(line) }
                }
                index += 1
            case UInt8(ascii: "="):
                if inKey { (inKey, valueParts) = (false, keyParts) }
                index += 1
            case UInt8(ascii: ","):
                // The next key of an inline table; an array's next element is a value.
                if values.last?.isTable == true { (inKey, keyParts) = (true, 1) }
                index += 1
            case Self.open, UInt8(ascii: "{"):
                depth += 1
                index += 1
                if !inKey && !inHeader {
                    values.append((isTable: b != Self.open, parts: valueParts))
                    valuesDepth += valueParts
                    valueParts = 0
                    if b != Self.open { (inKey, keyParts) = (true, 1) }
                    if keyDepth > Self.maxKeyDepth { return .nestedTooDeeply(line) }
                }
            case Self.close, UInt8(ascii: "}"):
                depth = max(0, depth - 1)
                index += 1
                if inHeader {
                    // `]` (or the first of `]]`) ends the name: the table's keys start from its depth.
                    if inKey { (inKey, tableParts) = (false, keyParts) }
                    if depth == 0 { inHeader = false }
                } else if let closed = values.popLast() {
                    valuesDepth -= closed.parts
                    inKey = false
                }
            default:
                index += 1
            }
        }
        return nil
    }

    /// Skips the string that starts at `index` (its delimiter `"` or `'`), counting the lines it spans.
    private mutating func skipString(delimiter: UInt8) {
        let escapes = delimiter == Self.quote
        if byte(at: index + 1) == delimiter && byte(at: index + 2) == delimiter {
            index += 3
            while index < bytes.count {
                let b = bytes[index]
                if escapes && b == Self.backslash {
                    if byte(at: index + 1) == Self.newline { line += 1 }
                    noteEscapedNUL(at: index)
                    index += 2
                } else if b == delimiter && byte(at: index + 1) == delimiter && byte(at: index + 2) == delimiter {
                    index += 3
                    // Up to two more quotes belong to the string, before the closing three.
                    var extra = 0
                    while extra < 2 && byte(at: index) == delimiter { index += 1; extra += 1 }
                    return
                } else {
                    if b == Self.newline { line += 1 }
                    index += 1
                }
            }
            return
        }
        index += 1
        while let b = byte(at: index) {
            if b == Self.newline { return }  // not valid TOML; the newline is read as a line's end
            index += 1
            if b == delimiter { return }
            if escapes && b == Self.backslash, let next = byte(at: index), next != Self.newline {
                noteEscapedNUL(at: index - 1)
                index += 1
            }
        }
    }

    /// Notes the line when the escape whose `\` is at `offset` is `\u0000` or `\U00000000`.
    private mutating func noteEscapedNUL(at offset: Int) {
        guard nulLine == nil, let kind = byte(at: offset + 1), kind == UInt8(ascii: "u") || kind == UInt8(ascii: "U") else { return }
        let digits = kind == UInt8(ascii: "u") ? 4 : 8
        guard offset + 1 + digits < bytes.count,
              bytes[(offset + 2)...(offset + 1 + digits)].allSatisfy({ $0 == UInt8(ascii: "0") }) else { return }
        nulLine = line
    }
}

/// The key paths the parser reports, with the source line each was written on.
struct KeyLineIndex {
    private var lines: [String: Int] = [:]

    /// Scans the text for `[table]`, `[[array]]` headers and `key =` lines, tracking the current
    /// table and array-of-tables index; keys inside multi-line strings are ignored.
    init(_ text: String) {
        var current = ""
        var arrayCounts: [String: Int] = [:]
        var inMultiline: String?
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let lineNumber = number + 1
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if let delimiter = inMultiline {
                if line.components(separatedBy: delimiter).count % 2 == 0 { inMultiline = nil }
                continue
            }
            if line.hasPrefix("[[") {
                let name = Self.headerName(line.dropFirst(2).prefix { $0 != "]" })
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                current = "\(name)[\(index)]"
                lines[current] = lines[current] ?? lineNumber
                // A misspelled array (`[[files]]`) is reported under its bare name: point at its first header.
                lines[name] = lines[name] ?? lineNumber
            } else if line.hasPrefix("[") {
                current = Self.headerName(line.dropFirst().prefix { $0 != "]" })
                lines[current] = lines[current] ?? lineNumber
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = Self.headerName(line[..<equals])
                guard !key.isEmpty else { continue }
                let path = current.isEmpty ? key : "\(current).\(key)"
                lines[path] = lines[path] ?? lineNumber
                let value = line[line.index(after: equals)...]
                for delimiter in ["\"\"\"", "'''"] where value.components(separatedBy: delimiter).count == 2 {
                    inMultiline = delimiter
                }
            }
        }
    }

    /// `a . "b c"` → `a.b c` (quotes removed, spaces around dots dropped).
    private static func headerName<S: StringProtocol>(_ raw: S) -> String {
        raw.split(separator: ".").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }.joined(separator: ".")
    }

    /// The line of `path`, or of its nearest enclosing key or table; 1 when nothing is known.
    func line(of path: String) -> Int {
        var candidate = path
        while true {
            if let line = lines[candidate] { return line }
            if let cut = candidate.lastIndex(where: { $0 == "." || $0 == "[" }) {
                candidate = String(candidate[..<cut])
            } else {
                return 1
            }
        }
    }
}

/// The parser's state: where it is and what it reports.
private struct Reader {
    let file: String
    let lines: KeyLineIndex
    let baseDirectory: String

    init(file: String, lines: KeyLineIndex, baseDirectory: String) {
        self.file = file
        self.lines = lines
        self.baseDirectory = baseDirectory
    }

    func fail(_ key: String, _ message: String) -> GrantsError {
        GrantsError(file: file, line: lines.line(of: key), key: key, message: message)
    }

    func source(_ key: String) -> GrantSource { GrantSource(file: file, line: lines.line(of: key)) }

    // MARK: Typed access

    func checkKeys(_ table: TOMLTable, _ path: String, allowed: Set<String>) throws(GrantsError) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            throw fail(full, "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func string(_ table: TOMLTable, _ key: String, _ path: String, example: String? = nil) throws(GrantsError) -> String? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else {
            // A number where a quoted duration, size or rate goes (`timeout = 30`): show the quoted form.
            let hint = example.map { "; write it quoted, e.g. \(key) = \"\($0)\"" } ?? ""
            throw fail(join(path, key), "expected a string, found \(value.type)\(hint)")
        }
        guard !text.contains("\0") else { throw fail(join(path, key), "NUL characters are not allowed") }
        return text
    }

    func int(_ table: TOMLTable, _ key: String, _ path: String) throws(GrantsError) -> Int? {
        guard let value = table[key] else { return nil }
        guard value.type == .int, let number = value.int else {
            throw fail(join(path, key), "expected an integer, found \(value.type)")
        }
        guard number > 0 else { throw fail(join(path, key), "must be greater than zero") }
        return number
    }

    func bool(_ table: TOMLTable, _ key: String, _ path: String) throws(GrantsError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let flag = value.bool else { throw fail(join(path, key), "expected true or false, found \(value.type)") }
        return flag
    }

    func strings(_ table: TOMLTable, _ key: String, _ path: String, required: Bool) throws(GrantsError) -> [String]? {
        let full = join(path, key)
        guard let value = table[key] else {
            if required { throw fail(full, "missing key `\(key)`") }
            return nil
        }
        guard let array = value.array else { throw fail(full, "expected an array of strings, found \(value.type)") }
        var result: [String] = []
        for index in 0..<array.count {
            guard let text = array[index].string else {
                throw fail(full, "element \(index) must be a string, found \(array[index].type)")
            }
            guard !text.contains("\0") else { throw fail(full, "element \(index) contains a NUL character") }
            result.append(text)
        }
        return result
    }

    func stringTable(_ table: TOMLTable, _ key: String, _ path: String) throws(GrantsError) -> [String: String]? {
        let full = join(path, key)
        guard let value = table[key] else { return nil }
        guard let inner = value.table else { throw fail(full, "expected a table of strings, found \(value.type)") }
        var result: [String: String] = [:]
        for name in inner.keys {
            guard let text = inner[name]?.string else {
                throw fail("\(full).\(name)", "expected a string, found \(inner[name]?.type.description ?? "nothing")")
            }
            guard !name.isEmpty, !name.contains("="), !name.contains("\0"), !text.contains("\0") else {
                throw fail("\(full).\(name)", "names must be non-empty without `=` or NUL, values without NUL")
            }
            result[name] = text
        }
        return result
    }

    func tables(_ root: TOMLTable, _ key: String) throws(GrantsError) -> [TOMLTable] {
        guard let value = root[key] else { return [] }
        guard let array = value.array else {
            throw fail(key, "expected an array of tables (`[[\(key)]]`), found \(value.type)")
        }
        var result: [TOMLTable] = []
        for index in 0..<array.count {
            guard let table = array[index].table else {
                throw fail("\(key)[\(index)]", "expected a table, found \(array[index].type)")
            }
            result.append(table)
        }
        return result
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    // MARK: Document

    mutating func grants(_ root: TOMLTable) throws(GrantsError) -> Grants {
        try checkKeys(root, "", allowed: ["module", "sha256", "limits", "env", "fs", "http", "db", "exec", "egress", "tool"])
        guard let module = try string(root, "module", "") else {
            throw GrantsError(file: file, line: 1, key: "module",
                              message: "missing; name the module, e.g. module = \"summarizer\"")
        }
        guard isIdentifier(module) else {
            throw fail("module", "must be 1-64 characters of A-Z a-z 0-9 . _ - (it is a policy subject)")
        }
        var sha256 = try string(root, "sha256", "")
        if let pin = sha256 {
            let lower = pin.lowercased()
            guard lower.count == 64, lower.allSatisfy({ $0.isHexDigit }) else {
                throw fail("sha256", "expected 64 hexadecimal digits (the module's SHA-256)")
            }
            sha256 = lower
        }
        var grants = Grants(module: module, sha256: sha256)
        if let value = root["limits"] {
            guard let limits = value.table else { throw fail("limits", "expected a table, found \(value.type)") }
            grants.limits = try self.limits(limits)
        }
        grants.environment = try stringTable(root, "env", "") ?? [:]
        for (index, table) in try tables(root, "fs").enumerated() {
            grants.fileSystem.append(try fileSystem(table, "fs[\(index)]"))
        }
        for (index, table) in try tables(root, "http").enumerated() {
            grants.http.append(try http(table, "http[\(index)]"))
        }
        for (index, table) in try tables(root, "db").enumerated() {
            grants.database.append(try database(table, "db[\(index)]"))
        }
        for (index, table) in try tables(root, "exec").enumerated() {
            grants.exec.append(try exec(table, "exec[\(index)]"))
        }
        if let value = root["egress"] {
            guard let table = value.table else { throw fail("egress", "expected a table, found \(value.type)") }
            grants.egress = try egress(table)
        }
        if let value = root["tool"] {
            guard let table = value.table else {
                throw fail("tool", "expected a table (`[tool]`), found \(value.type)")
            }
            grants.tool = try tool(table)
        }
        return grants
    }

    /// `[egress]`: `refuse = ["private-key", ...]` (built-in detectors) and `patterns = [{ name, regex }]`.
    mutating func egress(_ table: TOMLTable) throws(GrantsError) -> [ContentPattern] {
        try checkKeys(table, "egress", allowed: ["refuse", "patterns"])
        var patterns: [ContentPattern] = []
        for name in try strings(table, "refuse", "egress", required: false) ?? [] {
            guard let sources = ContentPattern.builtIn[name] else {
                let known = ContentPattern.builtIn.keys.sorted().joined(separator: ", ")
                throw fail("egress.refuse", "unknown detector \"\(name)\"; the built-in ones are \(known)")
            }
            for source in sources {
                do {
                    patterns.append(try ContentPattern(name: name, regex: source))
                } catch {
                    throw fail("egress.refuse", "built-in detector \(name): \(error.message)")
                }
            }
        }
        for (index, entry) in try tables(table, "patterns").enumerated() {
            let path = "egress.patterns[\(index)]"
            try checkKeys(entry, path, allowed: ["name", "regex"])
            guard let name = try string(entry, "name", path), isIdentifier(name) else {
                throw fail(join(path, "name"), "name the pattern (1-64 characters of A-Z a-z 0-9 . _ -); it is what the audit log records")
            }
            guard let regex = try string(entry, "regex", path) else { throw fail(join(path, "regex"), "missing key `regex`") }
            do {
                patterns.append(try ContentPattern(name: name, regex: regex))
            } catch {
                throw fail(join(path, "regex"), error.message)
            }
        }
        return patterns
    }

    /// The `[tool]` table: `wasm` (relative to the grants file), `description`, optional `input-schema`
    /// (an inline table, or the path of a JSON file relative to the grants file).
    func tool(_ table: TOMLTable) throws(GrantsError) -> ToolGrant {
        try checkKeys(table, "tool", allowed: ["wasm", "description", "input-schema"])
        guard let wasm = try string(table, "wasm", "tool") else {
            throw fail("tool", "missing key `wasm`; name the module binary, e.g. wasm = \"../modules/x/x.wasm\"")
        }
        guard !wasm.isEmpty else { throw fail("tool.wasm", "an empty path names no module") }
        guard let description = try string(table, "description", "tool") else {
            throw fail("tool", "missing key `description`; say in one sentence what the tool does (the model reads it)")
        }
        guard !description.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw fail("tool.description", "is empty; say in one sentence what the tool does (the model reads it)")
        }
        var schema: String?
        if let value = table["input-schema"] {
            let jsonText: String
            if let inline = value.table {
                jsonText = inline.convert(to: .json)
            } else if let file = value.string {
                guard !file.isEmpty, !file.contains("\0") else {
                    throw fail("tool.input-schema", "an empty path names no schema file")
                }
                let path = file.hasPrefix("/") ? file : baseDirectory + "/" + file
                let bytes: [UInt8]
                do throws(BoundedReadError) {
                    bytes = try BoundedRead.contents(ofPath: path, limit: GrantsParser.maxFileBytes)
                } catch {
                    throw fail("tool.input-schema", "cannot read the schema file `\(file)` (resolved to \(path)): \(error.reason); check the path")
                }
                do throws(OperatorTextError) {
                    jsonText = try OperatorText.decode(bytes)
                } catch {
                    throw fail("tool.input-schema", "cannot read the schema file `\(file)` (resolved to \(path)): \(error.message)")
                }
            } else {
                throw fail("tool.input-schema", "expected an inline table or the path of a JSON file, found \(value.type)")
            }
            schema = try inputSchema(jsonText)
        }
        let path = wasm.hasPrefix("/") ? wasm : baseDirectory + "/" + wasm
        return ToolGrant(wasm: (path as NSString).standardizingPath, description: description, inputSchema: schema,
                         source: source("tool"))
    }

    /// Checks that a schema is a JSON object with `"type": "object"` (what MCP requires of a tool's input
    /// schema) and returns it as compact JSON with sorted keys.
    func inputSchema(_ text: String) throws(GrantsError) -> String {
        // Strictly JSON, each member once: the schema is shown to clients, whose readers refuse a trailing comma and keep
        // the last of two values where this one keeps the first.
        if let problem = JSONSyntax.firstProblem(in: text.utf8) {
            throw fail("tool.input-schema", "not valid JSON at byte \(problem.offset + 1): \(problem.reason)")
        }
        if let name = JSONDuplicateMembers.first(in: text.utf8) {
            throw fail("tool.input-schema", "names the member '\(name)' twice in one object; JSON readers keep either the first or the last")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [])
        } catch {
            throw fail("tool.input-schema", "not valid JSON: \(error.localizedDescription)")
        }
        guard let object = parsed as? [String: Any] else {
            throw fail("tool.input-schema", "must be a JSON object (a JSON Schema), e.g. { type = \"object\", properties = { ... } }")
        }
        guard object["type"] as? String == "object" else {
            throw fail("tool.input-schema", "must say type = \"object\": MCP tool arguments are always an object")
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
              let compact = String(data: data, encoding: .utf8)
        else {
            throw fail("tool.input-schema", "cannot be written back as JSON")
        }
        return compact
    }

    func limits(_ table: TOMLTable) throws(GrantsError) -> GrantLimits {
        try checkKeys(table, "limits", allowed: ["memory", "timeout", "calls", "fuel"])
        var limits = GrantLimits()
        if let text = try string(table, "memory", "limits", example: "64MiB") {
            guard let size = ByteSize(parsing: text), size.bytes > 0 else {
                throw fail("limits.memory", "`\(text)` is not a size; write e.g. \"64MiB\"")
            }
            // As `--memory`: below one WebAssembly page no module with a memory could start.
            guard size.bytes >= 65_536 else {
                throw fail("limits.memory", "`\(text)` is below one WebAssembly page; write at least \"64KiB\"")
            }
            limits.memory = size
        }
        limits.timeout = try duration(table, "timeout", "limits")
        limits.calls = try int(table, "calls", "limits")
        limits.fuel = try int(table, "fuel", "limits")
        return limits
    }

    func duration(_ table: TOMLTable, _ key: String, _ path: String) throws(GrantsError) -> Duration? {
        guard let text = try string(table, key, path, example: "30s") else { return nil }
        guard let value = parseGrantDuration(text) else {
            throw fail(join(path, key), "`\(text)` is not \(grantDurationHint)")
        }
        return value
    }

    func size(_ table: TOMLTable, _ key: String, _ path: String) throws(GrantsError) -> ByteSize? {
        guard let text = try string(table, key, path, example: "2MiB") else { return nil }
        guard let value = ByteSize(parsing: text), value.bytes > 0 else {
            throw fail(join(path, key), "`\(text)` is not a size; write e.g. \"2MiB\"")
        }
        return value
    }

    func conditions(_ table: TOMLTable, _ path: String) throws(GrantsError) -> GrantConditions {
        var conditions = GrantConditions()
        if let text = try string(table, "rate", path, example: "60/minute") {
            guard let rate = Rate(parsing: text) else {
                throw fail(join(path, "rate"), "`\(text)` is not a rate; write e.g. \"60/minute\"")
            }
            conditions.rate = rate
        }
        if let value = table["approval"] {
            if let flag = value.bool {
                conditions.approval = flag ? .everyCall : .never
            } else if value.string == "first-use" {
                conditions.approval = .firstUse
            } else {
                throw fail(join(path, "approval"), "expected true, false or \"first-use\", found \(value.type)")
            }
        }
        return conditions
    }

    func allowList<A: RawRepresentable & CaseIterable>(
        _ table: TOMLTable, _ path: String, as: A.Type
    ) throws(GrantsError) -> [A] where A.RawValue == String {
        let names = A.allCases.map(\.rawValue).joined(separator: ", ")
        guard let words = try strings(table, "allow", path, required: false), !words.isEmpty else {
            throw fail(join(path, "allow"), "the allow list is empty or missing; name at least one of \(names)")
        }
        var result: [A] = []
        for word in words {
            guard let access = A(rawValue: word) else {
                throw fail(join(path, "allow"), "unknown operation `\(word)`; expected one of \(names)")
            }
            if !result.contains(where: { $0.rawValue == access.rawValue }) { result.append(access) }
        }
        return result
    }

    func nonEmpty(_ list: [String]?, _ path: String, _ key: String, _ example: String) throws(GrantsError) -> [String] {
        guard let list, !list.isEmpty else {
            throw fail(join(path, key), "the list is empty or missing; write e.g. \(key) = \(example)")
        }
        return list
    }

    // MARK: Grants

    func fileSystem(_ table: TOMLTable, _ path: String) throws(GrantsError) -> FileSystemGrant {
        try checkKeys(table, path, allowed: ["paths", "allow", "rate", "approval", "labels", "clearance"])
        let raw = try nonEmpty(try strings(table, "paths", path, required: true), path, "paths", "[\"/srv/reports/**\"]")
        var paths: [String] = []
        for pattern in raw {
            guard !pattern.isEmpty else { throw fail(join(path, "paths"), "an empty path matches nothing") }
            // A shell expands `~`; a grants file does not, and `~/notes/**` would grant a folder named `~` beside it.
            if pattern == "~" || pattern.hasPrefix("~/") {
                throw fail(join(path, "paths"), "`\(pattern)`: `~` is not expanded here (it would name a folder called `~` beside the grants file); write the absolute path, e.g. /home/NAME/\(pattern.dropFirst(min(2, pattern.count)))")
            }
            let absolute = pattern.hasPrefix("/") ? pattern : baseDirectory + "/" + pattern
            let normalized = GuestPath.normalizedPattern(absolute)
            // A `..` that takes back a name the path wrote makes the grant read as another folder than the one it
            // grants: `/srv/data/../../etc/**` is `/etc/**`. Only leading `..` of a relative path (`../shared/**`,
            // from the grants file's folder) is kept.
            if let name = Self.nameTakenBack(in: pattern) {
                throw fail(join(path, "paths"), "`\(pattern)`: the `..` after `\(name)` takes back a folder the path names, so it reads as another path than the one granted; write the path it means: \(normalized)")
            }
            guard globIsWellFormed(normalized) else {
                throw fail(join(path, "paths"), "`\(pattern)`: `**` must be a whole path segment (e.g. /srv/**/x.txt)")
            }
            try checkPolicyCell(normalized, join(path, "paths"))
            paths.append(normalized)
        }
        let access = try allowList(table, path, as: FileSystemAccess.self)
        let labels = try labelList(table, "labels", path,
                                   applies: access.contains(.read) || access.contains(.list), needs: "read or list")
        let clearance = try labelList(
            table, "clearance", path,
            applies: access.contains(.write) || access.contains(.append) || access.contains(.remove),
            needs: "write, append or remove")
        return FileSystemGrant(
            paths: paths, access: access, labels: labels, clearance: clearance,
            conditions: try conditions(table, path), source: source(path))
    }

    /// The name a `..` segment of `pattern` takes back (the segment written before it; `/` for a `..` right after the
    /// root), or `nil` when every `..` leads a relative path. `.` segments and empty ones change no name and pass.
    static func nameTakenBack(in pattern: String) -> String? {
        var previous: Substring? = pattern.hasPrefix("/") ? "/" : nil
        for segment in pattern.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == ".." {
                if let previous { return String(previous) }
            } else if segment != "." {
                previous = segment
            }
        }
        return nil
    }

    func http(_ table: TOMLTable, _ path: String) throws(GrantsError) -> HTTPGrant {
        try checkKeys(table, path, allowed: ["urls", "methods", "rate", "approval", "max-response", "timeout", "headers",
                                                   "labels", "clearance"])
        let raw = try nonEmpty(try strings(table, "urls", path, required: true), path, "urls",
                               "[\"https://api.example.com/v1/**\"]")
        var urls: [String] = []
        for url in raw {
            let normalized: String
            do {
                normalized = try CanonicalURL.normalizedPattern(url)
            } catch {
                throw fail(join(path, "urls"),
                           "`\(url)` is not an http(s) URL pattern (\(error.message)), e.g. https://api.example.com/v1/**")
            }
            guard globIsWellFormed(normalized) else {
                throw fail(join(path, "urls"), "`\(url)`: `**` must be a whole path segment")
            }
            try checkPolicyCell(normalized, join(path, "urls"))
            urls.append(normalized)
        }
        let methodList = try nonEmpty(try strings(table, "methods", path, required: true), path, "methods", "[\"GET\"]")
        var methods: [String] = []
        for method in methodList {
            let upper = method.uppercased()
            guard !upper.isEmpty, upper.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "-") }) else {
                throw fail(join(path, "methods"), "`\(method)` is not an HTTP method")
            }
            if !methods.contains(upper) { methods.append(upper) }
        }
        var headers: [InjectedHeader] = []
        for (name, value) in (try stringTable(table, "headers", path) ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
                throw fail(join(path, "headers.\(name)"), "not a valid header name")
            }
            guard !value.contains("\r"), !value.contains("\n") else {
                throw fail(join(path, "headers.\(name)"), "header values cannot contain line breaks")
            }
            if value.hasPrefix("env:") {
                let variable = String(value.dropFirst(4))
                guard !variable.isEmpty else { throw fail(join(path, "headers.\(name)"), "`env:` needs a variable name") }
                headers.append(InjectedHeader(name: name, value: .environment(variable)))
            } else {
                headers.append(InjectedHeader(name: name, value: .literal(value)))
            }
        }
        return HTTPGrant(
            urls: urls, methods: methods, maxResponse: try size(table, "max-response", path),
            timeout: try duration(table, "timeout", path), headers: headers,
            labels: try labelList(table, "labels", path, applies: true, needs: ""),
            clearance: try labelList(table, "clearance", path, applies: true, needs: ""),
            conditions: try conditions(table, path), source: source(path))
    }

    func database(_ table: TOMLTable, _ path: String) throws(GrantsError) -> DatabaseGrant {
        try checkKeys(table, path, allowed: ["database", "tables", "allow", "rate", "approval", "labels", "clearance"])
        guard let name = try string(table, "database", path) else { throw fail(path, "missing key `database`") }
        guard isIdentifier(name) else {
            throw fail(join(path, "database"), "must be 1-64 characters of A-Z a-z 0-9 . _ - (the --db NAME)")
        }
        let tables = try nonEmpty(try strings(table, "tables", path, required: true), path, "tables", "[\"orders\"]")
        for tableName in tables {
            guard !tableName.isEmpty, !tableName.contains("/"), globIsWellFormed(tableName) else {
                throw fail(join(path, "tables"), "`\(tableName)` is not a table name or `*`")
            }
            try checkPolicyCell(tableName, join(path, "tables"))
        }
        let access = try allowList(table, path, as: DatabaseOperation.self)
        let labels = try labelList(table, "labels", path, applies: access.contains(.read), needs: "read")
        let clearance = try labelList(table, "clearance", path, applies: access.contains { $0 != .read },
                                      needs: "insert, update, delete or schema")
        return DatabaseGrant(
            database: name, tables: tables, access: access, labels: labels, clearance: clearance,
            conditions: try conditions(table, path), source: source(path))
    }

    func exec(_ table: TOMLTable, _ path: String) throws(GrantsError) -> ExecGrant {
        try checkKeys(table, path, allowed: ["program", "args", "env", "timeout", "max-output", "rate", "approval",
                                                   "clearance", "labels"])
        guard let program = try string(table, "program", path) else { throw fail(path, "missing key `program`") }
        guard (try? ProgramPath(parsing: program)) != nil, !program.contains("*") else {
            throw fail(join(path, "program"), "`\(program)` must be an absolute, normalized path without wildcards")
        }
        try checkPolicyCell(program, join(path, "program"))
        let arguments = try strings(table, "args", path, required: false) ?? []
        return ExecGrant(
            program: program, arguments: arguments, environment: try stringTable(table, "env", path) ?? [:],
            timeout: try duration(table, "timeout", path), maxOutput: try size(table, "max-output", path),
            clearance: try labelList(table, "clearance", path, applies: true, needs: ""),
            labels: try labelList(table, "labels", path, applies: true, needs: ""),
            conditions: try conditions(table, path), source: source(path))
    }

    /// A `labels` or `clearance` list: identifiers, deduplicated and sorted. `applies` is whether the
    /// grant allows an operation the key means something for (`needs` names them).
    func labelList(
        _ table: TOMLTable, _ key: String, _ path: String, applies: Bool, needs: String
    ) throws(GrantsError) -> [String] {
        guard let names = try strings(table, key, path, required: false) else { return [] }
        guard applies else {
            throw fail(join(path, key), "`\(key)` applies only to a grant that allows \(needs)")
        }
        for name in names where !isIdentifier(name) || name.contains(",") {
            throw fail(join(path, key), "`\(name)` is not a label; use 1-64 characters of A-Z a-z 0-9 . _ -")
        }
        return Array(Set(names)).sorted()
    }

    /// Policy values travel as CSV cells: refuse what would need quoting.
    func checkPolicyCell(_ value: String, _ key: String) throws(GrantsError) {
        guard !value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            throw fail(key, "`\(value)` contains a comma, quote or line break, which a policy line cannot carry")
        }
    }
}

/// Whether `text` can name a database in grants (`[[db]] database = ...`) and so in `--db NAME=PATH`: 1-64
/// characters of `A-Z a-z 0-9 . _ -`. A binding under any other name could never be granted.
package func isDatabaseName(_ text: String) -> Bool { isIdentifier(text) }

/// Whether `text` can name an information-flow label in grants (`labels = [...]`), and so be one a run holds.
package func isLabelName(_ text: String) -> Bool { isIdentifier(text) }

/// 1-64 characters of `A-Z a-z 0-9 . _ -`.
func isIdentifier(_ text: String) -> Bool {
    !text.isEmpty && text.count <= 64
        && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
}

/// The working directory joined with `path` when it is relative.
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}
