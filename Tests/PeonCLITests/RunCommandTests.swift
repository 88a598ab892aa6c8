import Foundation
import PeonTestSupport
import Testing

/// `peon-wasm run` as a user meets it, through the built executable: every bad input gets one line on
/// stderr and its own exit code, never a backtrace; every limit is hit and the next run is healthy.
@Suite("peon-wasm run", .serialized)
struct RunCommandTests {
    /// Writes `text` to a temporary file with `name` and runs `peon-wasm` with the path put first.
    private func run(_ name: String, _ text: String, _ arguments: [String] = [], stdin: String = "") throws -> CommandResult {
        try withTemporaryDirectory { folder in
            let file = folder.appendingPathComponent(name)
            try Data(text.utf8).write(to: file)
            return try runPeonWasm(["run", file.path] + arguments, stdin: stdin)
        }
    }

    /// A failure is exactly one `peon-wasm: error:` line, with no Swift crash report.
    private func expectOneLineError(_ result: CommandResult, status: Int32, mentioning words: [String],
                                    sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("peon-wasm: error: "), sourceLocation: sourceLocation)
        for word in words { #expect(result.stderr.contains(word), "missing '\(word)' in: \(result.stderr)", sourceLocation: sourceLocation) }
        for crash in ["Fatal error", "backtrace", "Stack dump", "0x0000"] {
            #expect(!result.stderr.contains(crash), sourceLocation: sourceLocation)
        }
    }

    @Test("the quickstart module greets the world and its first argument")
    func helloRuns() throws {
        let plain = try runPeonWasm(["run", "modules/hello/hello.wat"])
        #expect(plain.status == 0)
        #expect(plain.stdout == "hello, world\n")
        let named = try runPeonWasm(["run", "modules/hello/hello.wat", "--", "peon"])
        #expect(named.stdout == "hello, peon\n")
    }

    @Test("--version and --help speak to a newcomer")
    func versionAndHelp() throws {
        #expect(try runPeonWasm(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
        let help = try runPeonWasm(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("run") && help.stdout.contains("inspect"))
        let runHelp = try runPeonWasm(["run", "--help"])
        for option in ["--timeout", "--memory", "--fuel", "--max-host-calls", "--max-output", "--stdin", "--env"] {
            #expect(runHelp.stdout.contains(option), "run --help lacks \(option)")
        }
    }

    @Test("a module file that cannot be read is exit 66")
    func unreadableModules() throws {
        expectOneLineError(try runPeonWasm(["run", "/no/such/module.wasm"]), status: 66, mentioning: ["/no/such/module.wasm", "no such file"])
        try withTemporaryDirectory { folder in
            expectOneLineError(try runPeonWasm(["run", folder.path]), status: 66, mentioning: ["is a directory"])
        }
    }

    @Test("bytes that are not a valid module are exit 65", arguments: [
        ("empty.wasm", "", "is empty"),
        ("text.wasm", "hello, I am not wasm", "does not start with"),
        ("truncated.wasm", "\0asm\u{1}\0\0\0\u{1}\u{5}\u{1}", "the module ends early (a truncated file)"),
        ("broken.wat", "(module (func (export \"_start\") (i32.add)", "invalid WebAssembly text"),
    ])
    func invalidModules(name: String, content: String, words: String) throws {
        expectOneLineError(try run(name, content), status: 65, mentioning: [words])
    }

    /// A value the host cannot lift (here `run`'s result area past the end of memory) was reported as "a bad pointer to
    /// a host function", although no host function was involved, and with nothing to do (found by a red-team pass).
    @Test("a result the host cannot read is exit 69, says where and what to do")
    func anUnreadableResultSaysWhereAndWhatToDo() throws {
        let text = #"(module (memory (export "memory") 1) (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024)) (func (export "run") (param i32 i32) (result i32) (i32.const 65532)))"#
        expectOneLineError(try run("result.wat", text), status: 69,
                           mentioning: ["in run's result", "outside linear memory", "rebuild it with a peon SDK"])
    }

