// Conversions between wasmtime's C component values and PeonEngine's ComponentValue.
import CWasmtime
import PeonEngine

/// A component value from wasmtime that peon-wasm does not accept (a resource, a map, a kind this
/// build does not know, or nesting deeper than ``ComponentValueReader/maximumDepth``).
struct UnsupportedComponentValue: Error, CustomStringConvertible {
    let description: String
}

/// Reads C component values (borrowed; never freed here) into ``ComponentValue``s, checking every
/// kind tag, length and string on the way.
struct ComponentValueReader {
    let api: peon_wasmtime_api

    /// Values nest at most this deep; WIT types are far shallower, and a bound keeps recursion finite.
    static let maximumDepth = 64

    func read(_ value: UnsafePointer<wasmtime_component_val_t>, depth: Int = 0) throws(UnsupportedComponentValue) -> ComponentValue {
        guard depth < Self.maximumDepth else {
            throw UnsupportedComponentValue(description: "a value nested more than \(Self.maximumDepth) levels deep")
        }
        let of = value.pointee.of
        switch Int(value.pointee.kind) {
        case Int(PEON_COMPONENT_BOOL): return .bool(of.boolean)
        case Int(PEON_COMPONENT_S8): return .s8(of.s8)
        case Int(PEON_COMPONENT_U8): return .u8(of.u8)
        case Int(PEON_COMPONENT_S16): return .s16(of.s16)
        case Int(PEON_COMPONENT_U16): return .u16(of.u16)
        case Int(PEON_COMPONENT_S32): return .s32(of.s32)
        case Int(PEON_COMPONENT_U32): return .u32(of.u32)
        case Int(PEON_COMPONENT_S64): return .s64(of.s64)
        case Int(PEON_COMPONENT_U64): return .u64(of.u64)
        case Int(PEON_COMPONENT_F32): return .f32(of.f32)
        case Int(PEON_COMPONENT_F64): return .f64(of.f64)
        case Int(PEON_COMPONENT_CHAR): return .char(of.character)
        case Int(PEON_COMPONENT_STRING): return .string(try text(of.string))
        case Int(PEON_COMPONENT_LIST): return try list(of.list, depth: depth)
        case Int(PEON_COMPONENT_TUPLE):
            guard case .list(let values) = try list(of.tuple, depth: depth, bytesAllowed: false) else { return .tuple([]) }
            return .tuple(values)
        case Int(PEON_COMPONENT_RECORD):
            let record = of.record
            guard record.size > 0 else { return .record([]) }
            guard let data = record.data else { throw UnsupportedComponentValue(description: "a record of \(record.size) fields without data") }
            var fields: [ComponentField] = []
            fields.reserveCapacity(record.size)
            for index in 0..<record.size {
                let entry = data + index
                let name = try text(entry.pointee.name)
                let field = try withUnsafePointer(to: &entry.pointee.val) { pointer throws(UnsupportedComponentValue) in
                    try read(pointer, depth: depth + 1)
                }
                fields.append(ComponentField(name, field))
            }
            return .record(fields)
        case Int(PEON_COMPONENT_VARIANT):
            let name = try text(of.variant.discriminant)
            return .variant(name, try of.variant.val.map { pointer throws(UnsupportedComponentValue) in try read(pointer, depth: depth + 1) })
        case Int(PEON_COMPONENT_ENUM):
            return .enumeration(try text(of.enumeration))
        case Int(PEON_COMPONENT_OPTION):
            return .option(try of.option.map { pointer throws(UnsupportedComponentValue) in try read(pointer, depth: depth + 1) })
        case Int(PEON_COMPONENT_RESULT):
            let payload = try of.result.val.map { pointer throws(UnsupportedComponentValue) in try read(pointer, depth: depth + 1) }
            return .result(isOk: of.result.is_ok, payload)
        case Int(PEON_COMPONENT_FLAGS):
            let flags = of.flags
            guard flags.size > 0 else { return .flags([]) }
            guard let data = flags.data else { throw UnsupportedComponentValue(description: "flags without data") }
            var names: [String] = []
            for index in 0..<flags.size { names.append(try text(data[index])) }
            return .flags(names)
        default:
            throw UnsupportedComponentValue(description: "a value of component kind \(value.pointee.kind) (resources and maps are not part of peon:host)")
        }
    }

