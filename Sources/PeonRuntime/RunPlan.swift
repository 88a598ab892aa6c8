import Foundation
public import PeonAudit
public import PeonMediator

/// Limits given on the command line; `nil` means "not given", so the grants' value (or the default) applies.
public struct LimitOverrides: Sendable, Hashable {
    /// `--memory`.
    public var memoryBytes: Int?
    /// `--timeout`.
    public var timeout: Duration?
    /// `--fuel`.
    public var fuel: UInt64?
    /// `--max-host-calls`.
    public var hostCalls: Int?
    /// `--max-output`.
    public var outputBytes: Int?

    /// No overrides.
    public init() {}
}

/// Where a run's policy, databases, audit log and approver come from.
public struct SessionOptions: Sendable {
    /// `--grants`, `--model`, `--policy`.
    public var policy = PolicySources()
    /// `--db NAME=PATH` bindings.
    public var databases: [String: String] = [:]
    /// `--audit`; `nil` takes ``defaultAuditPath()``.
    public var auditPath: String?
    /// `--audit-key`; `nil` takes the audit library's default key location.
    public var auditKeyPath: String?
    /// `--audit-sync`. Default: `effects`.
    public var auditSync: AuditSyncMode = .effects
    /// `--audit-sink`: where the log's entries and checkpoints are shipped in the background, if anywhere.
    public var auditSink: (any AuditSink)?
    /// `--approver`: `tty`, a command line, or `nil` (calls that need approval are refused).
    public var approver: String?
    /// The run's id in the audit log.
    public var runID = UUID().uuidString.lowercased()
    /// The folder relative guest paths start from and programs run in. Default: the current folder.
    public var workingDirectory = FileManager.default.currentDirectoryPath
    /// Files besides the run's own (its audit log, signing key, grants, model, policy and module) that no guest call
    /// reaches: in `mcp`, every tool's grants and module, so that one tool cannot rewrite another's. Resolved once
    /// (``HostFiles/add(_:)`` costs system calls), not per call.
    package var hostFiles = HostFiles()

    /// The defaults described on each property.
    public init() {}

    /// `$PEON_WASM_AUDIT_LOG`, else `$XDG_STATE_HOME/peon-wasm/audit.jsonl`, else
    /// `~/.local/state/peon-wasm/audit.jsonl`.
    public static func defaultAuditPath() -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["PEON_WASM_AUDIT_LOG"], !path.isEmpty { return path }
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/peon-wasm/audit.jsonl" }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.local/state/peon-wasm/audit.jsonl" }
        return nil
    }
}

/// What a run will be, resolved before anything runs: the module and its identity, the policy
/// snapshot, the subject name, and the effective limits (command line, then grants, then defaults).
///
/// The supervisor and the worker resolve the same plan, so the supervisor knows the real timeout and
/// can record how a killed run ended.
public struct RunPlan: Sendable {
    /// The module.
    public let module: ModuleFile
    /// The policy in force at the start.
    public let policy: PolicySnapshot
    /// The subject name: the grants' `module`, else the file name without its extension.
    public let moduleName: String
    /// The effective limits.
    public let limits: RunLimits
    /// The environment the grants give the module (`[env]`).
    public let grantedEnvironment: [(name: String, value: String)]
    /// The options it was resolved from.
    public let options: SessionOptions

    /// Reads the module and the policy, checks a grants `sha256` pin, and settles the limits.
    public init(modulePath: String, options: SessionOptions, overrides: LimitOverrides) throws(RunError) {
        let module = try ModuleFile(path: modulePath)
        let fileName = Runner.programName(modulePath)
        let policy: PolicySnapshot
        do {
            policy = try PolicySnapshot.load(options.policy, defaultModule: fileName)
        } catch {
            throw RunError(error.storeUnavailable ? .unavailable : .configuration, error.description)
        }
        try self.init(module: module, policy: policy, options: options, overrides: overrides)
    }

    /// A plan from a module already read and a policy snapshot already loaded (a long-running server
    /// plans each call from the snapshot in force, so a reload's limits apply to the next call).
    /// Checks a grants `sha256` pin and settles the limits.
    public init(module: ModuleFile, policy: PolicySnapshot, options: SessionOptions,
                overrides: LimitOverrides) throws(RunError) {
        let fileName = Runner.programName(module.path)
        let grants = policy.compiled?.grants
        if let pin = grants?.sha256, pin.lowercased() != module.sha256 {
            throw RunError(.configuration,
                "refusing to run '\(module.path)': the grants pin sha256 \(pin.lowercased()) but the module's is \(module.sha256); rebuild or re-pin")
        }
        var limits = RunLimits()
        let granted = grants?.limits
        limits.memoryBytes = overrides.memoryBytes ?? granted?.memory?.bytes ?? limits.memoryBytes
        limits.timeout = overrides.timeout ?? granted?.timeout ?? limits.timeout
        limits.fuel = overrides.fuel ?? granted?.fuel.map { UInt64(max(0, $0)) }
        limits.hostCalls = overrides.hostCalls ?? limits.hostCalls
        limits.outputBytes = overrides.outputBytes ?? limits.outputBytes
        self.module = module
        self.policy = policy
        self.moduleName = grants?.module ?? fileName
        self.limits = limits
        self.grantedEnvironment = (grants?.environment ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.options = options
    }
}
