// Components (the Component Model) on wasmtime: compile (cached), link to host functions and a
// sandboxed WASI preview 2, run under the same limits as core modules.
import CWasmtime
import Crypto
package import PeonEngine
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension WasmtimeEngine: ComponentEngine {
    /// Compiles and validates a component (or loads its compilation from the cache).
    package func compileComponent(_ bytes: [UInt8]) throws(EngineError) -> any CompiledComponent {
        try compileComponentReportingCache(bytes).component
    }

    /// Compiles a component like ``compileComponent(_:)`` and reports what the compilation cache did.
    ///
    /// Components are cached beside modules under their own engine tag (`...-component`), with the same
    /// checks before a cached compilation is trusted (see `docs/engines.md`).
    package func compileComponentReportingCache(_ bytes: [UInt8]) throws(EngineError)
        -> (component: any CompiledComponent, cache: CompilationCacheOutcome)
    {
        guard ComponentBinary.isComponent(bytes) else {
            throw EngineError(.invalidModule, "invalid component: the bytes do not start with the component header (\\0asm, layer 1)")
        }
        let storage: DeclaredStorage
        do {
            storage = try ComponentBinary.declaredStorage(bytes)
        } catch {
            throw EngineError(.invalidModule, "invalid component: cannot read its memories and tables to bound them: \(error.message)")
        }
        guard let moduleCache = cache else { return (try compileComponentFresh(bytes, storage: storage), .disabled) }
        let cache = CompilationCache(directory: moduleCache.directory, engineTag: moduleCache.engineTag + "-component")
        if let reason = cache.prepareDirectory() {
            return (try compileComponentFresh(bytes, storage: storage), .unusable(reason: reason))
        }
        let digest = Array(SHA256.hash(data: bytes))
        var outcome = CompilationCacheOutcome.miss
        switch cache.load(digest) {
        case .success(let payload):
            let api = runtime.api
            var handle: OpaquePointer?
            let error = payload.withUnsafeBufferPointer { buffer -> OpaquePointer? in
                guard let base = buffer.baseAddress else { return nil }
                return api.wasmtime_component_deserialize(runtime.engine, base, buffer.count, &handle)
            }
            if let error {
                outcome = .discarded(reason: "wasmtime refused the cached compilation: \(api.consume(error: error))")
            } else if let handle {
                return (WasmtimeCompiledComponent(runtime: runtime, handle: handle, storage: storage), .hit)
            } else {
                outcome = .discarded(reason: "wasmtime returned no component for the cached compilation")
            }
        case .failure(let rejection):
            outcome = .discarded(reason: rejection.reason)
        case nil:
            break
        }
        let component = try compileComponentFresh(bytes, storage: storage)
        var serialized = wasm_byte_vec_t()
        if let error = runtime.api.wasmtime_component_serialize(component.handle, &serialized) {
            _ = runtime.api.consume(error: error)
        } else {
            if let data = serialized.data {
                cache.store(Array(UnsafeBufferPointer(start: data, count: serialized.size)), for: digest)
            }
            runtime.api.wasm_byte_vec_delete(&serialized)
        }
        return (component, outcome)
    }

    private func compileComponentFresh(_ bytes: [UInt8], storage: DeclaredStorage) throws(EngineError) -> WasmtimeCompiledComponent {
        let api = runtime.api
        var handle: OpaquePointer?
        let error = bytes.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            guard let base = buffer.baseAddress else { return nil }
            return api.wasmtime_component_new(runtime.engine, base, buffer.count, &handle)
        }
        if let error {
            throw EngineError(.invalidModule, "invalid component: \(api.consume(error: error))")
        }
        guard let handle else { throw EngineError(.invalidModule, "invalid component: wasmtime returned no component") }
        return WasmtimeCompiledComponent(runtime: runtime, handle: handle, storage: storage)
    }
}

/// A component compiled by wasmtime (`wasmtime_component_t`, owned; deleted with this object).
///
/// `@unchecked Sendable`: compiled components are immutable and shareable between threads; every
/// instantiation makes its own store and linker.
final class WasmtimeCompiledComponent: CompiledComponent, @unchecked Sendable {
    let runtime: WasmtimeRuntime
    let handle: OpaquePointer
    /// The memories and tables all of the component's core modules define, which the memory cap bounds.
    let storage: DeclaredStorage

