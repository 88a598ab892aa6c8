import Foundation
import PeonTestSupport
import Testing

/// The files an operator edits by hand, as Windows editors (Notepad) save them: UTF-8 with a leading byte order
/// mark (EF BB BF). Exactly one at the start of a grants file, a `[tool]` input-schema, a Casbin model or policy,
/// `policy eval` requests or a `.wat` module is dropped, so the first key or line means what the operator sees; two
/// are refused. Text read from standard input that is refused gets a message naming standard input, not a path.
/// Threat: a policy whose first line silently is not the rule it shows, or a grants file that aborts the host.
@Suite("operator files with a UTF-8 byte order mark")
struct OperatorFileTests {
    static let bom = "\u{FEFF}"
    static let model = PolicyEvalCommandTests.model + "\n"
    static let module = "modules/wat-minimal/minimal.wasm"

    /// `peon-wasm policy eval` of `requests` against `model` and `policy`, each written to a file as given.
    static func eval(model: String, policy: String, requests: String, extra: [String] = []) throws -> CommandResult {
        try withTemporaryDirectory { folder in
            let files = [("model.conf", model), ("policy.csv", policy), ("requests.jsonl", requests)].map { name, text in
                let url = folder.appendingPathComponent(name)
                return (url, Data(text.utf8))
            }
            for (url, data) in files { try data.write(to: url) }
            return try runPeonWasm(["policy", "eval", "--model", files[0].0.path, "--policy", files[1].0.path]
                                   + extra + [files[2].0.path])
        }
    }

    /// `peon-wasm grants check` of the minimal module against `grants` (written to `folder/grants.toml`).
    static func check(_ grants: String, in folder: URL) throws -> CommandResult {
        let file = folder.appendingPathComponent("grants.toml")
        try Data(grants.utf8).write(to: file)
        return try runPeonWasm(["grants", "check", Self.module, "--grants", file.path])
    }

    /// A module given where the grants go (the two swapped) is named for what it is; it was "line 2 is not UTF-8 text".
    @Test("a WebAssembly module given as the grants file is named as such")
    func aModuleGivenAsGrants() throws {
        let module = repositoryRoot.appendingPathComponent("modules/c-summarizer/summarizer.wasm").path
        for arguments in [["grants", "check", Self.module, "--grants", module], ["mcp", "--list", module]] {
            let result = try runPeonWasm(arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains("this is a WebAssembly module, not a grants file") && result.stderr.split(separator: "\n").count == 1,
                    "\(result.stderr)")
        }
    }

