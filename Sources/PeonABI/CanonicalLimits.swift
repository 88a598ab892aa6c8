/// Caps on what one lift may copy out of a guest, so that no guest input makes the host allocate
/// absurdly.
///
/// Bounds checks alone are not enough: a guest can pass a list of a million headers that all point
/// at the same 1 MiB string, which is 1 TiB once copied. The lifter charges every string byte, every
/// `list<u8>` byte and every other list element against these budgets *before* it allocates, across
/// the whole call (nested lists included), and stops with ``CanonicalLimitExceeded`` when one runs out.
///
/// ```swift
/// var lifter = CanonicalLifter(guest: guest, limits: CanonicalLimits(maxBytes: 1 << 20))
/// ```
package struct CanonicalLimits: Sendable, Hashable {
    /// The most bytes of strings and `list<u8>`s (and the memory footprint of other lists) one lift
    /// may copy. Default: 64 MiB.
    package var maxBytes: Int
    /// The most list elements (other than bytes of a `list<u8>`) one lift may produce. Default: 65 536.
    package var maxElements: Int

    /// The default per-call byte budget, 64 MiB.
    package static let defaultMaxBytes = 64 << 20
    /// The default per-call element budget, 65 536.
    package static let defaultMaxElements = 1 << 16

    /// Creates limits; every parameter has the default documented on its property.
    package init(maxBytes: Int = CanonicalLimits.defaultMaxBytes, maxElements: Int = CanonicalLimits.defaultMaxElements) {
        self.maxBytes = maxBytes
        self.maxElements = maxElements
    }
}

/// A guest passed a value larger than ``CanonicalLimits`` allow. It is the guest's request that is too
/// big, not a malformed one: bindings report it to the guest as `limit-exceeded` where they can.
package struct CanonicalLimitExceeded: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which budget ran out and by how much, e.g. "a list of 3221225472 bytes exceeds the 67108864-byte limit".
    package var message: String

    /// Creates the error.
    package init(_ message: String) { self.message = message }

    /// The message.
    package var description: String { message }
}
