import Foundation
import PeonAudit
import PeonMediator
import PeonRuntime
import PeonTestSupport
import Synchronization
import Testing

/// In `batch` mode the log may hold entries of reads in the process for a moment. A guest's output (stdout,
/// stderr, `log` lines) is a way out of the process, so the session writes those entries before any byte of it
/// leaves.
@Suite struct GuardedOutputTests {
    @Test func guestOutputLeavesOnlyAfterTheReadsBeforeItAreInTheLog() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peon-guarded-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("salary: 1".utf8).write(to: URL(fileURLWithPath: dir + "/data/a.txt"))
        try Data("module = \"agent\"\n[[fs]]\npaths = [\"data/**\"]\nallow = [\"read\"]\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/grants.toml"))
        var options = SessionOptions()
        options.policy = PolicySources(grantsPath: dir + "/grants.toml", modelPath: nil, policyPath: nil)
        options.auditPath = dir + "/audit.jsonl"
        options.auditKeyPath = dir + "/audit.key"
        options.auditSync = .batch
        options.workingDirectory = dir
        let module = repositoryRoot.appendingPathComponent("modules/wat-minimal/minimal.wasm").path
        let plan = try RunPlan(modulePath: module, options: options, overrides: LimitOverrides())
        let session = try AgentSession(plan: plan, deadline: ContinuousClock.now + .seconds(60))
        try session.recordStart(engine: "test")
        let readsSeen = Mutex<[Int]>([])
        let stdout = session.guardingOutput { _ in
            let data = (try? Data(contentsOf: URL(fileURLWithPath: dir + "/audit.jsonl"))) ?? Data()
            let reads = data.split(separator: 0x0A).filter { line in
                (try? AuditEntry.parse(Array(line)).get().record.call) == "fs.read"
            }.count
            readsSeen.withLock { $0.append(reads) }
            return 0
        }
        for round in 1...3 {
            for _ in 0..<4 { _ = try session.mediator.read(path: "data/a.txt") }
            _ = Array("round \(round)".utf8).withUnsafeBytes { stdout($0) }
        }
        session.finish(outcome: "ok", reason: "")
        // Every read's decision and outcome entry was in the file when the output left.
        #expect(readsSeen.withLock { $0 } == [8, 16, 24])
    }
}
