// One wasmtime store with its instance: calls into the guest, host functions out of it, and the
// guarded door to its memory.
import CWasmtime
import PeonEngine

/// The store of one instance, and the guest as host functions see it.
///
/// Owns the `wasmtime_store_t` (deleted in `deinit`) and the host-function bindings whose addresses the
/// store's functions carry as their environment, so the bindings outlive every callback.
///
/// How errors cross the C boundary: a host function that throws stores its error in ``pendingError``
/// and returns a trap to wasmtime; when the guest call that led there returns, the pending error is
/// rethrown instead of the trap, so callers see the host's error unchanged. Nested calls (a host
/// function calling ``callExport(_:_:)``) take the pending error at the innermost boundary, so a host
/// function can catch it.
///
/// Not thread-safe, like the instance it belongs to.
final class WasmtimeGuest: GuestAccess {
    let module: WasmtimeCompiledModule
    let limits: ResourceLimits
    private let api: peon_wasmtime_api
    private let store: OpaquePointer
    private let storeContext: OpaquePointer
    /// The error a host function threw, until the guest call it ended returns.
    var pendingError: (any Error)?
    /// The bindings the store's host functions point at.
    private var bindings: [HostBinding] = []
    /// The calling guest while a host function runs (valid only during that call).
    var caller: OpaquePointer?
    private var instance: wasmtime_instance_t?
    private var memory: wasmtime_memory_t?
    private var functions: [String: wasmtime_func_t] = [:]

    init(module: WasmtimeCompiledModule, limits: ResourceLimits) {
        self.module = module
        self.limits = limits
        self.api = module.runtime.api
        self.store = api.wasmtime_store_new(module.runtime.engine, nil, nil)
        self.storeContext = api.wasmtime_store_context(store)
    }

    deinit {
        api.wasmtime_store_delete(store)
    }

    /// Applies the limits: the memory cap, the fuel budget and the (initial) epoch deadline.
    ///
    /// wasmtime's store limiter caps each linear memory's bytes and each table's elements separately
    /// (plus the number of memories, tables and instances), not their sum. So the memory cap is split
    /// by ``DeclaredStorage/uniformLimits(budget:)`` into one per-memory and one per-table limit whose
    /// worst case, with every memory and table at its limit, stays within the cap; and the store may hold
    /// no more memories and tables than the module defines. A module whose declarations cannot fit is
    /// refused here, before instantiation.
    func configure() throws(EngineError) {
        let storage = module.storage
        let split = try storage.uniformLimits(budget: limits.memoryBytes)
        api.wasmtime_store_limiter(store, Int64(clamping: split.memoryBytes), Int64(clamping: split.tableElements),
                                   -1, Int64(storage.tables.count), Int64(storage.memories.count))
        // Every store meters fuel (the engine is configured for it); an unlimited run gets a budget it
        // cannot spend.
        let fuel = min(limits.fuel ?? UInt64(Int64.max), UInt64(Int64.max))
        if let error = api.wasmtime_context_set_fuel(storeContext, fuel) {
            throw EngineError(.unavailable, "wasmtime refused a fuel budget: \(api.consume(error: error))")
        }
        if limits.deadline == nil {
            api.wasmtime_context_set_epoch_deadline(storeContext, UInt64(1) << 62)
        }
    }

    /// Defines `hostFunctions` (one per import, in import order) in the store and instantiates the
    /// module with them, running its start function under the deadline.
    func instantiate(_ hostFunctions: [HostFunction]) throws {
        var imports: [wasmtime_extern_t] = []
        imports.reserveCapacity(hostFunctions.count)
        for function in hostFunctions {
            let binding = HostBinding(guest: self, function: function)
            bindings.append(binding)
            let type = api.makeFunctionType(function.signature)
            var item = wasmtime_extern_t()
            item.kind = UInt8(PEON_WASMTIME_EXTERN_FUNC)
            api.wasmtime_func_new(
                storeContext, type,
                { environment, caller, arguments, argumentCount, results, resultCount in
                    guard let environment else { return nil }
                    let binding = Unmanaged<HostBinding>.fromOpaque(environment).takeUnretainedValue()
                    return binding.invoke(
                        caller: caller, arguments: arguments, argumentCount: argumentCount,
                        results: results, resultCount: resultCount)
                },
                Unmanaged.passUnretained(binding).toOpaque(), nil, &item.of.func)
            api.wasm_functype_delete(type)
            imports.append(item)
        }
        if limits.isPastDeadline {
            throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed before instantiation")
        }
        var created = wasmtime_instance_t()
        var trap: OpaquePointer?
        let armed = armDeadline(storeContext)
        let error = imports.withUnsafeBufferPointer { buffer in
            api.wasmtime_instance_new(storeContext, module.handle, buffer.baseAddress, buffer.count, &created, &trap)
        }
        if armed { module.runtime.ticker.end() }
        try finish(error: error, trap: trap, during: "instantiation", errorKind: .instantiation)
        instance = created
    }

