/// A Component Model value, the host-side form of what the canonical ABI lifts out of and lowers into
/// a guest.
///
/// A `list<u8>` is kept packed as ``bytes(_:)`` (a file or a response body is one array, not a
/// million enum cases); lowering also accepts a ``list(_:)`` of ``u8(_:)`` for it.
///
/// ```swift
/// // WIT: result<list<u8>, error> holding ok([104, 105])
/// let value = CanonicalValue.variant(case: 0, payload: .bytes([104, 105]))
/// ```
package indirect enum CanonicalValue: Sendable, Hashable {
    /// A `bool`.
    case bool(Bool)
    /// A `u8`.
    case u8(UInt8)
    /// A `u16`.
    case u16(UInt16)
    /// A `u32`.
    case u32(UInt32)
    /// A `u64`.
    case u64(UInt64)
    /// An `s8`.
    case s8(Int8)
    /// An `s16`.
    case s16(Int16)
    /// An `s32`.
    case s32(Int32)
    /// An `s64`.
    case s64(Int64)
    /// An `f32`.
    case f32(Float)
    /// An `f64`.
    case f64(Double)
    /// A `string`.
    case string(String)
    /// A `list<u8>`.
    case bytes([UInt8])
    /// A list of any other element type.
    case list([CanonicalValue])
    /// A record's (or tuple's) field values, in declaration order.
    case record([CanonicalValue])
    /// A variant (also an enum, option or result): the case index and its payload, if the case has one.
    case variant(case: UInt32, payload: CanonicalValue?)

    /// `ok(payload)` of a `result`.
    package static func ok(_ payload: CanonicalValue?) -> CanonicalValue { .variant(case: 0, payload: payload) }
    /// `error(payload)` of a `result`.
    package static func error(_ payload: CanonicalValue?) -> CanonicalValue { .variant(case: 1, payload: payload) }
    /// Case `index` of an `enum`.
    package static func enumeration(_ index: UInt32) -> CanonicalValue { .variant(case: index, payload: nil) }
}

/// A host value did not have the shape its canonical type requires: a bug in the host's bindings,
/// never something a guest can cause. It fails the call instead of writing a malformed value.
package struct CanonicalValueMismatch: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was expected and what was found.
    package var message: String

    /// Creates the error.
    package init(_ message: String) { self.message = message }

    /// The message.
    package var description: String { message }
}

extension CanonicalValue {
    /// The string, or a ``CanonicalValueMismatch``.
    package func asString() throws(CanonicalValueMismatch) -> String {
        guard case .string(let value) = self else { throw mismatch("string") }
        return value
    }

    /// The bytes of a `list<u8>` (packed or not), or a ``CanonicalValueMismatch``.
    package func asBytes() throws(CanonicalValueMismatch) -> [UInt8] {
        switch self {
        case .bytes(let bytes): return bytes
        case .list(let elements):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(elements.count)
            for element in elements {
                guard case .u8(let byte) = element else { throw mismatch("list<u8>") }
                bytes.append(byte)
            }
            return bytes
        default: throw mismatch("list<u8>")
        }
    }

    /// The elements of a list, or a ``CanonicalValueMismatch``.
    package func asList() throws(CanonicalValueMismatch) -> [CanonicalValue] {
        switch self {
        case .list(let elements): return elements
        case .bytes(let bytes): return bytes.map(CanonicalValue.u8)
        default: throw mismatch("list")
        }
    }

    /// The fields of a record with exactly `count` fields, or a ``CanonicalValueMismatch``.
    package func asRecord(count: Int) throws(CanonicalValueMismatch) -> [CanonicalValue] {
        guard case .record(let fields) = self, fields.count == count else { throw mismatch("record of \(count) fields") }
        return fields
    }

    /// The case index and payload of a variant, or a ``CanonicalValueMismatch``.
    package func asVariant() throws(CanonicalValueMismatch) -> (case: UInt32, payload: CanonicalValue?) {
        guard case .variant(let index, let payload) = self else { throw mismatch("variant") }
        return (index, payload)
    }

    /// The case index of an enum, or a ``CanonicalValueMismatch``.
    package func asEnumeration() throws(CanonicalValueMismatch) -> UInt32 {
        guard case .variant(let index, nil) = self else { throw mismatch("enum") }
        return index
    }

    /// The value of an `s32`, or a ``CanonicalValueMismatch``.
    package func asS32() throws(CanonicalValueMismatch) -> Int32 {
        guard case .s32(let value) = self else { throw mismatch("s32") }
        return value
    }

    /// The value of an `s64`, or a ``CanonicalValueMismatch``.
    package func asS64() throws(CanonicalValueMismatch) -> Int64 {
        guard case .s64(let value) = self else { throw mismatch("s64") }
        return value
    }

    /// The value of an `f64`, or a ``CanonicalValueMismatch``.
    package func asF64() throws(CanonicalValueMismatch) -> Double {
        guard case .f64(let value) = self else { throw mismatch("f64") }
        return value
    }

    /// The value of a `u16`, or a ``CanonicalValueMismatch``.
    package func asU16() throws(CanonicalValueMismatch) -> UInt16 {
        guard case .u16(let value) = self else { throw mismatch("u16") }
        return value
    }

    /// The value of a `u64`, or a ``CanonicalValueMismatch``.
    package func asU64() throws(CanonicalValueMismatch) -> UInt64 {
        guard case .u64(let value) = self else { throw mismatch("u64") }
        return value
    }

    private func mismatch(_ expected: String) -> CanonicalValueMismatch {
        CanonicalValueMismatch("expected a \(expected) value, found \(kindName)")
    }

    /// A short name of the value's shape for messages (never its contents, which may be secret).
    var kindName: String {
        switch self {
        case .bool: "bool"
        case .u8: "u8"
        case .u16: "u16"
        case .u32: "u32"
        case .u64: "u64"
        case .s8: "s8"
        case .s16: "s16"
        case .s32: "s32"
        case .s64: "s64"
        case .f32: "f32"
        case .f64: "f64"
        case .string: "string"
        case .bytes: "list<u8>"
        case .list: "list"
        case .record(let fields): "record of \(fields.count) fields"
        case .variant(let index, _): "variant case \(index)"
        }
    }
}
