import PeonEngine
import WAT

/// Compiles WebAssembly text to a binary module, for tests that build their guests inline.
public func wasm(_ text: String) throws -> [UInt8] {
    try wat2wasm(text)
}
