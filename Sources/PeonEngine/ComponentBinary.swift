/// The outer shape of a WebAssembly binary: a core module or a component, and a component's top-level
/// imports and exports, read without an engine.
///
/// The Component Model's binary starts with the same `\0asm` magic as a core module, followed by a
/// version of `0x0d 0x00` and a layer of `0x01 0x00` (a core module has version 1, layer 0). Only the
/// top-level import (10) and export (11) sections are decoded, every length checked against the bytes
/// left; nested modules and components are skipped whole. Nothing here validates the component: the
/// engine does that when it compiles it.
package enum ComponentBinary {
    /// Whether `bytes` start like a component (`\0asm`, then layer 1).
    package static func isComponent(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 8 && bytes[0] == 0x00 && bytes[1] == 0x61 && bytes[2] == 0x73 && bytes[3] == 0x6d
            && bytes[6] == 0x01 && bytes[7] == 0x00
    }

    /// One top-level import or export of a component: its name (e.g. `peon:host/fs@0.1.0`, `run`) and
    /// what it is (`instance`, `func`, `type`, `component`, `module`, `value`).
    package struct Item: Sendable, Hashable {
        /// The name.
        package var name: String
        /// The kind of item.
        package var kind: String

        /// Creates an item.
        package init(name: String, kind: String) {
            self.name = name
            self.kind = kind
        }
    }

    /// A component's top-level imports and exports.
    package struct Interface: Sendable, Hashable {
        /// The imports, in order.
        package var imports: [Item] = []
        /// The exports, in order.
        package var exports: [Item] = []
    }

    /// A component binary that cannot be read.
    package struct Malformed: Error, Sendable, Hashable, CustomStringConvertible {
        /// What is wrong, with the byte offset.
        package var message: String
        /// The message.
        package var description: String { message }
    }

    /// Reads the top-level imports and exports of the component `bytes`.
    package static func interface(_ bytes: [UInt8]) throws(Malformed) -> Interface {
        guard isComponent(bytes) else { throw Malformed(message: "not a component (no \\0asm header with layer 1)") }
        var reader = Reader(bytes: bytes, offset: 8)
        var result = Interface()
        while !reader.atEnd {
            let id = try reader.byte()
            let size = Int(try reader.u32())
            guard size <= reader.remaining else {
                throw Malformed(message: "section \(id) at byte \(reader.offset) claims \(size) bytes; only \(reader.remaining) are left")
            }
            var section = Reader(bytes: bytes, offset: reader.offset, end: reader.offset + size)
            reader.offset += size
            switch id {
            case 10:
                let count = try section.u32()
                for _ in 0..<count {
                    let name = try section.externName()
                    let kind = try section.externDescription()
                    result.imports.append(Item(name: name, kind: kind))
                }
            case 11:
                let count = try section.u32()
                for _ in 0..<count {
                    let name = try section.externName()
                    let kind = try section.sortIndex()
                    if try section.byte() == 0x01 { _ = try section.externDescription() }
                    result.exports.append(Item(name: name, kind: kind))
                }
            default:
                continue
            }
        }
        return result
    }

    /// Every linear memory and table that the core modules inside the component `bytes` define, summed
    /// over all of them: each core module section (id 1) is read with ``DeclaredStorage/init(parsing:)``,
    /// and nested components (id 4) are walked the same way, to any depth the bytes hold.
    ///
    /// A module counts once however often the component instantiates it; the engine refuses to create
    /// more memories or tables than are listed here (see `docs/engines.md#components`), so a module
    /// instantiated twice makes the component fail to instantiate rather than escape the cap. Memories
    /// and tables a module imports are not listed: inside a component they are another module's.
    package static func declaredStorage(_ bytes: [UInt8]) throws(Malformed) -> DeclaredStorage {
        guard isComponent(bytes) else { throw Malformed(message: "not a component (no \\0asm header with layer 1)") }
        var total = DeclaredStorage()
        try collectStorage(bytes, from: 8, to: bytes.count, depth: 0, into: &total)
        return total
    }

    /// Nested components deeper than this are refused (real ones nest one or two levels).
    static let maximumNesting = 32

    private static func collectStorage(_ bytes: [UInt8], from start: Int, to end: Int, depth: Int,
                                       into total: inout DeclaredStorage) throws(Malformed) {
        guard depth <= maximumNesting else {
            throw Malformed(message: "components nested more than \(maximumNesting) levels deep at byte \(start)")
        }
        var reader = Reader(bytes: bytes, offset: start, end: end)
        while !reader.atEnd {
            let id = try reader.byte()
            let size = Int(try reader.u32())
            guard size <= reader.remaining else {
                throw Malformed(message: "section \(id) at byte \(reader.offset) claims \(size) bytes; only \(reader.remaining) are left")
            }
            let sectionStart = reader.offset
            reader.offset += size
            switch id {
            case 1:
                let module = Array(bytes[sectionStart..<(sectionStart + size)])
                let declared: DeclaredStorage
                do {
                    declared = try DeclaredStorage(parsing: module)
                } catch {
                    throw Malformed(message: "the core module at byte \(sectionStart): \(error.message)")
                }
                total.memories += declared.memories
                total.tables += declared.tables
            case 4:
                // A nested component: its own preamble (8 bytes), then its sections.
                guard size >= 8, isComponent(Array(bytes[sectionStart..<(sectionStart + 8)])) else {
                    throw Malformed(message: "the nested component at byte \(sectionStart) has no component header")
                }
                try collectStorage(bytes, from: sectionStart + 8, to: sectionStart + size, depth: depth + 1, into: &total)
            default:
                continue
            }
        }
    }

    /// A bounds-checked cursor over `bytes[offset..<end]`.
    struct Reader {
        let bytes: [UInt8]
        var offset: Int
        let end: Int

        init(bytes: [UInt8], offset: Int, end: Int? = nil) {
            self.bytes = bytes
            self.offset = offset
            self.end = min(end ?? bytes.count, bytes.count)
        }

        var atEnd: Bool { offset >= end }
        var remaining: Int { max(0, end - offset) }

        mutating func byte() throws(Malformed) -> UInt8 {
            guard offset < end else { throw Malformed(message: "unexpected end of the component at byte \(offset)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        /// An unsigned LEB128 of at most 32 bits.
        mutating func u32() throws(Malformed) -> UInt32 {
            var value: UInt32 = 0
            var shift: UInt32 = 0
            while true {
                let next = try byte()
                guard shift < 32, shift < 28 || next & 0x70 == 0 else {
                    throw Malformed(message: "an integer at byte \(offset - 1) is longer than 32 bits")
                }
                value |= UInt32(next & 0x7f) << shift
                if next & 0x80 == 0 { return value }
                shift += 7
            }
        }

        /// A signed LEB128 of at most 33 bits (a value type), skipped.
        mutating func skipS33() throws(Malformed) {
            for _ in 0..<5 {
                if try byte() & 0x80 == 0 { return }
            }
            throw Malformed(message: "a value type at byte \(offset) is longer than 33 bits")
        }

        mutating func name() throws(Malformed) -> String {
            let length = Int(try u32())
            guard length <= remaining else {
                throw Malformed(message: "a name at byte \(offset) claims \(length) bytes; only \(remaining) are left")
            }
            defer { offset += length }
            guard let text = String(validating: bytes[offset..<(offset + length)], as: UTF8.self) else {
                throw Malformed(message: "a name at byte \(offset) is not UTF-8")
            }
            return text
        }

        /// `importname'` / `exportname'`: `0x00 name`, or the legacy `0x01 name`, which wasmtime's parser reads
        /// exactly like `0x00` (the old "interface name" form). Nothing follows the name in either: this reader
        /// must split the bytes into imports exactly as the engine does, or the names it checks are not the
        /// ones the engine links.
        mutating func externName() throws(Malformed) -> String {
            let form = try byte()
            switch form {
            case 0x00, 0x01:
                return try name()
            default:
                throw Malformed(message: "unknown import/export name form 0x\(String(form, radix: 16)) at byte \(offset - 1)")
            }
        }

        /// `externdesc`: what an import is (or what an export is declared as).
        mutating func externDescription() throws(Malformed) -> String {
            let tag = try byte()
            switch tag {
            case 0x00:
                guard try byte() == 0x11 else { throw Malformed(message: "bad core module type at byte \(offset - 1)") }
                _ = try u32()
                return "module"
            case 0x01:
                _ = try u32()
                return "func"
            case 0x02:
                if try byte() == 0x00 { _ = try u32() } else { try skipS33() }
                return "value"
            case 0x03:
                if try byte() == 0x00 { _ = try u32() }
                return "type"
            case 0x04:
                _ = try u32()
                return "component"
            case 0x05:
                _ = try u32()
                return "instance"
            default:
                throw Malformed(message: "unknown extern description 0x\(String(tag, radix: 16)) at byte \(offset - 1)")
            }
        }

        /// `sortidx`: the kind of an export and its index.
        mutating func sortIndex() throws(Malformed) -> String {
            let sort = try byte()
            let kind: String
            switch sort {
            case 0x00:
                _ = try byte()
                kind = "core"
            case 0x01: kind = "func"
            case 0x02: kind = "value"
            case 0x03: kind = "type"
            case 0x04: kind = "component"
            case 0x05: kind = "instance"
            default:
                throw Malformed(message: "unknown sort 0x\(String(sort, radix: 16)) at byte \(offset - 1)")
            }
            _ = try u32()
            return kind
        }
    }
}
