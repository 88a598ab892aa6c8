/// The type of a core WebAssembly value that can cross between a guest and the host.
///
/// Host functions and exports called by the host use only the four number types; a module whose
/// imports or exports need `v128` or reference types is described with ``WasmValueType/other``
/// and cannot be bound to host functions.
package enum WasmValueType: Sendable, Hashable, CustomStringConvertible {
    case i32, i64, f32, f64
    /// A type the host does not exchange values of (`v128`, `funcref`, `externref`), by its text name.
    case other(String)

    /// The name the WebAssembly text format uses (`i32`, `f64`, ...).
    package var description: String {
        switch self {
        case .i32: "i32"
        case .i64: "i64"
        case .f32: "f32"
        case .f64: "f64"
        case .other(let name): name
        }
    }
}

/// A core WebAssembly value, with integers kept as their raw bits and floats as IEEE-754 bit patterns
/// so that a value survives a round trip through any engine unchanged (NaN payloads included).
public enum WasmValue: Sendable, Hashable, CustomStringConvertible {
    case i32(UInt32)
    case i64(UInt64)
    /// An `f32`, as its bit pattern.
    case f32(UInt32)
    /// An `f64`, as its bit pattern.
    case f64(UInt64)

    /// The value's type.
    package var type: WasmValueType {
        switch self {
        case .i32: .i32
        case .i64: .i64
        case .f32: .f32
        case .f64: .f64
        }
    }

    /// The value as an `i32`'s bits, or `nil` when it is another type.
    package var i32: UInt32? { if case .i32(let v) = self { v } else { nil } }
    /// The value as an `i64`'s bits, or `nil` when it is another type.
    package var i64: UInt64? { if case .i64(let v) = self { v } else { nil } }

    /// Makes an `f32` value from a Swift `Float`.
    package static func float(_ value: Float) -> WasmValue { .f32(value.bitPattern) }
    /// Makes an `f64` value from a Swift `Double`.
    package static func double(_ value: Double) -> WasmValue { .f64(value.bitPattern) }

    /// The value in the text format's notation, e.g. `i32:42`.
    public var description: String {
        switch self {
        case .i32(let v): "i32:\(Int32(bitPattern: v))"
        case .i64(let v): "i64:\(Int64(bitPattern: v))"
        case .f32(let v): "f32:\(Float(bitPattern: v))"
        case .f64(let v): "f64:\(Double(bitPattern: v))"
        }
    }
}

/// The core signature of a function: what it takes and what it returns.
package struct FunctionSignature: Sendable, Hashable, CustomStringConvertible {
    /// The parameter types, in order.
    package var parameters: [WasmValueType]
    /// The result types, in order.
    package var results: [WasmValueType]

    /// Creates a signature, e.g. `FunctionSignature([.i32, .i32], [.i32])` for `(i32, i32) -> i32`.
    package init(_ parameters: [WasmValueType], _ results: [WasmValueType] = []) {
        self.parameters = parameters
        self.results = results
    }

    /// The signature as `(i32, i32) -> (i32)`.
    package var description: String {
        "(\(parameters.map(\.description).joined(separator: ", "))) -> (\(results.map(\.description).joined(separator: ", ")))"
    }
}
