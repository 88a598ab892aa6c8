import PeonABI
import PeonEngine
import Testing

/// Sizes, alignments and flattenings computed by hand from the canonical ABI's definitions
/// (`alignment`, `elem_size`, `flatten_type`), for the types `wit/peon.wit` uses. A layout that drifts
/// from the spec makes host and guest read each other's memory wrongly, so each is pinned here.
@Suite struct CanonicalLayoutTests {
    static let error = CanonicalType.record([.enumeration(6), .string])
    static let header = CanonicalType.record([.string, .string])
    static let value = CanonicalType.variant([nil, .s64, .f64, .string, .list(.u8)])
    static let response = CanonicalType.record([.u16, .list(header), .list(.u8)])

    @Test(arguments: [
        (CanonicalType.bool, 1, 1), (.u8, 1, 1), (.s8, 1, 1), (.u16, 2, 2), (.s16, 2, 2), (.u32, 4, 4), (.s32, 4, 4),
        (.f32, 4, 4), (.u64, 8, 8), (.s64, 8, 8), (.f64, 8, 8), (.string, 8, 4), (.list(.u64), 8, 4),
        (error, 12, 4),
        (.result(ok: .list(.u8), error: error), 16, 4),
        (.result(ok: nil, error: error), 16, 4),
        (.result(ok: .u64, error: error), 24, 8),
        (value, 16, 8),
        (response, 20, 4),
        (.result(ok: response, error: error), 24, 4),
        (.record([.s32, .list(.u8), .list(.u8)]), 20, 4),
        (.result(ok: .string, error: .string), 12, 4),
        (.option(.u8), 2, 1),
        (.enumeration(4), 1, 1),
        (.enumeration(257), 2, 2),
        (.record([.u8, .u64, .u8]), 24, 8),
    ])
    func sizeAndAlignmentFollowTheSpec(type: CanonicalType, size: Int, alignment: Int) {
        #expect(type.size == size, "size of \(type)")
        #expect(type.alignment == alignment, "alignment of \(type)")
        // The layout the lifter and lowerer walk, worked out once per function type, has the same numbers.
        let layout = CanonicalLayout(type)
        #expect(layout.size == size, "laid-out size of \(type)")
        #expect(layout.alignment == alignment, "laid-out alignment of \(type)")
        #expect(layout.flatTypes == type.flatTypes, "laid-out flat types of \(type)")
    }

    @Test func aVariantsPayloadStartsAtItsLargestCaseAlignment() {
        #expect(CanonicalType.result(ok: .u64, error: Self.error).payloadOffset == 8)
        #expect(CanonicalType.result(ok: .list(.u8), error: Self.error).payloadOffset == 4)
        #expect(CanonicalType.option(.u8).payloadOffset == 1)
        #expect(CanonicalType.enumeration(257).payloadOffset == 2)
    }

    @Test func flatteningJoinsVariantPayloadSlots() {
        // null | s64 | f64 | string | list<u8>: slot 0 joins i64, f64 and i32 into i64; slot 1 is i32.
        #expect(Self.value.flatTypes == [.i32, .i64, .i32])
        #expect(CanonicalType.variant([.f32, .u32]).flatTypes == [.i32, .i32])
        #expect(CanonicalType.variant([.f32, .f64]).flatTypes == [.i32, .i64])
        #expect(CanonicalType.result(ok: nil, error: Self.error).flatTypes == [.i32, .i32, .i32, .i32])
        #expect(Self.value.flatCount == 3)
        #expect(CanonicalType.record([Self.header, .list(.u8)]).flatCount == 6)
    }

    @Test func resultsThatDoNotFlattenToOneValueUseAReturnArea() {
        let read = CanonicalFunction([.string], result: .result(ok: .list(.u8), error: Self.error))
        #expect(read.importSignature == FunctionSignature([.i32, .i32, .i32], []))
        #expect(read.exportSignature == FunctionSignature([.i32, .i32], [.i32]))
        let log = CanonicalFunction([.enumeration(4), .string])
        #expect(log.importSignature == FunctionSignature([.i32, .i32, .i32], []))
        let add = CanonicalFunction([.u64, .f32], result: .u64)
        #expect(add.importSignature == FunctionSignature([.i64, .f32], [.i64]))
        #expect(!add.resultInMemory)
    }

    /// The flattening is worked out once and kept: changing the parameters or the result must work it out again,
    /// or a call would be checked against the old signature.
    @Test func aChangedFunctionTypeIsFlattenedAgain() {
        var function = CanonicalFunction([.u64, .f32], result: .u64)
        function.result = .result(ok: .list(.u8), error: Self.error)
        #expect(function.resultInMemory)
        #expect(function.importSignature == FunctionSignature([.i64, .f32, .i32], []))
        function.parameters = Array(repeating: .string, count: 9)
        #expect(function.parametersInMemory)
        #expect(function.importSignature == FunctionSignature([.i32, .i32], []))
        #expect(function == CanonicalFunction(Array(repeating: .string, count: 9), result: .result(ok: .list(.u8), error: Self.error)))
    }

    @Test func moreThanSixteenFlatParametersArePassedByPointer() {
        let wide = CanonicalFunction(Array(repeating: .string, count: 9), result: .u32)
        #expect(wide.parametersInMemory)
        #expect(wide.importSignature == FunctionSignature([.i32], [.i32]))
        let exactly16 = CanonicalFunction(Array(repeating: .string, count: 8))
        #expect(!exactly16.parametersInMemory)
        #expect(exactly16.importSignature.parameters.count == 16)
    }
}