    /// A section size written in six LEB128 bytes was named by WasmKit's enum case alone (`integerRepresentationTooLong`).
    @Test("an over-long integer in a module is exit 65 in words")
    func anOverlongIntegerIsNamedInWords() throws {
        let result = try withTemporaryDirectory { folder in
            let file = folder.appendingPathComponent("badleb.wasm")
            try Data([0, 0x61, 0x73, 0x6D, 1, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).write(to: file)
            return try runPeonWasm(["run", file.path])
        }
        expectOneLineError(result, status: 65, mentioning: ["an integer is encoded in more bytes than its type allows"])
    }

    /// WebAssembly text is bounded before WasmKit's parser sees it: 3,000 nested blocks overflowed the parser's
    /// recursion and crashed peon-wasm with a Swift backtrace (SIGSEGV, exit 139), and megabytes of text took seconds
    /// each, outside `--timeout`. Both are exit 65 with a line saying to compile the text; 1,000 levels still parse.
    @Test("deeply nested or oversized .wat text is refused (65), not a crash")
    func boundedText() throws {
        func nested(_ levels: Int) -> String {
            "(module (func (export \"_start\")\n" + String(repeating: "(block ", count: levels) + String(repeating: ")", count: levels) + "))"
        }
        let deep = try run("deep.wat", nested(3000))
        expectOneLineError(deep, status: 65, mentioning: ["nests parentheses more than 1000 levels", "deep.wat':2"])
        // Parentheses in strings and comments do not count; 998 blocks inside module and func are 1,000 levels.
        let fine = try run("fine.wat", ";; " + String(repeating: "(", count: 5000) + "\n(; ((((( (; nested ;) ;)\n" + nested(998)
                           .replacingOccurrences(of: "(export \"_start\")", with: "(export \"_start\") (drop (i32.const 0)) (nop)")
                           + "\n(; \"(((((\" ;)")
        #expect(fine.status == 0, "\(fine.stderr)")
        let big = try run("big.wat", "(module (memory 1) (data (i32.const 0) \"" + String(repeating: "a", count: 4 << 20) + "\"))")
        expectOneLineError(big, status: 65, mentioning: ["more than the 4 MiB a .wat module may have", "wasm-tools parse"])
    }

    /// A Wasm exception nobody catches is the module's own failure: a trap (69) on both engines. Under WasmKit it was
    /// exit 70, "internal error", which says to report a bug in peon-wasm.
    @Test("an uncaught Wasm exception is a trap (69), not an internal error")
    func uncaughtExceptionIsATrap() throws {
        let thrower = "(module (tag $e) (func (export \"_start\") (throw $e)))"
        let result = try run("throw.wat", thrower)
        expectOneLineError(result, status: 69, mentioning: ["thrown Wasm exception"])
    }

    /// A function body that does not type-check is an invalid module on both engines (exit 65). WasmKit checks bodies
    /// while it instantiates, and its error was reported as a failed instantiation (exit 69, "cannot instantiate"),
    /// while wasmtime, which checks them when it compiles, said "not a valid WebAssembly module".
    /// A start function runs while the module is instantiated; an invalid body elsewhere in the module must stop the
    /// module before it runs. WasmKit checked the bodies only after the start function had run (here: printed
    /// through WASI), then reported the module invalid; now neither engine runs anything of an invalid module, and
    /// both name the same offset.
    @Test("a module with a start function and an invalid body runs nothing, on both engines", arguments: ["wasmkit", "wasmtime"])
    func anInvalidModuleRunsNoStartFunction(engine: String) throws {
        let module = """
            (module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "start ran\\n")
              (func $s (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 10))
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
              (start $s)
              (func $bad BODY)
              (func (export "_start")))
            """
        let valid = try run("start.wat", module.replacingOccurrences(of: "BODY", with: ""), ["--engine", engine])
        #expect(valid.status == 0 && valid.stdout == "start ran\n", "the start function runs in a valid module: \(valid.stdout) \(valid.stderr)")
        let invalid = try run("start.wat", module.replacingOccurrences(of: "BODY", with: "(i32.add)"), ["--engine", engine])
        expectOneLineError(invalid, status: 65, mentioning: ["is not a valid WebAssembly module", engine == "wasmkit" ? "offset 0x7f" : "offset 127"])
        #expect(invalid.stdout.isEmpty, "the start function of an invalid module ran: \(invalid.stdout)")
    }

    /// A data segment past the end of memory traps while the module is instantiated; WasmKit blamed "the module's
    /// start function", which this module does not have.
    @Test("a segment out of bounds is a trap at instantiation, not blamed on a start function", arguments: ["wasmkit", "wasmtime"])
    func aSegmentOutOfBoundsIsNotBlamedOnAStartFunction(engine: String) throws {
        let result = try run("segment.wat", #"(module (memory 1) (data (i32.const 70000) "x") (func (export "_start")))"#,
                             ["--engine", engine])
        expectOneLineError(result, status: 69, mentioning: ["out of bounds memory access"])
        #expect(!result.stderr.contains("start function"), "\(result.stderr)")
    }

    @Test("a function body that does not type-check is exit 65 on both engines", arguments: ["wasmkit", "wasmtime"])
    func aBodyThatDoesNotTypeCheckIsAnInvalidModule(engine: String) throws {
        for body in ["(i32.add)", "(i32.const 1) (f32.const 1) (i32.add) (drop)", "(i64.const 1) (i32.eqz) (drop)"] {
            let result = try run("typed.wat", "(module (func (export \"_start\") \(body)))", ["--engine", engine])
            expectOneLineError(result, status: 65, mentioning: ["is not a valid WebAssembly module"])
        }
    }

    @Test("an unknown import is exit 67 and named")
    func unknownImport() throws {
        let result = try run("u.wat", #"(module (import "env" "mystery" (func)) (func (export "_start")))"#)
        // What to do: what this host provides, and where to see the imports.
        expectOneLineError(result, status: 67, mentioning: ["env.mystery", "wasi_snapshot_preview1 and the peon:host functions", "peon-wasm inspect"])
        let wrong = try run("w.wat", #"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) (func (export "_start")))"#)
        expectOneLineError(wrong, status: 67, mentioning: ["wasi_snapshot_preview1.fd_write"])
    }

    @Test("a module with neither _start nor run is exit 68")
    func noEntryPoint() throws {
        expectOneLineError(try run("n.wat", "(module (func (export \"main\")))"), status: 68, mentioning: ["_start", "run", "docs/writing-agents.md"])
    }

    @Test("traps are exit 69 and say what happened", arguments: [
        ("(module (func (export \"_start\") unreachable))", "unreachable"),
        // Where (the module) and what it means: the module's own failure, not a refusal.
        ("(module (func (export \"_start\") unreachable))", "t.wat' trapped: unreachable"),
        ("(module (func (export \"_start\") unreachable))", "not by a refusal"),
        ("(module (memory 1) (func (export \"_start\") (drop (i32.load (i32.const 70000)))))", "out of bounds memory access"),
        ("(module (func $f (call $f)) (func (export \"_start\") (call $f)))", "call stack exhausted"),
        ("(module (func $s unreachable) (start $s) (func (export \"_start\")))", "start function"),
    ])
    func traps(module: String, words: String) throws {
        expectOneLineError(try run("t.wat", module), status: 69, mentioning: [words])
    }

    @Test("an infinite loop is stopped at the timeout (exit 124) and the next run is healthy")
    func timeoutStopsAnInfiniteLoop() throws {
        let start = Date()
        let result = try run("loop.wat", "(module (func (export \"_start\") (loop (br 0))))", ["--timeout", "1s"])
        expectOneLineError(result, status: 124, mentioning: ["timeout of 1s"])
        #expect(Date().timeIntervalSince(start) < 20)
        #expect(try runPeonWasm(["run", "modules/hello/hello.wat"]).status == 0)
    }

    @Test("a guest sleeping past its timeout ends cleanly in-process (exit 124)")
    func timeoutEndsASleep() throws {
        let sleeper = """
            (module (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "_start")
                (i32.store8 (i32.const 8) (i32.const 0)) (i32.store (i32.const 16) (i32.const 1))
                (i64.store (i32.const 24) (i64.const 60000000000))
                (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))
            """
        expectOneLineError(try run("sleep.wat", sleeper, ["--timeout", "300ms"]), status: 124, mentioning: ["timeout"])
    }

    @Test("fuel runs out (exit 71)")
    func fuelRunsOut() throws {
        expectOneLineError(try run("spin.wat", "(module (func (export \"_start\") (loop (br 0))))", ["--fuel", "100000"]),
                           status: 71, mentioning: ["out of fuel", "--fuel"])
    }

    @Test("the host-call cap stops a chatty guest (exit 72)")
    func hostCallLimit() throws {
        let chatty = """
            (module (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
              (func (export "_start") (loop (drop (call $yield)) (br 0))))
            """
        expectOneLineError(try run("chatty.wat", chatty, ["--max-host-calls", "100"]), status: 72, mentioning: ["100 host calls"])
    }

    @Test("the output cap stops a noisy guest after what fit (exit 73)")
    func outputLimit() throws {
        let noisy = """
            (module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1) (data (i32.const 100) "0123456789")
              (func (export "_start")
                (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 10))
                (loop (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br 0))))
            """
        let result = try run("noisy.wat", noisy, ["--max-output", "25"])
        expectOneLineError(result, status: 73, mentioning: ["25 bytes"])
        #expect(result.stdout == "0123456789012345678901234")
    }

    @Test("memory growth past --memory fails inside the guest, not the host")
    func memoryCap() throws {
        // Exits with memory.grow's result + 2: 1 when growth was refused (-1), more if it succeeded.
        let grower = """
            (module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory 1)
              (func (export "_start") (call $exit (i32.add (memory.grow (i32.const 100)) (i32.const 2)))))
            """
        #expect(try run("grow.wat", grower, ["--memory", "1MiB"]).status == 1)
        #expect(try run("grow.wat", grower, ["--memory", "16MiB"]).status == 3)
    }

    @Test("proc_exit's code keeps its low 8 bits, but a failure never exits 0", arguments: [(3, 3), (300, 44), (256, 1), (512, 1), (0, 0)])
    func exitCodesOutOfRange(code: Int, status: Int32) throws {
        let exiter = """
            (module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory 1)
              (func (export "_start") (call $exit (i32.const \(code)))))
            """
        #expect(try run("exit.wat", exiter).status == status)
    }

    @Test("a module whose minimum memory exceeds --memory is refused before it runs (exit 69, one line)")
    func minimumMemoryOverTheCap() throws {
        // 32 pages (2 MiB) at least, against a 1 MiB cap; the start function would say it ran.
        let big = """
            (module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory 32)
              (func (export "_start") (call $exit (i32.const 5))))
            """
        let refused = try run("big.wat", big, ["--memory", "1MiB"])
        #expect(refused.status == 69, "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.hasPrefix("peon-wasm: error: "), "\(refused.stderr)")
        #expect(try run("big.wat", big, ["--memory", "4MiB"]).status == 5)
    }

    @Test("proc_exit's code is the run's exit code, stdin is empty unless --stdin, env empty unless --env")
    func wasiBehaviour() throws {
        let exiter = """
            (module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "_start")
                (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 50))
                (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
                (drop (call $env (i32.const 16) (i32.const 20)))
                ;; exit code = bytes read * 10 + environment variables
                (call $exit (i32.add (i32.mul (i32.load (i32.const 8)) (i32.const 10)) (i32.load (i32.const 16))))))
            """
        #expect(try run("e.wat", exiter, stdin: "abc").status == 0)
        #expect(try run("e.wat", exiter, ["--stdin"], stdin: "abc").status == 30)
        #expect(try run("e.wat", exiter, ["--env", "A=1", "--env", "B=2"]).status == 2)
    }

    /// A module's environment has one value per name. `--env A=1 --env A=2`, or an `--env` naming a variable the
    /// grants' `[env]` sets, gave the module both entries, and most guests' `getenv` answers the first: one of the two
    /// values silently did not count. Both are now usage errors, before anything runs or is logged.
    @Test("an environment variable set twice (by --env twice, or by --env and the grants' [env]) is a usage error")
    func environmentVariablesAreSetOnce() throws {
        let counter = """
            (module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "_start") (drop (call $env (i32.const 16) (i32.const 20))) (call $exit (i32.load (i32.const 16)))))
            """
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("count.wat")
            try Data(counter.utf8).write(to: module)
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"count\"\n[env]\nA = \"granted\"\n".utf8).write(to: grants)
            let audit = folder.appendingPathComponent("audit.jsonl")
            let twice = try runPeonWasm(["run", module.path, "--env", "A=1", "--env", "B=", "--env", "A=2"])
            expectOneLineError(twice, status: 64, mentioning: ["'A' twice", "A=1", "A=2"])
            let conflicting = try runPeonWasm(["run", module.path, "--grants", grants.path, "--audit", audit.path,
                                               "--env", "B=1", "--env", "A=mine"])
            expectOneLineError(conflicting, status: 64, mentioning: ["'A'", "[env]"])
            #expect(!FileManager.default.fileExists(atPath: audit.path), "a refused command line was logged as a run")
            // Distinct names still add up: the grants' one and two of the command line's (an empty value counts).
            let distinct = try runPeonWasm(["run", module.path, "--grants", grants.path, "--audit", audit.path,
                                            "--env", "B=1", "--env", "C="])
            #expect(distinct.status == 3, "\(distinct.stderr)")
        }
    }

    @Test("every number a user gives is range-checked: one usage line, exit 64, never an overflow trap")
    func outOfRangeNumbersAreOneLineUsageErrors() throws {
        let cases: [([String], [String])] = [
            (["--timeout", "9223372036854775807s"], ["--timeout", "168h", "9223372036854775807s"]),
            (["--timeout", "2562047788015215h"], ["--timeout", "168h"]),
            (["--timeout", "9223372036854775807ms"], ["--timeout"]),
            (["--timeout", "0s"], ["--timeout"]),
            (["--memory", "99999999999999999999"], ["--memory", "size"]),
            (["--memory", "9223372036854775807KiB"], ["--memory", "size"]),
            (["--memory", "1KiB"], ["--memory", "at least 64KiB"]),
            (["--max-output", "99999999999999999999GiB"], ["--max-output"]),
            (["--fuel", "0"], ["--fuel", "at least 1"]),
            (["--fuel", "99999999999999999999999"], ["--fuel"]),
            (["--max-host-calls", "0"], ["--max-host-calls", "at least 1"]),
            (["--max-host-calls", "99999999999999999999"], ["--max-host-calls"]),
        ]
        for (options, words) in cases {
            let result = try runPeonWasm(["run", "modules/hello/hello.wat"] + options)
            expectOneLineError(result, status: 64, mentioning: words)
        }
    }

    @Test("an out-of-range number in the grants is a one-line configuration error, exit 78")
    func outOfRangeGrantNumbersAreConfigurationErrors() throws {
        let values = [("timeout", "\"9223372036854775807s\"", "168h"), ("timeout", "\"2562047788015215h\"", "168h"),
                      ("memory", "\"99999999999999999999MiB\"", "not a size"), ("memory", "\"1\"", "at least \"64KiB\""),
                      ("memory", "\"65535\"", "below one WebAssembly page"), ("fuel", "0", "greater than zero"),
                      ("calls", "-5", "greater than zero")]
        for (key, value, phrase) in values {
            try withTemporaryDirectory { folder in
                let grants = folder.appendingPathComponent("g.toml")
                try Data("module = \"hello\"\n[limits]\n\(key) = \(value)\n".utf8).write(to: grants)
                let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--grants", grants.path])
                expectOneLineError(result, status: 78, mentioning: ["limits.\(key)", phrase])
            }
        }
    }

    @Test("bad option values are usage errors")
    func badOptions() throws {
        for options in [["--timeout", "soon"], ["--memory", "lots"], ["--env", "NOEQUALS"], ["--engine", "v8"]] {
            let result = try runPeonWasm(["run", "modules/hello/hello.wat"] + options)
            #expect(result.status == 64, "\(options): \(result.stderr)")
            #expect(!result.stderr.contains("Fatal error"))
        }
    }

    /// A negative number after an option is read as an option itself, so ArgumentParser reported the value as
    /// missing ("Missing value for '--timeout <timeout>'"), which is not what the user did. The line now says how
    /// to write such a value, and written that way it reaches the range check, which names it.
    @Test("a negative value is a usage error that says how to write it, and then names it")
    func negativeValues() throws {
        for (option, words) in [("--timeout", "from 1ms to 168h"), ("--memory", "size"), ("--fuel", "fuel")] {
            let spaced = try runPeonWasm(["run", "modules/hello/hello.wat", option, "-1"])
            expectOneLineError(spaced, status: 64, mentioning: ["\(option)=-1"])
            let joined = try runPeonWasm(["run", "modules/hello/hello.wat", "\(option)=-1"])
            expectOneLineError(joined, status: 64, mentioning: ["-1", words])
        }
        // A positional number given negative: "Missing expected argument '<seq>'" said nothing of the -1.
        let prove = try runPeonWasm(["audit", "prove", "no-such.jsonl", "-1"])
        expectOneLineError(prove, status: 64, mentioning: ["'-1' was read as an option, not as <seq>"])
        // Not a number: the hint would be wrong, so there is none.
        let flag = try runPeonWasm(["run", "modules/hello/hello.wat", "--timeout", "--stdin"])
        #expect(flag.status == 64 && !flag.stderr.contains("begins with '-'"), "\(flag.stderr)")
    }
}

/// `peon-wasm inspect` names everything a module asks of the host.
@Suite("peon-wasm inspect")
struct InspectCommandTests {
    @Test("inspect prints the SHA-256, classified imports and the entry point")
    func inspectsHello() throws {
        let result = try runPeonWasm(["inspect", "modules/hello/hello.wat"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("fd_write") && result.stdout.contains("[wasi]"))
        #expect(result.stdout.contains("entry    _start"))
        let sha = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("sha256") })
        #expect(sha.split(separator: " ").last?.count == 64)
    }