    @Test("a policy whose first line follows a byte order mark is in effect, as written")
    func aPolicyLineAfterAByteOrderMarkIsARule() throws {
        let result = try Self.eval(model: Self.model, policy: Self.bom + "p, alice, data1, read\np, bob, data2, write\n",
                                   requests: "[\"alice\", \"data1\", \"read\"]\n[\"bob\", \"data2\", \"write\"]\n", extra: ["--explain"])
        #expect(result.status == 0, "\(result.stderr)")
        let answers = result.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(answers.count == 2 && answers.allSatisfy { $0.first == "true" }, "\(result.stdout)")
        // The rule is `p, alice, ...` on line 1, not a rule of type "\u{FEFF}p".
        #expect(answers.first?.last == "p, alice, data1, read" && answers.first?.dropFirst().first?.hasSuffix("policy.csv:1") == true,
                "\(result.stdout)")
    }

    @Test("a model that starts with a byte order mark loads")
    func aModelAfterAByteOrderMarkLoads() throws {
        let result = try Self.eval(model: Self.bom + Self.model, policy: "p, alice, data1, read\n",
                                   requests: "[\"alice\", \"data1\", \"read\"]\n[\"alice\", \"data1\", \"write\"]\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "true\nfalse\n", "\(result.stdout)")
    }

    @Test("an error on the first line of a policy after a byte order mark names the column the editor shows")
    func aFirstLineErrorKeepsItsColumn() throws {
        let result = try Self.eval(model: Self.model, policy: Self.bom + "p, alice, \"data1, read\n", requests: "")
        #expect(result.status == 2)
        #expect(result.stderr.contains("policy.csv:1:11: unterminated quoted field"), "\(result.stderr)")
    }

    @Test("requests that start with a byte order mark and a blank line are answered")
    func requestsAfterAByteOrderMarkAreAnswered() throws {
        let result = try Self.eval(model: Self.model, policy: "p, alice, data1, read\n",
                                   requests: Self.bom + "\n[\"alice\", \"data1\", \"read\"]\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "true\n", "\(result.stdout)")
    }

    @Test("two byte order marks at the start of a policy, model or requests are refused, naming the file")
    func twoByteOrderMarksAreRefused() throws {
        let twice = Self.bom + Self.bom
        let cases = [
            ("policy.csv", try Self.eval(model: Self.model, policy: twice + "p, alice, data1, read\n", requests: "")),
            ("model.conf", try Self.eval(model: twice + Self.model, policy: "p, alice, data1, read\n", requests: "")),
            ("requests.jsonl", try Self.eval(model: Self.model, policy: "p, alice, data1, read\n",
                                             requests: twice + "[\"alice\", \"data1\", \"read\"]\n")),
        ]
        for (file, result) in cases {
            #expect(result.status == 2, "\(file): \(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error: ") && result.stderr.contains("\(file): cannot read: it starts with two UTF-8 byte order marks"),
                    "\(file): \(result.stderr)")
            #expect(result.stdout.isEmpty, "\(file): \(result.stdout)")
        }
    }

    @Test("a model and policy with byte order marks load for policy explain (the run's loader)")
    func theRunsLoaderDropsTheMark() throws {
        let result = try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data((Self.bom + Self.model).utf8).write(to: model)
            try Data((Self.bom + "p, alice, fs:/data/q1.txt, fs.read\n").utf8).write(to: policy)
            return try runPeonWasm(["policy", "explain", "--model", model.path, "--policy", policy.path,
                                    "--module", "alice", "fs.read", "/data/q1.txt"])
        }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("allowed by p, alice, fs:/data/q1.txt, fs.read ("), "\(result.stdout)")
    }

    @Test("a grants file after a byte order mark: a bare [ on line 1 is an error, not an abort; lines keep their numbers")
    func grantsAfterAByteOrderMark() throws {
        try withTemporaryDirectory { folder in
            let header = try Self.check(Self.bom + "[\nmodule = \"x\"\n", in: folder)
            #expect(header.status == 2, "\(header.stderr)")
            #expect(header.stderr.hasPrefix("peon-wasm: error: \(folder.path)/grants.toml:1: TOML syntax error: `[` must be followed by a table name"),
                    "\(header.stderr)")
            let late = try Self.check(Self.bom + "module = \"x\"\n\n[[fs]]\npaths = [\"/data/*\"]\nallow = []\n", in: folder)
            #expect(late.status == 2)
            #expect(late.stderr.contains("grants.toml:5: fs[0].allow: "), "\(late.stderr)")
            let twice = try Self.check(Self.bom + Self.bom + "module = \"x\"\n", in: folder)
            #expect(twice.status == 2)
            #expect(twice.stderr.contains("grants.toml: cannot read the grants file: it starts with two UTF-8 byte order marks"), "\(twice.stderr)")
            let fine = try Self.check(Self.bom + "module = \"bom-test\"\n", in: folder)
            #expect(fine.status == 0, "\(fine.stderr)")
            #expect(fine.stdout.contains("(module = \"bom-test\")"), "\(fine.stdout)")
        }
    }

    @Test("an input-schema file after one byte order mark is read; after two it is refused")
    func inputSchemaAfterAByteOrderMark() throws {
        try withTemporaryDirectory { folder in
            let wasm = repositoryRoot.appendingPathComponent(Self.module).path
            let grants = "module = \"schema\"\n[tool]\nwasm = \"\(wasm)\"\ndescription = \"Reads one file.\"\ninput-schema = \"schema.json\"\n"
            let schema = folder.appendingPathComponent("schema.json")
            try Data((Self.bom + "{\"type\": \"object\"}").utf8).write(to: schema)
            let once = try Self.check(grants, in: folder)
            #expect(once.status == 0, "\(once.stderr)")
            try Data((Self.bom + Self.bom + "{\"type\": \"object\"}").utf8).write(to: schema)
            let twice = try Self.check(grants, in: folder)
            #expect(twice.status == 2)
            #expect(twice.stderr.contains("tool.input-schema: cannot read the schema file `schema.json`") && twice.stderr.contains("two UTF-8 byte order marks"),
                    "\(twice.stderr)")
        }
    }

    /// The schema is shown to MCP clients, whose JSON readers refuse a trailing comma and keep the last of a member
    /// named twice where Foundation keeps the first: either is refused in the grants, naming where.
    @Test("an input-schema file that is not strict JSON, or names a member twice, is refused", arguments: [
        (#"{"type": "object", "properties": {},}"#, "not valid JSON at byte 37"),
        (#"{"type": "object", "required": ["a"], "required": []}"#, "names the member 'required' twice"),
    ])
    func inputSchemaIsStrictJSON(text: String, words: String) throws {
        try withTemporaryDirectory { folder in
            let wasm = repositoryRoot.appendingPathComponent(Self.module).path
            let grants = "module = \"schema\"\n[tool]\nwasm = \"\(wasm)\"\ndescription = \"Reads one file.\"\ninput-schema = \"schema.json\"\n"
            try Data(text.utf8).write(to: folder.appendingPathComponent("schema.json"))
            let result = try Self.check(grants, in: folder)
            #expect(result.status == 2)
            #expect(result.stderr.contains("tool.input-schema") && result.stderr.contains(words), "\(result.stderr)")
        }
    }

    /// `modules/hello/hello.wat` written to `folder/hello.wat` after the bytes `prefix`; its path.
    static func helloText(after prefix: [UInt8], in folder: URL) throws -> String {
        let text = try Data(contentsOf: repositoryRoot.appendingPathComponent("modules/hello/hello.wat"))
        let file = folder.appendingPathComponent("hello.wat")
        try (Data(prefix) + text).write(to: file)
        return file.path
    }

    /// `inspect`'s `sha256` line for the module at `path`.
    static func inspectedHash(_ path: String) throws -> String? {
        let result = try runPeonWasm(["inspect", path])
        return result.stdout.split(separator: "\n").first { $0.hasPrefix("sha256 ") }.map(String.init)
    }

    @Test("a .wat module after one byte order mark runs as the module without it", arguments: ["wasmkit", "wasmtime"])
    func aWatModuleAfterAByteOrderMarkRuns(engine: String) throws {
        try withTemporaryDirectory { folder in
            let path = try Self.helloText(after: Array(Self.bom.utf8), in: folder)
            let result = try runPeonWasm(["run", "--engine", engine, path, "--", "peon"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "hello, peon\n", "\(result.stdout)")
        }
    }

    @Test("inspect and grants check read a .wat after one byte order mark as the same module (same sha256)")
    func inspectAndGrantsCheckDropTheWatMark() throws {
        try withTemporaryDirectory { folder in
            let marked = try Self.helloText(after: Array(Self.bom.utf8), in: folder)
            let hash = try #require(try Self.inspectedHash(marked))
            #expect(hash == (try Self.inspectedHash("modules/hello/hello.wat")), "\(hash)")
            let check = try runPeonWasm(["grants", "check", marked, "--grants", "policies/wat-minimal.toml"])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout.contains("no peon:host imports"), "\(check.stdout)")
        }
    }

    @Test("a .wat with two byte order marks, with only one, or not UTF-8 is refused with one line (exit 65; grants check 2)",
          arguments: ["wasmkit", "wasmtime"])
    func badWatTextIsRefused(engine: String) throws {
        let bom = Array(Self.bom.utf8)
        let cases: [([UInt8], Bool, String)] = [
            (bom + bom, true, "it starts with two UTF-8 byte order marks"),
            (bom, false, "holds only a byte order mark"),
            ([0xFF, 0xFE], true, "is not UTF-8 text, so it cannot be WebAssembly text format; save it as UTF-8"),
        ]
        for (prefix, withText, words) in cases {
            try withTemporaryDirectory { folder in
                let path: String
                if withText {
                    path = try Self.helloText(after: prefix, in: folder)
                } else {
                    path = folder.appendingPathComponent("hello.wat").path
                    try Data(prefix).write(to: URL(fileURLWithPath: path))
                }
                for (arguments, status) in [(["run", "--engine", engine, path], Int32(65)), (["inspect", path], 65),
                                            (["grants", "check", path, "--grants", "policies/wat-minimal.toml"], 2)] {
                    let result = try runPeonWasm(arguments)
                    #expect(result.status == status, "\(arguments): \(result.stderr)")
                    #expect(result.stderr.hasPrefix("peon-wasm: error: ") && result.stderr.contains(words)
                            && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
                }
            }
        }
    }

    /// Standard input has no path: an error about it says what standard input must hold, not "check the path".
    @Test("requests, a model or a policy read from standard input that are not UTF-8, start with two marks or cannot be read: one line without \"check the path\", exit 2")
    func standardInputTextErrorsNameNoPath() throws {
        try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(Self.model.utf8).write(to: model)
            try Data("p, alice, data1, read\n".utf8).write(to: policy)
            let cases = [
                ("printf '[\"\\377\"]\\n' | exec \"$PEON_WASM\" policy eval --model '\(model.path)' --policy '\(policy.path)'",
                 "<stdin>: cannot read: line 1 is not UTF-8 text; the requests read from standard input must be UTF-8"),
                ("printf '\\357\\273\\277\\357\\273\\277[]\\n' | exec \"$PEON_WASM\" policy eval --model '\(model.path)' --policy '\(policy.path)' -",
                 "<stdin>: cannot read: it starts with two UTF-8 byte order marks (EF BB BF EF BB BF); the requests read from standard input may start with one or none"),
                ("printf '\\377' | exec \"$PEON_WASM\" policy eval --model - --policy '\(policy.path)' /dev/null",
                 "<stdin>: cannot read: line 1 is not UTF-8 text; the Casbin model read from standard input must be UTF-8"),
                ("printf '\\377' | exec \"$PEON_WASM\" policy eval --model '\(model.path)' --policy - /dev/null",
                 "<stdin>: cannot read: line 1 is not UTF-8 text; the Casbin policy read from standard input must be UTF-8"),
                ("exec \"$PEON_WASM\" policy eval --model '\(model.path)' --policy '\(policy.path)' < /",
                 "<stdin>: cannot read: read failed: is a directory; give the requests on standard input from a file or a pipe, or name a file"),
            ]
            for (script, message) in cases {
                let result = try runShell(script)
                #expect(result.status == 2, "\(script): \(result.stderr)")
                #expect(result.stderr == "peon-wasm: error: \(message)\n", "\(script): \(result.stderr)")
                #expect(result.stdout.isEmpty, "\(script): \(result.stdout)")
            }
            // A named file that is not UTF-8 says on which line, and what to do about an encoding (it said "check the
            // path" only). No answer is printed: the file is refused whole, before any request is decided.
            let requests = folder.appendingPathComponent("requests.jsonl")
            try Data(Array("[\"alice\", \"data1\", \"read\"]\n[\"".utf8) + [0xFF] + Array("\"]\n".utf8)).write(to: requests)
            let named = try runPeonWasm(["policy", "eval", "--model", model.path, "--policy", policy.path, requests.path])
            #expect(named.status == 2 && named.stdout.isEmpty, "\(named.stdout)")
            #expect(named.stderr == "peon-wasm: error: \(requests.path): cannot read: line 2 is not UTF-8 text; check that the path names the right file, or save it as UTF-8\n",
                    "\(named.stderr)")
        }
    }

    /// `run --stdin` that cannot read standard input says how to give it, not to give less.
    @Test func runStdinThatCannotBeReadSaysHowToGiveIt() throws {
        try withTemporaryDirectory { folder in
            let audit = folder.appendingPathComponent("stdin.jsonl").path
            let script = "exec \"$PEON_WASM\" run modules/hello/hello.wat --stdin --audit '\(audit)' < /"
            let result = try runShell(script, directory: repositoryRoot)
            #expect(result.status != 0, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error: cannot read standard input for --stdin: "), "\(result.stderr)")
            #expect(result.stderr.hasSuffix("; give --stdin a file or a pipe to read (e.g. `< input.txt`), or leave --stdin out\n"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }

    @Test("a CRLF grants file with a bare [ is an error on its line, not an abort")
    func aCRLFGrantsFileWithABareHeader() throws {
        try withTemporaryDirectory { folder in
            let result = try Self.check("module = \"x\"\r\n\r\n[\r\nfoo = 1\r\n", in: folder)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error: \(folder.path)/grants.toml:3: TOML syntax error: `[`"), "\(result.stderr)")
        }
    }
}

/// Grants files a fuzzer made (mutations of the shipped grants files) that aborted `peon-wasm grants check` inside
/// toml++ (exit 134, a backtrace): each must be one error line, exit 2.
@Suite("grants files that aborted toml++")
struct TOMLAbortTests {
    @Test(arguments: ["#\"\"\"\n[\\", "module = \"x\" # \"\"\"\n[\n", "a = '''it''''\n[\\\n", "a = [\n1]\n[ \\\n"])
    func aHeaderTomlPlusPlusCannotParseIsOneErrorLine(_ text: String) throws {
        try withTemporaryDirectory { folder in
            let result = try OperatorFileTests.check(text, in: folder)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error: \(folder.path)/grants.toml:"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }
}
