import PeonEngine
@_spi(Fuzzing) import WasmKit

/// Caps the instance's memories and tables together at the run's memory limit, through a
/// ``StorageLedger``: an allocation or a `memory.grow`/`table.grow` that would take the sum of all
/// linear memory bytes and table elements (8 bytes each) past it is refused (instantiation fails, a grow
/// returns -1 and the guest goes on).
final class StorageCap: ResourceLimiter {
    let ledger: StorageLedger
    init(_ ledger: StorageLedger) { self.ledger = ledger }
    func limitMemoryGrowth(to desired: Int) throws -> Bool { ledger.allowMemory(toBytes: desired) }
    func limitTableGrowth(to desired: Int) throws -> Bool { ledger.allowTable(toElements: desired) }
}

/// A running WasmKit instance: one `Store` of its own, confined to the thread that created it.
final class WasmKitInstance: PeonEngine.ModuleInstance {
    private let store: Store
    private let access: WasmKitGuestAccess
    private let limits: ResourceLimits
    private var instance: Instance

    init(module: WasmKitModule, hostFunctions: [PeonEngine.HostFunction], limits: ResourceLimits) throws {
        try module.storage.checkMinimums(within: limits)
        // An engine of its own: WasmKit's engine keeps one function-type interner behind a lock that every
        // call into the guest takes (`cabi_realloc` for each result), so instances sharing one engine queue on
        // it when many agents run at once. An engine is only its configuration and that interner.
        let store = Store(engine: WasmKit.Engine(configuration: module.engine.configuration))
        store.resourceLimiter = StorageCap(StorageLedger(budget: limits.memoryBytes, declared: module.storage))
        if let fuel = limits.fuel {
            guard module.engine.configuration.fuelMetering else {
                throw EngineError(.unavailable, "a fuel budget needs an engine created with fuel metering")
            }
            store.fuel = Fuel(remaining: fuel)
        }
        let access = WasmKitGuestAccess(engine: store.engine)
        var byName: [String: PeonEngine.HostFunction] = [:]
        for function in hostFunctions {
            byName[function.module + "\u{0}" + function.name] = function
        }
        var imports = Imports()
        for entry in module.imports {
            guard case .function(let expected) = entry.kind else {
                throw EngineError(.unknownImport,
                    "import \(entry.module).\(entry.name) is a \(entry.kind), which the host does not provide")
            }
            guard let function = byName[entry.module + "\u{0}" + entry.name] else {
                throw EngineError(.unknownImport, "unknown import \(entry.module).\(entry.name) \(expected)")
            }
            guard function.signature == expected else {
                throw EngineError(.incompatibleImport,
                    "import \(entry.module).\(entry.name) has type \(expected), but the host provides \(function.signature)")
            }
            imports.define(module: entry.module, name: entry.name,
                           Self.makeFunction(function, store: store, access: access, limits: limits))
        }
        self.store = store
        self.access = access
        self.limits = limits
        // WasmKit runs a start function before it checks the other bodies: they are checked first, here.
        if module.startBlanked != nil { try module.checkBodies(memoryBytes: limits.memoryBytes) }
        do {
            self.instance = try module.module.instantiate(store: store, imports: imports)
        } catch let error as EngineError {
            throw error
        } catch let trap as Trap {
            let reason = Self.reason(of: trap)
            // Fuel and the deadline are limits, not the module's fault: reported as such wherever they run out
            // (exit 71 and 124), as wasmtime reports them for a start function too.
            if reason == .outOfFuel || reason == .timeout {
                throw EngineError(.trap(reason), "the module's start function: \(reason)")
            }
            // Without a start function, only a data or element segment out of bounds traps while instantiating;
            // with one, an out-of-bounds trap may be either.
            let what = module.startBlanked == nil ? "instantiating the module (a data or element segment)"
                : reason == .outOfBoundsMemoryAccess || reason == .outOfBoundsTableAccess
                    ? "the module's segments or start function" : "the module's start function"
            throw EngineError(.instantiation, "\(what) trapped: \(reason)")
        } catch is WasmKitException {
            throw EngineError(.instantiation, "the module's start function trapped: \(Self.uncaughtException)")
        } catch let error as GuestMemoryError {
            throw error
        } catch let error as WasmKitError {
            // Traps and limits are caught above: what WasmKit reports here is validation (a function body or a
            // segment that does not type-check), which it does while instantiating. wasmtime reports the same module
            // as invalid when it compiles it, so both engines say so alike (exit 65).
            throw EngineError(.invalidModule, "\(error)")
        }
        access.attach(instance)
    }

    var guest: any GuestAccess { access }

