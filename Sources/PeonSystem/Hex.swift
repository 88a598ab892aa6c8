// Lowercase hexadecimal, the one encoding the log, the caches and the CLI print digests in.

/// The lowercase hex digit of a value below 16.
@inlinable @inline(__always)
package func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
}

/// Appends the lowercase hex of `bytes` to `out`: in one step from contiguous bytes (an array, a slice), byte by
/// byte from any other sequence.
@inlinable
package func appendHex(_ bytes: some Sequence<UInt8>, to out: inout [UInt8]) {
    let done: Void? = bytes.withContiguousStorageIfAvailable { appendHex(raw: UnsafeRawBufferPointer($0), to: &out) }
    if done != nil { return }
    for byte in bytes {
        out.append(hexDigit(byte >> 4))
        out.append(hexDigit(byte & 0x0F))
    }
}

/// Appends the lowercase hex of the raw `bytes` (a digest's `withUnsafeBytes`) to `out`, growing it once.
@inlinable
package func appendHex(raw bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    let start = out.count
    out.append(contentsOf: repeatElement(UInt8(0), count: bytes.count * 2))
    out.withUnsafeMutableBufferPointer { buffer in writeHex(bytes, into: UnsafeMutableBufferPointer(rebasing: buffer[start...])) }
}

/// Lowercase hex of `bytes` (a SHA-256 digest is 64 characters).
@inlinable
package func hex(_ bytes: some Sequence<UInt8>) -> String {
    if let text = bytes.withContiguousStorageIfAvailable({ hex(raw: UnsafeRawBufferPointer($0)) }) { return text }
    var out: [UInt8] = []
    out.reserveCapacity(64)
    appendHex(bytes, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// Lowercase hex of the raw `bytes` (a digest's `withUnsafeBytes`), written straight into the string's storage.
@inlinable
package func hex(raw bytes: UnsafeRawBufferPointer) -> String {
    String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
        writeHex(bytes, into: buffer)
        return bytes.count * 2
    }
}

/// Writes two hex digits per byte of `bytes` into `target`, which holds at least twice as many bytes.
@inlinable @inline(__always)
package func writeHex(_ bytes: UnsafeRawBufferPointer, into target: UnsafeMutableBufferPointer<UInt8>) {
    precondition(target.count >= bytes.count * 2, "hex: the target is too small")
    for (index, byte) in bytes.enumerated() {
        target[2 * index] = hexDigit(byte >> 4)
        target[2 * index + 1] = hexDigit(byte & 0x0F)
    }
}
