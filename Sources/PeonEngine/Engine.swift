/// A WebAssembly engine: it compiles modules and runs them with host functions under limits.
///
/// peon-wasm has two: WasmKit (pure Swift, the zero-setup default) and wasmtime (a JIT, loaded at run
/// time). Nothing outside an engine's own target sees its types; everything else in the pipeline
/// (WASI, the canonical ABI, the mediator) is written against these protocols, so a behaviour that
/// holds for one engine holds for the other, and the engine tests run against both.
///
/// ```swift
/// let module = try engine.compile(bytes)
/// let instance = try module.instantiate(hostFunctions, limits: ResourceLimits(memoryBytes: 64 << 20))
/// let results = try instance.call("add", [.i32(2), .i32(3)])
/// ```
public protocol WasmEngine: Sendable {
    /// A short lowercase name for messages and the audit log, e.g. `wasmkit`.
    var name: String { get }

    /// Whether this engine stops a guest that is running guest code (not only one inside a host
    /// call) when ``ResourceLimits/deadline`` passes. An engine without it needs the runtime's
    /// process isolation for a hard wall-clock limit.
    var interruptsRunningCode: Bool { get }

    /// Whether this engine can meter fuel; ``ResourceLimits/fuel`` is refused by instantiation otherwise.
    var supportsFuel: Bool { get }

    /// Parses and validates a module. Throws ``EngineError`` with kind `.invalidModule` for anything
    /// that is not a valid module, with the engine's explanation in the message.
    func compile(_ bytes: [UInt8]) throws(EngineError) -> any CompiledModule
}

/// A validated module, ready to be instantiated any number of times, from any thread.
public protocol CompiledModule: Sendable {
    /// The module's imports, in declaration order.
    var imports: [ImportDescriptor] { get }
    /// The module's exports, in declaration order.
    var exports: [ExportDescriptor] { get }

    /// Creates an instance whose function imports are bound to `hostFunctions` (matched by module and
    /// name), running under `limits`. Runs the module's start function, if any.
    ///
    /// Throws ``EngineError``: `.unknownImport` naming the first import no host function satisfies,
    /// `.incompatibleImport` when a host function's signature differs from the import's, `.instantiation`
    /// or `.trap` when the start function fails. Host functions not imported by the module are ignored.
    func instantiate(_ hostFunctions: [HostFunction], limits: ResourceLimits) throws -> any ModuleInstance

    /// Checks that every function body type-checks, without running any of the module's code: `.invalidModule`
    /// when one does not. An engine that validates whole modules when it compiles them (wasmtime) has nothing left
    /// to check; one that checks bodies only when it instantiates (WasmKit) checks them here. Whatever refuses a
    /// module before it is served or run (`inspect`, `grants check`, `mcp`) asks this, so that a module every run
    /// would refuse is refused once, at the start.
    func checkBodies(memoryBytes: Int) throws(EngineError)
}

/// A running module. Not thread-safe: an instance belongs to the thread or task that created it.
public protocol ModuleInstance: AnyObject {
    /// Calls an exported function with core values.
    ///
    /// Throws ``EngineError`` with `.missingExport` when there is no such function or the arguments do
    /// not match its parameters, `.trap(reason)` when the guest traps (a past deadline is
    /// `.trap(.timeout)`, an exhausted budget `.trap(.outOfFuel)`). An error thrown by a host function
    /// during the call is rethrown unchanged.
    func call(_ export: String, _ arguments: [WasmValue]) throws -> [WasmValue]

    /// The guest's memory and exports, for use between calls (e.g. reading a result area after an
    /// export returned).
    var guest: any GuestAccess { get }

    /// The fuel left, when the instance runs with a fuel budget.
    var remainingFuel: UInt64? { get }
}

/// The body of a host function.
///
/// It receives the calling guest (its memory and exports, valid only until the body returns) and the
/// arguments, and returns the single result, or `nil` for a function with no results. A thrown error
/// ends the guest's run and surfaces unchanged from ``ModuleInstance/call(_:_:)``.
package typealias HostFunctionBody = @Sendable (_ guest: any GuestAccess, _ arguments: HostArguments) throws -> WasmValue?

/// A function the host offers to guests under an import `module` and `name`.
///
/// Host functions have at most one result: WASI and the canonical ABI's lowered imports never need
/// more, and a single optional result keeps a call free of allocation. Engines refuse a host function
/// declared with more than one result.
public struct HostFunction: Sendable {
    /// The import module the function answers, e.g. `wasi_snapshot_preview1`.
    package var module: String
    /// The import field name, e.g. `fd_write`.
    package var name: String
    /// The core signature; a module importing the same name with another signature fails to link.
    package var signature: FunctionSignature
    /// What the function does.
    package var body: HostFunctionBody

    /// Creates a host function.
    package init(module: String, name: String, signature: FunctionSignature, body: @escaping HostFunctionBody) {
        self.module = module
        self.name = name
        self.signature = signature
        self.body = body
    }
}

/// The arguments of one host call: a view over storage the engine owns, valid only during the call.
///
/// The engine has checked them against the host function's signature, so the typed accessors return
/// the bits of the argument at that position.
package struct HostArguments {
    private let values: UnsafeBufferPointer<WasmValue>

    /// Wraps engine-owned values; for engine implementations.
    package init(_ values: UnsafeBufferPointer<WasmValue>) { self.values = values }

    /// The number of arguments.
    package var count: Int { values.count }

    /// The argument at `index`.
    package subscript(_ index: Int) -> WasmValue { values[index] }

    /// The `i32` argument at `index`, as unsigned bits (e.g. a guest pointer or length).
    package func i32(_ index: Int) -> UInt32 {
        switch values[index] {
        case .i32(let v), .f32(let v): v
        case .i64(let v), .f64(let v): UInt32(truncatingIfNeeded: v)
        }
    }

    /// The `i64` argument at `index`, as unsigned bits.
    package func i64(_ index: Int) -> UInt64 {
        switch values[index] {
        case .i32(let v), .f32(let v): UInt64(v)
        case .i64(let v), .f64(let v): v
        }
    }
}
