import Foundation
import PeonAudit
import PeonTestSupport
import Testing

/// A run whose output cannot be written loses data, and says so. `peon-wasm run hello.wat > /dev/full` exited 0 with
/// `run.end ok` and the module told its write had succeeded (found by a red-team pass); `echo hi > /dev/full` fails.
@Suite("output that cannot be written",
       .enabled(if: FileManager.default.isWritableFile(atPath: "/dev/full"), "this machine has no /dev/full"))
struct LostOutputTests {
    /// A new, empty folder of this test's own.
    static func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peon-lost-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The last `run.end` record in the log at `path`.
    static func lastRunEnd(in path: String) throws -> AuditRecord? {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        return try lines.map { try AuditEntry.parse(Array($0.utf8)).get().record }.last { $0.call == "run.end" }
    }

    @Test(arguments: ["modules/hello/hello.wat", "Tests/PeonMCPTests/MCP/echo.wat"])
    func aFullDiskIsAnErrorNotASuccess(module: String) throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("audit.jsonl").path
        let path = repositoryRoot.appendingPathComponent(module).path
        let key = directory.appendingPathComponent("audit.key").path
        let input = module.hasPrefix("Tests") ? " --input x" : ""
        let result = try runShell("exec \"$PEON_WASM\" run '\(path)' --audit '\(log)' --audit-key '\(key)'\(input) > /dev/full")
        #expect(result.status == 74, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("peon-wasm: error: the module's output could not be written to stdout (no space left on device)"),
                "\(result.stderr)")
        let end = try #require(try Self.lastRunEnd(in: log))
        #expect(end.outcome == "error:output", "\(end)")
    }

    /// An agent that wrote output (lost on a full disk) and then returned an error: the loss is the run's outcome
    /// (exit 74, `error:output`), and the agent's error is still said and recorded. It was `agent-error`, exit 1, as if
    /// nothing had been lost.
    @Test func outputLostBeforeAnAgentsErrorIsStillALoss() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("fails.wat")
        try Data("""
            (module
              (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 64) "lost\\n")
              (data (i32.const 80) "gave up")
              (data (i32.const 96) "\\01\\00\\00\\00\\50\\00\\00\\00\\07\\00\\00\\00")
              (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
              (func (export "run") (param i32 i32) (result i32)
                (i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 5))
                (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
                (i32.const 96)))
            """.utf8).write(to: module)
        let log = directory.appendingPathComponent("audit.jsonl").path
        let key = directory.appendingPathComponent("audit.key").path
        let result = try runShell("exec \"$PEON_WASM\" run '\(module.path)' --audit '\(log)' --audit-key '\(key)' --input x > /dev/full")
        #expect(result.status == 74, "\(result.stderr)")
        #expect(result.stderr.contains("peon-wasm: the agent returned an error: gave up\n"), "\(result.stderr)")
        #expect(result.stderr.hasSuffix("peon-wasm: error: the module's output could not be written to stdout (no space left on device), so some of it is lost; free the space or choose another place for it\n"),
                "\(result.stderr)")
        let end = try #require(try Self.lastRunEnd(in: log))
        #expect(end.outcome == "error:output" && end.reason.hasSuffix("the agent returned an error: gave up"), "\(end)")
    }

    /// A reader that went away first (`EPIPE` on stdout) does not hide a real loss after it (stderr on a full disk).
    @Test func aLossAfterAClosedPipeIsStillReported() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("both.wat")
        try Data("""
            (module
              (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 64) "lost\\n")
              (func (export "_start")
                (i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 5))
                (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
                (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 32)))))
            """.utf8).write(to: module)
        let log = directory.appendingPathComponent("audit.jsonl").path
        let process = Process()
        process.executableURL = peonWasmExecutable
        process.arguments = ["run", module.path, "--audit", log, "--audit-key", directory.appendingPathComponent("audit.key").path]
        let closed = Pipe()
        try closed.fileHandleForReading.close()
        process.standardOutput = closed.fileHandleForWriting
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 74)
        let end = try #require(try Self.lastRunEnd(in: log))
        #expect(end.outcome == "error:output", "\(end)")
        #expect(end.reason.contains("stderr"), "\(end)")
    }

    /// An agent's answer is the module's output: it leaves the process only once the entries of the reads it came from
    /// are in the log (`--audit-sync batch` keeps them in the process's buffer until then). The answer is larger than a
    /// pipe holds and nobody reads it at first, so `peon-wasm` stops mid-answer, and the log is looked at then.
    @Test func anAnswerLeavesOnlyAfterTheEntriesOfItsReads() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("big.txt")
        try Data(String(repeating: "x", count: 16 << 10).utf8).write(to: data)
        let grants = directory.appendingPathComponent("g.toml")
        try Data("module = \"reader\"\n[[fs]]\npaths = [\"big.txt\"]\nallow = [\"read\"]\n".utf8).write(to: grants)
        let log = directory.appendingPathComponent("audit.jsonl").path
        let process = Process()
        process.executableURL = peonWasmExecutable
        process.arguments = ["run", repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/reader.wat").path,
                             "--grants", grants.path, "--audit", log, "--audit-sync", "batch",
                             "--audit-key", directory.appendingPathComponent("audit.key").path, "--input", data.path]
        let answer = Pipe()
        // The smallest pipe (one page; F_SETPIPE_SZ), so a short answer fills it: the run is then quick enough that
        // `batch` mode still holds the read's entries in its buffer when the answer is written.
        _ = fcntl(answer.fileHandleForWriting.fileDescriptor, 1031, 4096)
        process.standardOutput = answer
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The log is read as soon as the answer begins (the pipe fills and `peon-wasm` waits mid-answer): the entries
        // must already be there. (A buffer in `batch` mode is written within 10 ms anyway, so a late look proves less.)
        var ready = pollfd(fd: answer.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 30_000) == 1, "no answer began")
        let written = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(written.contains(#""call":"fs.read""#) && written.contains(#""outcome":"ok""#),
                "the answer began before the read's entries were in the log: \(written.suffix(400))")
        let all = answer.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(all.count == (16 << 10) + 1)
    }

    /// A full non-blocking pipe (`EAGAIN`) is waited on, not a loss: 256 KiB into a non-blocking pipe that is read
    /// only half a second later all arrive, and the run exits 0.
    @Test func aFullNonBlockingPipeIsWaitedOn() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("much.wat")
        try Data("""
            (module
              (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 6)
              (func (export "_start")
                (i32.store (i32.const 16) (i32.const 65536)) (i32.store (i32.const 20) (i32.const 262144))
                (if (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32))
                  (then unreachable))))
            """.utf8).write(to: module)
        let process = Process()
        process.executableURL = peonWasmExecutable
        process.arguments = ["run", module.path, "--audit", directory.appendingPathComponent("audit.jsonl").path,
                             "--audit-key", directory.appendingPathComponent("audit.key").path]
        let output = Pipe()
        let flags = fcntl(output.fileHandleForWriting.fileDescriptor, F_GETFL)
        #expect(fcntl(output.fileHandleForWriting.fileDescriptor, F_SETFL, flags | O_NONBLOCK) == 0)
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.5)
        let all = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(all.count == 262_144)
    }
}
