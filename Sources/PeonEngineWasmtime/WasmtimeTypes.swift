// Conversions between wasmtime's C values and types and PeonEngine's.
import CWasmtime
import PeonEngine
import Foundation

extension wasmtime_val_t {
    /// A wasmtime value holding `value`'s bits. Floats are written as their bit patterns through the
    /// union's storage so NaN payloads survive unchanged.
    init(_ value: WasmValue) {
        self.init()
        switch value {
        case .i32(let bits):
            kind = UInt8(PEON_WASMTIME_I32)
            of.storage.words.0 = UInt64(bits)
        case .i64(let bits):
            kind = UInt8(PEON_WASMTIME_I64)
            of.storage.words.0 = bits
        case .f32(let bits):
            kind = UInt8(PEON_WASMTIME_F32)
            of.storage.words.0 = UInt64(bits)
        case .f64(let bits):
            kind = UInt8(PEON_WASMTIME_F64)
            of.storage.words.0 = bits
        }
    }

    /// The value, or `nil` when it is not one of the four number types.
    var peonValue: WasmValue? {
        let low = of.storage.words.0
        switch Int(kind) {
        case Int(PEON_WASMTIME_I32): return .i32(UInt32(truncatingIfNeeded: low))
        case Int(PEON_WASMTIME_I64): return .i64(low)
        case Int(PEON_WASMTIME_F32): return .f32(UInt32(truncatingIfNeeded: low))
        case Int(PEON_WASMTIME_F64): return .f64(low)
        default: return nil
        }
    }
}

extension WasmValueType {
    /// The type of a `wasm_valkind_t`.
    init(valueKind: UInt8) {
        switch Int(valueKind) {
        case Int(PEON_WASM_I32): self = .i32
        case Int(PEON_WASM_I64): self = .i64
        case Int(PEON_WASM_F32): self = .f32
        case Int(PEON_WASM_F64): self = .f64
        case Int(PEON_WASM_V128): self = .other("v128")
        case Int(PEON_WASM_EXTERNREF): self = .other("externref")
        case Int(PEON_WASM_FUNCREF): self = .other("funcref")
        default: self = .other("ref")
        }
    }

    /// The `wasm_valkind_t` of a number type, or `nil` for a type hosts do not exchange.
    var valueKind: UInt8? {
        switch self {
        case .i32: UInt8(PEON_WASM_I32)
        case .i64: UInt8(PEON_WASM_I64)
        case .f32: UInt8(PEON_WASM_F32)
        case .f64: UInt8(PEON_WASM_F64)
        case .other: nil
        }
    }

    /// Whether values of this type can cross between the host and a guest.
    var isNumber: Bool { valueKind != nil }
}

extension FunctionSignature {
    /// Whether every parameter and result is a number type.
    var isNumeric: Bool { parameters.allSatisfy(\.isNumber) && results.allSatisfy(\.isNumber) }
}

