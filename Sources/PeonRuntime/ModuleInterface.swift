package import PeonEngine
import PeonWASI

/// Which side of the host answers an import.
package enum ImportClass: Sendable, Hashable, CustomStringConvertible {
    /// A `wasi_snapshot_preview1` function with the preview-1 signature: the sandboxed WASI.
    case wasi
    /// A `peon:host/...` function of `wit/peon.wit` with its canonical-ABI signature: the mediated interface.
    case peonHost
    /// Anything else: the module cannot run, and the reason says why.
    case unknown(reason: String)

    /// `wasi`, `peon:host` or `unknown: ...`.
    package var description: String {
        switch self {
        case .wasi: "wasi"
        case .peonHost: "peon:host"
        case .unknown(let reason): "unknown: \(reason)"
        }
    }
}

/// How a module is started.
package enum EntryPoint: Sendable, Hashable {
    /// A WASI command: `_start`, whose `proc_exit` code is the run's exit code.
    case command
    /// A peon agent: the world export `run(input) -> result<string, string>`, after `_initialize` if exported.
    case agent
}

/// A module's interface classified against what this host provides.
package struct ModuleInterface: Sendable {
    /// Each import with its class.
    package var imports: [(ImportDescriptor, ImportClass)]
    /// The module's exports.
    package var exports: [ExportDescriptor]

    /// Classifies `module`'s imports against WASI and the `peon:host` functions of `wit/peon.wit`.
    package init(_ module: any CompiledModule) {
        let wasi = Dictionary(
            WASISandbox(WASIConfiguration()).hostFunctions.map { ($0.name, $0.signature) }, uniquingKeysWith: { a, _ in a })
        self.exports = module.exports
        self.imports = module.imports.map { entry in
            guard case .function(let signature) = entry.kind else {
                return (entry, .unknown(reason: "a \(entry.kind) import, which the host does not provide"))
            }
            if entry.module == WASISandbox.moduleName {
                guard let expected = wasi[entry.name] else {
                    return (entry, .unknown(reason: "not a wasi_snapshot_preview1 function"))
                }
                return (entry, expected == signature ? .wasi : .unknown(reason: "WASI's \(entry.name) has type \(expected)"))
            }
            if entry.module.hasPrefix("peon:host/") {
                guard let expected = PeonHostBindings.expectedSignature(module: entry.module, name: entry.name) else {
                    return (entry, .unknown(reason: "not a function of wit/peon.wit (peon:host@0.1.0)"))
                }
                return (entry, expected == signature
                    ? .peonHost : .unknown(reason: "the canonical ABI lowers it as \(expected)"))
            }
            return (entry, .unknown(reason: "no such host module"))
        }
    }

    /// The first import the module cannot be given, as a ``RunError`` naming it, or `nil`.
    package var firstUnknownImport: RunError? {
        for (entry, importClass) in imports {
            if case .unknown(let reason) = importClass {
                return RunError(.link, "the module imports \(entry.module).\(entry.name) (\(entry.kind)): \(reason); it cannot run here: peon-wasm provides wasi_snapshot_preview1 and the peon:host functions of wit/peon.wit (`peon-wasm inspect` lists each import; docs/guest-abi.md)")
            }
        }
        return nil
    }

    /// How the module starts: `run` if it exports it, else `_start`; `nil` when it exports neither.
    package var entryPoint: EntryPoint? {
        let functions = Set(exports.compactMap { if case .function = $0.kind { $0.name } else { nil } })
        if functions.contains("run") { return .agent }
        if functions.contains("_start") { return .command }
        return nil
    }
}
