import ArgumentParser
import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime
import PeonInterface
import PeonRuntime

/// `peon-wasm inspect`: what a module is, what it asks of the host, and whether it can run here.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a module's SHA-256, imports and exports, and whether this host can run it.",
        discussion: """
            Each import is marked wasi (the sandboxed WASI), peon:host (the mediated interface), or \
            unknown (with the reason); a module with an unknown import cannot run. Exits 67 in that case.
            """)

    @Argument(help: "The module: a .wasm binary or a .wat text file.")
    var module: String

    func run() throws {
        do {
            let file = try ModuleFile(path: module)
            if ComponentBinary.isComponent(file.bytes) {
                try inspectComponent(file)
                return
            }
            let compiled: any CompiledModule
            do {
                compiled = try WasmKitEngine().compile(file.bytes)
                // The bodies too: WasmKit checks them only when it instantiates.
                try compiled.checkBodies(memoryBytes: ResourceLimits.defaultMemoryBytes)
            } catch {
                throw Runner.invalidModule("'\(module)'", error.message)
            }
            let interface = ModuleInterface(compiled)
            print("module   \(TerminalText.escaped(module))")
            print("sha256   \(file.sha256)")
            print("size     \(file.bytes.count) bytes")
            print("imports  \(interface.imports.count)")
            let moduleWidth = interface.imports.map(\.0.module.count).max() ?? 0
            let nameWidth = interface.imports.map(\.0.name.count).max() ?? 0
            for (entry, importClass) in interface.imports {
                print("  \(pad(TerminalText.escaped(entry.module), moduleWidth))  \(pad(TerminalText.escaped(entry.name), nameWidth))  \(entry.kind)  [\(TerminalText.escaped("\(importClass)"))]")
            }
            print("exports  \(interface.exports.count)")
            let exportWidth = interface.exports.map(\.name.count).max() ?? 0
            for export in interface.exports {
                print("  \(pad(TerminalText.escaped(export.name), exportWidth))  \(export.kind)")
            }
            switch interface.entryPoint {
            case .agent: print("entry    run (a peon agent)")
            case .command: print("entry    _start (a WASI command)")
            case nil: print("entry    none: exports neither _start nor run")
            }
            if let unknown = interface.firstUnknownImport { throw unknown }
            if interface.entryPoint == nil {
                throw RunError(.noEntryPoint, "'\(module)' exports neither _start nor run, so it cannot be run")
            }
        } catch let error as RunError {
            throw fail(error)
        }
    }

    /// A component: its top-level imports, each marked `peon:host`, `wasi` (preview 2, provided by
    /// wasmtime inside the sandbox) or `unknown`, and its exports. Read from the binary, no engine needed.
    private func inspectComponent(_ file: ModuleFile) throws(RunError) {
        let interface: ComponentBinary.Interface
        do {
            interface = try ComponentBinary.interface(file.bytes)
        } catch {
            throw RunError(.invalidModule, "'\(module)' is not a valid WebAssembly component: \(error.message)")
        }
        print("module   \(TerminalText.escaped(module))")
        print("kind     component (runs with --engine wasmtime)")
        print("sha256   \(file.sha256)")
        print("size     \(file.bytes.count) bytes")
        print("imports  \(interface.imports.count)")
        let nameWidth = interface.imports.map(\.name.count).max() ?? 0
        var unknown: ComponentBinary.Item?
        for item in interface.imports {
            let mark: String
            if item.kind != "instance" || !PeonHostBindings.servesComponentImport(item.name) {
                mark = "unknown: not served by this host"
                if unknown == nil { unknown = item }
            } else {
                mark = item.name.hasPrefix("wasi:") ? "wasi" : "peon:host"
            }
            print("  \(pad(TerminalText.escaped(item.name), nameWidth))  \(item.kind)  [\(mark)]")
        }
        print("exports  \(interface.exports.count)")
        let exportWidth = interface.exports.map(\.name.count).max() ?? 0
        for item in interface.exports {
            print("  \(pad(TerminalText.escaped(item.name), exportWidth))  \(item.kind)")
        }
        let hasRun = interface.exports.contains { $0.name == PeonHostBindings.runExport && $0.kind == "func" }
        print(hasRun ? "entry    run (a peon agent component)" : "entry    none: the component does not export run")
        // What is read above is not validated: before saying the component cannot run for its imports or exports, wasmtime
        // (when it is installed) checks it, so an invalid component is exit 65 here as in `run`, not 67 or 68.
        if unknown != nil || !hasRun, let engine = try? WasmtimeEngine.load() {
            do {
                _ = try engine.compileComponent(file.bytes)
            } catch where error.kind == .invalidModule {
                throw RunError(.invalidModule, "'\(module)' is not a valid WebAssembly component: \(error.message)")
            } catch {}
        }
        if let unknown {
            throw RunError(.link, "the component imports \(unknown.kind) \(unknown.name), which this host does not serve; it cannot run here")
        }
        if !hasRun { throw RunError(.noEntryPoint, "'\(module)' does not export run, so it cannot be run") }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}