    /// Calls the exported function `name` with the calling guest's context (inside a host call) or
    /// the store's.
    func invoke(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        guard let signature = module.functionExports[name] else {
            throw EngineError(.missingExport, "the module exports no function named \(name)")
        }
        guard arguments.map(\.type) == signature.parameters else {
            let given = arguments.map(\.type.description).joined(separator: ", ")
            throw EngineError(.missingExport, "export \(name) has type \(signature), which does not take (\(given))")
        }
        guard signature.results.allSatisfy(\.isNumber) else {
            throw EngineError(.missingExport, "export \(name) has type \(signature), whose results the host cannot receive")
        }
        guard var function = exportedFunction(name) else {
            throw EngineError(.missingExport, "the instance has no function export named \(name)")
        }
        if limits.isPastDeadline {
            throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed before calling \(name)")
        }
        let context = currentContext
        let parameters = arguments.map(wasmtime_val_t.init)
        var results = [wasmtime_val_t](repeating: wasmtime_val_t(), count: signature.results.count)
        var trap: OpaquePointer?
        let armed = armDeadline(context)
        let error = parameters.withUnsafeBufferPointer { parameterBuffer in
            results.withUnsafeMutableBufferPointer { resultBuffer in
                api.wasmtime_func_call(
                    context, &function, parameterBuffer.baseAddress, parameterBuffer.count,
                    resultBuffer.baseAddress, resultBuffer.count, &trap)
            }
        }
        if armed { module.runtime.ticker.end() }
        try finish(error: error, trap: trap, during: "export \(name)", errorKind: .trap(.other("")))
        var values: [WasmValue] = []
        values.reserveCapacity(results.count)
        for result in results {
            guard let value = result.peonValue else {
                throw EngineError(.missingExport, "export \(name) returned a value of wasmtime kind \(result.kind)")
            }
            values.append(value)
        }
        return values
    }

    /// The fuel left, when the limits set a budget.
    var remainingFuel: UInt64? {
        guard limits.fuel != nil else { return nil }
        var fuel: UInt64 = 0
        if let error = api.wasmtime_context_get_fuel(storeContext, &fuel) {
            _ = api.consume(error: error)
            return nil
        }
        return fuel
    }

    // MARK: GuestAccess

    var memorySize: Int {
        guard var handle = memoryHandle() else { return 0 }
        return api.wasmtime_memory_data_size(currentContext, &handle)
    }

    func withMemory<R>(at offset: UInt32, count: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let base = try checkedMemory(offset, count)
        return try body(UnsafeRawBufferPointer(start: base, count: Int(count)))
    }

    func withMutableMemory<R>(
        at offset: UInt32, count: UInt32, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        let base = try checkedMemory(offset, count)
        return try body(UnsafeMutableRawBufferPointer(start: base, count: Int(count)))
    }

    func callExport(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        try invoke(name, arguments)
    }

    func hasExport(_ name: String) -> Bool {
        module.functionExports[name] != nil
    }

    // MARK: Internals

    /// The address of `count` bytes at `offset` after checking they lie in memory (`nil` for an empty
    /// range in an empty or absent memory).
    private func checkedMemory(_ offset: UInt32, _ count: UInt32) throws -> UnsafeMutableRawPointer? {
        guard var handle = memoryHandle() else {
            try checkRange(offset, count)
            return nil
        }
        let context = currentContext
        let size = api.wasmtime_memory_data_size(context, &handle)
        guard UInt64(offset) + UInt64(count) <= UInt64(size) else {
            throw GuestMemoryError(
                "guest range 0x\(String(offset, radix: 16))+\(count) is outside linear memory of \(size) bytes")
        }
        guard let data = api.wasmtime_memory_data(context, &handle), count > 0 else { return nil }
        return UnsafeMutableRawPointer(data) + Int(offset)
    }

    /// The context calls and memory accesses go through: the caller's inside a host call, else the store's.
    private var currentContext: OpaquePointer {
        if let caller { api.wasmtime_caller_context(caller) } else { storeContext }
    }

    /// Looks an export up through the caller (inside a host call, e.g. during the start function) or the instance.
    private func lookupExport(_ name: String) -> wasmtime_extern_t? {
        var item = wasmtime_extern_t()
        let length = name.utf8.count
        let found = name.withCString { cName -> Bool in
            if let caller {
                return api.wasmtime_caller_export_get(caller, cName, length, &item)
            }
            guard var instance else { return false }
            return api.wasmtime_instance_export_get(storeContext, &instance, cName, length, &item)
        }
        return found ? item : nil
    }