    /// `inspect` says whether this host can run a module: one whose function body does not type-check cannot, and
    /// WasmKit finds that only when it instantiates, so `inspect` printed the module as a runnable command (exit 0).
    @Test("inspect refuses a module whose function body does not type-check (exit 65)")
    func inspectChecksFunctionBodies() throws {
        try withTemporaryDirectory { folder in
            let file = folder.appendingPathComponent("typed.wat")
            try Data(#"(module (func (export "_start") (i64.const 1) (i32.eqz) (drop)))"#.utf8).write(to: file)
            let result = try runPeonWasm(["inspect", file.path])
            #expect(result.status == 65, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.isEmpty && result.stderr.contains("is not a valid WebAssembly module"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }

    /// `grants check` says whether a module's grants fit it; a module whose function body does not type-check
    /// cannot run at all, and the check listed its imports and exited 0 (WasmKit checks bodies only when it
    /// instantiates).
    @Test("grants check refuses a module whose function body does not type-check (exit 2)")
    func grantsCheckChecksFunctionBodies() throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("typed.wat")
            try Data(#"(module (import "peon:host/log@0.1.0" "log" (func (param i32 i32 i32))) (func (export "run") (i64.const 1) (i32.eqz) (drop)))"#.utf8).write(to: module)
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"typed\"\n".utf8).write(to: grants)
            let result = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
            #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.isEmpty && result.stderr.contains("is not a valid WebAssembly module"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }

    /// A `sha256` pin that does not match the module means no run can start; `grants check` warned and exited 0, so a CI
    /// check passed. It exits 1 now; a matching pin passes.
    @Test("grants check exits 1 when the grants pin another module's sha256")
    func grantsCheckFailsOnAPinMismatch() throws {
        try withTemporaryDirectory { folder in
            let module = repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm")
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"minimal\"\nsha256 = \"\(String(repeating: "0", count: 64))\"\n".utf8).write(to: grants)
            let wrong = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
            #expect(wrong.status == 1, "\(wrong.stdout)\(wrong.stderr)")
            #expect(wrong.stdout.contains("a run will be refused"))
            let digest = String(try runProgramOutput("/usr/bin/sha256sum", [module.path]).prefix(64))
            try Data("module = \"minimal\"\nsha256 = \"\(digest)\"\n".utf8).write(to: grants)
            let right = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
            #expect(right.status == 0, "\(right.stdout)\(right.stderr)")
        }
    }

    /// Errors about a module read as sentences: WasmKit's text error printed a Swift value (`at Location(line: 2,
    /// column: 1)`), and a binary error said "not a valid WebAssembly module" twice.
    @Test("a module that does not parse is named once, at a line and column or an offset")
    func moduleErrorsReadAsSentences() throws {
        try withTemporaryDirectory { folder in
            let text = folder.appendingPathComponent("bad.wat")
            try Data("(module\n".utf8).write(to: text)
            let binary = folder.appendingPathComponent("cut.wasm")
            try Data([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05]).write(to: binary)
            for (file, words) in [(text, "at line 2, column 1"), (binary, "at offset 0x")] {
                for command in [["run", file.path], ["inspect", file.path]] {
                    let result = try runPeonWasm(command)
                    BoundedFileTests.expectOneLineError(result, status: 65, mentioning: [words], "\(command)")
                    #expect(!result.stderr.contains("Location(") && result.stderr.components(separatedBy: "not a valid WebAssembly module").count <= 2,
                            "\(result.stderr)")
                }
            }
        }
    }

    /// `grants check` listed a module that imports something no host provides (`env.foo`), or exports neither `run`
    /// nor `_start`, as fitting its grants (exit 0), though a run refuses both (67, 68). It checks them as a run does.
    @Test("grants check refuses a module a run could not link or start (exit 2)")
    func grantsCheckChecksLinkingAndTheEntryPoint() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"m\"\n".utf8).write(to: grants)
            let modules = [(#"(module (import "env" "foo" (func)) (func (export "run") (param i32 i32) (result i32) (i32.const 0)))"#, "env.foo"),
                           (#"(module (func (export "other")))"#, "exports neither _start"),
                           (#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) (func (export "_start")))"#, "fd_write")]
            for (text, words) in modules {
                let module = folder.appendingPathComponent("m.wat")
                try Data(text.utf8).write(to: module)
                let result = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
                BoundedFileTests.expectOneLineError(result, status: 2, mentioning: [words], words)
                #expect(result.stdout.isEmpty, "\(result.stdout)")
            }
        }
    }

    /// A workspace grant that covers the grants file or the module is refused on them at run time; `grants check`
    /// says so, so that the operator can narrow it.
    @Test("grants check warns about an fs grant covering the grants file or the module")
    func grantsCheckWarnsAboutGrantsCoveringHostFiles() throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("minimal.wasm")
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm"), to: module)
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"wat-minimal\"\n[[fs]]\npaths = [\"./**\"]\nallow = [\"read\"]\n".utf8).write(to: grants)
            let result = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("covers the grants file") && result.stdout.contains("covers the module"), "\(result.stdout)")
            try Data("module = \"wat-minimal\"\n[[fs]]\npaths = [\"./data/**\"]\nallow = [\"read\"]\n".utf8).write(to: grants)
            let narrow = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
            #expect(!narrow.stdout.contains("covers the"), "\(narrow.stdout)")
        }
    }

    /// A relative grant path is resolved against the grants file's folder; written from the repository root instead
    /// (`policies/py-researcher.toml` granted `modules/py-researcher/notes.txt`, which is `policies/modules/...`), the
    /// grant allows nothing and the run's first call is denied. `grants check` says when a granted path is not there.
    @Test("grants check warns about an fs grant naming a path that does not exist")
    func grantsCheckWarnsAboutMissingGrantedPaths() throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("minimal.wasm")
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm"), to: module)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("policies"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("data"), withIntermediateDirectories: true)
            try Data("x".utf8).write(to: folder.appendingPathComponent("data/notes.txt"))
            let grants = folder.appendingPathComponent("policies/g.toml")
            func check(_ paths: String, allow: String = "\"read\"") throws -> String {
                try Data("module = \"wat-minimal\"\n[[fs]]\npaths = [\(paths)]\nallow = [\(allow)]\n".utf8).write(to: grants)
                let result = try runPeonWasm(["grants", "check", module.path, "--grants", grants.path])
                #expect(result.status == 0, "\(result.stderr)")
                return result.stdout
            }
            let missing = try check("\"data/notes.txt\", \"data/*.md\"")
            #expect(missing.contains("`\(folder.path)/policies/data/notes.txt`: it does not exist"), "\(missing)")
            #expect(missing.contains("\(folder.path)/policies/data does not exist"), "\(missing)")
            #expect(missing.contains("resolved against the grants file's folder"), "\(missing)")
            for (paths, allow) in [("\"../data/notes.txt\", \"../data/*.md\", \"../data/**\"", "\"read\""),
                                   ("\"../data/new.txt\"", "\"write\""), ("\"/**\"", "\"list\"")] {
                let present = try check(paths, allow: allow)
                #expect(!present.contains("does not exist"), "\(paths): \(present)")
            }
            let newFolder = try check("\"../nowhere/new.txt\"", allow: "\"write\"")
            #expect(newFolder.contains("\(folder.path)/nowhere does not exist"), "\(newFolder)")
        }
    }

    /// Every grants file shipped in `policies/` names files that are in the repository, resolved as a run resolves
    /// them (the documented commands run from the repository root).
    @Test("the shipped grants files grant paths that exist")
    func shippedGrantsNamePathsThatExist() throws {
        let folder = repositoryRoot.appendingPathComponent("policies")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".toml") }
        #expect(files.count >= 8)
        for file in files {
            let result = try runPeonWasm(["grants", "check", "modules/wat-minimal/minimal.wasm", "--grants", "policies/\(file)"])
            #expect(!result.stdout.contains("does not exist"), "\(file): \(result.stdout)")
        }
    }

    /// A mistyped `--audit-key` for a log already signed created a new key at that path, and the run then failed on
    /// the checkpoint's signature with advice to "check --key" (a flag `run` does not have). It is refused before any
    /// key is made, and the signature message names the right flag.
    @Test("a missing --audit-key for a signed log is refused without creating a key")
    func aMissingKeyForASignedLogCreatesNothing() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("a.jsonl").path
            let first = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--audit-key", folder.path + "/k1"])
            #expect(first.status == 0, "\(first.stderr)")
            let typo = folder.path + "/typo/k"
            let refused = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--audit-key", typo])
            #expect(refused.status == 78)
            #expect(refused.stderr.contains("there is no signing key at '\(typo)'") && refused.stderr.contains("--audit-key"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: typo) && !FileManager.default.fileExists(atPath: folder.path + "/typo"))
            // Another key that exists: the signature message names --audit-key.
            let other = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", folder.path + "/b.jsonl", "--audit-key", folder.path + "/k2"])
            #expect(other.status == 0, "\(other.stderr)")
            let wrong = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--audit-key", folder.path + "/k2"])
            #expect(wrong.status == 78 && wrong.stderr.contains("`--audit-key` for run and mcp"), "\(wrong.stderr)")
        }
    }

    /// A mistyped command was "Unexpected argument 'runn'" (or "2 unexpected arguments: ..."): it now says the word
    /// names no command, suggests the nearest, and lists the commands, at every level; exit 64 as before.
    @Test("a mistyped command is named as one, with the nearest command and the list")
    func mistypedCommandsAreNamed() throws {
        let cases: [([String], String)] = [
            (["frobnicate"], "unknown command 'frobnicate' for peon-wasm; the commands are run, inspect, policy, audit, grants, mcp"),
            (["runn", "modules/hello/hello.wat"], "unknown command 'runn' for peon-wasm; did you mean 'run'? the commands are run, inspect, policy, audit, grants, mcp"),
            (["audit", "verfy", "x.jsonl"], "unknown command 'verfy' for peon-wasm audit; did you mean 'verify'?"),
            (["policy", "evl"], "unknown command 'evl' for peon-wasm policy; did you mean 'eval'? the commands are eval, explain"),
        ]
        for (arguments, message) in cases {
            let result = try runPeonWasm(arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error: \(message)") && result.stderr.split(separator: "\n").count == 1,
                    "\(arguments): \(result.stderr)")
        }
        // A number option given something else said only "The value 'x' is invalid for '--fuel <fuel>'".
        for (arguments, message) in [(["run", "modules/hello/hello.wat", "--fuel=abc"], "--fuel takes a whole number, such as 1000000; got 'abc'"),
                                     (["run", "modules/hello/hello.wat", "--fuel=-1"], "--fuel takes a whole number that is not negative"),
                                     (["audit", "prove", "x.jsonl", "abc"], "<seq> takes a whole number, such as 0 or 41; got 'abc'")] {
            let result = try runPeonWasm(arguments)
            #expect(result.status == 64 && result.stderr.hasPrefix("peon-wasm: error: \(message)"), "\(arguments): \(result.stderr)")
        }
        // A command's own arguments are not commands.
        let extra = try runPeonWasm(["inspect", "modules/hello/hello.wat", "extra"])
        #expect(extra.status == 64 && !extra.stderr.contains("unknown command"), "\(extra.stderr)")
    }

    /// `--input` with a WASI command (no `run` export to take it) was dropped without a word (exit 0).
    @Test("--input for a WASI command is refused, not dropped")
    func inputForACommandIsRefused() throws {
        try withTemporaryDirectory { folder in
            let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--input", "hi", "--audit", folder.path + "/a.jsonl",
                                          "--audit-key", folder.path + "/k"])
            BoundedFileTests.expectOneLineError(result, status: 78, mentioning: ["is a WASI command", "--stdin", "drop --input"], "--input for hello.wat")
            #expect(result.stdout.isEmpty, "the command ran: \(result.stdout)")
            let agent = try runPeonWasm(["run", "modules/wat-minimal/minimal.wasm", "--input", "x", "--audit", folder.path + "/a.jsonl",
                                         "--audit-key", folder.path + "/k"])
            #expect(!agent.stderr.contains("is a WASI command"), "\(agent.stderr)")
        }
    }

    @Test("inspect marks an unknown import and exits 67")
    func marksUnknownImports() throws {
        try withTemporaryDirectory { folder in
            let file = folder.appendingPathComponent("u.wat")
            try Data(#"(module (import "env" "mystery" (func)) (import "peon:host/fs@0.1.0" "teleport" (func)) (func (export "_start")))"#.utf8).write(to: file)
            let result = try runPeonWasm(["inspect", file.path])
            #expect(result.status == 67)
            #expect(result.stdout.contains("[unknown: no such host module]"))
            #expect(result.stdout.contains("teleport") && result.stdout.contains("not a function of wit/peon.wit"))
        }
    }

    /// A `--db` path no SQLite database can be at is refused before the module runs (exit 78, one line, nothing
    /// audited): before, `run` started, and the binding failed only at the module's first `db` call, as an `io` error
    /// the module might not report. A file that does not exist yet, in a folder that does, is let through (its calls fail not-found).
    @Test("a --db path that is a folder, a FIFO, empty or in a missing folder is refused before the run")
    func databasePathsThatCannotBeDatabasesAreRefusedFirst() throws {
        try withTemporaryDirectory { folder in
            let fifo = folder.appendingPathComponent("db.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let log = folder.appendingPathComponent("audit.jsonl").path
            let cases = [(folder.path, "it is a directory"), (fifo, "it is a FIFO, a socket or a device"),
                         ("", "no file after '='"), (folder.path + "/missing/x.db", "its folder does not exist")]
            for (path, reason) in cases {
                let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--db", "notes=\(path)"],
                                             environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path],
                                             timeout: 20)
                #expect(result.status == 78, "\(path): \(result.stderr)")
                #expect(result.stderr.hasPrefix("peon-wasm: error: --db notes=\(path): ") && result.stderr.contains(reason),
                        "\(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: log), "the run started: \(path)")
            }
            let fresh = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log,
                                         "--db", "notes=\(folder.path)/new.db"],
                                        environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(fresh.status == 0, "\(fresh.stderr)")
        }
    }

    /// A `--db` name no `[[db]]` grant names, and a `[[db]]` database no `--db` binds, were met only at the module's first
    /// `db` call ("denied", "not-found"). Each is a note on stderr when the run starts; the run goes on.
    @Test("a --db name no grant names, and a granted database nothing binds, are noted at the start")
    func databaseBindingsThatCannotMeetAreNoted() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"hello\"\n[[db]]\ndatabase = \"tickets\"\ntables = [\"t\"]\nallow = [\"read\"]\n".utf8).write(to: grants)
            let log = folder.appendingPathComponent("audit.jsonl").path
            let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--grants", grants.path, "--audit", log,
                                          "--db", "ticket=\(folder.path)/t.db"],
                                         environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("--db ticket=... is bound, but no [[db]] grant names database 'ticket'"), "\(result.stderr)")
            #expect(result.stderr.contains("a [[db]] grant names database 'tickets', but no --db tickets=PATH binds it"), "\(result.stderr)")
            let matched = try runPeonWasm(["run", "modules/hello/hello.wat", "--grants", grants.path, "--audit", log,
                                           "--db", "tickets=\(folder.path)/t.db"],
                                          environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(matched.status == 0 && !matched.stderr.contains("note:"), "\(matched.stderr)")
        }
    }

    /// A `--db` NAME no grant can carry (`[[db]] database` takes 1-64 of `A-Z a-z 0-9 . _ -`) could never be used, and a
    /// second binding of one name silently replaced the first: both ran, and the module met the typo at its first `db`
    /// call. Now both are usage errors before anything runs, for `run` and `mcp` alike.
    @Test("a --db name grants cannot carry, or one bound twice, is a usage error before the run")
    func databaseNamesAreCheckedAndBoundOnce() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl").path
            let db = folder.appendingPathComponent("x.db").path
            let cases: [([String], String)] = [
                (["--db", "no tes=\(db)"], "--db NAME must be 1-64 characters"),
                (["--db", "\u{1b}[2J=\(db)"], "--db NAME must be 1-64 characters"),
                (["--db", String(repeating: "n", count: 65) + "=\(db)"], "--db NAME must be 1-64 characters"),
                (["--db", "notes=\(db)", "--db", "notes=\(folder.path)/y.db"], "--db binds 'notes' twice"),
            ]
            for (options, words) in cases {
                for command in [["run", "modules/hello/hello.wat"], ["mcp", "--list", "policies/c-summarizer.toml"]] {
                    let result = try runPeonWasm(command + ["--audit", log] + options,
                                                 environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path],
                                                 timeout: 20)
                    BoundedFileTests.expectOneLineError(result, status: 64, mentioning: [words], "\(command[0]) \(options)")
                    #expect(!result.stderr.contains("\u{1b}"), "an escape reached the terminal: \(result.stderr)")
                    #expect(!FileManager.default.fileExists(atPath: log), "\(command[0]) started: \(options)")
                }
            }
            let fine = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--db", "notes.v2_a-b=\(db)", "--db", "other=\(db)"],
                                       environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(fine.status == 0, "\(fine.stderr)")
        }
    }

    /// A call that needs approval with no `--approver` given was refused, and the module could report only its own
    /// "approval required": stderr now says once which call and grant asked, and which option names an approver.
    @Test("a call needing approval without --approver gets one note naming the grant and --approver")
    func approvalWithoutAnApproverIsExplainedOnce() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            let reports = repositoryRoot.appendingPathComponent("modules/c-summarizer/reports").path
            try Data("""
                module = "c-summarizer"
                [[fs]]
                paths = ["\(reports)", "\(reports)/**"]
                allow = ["read", "list"]
                approval = true
                """.utf8).write(to: grants)
            let result = try runPeonWasm(["run", "modules/c-summarizer/summarizer.wasm", "--grants", grants.path,
                                          "--audit", folder.path + "/a.jsonl", "--audit-key", folder.path + "/k",
                                          "--input", "\(reports) \(folder.path)/summary.md"])
            #expect(result.status != 0)
            let notes = result.stderr.split(separator: "\n").filter { $0.hasPrefix("peon-wasm: note:") }
            #expect(notes.count == 1, "\(result.stderr)")
            #expect(notes.first?.contains("needs approval (grant \(grants.path):2)") == true && notes.first?.contains("--approver tty") == true,
                    "\(result.stderr)")
        }
    }

    /// An `--approver` program that cannot run is refused when `run` or `mcp` starts (exit 78, one line, nothing
    /// audited): before, the run went on and every call that needed approval was refused, each for a reason the
    /// operator saw only in the log. A bare name is looked up on `PATH`, as it will be run.
    /// `--approver tty` without a terminal (a CI job, a service, an MCP client's child) refused every approval mid-run,
    /// one by one; it is refused at start like an approval program that cannot run. Run where this process has no
    /// controlling terminal (CI), as a terminal would answer.
    @Test("--approver tty without a terminal is refused at start (78)",
          .enabled(if: open("/dev/tty", O_RDWR | O_NOCTTY) < 0, "this test process has a terminal"))
    func aTerminalApproverWithoutATerminalIsRefusedAtStart() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl").path
            for command in [["run", "modules/hello/hello.wat"], ["mcp", "policies/c-summarizer.toml"]] {
                let result = try runPeonWasm(command + ["--audit", log, "--approver", "tty"],
                                             environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path], timeout: 20)
                #expect(result.status == 78, "\(command[0]): \(result.stderr)")
                #expect(result.stderr.hasPrefix("peon-wasm: error: --approver tty: there is no terminal to ask on"), "\(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: log), "\(command[0]) started")
            }
        }
    }

    @Test("an --approver that names no executable program is refused at start; one on PATH is taken")
    func anApproverThatCannotRunIsRefusedAtStart() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl").path
            let script = folder.appendingPathComponent("approve.sh").path
            try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: script))
            #expect(chmod(script, 0o644) == 0)
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            let cases = [(folder.path, "it is not a regular file"), (folder.path + "/missing", "there is no such file"),
                         (script, "it is not executable"), ("peon-no-such-approver --flag", "no executable of that name is on PATH")]
            for (approver, reason) in cases {
                for command in [["run", "modules/hello/hello.wat"], ["mcp", "policies/c-summarizer.toml"]] {
                    let result = try runPeonWasm(command + ["--audit", log, "--approver", approver], environment: environment,
                                                 timeout: 20)
                    #expect(result.status == 78, "\(command[0]) \(approver): \(result.stderr)")
                    #expect(result.stderr == "peon-wasm: error: --approver '\(approver)': \(reason); give the approval program's path, or 'tty'\n",
                            "\(result.stderr)")
                    #expect(!FileManager.default.fileExists(atPath: log), "\(command[0]) started with \(approver)")
                }
            }
            #expect(chmod(script, 0o755) == 0)
            for approver in [script, "true"] {
                let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--approver", approver],
                                             environment: environment)
                #expect(result.status == 0, "\(approver): \(result.stderr)")
            }
        }
    }
}

/// The standard output of `program` run with `arguments`.
private func runProgramOutput(_ program: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