    init(runtime: WasmtimeRuntime, handle: OpaquePointer, storage: DeclaredStorage) {
        self.runtime = runtime
        self.handle = handle
        self.storage = storage
    }

    deinit {
        runtime.api.wasmtime_component_delete(handle)
    }

    func instantiate(_ functions: [ComponentHostFunction], instances: [String], sandbox: ComponentSandbox,
                     limits: ResourceLimits) throws -> any ComponentInstance
    {
        try checkImportTypes(functions)
        let state = WasmtimeComponentState(component: self, limits: limits)
        try state.configure(sandbox: sandbox)
        try state.link(functions, instances: instances)
        try state.instantiate()
        return WasmtimeComponentInstance(state: state)
    }
}

extension WasmtimeCompiledComponent {
    /// Refuses the component when it imports one of `functions` with another type than the function's
    /// declared ``ComponentHostFunction/type``: wasmtime's dynamic host functions accept whatever type
    /// the component declares, so without this a forged import would reach the host (which acts) and
    /// fail only when its result does not fit.
    ///
    /// wasmtime's linker also satisfies an import of a semver-compatible version of an interface it defines
    /// (`a:b/c@0.1.7` by `a:b/c@0.1.0`), with the same functions and the same unchecked types. So an import of
    /// another version of an interface that has typed functions is refused too: versions must match exactly.
    func checkImportTypes(_ functions: [ComponentHostFunction]) throws(EngineError) {
        let typed = functions.filter { $0.type != nil }
        guard !typed.isEmpty else { return }
        let served = Set(typed.map(\.interface))
        let servedByUnversioned = Dictionary(served.map { (Self.unversioned($0), $0) }, uniquingKeysWith: min)
        for name in try importNames() where !served.contains(name) {
            guard let interface = servedByUnversioned[Self.unversioned(name)] else { continue }
            throw EngineError(.incompatibleImport,
                "the component imports \(name), but the host serves \(interface); the versions must match exactly")
        }
        let declared = try importedFunctions(in: served)
        for function in typed {
            guard let expected = function.type,
                  let actual = declared[function.interface]?.first(where: { $0.name == function.name })?.type,
                  actual != expected
            else { continue }
            throw EngineError(.incompatibleImport,
                "the component imports \(function.interface)#\(function.name) as \(actual), but the host declares it as \(expected)")
        }
    }

    /// An interface name without its version: `a:b/c` for `a:b/c@0.1.0`.
    static func unversioned(_ name: String) -> Substring {
        name.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(name)
    }
}

/// A running component instance: a thin handle on its state, which owns the store.
final class WasmtimeComponentInstance: ComponentInstance {
    private let state: WasmtimeComponentState

    init(state: WasmtimeComponentState) {
        self.state = state
    }

    func call(_ export: String, _ arguments: [ComponentValue], type: ComponentFunctionType) throws -> [ComponentValue] {
        try state.call(export, arguments, type: type)
    }

    var remainingFuel: UInt64? { state.remainingFuel }
}

/// The store, linker and host-function bindings of one component instance.
///
/// Errors cross the C boundary as in ``WasmtimeGuest``: a host function that throws leaves its error in
/// ``pendingError`` and returns a wasmtime error; when the guest call returns, the pending error is
/// rethrown in its place.
final class WasmtimeComponentState {
    let component: WasmtimeCompiledComponent
    let limits: ResourceLimits
    private let api: peon_wasmtime_api
    private let store: OpaquePointer
    private let context: OpaquePointer
    private let linker: OpaquePointer
    private var instance = wasmtime_component_instance_t()
    private var bindings: [ComponentBinding] = []
    /// The error a host function threw, until the guest call it ended returns.
    var pendingError: (any Error)?

    init(component: WasmtimeCompiledComponent, limits: ResourceLimits) {
        self.component = component
        self.limits = limits
        self.api = component.runtime.api
        self.store = api.wasmtime_store_new(component.runtime.engine, nil, nil)
        self.context = api.wasmtime_store_context(store)
        self.linker = api.wasmtime_component_linker_new(component.runtime.engine)
    }

