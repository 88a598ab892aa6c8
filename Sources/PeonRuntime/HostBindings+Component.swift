package import PeonABI
package import PeonEngine
package import PeonInterface

/// The `peon:host@0.1.0` world bound to **components**: the same ``PeonHostBindings`` table, the same
/// ``HostInterface`` (the mediator) and the same typed requests as core modules, reached through the
/// engine's component values instead of linear memory.
///
/// A component's values arrive as the guest passed them; each is checked against the WIT type of the
/// function's parameter (kind, field names and count, case names, UTF-8) and converted to the
/// ``CanonicalValue`` the core-module path lifts, under the same ``CanonicalLimits``; the binding then
/// runs exactly as for a core module. A value of the wrong shape ends the call with a
/// ``GuestMemoryError`` naming the import; arguments over the limits are refused with
/// `error(limit-exceeded)` and audited, as for core modules.
extension PeonHostBindings {
    /// The per-call argument limits of a component: 16 MiB of strings and lists, a quarter of a core
    /// module's 64 MiB, because wasmtime has already turned a component's arguments into host values
    /// (about 32 host bytes per guest byte of a `list<u8>`) before the host sees them. The engine
    /// checks the byte limit on wasmtime's values before anything is copied (see `docs/engines.md#components`).
    package static let componentArgumentLimits = CanonicalLimits(maxBytes: 16 << 20)

    /// The most list elements one result handed to a component may hold, each byte of a `list<u8>`
    /// counted as one element: 1 Mi (1 048 576). Every element crosses as one 32-byte C value of ours,
    /// then one 48-byte value of wasmtime's, so a result at this limit costs the host about 80 MiB on
    /// its way into the guest; a result over it (a 2 MiB file, say) is replaced by
    /// `error(limit-exceeded)` before any of those values is made. Strings are not elements: they
    /// cross whole, at a few host bytes per guest byte, under the 16 MiB byte limit.
    package static let componentResultElements = 1 << 20

    /// One component host function per WIT function, each calling `host`, each declaring its WIT type
    /// (an engine refuses a component that imports it with another) and `limits.maxBytes` as its
    /// argument byte limit: a call over it is refused with `error(limit-exceeded)` and audited, as for
    /// core modules (a function without a result, `log`, ends the guest's call instead). A result over
    /// `limits.maxBytes` bytes or `resultElements` list elements reaches the guest as
    /// `error(limit-exceeded)` instead.
    package static func componentFunctions(for host: any HostInterface, limits: CanonicalLimits = componentArgumentLimits,
                                           resultElements: Int = componentResultElements)
        -> [ComponentHostFunction]
    {
        bindings.map { binding in
            let types = ComponentSignature.of(binding)
            return ComponentHostFunction(
                interface: binding.module, name: binding.name, resultCount: types.result == nil ? 0 : 1,
                type: types.functionType, maximumArgumentBytes: limits.maxBytes,
                oversized: { description in
                    if let reason = host.stopReason { throw RunStoppedByHost(reason) }
                    return try binding.refuseOversized(host, description: description, types: types)
                }
            ) { arguments in
                if let reason = host.stopReason { throw RunStoppedByHost(reason) }
                return try binding.callComponent(host, arguments: arguments, types: types, limits: limits, resultElements: resultElements)
            }
        }
    }

    /// The interfaces (instance names) components may import from this host: `peon:host/fs@0.1.0`, ...
    /// (`types` has no functions but is imported by any component that uses `error`).
    package static let componentInterfaces: Set<String> = interfaceModules.union(["peon:host/types@\(version)"])

    /// The WASI preview 2 packages wasmtime provides inside the sandbox (`wasmtime_component_linker_add_wasip2`).
    /// `wasi:http` is not among them: HTTP goes through the mediated `peon:host/http`.
    package static let componentWASIPackages = ["wasi:cli/", "wasi:clocks/", "wasi:filesystem/", "wasi:io/", "wasi:random/", "wasi:sockets/"]

    /// Whether a component import named `name` is served here: a `peon:host` interface of this version,
    /// or an interface of a WASI preview 2 package wasmtime provides inside the sandbox.
    package static func servesComponentImport(_ name: String) -> Bool {
        componentInterfaces.contains(name) || componentWASIPackages.contains { name.hasPrefix($0) }
    }

