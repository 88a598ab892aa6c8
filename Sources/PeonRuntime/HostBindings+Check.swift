package import PeonEngine
import PeonABI

/// A module's `peon:host` imports or canonical-ABI exports do not match what this host implements:
/// an unknown interface or function, a wrong core signature, or a missing `memory`/`cabi_realloc`.
/// Raised at load time, before the module runs.
package struct HostBindingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The import or export at fault, e.g. `peon:host/fs@0.1.0#read` or `cabi_realloc`.
    package var item: String
    /// One line: what is wrong with it and what this host expects.
    package var message: String

    /// Creates the error.
    package init(item: String, message: String) {
        self.item = item
        self.message = message
    }

    /// The message.
    package var description: String { message }
}

extension PeonHostBindings {
    /// The core signature of `cabi_realloc(old_ptr, old_size, align, new_size) -> ptr`.
    package static let reallocSignature = FunctionSignature([.i32, .i32, .i32, .i32], [.i32])

    /// Checks a module against the `peon:host` world before it is instantiated.
    ///
    /// - Every import from a `peon:host` module (see ``isHostInterfaceModule(_:)``) must be a function
    ///   this host implements, with exactly the core signature the canonical ABI lowers it to.
    /// - A module with such imports must export its `memory`; one that imports a function returning a
    ///   value (every function but `log`) must export `cabi_realloc` with signature `(i32, i32, i32, i32) -> (i32)`.
    /// - An exported `run` must be `(i32, i32) -> (i32)` and needs `memory` and `cabi_realloc`; an
    ///   exported `cabi_post_run` must be `(i32) -> ()`.
    ///
    /// Imports from other modules (WASI) are not this check's business. Throws the first problem found,
    /// naming the import or export.
    package static func checkModule(imports: [ImportDescriptor], exports: [ExportDescriptor]) throws(HostBindingError) {
        var needsMemory = false
        var needsRealloc: String?
        for entry in imports where isHostInterfaceModule(entry.module) {
            let item = "\(entry.module)#\(entry.name)"
            guard interfaceModules.contains(entry.module) else {
                throw HostBindingError(
                    item: item,
                    message: "import `\(item)`: unknown interface `\(entry.module)`; this host implements "
                        + interfaceModules.sorted().map { "`\($0)`" }.joined(separator: ", "))
            }
            guard let binding = bindingsByImport[ImportKey(module: entry.module, name: entry.name)] else {
                let known = bindings.filter { $0.module == entry.module }.map { "`\($0.name)`" }.joined(separator: ", ")
                throw HostBindingError(
                    item: item, message: "import `\(item)`: `\(entry.module)` has no function `\(entry.name)` (it has \(known))")
            }
            guard case .function(let signature) = entry.kind else {
                throw HostBindingError(item: item, message: "import `\(item)` is a \(entry.kind), but `\(entry.name)` is a function")
            }
            let expected = binding.function.importSignature
            guard signature == expected else {
                throw HostBindingError(
                    item: item,
                    message: "import `\(item)` has core type \(signature), but the canonical ABI lowers "
                        + "`\(binding.function)` to \(expected)")
            }
            needsMemory = true
            if binding.function.result != nil, needsRealloc == nil { needsRealloc = "import `\(item)`" }
        }

        var exportedFunctions: [String: FunctionSignature] = [:]
        var exportsMemory = false
        for entry in exports {
            switch entry.kind {
            case .function(let signature): exportedFunctions[entry.name] = signature
            case .memory where entry.name == "memory": exportsMemory = true
            default: break
            }
        }
        if let run = exportedFunctions[runExport] {
            let expected = runFunction.exportSignature
            guard run == expected else {
                throw HostBindingError(
                    item: runExport,
                    message: "export `\(runExport)` has core type \(run), but the canonical ABI lifts `\(runFunction)` from \(expected)")
            }
            needsMemory = true
            if needsRealloc == nil { needsRealloc = "export `\(runExport)`" }
        }
        if let postReturn = exportedFunctions[runPostReturnExport], postReturn != FunctionSignature([.i32], []) {
            throw HostBindingError(
                item: runPostReturnExport,
                message: "export `\(runPostReturnExport)` has core type \(postReturn), but it must be (i32) -> ()")
        }
        if let realloc = exportedFunctions[CanonicalLowerer.reallocExport], realloc != reallocSignature {
            throw HostBindingError(
                item: CanonicalLowerer.reallocExport,
                message: "export `\(CanonicalLowerer.reallocExport)` has core type \(realloc), but it must be \(reallocSignature)")
        }
        if needsMemory, !exportsMemory {
            throw HostBindingError(
                item: "memory", message: "the module uses peon:host but exports no `memory`; export its linear memory as `memory`")
        }
        if let needer = needsRealloc, exportedFunctions[CanonicalLowerer.reallocExport] == nil {
            throw HostBindingError(
                item: CanonicalLowerer.reallocExport,
                message: "the module's \(needer) needs an exported `\(CanonicalLowerer.reallocExport)` \(reallocSignature) "
                    + "through which the host returns strings and lists")
        }
    }
}
