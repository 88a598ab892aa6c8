import Foundation
import PeonTestSupport
import Testing

/// The documentation keeps telling the truth about the command line: every `peon-wasm` invocation in a
/// fenced `sh` or `console` block of `README.md`, `docs/*.md` and the example modules' `modules/**/README.md`
/// names a real subcommand and only real options; the ones that only read repository files are run and must succeed (with the output a
/// `console` block shows, when it shows it untrimmed); the README's quickstart is run end to end; no command
/// names a fixed path in `/tmp`; and every exit status the code can produce is in `docs/cli.md`.
@Suite("Docs: commands and exit codes", .serialized)
struct DocsCommandTests {
    /// One `peon-wasm` invocation found in a fenced block.
    struct Invocation: CustomStringConvertible {
        /// The Markdown file, relative to the repository root.
        var file: String
        /// The 1-based line of the command's first line.
        var line: Int
        /// The words after `peon-wasm`.
        var arguments: [String]
        /// What a `console` block shows after the command, up to the next prompt or the block's end.
        var shownOutput: String?

        var description: String { "\(file):\(line): peon-wasm \(arguments.joined(separator: " "))" }

        /// The subcommand path: `["run"]`, `["audit", "verify"]`, or `[]` for the root command.
        var subcommand: [String] {
            guard let first = arguments.first, !first.hasPrefix("-") else { return [] }
            if first == "help" { return [] }
            if ["grants", "policy", "audit"].contains(first), arguments.count > 1 { return [first, arguments[1]] }
            return [first]
        }

        /// The `--long` options used before a bare `--`, without `=VALUE`.
        var longOptions: [String] {
            var options: [String] = []
            for word in arguments {
                if word == "--" { break }
                if word.hasPrefix("--") {
                    options.append(String(word.split(separator: "=", maxSplits: 1).first ?? Substring(word)))
                }
            }
            return options
        }
    }

