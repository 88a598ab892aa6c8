/// A value of the Component Model, as a component's imports receive and its exports return them.
///
/// Names stay names (a variant's case, an enum's case, a record's fields): the engine hands over what
/// the guest passed, and the runtime checks it against the WIT type it expects before using it. A
/// `list<u8>` is ``bytes(_:)`` (one allocation, not one value per byte).
package enum ComponentValue: Sendable, Hashable {
    case bool(Bool)
    case s8(Int8)
    case u8(UInt8)
    case s16(Int16)
    case u16(UInt16)
    case s32(Int32)
    case u32(UInt32)
    case s64(Int64)
    case u64(UInt64)
    case f32(Float)
    case f64(Double)
    /// A Unicode scalar value.
    case char(UInt32)
    case string(String)
    /// A `list<u8>`.
    case bytes([UInt8])
    case list([ComponentValue])
    /// Fields in declaration order, with their names.
    case record([ComponentField])
    case tuple([ComponentValue])
    /// The case's name and its payload, if the case has one.
    indirect case variant(String, ComponentValue?)
    /// The case's name.
    case enumeration(String)
    indirect case option(ComponentValue?)
    /// `ok` (`isOk`) or `err`, with the payload if that side has a type.
    indirect case result(isOk: Bool, ComponentValue?)
    /// The names of the flags that are set.
    case flags([String])
}

/// One named field of a record value.
package struct ComponentField: Sendable, Hashable {
    /// The field's name as the WIT spells it, e.g. `message`.
    package var name: String
    /// The field's value.
    package var value: ComponentValue

    /// Creates a field.
    package init(_ name: String, _ value: ComponentValue) {
        self.name = name
        self.value = value
    }
}

/// A function the host offers to components as `function` of the imported instance `interface`
/// (e.g. `read` of `peon:host/fs@0.1.0`).
///
/// The body gets the arguments exactly as the guest passed them (checked by nobody yet: it must
/// check every value's shape itself) and returns the results. A thrown error ends the guest's call
/// and surfaces unchanged from ``ComponentInstance/call(_:_:resultCount:)``.
public struct ComponentHostFunction: Sendable {
    /// The instance name, e.g. `peon:host/fs@0.1.0`.
    package var interface: String
    /// The function's name inside the instance, e.g. `read-dir`.
    package var name: String
    /// How many results the function returns (0 or 1). A guest that declares the import with another
    /// number is refused before the body runs.
    package var resultCount: Int
    /// What the function does.
    package var body: @Sendable (_ arguments: [ComponentValue]) throws -> [ComponentValue]

    /// Creates a host function.
    package init(interface: String, name: String, resultCount: Int,
                body: @escaping @Sendable (_ arguments: [ComponentValue]) throws -> [ComponentValue]) {
        self.interface = interface
        self.name = name
        self.resultCount = resultCount
        self.body = body
    }
}

/// The WASI preview 2 world a component sees: the same sandbox core modules get.
///
/// No preopened directories, no sockets and no name lookups, whatever is set here; the environment,
/// arguments and standard input are exactly these; output goes to the sinks.
package struct ComponentSandbox: Sendable {
    /// `argv`, program name first.
    package var arguments: [String] = []
    /// The environment.
    package var environment: [(name: String, value: String)] = []
    /// The whole of standard input.
    package var stdin: [UInt8] = []
    /// Takes a chunk of standard output; returns `false` to refuse it (the guest's write fails).
    package var stdout: @Sendable (UnsafeRawBufferPointer) -> Bool = { _ in true }
    /// Takes a chunk of standard error; returns `false` to refuse it.
    package var stderr: @Sendable (UnsafeRawBufferPointer) -> Bool = { _ in true }

    /// An empty sandbox that discards output.
    package init() {}
}

/// An engine that can also run components (the Component Model), not only core modules.
package protocol ComponentEngine: WasmEngine {
    /// Compiles and validates a component. Throws ``EngineError`` `.invalidModule` when the bytes are
    /// not a valid component.
    func compileComponent(_ bytes: [UInt8]) throws(EngineError) -> any CompiledComponent
}

/// A validated component, ready to be instantiated any number of times, from any thread.
package protocol CompiledComponent: Sendable {
    /// Instantiates the component with `functions` as its non-WASI imports and `sandbox` as its WASI
    /// preview 2, under `limits` (memory per linear memory, fuel, deadline). Each name in `instances`
    /// is defined as an instance even when no function belongs to it (an interface that only declares
    /// types, such as `peon:host/types`, is still imported by the components that use its types).
    ///
    /// Throws ``EngineError`` `.unknownImport` when an import is neither WASI nor one of `functions`,
    /// `.instantiation` or `.trap` when instantiation fails.
    func instantiate(_ functions: [ComponentHostFunction], instances: [String], sandbox: ComponentSandbox,
                     limits: ResourceLimits) throws -> any ComponentInstance
}

/// A running component. Not thread-safe.
package protocol ComponentInstance: AnyObject {
    /// Calls the exported function `export` (a top-level export of the component).
    ///
    /// Throws ``EngineError`` `.missingExport` when there is no such function, `.trap(reason)` when
    /// the guest traps or the arguments do not fit its type; an error thrown by a host function
    /// during the call is rethrown unchanged.
    func call(_ export: String, _ arguments: [ComponentValue], resultCount: Int) throws -> [ComponentValue]

    /// The fuel left, when the instance runs with a fuel budget.
    var remainingFuel: UInt64? { get }
}