    private func exportedFunction(_ name: String) -> wasmtime_func_t? {
        if let function = functions[name] { return function }
        guard let item = lookupExport(name), Int(item.kind) == Int(PEON_WASMTIME_EXTERN_FUNC) else { return nil }
        functions[name] = item.of.func
        return item.of.func
    }

    private func memoryHandle() -> wasmtime_memory_t? {
        if let memory { return memory }
        guard let name = module.memoryExportName, let item = lookupExport(name),
              Int(item.kind) == Int(PEON_WASMTIME_EXTERN_MEMORY)
        else { return nil }
        memory = item.of.memory
        return memory
    }

    /// Sets the epoch deadline from the limits' deadline and keeps the ticker running; returns whether
    /// the caller must end the ticker use.
    private func armDeadline(_ context: OpaquePointer) -> Bool {
        guard let deadline = limits.deadline else { return false }
        api.wasmtime_context_set_epoch_deadline(context, EpochTicker.ticks(until: deadline))
        module.runtime.ticker.begin()
        return true
    }

    /// Turns the outcome of a guest entry into a return or an error: a host function's pending error
    /// first, then the trap, then wasmtime's error as `errorKind`.
    private func finish(error: OpaquePointer?, trap: OpaquePointer?, during: String, errorKind: EngineError.Kind) throws {
        guard error != nil || trap != nil else { return }
        let errorText = error.map { api.consume(error: $0) }
        let trapped = trap.map { api.consume(trap: $0) }
        if let pending = pendingError {
            pendingError = nil
            throw pending
        }
        if let trapped {
            throw EngineError(.trap(trapped.reason), "\(during) trapped: \(trapped.message)")
        }
        let text = errorText ?? "unknown error"
        let firstLine = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? text
        if case .trap = errorKind {
            throw EngineError(.trap(.other(firstLine)), "\(during) failed: \(firstLine)")
        }
        throw EngineError(errorKind, "\(during) failed: \(firstLine)")
    }
}

/// One host function defined in a store: what the C callback's environment pointer points at.
final class HostBinding {
    /// The store's state; it owns this binding, so it is alive whenever the store calls back.
    private unowned(unsafe) let guest: WasmtimeGuest
    private let function: HostFunction

    init(guest: WasmtimeGuest, function: HostFunction) {
        self.guest = guest
        self.function = function
    }

    /// Runs the host function for one call from the guest; returns `nil`, or an owned trap after
    /// recording the error in the guest's `pendingError`.
    func invoke(
        caller: OpaquePointer, arguments: UnsafePointer<wasmtime_val_t>?, argumentCount: Int,
        results: UnsafeMutablePointer<wasmtime_val_t>?, resultCount: Int
    ) -> OpaquePointer? {
        let guest = self.guest
        let previousCaller = guest.caller
        let isReentrant = previousCaller != nil
        guest.caller = caller
        defer { guest.caller = previousCaller }
        do {
            // A guest export called from a host function may not call the host again: the WasmKit engine
            // refuses this (its native stack would grow without bound), and both engines must agree.
            if isReentrant {
                throw EngineError(.trap(.other("re-entrant host call")),
                    "\(function.module).\(function.name) was called from guest code running inside another host call")
            }
            if guest.limits.isPastDeadline {
                throw EngineError(.trap(.timeout),
                    "the run's wall-clock deadline passed before \(function.module).\(function.name)")
            }
            let result = try withUnsafeTemporaryAllocation(of: WasmValue.self, capacity: argumentCount) { buffer in
                for index in 0..<argumentCount {
                    buffer.initializeElement(at: index, to: arguments?[index].peonValue ?? .i32(0))
                }
                return try function.body(guest, HostArguments(UnsafeBufferPointer(buffer)))
            }
            if guest.limits.isPastDeadline {
                throw EngineError(.trap(.timeout),
                    "the run's wall-clock deadline passed during \(function.module).\(function.name)")
            }
            try store(result, into: results, count: resultCount)
            return nil
        } catch {
            guest.pendingError = error
            let message = "host function \(function.module).\(function.name) failed"
            return message.withCString { guest.module.runtime.api.wasmtime_trap_new($0, message.utf8.count) }
        }
    }

    private func store(_ result: WasmValue?, into results: UnsafeMutablePointer<wasmtime_val_t>?, count: Int) throws {
        let expected = function.signature.results.first
        guard result?.type == expected else {
            throw EngineError(.incompatibleImport,
                "host function \(function.module).\(function.name) returned \(result?.type.description ?? "nothing") but its signature says \(expected?.description ?? "nothing")")
        }
        if let result, let results, count > 0 {
            results[0] = wasmtime_val_t(result)
        }
    }
}