    /// The Markdown files the suite reads: the README, `docs/*.md`, and every `README.md` under `modules/`
    /// (outside the folders a toolchain's build leaves behind, which .gitignore lists).
    static var documents: [String] {
        let docs = repositoryRoot.appendingPathComponent("docs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: docs.path)) ?? []
        return ["README.md"] + names.filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" } + moduleReadmes
    }

    /// `modules/**/README.md`, relative to the repository root, sorted.
    static var moduleReadmes: [String] {
        let modules = repositoryRoot.appendingPathComponent("modules")
        let paths = FileManager.default.enumerator(atPath: modules.path)?.compactMap { $0 as? String } ?? []
        let buildFolders: Set<String> = ["target", ".zig-cache", "__pycache__"]
        return paths.filter { path in
            let parts = path.split(separator: "/").map(String.init)
            return parts.last == "README.md" && !parts.contains(where: buildFolders.contains)
        }.sorted().map { "modules/\($0)" }
    }

    /// The files `.gitignore` names one by one (`/modules/py-researcher/researcher.wasm`): build products a fresh
    /// clone lacks until a toolchain builds them, which CI does only when it can install that toolchain.
    static var buildProducts: Set<String> {
        guard let text = try? String(contentsOf: repositoryRoot.appendingPathComponent(".gitignore"), encoding: .utf8) else { return [] }
        return Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("/"), !line.hasSuffix("/"), !line.contains("*") else { return nil }
            return String(line.dropFirst())
        })
    }

    /// The fenced blocks of `file`: each block's info string (`sh`, `console`, `swift`, ...) and its lines with
    /// their 1-based numbers.
    static func fencedBlocks(in file: String) throws -> [(info: String, body: [(Int, String)])] {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent(file), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        var blocks: [(info: String, body: [(Int, String)])] = []
        var index = 0
        while index < lines.count {
            let fence = lines[index].trimmingCharacters(in: .whitespaces)
            guard fence.hasPrefix("```") else { index += 1; continue }
            let info = fence.dropFirst(3).trimmingCharacters(in: .whitespaces)
            var body: [(Int, String)] = []
            index += 1
            while index < lines.count, !lines[index].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                body.append((index + 1, lines[index]))
                index += 1
            }
            index += 1
            blocks.append((info, body))
        }
        return blocks
    }

    /// Every `peon-wasm` invocation in the fenced `sh` and `console` blocks of `file`.
    static func invocations(in file: String) throws -> [Invocation] {
        var found: [Invocation] = []
        for (info, body) in try fencedBlocks(in: file) {
            guard info == "sh" || info == "console" else { continue }
            found += commands(in: body, console: info == "console").compactMap { line, command, output in
                let segments = shellSegments(command)
                return segments.compactMap { words -> Invocation? in
                    var words = words
                    if words.starts(with: ["swift", "run"]) { words.removeFirst(2) }
                    guard words.first == "peon-wasm" else { return nil }
                    return Invocation(file: file, line: line, arguments: Array(words.dropFirst()), shownOutput: output)
                }.first
            }
        }
        return found
    }

    /// The commands of a block with their line numbers: every non-comment line of an `sh` block, the
    /// `$ ` lines of a `console` block (with the output shown after each); `\` continues a line.
    static func commands(in body: [(Int, String)], console: Bool) -> [(Int, String, String?)] {
        var result: [(Int, String, String?)] = []
        var position = 0
        while position < body.count {
            let (number, raw) = body[position]
            position += 1
            var line = raw
            if console {
                guard line.hasPrefix("$ ") else { continue }
                line.removeFirst(2)
            }
            while line.hasSuffix("\\"), position < body.count {
                line.removeLast()
                line += " " + body[position].1.trimmingCharacters(in: .whitespaces)
                position += 1
            }
            var output: String?
            if console {
                var shown: [String] = []
                while position < body.count, !body[position].1.hasPrefix("$ ") {
                    shown.append(body[position].1)
                    position += 1
                }
                output = shown.joined(separator: "\n")
            }
            result.append((number, line, output))
        }
        return result
    }

    /// Splits a shell line into the word lists of its simple commands (split at `&&`, `||`, `|`, `;`,
    /// `&`), honouring quotes and backslashes, dropping a `#` comment and redirections (with
    /// `keepingRedirections`, a redirection's file stays in as a word: `> /tmp/x.toml` gives `/tmp/x.toml`).
    static func shellSegments(_ line: String, keepingRedirections: Bool = false) -> [[String]] {
        var segments: [[String]] = []
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var skipNextWord = false
        func endWord() {
            if inWord {
                if skipNextWord { skipNextWord = false } else { words.append(word) }
            }
            word = ""
            inWord = false
        }
        func endSegment() {
            endWord()
            if !words.isEmpty { segments.append(words) }
            words = []
        }
        var characters = Array(line)[...]
        while let character = characters.popFirst() {
            if let open = quote {
                if character == open {
                    quote = nil
                } else if open == "\"", character == "\\", let next = characters.popFirst() {
                    word.append(next)
                } else {
                    word.append(character)
                }
                continue
            }
            switch character {
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                if let next = characters.popFirst() { word.append(next); inWord = true }
            case " ", "\t":
                endWord()
            case "#" where !inWord:
                characters = []
            case "&", "|", ";":
                endSegment()
                if characters.first == character { characters.removeFirst() }
            case ">", "<":
                endWord()
                if characters.first == character { characters.removeFirst() }
                skipNextWord = !keepingRedirections
            default:
                word.append(character)
                inWord = true
            }
        }
        endSegment()
        return segments
    }

    /// The subcommand names listed in the SUBCOMMANDS section of `peon-wasm PARENT --help`.
    static func subcommands(of parent: [String]) throws -> Set<String> {
        let help = try runPeonWasm(parent + ["--help"])
        guard let section = help.stdout.range(of: "SUBCOMMANDS:\n") else { return [] }
        var names = Set<String>()
        // Entries are indented by exactly two spaces; wrapped descriptions by many more.
        for line in help.stdout[section.upperBound...].split(separator: "\n")
        where line.hasPrefix("  ") && !line.hasPrefix("   ") {
            if let name = line.split(separator: " ").first { names.insert(String(name)) }
        }
        return names
    }

    /// The `--long` options `peon-wasm SUBCOMMAND --help` lists, or nil when that is not a subcommand.
    /// (ArgumentParser answers `--help` after an unknown subcommand with its parent's help, so each
    /// word is looked up in its parent's SUBCOMMANDS list.)
    static func helpOptions(_ subcommand: [String]) throws -> Set<String>? {
        for depth in subcommand.indices {
            guard try subcommands(of: Array(subcommand[..<depth])).contains(subcommand[depth]) else { return nil }
        }
        let help = try runPeonWasm(subcommand + ["--help"])
        guard help.status == 0 else { return nil }
        var options = Set<String>()
        for match in help.stdout.matches(of: /--[a-z][a-z0-9-]*/) { options.insert(String(match.output)) }
        return options
    }

    /// Subcommands whose documented invocations only read repository files, so they can be run as shown.
    static let readOnly: Set<[String]> = [["inspect"], ["grants", "check"], ["policy", "eval"], ["policy", "explain"]]

    @Test("every peon-wasm command in README.md, docs/ and modules/**/README.md names a real subcommand and real options")
    func documentedCommandsParse() throws {
        var all: [Invocation] = []
        for file in Self.documents { all += try Self.invocations(in: file) }
        // Enough to mean the extraction works: the docs show several dozen invocations.
        #expect(all.count >= 20, "found only \(all.count) invocations")
        var helpCache: [[String]: Set<String>?] = [:]
        for invocation in all {
            let subcommand = invocation.subcommand
            if helpCache[subcommand] == nil { helpCache[subcommand] = .some(try Self.helpOptions(subcommand)) }
            guard let known = helpCache[subcommand] ?? nil else {
                Issue.record("\(invocation): `peon-wasm \(subcommand.joined(separator: " "))` is not a subcommand")
                continue
            }
            for option in invocation.longOptions where !known.contains(option) {
                Issue.record("\(invocation): \(option) is not an option of `peon-wasm \(subcommand.joined(separator: " "))`")
            }
        }
    }

    /// The example modules' READMEs are read too: they are what someone trying an example copies first.
    @Test("the READMEs under modules/ are read, and their read-only commands are among those run")
    func moduleReadmesAreRead() throws {
        let readmes = Self.moduleReadmes
        #expect(readmes.count >= 10 && readmes.contains("modules/relay-demo/README.md"), "\(readmes)")
        #expect(Set(Self.documents).isSuperset(of: readmes))
        let invocations = try readmes.flatMap { try Self.invocations(in: $0) }
        // Each example shows how to run it: about one or two invocations a README.
        #expect(invocations.count >= 10, "found only \(invocations.count) invocations: \(invocations)")
        #expect(invocations.contains { Self.readOnly.contains($0.subcommand) }, "\(invocations)")
        // py-researcher's component is built by CI only when componentize-py installs; a fresh clone lacks it.
        #expect(Self.buildProducts.contains("modules/py-researcher/researcher.wasm"), "\(Self.buildProducts)")
    }

    @Test("documented commands that only read repository files run as shown")
    func readOnlyCommandsRun() throws {
        var ran = 0
        for file in Self.documents {
            // A `postgresql://` policy reads a database (docs/fleet.md), not repository files.
            // Nor can a command be run as shown on a fresh clone when it reads a build product.
            for invocation in try Self.invocations(in: file) where Self.readOnly.contains(invocation.subcommand)
                && !invocation.arguments.contains(where: { $0.contains("postgresql://") })
                && !invocation.arguments.contains(where: Self.buildProducts.contains) {
                let result = try runPeonWasm(invocation.arguments)
                ran += 1
                // 0 and 1 are answers (allow/deny, known/unknown import); anything else is a broken example.
                #expect(result.status == 0 || result.status == 1, "\(invocation) exited \(result.status): \(result.stderr)")
                if let shown = invocation.shownOutput, !shown.contains("..."), !shown.contains("…"), !shown.isEmpty {
                    #expect(result.stdout.trimmingCharacters(in: .newlines) == shown.trimmingCharacters(in: .newlines),
                            "\(invocation) printed:\n\(result.stdout)")
                }
            }
        }
        #expect(ran >= 5, "ran only \(ran) read-only invocations")
    }

    /// The shared temporary folders: anyone on the machine can create a name there first.
    static let sharedTemporaryFolders = ["/tmp/", "/var/tmp/", "/dev/shm/"]

    /// The fixed paths in a shared temporary folder that a shell line names as a word of its own: an argument
    /// (`--audit /tmp/relay.jsonl`), an option's or a `NAME=PATH` pair's value (`--db pages=/tmp/pages.db`) or a
    /// redirection's file (`> /tmp/grants.toml`). A path inside a longer word is data, such as an agent's
    /// `--input "reports /tmp/summary.md"` that the quickstart shows being denied.
    static func sharedTemporaryPaths(in line: String) -> [String] {
        shellSegments(line, keepingRedirections: true).joined().compactMap { word in
            let values = [word] + word.split(separator: "=", maxSplits: 1).dropFirst().map(String.init)
            return values.first { value in Self.sharedTemporaryFolders.contains { value.hasPrefix($0) } }
        }
    }

    /// The documentation's examples are copied by newcomers, often on a shared machine. A fixed path in `/tmp` there
    /// may already be another user's file: a run then refuses that user's audit log or checkpoint (exit 78), `sed >`
    /// cannot replace its file, and a file read from such a path is whatever that user put there. So every command
    /// writes and reads its files in the current folder (or in a folder `mktemp -d` made), and the Swift examples
    /// name no `/tmp` path either.
    @Test("no documented command names a fixed path in /tmp, which another user of the machine may own already")
    func noFixedSharedTemporaryPaths() throws {
        var lines = 0
        for file in Self.documents {
            for (info, body) in try Self.fencedBlocks(in: file) {
                if info == "sh" || info == "console" {
                    for (line, command, _) in Self.commands(in: body, console: info == "console") {
                        lines += 1
                        for path in Self.sharedTemporaryPaths(in: command) {
                            Issue.record("\(file):\(line): `\(path)` is a fixed path in a folder every user shares; use a path in the current folder or in `mktemp -d`")
                        }
                    }
                } else if info == "swift" {
                    for (line, text) in body {
                        for match in text.matches(of: /"(\/tmp\/|\/var\/tmp\/|\/dev\/shm\/)/) {
                            Issue.record("\(file):\(line): \(match.output.0)...\" is a fixed path in a folder every user shares")
                        }
                    }
                }
            }
        }
        // The docs hold well over a hundred command lines: fewer means the blocks were not found.
        #expect(lines >= 100, "read only \(lines) command lines")
    }

    @Test("the /tmp check catches each way the docs once named a fixed /tmp path, and passes what they say now")
    func sharedTemporaryPathCheckCatchesEachForm() {
        let fixed: [(String, String)] = [
            ("peon-wasm audit show /tmp/relay.jsonl --module relay-auditor", "/tmp/relay.jsonl"),
            ("peon-wasm run modules/malicious/malicious.wasm --db notes=modules/malicious/notes.db --audit /tmp/malicious.log",
             "/tmp/malicious.log"),
            ("python3 modules/tools/pyhost.py m.wasm --db notes=/tmp/notes.db      # a copy of notes.db", "/tmp/notes.db"),
            ("sed 's#https://example.com#http://127.0.0.1:8000#' policies/go-fetcher.toml > /tmp/go-fetcher-local.toml",
             "/tmp/go-fetcher-local.toml"),
            ("cp modules/go-fetcher/pages.db /tmp/pages.db", "/tmp/pages.db"),
            ("peon-wasm run m.wasm --audit=/var/tmp/a.jsonl", "/var/tmp/a.jsonl"),
            ("wasm-tools component embed wit/ --world agent my_agent.wasm -o /tmp/e.wasm &&", "/tmp/e.wasm"),
        ]
        for (line, path) in fixed {
            #expect(Self.sharedTemporaryPaths(in: line) == [path], "\(line)")
        }
        let fine = [
            "swift run peon-wasm run modules/c-summarizer/summarizer.wasm --grants policies/c-summarizer.toml "
                + "--audit peon-quickstart.jsonl --input \"modules/c-summarizer/reports /tmp/summary.md\"",
            "cp modules/go-fetcher/pages.db \"$folder/pages.db\"",
            "# an example writes nothing to /tmp/x",
        ]
        for line in fine {
            #expect(Self.sharedTemporaryPaths(in: line).isEmpty, "\(line)")
        }
    }

    @Test("the README's quickstart runs: an allowed and a denied call, then audit show and audit verify")
    func quickstartRuns() throws {
        let quickstart = try Self.invocations(in: "README.md").filter { $0.shownOutput != nil }
        let run = try #require(quickstart.first { $0.subcommand == ["run"] }, "no console block runs an agent")
        let auditIndex = try #require(run.arguments.firstIndex(of: "--audit"), "the quickstart names its audit log")
        let documentedLog = try #require(run.arguments.indices.contains(auditIndex + 1) ? run.arguments[auditIndex + 1] : nil)
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("quickstart.jsonl").path
            func local(_ arguments: [String]) -> [String] { arguments.map { $0 == documentedLog ? log : $0 } }
            let agent = try runPeonWasm(local(run.arguments))
            #expect(agent.status == 1, "the quickstart's agent should end with its denied call: \(agent.stderr)")
            #expect(agent.stderr.contains("denied"), "stderr: \(agent.stderr)")
            let show = try #require(quickstart.first { $0.subcommand == ["audit", "show"] }, "the quickstart shows the log")
            let table = try runPeonWasm(local(show.arguments))
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains("allow") && table.stdout.contains("deny"), "audit show printed:\n\(table.stdout)")
            let verify = try #require(quickstart.first { $0.subcommand == ["audit", "verify"] }, "the quickstart verifies the log")
            let verdict = try runPeonWasm(local(verify.arguments))
            #expect(verdict.status == 0, "\(verdict.stdout)\(verdict.stderr)")
            #expect(verdict.stdout.hasPrefix("ok:"), "audit verify printed: \(verdict.stdout)")
        }
    }

    @Test("docs/cli.md documents every subcommand's options, and only those", arguments: [
        ["run"], ["inspect"], ["grants", "check"], ["policy", "eval"], ["policy", "explain"],
        ["audit", "verify"], ["audit", "show"], ["audit", "key"], ["audit", "checkpoint"],
        ["audit", "prove"], ["audit", "consistency"], ["audit", "ship"], ["mcp"],
    ])
    func cliPageCoversOptions(subcommand: [String]) throws {
        let cli = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        let heading = "## `peon-wasm \(subcommand.joined(separator: " "))`\n"
        let start = try #require(cli.range(of: heading), "docs/cli.md has no section \(heading)")
        let rest = cli[start.upperBound...]
        let section = rest.range(of: "\n## ").map { rest[..<$0.lowerBound] } ?? rest
        let documented = Set(section.matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) })
        let known = try #require(try Self.helpOptions(subcommand)).subtracting(["--help", "--version"])
        #expect(known.subtracting(documented).isEmpty, "undocumented: \(known.subtracting(documented).sorted())")
        #expect(documented.subtracting(known).isEmpty, "documented but unknown: \(documented.subtracting(known).sorted())")
    }

    /// ArgumentParser appends `(default: N)` to an option that has a default value; a help text that also states
    /// the default, in any wording, printed it twice: "Default: 64. (default: 64)" (`--max-waiting`), "effects
    /// (default) or batch. (default: effects)" (`--audit-sync`), "wasmkit (default, pure Swift)" (`--engine`),
    /// "(default 1000). (default: 1000)" (`audit show --limit`), "- (the default) for standard input" (`REQUESTS`).
    /// Each option's entry in `--help` is checked on its own: one that ends with ArgumentParser's `(default: ...)`
    /// must not say "default" anywhere else.
    @Test("no option's help states its default twice", arguments: [
        ["run"], ["inspect"], ["grants", "check"], ["policy", "eval"], ["policy", "explain"],
        ["audit", "verify"], ["audit", "show"], ["audit", "key"], ["audit", "checkpoint"],
        ["audit", "prove"], ["audit", "consistency"], ["audit", "ship"], ["mcp"],
    ])
    func defaultsAreStatedOnce(subcommand: [String]) throws {
        let help = try runPeonWasm(subcommand + ["--help"])
        #expect(help.status == 0, "\(help.stderr)")
        let entries = Self.helpEntries(help.stdout)
        // The entries were found: every `(default: ...)` in the indented lines (ARGUMENTS and OPTIONS; the
        // overview is not indented) is in one of them.
        let indented = help.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }.joined(separator: " ")
        let flat = indented.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        func appended(_ text: String) -> Int { text.components(separatedBy: "(default: ").count - 1 }
        #expect(entries.map(appended).reduce(0, +) == appended(flat),
                "\(subcommand): entries \(entries) from:\n\(help.stdout)")
        let twice = entries.filter(Self.statesDefaultTwice)
        #expect(twice.isEmpty, "\(subcommand.joined(separator: " ")): \(twice)")
    }

    /// The entries of a `--help` text's ARGUMENTS and OPTIONS sections, each flattened to one line: an entry starts
    /// on a line indented by exactly two spaces (`  --name <value>`, `  <argument>`); deeper lines continue it.
    static func helpEntries(_ help: String) -> [String] {
        var entries: [String] = []
        var current: [Substring] = []
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  ") && !line.hasPrefix("   ") || !line.hasPrefix(" ") {
                if !current.isEmpty { entries.append(current.joined(separator: " ")) }
                current = line.hasPrefix("  ") ? [line] : []
            } else if !current.isEmpty {
                current.append(line)
            }
        }
        if !current.isEmpty { entries.append(current.joined(separator: " ")) }
        return entries.map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
    }

    /// Whether an entry ends with ArgumentParser's `(default: X)` and its own text mentions a default too.
    static func statesDefaultTwice(_ entry: String) -> Bool {
        guard let appended = entry.range(of: "(default: ", options: .backwards), entry.hasSuffix(")") else { return false }
        return entry[..<appended.lowerBound].range(of: "default", options: .caseInsensitive) != nil
    }

    @Test("the double-default check catches every wording it was written for, and passes a default stated once")
    func doubleDefaultCheckCatchesEachWording() {
        let twice = [
            "--max-waiting <n> Most calls waiting. Default: 64. (default: 64)",
            "--audit-sync <audit-sync> When audit entries reach the disk: always, effects (default) or batch. (default: effects)",
            "--engine <engine> The engine: wasmkit (default, pure Swift) or wasmtime (JIT). (default: wasmkit)",
            "--limit <limit> With --from: at most this many entries (default 1000). (default: 1000)",
            "<requests> A JSON Lines file of requests, or - (the default) for standard input. (default: -)",
        ]
        for entry in twice { #expect(Self.statesDefaultTwice(entry), "\(entry)") }
        let once = [
            "--audit-sync <audit-sync> When audit entries reach the disk: always, effects or batch. (default: effects)",
            "--timeout <timeout> Wall-clock limit. Default: the grants' timeout, else 30s.",
        ]
        for entry in once { #expect(!Self.statesDefaultTwice(entry), "\(entry)") }
        let parsed = Self.helpEntries("""
            OPTIONS:
              --audit-sync <audit-sync>
                                      When audit entries reach the disk: always, effects
                                      (default) or batch. (default: effects)
              --timeout <timeout>     Wall-clock limit. Default: 30s.
            """)
        #expect(parsed == [twice[1], "--timeout <timeout> Wall-clock limit. Default: 30s."], "\(parsed)")
    }

    @Test("every exit status the code defines is in docs/cli.md")
    func exitCodesDocumented() throws {
        let cli = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        var documented = Set<Int>()
        for match in cli.matches(of: /\n\| (\d+(?:, \d+)*) \|/) {
            for code in match.output.1.split(separator: ", ") { if let code = Int(code) { documented.insert(code) } }
        }
        var defined: [Int] = []
        for source in ["Sources/PeonRuntime/RunError.swift", "Sources/PeonAudit/AuditError.swift"] {
            let text = try String(contentsOf: repositoryRoot.appendingPathComponent(source), encoding: .utf8)
            let switchStart = try #require(text.range(of: "var exitCode: Int32"), "\(source) has no exitCode")
            let body = text[switchStart.upperBound...].prefix { $0 != "}" }
            let codes = body.matches(of: /case \.\w+: (\d+)/).compactMap { Int($0.output.1) }
            #expect(!codes.isEmpty, "no exit codes read from \(source)")
            defined += codes
        }
        // The CLI's own: usage errors, the grants and policy answers, 128 + SIGINT/SIGQUIT/SIGTERM.
        defined += [1, 2, 64, 130, 131, 143]
        for code in Set(defined).sorted() {
            #expect(documented.contains(code), "exit status \(code) is not in docs/cli.md")
        }
    }
}
