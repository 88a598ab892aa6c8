import Foundation
import Glibc
import PeonTestSupport
import Testing

/// `peon-wasm mcp --list` and the checks `peon-wasm mcp` makes before it serves anything (no MCP
/// client needed).
@Suite struct McpListTests {
    @Test func listShowsEachToolItsSchemaAndWhatItMayTouch() throws {
        let result = try runPeonWasm(["mcp", "--list", "policies/wat-minimal.toml", "policies/zig-auditor.toml"])
        #expect(result.status == 0, "\(result.stderr)")
        let out = result.stdout
        #expect(out.contains("tool wat-minimal  (policies/wat-minimal.toml)"), "\(out)")
        #expect(out.contains("tool zig-auditor  (policies/zig-auditor.toml)"), "\(out)")
        #expect(out.contains(#""required":["input"]"#), "\(out)")
        #expect(out.contains("fs[1] append \(repositoryRoot.path)/modules/wat-minimal/out/ledger.txt"), "\(out)")
        #expect(out.contains("exec[2] /usr/bin/grep -F 'Failed password'"), "\(out)")
        #expect(out.contains("limits: memory 1048576 bytes, timeout 5s, 100 host calls"), "\(out)")
    }

    /// Two grants files naming the same module would be two tools of one name, and a call could not say whose grants
    /// it runs under: serving refuses them, and so does `--list` (it printed both, so a configuration that `--list`
    /// showed as fine did not start).
    @Test func twoToolsOfOneNameAreRefusedByListAndServeAlike() throws {
        try withTemporaryDirectory { folder in
            let copy = folder.appendingPathComponent("wat-minimal-copy.toml")
            let text = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/wat-minimal.toml"), encoding: .utf8)
            // The same module name; its relative paths made absolute, so only the name clashes.
            try Data(text.replacingOccurrences(of: "\"../", with: "\"\(repositoryRoot.path)/").utf8).write(to: copy)
            let audit = folder.appendingPathComponent("audit.jsonl").path
            for extra in [["--list"], []] {
                let result = try runPeonWasm(["mcp"] + extra + ["policies/wat-minimal.toml", copy.path, "--audit", audit],
                                             timeout: 30)
                #expect(result.status == 78, "\(extra): \(result.stderr)")
                #expect(result.stdout.isEmpty, "\(extra): \(result.stdout)")
                #expect(result.stderr.contains("\(copy.path) and policies/wat-minimal.toml both name module \"wat-minimal\"; a tool name must be unique"),
                        "\(extra): \(result.stderr)")
            }
        }
    }

    /// A parent may hand the server a non-blocking stdin (the flag lives on the pipe, shared with the parent): the
    /// server then waits for input instead of spinning on `EAGAIN`, and still ends when the input does.
    @Test func aNonBlockingStdinIsWaitedOnNotSpunOn() throws {
        let process = Process()
        process.executableURL = peonWasmExecutable
        process.arguments = ["mcp", "policies/wat-minimal.toml"]
        process.currentDirectoryURL = repositoryRoot
        var environment = ProcessInfo.processInfo.environment
        environment["PEON_WASM_AUDIT_LOG"] = freshDefaultAuditLog()
        environment["XDG_CONFIG_HOME"] = testConfigHome
        process.environment = environment
        let input = Pipe()
        let readEnd = input.fileHandleForReading.fileDescriptor
        #expect(fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK) == 0)
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        // Kept for the failure message: this test once failed in a full parallel suite with the server still running
        // 30 s after its input ended, and passed alone every time since.
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("peon-test-nonblocking-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        process.standardError = try FileHandle(forWritingTo: errorFile)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        Thread.sleep(forTimeInterval: 1)  // start-up (compiling the tool) is over
        let before = try Self.cpuTicks(process.processIdentifier)
        Thread.sleep(forTimeInterval: 2)
        let spent = try Self.cpuTicks(process.processIdentifier) - before
        // Two idle seconds: spinning on read takes about 200 ticks (a whole core); waiting, next to none.
        #expect(spent < 40, "the server used \(spent) ticks of CPU in 2 s with no input")
        try input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!process.isRunning, "still running 60 s after its input ended; threads waiting in: \(Self.waitChannels(process.processIdentifier)); stderr: \((try? String(contentsOf: errorFile, encoding: .utf8)) ?? "")")
        if !process.isRunning { #expect(process.terminationStatus == 0) }
    }

    /// Where each thread of process `pid` waits in the kernel (`/proc/PID/task/*/wchan`), for a failure message.
    static func waitChannels(_ pid: Int32) -> String {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.sorted().map { task in
            let channel = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/wchan", encoding: .utf8)) ?? "?"
            let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? "?"
            return "\(name.trimmingCharacters(in: .whitespacesAndNewlines))=\(channel)"
        }.joined(separator: " ")
    }

    /// User plus system CPU time of process `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
    static func cpuTicks(_ pid: Int32) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }

    @Test func listEscapesWhatAGrantsFileSays() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("t.toml")
            try Data("""
                module = "t"
                [tool]
                wasm = "\(repositoryRoot.path)/Tests/PeonMCPTests/MCP/echo.wat"
                description = "clears \\u001b[2J the screen"
                """.utf8).write(to: grants)
            let result = try runPeonWasm(["mcp", "--list", grants.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stdout.contains("\u{1b}"), "an escape sequence reached the terminal")
            #expect(result.stdout.contains("clears \\u{1b}[2J the screen"), "\(result.stdout)")
            #expect(result.stdout.contains("may touch: nothing (every host call is denied)"), "\(result.stdout)")
        }
    }

    @Test func grantsWithoutAToolTableAreAConfigurationError() throws {
        for arguments in [["mcp", "--list", "policies/malicious.toml", "policies/examples/api-client.toml"],
                          ["mcp", "policies/examples/api-client.toml"]] {
            let result = try runPeonWasm(arguments)
            #expect(result.status == 78, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("api-client.toml: no [tool] table"), "\(result.stderr)")
        }
    }

    /// A tool whose module a run would refuse (an import no host provides: 67; no `run` or `_start`: 68) was listed and
    /// served, and every call then failed. Serving and `--list` refuse it at start, with the run's exit code. So is a
    /// function body that does not type-check (65): WasmKit checks bodies only when it instantiates, so only the calls
    /// found it.
    @Test func aToolThatCouldNeverRunIsNotServed() throws {
        try withTemporaryDirectory { folder in
            for (text, status) in [(#"(module (import "env" "foo" (func)) (func (export "run") (param i32 i32) (result i32) (i32.const 0)))"#, Int32(67)),
                                   (#"(module (func (export "other")))"#, Int32(68)),
                                   (#"(module (func (export "_start") (drop (i32.add))))"#, Int32(65))] {
                try Data(text.utf8).write(to: folder.appendingPathComponent("tool.wat"))
                try Data("module = \"t\"\n[tool]\nwasm = \"tool.wat\"\ndescription = \"x\"\n".utf8)
                    .write(to: folder.appendingPathComponent("t.toml"))
                for arguments in [["mcp", "--list", "t.toml"], ["mcp", "t.toml", "--audit", "a.jsonl", "--audit-key", "a.key"]] {
                    let result = try runPeonWasm(arguments, directory: folder)
                    #expect(result.status == status, "\(arguments): \(result.stderr)")
                    #expect(result.stderr.hasPrefix(status == 65 ? "peon-wasm: error: t.toml: [tool] wasm '\(folder.path)/tool.wat' is not a valid WebAssembly module: "
                                                                 : "peon-wasm: error: t.toml: [tool] wasm: ")
                            && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
                }
            }
        }
    }

    @Test func twoGrantsFilesNamingOneModuleAreRefused() throws {
        let result = try runPeonWasm(["mcp", "policies/wat-minimal.toml", "policies/wat-minimal.toml"])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("both name module \"wat-minimal\""), "\(result.stderr)")
    }

    @Test func anUnreachablePolicyStoreRefusesToServe() throws {
        try withTemporaryDirectory { folder in
            let served = try runPeonWasm(["mcp", "--policy", "postgresql://nobody@127.0.0.1:1/none",
                                          "--audit", folder.path + "/a.jsonl", "--audit-key", folder.path + "/a.key",
                                          "policies/wat-minimal.toml"])
            #expect(served.status == 75, "\(served.stderr)")
            #expect(served.stderr.hasPrefix("peon-wasm: error: policy store postgresql://nobody@127.0.0.1:1/none/casbin_rule"),
                    "\(served.stderr)")
            // Said in words, not as the driver's dump of nested values (`SingleConnectionFailure(target: ...)`).
            #expect(served.stderr.contains(": connection refused; check that the server runs")
                    && !served.stderr.contains("SingleConnectionFailure") && served.stderr.split(separator: "\n").count == 1,
                    "\(served.stderr)")
        }
    }

    @Test func aMalformedPolicyAddressIsAUsageError() throws {
        let result = try runPeonWasm(["mcp", "--policy", "postgresql://u@h/db?colour=blue", "policies/wat-minimal.toml"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("unknown key 'colour'"), "\(result.stderr)")
    }

    @Test("--http refuses a non-loopback address without --allow-remote, and a malformed one")
    func httpBindChecks() throws {
        let remote = try runPeonWasm(["mcp", "--http", "0.0.0.0:8765", "policies/wat-minimal.toml"])
        #expect(remote.status == 64, "\(remote.stderr)")
        #expect(remote.stderr.contains("not a loopback address") && remote.stderr.contains("reverse proxy"), "\(remote.stderr)")
        for bad in ["8765", "127.0.0.1:99999", "[::1:80", "::1:80"] {
            let result = try runPeonWasm(["mcp", "--http", bad, "policies/wat-minimal.toml"])
            #expect(result.status == 64 && result.stderr.contains("--http takes HOST:PORT"), "\(bad): \(result.stderr)")
        }
        let stray = try runPeonWasm(["mcp", "--allow-remote", "policies/wat-minimal.toml"])
        #expect(stray.status == 64 && stray.stderr.contains("--allow-remote applies to --http only"), "\(stray.stderr)")
        let host = try runPeonWasm(["mcp", "--allowed-host", "proxy.internal", "policies/wat-minimal.toml"])
        #expect(host.status == 64 && host.stderr.contains("--allowed-host applies to --http only"), "\(host.stderr)")
        let wildcard = try runPeonWasm(["mcp", "--http", "127.0.0.1:0", "--allowed-host", "*", "policies/wat-minimal.toml"])
        #expect(wildcard.status == 64 && wildcard.stderr.contains("--allowed-host takes a host name"), "\(wildcard.stderr)")
    }
}