    deinit {
        api.wasmtime_store_delete(store)
        api.wasmtime_component_linker_delete(linker)
    }

    /// Applies the limits and gives the store its WASI preview 2 context: exactly `sandbox`'s arguments,
    /// environment and stdin, output to its sinks, and nothing else (wasmtime's WASI context starts with
    /// no preopened directory, no network access and no name lookups, and none is added here).
    func configure(sandbox: ComponentSandbox) throws(EngineError) {
        // wasmtime's limiter caps each linear memory and each table on its own, and how many of them the
        // store may create. As for core modules, the cap is split over every memory and table the
        // component's core modules define (all of them, read from the binary), and the store may create
        // no more memories and tables than that: with every one at its limit the sum stays within the
        // cap, and a module the component instantiates twice fails instantiation instead of doubling it.
        let storage = component.storage
        let split = try storage.uniformLimits(budget: limits.memoryBytes)
        api.wasmtime_store_limiter(store, Int64(clamping: split.memoryBytes), Int64(clamping: split.tableElements),
                                   -1, Int64(storage.tables.count), Int64(storage.memories.count))
        let fuel = min(limits.fuel ?? UInt64(Int64.max), UInt64(Int64.max))
        if let error = api.wasmtime_context_set_fuel(context, fuel) {
            throw EngineError(.unavailable, "wasmtime refused a fuel budget: \(api.consume(error: error))")
        }
        if limits.deadline == nil {
            api.wasmtime_context_set_epoch_deadline(context, UInt64(1) << 62)
        }

        let config = api.wasi_config_new()
        let arguments = sandbox.arguments.map { strdup($0) }
        let names = sandbox.environment.map { strdup($0.name) }
        let values = sandbox.environment.map { strdup($0.value) }
        defer { (arguments + names + values).forEach { free($0) } }
        let argumentPointers: [UnsafePointer<CChar>] = arguments.compactMap { $0.map { UnsafePointer($0) } }
        let namePointers: [UnsafePointer<CChar>] = names.compactMap { $0.map { UnsafePointer($0) } }
        let valuePointers: [UnsafePointer<CChar>] = values.compactMap { $0.map { UnsafePointer($0) } }
        guard argumentPointers.count == arguments.count, namePointers.count == names.count, valuePointers.count == values.count else {
            api.wasi_config_delete(config)
            throw EngineError(.unavailable, "out of memory while building the component's WASI context")
        }
        let set = argumentPointers.withUnsafeBufferPointer { api.wasi_config_set_argv(config, $0.count, $0.baseAddress) }
            && namePointers.withUnsafeBufferPointer { namesBuffer in
                valuePointers.withUnsafeBufferPointer { valuesBuffer in
                    api.wasi_config_set_env(config, namesBuffer.count, namesBuffer.baseAddress, valuesBuffer.baseAddress)
                }
            }
        guard set else {
            api.wasi_config_delete(config)
            throw EngineError(.unavailable, "wasmtime refused the component's arguments or environment (not UTF-8)")
        }
        var stdin = wasm_byte_vec_t()
        sandbox.stdin.withUnsafeBufferPointer { api.wasm_byte_vec_new(&stdin, $0.count, $0.baseAddress) }
        api.wasi_config_set_stdin_bytes(config, &stdin)
        api.wasm_byte_vec_delete(&stdin)
        for (sink, isStdout) in [(sandbox.stdout, true), (sandbox.stderr, false)] {
            let box = Unmanaged.passRetained(OutputSink(sink)).toOpaque()
            let write: peon_wasi_output_t = { data, bytes, count in
                guard let data else { return -5 }
                let sink = Unmanaged<OutputSink>.fromOpaque(data).takeUnretainedValue()
                let accepted = sink.write(UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : count))
                // EFBIG: the output cap is reached; the guest's write fails.
                return accepted ? count : -27
            }
            let release: peon_wasmtime_finalizer_t = { data in
                if let data { Unmanaged<OutputSink>.fromOpaque(data).release() }
            }
            if isStdout {
                api.wasi_config_set_stdout_custom(config, write, box, release)
            } else {
                api.wasi_config_set_stderr_custom(config, write, box, release)
            }
        }
        if let error = api.wasmtime_context_set_wasi(context, config) {
            throw EngineError(.unavailable, "wasmtime refused the component's WASI context: \(api.consume(error: error))")
        }
    }

    /// Defines WASI preview 2, `functions` (grouped by interface) and the instances `instances` in the linker.
    func link(_ functions: [ComponentHostFunction], instances: [String]) throws(EngineError) {
        if let error = api.wasmtime_component_linker_add_wasip2(linker) {
            throw EngineError(.unavailable, "wasmtime could not define WASI preview 2: \(api.consume(error: error))")
        }
        var interfaces: [String] = []
        var byInterface: [String: [ComponentHostFunction]] = [:]
        for name in instances where byInterface[name] == nil {
            interfaces.append(name)
            byInterface[name] = []
        }
        for function in functions {
            if byInterface[function.interface] == nil { interfaces.append(function.interface) }
            byInterface[function.interface, default: []].append(function)
        }
        let root = api.wasmtime_component_linker_root(linker)
        defer { api.wasmtime_component_linker_instance_delete(root) }
        for interface in interfaces {
            var nested: OpaquePointer?
            let error = interface.withCString { api.wasmtime_component_linker_instance_add_instance(root, $0, interface.utf8.count, &nested) }
            if let error { throw EngineError(.unavailable, "cannot define \(interface): \(api.consume(error: error))") }
            guard let nested else { throw EngineError(.unavailable, "cannot define \(interface): wasmtime returned no instance") }
            defer { api.wasmtime_component_linker_instance_delete(nested) }
            for function in byInterface[interface] ?? [] {
                let binding = ComponentBinding(state: self, function: function)
                bindings.append(binding)
                let callback: peon_component_callback_t = { environment, _, _, arguments, argumentCount, results, resultCount in
                    guard let environment else { return nil }
                    let binding = Unmanaged<ComponentBinding>.fromOpaque(environment).takeUnretainedValue()
                    return binding.invoke(arguments: arguments, argumentCount: argumentCount, results: results, resultCount: resultCount)
                }
                let added = function.name.withCString {
                    api.wasmtime_component_linker_instance_add_func(
                        nested, $0, function.name.utf8.count, callback, Unmanaged.passUnretained(binding).toOpaque(), nil)
                }
                if let added { throw EngineError(.unavailable, "cannot define \(interface)#\(function.name): \(api.consume(error: added))") }
            }
        }
    }

    /// Instantiates the component in the store, under the deadline.
    func instantiate() throws {
        if limits.isPastDeadline {
            throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed before instantiation")
        }
        let armed = armDeadline()
        let error = api.wasmtime_component_linker_instantiate(linker, context, component.handle, &instance)
        if armed { component.runtime.ticker.end() }
        guard let error else { return }
        let failure = componentFailure(error, during: "instantiation")
        if let pending = pendingError {
            pendingError = nil
            throw pending
        }
        if failure.message.contains("matching implementation was not found") {
            throw EngineError(.unknownImport, failure.message)
        }
        if case .trap = failure.kind { throw failure }
        throw EngineError(.instantiation, failure.message)
    }

    /// Calls the top-level function export `name`, after checking that the component declares it with
    /// exactly `type` (wasmtime lifts a result of whatever type the component declares, one host value
    /// per list element, before anything here could refuse it).
    func call(_ name: String, _ arguments: [ComponentValue], type: ComponentFunctionType) throws -> [ComponentValue] {
        var function = wasmtime_component_func_t()
        let found = name.withCString { cName -> Bool in
            guard let index = api.wasmtime_component_instance_get_export_index(&instance, context, nil, cName, name.utf8.count) else {
                return false
            }
            defer { api.wasmtime_component_export_index_delete(index) }
            return api.wasmtime_component_instance_get_func(&instance, context, index, &function)
        }
        guard found else { throw EngineError(.missingExport, "the component exports no function named \(name)") }
        let declared = try exportType(&function, name: name)
        guard declared == type else {
            throw EngineError(.missingExport, "export \(name) has type \(declared), but the host calls it as \(type); build the component against wit/peon.wit's agent world")
        }
        let resultCount = type.result == nil ? 0 : 1
        if limits.isPastDeadline {
            throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed before calling \(name)")
        }
        let writer = ComponentValueWriter(api: api)
        var parameters = arguments.map(writer.make)
        defer { for index in parameters.indices { api.wasmtime_component_val_delete(&parameters[index]) } }
        var results = [wasmtime_component_val_t](repeating: wasmtime_component_val_t(), count: resultCount)
        let armed = armDeadline()
        let error = parameters.withUnsafeBufferPointer { parameterBuffer in
            results.withUnsafeMutableBufferPointer { resultBuffer in
                api.wasmtime_component_func_call(
                    &function, context, parameterBuffer.baseAddress, parameterBuffer.count, resultBuffer.baseAddress, resultBuffer.count)
            }
        }
        if armed { component.runtime.ticker.end() }
        defer { for index in results.indices { api.wasmtime_component_val_delete(&results[index]) } }
        if let error {
            let failure = componentFailure(error, during: "export \(name)")
            if let pending = pendingError {
                pendingError = nil
                throw pending
            }
            throw failure
        }
        let reader = ComponentValueReader(api: api)
        var values: [ComponentValue] = []
        for index in results.indices {
            do {
                values.append(try withUnsafePointer(to: &results[index]) { pointer throws(UnsupportedComponentValue) in try reader.read(pointer) })
            } catch {
                throw EngineError(.trap(.other("bad result")), "export \(name) returned \(error.description)")
            }
        }
        return values
    }

    /// The type the component declares for its export `function` (named `name` for messages).
    private func exportType(_ function: inout wasmtime_component_func_t, name: String) throws(EngineError) -> ComponentFunctionType {
        let handle = api.wasmtime_component_func_type(&function, context)
        defer { api.wasmtime_component_func_type_delete(handle) }
        do {
            return try ComponentTypeReader(api: api).function(handle)
        } catch {
            throw EngineError(.missingExport, "cannot read the type of export \(name): \(error.message)")
        }
    }

    /// The fuel left, when the limits set a budget.
    var remainingFuel: UInt64? {
        guard limits.fuel != nil else { return nil }
        var fuel: UInt64 = 0
        if let error = api.wasmtime_context_get_fuel(context, &fuel) {
            _ = api.consume(error: error)
            return nil
        }
        return fuel
    }

    private func armDeadline() -> Bool {
        guard let deadline = limits.deadline else { return false }
        api.wasmtime_context_set_epoch_deadline(context, EpochTicker.ticks(until: deadline))
        component.runtime.ticker.begin()
        return true
    }

    /// An owned wasmtime error from a component call (deleted here) as an ``EngineError``: a trap with
    /// its reason when wasmtime says it trapped, else `.trap(.other)` with wasmtime's first line.
    private func componentFailure(_ error: OpaquePointer, during: String) -> EngineError {
        var message = wasm_byte_vec_t()
        api.wasmtime_error_message(error, &message)
        let text = api.string(message)
        api.wasm_byte_vec_delete(&message)
        api.wasmtime_error_delete(error)
        let parsed = WasmtimeMessage(text)
        let prefix = "wasm trap: "
        if let trapLine = ([parsed.headline] + parsed.causes).last(where: { $0.hasPrefix(prefix) }) {
            let words = String(trapLine.dropFirst(prefix.count))
            let reason = TrapReason(wasmtimeMessage: words)
            var account = reason.description
            if case .other = reason {} else if words != reason.description { account += " (\(words))" }
            if let frame = parsed.innermostFrame { account += " in \(frame)" }
            return EngineError(.trap(reason), "\(during) trapped: \(account)")
        }
        let line = ([parsed.headline] + parsed.causes).joined(separator: ": ")
        return EngineError(.trap(.other(line)), "\(during) failed: \(line)")
    }
}

