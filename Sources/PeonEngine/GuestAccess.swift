/// The calling guest as a host function sees it: its linear memory and its exports.
///
/// This is the one door to guest memory. Every range is checked against the memory's current size
/// with overflow-safe arithmetic before any byte is touched, so a hostile pointer or length is a
/// ``GuestMemoryError``, never a host crash. Do not keep pointers across calls into the guest: a
/// guest call (such as `cabi_realloc`) may grow and move the memory.
public protocol GuestAccess: AnyObject {
    /// The size of the guest's linear memory in bytes, or 0 if it exports none.
    var memorySize: Int { get }

    /// Calls `body` with the `count` bytes at `offset`, after checking the range lies in memory.
    func withMemory<R>(at offset: UInt32, count: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R

    /// Calls `body` with the `count` bytes at `offset` for writing, after checking the range lies in memory.
    func withMutableMemory<R>(
        at offset: UInt32, count: UInt32, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R

    /// Calls one of the guest's exported functions from inside a host call (e.g. `cabi_realloc`).
    /// Throws ``EngineError`` `.missingExport` when there is no such export.
    func callExport(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue]

    /// Whether the guest exports a function of that name.
    func hasExport(_ name: String) -> Bool
}

extension GuestAccess {
    /// Checks that `count` bytes at `offset` lie inside linear memory, throwing a ``GuestMemoryError``
    /// that names the range otherwise. Engines call this before touching memory.
    package func checkRange(_ offset: UInt32, _ count: UInt32) throws(GuestMemoryError) {
        let end = UInt64(offset) + UInt64(count)
        guard end <= UInt64(memorySize) else {
            throw GuestMemoryError(
                "guest range 0x\(String(offset, radix: 16))+\(count) is outside linear memory of \(memorySize) bytes")
        }
    }

    /// Copies `count` bytes at `offset` out of guest memory.
    package func readBytes(at offset: UInt32, count: UInt32) throws -> [UInt8] {
        try withMemory(at: offset, count: count) { Array($0) }
    }

    /// Copies `bytes` into guest memory at `offset`.
    package func writeBytes(_ bytes: some Collection<UInt8>, at offset: UInt32) throws {
        guard let count = UInt32(exactly: bytes.count) else {
            throw GuestMemoryError("a write of \(bytes.count) bytes is larger than a 32-bit memory")
        }
        try withMutableMemory(at: offset, count: count) { buffer in
            // One memcpy for contiguous bytes (arrays, string UTF-8); element by element otherwise.
            let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(source))
            }
            if copied == nil { _ = buffer.initializeMemory(as: UInt8.self, from: bytes) }
        }
    }

    /// Reads a little-endian `u32` at `offset`, which must be 4-byte aligned (the canonical ABI's rule).
    package func readUInt32(at offset: UInt32) throws -> UInt32 {
        guard offset % 4 == 0 else { throw GuestMemoryError("guest pointer 0x\(String(offset, radix: 16)) is not 4-byte aligned") }
        return try withMemory(at: offset, count: 4) { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    /// Writes a little-endian `u32` at `offset`, which must be 4-byte aligned.
    package func writeUInt32(_ value: UInt32, at offset: UInt32) throws {
        guard offset % 4 == 0 else { throw GuestMemoryError("guest pointer 0x\(String(offset, radix: 16)) is not 4-byte aligned") }
        try withMutableMemory(at: offset, count: 4) { $0.storeBytes(of: value.littleEndian, as: UInt32.self) }
    }

    /// Reads a UTF-8 string of `count` bytes at `offset`; invalid UTF-8 is a ``GuestMemoryError``.
    package func readString(at offset: UInt32, count: UInt32) throws -> String {
        let bytes = try readBytes(at: offset, count: count)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw GuestMemoryError("guest string at 0x\(String(offset, radix: 16)) (\(count) bytes) is not valid UTF-8")
        }
        return string
    }
}
