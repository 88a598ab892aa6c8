import ArgumentParser
import Foundation
import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime
import PeonInterface
import PeonMediator
import PeonPostgres
import PeonRuntime

/// `peon-wasm grants`: tools for per-module grants files (`policies/NAME.toml`).
struct GrantsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "Check per-module grants files against the modules they are for.",
        subcommands: [GrantsCheckCommand.self])
}

/// `peon-wasm grants check MODULE.wasm --grants G.toml`: lists each `peon:host` import of the module
/// and whether any grant can ever allow it, and warns about grants the module cannot use.
struct GrantsCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "List a module's peon:host imports and whether the grants can ever allow each.",
        discussion: """
            Exit status: 0 when the grants parse and every peon:host import is known (warnings about \
            unusable grants or ungranted imports do not fail), 1 when the module imports an unknown \
            peon:host function or the grants pin another module's sha256 (a run would be refused), \
            2 when the grants or the module cannot be read or the module could not run.
            """)

    @Argument(help: "The module (.wasm).")
    var module: String

    @Option(name: .long, help: "The grants file (.toml).")
    var grants: String

    func run() throws {
        let parsed: Grants
        do {
            parsed = try GrantsParser.load(path: grants)
        } catch {
            fail(error.description)
        }
        // Read as `run` and `inspect` read it: a .wasm binary or a .wat text.
        let data: [UInt8]
        do {
            data = try ModuleFile(path: module).bytes
        } catch {
            fail(error.message)
        }
        let imports: [(module: String, name: String)]
        var notes: [String] = []
        var unserved = false
        var coreModule: (any CompiledModule)?
        if ComponentBinary.isComponent(data) {
            (imports, notes, unserved) = componentImports(data)
        } else {
            let compiled: any CompiledModule
            let engine = WasmKitEngine()
            do {
                compiled = try engine.compile(data)
            } catch {
                fail("\(module): \(error.message); name a .wasm module or a .wat text")
            }
            // The bodies too, as `inspect` and a run check them (WasmKit checks them only when it instantiates):
            // a module that cannot run is not reported as one whose grants fit.
            do {
                try compiled.checkBodies(memoryBytes: ResourceLimits.defaultMemoryBytes)
            } catch {
                fail(Runner.invalidModule("'\(module)'", error.message).message)
            }
            imports = compiled.imports.map { (module: $0.module, name: $0.name) }
            coreModule = compiled
        }
        let report = checkGrants(imports: imports, grants: parsed)
        // Whatever else keeps a core module from running (an import neither WASI nor `peon:host`, exports that do not
        // fit the ABI, no `run` or `_start`) is checked as a run checks it; an unknown `peon:host` function is the
        // report's own finding (exit 1).
        if let compiled = coreModule, !report.hasUnknownImports {
            do throws(RunError) {
                _ = try Runner.linkCheck(compiled, path: module)
            } catch {
                fail(error.message)
            }
        }
        // Every line is escaped on its own: an import name or path from a hostile module cannot fake a line
        // of the report or drive the terminal.
        var out = ""
        func add(_ line: String) { out += TerminalText.escaped(line) + "\n" }
        add("module \(module) under grants \(grants) (module = \"\(parsed.module)\")")
        if report.imports.isEmpty { add("  no peon:host imports") }
        for line in report.imports {
            add("  \(line.importName): \(line.status)" + (line.grants.isEmpty ? "" : " by " + line.grants.joined(separator: ", ")))
        }
        var warnings = notes + report.warnings
            + hostFilesCovered(by: parsed, files: [("the grants file", grants), ("the module", module)])
            + missingGrantedPaths(in: parsed)
        // A pin that does not match means no run can start: a CI check must fail on it (exit 1), not pass with a warning.
        var pinMismatch = false
        if let pin = parsed.sha256 {
            let digest = sha256Hex(Array(data))
            if pin != digest {
                pinMismatch = true
                warnings.append("the grants pin sha256 \(pin) but the module's is \(digest); a run will be refused")
            }
        }
        if !report.labelFlows.isEmpty {
            add("information flow:")
            for line in report.labelFlows { add("  \(line)") }
        }
        for warning in warnings { add("warning: \(warning)") }
        FileHandle.standardOutput.write(Data(out.utf8))
        if report.hasUnknownImports || unserved || pinMismatch { throw ExitCode(1) }
    }

    /// A component's `peon:host` imports as (interface, function) pairs, warnings about them, and whether
    /// it imports something this host does not serve.
    ///
    /// A component imports instances; which functions of each it imports is in its type, which wasmtime
    /// reads (the component is compiled, through the cache, as for a run). Without wasmtime every
    /// function of each imported `peon:host` interface is listed instead, with a warning saying so.
    private func componentImports(_ bytes: [UInt8]) -> (imports: [(module: String, name: String)], notes: [String], unserved: Bool) {
        let interface: ComponentBinary.Interface
        do {
            interface = try ComponentBinary.interface(bytes)
        } catch {
            fail("\(module): not a valid WebAssembly component: \(error.message)")
        }
        var notes: [String] = []
        var unserved = false
        for item in interface.imports where !PeonHostBindings.servesComponentImport(item.name) || item.kind != "instance" {
            notes.append("the component imports \(item.kind) \(item.name), which this host does not serve; it will fail to load")
            unserved = true
        }
        let peon = interface.imports.filter { $0.kind == "instance" && $0.name.hasPrefix("peon:host/") }
        var functions: [String: [String]]
        do {
            let engine = try WasmtimeEngine.load()
            functions = try engine.componentImportedFunctions(bytes, in: Set(peon.map(\.name)))
        } catch {
            if error.kind == .invalidModule { fail("\(module): not a valid WebAssembly component: \(error.message)") }
            notes.append("wasmtime is not available (\(error.message.prefix(120))...): listing every function of each imported peon:host interface, not only those the component imports")
            functions = [:]
            for binding in PeonHostBindings.importDescriptors { functions[binding.module, default: []].append(binding.name) }
        }
        var imports: [(module: String, name: String)] = []
        for item in peon {
            for name in functions[item.name] ?? [] { imports.append((item.name, name)) }
        }
        return (imports, notes, unserved)
    }
}

