import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmKit
import PeonRuntime
import PeonTestSupport
import Testing

/// A grant's `rate` holds across the calls of one `mcp` server. Each tool call is a run of its own, and the rate's
/// token bucket used to be the run's: full at every call, so `rate = "1/hour"` let a client make every call it liked
/// (found by a red-team pass: four calls, four allowed `exec.run`s, in one second).
@Suite struct ToolRateTests {
    @Test func aRateLimitsTheServersCallsTogether() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peon-rate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("note".utf8).write(to: directory.appendingPathComponent("note.txt"))
        let reader = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/reader.wat").path
        let grants = directory.appendingPathComponent("reader.toml")
        try Data("""
            module = "reader"
            [[fs]]
            paths = ["note.txt"]
            allow = ["read"]
            rate = "2/hour"
            [tool]
            wasm = "\(reader)"
            description = "Reads a file."

            """.utf8).write(to: grants)
        let (host, log) = try HTTPRequestRefusalTests.toolHost(in: directory)
        defer { try? log.close() }
        let service = try ToolService(grantsPath: grants.path, host: host)
        let path = directory.appendingPathComponent("note.txt").path
        let answers = (1...4).map { index in
            service.call(ToolCall(input: path, requestID: String(index), client: "test"))
        }
        #expect(answers.prefix(2).allSatisfy { !$0.isError && $0.text == "note" }, "\(answers)")
        #expect(answers.suffix(2).allSatisfy { $0.isError && $0.text.contains("rate limit") }, "\(answers)")
        try log.flush()
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        let reads = try lines.map { try AuditEntry.parse(Array($0.utf8)).get().record }.filter { $0.call == "fs.read" && $0.decision != nil }
        #expect(reads.map(\.decision) == [.allow, .allow, .deny, .deny], "\(reads)")
        #expect(Set(reads.map(\.run)).count == 4, "four runs, one bucket")
    }
}
