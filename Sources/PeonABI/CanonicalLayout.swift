package import PeonEngine

/// A ``CanonicalType`` with everything the canonical ABI derives from it worked out once: size,
/// alignment, each record field's offset, each variant's discriminant size and payload offset, and the
/// flat core types.
///
/// The lifter and lowerer walk a layout instead of the type, so lowering a host call's result does not
/// recompute the layout of every nested type on every call. ``CanonicalFunction`` builds the layouts of
/// its parameters and result once, when its type is set; a lowerer or lifter given a bare
/// ``CanonicalType`` builds one for that call. The numbers are the type's own (``CanonicalType/size``,
/// ``CanonicalType/alignment``, ``CanonicalType/payloadOffset``, ``CanonicalType/flatTypes``): both are
/// computed by the same rules in `CanonicalType`.
///
/// ```swift
/// let layout = CanonicalLayout(.result(ok: .list(.u8), error: .record([.enumeration(6), .string])))
/// layout.size       // 16
/// layout.alignment  // 4
/// ```
package final class CanonicalLayout: Sendable {
    /// The type laid out (for messages and equality checks).
    package let type: CanonicalType
    /// The size in linear memory, in bytes, including trailing padding.
    package let size: Int
    /// The alignment in linear memory, in bytes.
    package let alignment: Int
    /// The core types the type flattens to.
    package let flatTypes: [WasmValueType]
    /// What the lifter and lowerer dispatch on, with the nested layouts.
    let shape: Shape

    /// The type's shape with its nested layouts and offsets.
    enum Shape: Sendable {
        case bool, u8, u16, u32, u64, s8, s16, s32, s64, f32, f64, string
        /// A list of elements laid out as `element`.
        case list(element: CanonicalLayout)
        /// A record: each field with its offset from the record's start.
        case record(fields: [Field])
        /// A variant: the discriminant's size, the payload's offset, and each case's payload layout.
        case variant(discriminantSize: Int, payloadOffset: Int, cases: [CanonicalLayout?])
    }

    /// A record field: where it starts and how it is laid out.
    struct Field: Sendable {
        let offset: Int
        let layout: CanonicalLayout
    }

    /// Lays `type` out (one walk of the type).
    package init(_ type: CanonicalType) {
        self.type = type
        switch type {
        case .bool: (shape, size, alignment) = (.bool, 1, 1)
        case .u8: (shape, size, alignment) = (.u8, 1, 1)
        case .s8: (shape, size, alignment) = (.s8, 1, 1)
        case .u16: (shape, size, alignment) = (.u16, 2, 2)
        case .s16: (shape, size, alignment) = (.s16, 2, 2)
        case .u32: (shape, size, alignment) = (.u32, 4, 4)
        case .s32: (shape, size, alignment) = (.s32, 4, 4)
        case .f32: (shape, size, alignment) = (.f32, 4, 4)
        case .u64: (shape, size, alignment) = (.u64, 8, 8)
        case .s64: (shape, size, alignment) = (.s64, 8, 8)
        case .f64: (shape, size, alignment) = (.f64, 8, 8)
        case .string: (shape, size, alignment) = (.string, 8, 4)
        case .list(let element): (shape, size, alignment) = (.list(element: CanonicalLayout(element)), 8, 4)
        case .record(let fieldTypes):
            let layouts = fieldTypes.map(CanonicalLayout.init)
            let record = CanonicalType.recordLayout(layouts.lazy.map { ($0.size, $0.alignment) })
            shape = .record(fields: zip(record.offsets, layouts).map { Field(offset: $0, layout: $1) })
            (size, alignment) = (record.size, record.alignment)
        case .variant(let caseTypes):
            let layouts = caseTypes.map { $0.map(CanonicalLayout.init) }
            let variant = CanonicalType.variantLayout(
                caseCount: caseTypes.count, payloads: layouts.lazy.compactMap { $0.map { ($0.size, $0.alignment) } })
            shape = .variant(discriminantSize: variant.discriminantSize, payloadOffset: variant.payloadOffset, cases: layouts)
            (size, alignment) = (variant.size, variant.alignment)
        }
        flatTypes = type.flatTypes
    }
}
