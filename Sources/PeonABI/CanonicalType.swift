package import PeonEngine

/// A Component Model value type, in the despecialized form the canonical ABI works on.
///
/// `enum`, `option` and `result` are variants (see ``enumeration(_:)``, ``option(_:)`` and
/// ``result(ok:error:)``), so layout, flattening, lifting and lowering are written once for each of
/// the shapes below. Field and case names do not matter to the ABI and are not kept.
///
/// ```swift
/// // WIT: record error { code: error-code, message: string }
/// let error = CanonicalType.record([.enumeration(6), .string])
/// let readResult = CanonicalType.result(ok: .list(.u8), error: error)
/// readResult.size       // 16
/// readResult.alignment  // 4
/// ```
package indirect enum CanonicalType: Sendable, Hashable, CustomStringConvertible {
    /// A `bool`: one byte, 0 or 1 (any non-zero byte lifts as `true`).
    case bool
    /// An unsigned integer of 8 bits.
    case u8
    /// An unsigned integer of 16 bits.
    case u16
    /// An unsigned integer of 32 bits.
    case u32
    /// An unsigned integer of 64 bits.
    case u64
    /// A signed integer of 8 bits.
    case s8
    /// A signed integer of 16 bits.
    case s16
    /// A signed integer of 32 bits.
    case s32
    /// A signed integer of 64 bits.
    case s64
    /// An IEEE-754 single-precision float (NaNs are canonicalized when lifted or lowered).
    case f32
    /// An IEEE-754 double-precision float (NaNs are canonicalized when lifted or lowered).
    case f64
    /// A UTF-8 string, passed as (pointer, byte length).
    case string
    /// A list, passed as (pointer, element count).
    case list(CanonicalType)
    /// A record (or tuple): its fields in declaration order.
    case record([CanonicalType])
    /// A variant: one entry per case in declaration order, `nil` for a case without a payload.
    case variant([CanonicalType?])

    /// A WIT `enum` with `caseCount` cases: a variant whose cases carry nothing.
    package static func enumeration(_ caseCount: Int) -> CanonicalType {
        .variant(Array(repeating: nil, count: caseCount))
    }

    /// A WIT `option<T>`: `none` is case 0, `some` is case 1.
    package static func option(_ some: CanonicalType) -> CanonicalType {
        .variant([nil, some])
    }

    /// A WIT `result<T, E>`: `ok` is case 0, `error` is case 1; `nil` stands for `_`.
    package static func result(ok: CanonicalType?, error: CanonicalType?) -> CanonicalType {
        .variant([ok, error])
    }

    /// The alignment in linear memory, in bytes (1, 2, 4 or 8).
    package var alignment: Int { layout.alignment }

    /// The size in linear memory, in bytes, including trailing padding to ``alignment``.
    package var size: Int { layout.size }

    /// Size and alignment computed together in one walk of the type. The lifter and lowerer use a
    /// ``CanonicalLayout``, which keeps them (and every nested type's) instead of walking again.
    private var layout: (size: Int, alignment: Int) {
        switch self {
        case .bool, .u8, .s8: return (1, 1)
        case .u16, .s16: return (2, 2)
        case .u32, .s32, .f32: return (4, 4)
        case .string, .list: return (8, 4)
        case .u64, .s64, .f64: return (8, 8)
        case .record(let fields):
            let record = Self.recordLayout(fields.lazy.map(\.layout))
            return (record.size, record.alignment)
        case .variant(let cases):
            let variant = Self.variantLayout(caseCount: cases.count, payloads: cases.lazy.compactMap { $0?.layout })
            return (variant.size, variant.alignment)
        }
    }

    /// The spec's record layout from its fields' sizes and alignments: each field's offset, then the
    /// record's size (padded to its alignment) and alignment. ``CanonicalLayout`` uses it too, so the
    /// two cannot disagree.
    static func recordLayout(
        _ fields: some Sequence<(size: Int, alignment: Int)>
    ) -> (offsets: [Int], size: Int, alignment: Int) {
        var offsets: [Int] = []
        var size = 0
        var alignment = 1
        for field in fields {
            let offset = alignUp(size, to: field.alignment)
            offsets.append(offset)
            size = offset + field.size
            alignment = max(alignment, field.alignment)
        }
        return (offsets, alignUp(size, to: alignment), alignment)
    }

    /// The spec's variant layout from its case count and its payloads' sizes and alignments: the
    /// discriminant's size, the payload's offset (the discriminant rounded up to the largest case
    /// alignment), and the variant's size and alignment.
    static func variantLayout(
        caseCount: Int, payloads: some Sequence<(size: Int, alignment: Int)>
    ) -> (discriminantSize: Int, payloadOffset: Int, size: Int, alignment: Int) {
        var payloadSize = 0
        var caseAlignment = 1
        for payload in payloads {
            payloadSize = max(payloadSize, payload.size)
            caseAlignment = max(caseAlignment, payload.alignment)
        }
        let discriminant = discriminantSize(caseCount)
        let alignment = max(discriminant, caseAlignment)
        let payloadOffset = alignUp(discriminant, to: caseAlignment)
        return (discriminant, payloadOffset, alignUp(payloadOffset + payloadSize, to: alignment), alignment)
    }

    /// For a variant, the offset of the payload from the start of the value: the discriminant's size
    /// rounded up to the largest case alignment. 0 for other types.
    package var payloadOffset: Int {
        guard case .variant(let cases) = self else { return 0 }
        return Self.variantLayout(caseCount: cases.count, payloads: cases.lazy.compactMap { $0?.layout }).payloadOffset
    }

    /// The core values this type flattens to when passed as parameters or results.
    package var flatTypes: [WasmValueType] {
        switch self {
        case .bool, .u8, .u16, .u32, .s8, .s16, .s32: return [.i32]
        case .u64, .s64: return [.i64]
        case .f32: return [.f32]
        case .f64: return [.f64]
        case .string, .list: return [.i32, .i32]
        case .record(let fields): return fields.flatMap(\.flatTypes)
        case .variant(let cases):
            var joined: [WasmValueType] = []
            for case let payload? in cases {
                for (index, type) in payload.flatTypes.enumerated() {
                    if index < joined.count {
                        joined[index] = Self.join(joined[index], type)
                    } else {
                        joined.append(type)
                    }
                }
            }
            return [.i32] + joined
        }
    }

    /// The number of core values ``flatTypes`` has, computed without building the array.
    package var flatCount: Int {
        switch self {
        case .bool, .u8, .u16, .u32, .s8, .s16, .s32, .u64, .s64, .f32, .f64: 1
        case .string, .list: 2
        case .record(let fields): fields.reduce(0) { $0 + $1.flatCount }
        case .variant(let cases): 1 + cases.reduce(0) { max($0, $1?.flatCount ?? 0) }
        }
    }

    /// The WIT-like spelling, e.g. `list<u8>`, `enum<4 cases>` or `variant<_, record<u8, string>>`, for messages.
    package var description: String {
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
        case .list(let element): "list<\(element)>"
        case .record(let fields): "record<\(fields.map(\.description).joined(separator: ", "))>"
        case .variant(let cases) where cases.allSatisfy({ $0 == nil }): "enum<\(cases.count) cases>"
        case .variant(let cases): "variant<\(cases.map { $0?.description ?? "_" }.joined(separator: ", "))>"
        }
    }

    /// The discriminant's size in bytes for a variant of `caseCount` cases (the spec's `discriminant_type`).
    static func discriminantSize(_ caseCount: Int) -> Int {
        switch caseCount {
        case ...256: 1
        case ...65536: 2
        default: 4
        }
    }

    /// The spec's `join`: the core type that can carry either of two cases' flat values.
    private static func join(_ a: WasmValueType, _ b: WasmValueType) -> WasmValueType {
        if a == b { return a }
        if (a == .i32 && b == .f32) || (a == .f32 && b == .i32) { return .i32 }
        return .i64
    }
}

/// Rounds `value` up to a multiple of `alignment` (a power of two).
func alignUp(_ value: Int, to alignment: Int) -> Int {
    (value + alignment - 1) & ~(alignment - 1)
}