    private func list(_ list: wasmtime_component_vallist_t, depth: Int, bytesAllowed: Bool = true) throws(UnsupportedComponentValue) -> ComponentValue {
        guard list.size > 0 else { return .list([]) }
        guard let data = list.data else { throw UnsupportedComponentValue(description: "a list of \(list.size) values without data") }
        if bytesAllowed, Int(data[0].kind) == Int(PEON_COMPONENT_U8) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(list.size)
            for index in 0..<list.size {
                guard Int(data[index].kind) == Int(PEON_COMPONENT_U8) else {
                    throw UnsupportedComponentValue(description: "a list whose elements are of different kinds")
                }
                bytes.append(data[index].of.u8)
            }
            return .bytes(bytes)
        }
        var values: [ComponentValue] = []
        values.reserveCapacity(list.size)
        for index in 0..<list.size { values.append(try read(data + index, depth: depth + 1)) }
        return .list(values)
    }

    private func text(_ vector: wasm_byte_vec_t) throws(UnsupportedComponentValue) -> String {
        guard vector.size > 0 else { return "" }
        guard let data = vector.data else { throw UnsupportedComponentValue(description: "a string of \(vector.size) bytes without data") }
        guard let text = String(validating: UnsafeBufferPointer(start: data, count: vector.size), as: UTF8.self) else {
            throw UnsupportedComponentValue(description: "a string that is not UTF-8")
        }
        return text
    }
}

/// Builds C component values that wasmtime takes ownership of (allocated through wasmtime's own
/// constructors, so wasmtime frees them).
struct ComponentValueWriter {
    let api: peon_wasmtime_api

    func make(_ value: ComponentValue) -> wasmtime_component_val_t {
        var out = wasmtime_component_val_t()
        switch value {
        case .bool(let v): out.kind = UInt8(PEON_COMPONENT_BOOL); out.of.boolean = v
        case .s8(let v): out.kind = UInt8(PEON_COMPONENT_S8); out.of.s8 = v
        case .u8(let v): out.kind = UInt8(PEON_COMPONENT_U8); out.of.u8 = v
        case .s16(let v): out.kind = UInt8(PEON_COMPONENT_S16); out.of.s16 = v
        case .u16(let v): out.kind = UInt8(PEON_COMPONENT_U16); out.of.u16 = v
        case .s32(let v): out.kind = UInt8(PEON_COMPONENT_S32); out.of.s32 = v
        case .u32(let v): out.kind = UInt8(PEON_COMPONENT_U32); out.of.u32 = v
        case .s64(let v): out.kind = UInt8(PEON_COMPONENT_S64); out.of.s64 = v
        case .u64(let v): out.kind = UInt8(PEON_COMPONENT_U64); out.of.u64 = v
        case .f32(let v): out.kind = UInt8(PEON_COMPONENT_F32); out.of.f32 = v
        case .f64(let v): out.kind = UInt8(PEON_COMPONENT_F64); out.of.f64 = v
        case .char(let v):
            // wasmtime converts a char with `char::from_u32(..).unwrap()`: never hand it a non-scalar.
            out.kind = UInt8(PEON_COMPONENT_CHAR); out.of.character = Unicode.Scalar(v).map { $0.value } ?? 0xFFFD
        case .string(let text):
            out.kind = UInt8(PEON_COMPONENT_STRING); out.of.string = bytes(Array(text.utf8))
        case .enumeration(let name):
            out.kind = UInt8(PEON_COMPONENT_ENUM); out.of.enumeration = bytes(Array(name.utf8))
        case .bytes(let data):
            out.kind = UInt8(PEON_COMPONENT_LIST)
            out.of.list = list(data.count) { index in
                var element = wasmtime_component_val_t()
                element.kind = UInt8(PEON_COMPONENT_U8)
                element.of.u8 = data[index]
                return element
            }
        case .list(let values):
            out.kind = UInt8(PEON_COMPONENT_LIST); out.of.list = list(values.count) { make(values[$0]) }
        case .tuple(let values):
            out.kind = UInt8(PEON_COMPONENT_TUPLE); out.of.tuple = list(values.count) { make(values[$0]) }
        case .record(let fields):
            out.kind = UInt8(PEON_COMPONENT_RECORD)
            let entries = fields.map { field in
                wasmtime_component_valrecord_entry_t(name: bytes(Array(field.name.utf8)), val: make(field.value))
            }
            var record = wasmtime_component_valrecord_t()
            entries.withUnsafeBufferPointer { api.wasmtime_component_valrecord_new(&record, $0.count, $0.baseAddress) }
            out.of.record = record
        case .variant(let name, let payload):
            out.kind = UInt8(PEON_COMPONENT_VARIANT)
            out.of.variant = wasmtime_component_valvariant_t(discriminant: bytes(Array(name.utf8)), val: payload.map(boxed))
        case .option(let payload):
            out.kind = UInt8(PEON_COMPONENT_OPTION); out.of.option = payload.map(boxed)
        case .result(let isOk, let payload):
            out.kind = UInt8(PEON_COMPONENT_RESULT)
            out.of.result = wasmtime_component_valresult_t(is_ok: isOk, val: payload.map(boxed))
        case .flags(let names):
            out.kind = UInt8(PEON_COMPONENT_FLAGS)
            let vectors = names.map { bytes(Array($0.utf8)) }
            var flags = wasmtime_component_valflags_t()
            vectors.withUnsafeBufferPointer { api.wasmtime_component_valflags_new(&flags, $0.count, $0.baseAddress) }
            out.of.flags = flags
        }
        return out
    }

