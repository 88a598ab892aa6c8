// The types a component declares for its imports, read through wasmtime's component type API, so that
// a host function is checked against its WIT type before the component is instantiated.
import CWasmtime
package import PeonEngine

extension WasmtimeCompiledComponent {
    /// The functions the component imports from each instance named in `interfaces`, with their types,
    /// in the order the component's type lists them: `[instance name: [(function name, type)]]`.
    /// Instances not imported are absent.
    func importedFunctions(in interfaces: Set<String>) throws(EngineError) -> [String: [(name: String, type: ComponentFunctionType)]] {
        let reader = ComponentTypeReader(api: runtime.api)
        var result: [String: [(name: String, type: ComponentFunctionType)]] = [:]
        try forEachImport { (name, item) throws(EngineError) in
            guard interfaces.contains(name) else { return }
            var described = wasmtime_component_item_t()
            runtime.api.wasmtime_component_extern_type(item, &described)
            defer { runtime.api.wasmtime_component_item_delete(&described) }
            guard described.kind == UInt8(PEON_ITEM_COMPONENT_INSTANCE), let instance = described.of.pointer else { return }
            result[name] = try reader.functions(of: OpaquePointer(instance), engine: runtime.engine)
        }
        return result
    }

    /// The names of all the component's imports, as wasmtime reads them.
    func importNames() throws(EngineError) -> [String] {
        var names: [String] = []
        try forEachImport { (name, _) throws(EngineError) in names.append(name) }
        return names
    }

    /// Calls `body` with each import's name and wasmtime's description of it (deleted after `body` returns).
    private func forEachImport(_ body: (String, OpaquePointer) throws(EngineError) -> Void) throws(EngineError) {
        let api = runtime.api
        let engine = runtime.engine
        let type = api.wasmtime_component_type(handle)
        defer { api.wasmtime_component_type_delete(type) }
        let reader = ComponentTypeReader(api: api)
        for index in 0..<api.wasmtime_component_type_import_count(type, engine) {
            var namePointer: UnsafePointer<CChar>?
            var nameLength = 0
            var item: OpaquePointer?
            guard api.wasmtime_component_type_import_nth(type, engine, index, &namePointer, &nameLength, &item), let item else {
                throw EngineError(.unavailable, "wasmtime did not describe import \(index) of the component")
            }
            defer { api.wasmtime_component_extern_delete(item) }
            try body(try reader.text(namePointer, nameLength), item)
        }
    }
}

extension WasmtimeEngine {
    /// The functions a component imports from each instance named in `interfaces` (e.g. the
    /// `peon:host` interfaces), in the order its type lists them, read from wasmtime's description of the
    /// compiled component (compiled through the cache like a run). For `grants check`.
    package func componentImportedFunctions(_ bytes: [UInt8], in interfaces: Set<String>) throws(EngineError) -> [String: [String]] {
        guard let component = try compileComponent(bytes) as? WasmtimeCompiledComponent else {
            throw EngineError(.unavailable, "the wasmtime engine compiled the component into something it cannot describe")
        }
        return try component.importedFunctions(in: interfaces).mapValues { $0.map(\.name) }
    }
}

/// Reads wasmtime's (owned, deleted here) component types into ``ComponentValueType``s.
struct ComponentTypeReader {
    let api: peon_wasmtime_api

    /// Types nest at most this deep (the `peon:host` types are four levels deep).
    static let maximumDepth = 64