extension peon_wasmtime_api {
    /// The text of a wasm-c-api name or message (trailing NULs, which messages carry, removed).
    func string(_ vector: wasm_byte_vec_t) -> String {
        guard let data = vector.data, vector.size > 0 else { return "" }
        var bytes = UnsafeBufferPointer(start: data, count: vector.size)[...]
        while bytes.last == 0 { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The signature of a function type (borrowed from wasmtime).
    func signature(_ type: OpaquePointer) -> FunctionSignature {
        FunctionSignature(types(wasm_functype_params(type).pointee), types(wasm_functype_results(type).pointee))
    }

    private func types(_ vector: wasm_valtype_vec_t) -> [WasmValueType] {
        guard let data = vector.data else { return [] }
        return (0..<vector.size).map { index in
            data[index].map { WasmValueType(valueKind: wasm_valtype_kind($0)) } ?? .other("unknown")
        }
    }

    /// The kind of an extern type (borrowed from wasmtime).
    func externalKind(_ type: OpaquePointer) -> ExternalKind {
        switch Int(wasm_externtype_kind(type)) {
        case Int(PEON_WASM_EXTERN_FUNC):
            if let function = wasm_externtype_as_functype_const(type) { return .function(signature(function)) }
            return .function(FunctionSignature([]))
        case Int(PEON_WASM_EXTERN_MEMORY):
            guard let memory = wasm_externtype_as_memorytype_const(type) else { return .memory(minimumPages: 0, maximumPages: nil) }
            var maximum: UInt64 = 0
            let hasMaximum = wasmtime_memorytype_maximum(memory, &maximum)
            return .memory(minimumPages: wasmtime_memorytype_minimum(memory), maximumPages: hasMaximum ? maximum : nil)
        case Int(PEON_WASM_EXTERN_TABLE): return .table
        case Int(PEON_WASM_EXTERN_GLOBAL): return .global
        default: return .tag
        }
    }

    /// A new function type for `signature`, owned by the caller (delete it with `wasm_functype_delete`).
    /// The signature must be numeric.
    func makeFunctionType(_ signature: FunctionSignature) -> OpaquePointer {
        var parameters = valueTypeVector(signature.parameters)
        var results = valueTypeVector(signature.results)
        return wasm_functype_new(&parameters, &results)
    }

    private func valueTypeVector(_ types: [WasmValueType]) -> wasm_valtype_vec_t {
        let valueTypes: [OpaquePointer?] = types.map { wasm_valtype_new($0.valueKind ?? UInt8(PEON_WASM_I32)) }
        var vector = wasm_valtype_vec_t()
        valueTypes.withUnsafeBufferPointer { buffer in
            wasm_valtype_vec_new(&vector, buffer.count, buffer.baseAddress)
        }
        return vector
    }

    /// The message of an owned error, which this deletes, as one line (the headline and its causes).
    func consume(error: OpaquePointer) -> String {
        var message = wasm_byte_vec_t()
        wasmtime_error_message(error, &message)
        let text = string(message)
        wasm_byte_vec_delete(&message)
        wasmtime_error_delete(error)
        let parsed = WasmtimeMessage(text)
        return ([parsed.headline] + parsed.causes).joined(separator: ": ")
    }

    /// The reason of an owned trap, which this deletes, and a one-line account of it: our name for the
    /// trap, wasmtime's details, and the innermost wasm frame, e.g. "out of bounds memory access (memory
    /// fault at wasm address 0x11170 in linear memory of size 0x10000) in <wasm function 0> at 0x29".
    func consume(trap: OpaquePointer) -> (reason: TrapReason, message: String) {
        var message = wasm_byte_vec_t()
        wasm_trap_message(trap, &message)
        let text = string(message)
        wasm_byte_vec_delete(&message)
        var code: UInt8 = 0
        let hasCode = wasmtime_trap_code(trap, &code)
        wasm_trap_delete(trap)
        let parsed = WasmtimeMessage(text)
        let prefix = "wasm trap: "
        let details = parsed.causes.filter { !$0.hasPrefix(prefix) }
        let trapLine = parsed.causes.last { $0.hasPrefix(prefix) } ?? parsed.causes.last ?? parsed.headline
        let words = trapLine.hasPrefix(prefix) ? String(trapLine.dropFirst(prefix.count)) : trapLine
        let reason = hasCode ? TrapReason(wasmtimeCode: code, message: words) : .other(words)
        var account = reason.description
        if !details.isEmpty { account += " (\(details.joined(separator: ": ")))" }
        if let frame = parsed.innermostFrame { account += " in \(frame)" }
        return (reason, account)
    }
}

/// wasmtime's multi-line message taken apart: a headline, an optional wasm backtrace, and the
/// "Caused by:" chain, outermost first.
struct WasmtimeMessage {
    var headline = ""
    var causes: [String] = []
    /// The first backtrace frame, e.g. `<unknown>!<wasm function 0> at 0x29`.
    var innermostFrame: String?

    init(_ text: String) {
        var inCauses = false
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = rawLine.trimmingPrefix(while: \.isWhitespace)
            guard !line.isEmpty else { continue }
            if headline.isEmpty {
                headline = line.hasSuffix("wasm backtrace:") ? "trap" : String(line)
                continue
            }
            if line == "Caused by:" {
                inCauses = true
                continue
            }
            if inCauses {
                // "0: text" when there are several causes, plain text when there is one.
                if let colon = line.firstIndex(of: ":"), line[..<colon].allSatisfy(\.isNumber), !line[..<colon].isEmpty {
                    causes.append(String(line[line.index(after: colon)...].trimmingPrefix(while: \.isWhitespace)))
                } else {
                    causes.append(String(line))
                }
            } else if innermostFrame == nil, let dash = line.range(of: " - ") {
                // "0:     0x29 - <unknown>!<wasm function 0>"
                let offset = line[..<dash.lowerBound].split(separator: " ").last.map(String.init) ?? ""
                innermostFrame = "\(line[dash.upperBound...]) at \(offset)"
            }
        }
        if headline.isEmpty { headline = "wasmtime reported an empty message" }
    }
}

extension TrapReason {
    /// The reason for a `wasmtime_trap_code_t`.
    init(wasmtimeCode code: UInt8, message: String) {
        switch Int(code) {
        case Int(PEON_WASMTIME_TRAP_STACK_OVERFLOW): self = .callStackExhausted
        case Int(PEON_WASMTIME_TRAP_MEMORY_OUT_OF_BOUNDS): self = .outOfBoundsMemoryAccess
        case Int(PEON_WASMTIME_TRAP_TABLE_OUT_OF_BOUNDS): self = .outOfBoundsTableAccess
        case Int(PEON_WASMTIME_TRAP_INDIRECT_CALL_TO_NULL): self = .uninitializedElement
        case Int(PEON_WASMTIME_TRAP_BAD_SIGNATURE): self = .indirectCallTypeMismatch
        case Int(PEON_WASMTIME_TRAP_INTEGER_OVERFLOW): self = .integerOverflow
        case Int(PEON_WASMTIME_TRAP_INTEGER_DIVISION_BY_ZERO): self = .integerDivideByZero
        case Int(PEON_WASMTIME_TRAP_BAD_CONVERSION_TO_INTEGER): self = .invalidConversionToInteger
        case Int(PEON_WASMTIME_TRAP_UNREACHABLE_CODE_REACHED): self = .unreachable
        case Int(PEON_WASMTIME_TRAP_INTERRUPT): self = .timeout
        case Int(PEON_WASMTIME_TRAP_OUT_OF_FUEL): self = .outOfFuel
        case Int(PEON_WASMTIME_TRAP_NULL_REFERENCE): self = .nullReference
        default: self = .other(message)
        }
    }
}
