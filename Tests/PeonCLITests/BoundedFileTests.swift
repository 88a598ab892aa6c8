import Foundation
import PeonTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every file the CLI reads on the operator's behalf is read with a bound, from one descriptor, and without
/// waiting on a FIFO it should not wait on: a FIFO at a grants, model, policy or schema path is refused at
/// once (it used to hang the command), a 1 GiB (sparse) file there is refused by its size without being read,
/// and `--input-file` still reads a pipe, `<(printf ...)` or a named FIFO whose writer comes later, up to 64 MiB.
@Suite("files the CLI reads: bounded, read once, never waited on as FIFOs", .serialized)
struct BoundedFileTests {
    static let agent = AgentRunTests.agent
    static let model = repositoryRoot.appendingPathComponent("docs/examples/rbac-model.conf").path
    static let policy = repositoryRoot.appendingPathComponent("docs/examples/rbac-policy.csv").path
    static let requests = repositoryRoot.appendingPathComponent("docs/examples/requests.jsonl").path

    /// A FIFO at `folder/name` with no writer: opening it for reading the old way waits forever.
    static func fifo(_ folder: URL, _ name: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try #require(mkfifo(path, 0o600) == 0, "mkfifo \(path): \(String(cString: strerror(errno)))")
        return path
    }

    /// A sparse file of 1 GiB at `folder/name`: instant to make, 1 GiB to whoever reads it whole.
    static func huge(_ folder: URL, _ name: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(ftruncate(fd, 1 << 30) == 0)
        return path
    }