    /// The functions an instance type exports, in order.
    func functions(of instance: OpaquePointer, engine: OpaquePointer) throws(EngineError) -> [(name: String, type: ComponentFunctionType)] {
        var functions: [(name: String, type: ComponentFunctionType)] = []
        for index in 0..<api.wasmtime_component_instance_type_export_count(instance, engine) {
            var namePointer: UnsafePointer<CChar>?
            var nameLength = 0
            var item: OpaquePointer?
            guard api.wasmtime_component_instance_type_export_nth(instance, engine, index, &namePointer, &nameLength, &item),
                  let item
            else { throw EngineError(.unavailable, "wasmtime did not describe export \(index) of an imported instance") }
            defer { api.wasmtime_component_extern_delete(item) }
            let name = try text(namePointer, nameLength)
            var described = wasmtime_component_item_t()
            api.wasmtime_component_extern_type(item, &described)
            defer { api.wasmtime_component_item_delete(&described) }
            guard described.kind == UInt8(PEON_ITEM_COMPONENT_FUNC), let function = described.of.pointer else { continue }
            functions.append((name, try self.function(OpaquePointer(function))))
        }
        return functions
    }

    func function(_ function: OpaquePointer) throws(EngineError) -> ComponentFunctionType {
        var parameters: [ComponentValueType] = []
        for index in 0..<api.wasmtime_component_func_type_param_count(function) {
            var namePointer: UnsafePointer<CChar>?
            var nameLength = 0
            var type = wasmtime_component_valtype_t()
            guard api.wasmtime_component_func_type_param_nth(function, index, &namePointer, &nameLength, &type) else {
                throw EngineError(.unavailable, "wasmtime did not describe parameter \(index) of an imported function")
            }
            parameters.append(try take(&type, depth: 0))
        }
        var resultType = wasmtime_component_valtype_t()
        let result = try takeIf(api.wasmtime_component_func_type_result(function, &resultType), &resultType, depth: 0)
        return ComponentFunctionType(parameters: parameters, result: result)
    }

    /// Converts an owned valtype and deletes it.
    func take(_ type: inout wasmtime_component_valtype_t, depth: Int) throws(EngineError) -> ComponentValueType {
        defer { api.wasmtime_component_valtype_delete(&type) }
        return try read(type, depth: depth)
    }

    /// ``take(_:depth:)`` when wasmtime filled `type` (`present`), else `nil` (nothing to delete).
    func takeIf(_ present: Bool, _ type: inout wasmtime_component_valtype_t, depth: Int) throws(EngineError) -> ComponentValueType? {
        guard present else { return nil }
        return try take(&type, depth: depth)
    }