extension TrapReason {
    /// The reason for wasmtime's text of a trap (the part after `wasm trap: `), for errors that carry
    /// no trap code (component calls return a `wasmtime_error_t`, not a `wasm_trap_t`).
    init(wasmtimeMessage words: String) {
        switch words {
        case "interrupt": self = .timeout
        case _ where words.hasPrefix("all fuel consumed"): self = .outOfFuel
        case _ where words.contains("`unreachable`"): self = .unreachable
        case "out of bounds memory access": self = .outOfBoundsMemoryAccess
        case "undefined element: out of bounds table access": self = .outOfBoundsTableAccess
        case "call stack exhausted": self = .callStackExhausted
        case "integer divide by zero": self = .integerDivideByZero
        case "integer overflow": self = .integerOverflow
        case "invalid conversion to integer": self = .invalidConversionToInteger
        case "indirect call type mismatch": self = .indirectCallTypeMismatch
        default: self = .other(words)
        }
    }
}

/// Where a component's stdout or stderr goes: the environment of wasmtime's output callback.
final class OutputSink {
    let write: @Sendable (UnsafeRawBufferPointer) -> Bool
    init(_ write: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) { self.write = write }
}

/// One host function defined for a component: what the C callback's environment points at.
final class ComponentBinding {
    /// The instance's state; it owns this binding and the store, so it is alive whenever the store calls back.
    private unowned(unsafe) let state: WasmtimeComponentState
    private let function: ComponentHostFunction

