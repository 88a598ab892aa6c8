package import PeonEngine

/// Writes component values into a guest: into its linear memory (storing) and as core values (flat
/// lowering), following the canonical ABI.
///
/// Strings and lists are placed in memory the guest allocates by calling its exported
/// `cabi_realloc(old_ptr, old_size, align, new_size) -> ptr`. The returned pointer is checked for
/// alignment and, with the requested size, against the memory's size *after* the call (the
/// allocator may have grown memory); every later write is checked again. A guest that returns a bad
/// pointer, or has no `cabi_realloc`, gets a ``GuestMemoryError``, never a host crash.
///
/// ```swift
/// let lowerer = CanonicalLowerer(guest: guest)
/// try lowerer.store(.ok(.bytes(contents)), as: .result(ok: .list(.u8), error: errorType), at: returnArea)
/// ```
package struct CanonicalLowerer {
    /// The guest written to.
    package let guest: any GuestAccess

    /// The export the canonical ABI allocates guest memory with.
    package static let reallocExport = "cabi_realloc"
    /// The largest string the canonical ABI can pass, `2^31 - 1` bytes.
    package static let maxStringBytes = Int(Int32.max)

    /// Creates a lowerer.
    package init(guest: any GuestAccess) {
        self.guest = guest
    }

    // MARK: Storing into memory

    /// Stores `value` as `type` at `pointer`, which must be aligned to the type's alignment and lie,
    /// with the whole value, inside memory (e.g. a return area the guest passed).
    package func store(_ value: CanonicalValue, as type: CanonicalType, at pointer: UInt32) throws {
        try store(value, as: CanonicalLayout(type), at: pointer)
    }

    /// ``store(_:as:at:)`` with the type already laid out (a function's result, laid out once by
    /// ``CanonicalFunction``).
    package func store(_ value: CanonicalValue, as layout: CanonicalLayout, at pointer: UInt32) throws {
        try CanonicalLifter.checkPlacement(of: layout, at: pointer, what: "result", in: guest)
        try storeChecked(value, as: layout, at: pointer)
    }

    private func storeChecked(_ value: CanonicalValue, as layout: CanonicalLayout, at pointer: UInt32) throws {
        switch (layout.shape, value) {
        case (.bool, .bool(let v)): try storeInteger(v ? 1 : 0, at: pointer, size: 1)
        case (.u8, .u8(let v)): try storeInteger(UInt64(v), at: pointer, size: 1)
        case (.u16, .u16(let v)): try storeInteger(UInt64(v), at: pointer, size: 2)
        case (.u32, .u32(let v)): try storeInteger(UInt64(v), at: pointer, size: 4)
        case (.u64, .u64(let v)): try storeInteger(v, at: pointer, size: 8)
        case (.s8, .s8(let v)): try storeInteger(UInt64(UInt8(bitPattern: v)), at: pointer, size: 1)
        case (.s16, .s16(let v)): try storeInteger(UInt64(UInt16(bitPattern: v)), at: pointer, size: 2)
        case (.s32, .s32(let v)): try storeInteger(UInt64(UInt32(bitPattern: v)), at: pointer, size: 4)
        case (.s64, .s64(let v)): try storeInteger(UInt64(bitPattern: v), at: pointer, size: 8)
        case (.f32, .f32(let v)): try storeInteger(UInt64(canonicalized(v).bitPattern), at: pointer, size: 4)
        case (.f64, .f64(let v)): try storeInteger(canonicalized(v).bitPattern, at: pointer, size: 8)
        case (.string, .string(let string)):
            let (begin, count) = try storeStringIntoRange(string)
            try storePointerAndLength(begin, count, at: pointer)
        case (.list(let element), _):
            let (begin, count) = try storeListIntoRange(value, of: element)
            try storePointerAndLength(begin, count, at: pointer)
        case (.record(let fields), .record(let values)) where fields.count == values.count:
            for index in fields.indices {
                let field = fields[index]
                try storeChecked(values[index], as: field.layout, at: try advance(pointer, by: field.offset))
            }
        case (.variant(let discriminantSize, let payloadOffset, let cases), .variant(let index, let payload)):
            let payloadLayout = try Self.payloadLayout(of: cases, index: index, payload: payload, type: layout.type)
            try storeInteger(UInt64(index), at: pointer, size: discriminantSize)
            if let payloadLayout, let payload {
                try storeChecked(payload, as: payloadLayout, at: try advance(pointer, by: payloadOffset))
            }
        default:
            throw CanonicalValueMismatch("cannot store a \(value.kindName) value as \(layout.type)")
        }
    }

    /// Allocates guest memory for the string and copies its UTF-8 bytes there, straight from the
    /// string's own storage. Returns the guest pointer and byte length.
    package func storeStringIntoRange(_ string: String) throws -> (pointer: UInt32, count: UInt32) {
        let utf8 = string.utf8
        let byteCount = utf8.count
        guard byteCount <= Self.maxStringBytes else {
            throw CanonicalLimitExceeded("a string of \(byteCount) bytes is longer than the canonical ABI's 2^31-1 bytes")
        }
        let begin = try allocate(byteCount: byteCount, alignment: 1)
        try Self.write(utf8, to: guest, at: begin)
        return (begin, UInt32(byteCount))
    }

    /// Allocates guest memory for the list and stores its elements there.
    /// Returns the guest pointer and element count.
    package func storeListIntoRange(_ value: CanonicalValue, of element: CanonicalType) throws -> (pointer: UInt32, count: UInt32) {
        try storeListIntoRange(value, of: CanonicalLayout(element))
    }

    /// ``storeListIntoRange(_:of:)`` with the element type already laid out.
    func storeListIntoRange(_ value: CanonicalValue, of element: CanonicalLayout) throws -> (pointer: UInt32, count: UInt32) {
        if case .u8 = element.shape, case .bytes(let bytes) = value {
            let begin = try allocate(byteCount: bytes.count, alignment: 1)
            try Self.write(bytes, to: guest, at: begin)
            return (begin, UInt32(bytes.count))
        }
        let elements = try value.asList()
        let elementSize = element.size
        let (byteCount, overflow) = elements.count.multipliedReportingOverflow(by: elementSize)
        guard !overflow, byteCount < 1 << 32 else {
            throw CanonicalLimitExceeded("a list<\(element.type)> of \(elements.count) elements does not fit a 32-bit memory")
        }
        let begin = try allocate(byteCount: byteCount, alignment: element.alignment)
        for (index, elementValue) in elements.enumerated() {
            try storeChecked(elementValue, as: element, at: try advance(begin, by: index * elementSize))
        }
        return (begin, UInt32(elements.count))
    }

    /// Copies contiguous bytes (an array, a native string's UTF-8) into guest memory at `offset` with
    /// one bounds check and one copy, element by element for anything else.
    private static func write(_ bytes: some Collection<UInt8>, to guest: any GuestAccess, at offset: UInt32) throws {
        guard let count = UInt32(exactly: bytes.count) else {
            throw GuestMemoryError("a write of \(bytes.count) bytes is larger than a 32-bit memory")
        }
        try guest.withMutableMemory(at: offset, count: count) { buffer in
            let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(source))
            }
            if copied == nil { _ = buffer.initializeMemory(as: UInt8.self, from: bytes) }
        }
    }

    /// Calls the guest's `cabi_realloc(0, 0, alignment, byteCount)` and checks that the block it
    /// returns is aligned and lies inside memory.
    ///
    /// Whether the guest exports `cabi_realloc` is only asked when the call fails as a missing export
    /// (it is asked of the engine anyway): a guest without one gets the same error as before, and a
    /// guest with one is not asked on every allocation.
    package func allocate(byteCount: Int, alignment: Int) throws -> UInt32 {
        guard let size = UInt32(exactly: byteCount) else {
            throw CanonicalLimitExceeded("an allocation of \(byteCount) bytes does not fit a 32-bit memory")
        }
        let results: [WasmValue]
        do {
            results = try guest.callExport(Self.reallocExport, [.i32(0), .i32(0), .i32(UInt32(alignment)), .i32(size)])
        } catch let error as EngineError where error.kind == .missingExport && !guest.hasExport(Self.reallocExport) {
            throw GuestMemoryError(
                "the guest does not export \(Self.reallocExport)(i32, i32, i32, i32) -> i32, which the host needs to return a string or list")
        }
        guard results.count == 1, case .i32(let pointer) = results[0] else {
            throw GuestMemoryError(
                "\(Self.reallocExport) returned (\(results.map(\.type.description).joined(separator: ", "))) instead of one i32")
        }
        guard Int(pointer) % alignment == 0 else {
            throw GuestMemoryError(
                "\(Self.reallocExport) returned 0x\(String(pointer, radix: 16)), which is not \(alignment)-byte aligned as requested")
        }
        do {
            try guest.checkRange(pointer, size)
        } catch {
            throw GuestMemoryError(
                "\(Self.reallocExport) returned a block of \(size) bytes at 0x\(String(pointer, radix: 16)) that is outside linear memory of \(guest.memorySize) bytes")
        }
        return pointer
    }

    // MARK: Flat lowering

    /// Lowers `value` of `type` to core values (allocating guest memory for strings and lists), e.g.
    /// the arguments of a call to a guest export.
    package func lowerFlat(_ value: CanonicalValue, as type: CanonicalType) throws -> [WasmValue] {
        try lowerFlat(value, as: CanonicalLayout(type))
    }

    /// ``lowerFlat(_:as:)`` with the type already laid out.
    package func lowerFlat(_ value: CanonicalValue, as layout: CanonicalLayout) throws -> [WasmValue] {
        var flat: [WasmValue] = []
        flat.reserveCapacity(layout.flatTypes.count)
        try lowerFlat(value, as: layout, into: &flat)
        return flat
    }

    /// Appends the core values of `value` to `flat`.
    private func lowerFlat(_ value: CanonicalValue, as layout: CanonicalLayout, into flat: inout [WasmValue]) throws {
        switch (layout.shape, value) {
        case (.bool, .bool(let v)): flat.append(.i32(v ? 1 : 0))
        case (.u8, .u8(let v)): flat.append(.i32(UInt32(v)))
        case (.u16, .u16(let v)): flat.append(.i32(UInt32(v)))
        case (.u32, .u32(let v)): flat.append(.i32(v))
        case (.u64, .u64(let v)): flat.append(.i64(v))
        case (.s8, .s8(let v)): flat.append(.i32(UInt32(bitPattern: Int32(v))))
        case (.s16, .s16(let v)): flat.append(.i32(UInt32(bitPattern: Int32(v))))
        case (.s32, .s32(let v)): flat.append(.i32(UInt32(bitPattern: v)))
        case (.s64, .s64(let v)): flat.append(.i64(UInt64(bitPattern: v)))
        case (.f32, .f32(let v)): flat.append(.f32(canonicalized(v).bitPattern))
        case (.f64, .f64(let v)): flat.append(.f64(canonicalized(v).bitPattern))
        case (.string, .string(let string)):
            let (begin, count) = try storeStringIntoRange(string)
            flat.append(.i32(begin))
            flat.append(.i32(count))
        case (.list(let element), _):
            let (begin, count) = try storeListIntoRange(value, of: element)
            flat.append(.i32(begin))
            flat.append(.i32(count))
        case (.record(let fields), .record(let values)) where fields.count == values.count:
            for index in fields.indices {
                try lowerFlat(values[index], as: fields[index].layout, into: &flat)
            }
        case (.variant(_, _, let cases), .variant(let index, let payload)):
            let payloadLayout = try Self.payloadLayout(of: cases, index: index, payload: payload, type: layout.type)
            flat.append(.i32(index))
            // The payload's own core values go into the joined slots, widened or reinterpreted to each
            // slot's type; the slots it does not use are zero.
            let first = flat.count
            if let payloadLayout, let payload {
                try lowerFlat(payload, as: payloadLayout, into: &flat)
            }
            let slots = layout.flatTypes.dropFirst()
            for (position, want) in zip(first..., slots) {
                if position < flat.count {
                    flat[position] = Self.coerce(flat[position], to: want)
                } else {
                    flat.append(Self.zero(want))
                }
            }
        default:
            throw CanonicalValueMismatch("cannot lower a \(value.kindName) value as \(layout.type)")
        }
    }

    // MARK: Helpers

    /// The payload layout of case `index`, checking the value has a payload exactly when the case does.
    private static func payloadLayout(
        of cases: [CanonicalLayout?], index: UInt32, payload: CanonicalValue?, type: CanonicalType
    ) throws(CanonicalValueMismatch) -> CanonicalLayout? {
        guard index < cases.count else {
            throw CanonicalValueMismatch("variant case \(index) is out of range for \(type)")
        }
        let payloadLayout = cases[Int(index)]
        guard (payloadLayout == nil) == (payload == nil) else {
            throw CanonicalValueMismatch("variant case \(index) of \(type) \(payloadLayout == nil ? "has no" : "needs a") payload")
        }
        return payloadLayout
    }

    /// Widens or reinterprets a payload's core value into a joined slot (the spec's `lower_flat_variant`).
    private static func coerce(_ value: WasmValue, to want: WasmValueType) -> WasmValue {
        switch (value, want) {
        case (.f32(let bits), .i32): .i32(bits)
        case (.i32(let bits), .i64), (.f32(let bits), .i64): .i64(UInt64(bits))
        case (.f64(let bits), .i64): .i64(bits)
        default: value
        }
    }

    private static func zero(_ type: WasmValueType) -> WasmValue {
        switch type {
        case .i64: .i64(0)
        case .f32: .f32(0)
        case .f64: .f64(0)
        default: .i32(0)
        }
    }

    /// Stores a string's or list's (pointer, length) pair: two little-endian `u32`s, one bounds check.
    private func storePointerAndLength(_ begin: UInt32, _ count: UInt32, at pointer: UInt32) throws {
        try guest.withMutableMemory(at: pointer, count: 8) { bytes in
            bytes.storeBytes(of: begin.littleEndian, as: UInt32.self)
            bytes.storeBytes(of: count.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    private func storeInteger(_ value: UInt64, at pointer: UInt32, size: Int) throws {
        try guest.withMutableMemory(at: pointer, count: UInt32(size)) { bytes in
            var remaining = value
            for index in 0..<size {
                bytes[index] = UInt8(truncatingIfNeeded: remaining)
                remaining >>= 8
            }
        }
    }
}