    /// The type of a component's `run` export, `func(input: string) -> result<string, string>`.
    package static let componentRunType = ComponentFunctionType(parameters: [.string], result: .result(ok: .string, error: .string))

    /// Calls a component's `run` export with `input` and returns its answer. The engine refuses (exit
    /// 68, before the guest runs) a `run` declared with another type than ``componentRunType``: a
    /// result is all strings, which cross as one host byte per guest byte, never a list the engine
    /// would turn into one host value per element. The value returned is checked again here.
    package static func callComponentRun(_ instance: any ComponentInstance, input: String) throws -> Result<String, GuestRunError> {
        let results = try instance.call(runExport, [.string(input)], type: componentRunType)
        guard results.count == 1, case .result(let isOk, let payload) = results[0], case .string(let text)? = payload else {
            // The values' shapes, never their contents: a guest's value may be megabytes long.
            throw CanonicalValueMismatch("run returned \(results.map(ComponentType.describe).joined(separator: ", ")), not a result<string, string>")
        }
        return isOk ? .success(text) : .failure(GuestRunError(message: text))
    }
}

extension PeonHostBindings.Binding {
    /// The answer to a call whose arguments are over the byte limit: the refusal is audited and the guest
    /// gets `error(limit-exceeded)`; a function without a result ends the guest's call.
    func refuseOversized(_ host: any HostInterface, description: String, types: ComponentSignature) throws -> [ComponentValue] {
        guard let type = types.result else { throw GuestMemoryError("\(qualifiedName): \(description)") }
        let refusal = HostError(.limitExceeded, description)
        host.refused(call: call, error: refusal)
        return [try type.lower(.error(PeonHostBindings.errorValue(refusal)))]
    }

    /// One component call: check and convert the arguments, call the host, convert the result back.
    func callComponent(
        _ host: any HostInterface, arguments: [ComponentValue], types: ComponentSignature, limits: CanonicalLimits,
        resultElements: Int
    ) throws -> [ComponentValue] {
        guard arguments.count == types.parameters.count else {
            throw GuestMemoryError("\(qualifiedName): called with \(arguments.count) arguments; the WIT function takes \(types.parameters.count)")
        }
        let result: CanonicalValue?
        do {
            var budget = ComponentBudget(limits: limits)
            var lifted: [CanonicalValue] = []
            for (value, type) in zip(arguments, types.parameters) {
                lifted.append(try type.lift(value, budget: &budget))
            }
            let answer = try invoke(host, lifted)
            // A result crosses to the guest as ~80 host bytes per list element (our C values, then
            // wasmtime's), and wasmtime does not bound it: one over the byte or the element limit is
            // replaced by error(limit-exceeded), counted here before any of those values is made. The
            // call itself has happened and is audited as it was.
            if let answer, let excess = ComponentBudget.excess(of: answer, maxBytes: limits.maxBytes, maxElements: resultElements) {
                result = .error(PeonHostBindings.errorValue(HostError(.limitExceeded, excess)))
            } else {
                result = answer
            }
        } catch let limit as CanonicalLimitExceeded {
            guard types.result != nil else { throw GuestMemoryError("\(qualifiedName): \(limit.message)") }
            let refusal = HostError(.limitExceeded, limit.message)
            host.refused(call: call, error: refusal)
            result = .error(PeonHostBindings.errorValue(refusal))
        } catch let mismatch as CanonicalValueMismatch {
            throw GuestMemoryError("\(qualifiedName): \(mismatch)")
        }
        guard let type = types.result else { return [] }
        guard let result else { throw GuestMemoryError("\(qualifiedName): the host produced no result") }
        return [try type.lower(result)]
    }
}

/// The sizes one component call's arguments may add up to: the same ``CanonicalLimits`` as a core
/// module's lifted arguments.
struct ComponentBudget {
    let limits: CanonicalLimits
    var bytes = 0
    var elements = 0

    mutating func spend(bytes count: Int) throws(CanonicalLimitExceeded) {
        bytes += count
        guard bytes <= limits.maxBytes else {
            throw CanonicalLimitExceeded("the arguments hold more than \(limits.maxBytes) bytes of strings and lists")
        }
    }

