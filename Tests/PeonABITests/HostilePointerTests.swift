import PeonABI
import PeonEngine
import PeonTestSupport
import Testing

/// Everything a guest hands the host is an attack surface: pointers and lengths that wrap around
/// 4 GiB, point past memory, are misaligned, claim gigabytes, alias one buffer many times, carry
/// invalid UTF-8 or a discriminant with no case; an allocator that returns a block outside memory.
/// Each must end as a ``GuestMemoryError`` (or ``CanonicalLimitExceeded`` for a value merely too big),
/// never a crash and never an absurd allocation.
@Suite struct HostilePointerTests {
    static let error = CanonicalType.record([.enumeration(6), .string])
    static let header = CanonicalType.record([.string, .string])

    @Test(arguments: [
        (UInt32(0xFFFF_FFF0), UInt32(32)),  // pointer + length wraps past 4 GiB
        (UInt32(65530), UInt32(7)),  // runs one byte past the end
        (UInt32(0), UInt32(0xFFFF_FFFF)),  // claims 4 GiB
        (UInt32(65537), UInt32(0)),  // an empty string that starts past the end
    ])
    func aStringOutsideMemoryIsAGuestError(pointer: UInt32, count: UInt32) {
        let guest = FakeGuest()
        var lifter = CanonicalLifter(guest: guest)
        #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.string], from: [.i32(pointer), .i32(count)])
        }
    }

    @Test func anEmptyStringAtTheEndOfMemoryIsFine() throws {
        var lifter = CanonicalLifter(guest: FakeGuest())
        #expect(try lifter.liftFlat([.string], from: [.i32(65536), .i32(0)]) == [.string("")])
    }

    @Test func invalidUTF8IsAGuestErrorNamingTheString() {
        let guest = FakeGuest()
        guest.poke([0x66, 0xC3, 0x28], at: 16)  // "f" then a broken two-byte sequence
        var lifter = CanonicalLifter(guest: guest)
        let error = #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.string], from: [.i32(16), .i32(3)])
        }
        #expect(error?.message.contains("UTF-8") == true)
    }

    @Test func aMisalignedListPointerIsAGuestError() {
        var lifter = CanonicalLifter(guest: FakeGuest())
        let error = #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.list(.u64)], from: [.i32(12), .i32(1)])
        }
        #expect(error?.message.contains("8-byte aligned") == true)
    }

    @Test func aListWhoseByteLengthOverflows32BitsIsAGuestError() {
        var lifter = CanonicalLifter(guest: FakeGuest())
        // 0x2000_0001 elements of 8 bytes is just over 4 GiB: must not wrap to 8 bytes.
        #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.list(.string)], from: [.i32(0), .i32(0x2000_0001)])
        }
    }

    @Test func aThreeGibibyteByteListIsRefusedWithoutAllocating() {
        var lifter = CanonicalLifter(guest: FakeGuest())
        #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.list(.u8)], from: [.i32(0), .i32(3 << 30)])
        }
    }

    @Test func aByteListInsideMemoryButOverTheBudgetIsALimitError() {
        let guest = FakeGuest(pages: 4)
        var lifter = CanonicalLifter(guest: guest, limits: CanonicalLimits(maxBytes: 1000))
        #expect(throws: CanonicalLimitExceeded.self) {
            _ = try lifter.liftFlat([.list(.u8)], from: [.i32(0), .i32(1001)])
        }
        var roomy = CanonicalLifter(guest: guest, limits: CanonicalLimits(maxBytes: 1001))
        #expect(throws: Never.self) { _ = try roomy.liftFlat([.list(.u8)], from: [.i32(0), .i32(1001)]) }
    }

    /// 4096 headers in 32 KiB of memory that all point at the same 4 KiB string: 32 MiB once copied.
    @Test func aliasedElementsAreChargedEachTimeSoTheyCannotAmplify() {
        let guest = FakeGuest(pages: 1)
        let stringAt = 0x100
        guest.poke([UInt8](repeating: 0x61, count: 4096), at: stringAt)
        let listAt = 0x2000
        for index in 0..<4096 {
            let entry = listAt + index * 16  // a header is two strings: 16 bytes
            guard entry + 16 <= guest.memory.count else { break }
            guest.poke32(UInt32(stringAt), at: entry)
            guest.poke32(4096, at: entry + 4)
            guest.poke32(UInt32(stringAt), at: entry + 8)
            guest.poke32(4096, at: entry + 12)
        }
        let count = UInt32((guest.memory.count - listAt) / 16)
        var lifter = CanonicalLifter(guest: guest, limits: CanonicalLimits(maxBytes: 1 << 20))
        let error = #expect(throws: CanonicalLimitExceeded.self) {
            _ = try lifter.liftFlat([.list(Self.header)], from: [.i32(UInt32(listAt)), .i32(count)])
        }
        #expect(error?.message.contains("1048576-byte limit") == true)
    }

    @Test func listElementCountsAreCappedAcrossNestedLists() {
        let guest = FakeGuest(pages: 2)
        // An outer list of 300 inner lists, each (0x1000, 300) of u32: 90 000 elements in total.
        for index in 0..<300 {
            guest.poke32(0x1000, at: 0x8000 + index * 8)
            guest.poke32(300, at: 0x8000 + index * 8 + 4)
        }
        var lifter = CanonicalLifter(guest: guest, limits: CanonicalLimits(maxElements: 50_000))
        #expect(throws: CanonicalLimitExceeded.self) {
            _ = try lifter.liftFlat([.list(.list(.u32))], from: [.i32(0x8000), .i32(300)])
        }
    }

    @Test func aDiscriminantWithNoCaseIsAGuestError() {
        var lifter = CanonicalLifter(guest: FakeGuest())
        #expect(throws: GuestMemoryError.self) {
            _ = try lifter.liftFlat([.enumeration(4)], from: [.i32(4)])
        }
        let guest = FakeGuest()
        guest.poke([7], at: 64)
        var loader = CanonicalLifter(guest: guest)
        #expect(throws: GuestMemoryError.self) { _ = try loader.load(.result(ok: .u64, error: Self.error), at: 64) }
    }

    @Test func coreValuesOfTheWrongTypeAreAGuestError() {
        var lifter = CanonicalLifter(guest: FakeGuest())
        #expect(throws: GuestMemoryError.self) { _ = try lifter.liftFlat([.string], from: [.i32(0)]) }
        #expect(throws: GuestMemoryError.self) { _ = try lifter.liftFlat([.u64], from: [.i32(0)]) }
    }

    // MARK: Return areas and the allocator

    @Test func aMisalignedReturnAreaIsRefusedBeforeTheHostActs() {
        let guest = FakeGuest()
        let execute = CanonicalFunction([.string], result: .result(ok: .u64, error: Self.error))
        let error = #expect(throws: GuestMemoryError.self) {
            _ = try execute.liftImportArguments([.i32(0), .i32(0), .i32(0x104)], guest: guest)
        }
        #expect(error?.message.contains("8-byte aligned") == true)
    }

    @Test func aReturnAreaRunningPastMemoryIsRefused() {
        let guest = FakeGuest()
        let read = CanonicalFunction([.string], result: .result(ok: .list(.u8), error: Self.error))
        #expect(throws: GuestMemoryError.self) {
            _ = try read.liftImportArguments([.i32(0), .i32(0), .i32(65536 - 8)], guest: guest)
        }
    }

    @Test(arguments: [FakeGuest.Allocator.fixed(65530), .fixed(0xFFFF_FFF8), .misaligned, .noResult])
    func anAllocatorReturningAnUnusableBlockIsAGuestError(allocator: FakeGuest.Allocator) {
        let guest = FakeGuest()
        guest.allocator = allocator
        let lowerer = CanonicalLowerer(guest: guest)
        #expect(throws: GuestMemoryError.self) {
            try lowerer.store(.list([.string("a"), .string("b")]), as: .list(.string), at: 0x100)
        }
    }

    @Test func aGuestWithoutReallocCannotReceiveStrings() {
        let guest = FakeGuest()
        guest.exportsRealloc = false
        let error = #expect(throws: GuestMemoryError.self) {
            try CanonicalLowerer(guest: guest).store(.string("hi"), as: .string, at: 0x100)
        }
        #expect(error?.message.contains("cabi_realloc") == true)
    }

    /// The lowerer no longer asks whether `cabi_realloc` exists before each allocation; it asks only when the
    /// engine refuses the call as a missing export. A `cabi_realloc` that exists with the wrong type must still be
    /// reported as the engine reports it, not as a missing export.
    @Test func aReallocOfTheWrongTypeIsReportedAsTheEngineSaysNotAsMissing() {
        let guest = FakeGuest()
        guest.allocator = .wrongType
        let error = #expect(throws: EngineError.self) {
            try CanonicalLowerer(guest: guest).store(.string("hi"), as: .string, at: 0x100)
        }
        #expect(error?.kind == .missingExport)
        #expect(error?.message.contains("has type") == true)
        #expect(guest.allocations.isEmpty)
    }

    /// Lowering a result with several strings calls `cabi_realloc` once per string and never asks the guest
    /// whether it exports it (an engine answers that with a lookup by name).
    @Test func aGuestWithReallocIsNotAskedForItOnEachAllocation() throws {
        let guest = FakeGuest()
        try CanonicalLowerer(guest: guest).store(.list([.string("a"), .string("bc"), .string("")]), as: .list(.string), at: 0x100)
        #expect(guest.allocations.count == 4)
        #expect(guest.exportQueries == 0)
    }

    @Test func memoryGrownByTheAllocatorIsUsable() throws {
        let guest = FakeGuest(pages: 1, heapStart: 65000)
        let big = [UInt8](repeating: 7, count: 200_000)
        try CanonicalLowerer(guest: guest).store(.bytes(big), as: .list(.u8), at: 0x100)
        #expect(guest.memorySize > 65536)
        #expect(guest.peekBytes(pairAt: 0x100) == big)
    }

    @Test func aHostValueOfTheWrongShapeIsAMismatchNotAWrite() {
        let guest = FakeGuest()
        let before = guest.memory
        #expect(throws: CanonicalValueMismatch.self) {
            try CanonicalLowerer(guest: guest).store(.string("x"), as: .u32, at: 0x100)
        }
        #expect(throws: CanonicalValueMismatch.self) {
            try CanonicalLowerer(guest: guest).store(.variant(case: 1, payload: nil), as: .option(.u8), at: 0x100)
        }
        #expect(guest.memory == before)
    }
}

extension FakeGuest.Allocator: CustomTestStringConvertible {
    var testDescription: String {
        switch self {
        case .bump: "bump"
        case .fixed(let pointer): "fixed 0x\(String(pointer, radix: 16))"
        case .misaligned: "misaligned"
        case .noResult: "no result"
        case .wrongType: "wrong type"
        }
    }
}