/// `peon-wasm policy explain --grants G.toml fs.read /srv/reports/q1.txt`: allow or deny, and why.
struct PolicyExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say whether a module may do ACTION on RESOURCE under grants (or a model and policy), and why.",
        discussion: """
            ACTION is fs.read|write|append|list|remove, http.METHOD, db.open|read|insert|update|delete|schema or \
            exec.run. RESOURCE is a path (relative to the current folder), a URL, DATABASE/TABLE (DATABASE for \
            db.open) or a program; arguments for exec.run follow `--`. Exit status: 0 allow, 1 deny, 2 when a \
            file does not load, 64 for an action or resource that cannot make a request. Rate limits and \
            approval are listed, not simulated.
            """)

    @Option(name: .long, help: "The grants file (.toml).")
    var grants: String?

    @Option(name: .long, help: "A Casbin model replacing the built-in one.")
    var model: String?

    @Option(name: .long, help: "A Casbin policy (.csv), or a policy store postgresql://USER@HOST:PORT/DB (Casbin's casbin_rule table).")
    var policy: String?

    @Option(name: .long, help: "The module name (default: the grants' module, or `agent`).")
    var module: String?

    @Argument(help: "The action, e.g. fs.read.")
    var action: String

    @Argument(help: "The resource, e.g. /srv/reports/q1.txt.")
    var resource: String

    @Option(name: .long, help: ArgumentHelp(
        "Information-flow labels the run holds (comma-separated): a sink is then refused unless its grants clear them.",
        valueName: "LABEL,..."))
    var labels: String?

    @Argument(parsing: .postTerminator, help: "exec arguments, after --.")
    var arguments: [String] = []

    /// An action the host never asks about, or a resource that cannot be one, is the command line's fault (64),
    /// named with what is expected: before, `fs.raed` was answered "deny" and a bad URL was exit 2 ("a file does not
    /// load").
    func validate() throws {
        // Nothing a run could be: an empty or control-character module name, a label no grant could name (`hr,,x`
        // dropped its empty label silently, and the explanation was of a request that cannot occur).
        if let module, module.isEmpty || module.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw ValidationError("--module must be a module name (a grants file's `module`, or a policy subject), not empty and without control characters")
        }
        if let labels {
            for label in labels.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) })
            where !isLabelName(label) {
                throw ValidationError("--labels: `\(TerminalText.escaped(label))` is not a label; labels are 1-64 characters of A-Z a-z 0-9 . _ -, separated by commas")
            }
        }
        if case .failure(let problem) = policyObjectOrReason(action: action, resource: resource,
                                                             workingDirectory: FileManager.default.currentDirectoryPath) {
            throw ValidationError(problem.message)
        }
    }

    func run() throws {
        let snapshot: PolicySnapshot
        do {
            let sources: PolicySources
            do throws(PostgresStoreError) {
                sources = try PolicySources.commandLine(grants: grants, model: model, policy: policy)
            } catch {
                fail(error.description)
            }
            snapshot = try PolicySnapshot.load(sources, defaultModule: module ?? "agent")
        } catch {
            fail(error.description)
        }
        let object: String
        switch policyObjectOrReason(action: action, resource: resource, workingDirectory: FileManager.default.currentDirectoryPath) {
        case .success(let spelled): object = spelled
        case .failure(let problem): fail(problem.message)
        }
        let subject = module ?? snapshot.subject
        let held = (labels ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let explanation = explainPolicy(snapshot: snapshot, module: subject, action: action, object: object,
                                        arguments: arguments, labels: held)
        // Each line escaped on its own: a policy row (a file or a store someone else writes) could hold escapes.
        FileHandle.standardOutput.write(Data((explanation.lines.map { TerminalText.escaped($0) }.joined(separator: "\n") + "\n").utf8))
        if !explanation.isAllowed { throw ExitCode(1) }
    }
}

/// Prints `message` on stderr and exits with status 2.
/// `grants check` and `policy explain` cannot load a file: one `peon-wasm: error:` line, exit 2.
private func fail(_ message: String) -> Never {
    printError("peon-wasm: error: \(message)")
    Foundation.exit(2)
}