    /// Which of a component's per-call result limits a host value is over, as the message the guest
    /// gets, or `nil` when it is within both: more than `maxBytes` bytes of strings and lists (every
    /// list element counted at least one byte), or more than `maxElements` list elements (every byte
    /// of a `list<u8>` one element). Stops counting as soon as one is passed; allocates nothing.
    static func excess(of value: CanonicalValue, maxBytes: Int, maxElements: Int) -> String? {
        var bytes = 0
        var elements = 0
        func over() -> Bool { bytes > maxBytes || elements > maxElements }
        func count(_ value: CanonicalValue) -> Bool {
            switch value {
            case .string(let text): bytes += text.utf8.count
            case .bytes(let data):
                bytes += data.count
                elements += data.count
            case .list(let items):
                bytes += items.count
                elements += items.count
                if over() { return true }
                return items.contains(where: count)
            case .record(let fields): return fields.contains(where: count)
            case .variant(_, let payload?): return count(payload)
            default: return false
            }
            return over()
        }
        guard count(value) else { return nil }
        if bytes > maxBytes {
            return "the result holds more than \(maxBytes) bytes of strings and lists, over a component's per-call limit"
        }
        return "the result holds more than \(maxElements) list elements (each byte of a list<u8> one), over a component's per-call limit"
    }

    mutating func spend(elements count: Int) throws(CanonicalLimitExceeded) {
        elements += count
        guard elements <= limits.maxElements else {
            throw CanonicalLimitExceeded("the arguments hold more than \(limits.maxElements) list elements")
        }
    }
}

