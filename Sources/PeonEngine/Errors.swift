/// Why a guest stopped abnormally, in words that do not depend on the engine that ran it.
package enum TrapReason: Sendable, Hashable, CustomStringConvertible {
    case unreachable
    case outOfBoundsMemoryAccess
    case outOfBoundsTableAccess
    case integerDivideByZero
    case integerOverflow
    case invalidConversionToInteger
    case indirectCallTypeMismatch
    case uninitializedElement
    case nullReference
    case callStackExhausted
    case outOfFuel
    /// The run's wall-clock deadline passed.
    case timeout
    /// The engine's own wording for a trap that has no better name here.
    case other(String)

    /// The trap in the words users see, e.g. "out of bounds memory access".
    package var description: String {
        switch self {
        case .unreachable: "unreachable executed"
        case .outOfBoundsMemoryAccess: "out of bounds memory access"
        case .outOfBoundsTableAccess: "out of bounds table access"
        case .integerDivideByZero: "integer divide by zero"
        case .integerOverflow: "integer overflow"
        case .invalidConversionToInteger: "invalid conversion to integer"
        case .indirectCallTypeMismatch: "indirect call type mismatch"
        case .uninitializedElement: "uninitialized element"
        case .nullReference: "null reference"
        case .callStackExhausted: "call stack exhausted"
        case .outOfFuel: "out of fuel"
        case .timeout: "wall-clock timeout"
        case .other(let text): text
        }
    }
}

/// A failure of the engine layer: a module that cannot be compiled or linked, or a guest that trapped.
///
/// Errors thrown by host functions are not wrapped in this type: they propagate out of
/// ``ModuleInstance/call(_:_:)`` unchanged, so the runtime can tell a guest's `proc_exit` or a
/// mediator refusal from an engine fault.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    /// The class of failure, for exit codes and tests.
    package enum Kind: Sendable, Hashable {
        /// The bytes are not a valid WebAssembly module (bad magic, truncated, fails validation).
        case invalidModule
        /// An import cannot be satisfied by the host functions given.
        case unknownImport
        /// A host function was given for an import with a different signature.
        case incompatibleImport
        /// The module has no export of that name, or it is not a function of the expected type.
        case missingExport
        /// Instantiation failed (start function trapped, data segment out of range, ...).
        case instantiation
        /// The guest trapped while running.
        case trap(TrapReason)
        /// The engine could not be loaded or configured (e.g. a missing shared library).
        case unavailable
    }

    /// The class of failure.
    package var kind: Kind
    /// One line: what happened, and where (import name, function name, byte offset) when known.
    package var message: String

    /// Creates an engine error.
    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The trap reason, if this error is a trap.
    package var trapReason: TrapReason? {
        if case .trap(let reason) = kind { reason } else { nil }
    }

    /// The message.
    public var description: String { message }
}

/// A host function's report that the guest handed it something it cannot use: a pointer or length
/// outside linear memory, a misaligned pointer, or a value of the wrong shape.
///
/// Thrown out of a host function it ends the guest's run as a trap-like failure with this message;
/// a host function that prefers to return an error code to the guest catches it first.
package struct GuestMemoryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, e.g. "guest range 0xfffffff0+32 is outside linear memory of 65536 bytes".
    package var message: String

    /// Creates the error.
    package init(_ message: String) { self.message = message }

    /// The message.
    package var description: String { message }
}
