/// The hard limits one guest instance runs under. Every run has them; the defaults are deliberately finite.
///
/// The engine enforces ``memoryBytes`` over all of the instance's linear memories and tables together
/// (a module whose declared minimums exceed it does not instantiate; a `memory.grow` or `table.grow`
/// past it returns -1 and the guest goes on; see ``DeclaredStorage``),
/// ``fuel`` (running out traps with ``TrapReason/outOfFuel``), and ``deadline``: an engine that can
/// interrupt running code stops the guest when the deadline passes; every engine refuses to enter
/// or return from a host function after it (``TrapReason/timeout``). Limits on host calls and output
/// bytes are the runtime's, not the engine's.
public struct ResourceLimits: Sendable, Hashable {
    /// The most bytes the guest's linear memories and tables may hold together, each table element
    /// counted as ``DeclaredStorage/tableElementBytes``. Default: 256 MiB.
    package var memoryBytes: Int
    /// The instruction budget, or `nil` for none. Default: `nil`.
    package var fuel: UInt64?
    /// When the guest must have finished, on the monotonic clock, or `nil` for no deadline. Default: `nil`;
    /// the runtime always sets one (30 s unless told otherwise).
    package var deadline: ContinuousClock.Instant?

    /// The default linear memory cap, 256 MiB.
    package static let defaultMemoryBytes = 256 << 20

    /// Creates limits; every parameter has the default documented on its property.
    package init(memoryBytes: Int = ResourceLimits.defaultMemoryBytes, fuel: UInt64? = nil,
                deadline: ContinuousClock.Instant? = nil) {
        self.memoryBytes = memoryBytes
        self.fuel = fuel
        self.deadline = deadline
    }

    /// Whether the deadline, if any, has passed.
    package var isPastDeadline: Bool {
        guard let deadline else { return false }
        return ContinuousClock.now >= deadline
    }
}
