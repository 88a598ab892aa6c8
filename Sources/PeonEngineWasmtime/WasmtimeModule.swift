// A compiled wasmtime module and its instantiation with host functions.
import CWasmtime
import PeonEngine

/// A module compiled by wasmtime (`wasmtime_module_t`, owned; deleted with this object).
///
/// `@unchecked Sendable`: wasmtime modules are immutable and documented as shareable between threads;
/// every instantiation makes its own store.
final class WasmtimeCompiledModule: CompiledModule, @unchecked Sendable {
    let runtime: WasmtimeRuntime
    let handle: OpaquePointer
    let imports: [ImportDescriptor]
    let exports: [ExportDescriptor]
    /// The exported functions' signatures, by name.
    let functionExports: [String: FunctionSignature]
    /// The memory host functions see: the memory exported as `memory` (the name every toolchain and the
    /// WasmKit engine use), or none.
    let memoryExportName: String?
    /// The memories and tables the module defines, bounded together by the store's limiter.
    let storage: DeclaredStorage

    init(runtime: WasmtimeRuntime, handle: OpaquePointer, storage: DeclaredStorage) {
        self.runtime = runtime
        self.handle = handle
        self.storage = storage
        let api = runtime.api

        var importTypes = wasm_importtype_vec_t()
        api.wasmtime_module_imports(handle, &importTypes)
        var imports: [ImportDescriptor] = []
        if let data = importTypes.data {
            for index in 0..<importTypes.size {
                guard let type = data[index] else { continue }
                imports.append(ImportDescriptor(
                    module: api.string(api.wasm_importtype_module(type).pointee),
                    name: api.string(api.wasm_importtype_name(type).pointee),
                    kind: api.externalKind(api.wasm_importtype_type(type))))
            }
        }
        api.wasm_importtype_vec_delete(&importTypes)

        var exportTypes = wasm_exporttype_vec_t()
        api.wasmtime_module_exports(handle, &exportTypes)
        var exports: [ExportDescriptor] = []
        if let data = exportTypes.data {
            for index in 0..<exportTypes.size {
                guard let type = data[index] else { continue }
                exports.append(ExportDescriptor(
                    name: api.string(api.wasm_exporttype_name(type).pointee),
                    kind: api.externalKind(api.wasm_exporttype_type(type))))
            }
        }
        api.wasm_exporttype_vec_delete(&exportTypes)

        self.imports = imports
        self.exports = exports
        var functionExports: [String: FunctionSignature] = [:]
        var exportsMemory = false
        for export in exports {
            switch export.kind {
            case .function(let signature): functionExports[export.name] = signature
            case .memory where export.name == "memory": exportsMemory = true
            default: break
            }
        }
        self.functionExports = functionExports
        self.memoryExportName = exportsMemory ? "memory" : nil
    }

    deinit {
        runtime.api.wasmtime_module_delete(handle)
    }

    /// Nothing: `wasmtime_module_new` validated every body when the module was compiled.
    func checkBodies(memoryBytes: Int) throws(EngineError) {}

    func instantiate(_ hostFunctions: [HostFunction], limits: ResourceLimits) throws -> any ModuleInstance {
        let bound = try bind(hostFunctions)
        let guest = WasmtimeGuest(module: self, limits: limits)
        try guest.configure()
        try guest.instantiate(bound)
        return WasmtimeInstance(guest: guest)
    }

    /// The host function for each import, in import order.
    private func bind(_ hostFunctions: [HostFunction]) throws(EngineError) -> [HostFunction] {
        var byName: [String: [String: HostFunction]] = [:]
        for function in hostFunctions where byName[function.module]?[function.name] == nil {
            byName[function.module, default: [:]][function.name] = function
        }
        var bound: [HostFunction] = []
        bound.reserveCapacity(imports.count)
        for item in imports {
            guard case .function(let wanted) = item.kind else {
                throw EngineError(.unknownImport,
                    "import \(item.module).\(item.name) is a \(item.kind), which the host does not provide (it provides only functions)")
            }
            guard let function = byName[item.module]?[item.name] else {
                throw EngineError(.unknownImport,
                    "unknown import \(item.module).\(item.name) \(wanted): no host function provides it")
            }
            guard function.signature.results.count <= 1 else {
                throw EngineError(.incompatibleImport,
                    "host function \(item.module).\(item.name) declares \(function.signature.results.count) results; host functions have at most one")
            }
            guard function.signature.isNumeric else {
                throw EngineError(.incompatibleImport,
                    "host function \(item.module).\(item.name) has type \(function.signature); only i32, i64, f32 and f64 cross to the host")
            }
            guard function.signature == wanted else {
                throw EngineError(.incompatibleImport,
                    "import \(item.module).\(item.name) has type \(wanted), but the host provides \(function.signature)")
            }
            bound.append(function)
        }
        return bound
    }
}

/// A running wasmtime instance: a thin handle on its ``WasmtimeGuest``, which owns the store.
final class WasmtimeInstance: ModuleInstance {
    private let state: WasmtimeGuest

    init(guest: WasmtimeGuest) {
        self.state = guest
    }

    func call(_ export: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        try state.invoke(export, arguments)
    }

    var guest: any GuestAccess { state }

    var remainingFuel: UInt64? { state.remainingFuel }
}
