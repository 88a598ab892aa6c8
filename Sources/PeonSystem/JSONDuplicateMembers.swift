// Finding a JSON object that names one member twice.
//
// RFC 8259 leaves such an object's meaning to the reader ("the names within an object SHOULD be unique"), and readers
// disagree: Foundation's keeps the first value, Python's and JavaScript's the last. Text that a gateway in front of
// peon-wasm reads one way and peon-wasm another is a way around the gateway, so it is refused instead of read.

/// Finds a member name that appears twice in one JSON object.
package enum JSONDuplicateMembers {
    /// The first member name (unescaped) that appears twice in one object of `bytes`, or `nil`.
    package static func first(in bytes: some Collection<UInt8>) -> String? {
        firstDuplicate(in: bytes)?.name
    }

    /// The first member name (unescaped) that appears twice in one object of `bytes`, with the depth of that object
    /// (1 for the top-level object), or `nil`.
    ///
    /// One pass over the bytes, tracking only strings, objects and arrays; text that is not JSON is left to the JSON
    /// reader (the answer is then meaningless but harmless). Names are compared after JSON's escapes are undone, as
    /// Swift compares strings: by canonical equivalence, as the Swift readers (Foundation's, the MCP SDK's) key their
    /// dictionaries. So `"a"` and `"\u0061"` are one name, and so are a precomposed `é` and `e` + U+0301, or `K` and the
    /// Kelvin sign U+212A: Python's reader keeps those apart, while the Swift readers merge them into one member.
    package static func firstDuplicate(in bytes: some Collection<UInt8>) -> (name: String, depth: Int)? {
        let bytes = Array(bytes)
        // One entry per open object or array: the names seen so far in an object, `nil` for an array.
        var open: [Set<String>?] = []
        var expectingName = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let start = index + 1
                var end = start
                var escaped = false
                while end < bytes.count {
                    let current = bytes[end]
                    if escaped {
                        escaped = false
                    } else if current == UInt8(ascii: "\\") {
                        escaped = true
                    } else if current == UInt8(ascii: "\"") {
                        break
                    }
                    end += 1
                }
                if expectingName, let last = open.indices.last, open[last] != nil {
                    let name = String(decoding: unescaped(bytes[start..<min(end, bytes.count)]), as: UTF8.self)
                    // Inserted in place: a copy of the set taken out and written back copied every earlier name for
                    // each new one (100,000 members took two minutes).
                    if open[last]?.insert(name).inserted == false { return (name, open.count) }
                    expectingName = false
                }
                index = end + 1
                continue
            case UInt8(ascii: "{"):
                open.append([])
                expectingName = true
            case UInt8(ascii: "["):
                open.append(nil)
                expectingName = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = open.popLast()
                expectingName = false
            case UInt8(ascii: ","):
                expectingName = open.last.map { $0 != nil } ?? false
            case UInt8(ascii: ":"):
                expectingName = false
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The UTF-8 of a JSON string's content with its escapes undone; an escape that is not JSON's is kept as written
    /// (the JSON reader refuses the text anyway). A lone surrogate becomes U+FFFD.
    package static func unescaped(_ raw: ArraySlice<UInt8>) -> [UInt8] {
        guard raw.contains(UInt8(ascii: "\\")) else { return Array(raw) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var scalars: [UInt16] = []
        func flushUnits() {
            guard !scalars.isEmpty else { return }
            out += Array(String(decoding: scalars, as: UTF16.self).utf8)
            scalars.removeAll()
        }
        var index = raw.startIndex
        while index < raw.endIndex {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < raw.endIndex else {
                flushUnits()
                out.append(byte)
                index += 1
                continue
            }
            let code = raw[index + 1]
            if code == UInt8(ascii: "u"), index + 6 <= raw.endIndex,
               let unit = UInt16(String(decoding: raw[(index + 2)..<(index + 6)], as: UTF8.self), radix: 16) {
                scalars.append(unit)
                index += 6
                continue
            }
            flushUnits()
            switch code {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(code)
            default: out += [byte, code]
            }
            index += 2
        }
        flushUnits()
        return out
    }
}
