import ArgumentParser
import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime
import PeonInterface
import PeonMediator
import PeonPostgres
import PeonRuntime
import PeonSystem

/// The options `run` and `mcp` share: where the policy, the audit log and the approver come from, the
/// databases, the limits and the engine. One group, so the two commands cannot drift apart: a run and a
/// tool call are decided, limited and logged the same way. (`run` limits the whole run; `mcp` each call.)
struct HostOptions: ParsableArguments {
    @Option(help: "A Casbin model file, instead of the built-in policies/model.conf.")
    var model: String?

    @Option(help: "A Casbin policy file (CSV), or a policy store postgresql://USER@HOST:PORT/DB[?table=casbin_rule&channel=casbin_role_watcher&poll=10] (Casbin's casbin_rule table, reloaded on NOTIFY), used with --model or with the built-in model.")
    var policy: String?

    @Option(name: .customLong("audit-sink"), help: ArgumentHelp("Ship every audit entry and signed checkpoint, in the background, to the central tables of this PostgreSQL database.", valueName: "postgresql://..."))
    var auditSink: String?

    @Option(name: .customLong("db"), help: ArgumentHelp("Bind a SQLite database NAME to the file PATH (repeatable).", valueName: "NAME=PATH"))
    var databases: [String] = []

    @Option(help: "The audit log (default: $PEON_WASM_AUDIT_LOG, else $XDG_STATE_HOME/peon-wasm/audit.jsonl, else ~/.local/state/peon-wasm/audit.jsonl).")
    var audit: String?

    @Option(name: .customLong("audit-key"), help: "The checkpoint signing key (default: $XDG_CONFIG_HOME/peon-wasm/audit.key, else ~/.config/peon-wasm/audit.key, created on first use).")
    var auditKey: String?

    @Option(name: .customLong("audit-sync"), help: "When audit entries reach the disk: always, effects or batch.")
    var auditSync: String = "effects"

    @Option(help: ArgumentHelp("Who approves calls whose grant says approval = true: 'tty', or a command that gets the call as JSON on stdin and exits 0 to approve. Default: refuse them (mcp: ask through the client when it supports elicitation).", valueName: "tty|COMMAND"))
    var approver: String?

    @Option(help: "Wall-clock limit for a run (mcp: for each call), e.g. 500ms, 30s, 2m. Default: the grants' timeout, else 30s.")
    var timeout: DurationArgument?

    @Option(help: "Cap on the module's linear memories and tables together, 8 bytes per table element (e.g. 64MiB, 1GiB). Default: the grants' memory, else 256MiB.")
    var memory: SizeArgument?

    @Option(help: "Instruction budget; enables fuel metering (about 15% slower on WasmKit). Default: the grants' fuel, else none.")
    var fuel: UInt64?

    @Option(name: .customLong("max-host-calls"), help: "Most host calls (WASI and peon:host) one run may make. Default: 1000000.")
    var maxHostCalls: Int?

    @Option(name: .customLong("max-output"), help: "Most bytes the module may write to stdout and stderr together. Default: 16MiB.")
    var maxOutput: SizeArgument?

    @Option(help: "The engine: wasmkit (pure Swift) or wasmtime (JIT, needs libwasmtime).")
    var engine: String = "wasmkit"

    @Option(name: .customLong("wasmtime-lib"), help: "Path of libwasmtime.so for --engine wasmtime (default: $PEON_WASMTIME_LIB, the library path, then the wasmtime Python package).")
    var wasmtimeLibrary: String?

