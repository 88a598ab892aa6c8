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

/// `peon-wasm mcp GRANTS.toml...`: serves one MCP tool per grants file over stdio, or over the streamable
/// HTTP transport with `--http`.
struct McpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve modules as MCP tools over stdio (or streamable HTTP), one tool per grants file with a [tool] table.",
        discussion: """
            Each call runs a fresh instance of the tool's module under its grants; every host call is \
            decided by policy and written to the audit log first, and each call is bracketed by run.start \
            and run.end naming the MCP request id and client. Grants files are watched: an edit applies to \
            the next calls and the client gets notifications/tools/list_changed. Nothing a client sends can \
            change the grants. SIGTERM, SIGINT or SIGQUIT stops the server: running calls are cancelled and \
            each gets its run.end, the log is checkpointed, and the exit status is 143, 130 or 131. See docs/mcp.md.

            Example: peon-wasm mcp policies/c-summarizer.toml policies/wat-minimal.toml
            """)

    @Argument(help: "Grants files (.toml), each with a [tool] table.")
    var grants: [String]

    @Flag(help: "Print the tools, their input schemas and what each may touch, then exit.")
    var list = false

    @OptionGroup(title: "Policy, audit, limits (per call) and engine")
    var host: HostOptions

    @Option(name: .customLong("max-concurrent"), help: "Most calls running at once; more wait their turn (at most --max-waiting of them).")
    var maxConcurrent: Int = 8

    @Option(name: .customLong("max-waiting"), help: "Most calls waiting for a slot at once, across all clients; a call past that is refused at once with an error (HTTP: 503). 0: none waits.")
    var maxWaiting: Int = ToolServer.defaultMaxWaiting

    @Option(name: .customLong("max-waiting-bytes"), help: "Most input the waiting calls hold together; a call past that is refused at once (one call alone may always wait). Default: 64MiB.")
    var maxWaitingBytes: SizeArgument?

    @Option(name: .customLong("max-message"), help: "Largest MCP message accepted; a longer one is refused with an error. Default: 4MiB.")
    var maxMessage: SizeArgument?

    @Option(help: ArgumentHelp("Serve the streamable HTTP transport on HOST:PORT (path /mcp) instead of stdio; PORT 0 picks a free port (printed on stderr). Plain HTTP: loopback only unless --allow-remote.", valueName: "HOST:PORT"))
    var http: String?

    @Flag(name: .customLong("allow-remote"), help: "Let --http bind an address other than loopback. Put it behind a reverse proxy that adds TLS and authentication: peon-wasm itself has neither.")
    var allowRemote = false

    @Option(name: .customLong("allowed-host"), help: ArgumentHelp("With --http: also accept requests whose Host header (and a browser's Origin) names NAME, any port, or NAME:PORT exactly: the name a reverse proxy forwards under (repeatable). Everything else is refused (DNS rebinding).", valueName: "NAME[:PORT]"))
    var allowedHosts: [String] = []

    @Option(name: .customLong("approval-timeout"), help: "How long an approval asked through the client (MCP elicitation) waits for the human; no answer refuses, and on stdio so does the end of input, at once. Default: 2m (never past the call's deadline).")
    var approvalTimeout: DurationArgument?

    func validate() throws {
        guard !grants.isEmpty else { throw ValidationError("name at least one grants file") }
        guard (1...1024).contains(maxConcurrent) else {
            throw ValidationError("--max-concurrent must be 1 to 1024, got \(maxConcurrent)")
        }
        guard (0...65536).contains(maxWaiting) else {
            throw ValidationError("--max-waiting must be 0 to 65536, got \(maxWaiting)")
        }
        _ = try maxWaitingBytes?.checked("--max-waiting-bytes")
        _ = try maxMessage?.checked("--max-message", minimum: 1024)
        _ = try approvalTimeout?.checked("--approval-timeout")
        if let http {
            guard let address = Self.parseAddress(http) else {
                throw ValidationError("--http takes HOST:PORT (such as 127.0.0.1:8765, [::1]:8765 or localhost:0), got '\(http)'")
            }
            if !HTTPToolListener.isLoopback(address.host) && !allowRemote {
                throw ValidationError("--http \(http) is not a loopback address; the server speaks plain HTTP without authentication. Bind 127.0.0.1 and put a reverse proxy with TLS and authentication in front, or pass --allow-remote if such a proxy is what reaches this address")
            }
        } else if allowRemote || !allowedHosts.isEmpty {
            throw ValidationError("\(allowRemote ? "--allow-remote" : "--allowed-host") applies to --http only")
        }
        for name in allowedHosts where name.isEmpty || name.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "*" || $0 == "," }) {
            throw ValidationError("--allowed-host takes a host name, NAME:PORT or [IPV6]:PORT, got '\(name)'")
        }
    }

    /// `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (loopback); `nil` when malformed.
    static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        if host.isEmpty { host = "127.0.0.1" }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        guard !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { return nil }
        return (host, port)
    }

    func run() throws {
        do {
            if list {
                try printList()
            } else {
                try serve()
            }
        } catch let error as RunError {
            throw fail(error)
        }
    }

    /// The engine factory every call uses; wasmtime is loaded once, here, so a missing library fails at start.
    private func engineFactory() throws(RunError) -> @Sendable (Bool) throws(RunError) -> any WasmEngine {
        switch host.engine {
        case "wasmtime":
            let loaded = try host.makeEngine(fuel: true)
            return { (_: Bool) throws(RunError) -> any WasmEngine in loaded }
        default:
            return { (fuel: Bool) throws(RunError) -> any WasmEngine in WasmKitEngine(fuelMetering: fuel) }
        }
    }

    /// Loads every tool (checking names are unique) against `configuration`, each with `--model` and
    /// `--policy` (a policy store: one connection and `LISTEN` per tool).
    private func loadTools(_ configuration: ToolHostConfiguration, changed: @escaping @Sendable () -> Void) throws(RunError) -> [ToolService] {
        var services: [ToolService] = []
        for path in grants {
            let service = try ToolService(sources: try host.policySources(grants: path), host: configuration, changed: { outcome in
                if case .reloaded = outcome { changed() }
            })
            if let other = services.first(where: { $0.name == service.name }) {
                service.stop()
                for loaded in services { loaded.stop() }
                throw RunError(.configuration,
                    "\(path) and \(other.grantsPath) both name module \"\(service.name)\"; a tool name must be unique")
            }
            services.append(service)
        }
        var toolFiles = HostFiles()
        for file in services.flatMap(\.protectedFiles) { toolFiles.add(file) }
        configuration.toolFiles.withLock { $0 = toolFiles }
        return services
    }

    private func serve() throws {
        let options = try host.sessionOptions(grants: nil)
        let log = try AgentSession.openAudit(options)
        let services: [ToolService]
        let server = ToolServer(maxConcurrent: maxConcurrent, version: PeonWasm.configuration.version,
                                approvalTimeout: approvalTimeout?.duration ?? .seconds(120), maxWaiting: maxWaiting,
                                maxWaitingBytes: maxWaitingBytes?.bytes ?? ToolServer.defaultMaxWaitingBytes)
        do throws(RunError) {
            let configuration = ToolHostConfiguration(audit: log, options: options, overrides: host.overrides, engine: try engineFactory())
            services = try loadTools(configuration, changed: { server.toolsChanged() })
        } catch {
            try? log.writeCheckpoint()
            try? log.close()
            throw error
        }
        options.auditSink?.start(log: log)
        for service in services {
            server.add(service)
            service.startWatching()
            if host.engine == "wasmkit" && service.grants?.limits.fuel == nil && host.fuel == nil {
                printError("peon-wasm: note: tool \(service.name) has no fuel limit; under wasmkit a call that loops without host calls is stopped only by --fuel or [limits] fuel, not by its timeout")
            }
        }

        // SIGTERM, SIGINT and SIGQUIT end the serving below; the handler cancels the running calls at once.
        let stop = StopRequest()
        let done = DispatchSemaphore(value: 0)
        var watchers: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "TERM"), (SIGINT, "INT"), (SIGQUIT, "QUIT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                guard stop.claim(number, name) else { return }
                for service in services { service.stopCalls(signal: name) }
                done.signal()
            }
            source.resume()
            watchers.append(source)
        }
        // SIGHUP reloads every tool's grants and policy now (a policy store is read again), as in `run`.
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler {
            for service in services { service.reload(force: true) }
        }
        hangup.resume()
        watchers.append(hangup)

        let failure = ServeFailure()
        var listener: HTTPToolListener?
        var stdio: StdioLineTransport?
        if let http, let address = Self.parseAddress(http) {
            let created = HTTPToolListener(tools: server, host: address.host, port: address.port,
                                           maxMessageBytes: maxMessage?.bytes ?? (4 << 20), allowedHosts: allowedHosts)
            listener = created
            let bound = ServeFailure()
            let started = DispatchSemaphore(value: 0)
            Task {
                do {
                    let at = try await created.start()
                    let shown = at.host.contains(":") ? "[\(at.host)]" : at.host
                    printError("peon-wasm: serving MCP (streamable HTTP) at http://\(shown):\(at.port)\(HTTPToolListener.endpoint)")
                } catch {
                    // SwiftNIO's text is `bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)`: say the errno's meaning.
                    let text = String(describing: error)
                    var reason = text
                    if let start = text.range(of: "(errno: "), let end = text[start.upperBound...].firstIndex(of: ")"),
                       let code = Int32(text[start.upperBound..<end]) {
                        reason = String(cString: strerror(code)).lowercased()
                    }
                    bound.message.withLock { $0 = "cannot listen on \(http): \(reason); choose another address or port" }
                }
                started.signal()
            }
            started.wait()
            if let message = bound.message.withLock({ $0 }) {
                for service in services { service.stop() }
                try? log.writeCheckpoint()
                try? log.close()
                throw RunError(.configuration, message)
            }
        } else {
            let transport = StdioLineTransport(maxMessageBytes: maxMessage?.bytes ?? (4 << 20))
            stdio = transport
            Task {
                do {
                    try await server.serve(transport: transport)
                } catch {
                    failure.message.withLock { $0 = "\(error)" }
                }
                done.signal()
            }
        }
        done.wait()

        let stopped = stop.value
        if let stopped {
            // The running calls were cancelled; each stops at its next host call and writes its run.end.
            let grace = ContinuousClock.now + .seconds(5)
            while services.contains(where: { $0.runningCalls > 0 }) && ContinuousClock.now < grace {
                usleep(10_000)
            }
            for service in services { service.endStragglers(signal: stopped.name) }
            server.answerStragglers(signal: stopped.name)
        }
        if let listener {
            let closed = DispatchSemaphore(value: 0)
            Task {
                await listener.close()
                closed.signal()
            }
            _ = closed.wait(timeout: .now() + 5)
        }
        for service in services { service.stop() }
        for watcher in watchers { watcher.cancel() }
        try? log.writeCheckpoint()
        try? log.close()
        options.auditSink?.finish(timeout: .seconds(5))
        // The last answers (a stopped call's "stopping" error among them) reach a client that reads them; one that
        // does not read delays the exit by at most 5 s (the drain). A call's answer is sent by the SDK after the call
        // returns, through the session's transports: first wait until every request read has its answer queued, or
        // the drain could find the queue empty and the process end before the answer is in it. That wait is for this
        // process's own work (encoding a large answer), so it is longer: 5 s lost a 300 KB answer on a loaded machine.
        if let stdio {
            let until = ContinuousClock.now + .seconds(30)
            while stdio.answersOwed > 0 && ContinuousClock.now < until { usleep(5_000) }
        }
        _ = stdio?.drain(timeout: .seconds(5))
        if let stopped {
            printError("peon-wasm: received SIG\(stopped.name); running calls were stopped and the audit log checkpointed (exit \(128 + stopped.number))")
            throw ExitCode(128 + stopped.number)
        }
        if let message = failure.message.withLock({ $0 }) {
            throw RunError(.internalError, "the MCP server stopped: \(message)")
        }
    }

    /// `--list`: each tool, its schema and what its grants let it touch.
    private func printList() throws(RunError) {
        var lines: [String] = []
        var listed: [String: String] = [:]
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
            // What serving would refuse, `--list` refuses too: it is how an operator checks the server's grants.
            if let other = listed[parsed.module] {
                throw RunError(.configuration,
                    "\(path) and \(other) both name module \"\(parsed.module)\"; a tool name must be unique")
            }
            listed[parsed.module] = path
            let module = try ModuleFile(path: tool.wasm)
            try ToolService.checkRunnable(module, grantsPath: path, engine: WasmKitEngine())
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

/// The first stop signal received (later ones change nothing).
private final class StopRequest: Sendable {
    private let signal = Mutex<(number: Int32, name: String)?>(nil)

    /// Records the signal; `false` when one was recorded already.
    func claim(_ number: Int32, _ name: String) -> Bool {
        signal.withLock { current in
            guard current == nil else { return false }
            current = (number, name)
            return true
        }
    }

    /// The signal received, if any.
    var value: (number: Int32, name: String)? { signal.withLock { $0 } }
}
