#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Text compared and hashed by its exact UTF-8 bytes, for keys made of what a guest sent.
///
/// Swift's `==` on strings is canonical equivalence, so `café` with a precomposed `é` and with `e` + U+0301 would be
/// one key, while the kernel, SQLite and the policy engine see two different names: a use of one file must not count
/// as a use of the other, and a statement compiled for one SQL text must not run for the other.
package struct ExactText: Hashable, Sendable {
    /// The text.
    package let text: String

    /// Wraps `text`.
    package init(_ text: String) { self.text = text }

    /// Equal when the UTF-8 bytes are: compared as two buffers when both strings are stored contiguously (native
    /// Swift strings are), byte by byte otherwise.
    package static func == (lhs: ExactText, rhs: ExactText) -> Bool {
        let left = lhs.text.utf8, right = rhs.text.utf8
        guard left.count == right.count else { return false }
        let compared = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in
                guard let leftStart = leftBytes.baseAddress, let rightStart = rightBytes.baseAddress else { return true }
                return memcmp(leftStart, rightStart, leftBytes.count) == 0
            }
        }
        if let compared, let equal = compared { return equal }
        return left.elementsEqual(right)
    }

    /// Hashes the UTF-8 bytes.
    package func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
