import PeonABI
import PeonEngine
import PeonTestSupport
import Testing

/// What the host stores into guest memory, loaded back by the same rules, is the value it stored; the
/// bytes sit where the spec puts them; flat lowering and lifting of variants coerce joined slots both ways.
@Suite struct RoundTripTests {
    static let error = CanonicalType.record([.enumeration(6), .string])
    static let value = CanonicalType.variant([nil, .s64, .f64, .string, .list(.u8)])
    static let rows = CanonicalType.record([.list(.string), .list(.list(value))])

    static let samples: [(CanonicalType, CanonicalValue)] = [
        (.result(ok: .u64, error: error), .ok(.u64(0xDEAD_BEEF_0000_0001))),
        (.result(ok: .u64, error: error), .error(.record([.enumeration(3), .string("too many rows")]))),
        (.result(ok: rows, error: error), .ok(.record([
            .list([.string("id"), .string("naïve")]),
            .list([
                .list([.variant(case: 1, payload: .s64(-1)), .variant(case: 2, payload: .f64(0.5))]),
                .list([.variant(case: 0, payload: nil), .variant(case: 3, payload: .string("x")), .variant(case: 4, payload: .bytes([1, 2]))]),
                .list([]),
            ]),
        ]))),
        (.record([.u8, .u64, .s16, .bool, .f32, .s8, .u16, .s32, .u32]),
         .record([.u8(255), .u64(.max), .s16(-2), .bool(true), .f32(1.5), .s8(-128), .u16(65535), .s32(.min), .u32(7)])),
        (.option(.string), .variant(case: 1, payload: .string(""))),
        (.list(.option(.u64)), .list([.variant(case: 0, payload: nil), .variant(case: 1, payload: .u64(9))])),
    ]

    @Test func storedValuesLoadBackUnchanged() throws {
        for (type, value) in Self.samples {
            let guest = FakeGuest()
            let area: UInt32 = 0x100
            try CanonicalLowerer(guest: guest).store(value, as: type, at: area)
            var lifter = CanonicalLifter(guest: guest)
            #expect(try lifter.load(type, at: area) == value, "\(type)")
        }
    }

    @Test func aResultOfU64IsLaidOutAsTheSpecSays() throws {
        let guest = FakeGuest()
        let type = CanonicalType.result(ok: .u64, error: Self.error)
        try CanonicalLowerer(guest: guest).store(.ok(.u64(0x0102_0304_0506_0708)), as: type, at: 0x100)
        #expect(guest.memory[0x100] == 0)  // discriminant: ok
        #expect(guest.peek64(0x108) == 0x0102_0304_0506_0708)  // payload at offset 8
        try CanonicalLowerer(guest: guest).store(.error(.record([.enumeration(2), .string("gone")])), as: type, at: 0x200)
        #expect(guest.memory[0x200] == 1)  // discriminant: error
        #expect(guest.memory[0x208] == 2)  // error-code not-found
        #expect(guest.peekString(pairAt: 0x20C) == "gone")
    }

    /// A function lays its result type out once and reuses it on every call. Two functions whose results put the
    /// error at different offsets (after an 8-aligned `u64` case, after a 4-aligned list case), lowered one after
    /// the other into one guest, must each use their own layout; so must a function whose result type is changed.
    @Test func functionsLowerWithTheirOwnLayoutWhenCalledAlternately() throws {
        let guest = FakeGuest()
        let count = CanonicalFunction([.string], result: .result(ok: .u64, error: Self.error))
        var read = CanonicalFunction([.string], result: .result(ok: .list(.u8), error: Self.error))
        for round in 0..<2 {
            let code = UInt32(round + 1)
            #expect(try count.lowerImportResult(.error(.record([.enumeration(code), .string("no count")])), returnArea: 0x100, guest: guest) == nil)
            #expect(try read.lowerImportResult(.error(.record([.enumeration(code + 2), .string("no read")])), returnArea: 0x200, guest: guest) == nil)
            #expect(guest.memory[0x100] == 1 && guest.memory[0x108] == UInt8(code))
            #expect(guest.peekString(pairAt: 0x10C) == "no count")
            #expect(guest.memory[0x200] == 1 && guest.memory[0x204] == UInt8(code + 2))
            #expect(guest.peekString(pairAt: 0x208) == "no read")
        }
        // A return area 4 bytes past an 8-aligned one suits `read` but not `count`.
        #expect(throws: GuestMemoryError.self) {
            _ = try count.liftImportArguments([.i32(0), .i32(0), .i32(0x304)], guest: guest)
        }
        #expect(try read.liftImportArguments([.i32(0), .i32(0), .i32(0x304)], guest: guest).returnArea == 0x304)

