package import PeonEngine

/// Reads component values out of a guest: from its core arguments (flat lifting) and from its linear
/// memory (loading), following the canonical ABI.
///
/// Every pointer the guest supplies is checked for alignment and against the memory's current size
/// before it is used, strings must be valid UTF-8, discriminants must name a case, and everything
/// copied is charged against ``CanonicalLimits``. A fault is a ``GuestMemoryError`` naming what was
/// wrong; an over-budget value is a ``CanonicalLimitExceeded``. Neither touches host memory.
///
/// A lifter is for one call: its budget is spent as it lifts.
///
/// ```swift
/// var lifter = CanonicalLifter(guest: guest)
/// let path = try lifter.liftFlat([.string], from: [.i32(ptr), .i32(len)])[0]
/// ```
package struct CanonicalLifter {
    /// The guest whose memory is read.
    package let guest: any GuestAccess
    /// The budgets this lifter started with.
    package let limits: CanonicalLimits
    private var bytesLeft: Int
    private var elementsLeft: Int

    /// Creates a lifter with a fresh budget.
    package init(guest: any GuestAccess, limits: CanonicalLimits = CanonicalLimits()) {
        self.guest = guest
        self.limits = limits
        self.bytesLeft = limits.maxBytes
        self.elementsLeft = limits.maxElements
    }

    // MARK: Flat lifting

    /// Lifts values of `types` from core values, e.g. a host import's arguments.
    ///
    /// `values` must have exactly the types `types` flatten to (the engine guarantees this for a host
    /// function's arguments); anything else is a ``GuestMemoryError``. This does not apply the
    /// `MAX_FLAT_PARAMS` rule; ``CanonicalFunction`` does.
    package mutating func liftFlat(_ types: [CanonicalType], from values: [WasmValue]) throws -> [CanonicalValue] {
        let expected = types.flatMap(\.flatTypes)
        guard values.map(\.type) == expected else {
            throw GuestMemoryError(
                "core values (\(values.map(\.type.description).joined(separator: ", "))) do not match the flat types "
                    + "(\(expected.map(\.description).joined(separator: ", "))) of \(types)")
        }
        return try liftFlat(types.map(CanonicalLayout.init), fromChecked: values[...])
    }

    /// ``liftFlat(_:from:)`` without its check, for laid-out types: for values the caller has already checked
    /// against the types' flat types (``CanonicalFunction`` checks a host import's arguments against its
    /// signature, worked out once). Nothing here checks them again: values are read by position, so only that
    /// check makes them safe.
    mutating func liftFlat(_ layouts: [CanonicalLayout], fromChecked values: ArraySlice<WasmValue>) throws -> [CanonicalValue] {
        var cursor = FlatCursor(values)
        var lifted: [CanonicalValue] = []
        lifted.reserveCapacity(layouts.count)
        for layout in layouts {
            lifted.append(try liftFlat(layout, from: &cursor))
        }
        return lifted
    }

    private mutating func liftFlat(_ layout: CanonicalLayout, from cursor: inout FlatCursor) throws -> CanonicalValue {
        switch layout.shape {
        case .bool: return .bool(try cursor.next32() != 0)
        case .u8: return .u8(UInt8(truncatingIfNeeded: try cursor.next32()))
        case .u16: return .u16(UInt16(truncatingIfNeeded: try cursor.next32()))
        case .u32: return .u32(try cursor.next32())
        case .u64: return .u64(try cursor.next64())
        case .s8: return .s8(Int8(truncatingIfNeeded: try cursor.next32()))
        case .s16: return .s16(Int16(truncatingIfNeeded: try cursor.next32()))
        case .s32: return .s32(Int32(bitPattern: try cursor.next32()))
        case .s64: return .s64(Int64(bitPattern: try cursor.next64()))
        case .f32: return .f32(canonicalized(Float(bitPattern: try cursor.next32())))
        case .f64: return .f64(canonicalized(Double(bitPattern: try cursor.next64())))
        case .string:
            let pointer = try cursor.next32()
            let count = try cursor.next32()
            return .string(try liftString(at: pointer, byteCount: count))
        case .list(let element):
            let pointer = try cursor.next32()
            let count = try cursor.next32()
            return try liftList(of: element, at: pointer, count: count)
        case .record(let fields):
            var values: [CanonicalValue] = []
            values.reserveCapacity(fields.count)
            for field in fields {
                values.append(try liftFlat(field.layout, from: &cursor))
            }
            return .record(values)
        case .variant(_, _, let cases):
            let index = try cursor.next32()
            guard index < cases.count else {
                throw GuestMemoryError("variant discriminant \(index) is out of range for \(cases.count) cases of \(layout.type)")
            }
            // The payload's flat values are the joined slots after the discriminant; a case uses a
            // prefix of them (reinterpreted to its own types) and the rest are skipped.
            let slots = layout.flatTypes.count - 1
            var payloadCursor = try cursor.take(slots)
            let payload = try cases[Int(index)].map { try liftFlat($0, from: &payloadCursor) }
            return .variant(case: index, payload: payload)
        }
    }

    // MARK: Loading from memory

    /// Loads a value of `type` stored at `pointer`, which must be aligned to the type's alignment and
    /// lie, with the whole value, inside memory (a return area or an argument tuple).
    package mutating func load(_ type: CanonicalType, at pointer: UInt32) throws -> CanonicalValue {
        try load(CanonicalLayout(type), at: pointer)
    }

    /// ``load(_:at:)`` with the type already laid out.
    package mutating func load(_ layout: CanonicalLayout, at pointer: UInt32) throws -> CanonicalValue {
        try checkPlacement(of: layout, at: pointer, what: "value")
        return try loadChecked(layout, at: pointer)
    }

    /// Checks that a value laid out as `layout` at `pointer` is aligned and lies inside memory.
    func checkPlacement(of layout: CanonicalLayout, at pointer: UInt32, what: String) throws {
        try CanonicalLifter.checkPlacement(of: layout, at: pointer, what: what, in: guest)
    }

    /// ``checkPlacement(of:at:what:)`` for any guest.
    static func checkPlacement(of layout: CanonicalLayout, at pointer: UInt32, what: String, in guest: any GuestAccess) throws {
        guard Int(pointer) % layout.alignment == 0 else {
            throw GuestMemoryError(
                "\(what) pointer 0x\(String(pointer, radix: 16)) is not \(layout.alignment)-byte aligned as \(layout.type) requires")
        }
        guard let count = UInt32(exactly: layout.size) else {
            throw GuestMemoryError("a \(layout.type) value does not fit a 32-bit memory")
        }
        try guest.checkRange(pointer, count)
    }

    /// Loads a value whose placement has been checked (alignment; bounds are checked again by every read).
    private mutating func loadChecked(_ layout: CanonicalLayout, at pointer: UInt32) throws -> CanonicalValue {
        switch layout.shape {
        case .bool: return .bool(try loadInteger(at: pointer, size: 1) != 0)
        case .u8: return .u8(UInt8(truncatingIfNeeded: try loadInteger(at: pointer, size: 1)))
        case .u16: return .u16(UInt16(truncatingIfNeeded: try loadInteger(at: pointer, size: 2)))
        case .u32: return .u32(UInt32(truncatingIfNeeded: try loadInteger(at: pointer, size: 4)))
        case .u64: return .u64(try loadInteger(at: pointer, size: 8))
        case .s8: return .s8(Int8(truncatingIfNeeded: try loadInteger(at: pointer, size: 1)))
        case .s16: return .s16(Int16(truncatingIfNeeded: try loadInteger(at: pointer, size: 2)))
        case .s32: return .s32(Int32(truncatingIfNeeded: try loadInteger(at: pointer, size: 4)))
        case .s64: return .s64(Int64(bitPattern: try loadInteger(at: pointer, size: 8)))
        case .f32:
            return .f32(canonicalized(Float(bitPattern: UInt32(truncatingIfNeeded: try loadInteger(at: pointer, size: 4)))))
        case .f64: return .f64(canonicalized(Double(bitPattern: try loadInteger(at: pointer, size: 8))))
        case .string:
            let (begin, count) = try loadPointerAndLength(at: pointer)
            return .string(try liftString(at: begin, byteCount: count))
        case .list(let element):
            let (begin, count) = try loadPointerAndLength(at: pointer)
            return try liftList(of: element, at: begin, count: count)
        case .record(let fields):
            var values: [CanonicalValue] = []
            values.reserveCapacity(fields.count)
            for field in fields {
                values.append(try loadChecked(field.layout, at: try advance(pointer, by: field.offset)))
            }
            return .record(values)
        case .variant(let discriminantSize, let payloadOffset, let cases):
            let index = UInt32(truncatingIfNeeded: try loadInteger(at: pointer, size: discriminantSize))
            guard index < cases.count else {
                throw GuestMemoryError(
                    "variant discriminant \(index) at 0x\(String(pointer, radix: 16)) is out of range for \(cases.count) cases of \(layout.type)")
            }
            let payloadPointer = try advance(pointer, by: payloadOffset)
            let payload = try cases[Int(index)].map { try loadChecked($0, at: payloadPointer) }
            return .variant(case: index, payload: payload)
        }
    }

    // MARK: Strings and lists

    /// Lifts a UTF-8 string of `byteCount` bytes at `pointer`, charging the byte budget.
    package mutating func liftString(at pointer: UInt32, byteCount: UInt32) throws -> String {
        try guest.checkRange(pointer, byteCount)
        try charge(bytes: Int(byteCount), what: "a string of \(byteCount) bytes")
        // Validated and copied straight out of guest memory: one copy, no intermediate array. ASCII is valid
        // UTF-8 as it is, and decoding it is the stdlib's cheap specialized path; anything else is validated
        // (and refused, never repaired, when it is not UTF-8).
        let string = try guest.withMemory(at: pointer, count: byteCount) { raw -> String? in
            let bytes = raw.assumingMemoryBound(to: UInt8.self)
            var high: UInt8 = 0
            for byte in bytes { high |= byte }
            return high < 0x80 ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
        }
        guard let string else {
            throw GuestMemoryError("guest string at 0x\(String(pointer, radix: 16)) (\(byteCount) bytes) is not valid UTF-8")
        }
        return string
    }

    /// Lifts a list of `count` elements of `element` at `pointer`, which must be aligned to the
    /// element's alignment. A `list<u8>` comes back as ``CanonicalValue/bytes(_:)``.
    package mutating func liftList(of element: CanonicalType, at pointer: UInt32, count: UInt32) throws -> CanonicalValue {
        try liftList(of: CanonicalLayout(element), at: pointer, count: count)
    }

    /// ``liftList(of:at:count:)`` with the element type already laid out.
    mutating func liftList(of layout: CanonicalLayout, at pointer: UInt32, count: UInt32) throws -> CanonicalValue {
        let element = layout.type
        let elementSize = layout.size
        guard Int(pointer) % layout.alignment == 0 else {
            throw GuestMemoryError(
                "list pointer 0x\(String(pointer, radix: 16)) is not \(layout.alignment)-byte aligned as list<\(element)> requires")
        }
        let byteLength = UInt64(count) * UInt64(elementSize)
        guard let byteCount = UInt32(exactly: byteLength) else {
            throw GuestMemoryError(
                "list<\(element)> of \(count) elements at 0x\(String(pointer, radix: 16)) is \(byteLength) bytes, larger than a 32-bit memory")
        }
        try guest.checkRange(pointer, byteCount)
        if case .u8 = layout.shape {
            try charge(bytes: Int(byteCount), what: "a list<u8> of \(byteCount) bytes")
            return .bytes(try guest.readBytes(at: pointer, count: byteCount))
        }
        try charge(bytes: Int(byteCount), what: "a list<\(element)> of \(byteCount) bytes")
        try charge(elements: Int(count), what: "a list<\(element)> of \(count) elements")
        var values: [CanonicalValue] = []
        values.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            values.append(try loadChecked(layout, at: try advance(pointer, by: index * elementSize)))
        }
        return .list(values)
    }

    // MARK: Budget and primitives

    private mutating func charge(bytes: Int, what: @autoclosure () -> String) throws(CanonicalLimitExceeded) {
        guard bytes <= bytesLeft else {
            throw CanonicalLimitExceeded(
                "\(what()) exceeds what is left of the \(limits.maxBytes)-byte limit on one call's arguments")
        }
        bytesLeft -= bytes
    }

    private mutating func charge(elements: Int, what: @autoclosure () -> String) throws(CanonicalLimitExceeded) {
        guard elements <= elementsLeft else {
            throw CanonicalLimitExceeded(
                "\(what()) exceeds what is left of the \(limits.maxElements)-element limit on one call's arguments")
        }
        elementsLeft -= elements
    }

    private func loadPointerAndLength(at pointer: UInt32) throws -> (UInt32, UInt32) {
        let begin = UInt32(truncatingIfNeeded: try loadInteger(at: pointer, size: 4))
        let count = UInt32(truncatingIfNeeded: try loadInteger(at: try advance(pointer, by: 4), size: 4))
        return (begin, count)
    }

    private func loadInteger(at pointer: UInt32, size: Int) throws -> UInt64 {
        try guest.withMemory(at: pointer, count: UInt32(size)) { bytes in
            var value: UInt64 = 0
            for index in (0..<size).reversed() {
                value = value << 8 | UInt64(bytes[index])
            }
            return value
        }
    }
}