    private func read(_ type: wasmtime_component_valtype_t, depth: Int) throws(EngineError) -> ComponentValueType {
        guard depth < Self.maximumDepth else {
            throw EngineError(.incompatibleImport, "an imported function's type nests more than \(Self.maximumDepth) levels deep")
        }
        let details = type.of.map { OpaquePointer($0) }
        switch Int(type.kind) {
        case Int(PEON_VALTYPE_BOOL): return .bool
        case Int(PEON_VALTYPE_S8): return .s8
        case Int(PEON_VALTYPE_S16): return .s16
        case Int(PEON_VALTYPE_S32): return .s32
        case Int(PEON_VALTYPE_S64): return .s64
        case Int(PEON_VALTYPE_U8): return .u8
        case Int(PEON_VALTYPE_U16): return .u16
        case Int(PEON_VALTYPE_U32): return .u32
        case Int(PEON_VALTYPE_U64): return .u64
        case Int(PEON_VALTYPE_F32): return .f32
        case Int(PEON_VALTYPE_F64): return .f64
        case Int(PEON_VALTYPE_CHAR): return .char
        case Int(PEON_VALTYPE_STRING): return .string
        default: break
        }
        guard let details else { return .unsupported("a type of kind \(type.kind)") }
        switch Int(type.kind) {
        case Int(PEON_VALTYPE_LIST):
            var element = wasmtime_component_valtype_t()
            api.wasmtime_component_list_type_element(details, &element)
            return .list(try take(&element, depth: depth + 1))
        case Int(PEON_VALTYPE_RECORD):
            var fields: [ComponentTypeField] = []
            for index in 0..<api.wasmtime_component_record_type_field_count(details) {
                var namePointer: UnsafePointer<CChar>?
                var nameLength = 0
                var field = wasmtime_component_valtype_t()
                guard api.wasmtime_component_record_type_field_nth(details, index, &namePointer, &nameLength, &field) else {
                    throw EngineError(.unavailable, "wasmtime did not describe field \(index) of a record type")
                }
                let fieldType = try take(&field, depth: depth + 1)
                fields.append(ComponentTypeField(try text(namePointer, nameLength), fieldType))
            }
            return .record(fields)
        case Int(PEON_VALTYPE_TUPLE):
            var types: [ComponentValueType] = []
            for index in 0..<api.wasmtime_component_tuple_type_types_count(details) {
                var element = wasmtime_component_valtype_t()
                guard api.wasmtime_component_tuple_type_types_nth(details, index, &element) else {
                    throw EngineError(.unavailable, "wasmtime did not describe element \(index) of a tuple type")
                }
                types.append(try take(&element, depth: depth + 1))
            }
            return .tuple(types)
        case Int(PEON_VALTYPE_VARIANT):
            var cases: [ComponentTypeField] = []
            for index in 0..<api.wasmtime_component_variant_type_case_count(details) {
                var namePointer: UnsafePointer<CChar>?
                var nameLength = 0
                var hasPayload = false
                var payload = wasmtime_component_valtype_t()
                guard api.wasmtime_component_variant_type_case_nth(details, index, &namePointer, &nameLength, &hasPayload, &payload) else {
                    throw EngineError(.unavailable, "wasmtime did not describe case \(index) of a variant type")
                }
                let payloadType = try takeIf(hasPayload, &payload, depth: depth + 1)
                cases.append(ComponentTypeField(try text(namePointer, nameLength), payloadType))
            }
            return .variant(cases)
        case Int(PEON_VALTYPE_ENUM):
            var names: [String] = []
            for index in 0..<api.wasmtime_component_enum_type_names_count(details) {
                var namePointer: UnsafePointer<CChar>?
                var nameLength = 0
                guard api.wasmtime_component_enum_type_names_nth(details, index, &namePointer, &nameLength) else {
                    throw EngineError(.unavailable, "wasmtime did not describe case \(index) of an enum type")
                }
                names.append(try text(namePointer, nameLength))
            }
            return .enumeration(names)
        case Int(PEON_VALTYPE_OPTION):
            var payload = wasmtime_component_valtype_t()
            api.wasmtime_component_option_type_ty(details, &payload)
            return .option(try take(&payload, depth: depth + 1))
        case Int(PEON_VALTYPE_RESULT):
            var ok = wasmtime_component_valtype_t()
            let okType = try takeIf(api.wasmtime_component_result_type_ok(details, &ok), &ok, depth: depth + 1)
            var error = wasmtime_component_valtype_t()
            let errorType = try takeIf(api.wasmtime_component_result_type_err(details, &error), &error, depth: depth + 1)
            return .result(ok: okType, error: errorType)
        case Int(PEON_VALTYPE_FLAGS):
            var names: [String] = []
            for index in 0..<api.wasmtime_component_flags_type_names_count(details) {
                var namePointer: UnsafePointer<CChar>?
                var nameLength = 0
                guard api.wasmtime_component_flags_type_names_nth(details, index, &namePointer, &nameLength) else {
                    throw EngineError(.unavailable, "wasmtime did not describe flag \(index) of a flags type")
                }
                names.append(try text(namePointer, nameLength))
            }
            return .flags(names)
        default:
            // Resources, futures, streams, maps, error contexts: peon:host has none.
            return .unsupported("a type of component kind \(type.kind)")
        }
    }

    /// A name wasmtime lends (UTF-8, not NUL-terminated).
    func text(_ pointer: UnsafePointer<CChar>?, _ length: Int) throws(EngineError) -> String {
        guard length > 0 else { return "" }
        guard let pointer else { throw EngineError(.unavailable, "wasmtime returned a name of \(length) bytes without data") }
        let bytes = UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self)
        guard let text = String(validating: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self) else {
            throw EngineError(.incompatibleImport, "an imported name is not UTF-8")
        }
        return text
    }
}