    func validate() throws {
        if let maxHostCalls, maxHostCalls < 1 { throw ValidationError("--max-host-calls must be at least 1, got \(maxHostCalls)") }
        if let fuel, fuel < 1 { throw ValidationError("--fuel must be at least 1 instruction, got \(fuel)") }
        _ = try memory?.checked("--memory", minimum: 65_536)
        _ = try maxOutput?.checked("--max-output", minimum: 0)
        _ = try timeout?.checked("--timeout")
        var bound: [Substring: String] = [:]
        for binding in databases {
            guard binding.contains("="), !binding.hasPrefix("=") else { throw ValidationError("--db takes NAME=PATH, got '\(binding)'") }
            let name = binding.prefix { $0 != "=" }
            // A name no grant can carry, or a second binding that would silently replace the first, is a typo the
            // module would only meet at its first `db` call.
            guard isDatabaseName(String(name)) else {
                throw ValidationError("--db NAME must be 1-64 characters of A-Z a-z 0-9 . _ - (as grants name databases), got '\(name)' in '\(binding)'")
            }
            if let earlier = bound[name] {
                throw ValidationError("--db binds '\(name)' twice ('\(earlier)' and '\(binding)'); bind each database name once")
            }
            bound[name] = binding
        }
        guard AuditSyncMode(rawValue: auditSync) != nil else {
            throw ValidationError("--audit-sync must be always, effects or batch, got '\(auditSync)'")
        }
        guard ["wasmkit", "wasmtime"].contains(engine) else {
            throw ValidationError("--engine must be wasmkit or wasmtime, got '\(engine)'")
        }
        do throws(PostgresStoreError) {
            _ = try PolicySources.commandLine(grants: nil, model: model, policy: policy)
            if let auditSink { _ = try PostgresAddress(auditSink) }
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// `--timeout`, `--memory`, `--fuel`, `--max-host-calls`, `--max-output`.
    var overrides: LimitOverrides {
        var overrides = LimitOverrides()
        overrides.memoryBytes = memory?.bytes
        overrides.timeout = timeout?.duration
        overrides.fuel = fuel
        overrides.hostCalls = maxHostCalls
        overrides.outputBytes = maxOutput?.bytes
        return overrides
    }

    /// The policy sources for `grants` with `--model` and `--policy`. Each call makes a policy store of
    /// its own (its own connection and `LISTEN`), so every reloader watches the store it reads.
    func policySources(grants: String?) throws(RunError) -> PolicySources {
        do throws(PostgresStoreError) {
            return try PolicySources.commandLine(grants: grants, model: model, policy: policy)
        } catch {
            throw RunError(.configuration, error.description)
        }
    }

    /// The session options these flags describe, with the policy for `grants`.
    func sessionOptions(grants: String?) throws(RunError) -> SessionOptions {
        var options = SessionOptions()
        options.policy = try policySources(grants: grants)
        do throws(PostgresStoreError) {
            if let auditSink { options.auditSink = PostgresAuditShipper(try PostgresAddress(auditSink)) }
        } catch {
            throw RunError(.configuration, error.description)
        }
        for binding in databases {
            let parts = binding.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let path = parts.count > 1 ? String(parts[1]) : ""
            try Self.checkDatabasePath(path, binding: binding)
            options.databases[String(parts[0])] = path
        }
        options.auditPath = audit
        options.auditKeyPath = auditKey
        options.auditSync = AuditSyncMode(rawValue: auditSync) ?? .effects
        options.approver = approver
        // A mistyped approver is one error when `run` or `mcp` starts, not every approval refused later.
        if let approver, approver != "tty", let command = CommandApprover(commandLine: approver),
           let problem = command.programProblem(searchPath: ProcessInfo.processInfo.environment["PATH"]) {
            throw RunError(.configuration, "--approver '\(TerminalText.escaped(approver))': \(problem); give the approval program's path, or 'tty'")
        }
        // So is `tty` without a terminal to ask on (a CI job, a service, an MCP client's child): every approval would be
        // refused, one by one, mid-run.
        if approver == "tty" {
            let terminal = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard terminal >= 0 else {
                let reason = String(cString: strerror(errno))
                throw RunError(.configuration, "--approver tty: there is no terminal to ask on (/dev/tty: \(reason)); run from a terminal, or give an approval program's path")
            }
            close(terminal)
        }
        return options
    }

    /// Refuses, before the module runs, a `--db` path no SQLite database can be at: empty, a folder, a FIFO, socket or
    /// device, or in a folder that does not exist. A missing file in an existing folder is let through: the capability
    /// opens databases without `CREATE`, so the module's calls fail `not-found` until someone creates it.
    /// (Found otherwise only at the module's first `db` call, as an `io` error the module may not report.)
    static func checkDatabasePath(_ path: String, binding: String) throws(RunError) {
        let shown = TerminalText.escaped(binding)
        guard !path.isEmpty else {
            throw RunError(.configuration, "--db \(shown): no file after '='; name the SQLite database file")
        }
        var entry = stat()
        if stat(path, &entry) == 0 {
            guard entry.st_mode & S_IFMT == S_IFREG else {
                let what = nonRegularFileKind(mode: UInt32(entry.st_mode))
                throw RunError(.configuration, "--db \(shown): it is \(what), not a database file; name the SQLite database file")
            }
            return
        }
        let folder = (path as NSString).deletingLastPathComponent
        var parent = stat()
        guard stat(folder.isEmpty ? "." : folder, &parent) == 0, parent.st_mode & S_IFMT == S_IFDIR else {
            throw RunError(.configuration, "--db \(shown): its folder does not exist, so no database can be there (peon-wasm does not create one); check the path, or create the folder and the database first (sqlite3 FILE 'VACUUM;')")
        }
    }

    /// The engine `--engine` names (wasmtime loaded from `--wasmtime-lib`).
    func makeEngine(fuel: Bool) throws(RunError) -> any WasmEngine {
        switch engine {
        case "wasmtime":
            return try Engines.wasmtime(libraryPath: wasmtimeLibrary)
        default:
            return Engines.wasmKit(fuelMetering: fuel)
        }
    }
}