    private func boxed(_ value: ComponentValue) -> UnsafeMutablePointer<wasmtime_component_val_t> {
        var made = make(value)
        return api.wasmtime_component_val_new(&made)
    }

    private func bytes(_ data: [UInt8]) -> wasm_byte_vec_t {
        var vector = wasm_byte_vec_t()
        data.withUnsafeBufferPointer { api.wasm_byte_vec_new(&vector, $0.count, $0.baseAddress) }
        return vector
    }

    /// A wasmtime-owned list of `count` values made by `element`, each written straight into the list
    /// (no array of them is built first, which would double what a long list costs the host).
    private func list(_ count: Int, _ element: (Int) -> wasmtime_component_val_t) -> wasmtime_component_vallist_t {
        var result = wasmtime_component_vallist_t()
        api.wasmtime_component_vallist_new_uninit(&result, count)
        guard let data = result.data else { return result }
        for index in 0..<min(count, result.size) { (data + index).initialize(to: element(index)) }
        return result
    }
}

/// Adds up the bytes of strings and lists in wasmtime's values (borrowed; nothing is allocated) and
/// stops as soon as they pass a limit: every string byte and every list element counts one byte
/// (a `list<u8>` is its length), however deep the values nest.
struct ComponentValueMeasure {
    let limit: Int
    private(set) var total = 0

    init(limit: Int) { self.limit = max(limit, 0) }

    /// Whether `count` values from `values` hold at most `limit` bytes.
    mutating func fits(_ values: UnsafePointer<wasmtime_component_val_t>, count: Int) -> Bool {
        for index in 0..<count where !fits(values + index, depth: 0) { return false }
        return true
    }

    private mutating func add(_ count: Int) -> Bool {
        let (sum, overflow) = total.addingReportingOverflow(count)
        total = overflow ? .max : sum
        return total <= limit
    }

    private mutating func fits(_ value: UnsafePointer<wasmtime_component_val_t>, depth: Int) -> Bool {
        // Deeper values are refused by the reader anyway; counting stops there too.
        guard depth < ComponentValueReader.maximumDepth else { return true }
        let of = value.pointee.of
        switch Int(value.pointee.kind) {
        case Int(PEON_COMPONENT_STRING): return add(of.string.size)
        case Int(PEON_COMPONENT_ENUM): return add(of.enumeration.size)
        case Int(PEON_COMPONENT_LIST), Int(PEON_COMPONENT_TUPLE):
            let list = Int(value.pointee.kind) == Int(PEON_COMPONENT_LIST) ? of.list : of.tuple
            guard add(list.size) else { return false }
            guard let data = list.data else { return true }
            for index in 0..<list.size where !fits(data + index, depth: depth + 1) { return false }
            return true
        case Int(PEON_COMPONENT_RECORD):
            guard let data = of.record.data else { return true }
            for index in 0..<of.record.size {
                guard let field = (data + index).pointer(to: \.val) else { continue }
                if !fits(UnsafePointer(field), depth: depth + 1) { return false }
            }
            return true
        case Int(PEON_COMPONENT_VARIANT):
            guard add(of.variant.discriminant.size) else { return false }
            return of.variant.val.map { fits($0, depth: depth + 1) } ?? true
        case Int(PEON_COMPONENT_OPTION):
            return of.option.map { fits($0, depth: depth + 1) } ?? true
        case Int(PEON_COMPONENT_RESULT):
            return of.result.val.map { fits($0, depth: depth + 1) } ?? true
        case Int(PEON_COMPONENT_FLAGS):
            return add(of.flags.size)
        default:
            return true
        }
    }
}