    init(state: WasmtimeComponentState, function: ComponentHostFunction) {
        self.state = state
        self.function = function
    }

    /// Runs the host function for one call; returns `nil`, or an owned wasmtime error after recording
    /// the Swift error in the state's `pendingError`.
    func invoke(
        arguments: UnsafeMutablePointer<wasmtime_component_val_t>?, argumentCount: Int,
        results: UnsafeMutablePointer<wasmtime_component_val_t>?, resultCount: Int
    ) -> OpaquePointer? {
        let api = state.component.runtime.api
        let qualified = "\(function.interface)#\(function.name)"
        do {
            if state.limits.isPastDeadline {
                throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed before \(qualified)")
            }
            // Before anything acts: a guest that declares the import with another number of results
            // would get no usable answer, so it is refused here rather than after the host has acted.
            guard resultCount == function.resultCount else {
                throw GuestMemoryError(
                    "\(qualified): the component imports it with \(resultCount) result(s), but the WIT function has \(function.resultCount)")
            }
            // Before the arguments are copied or the host acts: wasmtime has already lifted them into its
            // own values; measuring those allocates nothing, and a call over the byte limit goes no further.
            if let maximum = function.maximumArgumentBytes, let arguments {
                var measure = ComponentValueMeasure(limit: maximum)
                if !measure.fits(arguments, count: argumentCount) {
                    let description = "the arguments hold more than \(maximum) bytes of strings and lists"
                    guard let oversized = function.oversized else { throw GuestMemoryError("\(qualified): \(description)") }
                    let produced = try oversized(description)
                    try write(produced, qualified: qualified, results: results, resultCount: resultCount)
                    return nil
                }
            }
            let reader = ComponentValueReader(api: api)
            var values: [ComponentValue] = []
            values.reserveCapacity(argumentCount)
            for index in 0..<argumentCount {
                guard let arguments else { throw GuestMemoryError("\(qualified): wasmtime passed no arguments") }
                do {
                    values.append(try reader.read(arguments + index))
                } catch {
                    throw GuestMemoryError("\(qualified): argument \(index) is \(error.description)")
                }
            }
            let produced = try function.body(values)
            try write(produced, qualified: qualified, results: results, resultCount: resultCount)
            return nil
        } catch {
            state.pendingError = error
            return "host function \(qualified) failed".withCString { api.wasmtime_error_new($0) }
        }
    }

    /// Hands the host's results to wasmtime, after checking their count and the deadline.
    private func write(_ produced: [ComponentValue], qualified: String,
                       results: UnsafeMutablePointer<wasmtime_component_val_t>?, resultCount: Int) throws {
        guard produced.count == resultCount else {
            throw GuestMemoryError(
                "\(qualified): the component imports it with \(resultCount) result(s), but the WIT function has \(produced.count)")
        }
        if state.limits.isPastDeadline {
            throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed during \(qualified)")
        }
        if let results {
            let writer = ComponentValueWriter(api: state.component.runtime.api)
            for (index, value) in produced.enumerated() { results[index] = writer.make(value) }
        }
    }
}
