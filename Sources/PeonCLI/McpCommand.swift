import ArgumentParser
import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime
import PeonInterface
import PeonMCP
import PeonMediator
import PeonRuntime
import Synchronization

/// `peon-wasm mcp GRANTS.toml...`: serves one MCP tool per grants file over stdio.
struct McpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve modules as MCP tools over stdio, one tool per grants file with a [tool] table.",
        discussion: """
            Each call runs a fresh instance of the tool's module under its grants; every host call is \
            decided by policy and written to the audit log first, and each call is bracketed by run.start \
            and run.end naming the MCP request id and client. Grants files are watched: an edit applies to \
            the next calls and the client gets notifications/tools/list_changed. Nothing a client sends can \
            change the grants. See docs/mcp.md.

            Example: peon-wasm mcp policies/c-summarizer.toml policies/wat-minimal.toml
            """)

    @Argument(help: "Grants files (.toml), each with a [tool] table.")
    var grants: [String]

    @Flag(help: "Print the tools, their input schemas and what each may touch, then exit.")
    var list = false

    @Option(name: .customLong("db"), help: ArgumentHelp("Bind a SQLite database NAME to the file PATH (repeatable).", valueName: "NAME=PATH"))
    var databases: [String] = []

    @Option(help: "The audit log (default: $PEON_WASM_AUDIT_LOG, else ~/.local/state/peon-wasm/audit.jsonl).")
    var audit: String?

    @Option(name: .customLong("audit-key"), help: "The checkpoint signing key (default: ~/.config/peon-wasm/audit.key, created on first use).")
    var auditKey: String?

    @Option(name: .customLong("audit-sync"), help: "When audit entries reach the disk: always, effects (default) or batch.")
    var auditSync: String = "effects"

    @Option(help: ArgumentHelp("Who approves calls whose grant says approval = true: 'tty', or a command that gets the call as JSON on stdin and exits 0 to approve. Default: refuse them.", valueName: "tty|COMMAND"))
    var approver: String?

    @Option(help: "Wall-clock limit per call (e.g. 500ms, 30s). Default: the grants' timeout, else 30s.")
    var timeout: DurationArgument?

    @Option(help: "Memory cap per call (e.g. 64MiB). Default: the grants' memory, else 256MiB.")
    var memory: SizeArgument?

    @Option(help: "Instruction budget per call; enables fuel metering. Default: the grants' fuel, else none.")
    var fuel: UInt64?

    @Option(name: .customLong("max-host-calls"), help: "Most host calls (WASI and peon:host) one call may make. Default: 1000000.")
    var maxHostCalls: Int?

    @Option(name: .customLong("max-output"), help: "Most bytes one call may write to stdout and stderr together. Default: 16MiB.")
    var maxOutput: SizeArgument?

    @Option(name: .customLong("max-concurrent"), help: "Most calls running at once; more wait their turn. Default: 8.")
    var maxConcurrent: Int = 8

    @Option(name: .customLong("max-message"), help: "Largest MCP message accepted; a longer one is refused with an error. Default: 4MiB.")
    var maxMessage: SizeArgument?

    @Option(help: "The engine: wasmkit (default, pure Swift) or wasmtime (JIT, needs libwasmtime).")
    var engine: String = "wasmkit"

    @Option(name: .customLong("wasmtime-lib"), help: "Path of libwasmtime.so for --engine wasmtime (default: $PEON_WASMTIME_LIB, the library path, then the wasmtime Python package).")
    var wasmtimeLibrary: String?

    func validate() throws {
        guard !grants.isEmpty else { throw ValidationError("name at least one grants file") }
        if let maxHostCalls, maxHostCalls < 1 { throw ValidationError("--max-host-calls must be at least 1, got \(maxHostCalls)") }
        if let fuel, fuel < 1 { throw ValidationError("--fuel must be at least 1 instruction, got \(fuel)") }
        guard (1...1024).contains(maxConcurrent) else {
            throw ValidationError("--max-concurrent must be 1 to 1024, got \(maxConcurrent)")
        }
        _ = try memory?.checked("--memory", minimum: 65_536)
        _ = try maxOutput?.checked("--max-output", minimum: 0)
        _ = try maxMessage?.checked("--max-message", minimum: 1024)
        _ = try timeout?.checked("--timeout")
        for binding in databases where !binding.contains("=") || binding.hasPrefix("=") {
            throw ValidationError("--db takes NAME=PATH, got '\(binding)'")
        }
        guard AuditSyncMode(rawValue: auditSync) != nil else {
            throw ValidationError("--audit-sync must be always, effects or batch, got '\(auditSync)'")
        }
        guard ["wasmkit", "wasmtime"].contains(engine) else {
            throw ValidationError("--engine must be wasmkit or wasmtime, got '\(engine)'")
        }
    }

    func run() throws {
        do {
            if list {
                try printList()
            } else {
                try serve()
            }
        } catch {
            throw fail(error)
        }
    }

    private var overrides: LimitOverrides {
        var overrides = LimitOverrides()
        overrides.memoryBytes = memory?.bytes
        overrides.timeout = timeout?.duration
        overrides.fuel = fuel
        overrides.hostCalls = maxHostCalls
        overrides.outputBytes = maxOutput?.bytes
        return overrides
    }

    private var sessionOptions: SessionOptions {
        var options = SessionOptions()
        for binding in databases {
            let parts = binding.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            options.databases[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        options.auditPath = audit
        options.auditKeyPath = auditKey
        options.auditSync = AuditSyncMode(rawValue: auditSync) ?? .effects
        options.approver = approver
        return options
    }

    /// The engine factory every call uses; wasmtime is loaded once, here, so a missing library fails at start.
    private func engineFactory() throws(RunError) -> @Sendable (Bool) throws(RunError) -> any WasmEngine {
        switch engine {
        case "wasmtime":
            let loaded: WasmtimeEngine
            do {
                loaded = try WasmtimeEngine.load(libraryPath: wasmtimeLibrary)
            } catch {
                throw RunError(.configuration, error.message)
            }
            return { (_: Bool) throws(RunError) -> any WasmEngine in loaded }
        default:
            return { (fuel: Bool) throws(RunError) -> any WasmEngine in WasmKitEngine(fuelMetering: fuel) }
        }
    }

    /// Loads every tool (checking names are unique) against `host`.
    private func loadTools(host: ToolHostConfiguration, changed: @escaping @Sendable () -> Void) throws(RunError) -> [ToolService] {
        var services: [ToolService] = []
        for path in grants {
            let service = try ToolService(grantsPath: path, host: host, changed: { outcome in
                if case .reloaded = outcome { changed() }
            })
            if let other = services.first(where: { $0.name == service.name }) {
                throw RunError(.configuration,
                    "\(path) and \(other.grantsPath) both name module \"\(service.name)\"; a tool name must be unique")
            }
            services.append(service)
        }
        return services
    }

    private func serve() throws(RunError) {
        let log = try AgentSession.openAudit(sessionOptions)
        let host = ToolHostConfiguration(audit: log, options: sessionOptions, overrides: overrides, engine: try engineFactory())
        let server = ToolServer(maxConcurrent: maxConcurrent, version: PeonWasm.configuration.version)
        let services = try loadTools(host: host, changed: { server.toolsChanged() })
        for service in services {
            server.add(service)
            service.startWatching()
            if engine == "wasmkit" && service.grants?.limits.fuel == nil && fuel == nil {
                printError("peon-wasm: note: tool \(service.name) has no fuel limit; under wasmkit a call that loops without host calls is stopped only by --fuel or [limits] fuel, not by its timeout")
            }
        }
        let transport = StdioLineTransport(maxMessageBytes: maxMessage?.bytes ?? (4 << 20))
        let failure = ServeFailure()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.serve(transport: transport)
            } catch {
                failure.message.withLock { $0 = "\(error)" }
            }
            done.signal()
        }
        done.wait()
        for service in services { service.stop() }
        try? log.writeCheckpoint()
        try? log.close()
        if let message = failure.message.withLock({ $0 }) {
            throw RunError(.internalError, "the MCP server stopped: \(message)")
        }
    }

    /// `--list`: each tool, its schema and what its grants let it touch.
    private func printList() throws(RunError) {
        var lines: [String] = []
        for path in grants {
            let parsed: Grants
            do {
                parsed = try GrantsParser.load(path: path)
            } catch {
                throw RunError(.configuration, error.description)
            }
            guard let tool = parsed.tool else {
                throw RunError(.configuration, "\(path): no [tool] table, so there is no tool to serve; add [tool] with wasm = \"...\" and description = \"...\"")
            }
            let module = try ModuleFile(path: tool.wasm)
            lines.append("tool \(parsed.module)  (\(path))")
            lines.append("  description: \(tool.description)")
            lines.append("  module: \(tool.wasm) sha256 \(module.sha256)")
            lines.append("  input schema: \(tool.inputSchema ?? ToolGrant.defaultInputSchema)")
            lines.append("  input: " + (tool.inputSchema == nil ? "the `input` string" : "the arguments object as JSON text"))
            var limits: [String] = []
            if let memory = parsed.limits.memory { limits.append("memory \(memory.bytes) bytes") }
            if let timeout = parsed.limits.timeout { limits.append("timeout \(Runner.format(timeout))") }
            if let calls = parsed.limits.calls { limits.append("\(calls) host calls") }
            if let fuel = parsed.limits.fuel { limits.append("fuel \(fuel)") }
            lines.append("  limits: " + (limits.isEmpty ? "the defaults" : limits.joined(separator: ", ")))
            var touches: [String] = []
            for (index, grant) in parsed.fileSystem.enumerated() {
                touches.append("fs[\(index)] \(grant.access.map(\.rawValue).joined(separator: ",")) \(grant.paths.joined(separator: " "))\(conditions(grant.conditions))")
            }
            for (index, grant) in parsed.http.enumerated() {
                let headers = grant.headers.isEmpty ? "" : " (injects headers: \(grant.headers.map(\.name).joined(separator: ", ")))"
                touches.append("http[\(index)] \(grant.methods.joined(separator: ",")) \(grant.urls.joined(separator: " "))\(headers)\(conditions(grant.conditions))")
            }
            for (index, grant) in parsed.database.enumerated() {
                touches.append("db[\(index)] \(grant.access.map(\.rawValue).joined(separator: ",")) \(grant.database)/\(grant.tables.joined(separator: ","))\(conditions(grant.conditions))")
            }
            for (index, grant) in parsed.exec.enumerated() {
                let arguments = grant.arguments.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }
                touches.append("exec[\(index)] \(([grant.program] + arguments).joined(separator: " "))\(conditions(grant.conditions))")
            }
            if !parsed.environment.isEmpty {
                touches.append("env: \(parsed.environment.keys.sorted().joined(separator: ", "))")
            }
            lines.append("  may touch:" + (touches.isEmpty ? " nothing (every host call is denied)" : ""))
            lines += touches.map { "    " + $0 }
        }
        let text = lines.map { TerminalText.escaped($0) }.joined(separator: "\n") + "\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    private func conditions(_ conditions: GrantConditions) -> String {
        var notes: [String] = []
        if let rate = conditions.rate { notes.append("rate \(rate)") }
        switch conditions.approval {
        case .never: break
        case .everyCall: notes.append("each call needs approval")
        case .firstUse: notes.append("a first use needs approval")
        }
        return notes.isEmpty ? "" : " [" + notes.joined(separator: "; ") + "]"
    }
}

/// How the server's task ended, read by the main thread after it signalled.
private final class ServeFailure: Sendable {
    let message = Mutex<String?>(nil)
}