/// A WIT type with its names (cases, fields), as component values carry them.
indirect enum ComponentType: Sendable, Hashable {
    /// A number or bool; the canonical type says which.
    case scalar(CanonicalType)
    case string
    case list(ComponentType)
    case record([String], [ComponentType])
    case variant([String], [ComponentType?])
    case enumeration([String])
    case result(ok: ComponentType?, error: ComponentType?)

    /// The same type as the engine describes a component's types.
    var valueType: ComponentValueType {
        switch self {
        case .scalar(let type):
            switch type {
            case .bool: .bool
            case .u8: .u8
            case .u16: .u16
            case .u32: .u32
            case .u64: .u64
            case .s8: .s8
            case .s16: .s16
            case .s32: .s32
            case .s64: .s64
            case .f32: .f32
            case .f64: .f64
            default: .unsupported("\(type)")
            }
        case .string: .string
        case .list(let element): .list(element.valueType)
        case .record(let names, let types): .record(zip(names, types).map { ComponentTypeField($0, $1.valueType) })
        case .variant(let names, let cases): .variant(zip(names, cases).map { ComponentTypeField($0, $1?.valueType) })
        case .enumeration(let names): .enumeration(names)
        case .result(let ok, let error): .result(ok: ok?.valueType, error: error?.valueType)
        }
    }

    /// The same type without names, as the core-module ABI sees it.
    var canonical: CanonicalType {
        switch self {
        case .scalar(let type): type
        case .string: .string
        case .list(let element): .list(element.canonical)
        case .record(_, let fields): .record(fields.map(\.canonical))
        case .variant(_, let cases): .variant(cases.map { $0?.canonical })
        case .enumeration(let names): .enumeration(names.count)
        case .result(let ok, let error): .result(ok: ok?.canonical, error: error?.canonical)
        }
    }

    /// Checks a guest's value against this type and converts it (hostile input: every kind, name and
    /// count checked).
    func lift(_ value: ComponentValue, budget: inout ComponentBudget) throws -> CanonicalValue {
        switch (self, value) {
        case (.scalar(.bool), .bool(let v)): return .bool(v)
        case (.scalar(.u8), .u8(let v)): return .u8(v)
        case (.scalar(.u16), .u16(let v)): return .u16(v)
        case (.scalar(.u32), .u32(let v)): return .u32(v)
        case (.scalar(.u64), .u64(let v)): return .u64(v)
        case (.scalar(.s8), .s8(let v)): return .s8(v)
        case (.scalar(.s16), .s16(let v)): return .s16(v)
        case (.scalar(.s32), .s32(let v)): return .s32(v)
        case (.scalar(.s64), .s64(let v)): return .s64(v)
        case (.scalar(.f32), .f32(let v)): return .f32(v)
        case (.scalar(.f64), .f64(let v)): return .f64(v)
        case (.string, .string(let text)):
            try budget.spend(bytes: text.utf8.count)
            return .string(text)
        case (.list(.scalar(.u8)), .bytes(let bytes)):
            try budget.spend(bytes: bytes.count)
            return .bytes(bytes)
        case (.list(.scalar(.u8)), .list(let values)) where values.isEmpty:
            return .bytes([])
        case (.list(let element), .list(let values)):
            try budget.spend(elements: values.count)
            try budget.spend(bytes: values.count)
            return .list(try values.map { try element.lift($0, budget: &budget) })
        case (.record(let names, let types), .record(let fields)):
            guard fields.map(\.name) == names else { throw mismatch(value) }
            return .record(try zip(fields, types).map { try $1.lift($0.value, budget: &budget) })
        case (.variant(let names, let cases), .variant(let name, let payload)):
            guard let index = names.firstIndex(of: name) else { throw mismatch(value) }
            return .variant(case: UInt32(index), payload: try Self.liftPayload(cases[index], payload, budget: &budget, whole: value))
        case (.enumeration(let names), .enumeration(let name)):
            guard let index = names.firstIndex(of: name) else { throw mismatch(value) }
            return .enumeration(UInt32(index))
        case (.result(let ok, let error), .result(let isOk, let payload)):
            return .variant(case: isOk ? 0 : 1, payload: try Self.liftPayload(isOk ? ok : error, payload, budget: &budget, whole: value))
        default:
            throw mismatch(value)
        }
    }

    private static func liftPayload(
        _ type: ComponentType?, _ payload: ComponentValue?, budget: inout ComponentBudget, whole: ComponentValue
    ) throws -> CanonicalValue? {
        switch (type, payload) {
        case (nil, nil): return nil
        case (let type?, let payload?): return try type.lift(payload, budget: &budget)
        default: throw CanonicalValueMismatch("a case payload of \(describe(whole)) does not match its WIT type")
        }
    }

    /// Converts a host value of this type (built by the bindings, so its shape is ours) for the guest.
    func lower(_ value: CanonicalValue) throws -> ComponentValue {
        switch (self, value) {
        case (.scalar, .bool(let v)): return .bool(v)
        case (.scalar, .u8(let v)): return .u8(v)
        case (.scalar, .u16(let v)): return .u16(v)
        case (.scalar, .u32(let v)): return .u32(v)
        case (.scalar, .u64(let v)): return .u64(v)
        case (.scalar, .s8(let v)): return .s8(v)
        case (.scalar, .s16(let v)): return .s16(v)
        case (.scalar, .s32(let v)): return .s32(v)
        case (.scalar, .s64(let v)): return .s64(v)
        case (.scalar, .f32(let v)): return .f32(v)
        case (.scalar, .f64(let v)): return .f64(v)
        case (.string, .string(let text)): return .string(text)
        case (.list(.scalar(.u8)), .bytes(let bytes)): return .bytes(bytes)
        case (.list(let element), .list(let values)): return .list(try values.map(element.lower))
        case (.list(let element), .bytes(let bytes)): return .list(try bytes.map { try element.lower(.u8($0)) })
        case (.record(let names, let types), .record(let fields)) where fields.count == names.count:
            return .record(try zip(names, zip(types, fields)).map { ComponentField($0, try $1.0.lower($1.1)) })
        case (.variant(let names, let cases), .variant(let index, let payload)) where Int(index) < names.count:
            return .variant(names[Int(index)], try Self.lowerPayload(cases[Int(index)], payload))
        case (.enumeration(let names), .variant(let index, nil)) where Int(index) < names.count:
            return .enumeration(names[Int(index)])
        case (.result(let ok, let error), .variant(let index, let payload)) where index < 2:
            return .result(isOk: index == 0, try Self.lowerPayload(index == 0 ? ok : error, payload))
        default:
            throw CanonicalValueMismatch("the host built \(value) for a \(canonical)")
        }
    }

    private static func lowerPayload(_ type: ComponentType?, _ payload: CanonicalValue?) throws -> ComponentValue? {
        switch (type, payload) {
        case (nil, nil): return nil
        case (let type?, let payload?): return try type.lower(payload)
        default: throw CanonicalValueMismatch("the host built a case payload that does not match its WIT type")
        }
    }

    private func mismatch(_ value: ComponentValue) -> CanonicalValueMismatch {
        CanonicalValueMismatch("expected \(witName), got \(Self.describe(value))")
    }

    /// The type in WIT's words, for messages.
    var witName: String {
        switch self {
        case .scalar(let type): type.description
        case .string: "string"
        case .list(let element): "list<\(element.witName)>"
        case .record(let names, _): "record { \(names.joined(separator: ", ")) }"
        case .variant(let names, _): "variant { \(names.joined(separator: ", ")) }"
        case .enumeration(let names): "enum { \(names.joined(separator: ", ")) }"
        case .result(let ok, let error): "result<\(ok?.witName ?? "_"), \(error?.witName ?? "_")>"
        }
    }

    /// A short description of a guest value's shape (never its contents, which may be huge or secret).
    static func describe(_ value: ComponentValue) -> String {
        switch value {
        case .bool: "a bool"
        case .s8: "an s8"
        case .u8: "a u8"
        case .s16: "an s16"
        case .u16: "a u16"
        case .s32: "an s32"
        case .u32: "a u32"
        case .s64: "an s64"
        case .u64: "a u64"
        case .f32: "an f32"
        case .f64: "an f64"
        case .char: "a char"
        case .string: "a string"
        case .bytes(let bytes): "a list of \(bytes.count) u8"
        case .list(let values): "a list of \(values.count) values"
        case .record(let fields): "a record { \(fields.map(\.name).joined(separator: ", ")) }"
        case .tuple(let values): "a tuple of \(values.count)"
        case .variant(let name, _): "variant case '\(TerminalText.escaped(String(name.prefix(64))))'"
        case .enumeration(let name): "enum case '\(TerminalText.escaped(String(name.prefix(64))))'"
        case .option: "an option"
        case .result: "a result"
        case .flags: "flags"
        }
    }
}

