import Foundation
import PeonAudit
import PeonRuntime
import Testing

/// What a program embedding peon-wasm does, with nothing but the public products (`PeonRuntime`,
/// `PeonAudit`): plan a run from grants, open its session, get an engine from ``Engines``, run the agent, and
/// find the allowed and the denied call in the audit log, which verifies.
@Suite struct EmbeddingTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `modules/wat-minimal/minimal.wasm` in `folder` with `input`, returning its result.
    static func run(in folder: URL, input: String) throws -> RunResult {
        var options = SessionOptions()
        options.policy = PolicySources(grantsPath: folder.appendingPathComponent("grants.toml").path)
        options.auditPath = folder.appendingPathComponent("audit.jsonl").path
        options.auditKeyPath = folder.appendingPathComponent("audit.key").path
        options.workingDirectory = folder.path
        let plan = try RunPlan(modulePath: repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm").path,
                               options: options, overrides: LimitOverrides())
        let session = try AgentSession(plan: plan, deadline: ContinuousClock.now + plan.limits.timeout, handleHangup: false)
        let engine = Engines.wasmKit()
        try session.recordStart(engine: engine.name)
        var request = RunRequest(module: plan.module, engine: engine)
        request.limits = plan.limits
        request.input = input
        request.peonHostFunctions = session.hostFunctions
        let result = try Runner.run(request)
        session.finish(outcome: "ok", reason: "")
        return result
    }

    @Test func anEmbedderRunsAnAgentWithThePublicAPI() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peon-embed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("modules/wat-minimal/out"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("# notes\n".utf8).write(to: folder.appendingPathComponent("notes.md"))
        try Data("""
            module = "wat-minimal"
            [[fs]]
            paths = ["notes.md"]
            allow = ["read"]
            [[fs]]
            paths = ["modules/wat-minimal/out/ledger.txt"]
            allow = ["append"]

            """.utf8).write(to: folder.appendingPathComponent("grants.toml"))

        let allowed = try Self.run(in: folder, input: folder.appendingPathComponent("notes.md").path)
        #expect(allowed == .agent(.success(folder.appendingPathComponent("notes.md").path + ": 8 bytes")))
        let denied = try Self.run(in: folder, input: "/etc/hostname")
        guard case .agent(.failure(let message)) = denied else {
            Issue.record("expected the agent's error, got \(denied)")
            return
        }
        #expect(message.contains("not granted"))

        let log = folder.appendingPathComponent("audit.jsonl").path
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains("\"call\":\"fs.read\"") && $0.contains("\"decision\":\"allow\"") })
        #expect(lines.contains { $0.contains("\"resource\":\"fs:/etc/hostname\"") && $0.contains("\"decision\":\"deny\"") })
        let ledger = try String(contentsOf: folder.appendingPathComponent("modules/wat-minimal/out/ledger.txt"), encoding: .utf8)
        #expect(ledger.split(separator: "\n").count == 1)
        let key = try CheckpointSigner.load(keyPath: folder.appendingPathComponent("audit.key").path)
        #expect(try AuditVerifier.verify(logPath: log, verifierKey: key.verifierKey).size == UInt64(lines.count))
    }
}
