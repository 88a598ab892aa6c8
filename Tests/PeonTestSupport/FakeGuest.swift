package import PeonEngine

/// An in-memory guest: a byte array as linear memory and a bump allocator as `cabi_realloc`, with
/// switches that make the allocator misbehave the way a hostile guest's would.
package final class FakeGuest: GuestAccess {
    /// How `cabi_realloc` answers.
    package enum Allocator {
        /// Bump allocation, growing memory by whole 64 KiB pages when the block does not fit.
        case bump
        /// Returns this pointer whatever was asked.
        case fixed(UInt32)
        /// Returns a pointer one byte past an aligned bump block.
        case misaligned
        /// Returns no result.
        case noResult
        /// Refuses the call as an export of the wrong type (the engine's `missingExport`), as an engine does
        /// for a `cabi_realloc` that is exported but does not take four `i32`s.
        case wrongType
    }

    package var memory: [UInt8]
    package var next: UInt32
    package var allocator: Allocator = .bump
    package var exportsRealloc = true
    package var otherExports: Set<String> = []
    /// Runs inside every `cabi_realloc` call, as guest code would (e.g. to call back into the host).
    package var onRealloc: (() throws -> Void)?
    /// Every `cabi_realloc` call as (align, size).
    package private(set) var allocations: [(alignment: UInt32, size: UInt32)] = []
    /// How many times ``hasExport(_:)`` was asked.
    package private(set) var exportQueries = 0

    package init(pages: Int = 1, heapStart: UInt32 = 0x8000) {
        memory = [UInt8](repeating: 0, count: pages * 65536)
        next = heapStart
    }

    package var memorySize: Int { memory.count }

    package func withMemory<R>(at offset: UInt32, count: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try checkRange(offset, count)
        return try memory.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + Int(count)])) }
    }

    package func withMutableMemory<R>(
        at offset: UInt32, count: UInt32, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        try checkRange(offset, count)
        return try memory.withUnsafeMutableBytes {
            try body(UnsafeMutableRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + Int(count)]))
        }
    }

    package func callExport(_ name: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        guard name == "cabi_realloc", exportsRealloc else { throw EngineError(.missingExport, "no export \(name)") }
        if case .wrongType = allocator { throw EngineError(.missingExport, "export cabi_realloc has type (i32) -> (i32)") }
        let alignment = arguments[2].i32 ?? 1
        let size = arguments[3].i32 ?? 0
        allocations.append((alignment, size))
        try onRealloc?()
        switch allocator {
        case .bump:
            return [.i32(bump(size: size, alignment: alignment))]
        case .fixed(let pointer):
            return [.i32(pointer)]
        case .misaligned:
            return [.i32(bump(size: size + 1, alignment: alignment) + 1)]
        case .noResult:
            return []
        case .wrongType:
            return []  // refused above, before the allocation is recorded
        }
    }

    package func hasExport(_ name: String) -> Bool {
        exportQueries += 1
        return (name == "cabi_realloc" && exportsRealloc) || otherExports.contains(name)
    }

    private func bump(size: UInt32, alignment: UInt32) -> UInt32 {
        let start = (next + alignment - 1) / alignment * alignment
        next = start + size
        while Int(next) > memory.count {
            memory += [UInt8](repeating: 0, count: 65536)
        }
        return start
    }

    // MARK: Test conveniences

    /// Writes `bytes` at `offset`.
    package func poke(_ bytes: [UInt8], at offset: Int) {
        memory.replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }

    /// Writes a little-endian u32 at `offset`.
    package func poke32(_ value: UInt32, at offset: Int) {
        poke(withUnsafeBytes(of: value.littleEndian, Array.init), at: offset)
    }

    /// Writes a little-endian u64 at `offset`.
    package func poke64(_ value: UInt64, at offset: Int) {
        poke(withUnsafeBytes(of: value.littleEndian, Array.init), at: offset)
    }

    /// Reads a little-endian u32 at `offset`.
    package func peek32(_ offset: Int) -> UInt32 {
        memory[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Reads a little-endian u64 at `offset`.
    package func peek64(_ offset: Int) -> UInt64 {
        memory[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The bytes at `offset`.
    package func peek(_ offset: Int, count: Int) -> [UInt8] {
        Array(memory[offset..<offset + count])
    }

    /// Reads a (pointer, length) pair at `offset` and returns the bytes it points at.
    package func peekBytes(pairAt offset: Int, elementSize: Int = 1) -> [UInt8] {
        let pointer = Int(peek32(offset))
        let count = Int(peek32(offset + 4))
        return peek(pointer, count: count * elementSize)
    }

    /// Reads a (pointer, length) string at `offset`.
    package func peekString(pairAt offset: Int) -> String {
        String(decoding: peekBytes(pairAt: offset), as: UTF8.self)
    }
}

/// A module instance around a ``FakeGuest`` whose exports are Swift closures.
package final class FakeInstance: ModuleInstance {
    package let fakeGuest: FakeGuest
    package var functions: [String: ([WasmValue]) throws -> [WasmValue]] = [:]
    package private(set) var calls: [(name: String, arguments: [WasmValue])] = []

    package init(guest: FakeGuest) { self.fakeGuest = guest }

    package var guest: any GuestAccess { fakeGuest }
    package var remainingFuel: UInt64? { nil }

    package func call(_ export: String, _ arguments: [WasmValue]) throws -> [WasmValue] {
        calls.append((export, arguments))
        if export == "cabi_realloc" { return try fakeGuest.callExport(export, arguments) }
        guard let function = functions[export] else { throw EngineError(.missingExport, "no export \(export)") }
        return try function(arguments)
    }

    /// Registers an export, also making ``GuestAccess/hasExport(_:)`` see it.
    package func export(_ name: String, _ body: @escaping ([WasmValue]) throws -> [WasmValue]) {
        functions[name] = body
        fakeGuest.otherExports.insert(name)
    }
}

/// Calls a host function's body with `arguments`, as an engine would.
package func invoke(_ function: HostFunction, guest: any GuestAccess, _ arguments: [WasmValue]) throws -> WasmValue? {
    try arguments.withUnsafeBufferPointer { try function.body(guest, HostArguments($0)) }
}