/// `pointer + offset` as a guest address, or a ``GuestMemoryError`` when it passes 4 GiB.
func advance(_ pointer: UInt32, by offset: Int) throws(GuestMemoryError) -> UInt32 {
    guard let address = UInt32(exactly: UInt64(pointer) + UInt64(offset)) else {
        throw GuestMemoryError("guest address 0x\(String(pointer, radix: 16)) + \(offset) passes the end of a 32-bit memory")
    }
    return address
}

/// The spec's canonical NaN for `f32`, so a NaN payload cannot carry a side channel.
func canonicalized(_ value: Float) -> Float { value.isNaN ? Float(bitPattern: 0x7fc0_0000) : value }
/// The spec's canonical NaN for `f64`.
func canonicalized(_ value: Double) -> Double { value.isNaN ? Double(bitPattern: 0x7ff8_0000_0000_0000) : value }

/// Reads core values in order, reinterpreting each to the width the reader asks for (the spec's
/// `CoerceValueIter` for variant payloads: a joined `i64` slot read as `i32` keeps its low bits).
struct FlatCursor {
    private var values: ArraySlice<WasmValue>

    init(_ values: ArraySlice<WasmValue>) { self.values = values }

    private mutating func next() throws(GuestMemoryError) -> WasmValue {
        guard let value = values.popFirst() else { throw GuestMemoryError("too few core values for the flattened type") }
        return value
    }

    /// The next value's low 32 bits (an `i32` or `f32`).
    mutating func next32() throws(GuestMemoryError) -> UInt32 {
        switch try next() {
        case .i32(let bits), .f32(let bits): bits
        case .i64(let bits), .f64(let bits): UInt32(truncatingIfNeeded: bits)
        }
    }

    /// The next value's 64 bits (an `i64` or `f64`).
    mutating func next64() throws(GuestMemoryError) -> UInt64 {
        switch try next() {
        case .i32(let bits), .f32(let bits): UInt64(bits)
        case .i64(let bits), .f64(let bits): bits
        }
    }

    /// Splits off the next `count` values as their own cursor.
    mutating func take(_ count: Int) throws(GuestMemoryError) -> FlatCursor {
        guard values.count >= count else { throw GuestMemoryError("too few core values for the flattened type") }
        let taken = values.prefix(count)
        values = values.dropFirst(count)
        return FlatCursor(taken)
    }
}