        read.result = .result(ok: .u64, error: Self.error)
        #expect(throws: GuestMemoryError.self) {
            _ = try read.liftImportArguments([.i32(0), .i32(0), .i32(0x304)], guest: guest)
        }
        #expect(try read.lowerImportResult(.ok(.u64(0x0102_0304_0506_0708)), returnArea: 0x400, guest: guest) == nil)
        #expect(guest.memory[0x400] == 0)
        #expect(guest.peek64(0x408) == 0x0102_0304_0506_0708)
    }

    @Test func listsAreAllocatedWithTheirElementAlignment() throws {
        let guest = FakeGuest(heapStart: 0x8001)
        try CanonicalLowerer(guest: guest).store(.list([.u64(1), .u64(2)]), as: .list(.u64), at: 0x100)
        #expect(guest.allocations.first?.alignment == 8)
        #expect(guest.allocations.first?.size == 16)
        #expect(guest.peek32(0x100) % 8 == 0)
        #expect(guest.peek32(0x104) == 2)
    }

    @Test func variantPayloadsTravelThroughJoinedSlots() throws {
        let guest = FakeGuest()
        let lowerer = CanonicalLowerer(guest: guest)
        let real = CanonicalValue.variant(case: 2, payload: .f64(-2.25))
        let flat = try lowerer.lowerFlat(real, as: Self.value)
        #expect(flat == [.i32(2), .i64((-2.25 as Double).bitPattern), .i32(0)])
        var lifter = CanonicalLifter(guest: guest)
        #expect(try lifter.liftFlat([Self.value], from: flat) == [real])

        let text = CanonicalValue.variant(case: 3, payload: .string("hé"))
        let textFlat = try lowerer.lowerFlat(text, as: Self.value)
        #expect(textFlat.map(\.type) == [.i32, .i64, .i32])
        #expect(try lifter.liftFlat([Self.value], from: textFlat) == [text])

        let mixed = CanonicalType.variant([.f32, .u32])
        let float = CanonicalValue.variant(case: 0, payload: .f32(3.5))
        let floatFlat = try lowerer.lowerFlat(float, as: mixed)
        #expect(floatFlat == [.i32(0), .i32((3.5 as Float).bitPattern)])
        #expect(try lifter.liftFlat([mixed], from: floatFlat) == [float])
    }

    @Test func nanPayloadsAreCanonicalized() throws {
        var lifter = CanonicalLifter(guest: FakeGuest())
        let lifted = try lifter.liftFlat([.f64], from: [.f64(0x7FF0_0000_DEAD_BEEF)])
        guard case .f64(let value) = lifted[0] else { Issue.record("not an f64"); return }
        #expect(value.bitPattern == 0x7FF8_0000_0000_0000)
    }

    @Test func parametersBeyondSixteenFlatValuesAreReadFromATuple() throws {
        let guest = FakeGuest()
        let wide = CanonicalFunction(Array(repeating: .string, count: 9), result: .u32)
        // Nine strings "0"..."8" stored as a tuple at 0x400, their bytes at 0x300.
        for index in 0..<9 {
            guest.poke([UInt8(0x30 + index)], at: 0x300 + index)
            guest.poke32(UInt32(0x300 + index), at: 0x400 + index * 8)
            guest.poke32(1, at: 0x400 + index * 8 + 4)
        }
        let call = try wide.liftImportArguments([.i32(0x400)], guest: guest)
        #expect(call.arguments == (0..<9).map { .string(String($0)) })
        #expect(call.returnArea == nil)
        #expect(try wide.lowerImportResult(.u32(5), returnArea: nil, guest: guest) == .i32(5))
    }

    @Test func callingAnExportLowersArgumentsLiftsTheResultAreaAndCallsPostReturn() throws {
        let guest = FakeGuest()
        let instance = FakeInstance(guest: guest)
        var postReturned: [WasmValue] = []
        instance.export("greet") { arguments in
            let input = guest.peek(Int(arguments[0].i32 ?? 0), count: Int(arguments[1].i32 ?? 0))
            let answer = Array("hello, ".utf8) + input
            guest.poke(answer, at: 0x600)
            guest.poke([0], at: 0x500)
            guest.poke32(0x600, at: 0x504)
            guest.poke32(UInt32(answer.count), at: 0x508)
            return [.i32(0x500)]
        }
        instance.export("cabi_post_greet") { arguments in
            postReturned = arguments
            return []
        }
        let function = CanonicalFunction([.string], result: .result(ok: .string, error: .string))
        let result = try function.callExport("greet", arguments: [.string("peon")], in: instance)
        #expect(result == .ok(.string("hello, peon")))
        #expect(postReturned == [.i32(0x500)])
    }

    @Test func anExportReturningAMisalignedResultPointerIsAGuestError() {
        let guest = FakeGuest()
        let instance = FakeInstance(guest: guest)
        instance.export("greet") { _ in [.i32(0x501)] }
        let function = CanonicalFunction([.string], result: .result(ok: .string, error: .string))
        #expect(throws: GuestMemoryError.self) {
            _ = try function.callExport("greet", arguments: [.string("x")], in: instance)
        }
    }
}
