// Lowercase hexadecimal, the one encoding the log, the caches and the CLI print digests in.

/// The lowercase hex digit of a value below 16.
@inlinable @inline(__always)
package func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
}

/// Appends the lowercase hex of `bytes` to `out`.
@inlinable
package func appendHex(_ bytes: some Sequence<UInt8>, to out: inout [UInt8]) {
    for byte in bytes {
        out.append(hexDigit(byte >> 4))
        out.append(hexDigit(byte & 0x0F))
    }
}

/// Lowercase hex of `bytes` (a SHA-256 digest is 64 characters).
@inlinable
package func hex(_ bytes: some Sequence<UInt8>) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(64)
    appendHex(bytes, to: &out)
    return String(decoding: out, as: UTF8.self)
}