    var remainingFuel: UInt64? { limits.fuel == nil ? nil : store.fuel?.remaining }

    func call(_ export: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        guard let function = instance.exports[function: export] else {
            throw EngineError(.missingExport, "the module exports no function named \(export)")
        }
        let type = function.type
        guard type.parameters.count == arguments.count,
            zip(type.parameters, arguments).allSatisfy({ $0 == $1.type.wasmKitType })
        else {
            throw EngineError(.missingExport,
                "export \(export) has type \(FunctionSignature(type)), which does not take (\(arguments.map(\.type.description).joined(separator: ", ")))")
        }
        if limits.isPastDeadline { throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed") }
        do {
            let results = try function.invoke(arguments.map(\.wasmKitValue))
            return results.compactMap(WasmValue.init)
        } catch let trap as Trap {
            let reason = Self.reason(of: trap)
            let place = Self.innermostFunction(of: trap).map { " in \($0)" } ?? ""
            throw EngineError(.trap(reason), reason.description + place)
        } catch is WasmKitException {
            // A Wasm exception no handler caught is the module's own failure, a trap as wasmtime reports it, not a
            // fault of the host (it was exit 70, "internal error").
            throw EngineError(.trap(Self.uncaughtException), Self.uncaughtException.description)
        }
    }

    /// A Wasm exception (`throw`) no handler caught, as a trap: wasmtime's words.
    static let uncaughtException = TrapReason.other("thrown Wasm exception")

    /// The name of the innermost function in the trap's backtrace, when the module has a name section.
    static func innermostFunction(of trap: Trap) -> String? {
        for line in trap.description.split(separator: "\n").dropFirst() {
            guard let name = line.split(separator: " ").last, name != "unknown", !name.hasPrefix("(0x") else { continue }
            return String(name)
        }
        return nil
    }

    /// Wraps a host function in WasmKit's allocation-free raw form, enforcing the deadline, refusing
    /// re-entrant host calls (a guest export called from a host function may not call the host again,
    /// which would otherwise recurse on the native stack without bound), and checking the result type.
    private static func makeFunction(
        _ function: PeonEngine.HostFunction, store: Store, access: WasmKitGuestAccess, limits: ResourceLimits
    ) -> Function {
        let body = function.body
        let resultType = function.signature.results.first
        let qualifiedName = "\(function.module).\(function.name)"
        let deadline = limits.deadline
        return Function(
            store: store,
            parameters: function.signature.parameters.compactMap(\.wasmKitType),
            results: function.signature.results.compactMap(\.wasmKitType)
        ) { caller, arguments, results in
            if let deadline, ContinuousClock.now >= deadline {
                throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed during \(qualifiedName)")
            }
            guard !access.isInHostCall else {
                throw EngineError(.trap(.other("re-entrant host call")),
                    "\(qualifiedName) was called from guest code running inside another host call")
            }
            access.enterHostCall(caller.instance)
            defer { access.leaveHostCall() }
            let result = try withUnsafeTemporaryAllocation(of: WasmValue.self, capacity: arguments.count) { buffer in
                for index in 0..<arguments.count {
                    buffer.initializeElement(at: index, to: WasmValue(arguments[index]) ?? .i32(0))
                }
                defer { buffer.deinitialize() }
                return try body(access, HostArguments(UnsafeBufferPointer(buffer)))
            }
            switch (resultType, result) {
            case (nil, nil):
                break
            case (let type?, let value?) where value.type == type:
                results[0] = value.wasmKitValue
            default:
                throw EngineError(.trap(.other("host result type mismatch")),
                    "host function \(qualifiedName) returned \(result.map(\.description) ?? "nothing") for result type \(resultType?.description ?? "none")")
            }
            if let deadline, ContinuousClock.now >= deadline {
                throw EngineError(.trap(.timeout), "the run's wall-clock deadline passed during \(qualifiedName)")
            }
        }
    }

    /// Maps a WasmKit trap to the engine-neutral reason, from its description (WasmKit keeps the
    /// reason itself package-private).
    static func reason(of trap: Trap) -> TrapReason {
        var text = trap.description
        if text.hasPrefix("Trap: ") { text.removeFirst(6) }
        if let newline = text.firstIndex(of: "\n") { text = String(text[..<newline]) }
        switch text {
        case "unreachable": return .unreachable
        case "call stack exhausted": return .callStackExhausted
        case "out of bounds memory access": return .outOfBoundsMemoryAccess
        case "integer divide by zero": return .integerDivideByZero
        case "integer overflow": return .integerOverflow
        case "invalid conversion to integer": return .invalidConversionToInteger
        case "out of fuel": return .outOfFuel
        case "null reference", "null function reference": return .nullReference
        default:
            if text.hasPrefix("indirect call to null") { return .uninitializedElement }
            if text.hasPrefix("indirect call type mismatch") { return .indirectCallTypeMismatch }
            if text.hasPrefix("out of bounds table access") { return .outOfBoundsTableAccess }
            return .other(text)
        }
    }
}

/// The guest's memory and exports, as host functions and the runtime see them.
///
/// The memory handle is looked up once (from the calling instance during the start function, from the
/// instance afterwards) and cached; WasmKit's `Memory` reads its size and base address on every access,
/// so growth between calls is seen. Every range is checked before WasmKit's own accessors run, because
/// those stop the process on an out-of-bounds range.
final class WasmKitGuestAccess: GuestAccess {
    /// The instance's engine, whose configuration sizes the stack ``callExport(_:_:)`` keeps.
    private let engine: WasmKit.Engine
    private var instance: Instance?