    /// A grants file serving `modules/wat-minimal/minimal.wasm` as a tool whose input schema is `schema`.
    static func toolGrants(_ folder: URL, schema: String) throws -> String {
        let path = folder.appendingPathComponent("tool.toml").path
        try Data("""
            module = "minimal"
            [tool]
            wasm = "\(agent)"
            description = "Reads the file its input names."
            input-schema = "\(schema)"
            """.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The command lines under test, for one kind of bad file at `bad` (other files good), with the exit code
    /// each must give and the bound its message must name.
    static func commands(_ bad: String, folder: URL) throws -> [(arguments: [String], status: Int32, bound: String)] {
        [
            (["run", agent, "--grants", bad, "--input", "x"], 78, "4 MiB"),
            (["grants", "check", agent, "--grants", bad], 2, "4 MiB"),
            (["policy", "explain", "--grants", bad, "fs.read", "/srv/x"], 2, "4 MiB"),
            (["run", agent, "--model", bad, "--policy", policy, "--input", "x"], 78, "4 MiB"),
            (["run", agent, "--model", model, "--policy", bad, "--input", "x"], 78, "64 MiB"),
            (["policy", "eval", "--model", bad, "--policy", policy, requests], 2, "4 MiB"),
            (["policy", "eval", "--model", model, "--policy", bad, requests], 2, "64 MiB"),
            (["mcp", "--list", try toolGrants(folder, schema: bad)], 78, "4 MiB"),
        ]
    }

    /// One `peon-wasm: error:` line holding every word, and no crash.
    static func expectOneLineError(_ result: CommandResult, status: Int32, mentioning words: [String], _ what: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "\(what): exit \(result.status), stderr: \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("peon-wasm: error: ") == true, "\(what): \(result.stderr)",
                sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "\(what): missing '\(word)' in: \(result.stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test("a FIFO at a grants, model, policy or input-schema path, or as the module, is refused at once, not waited on")
    func fifoIsRefusedAtOnce() throws {
        try withTemporaryDirectory { folder in
            let fifo = try Self.fifo(folder, "config.fifo")
            var cases = try Self.commands(fifo, folder: folder).map { ($0.arguments, $0.status) }
            cases.append((["inspect", fifo], 66))
            for (arguments, status) in cases {
                let started = Date()
                // A command that waits for a writer is killed at the timeout (exit 15); one that tries to read the
                // FIFO as text misreports it ("not UTF-8 text", "cannot read it") instead of naming a FIFO.
                let result = try runPeonWasm(arguments, directory: folder, timeout: 15)
                let what = arguments.joined(separator: " ")
                Self.expectOneLineError(result, status: status, mentioning: ["FIFO"], what)
                #expect(Date().timeIntervalSince(started) < 10, "\(what) took \(Date().timeIntervalSince(started)) s")
            }
        }
    }

    @Test("a 1 GiB grants, model, policy, input-schema, requests or --input-file is refused by its size, unread")
    func hugeFileIsRefusedUnread() throws {
        try withTemporaryDirectory { folder in
            let huge = try Self.huge(folder, "huge")
            var cases = try Self.commands(huge, folder: folder)
            cases.append((["policy", "eval", "--model", Self.model, "--policy", Self.policy, huge], 2, "64 MiB"))
            cases.append((["run", Self.agent, "--input-file", huge], 78, "64 MiB"))
            for (arguments, status, bound) in cases {
                let what = arguments.joined(separator: " ")
                let measured = try runPeonWasmMeasuringMemory(arguments, directory: folder, timeout: 60)
                Self.expectOneLineError(measured.result, status: status, mentioning: ["larger than \(bound)"], what)
                // Reading it whole would hold 1 GiB; refused by its size, the command stays at its usual few tens of MB.
                if let peak = measured.peakBytes { #expect(peak < 256 << 20, "\(what): peak \(peak >> 20) MiB") }
            }
        }
    }

    @Test("--input-file <(printf ...) reads the pipe, and a named FIFO is waited on until its writer comes")
    func inputFileReadsPipes() throws {
        try withTemporaryDirectory { folder in
            let fixture = try AgentRunTests.Fixture(folder)
            try fixture.writeGrants(AgentRunTests.fullGrants)
            let common = "--grants \"$GRANTS\" --audit \"$AUDIT\""
            let environment = ["NOTE": fixture.note.path, "GRANTS": fixture.grants.path, "AUDIT": fixture.audit.path,
                               "AGENT": Self.agent]
            let substituted = try runShell("exec \"$PEON_WASM\" run \"$AGENT\" --input-file <(printf %s \"$NOTE\") \(common)",
                                           environment: environment, directory: folder, timeout: 60)
            #expect(substituted.status == 0, "\(substituted.stderr)")
            #expect(substituted.stdout == "\(fixture.note.path): 12 bytes\n", "\(substituted.stdout)")

            // The writer opens the FIFO a second after the run started: the input is what it writes, not the
            // empty string a FIFO without a writer reads as.
            let fifo = try Self.fifo(folder, "input.fifo")
            let named = try runShell("(sleep 1; printf %s \"$NOTE\" > \"$FIFO\") & exec \"$PEON_WASM\" run \"$AGENT\" --input-file \"$FIFO\" \(common)",
                                     environment: environment.merging(["FIFO": fifo]) { $1 }, directory: folder, timeout: 60)
            #expect(named.status == 0, "\(named.stderr)")
            #expect(named.stdout == "\(fixture.note.path): 12 bytes\n", "\(named.stdout)")
            #expect(!substituted.stderr.contains("still waiting"), "\(substituted.stderr)")

            // Nobody writes: the run's timeout ends the wait, and a note said what it was waiting for (the timeout's
            // own message names the module, which never started).
            let unwritten = try runShell("exec \"$PEON_WASM\" run \"$AGENT\" --input-file \"$FIFO\" --timeout 4s \(common)",
                                         environment: environment.merging(["FIFO": fifo]) { $1 }, directory: folder, timeout: 60)
            #expect(unwritten.status == 124, "\(unwritten.stderr)")
            #expect(unwritten.stderr.contains("peon-wasm: note: still waiting for --input-file '\(fifo)' to be written and closed"),
                    "\(unwritten.stderr)")
        }
    }

    @Test("a pipe of more than 64 MiB to --input-file or --stdin is refused (exit 78), and the run's end says error")
    func longPipeIsRefused() throws {
        try withTemporaryDirectory { folder in
            let fixture = try AgentRunTests.Fixture(folder)
            try fixture.writeGrants(AgentRunTests.fullGrants)
            let environment = ["NOTE": fixture.note.path, "GRANTS": fixture.grants.path, "AUDIT": fixture.audit.path,
                               "AGENT": Self.agent, "BYTES": String((64 << 20) + 1)]
            for (option, words) in [("--input-file <(head -c \"$BYTES\" /dev/zero)", ["--input-file", "larger than 64 MiB"]),
                                    ("--input \"$NOTE\" --stdin < <(head -c \"$BYTES\" /dev/zero)", ["--stdin", "larger than 64 MiB"])] {
                let result = try runShell("exec \"$PEON_WASM\" run \"$AGENT\" --grants \"$GRANTS\" --audit \"$AUDIT\" \(option)",
                                          environment: environment, directory: folder, timeout: 60)
                Self.expectOneLineError(result, status: 78, mentioning: words, option)
                #expect(try fixture.entries(call: "run.end").last?["outcome"] as? String == "error", "\(option)")
            }
            // Exactly the bound is not past it: the same agent run with 64 MiB on its stdin succeeds.
            let atBound = try runShell("exec \"$PEON_WASM\" run \"$AGENT\" --grants \"$GRANTS\" --audit \"$AUDIT\" --input \"$NOTE\" --stdin < <(head -c \(64 << 20) /dev/zero)",
                                       environment: environment, directory: folder, timeout: 60)
            #expect(atBound.status == 0, "\(atBound.stderr)")
        }
    }

    @Test("a module path swapped between a module and a 1 GiB file while it is read never gets the big file read")
    func moduleSwapIsNeverReadPastTheBound() throws {
        try withTemporaryDirectory { folder in
            let huge = try Self.huge(folder, "huge.wasm")
            let link = folder.appendingPathComponent("module.wasm").path
            let temporary = folder.appendingPathComponent("module.next").path
            try #require(symlink(Self.agent, link) == 0)
            // Flips `module.wasm` between the module and the 1 GiB file as fast as it can: a reader that checks the
            // size by name and then reads the path again (the old way) soon checks the module and reads the big
            // file whole, then calls it "not a WebAssembly module"; a reader that opens once and examines the
            // descriptor reads the module, or refuses the big file by its size.
            let stop = StopFlag()
            let flipper = Thread {
                var toHuge = true
                while !stop.value.load(ordering: .relaxed) {
                    unlink(temporary)
                    guard symlink(toHuge ? huge : Self.agent, temporary) == 0, rename(temporary, link) == 0 else { continue }
                    toHuge.toggle()
                }
            }
            flipper.start()
            defer { stop.value.store(true, ordering: .relaxed) }
            var outcomes: [String: Int] = [:]
            for _ in 0..<60 {
                let result = try runPeonWasm(["inspect", link], directory: folder, timeout: 60)
                let refusedBySize = result.status == 65 && result.stderr.contains("larger than the 256 MiB a module may have")
                outcomes[result.status == 0 ? "read" : refusedBySize ? "refused by size" : "exit \(result.status)", default: 0] += 1
                #expect(result.status == 0 || refusedBySize, "exit \(result.status): \(result.stderr)")
                if result.status != 0 && !refusedBySize { break }
            }
            #expect(Set(outcomes.keys).isSubset(of: ["read", "refused by size"]), "\(outcomes)")
        }
    }
}

/// A flag one thread sets and another polls (an `Atomic` cannot be captured by the thread's closure itself).
private final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
