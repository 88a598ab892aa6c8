import Foundation
import PeonAudit
import PeonTestSupport
import Testing

/// A run whose output cannot be written loses data, and says so. `peon-wasm run hello.wat > /dev/full` exited 0 with
/// `run.end ok` and the module told its write had succeeded (found by a red-team pass); `echo hi > /dev/full` fails.
@Suite("output that cannot be written",
       .enabled(if: FileManager.default.isWritableFile(atPath: "/dev/full"), "this machine has no /dev/full"))
struct LostOutputTests {
    @Test(arguments: ["modules/hello/hello.wat", "Tests/PeonMCPTests/MCP/echo.wat"])
    func aFullDiskIsAnErrorNotASuccess(module: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peon-lost-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("audit.jsonl").path
        let path = repositoryRoot.appendingPathComponent(module).path
        let key = directory.appendingPathComponent("audit.key").path
        let input = module.hasPrefix("Tests") ? " --input x" : ""
        let result = try runShell("exec \"$PEON_WASM\" run '\(path)' --audit '\(log)' --audit-key '\(key)'\(input) > /dev/full")
        #expect(result.status == 74, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("peon-wasm: error: the module's output could not be written to stdout (no space left on device)"),
                "\(result.stderr)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let end = try #require(try lines.map { try AuditEntry.parse(Array($0.utf8)).get().record }.last { $0.call == "run.end" })
        #expect(end.outcome == "error:output", "\(end)")
    }
}