    init(engine: WasmKit.Engine) {
        self.engine = engine
    }

    private var memory: Memory?
    private(set) var isInHostCall = false

    func attach(_ instance: Instance) {
        self.instance = instance
        lastExport = nil
        exportPresence = [:]
        if memory == nil { memory = instance.exports[memory: "memory"] }
    }

    func enterHostCall(_ caller: Instance?) {
        isInHostCall = true
        if instance == nil, let caller {
            instance = caller
            lastExport = nil
            exportPresence = [:]
            memory = caller.exports[memory: "memory"]
        }
    }

    func leaveHostCall() { isInHostCall = false }

    var memorySize: Int { memory?.byteCount ?? 0 }

    func withMemory<R>(at offset: UInt32, count: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try checkRange(offset, count)
        guard let memory, count > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try memory.withUnsafeBufferPointer(offset: UInt(offset), count: Int(count), body)
    }

    func withMutableMemory<R>(
        at offset: UInt32, count: UInt32, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        try checkRange(offset, count)
        guard let memory, count > 0 else { return try body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        return try memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: Int(count), body)
    }

    /// The export `callExport` found last, with its type: the runtime calls one export (`cabi_realloc`) again and
    /// again while it lowers results, and an instance's exports never change.
    private var lastExport: (name: String, function: Function, type: FunctionType)?

    func callExport(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        let function: Function
        let type: FunctionType
        if let last = lastExport, last.name == name {
            (function, type) = (last.function, last.type)
        } else {
            guard let found = instance?.exports[function: name] else {
                throw EngineError(.missingExport, "the module exports no function named \(name)")
            }
            (function, type) = (found, found.type)
            lastExport = (name, found, type)
        }
        guard type.parameters.count == arguments.count,
            zip(type.parameters, arguments).allSatisfy({ $0 == $1.type.wasmKitType })
        else {
            throw EngineError(.missingExport, "export \(name) has type \(FunctionSignature(type))")
        }
        // The stack kept from the last call is taken out while this one runs: a guest whose `cabi_realloc` calls
        // back into the host, which calls an export again, gets a fresh stack rather than sharing this one.
        var stack = reentryStack.take() ?? ExecutionStack(engine: engine)
        let results: [Value]
        do {
            results = try function.invoke(arguments.map(\.wasmKitValue), on: &stack)
        } catch let trap as Trap {
            reentryStack = consume stack
            let reason = WasmKitInstance.reason(of: trap)
            throw EngineError(.trap(reason), "\(reason) in \(name)")
        } catch is WasmKitException {
            reentryStack = consume stack
            throw EngineError(.trap(WasmKitInstance.uncaughtException), "\(WasmKitInstance.uncaughtException) in \(name)")
        } catch {
            reentryStack = consume stack
            throw error
        }
        reentryStack = consume stack
        return results.compactMap(WasmValue.init)
    }

    /// The stack the guest's exports run on when the host calls them during a host call (`cabi_realloc` for each
    /// string and list a result lowers), kept between calls: WasmKit otherwise allocates and frees a stack of the
    /// engine's configured size for every call.
    private var reentryStack: ExecutionStack?

    func hasExport(_ name: String) -> Bool {
        // Asked on every call (`cabi_realloc`, `cabi_post_*`); an instance's exports never change.
        if let known = exportPresence[name] { return known }
        let present = instance?.exports[function: name] != nil
        if instance != nil { exportPresence[name] = present }
        return present
    }

    /// Whether each function name asked of ``hasExport(_:)`` is exported by the attached instance.
    private var exportPresence: [String: Bool] = [:]
}
