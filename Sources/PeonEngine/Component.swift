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

/// A Component Model value type, as a component declares it and as the host's WIT declares it:
/// structural, with field and case names (they are part of the type: component values carry them).
package indirect enum ComponentValueType: Sendable, Hashable, CustomStringConvertible {
    case bool, s8, u8, s16, u16, s32, u32, s64, u64, f32, f64, char, string
    case list(ComponentValueType)
    /// Fields in declaration order: name and type.
    case record([ComponentTypeField])
    case tuple([ComponentValueType])
    /// Cases in declaration order: name and payload type, if any.
    case variant([ComponentTypeField])
    /// Case names in declaration order.
    case enumeration([String])
    case option(ComponentValueType)
    /// `nil` stands for `_`.
    case result(ok: ComponentValueType?, error: ComponentValueType?)
    /// Flag names in declaration order.
    case flags([String])
    /// A type `peon:host` never uses (a resource handle, a future, a stream, a map, an error context),
    /// by its kind's name: it never matches a host function's type.
    case unsupported(String)

    /// The type in WIT's words, e.g. `result<list<u8>, record { code: enum { ... }, message: string }>`.
    package var description: String {
        switch self {
        case .bool: "bool"
        case .s8: "s8"
        case .u8: "u8"
        case .s16: "s16"
        case .u16: "u16"
        case .s32: "s32"
        case .u32: "u32"
        case .s64: "s64"
        case .u64: "u64"
        case .f32: "f32"
        case .f64: "f64"
        case .char: "char"
        case .string: "string"
        case .list(let element): "list<\(element)>"
        case .record(let fields): "record { \(fields.map { "\($0.name): \($0.type.map { "\($0)" } ?? "_")" }.joined(separator: ", ")) }"
        case .tuple(let types): "tuple<\(types.map(\.description).joined(separator: ", "))>"
        case .variant(let cases): "variant { \(cases.map { item in item.type.map { "\(item.name)(\($0))" } ?? item.name }.joined(separator: ", ")) }"
        case .enumeration(let names): "enum { \(names.joined(separator: ", ")) }"
        case .option(let type): "option<\(type)>"
        case .result(let ok, let error): "result<\(ok.map { "\($0)" } ?? "_"), \(error.map { "\($0)" } ?? "_")>"
        case .flags(let names): "flags { \(names.joined(separator: ", ")) }"
        case .unsupported(let kind): kind
        }
    }
}

/// A named part of a compound type: a record's field (always typed) or a variant's case (typed when it
/// has a payload).
package struct ComponentTypeField: Sendable, Hashable {
    /// The field's or case's name.
    package var name: String
    /// Its type; `nil` for a case without a payload.
    package var type: ComponentValueType?

    /// Creates a field or case.
    package init(_ name: String, _ type: ComponentValueType?) {
        self.name = name
        self.type = type
    }
}

/// A component function's type: its parameter types in order (their names do not matter to the ABI
/// and are not compared) and its result type, if any.
package struct ComponentFunctionType: Sendable, Hashable, CustomStringConvertible {
    /// The parameter types.
    package var parameters: [ComponentValueType]
    /// The result type, or `nil` for none.
    package var result: ComponentValueType?

    /// Creates a function type.
    package init(parameters: [ComponentValueType], result: ComponentValueType?) {
        self.parameters = parameters
        self.result = result
    }

    /// `func(string, list<u8>) -> result<_, ...>`.
    package var description: String {
        "func(\(parameters.map(\.description).joined(separator: ", ")))" + (result.map { " -> \($0)" } ?? "")
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
    /// The function's type as the host's WIT declares it, or `nil` to accept whatever type the component
    /// imports it with. With a type, an engine refuses (``EngineError/Kind/incompatibleImport``) to
    /// instantiate a component that imports the function with any other type, so no call of a forged
    /// import ever reaches ``body``.
    package var type: ComponentFunctionType?
    /// The most bytes of strings and lists (each list element counted at least one byte) the arguments of
    /// one call may hold; checked on the engine's values before ``body`` runs or the values are copied.
    /// A call over it gets ``oversized``'s answer instead (or, without one, ends with an error).
    package var maximumArgumentBytes: Int?
    /// Answers a call whose arguments are over ``maximumArgumentBytes``, given a description of the
    /// excess (e.g. to audit the refusal and return `error(limit-exceeded)`).
    package var oversized: (@Sendable (_ description: String) throws -> [ComponentValue])?
    /// What the function does.
    package var body: @Sendable (_ arguments: [ComponentValue]) throws -> [ComponentValue]

    /// Creates a host function.
    package init(interface: String, name: String, resultCount: Int, type: ComponentFunctionType? = nil,
                maximumArgumentBytes: Int? = nil,
                oversized: (@Sendable (_ description: String) throws -> [ComponentValue])? = nil,
                body: @escaping @Sendable (_ arguments: [ComponentValue]) throws -> [ComponentValue]) {
        self.interface = interface
        self.name = name
        self.resultCount = resultCount
        self.type = type
        self.maximumArgumentBytes = maximumArgumentBytes
        self.oversized = oversized
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
    /// `.incompatibleImport` when the component imports one of `functions` with another type than its
    /// ``ComponentHostFunction/type``, `.instantiation` or `.trap` when instantiation fails.
    func instantiate(_ functions: [ComponentHostFunction], instances: [String], sandbox: ComponentSandbox,
                     limits: ResourceLimits) throws -> any ComponentInstance
}

/// A running component. Not thread-safe.
package protocol ComponentInstance: AnyObject {
    /// Calls the exported function `export` (a top-level export of the component), which must have
    /// exactly the type `type`.
    ///
    /// The type is checked before the guest runs: an engine turns whatever the export returns into host
    /// values before the caller sees it, and a result of another type than the caller expects (a
    /// `list<u8>` of 16 MiB, say, at tens of host bytes per element) would cost the host memory out of
    /// all proportion to the guest's, only to be refused afterwards.
    ///
    /// Throws ``EngineError`` `.missingExport` when there is no such function or it has another type,
    /// `.trap(reason)` when the guest traps or the arguments do not fit its type; an error thrown by a
    /// host function during the call is rethrown unchanged.
    func call(_ export: String, _ arguments: [ComponentValue], type: ComponentFunctionType) throws -> [ComponentValue]

    /// The fuel left, when the instance runs with a fuel budget.
    var remainingFuel: UInt64? { get }
}
