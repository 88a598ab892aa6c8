// Fuzzes canonical-ABI lifting, what a host import does with a hostile guest's arguments: a type drawn from the
// input, core values or a pointer drawn from the input, and the rest of the input as the guest's linear memory.
// A lift must end in a value or a GuestMemoryError / CanonicalLimitExceeded, never a trap or an out-of-bounds
// read, and a lifted value must survive lowering (storing back through `cabi_realloc`) and lifting again.
//
// Input: a type (see `TypeReader.type`), one mode byte, two budget bytes, a 4-byte pointer, then (flat mode) 8 bytes
// per core value; everything after is memory.
import PeonABI
import PeonEngine
import FuzzReplay

/// A guest that is nothing but linear memory, with a bump `cabi_realloc` that grows it.
final class MemoryGuest: GuestAccess {
    var memory: [UInt8]
    private var next: Int

    init(_ memory: [UInt8]) {
        self.memory = memory
        next = memory.count
    }

    var memorySize: Int { memory.count }

    func withMemory<R>(at offset: UInt32, count: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try checkRange(offset, count)
        return try memory.withUnsafeBytes {
            try body(UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + Int(count)]))
        }
    }

    func withMutableMemory<R>(
        at offset: UInt32, count: UInt32, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        try checkRange(offset, count)
        return try memory.withUnsafeMutableBytes {
            try body(UnsafeMutableRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + Int(count)]))
        }
    }

    func callExport(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        guard name == CanonicalLowerer.reallocExport, arguments.count == 4,
              let alignment = arguments[2].i32, let size = arguments[3].i32, alignment > 0 else {
            throw EngineError(.missingExport, "no export \(name) of that shape")
        }
        let start = (next + Int(alignment) - 1) / Int(alignment) * Int(alignment)
        guard start + Int(size) <= 1 << 28 else { throw GuestMemoryError("the fuzz guest's memory is full") }
        next = start + Int(size)
        if next > memory.count { memory += [UInt8](repeating: 0, count: next - memory.count) }
        return [.i32(UInt32(start))]
    }

    func hasExport(_ name: String) -> Bool { name == CanonicalLowerer.reallocExport }
}

/// Reads the input front to back; past the end every read is 0.
struct TypeReader {
    var bytes: ArraySlice<UInt8>
    /// How many more type nodes may be made (bounds the type's size whatever the input).
    var nodesLeft = 48

    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }

    mutating func uint32() -> UInt32 {
        (0..<4).reduce(0) { value, shift in value | UInt32(byte()) << (8 * UInt32(shift)) }
    }

    mutating func uint64() -> UInt64 { UInt64(uint32()) | UInt64(uint32()) << 32 }

    /// A type of at most `depth` levels of nesting, from one byte per node.
    mutating func type(depth: Int = 5) -> CanonicalType {
        let tag = byte()
        nodesLeft -= 1
        let leaf = depth == 0 || nodesLeft <= 0
        switch tag % 16 {
        case 0: return .bool
        case 1: return .u8
        case 2: return .u16
        case 3: return .u32
        case 4: return .u64
        case 5: return .s8
        case 6: return .s16
        case 7: return .s32
        case 8: return .s64
        case 9: return .f32
        case 10: return .f64
        case 11: return .string
        case 12: return leaf ? .u8 : .list(type(depth: depth - 1))
        case 13:
            if leaf { return .record([]) }
            return .record((0..<Int(tag >> 4) % 6).map { _ in type(depth: depth - 1) })
        case 14:
            if leaf { return .enumeration(0) }
            return .variant((0..<Int(tag >> 4) % 5).map { _ in byte() % 3 == 0 ? nil : type(depth: depth - 1) })
        default:
            // Enumerations whose discriminant is 1, 2 or 4 bytes wide, at and around the edges.
            return .enumeration([0, 1, 2, 255, 256, 257, 65_536, 65_537][Int(tag >> 4) % 8])
        }
    }
}

/// libFuzzer's entry point: one lift per call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLift(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    var reader = TypeReader(bytes: Array(UnsafeRawBufferPointer(start: data, count: size))[...])
    let type = reader.type()
    let mode = reader.byte()
    let limits = CanonicalLimits(maxBytes: 1 << Int(reader.byte() % 25), maxElements: 1 << Int(reader.byte() % 17))
    let pointer = reader.uint32()
    var core: [WasmValue] = []
    if mode & 1 == 1 {
        // Flat mode: core values of the type's flat types, or (mode bit 2) of types drawn from the input.
        let flatTypes = mode & 2 == 0 ? type.flatTypes
            : (0..<Int(reader.byte() % 8)).map { _ in [WasmValueType.i32, .i64, .f32, .f64][Int(reader.byte() % 4)] }
        for flatType in flatTypes {
            switch flatType {
            case .i32: core.append(.i32(reader.uint32()))
            case .f32: core.append(.f32(reader.uint32()))
            case .i64: core.append(.i64(reader.uint64()))
            case .f64: core.append(.f64(reader.uint64()))
            case .other: return 0
            }
        }
    }
    let guest = MemoryGuest(Array(reader.bytes))

    var lifter = CanonicalLifter(guest: guest, limits: limits)
    let value: CanonicalValue
    do {
        value = mode & 1 == 1 ? try lifter.liftFlat([type], from: core)[0] : try lifter.load(type, at: pointer)
    } catch is GuestMemoryError {
        return 0
    } catch is CanonicalLimitExceeded {
        return 0
    } catch {
        preconditionFailure("lifting threw something other than a guest or limit error: \(error)")
    }

    // Round trip: store the value in fresh guest memory and lift it again under the same budget.
    let lowerer = CanonicalLowerer(guest: guest)
    let again: CanonicalValue
    do {
        let place = try lowerer.allocate(byteCount: type.size, alignment: type.alignment)
        try lowerer.store(value, as: type, at: place)
        var relifter = CanonicalLifter(guest: guest, limits: limits)
        again = try relifter.load(type, at: place)
    } catch let error as GuestMemoryError where error.message == "the fuzz guest's memory is full" {
        return 0
    } catch {
        preconditionFailure("a lifted \(type) value could not be stored and lifted again: \(error)")
    }
    // Compared as text: a (canonical) NaN is not == to itself but prints the same.
    precondition(String(describing: again) == String(describing: value), "\(type) changed in a lower/lift round trip")
    return 0
}

#if !PEON_LIBFUZZER
/// Without libFuzzer (the package's ordinary build): runs the files or folders named on the command line through
/// ``fuzzLift(_:_:)`` once each.
@main enum Replay {
    static func main() {
        replayInputs(through: fuzzLift)
    }
}
#endif
