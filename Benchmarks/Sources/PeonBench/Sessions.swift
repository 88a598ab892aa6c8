import Foundation
import PeonAudit
import PeonEngine
import PeonMediator
import PeonRuntime

/// The files every guest benchmark uses: a module, grants, data files, a database, and one audit log per session.
final class Workspace {
    let root: String
    let modulePath: String
    let grantsPath: String
    let databasePath: String
    let keyPath: String
    let moduleBytes: [UInt8]
    private var sessionCount = 0

    /// `labelled`: the `data/**` grant carries `labels = ["hr"]` and `clearance = ["hr"]`, so every read brings a label
    /// into the run and every write is checked against it (and labels the file it writes).
    /// `name` names its temporary folder (each workspace needs its own).
    init(httpPort: UInt16, labelled: Bool = false, name: String = "guest") throws {
        root = try makeTemporaryDirectory(name)
        let data = root + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try Data(repeating: 0x61, count: 16).write(to: URL(fileURLWithPath: data + "/small.txt"))
        try Data((0..<4096).map { UInt8($0 & 0x7f) }).write(to: URL(fileURLWithPath: data + "/4k.bin"))
        try Data("not granted".utf8).write(to: URL(fileURLWithPath: root + "/secret.txt"))
        moduleBytes = try benchmarkGuestBytes()
        modulePath = root + "/bench.wasm"
        try Data(moduleBytes).write(to: URL(fileURLWithPath: modulePath))
        databasePath = root + "/bench.db"
        try NativeSQLite.createBenchmarkDatabase(at: databasePath, rows: 1000)
        keyPath = root + "/audit.key"
        grantsPath = root + "/bench.toml"
        let grants = """
            module = "bench"

            [limits]
            calls = 1000000000
            timeout = "1h"

            [[fs]]
            paths = ["data/**"]
            allow = ["read", "write"]
            \(labelled ? "labels = [\"hr\"]\nclearance = [\"hr\"]" : "")

            [[db]]
            database = "bench"
            tables = ["items"]
            allow = ["read", "insert"]

            [[exec]]
            program = "/bin/true"

            [[http]]
            urls = ["http://127.0.0.1:\(httpPort)/**"]
            methods = ["GET"]

            """
        try grants.write(toFile: grantsPath, atomically: true, encoding: .utf8)
    }

    /// A fresh AgentSession (its own audit log) built exactly as `peon-wasm run` builds one.
    func session(sync: AuditSyncMode, name: String) throws -> (AgentSession, String) {
        sessionCount += 1
        var options = SessionOptions()
        options.policy = PolicySources(grantsPath: grantsPath, modelPath: nil, policyPath: nil)
        options.databases = ["bench": databasePath]
        let auditPath = root + "/audit-\(sessionCount)-\(name).jsonl"
        options.auditPath = auditPath
        options.auditKeyPath = keyPath
        options.auditSync = sync
        options.workingDirectory = root
        let plan = try RunPlan(modulePath: modulePath, options: options, overrides: LimitOverrides())
        let session = try AgentSession(plan: plan, deadline: ContinuousClock.now + .seconds(3600))
        try session.recordStart(engine: "bench")
        return (session, auditPath)
    }
}
