import Synchronization

/// Holds the current `Enforcer` snapshot and swaps in new ones atomically (hot reload).
///
/// Readers take the current snapshot under a lock held only for a reference copy, then enforce on
/// their own copy without any lock, so a reload never blocks enforcement for longer than that copy
/// and no reader sees a half-built state. A reload builds the new snapshot off to the side first;
/// if building fails, the old snapshot stays in place and the error is returned.
public final class PolicyStore: Sendable {
    private let state: Mutex<Enforcer>

    /// Creates a store serving `enforcer`.
    public init(_ enforcer: Enforcer) {
        state = Mutex(enforcer)
    }

    /// The snapshot serving requests now.
    public var current: Enforcer {
        state.withLock { $0 }
    }

    /// Replaces the current snapshot.
    public func replace(with enforcer: Enforcer) {
        state.withLock { $0 = enforcer }
    }

    /// Builds a new snapshot with `build` and swaps it in; if `build` throws, keeps the current
    /// snapshot and rethrows. Returns the new snapshot's version.
    @discardableResult
    public func reload(_ build: () throws(PolicyError) -> Enforcer) throws(PolicyError) -> String {
        let fresh = try build()
        replace(with: fresh)
        return fresh.version
    }
}