/// A WIT function's parameter and result types with their names.
struct ComponentSignature: Sendable, Hashable {
    let parameters: [ComponentType]
    let result: ComponentType?

    /// The function type an engine checks a component's import against.
    var functionType: ComponentFunctionType {
        ComponentFunctionType(parameters: parameters.map(\.valueType), result: result?.valueType)
    }

    /// The types of `wit/peon.wit`, by the binding's call name (`fs.read`, ...).
    static func of(_ binding: PeonHostBindings.Binding) -> ComponentSignature {
        table[binding.call] ?? ComponentSignature(parameters: [], result: nil)
    }

    static let errorCode = ComponentType.enumeration(HostErrorCode.allCases.map(\.description))
    static let error = ComponentType.record(["code", "message"], [errorCode, .string])
    static let bytes = ComponentType.list(.scalar(.u8))
    static let header = ComponentType.record(["name", "value"], [.string, .string])
    static let request = ComponentType.record(["method", "url", "headers", "body"], [.string, .string, .list(header), bytes])
    static let response = ComponentType.record(["status", "headers", "body"], [.scalar(.u16), .list(header), bytes])
    static let value = ComponentType.variant(
        ["null", "integer", "real", "text", "blob"], [nil, .scalar(.s64), .scalar(.f64), .string, bytes])
    static let rows = ComponentType.record(["columns", "rows"], [.list(.string), .list(.list(value))])
    static let output = ComponentType.record(["code", "stdout", "stderr"], [.scalar(.s32), bytes, bytes])
    static let level = ComponentType.enumeration(LogLevel.allCases.map(\.description))

    static func returning(_ parameters: [ComponentType], _ ok: ComponentType?) -> ComponentSignature {
        ComponentSignature(parameters: parameters, result: .result(ok: ok, error: error))
    }

    static let table: [String: ComponentSignature] = [
        "fs.read": returning([.string], bytes),
        "fs.write": returning([.string, bytes], nil),
        "fs.append": returning([.string, bytes], nil),
        "fs.read-dir": returning([.string], .list(.string)),
        "fs.remove": returning([.string], nil),
        "http.send": returning([request], response),
        "db.query": returning([.string, .string, .list(value)], rows),
        "db.execute": returning([.string, .string, .list(value)], .scalar(.u64)),
        "exec.run": returning([.string, .list(.string), bytes], output),
        "log.log": ComponentSignature(parameters: [level, .string], result: nil),
    ]
}
