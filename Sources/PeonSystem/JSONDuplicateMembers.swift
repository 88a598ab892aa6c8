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
        // One entry per open object: the names seen so far in it.
        var seen: [Int: Set<String>] = [:]
        var found: (name: String, depth: Int)?
        visitNames(bytes) { range, depth, objectsOpened in
            if objectsOpened { seen[depth] = [] }
            let name = String(decoding: unescaped(bytes[range]), as: UTF8.self)
            // Inserted in place: a copy of the set taken out and written back copied every earlier name for
            // each new one (100,000 members took two minutes).
            if seen[depth, default: []].insert(name).inserted == false {
                found = (name, depth)
                return false
            }
            return true
        }
        return found
    }

    /// The length in bytes (as written, escapes and all) of the longest member name in `bytes`, 0 when there is none.
    ///
    /// A reader that keys its objects by Swift `String` (as Foundation's and the MCP SDK's do, and as
    /// ``firstDuplicate(in:)`` does) puts each name in canonical order to hash it, which takes time that grows with the
    /// square of a run of combining marks written out of order: one 160 KB name stalled an MCP server for 23 s. A caller
    /// bounds names with this before any of those readers sees the text.
    package static func longestName(in bytes: some Collection<UInt8>) -> Int {
        var longest = 0
        visitNames(Array(bytes)) { range, _, _ in
            longest = max(longest, range.count)
            return true
        }
        return longest
    }

    /// The most combining marks (scalars of a canonical combining class other than 0) in a row in any member name of
    /// `bytes`, its escapes undone. Putting a name in canonical order sorts each such run, in time that grows with the
    /// square of its length: bounding the run keeps every reader of the name linear (200 names of 4 KB of marks each
    /// still took 11 s where only the length was bounded).
    package static func longestMarkRun(in bytes: some Collection<UInt8>) -> Int {
        let bytes = Array(bytes)
        var longest = 0
        visitNames(bytes) { range, _, _ in
            let name = String(decoding: unescaped(bytes[range]), as: UTF8.self)
            longest = max(longest, CombiningMarks.longestRun(in: name))
            return true
        }
        return longest
    }

    /// Calls `visit` with the byte range of each member name's content (between its quotes, escapes as written), the
    /// depth of its object (1 for the top-level object), and whether this is the first name of a newly opened object;
    /// stops when `visit` answers `false`. One pass, tracking only strings, objects and arrays.
    private static func visitNames(_ bytes: [UInt8], _ visit: (Range<Int>, Int, Bool) -> Bool) {
        // One entry per open object or array: whether it is an object, and whether a name was seen in it yet.
        var open: [(isObject: Bool, named: Bool)] = []
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
                if expectingName, let last = open.indices.last, open[last].isObject {
                    let first = !open[last].named
                    open[last].named = true
                    if !visit(start..<min(end, bytes.count), open.count, first) { return }
                    expectingName = false
                }
                index = end + 1
                continue
            case UInt8(ascii: "{"):
                open.append((true, false))
                expectingName = true
            case UInt8(ascii: "["):
                open.append((false, false))
                expectingName = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = open.popLast()
                expectingName = false
            case UInt8(ascii: ","):
                expectingName = open.last?.isObject ?? false
            case UInt8(ascii: ":"):
                expectingName = false
            default:
                break
            }
            index += 1
        }
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

/// Runs of combining marks, the input that makes Unicode's canonical ordering (and so Swift's `String` comparison and
/// hashing) quadratic.
package enum CombiningMarks {
    /// The most scalars with a canonical combining class other than 0 in a row in `text` (0 for ASCII, at once).
    package static func longestRun(in text: String) -> Int {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return 0 }
        var longest = 0
        var run = 0
        for scalar in text.unicodeScalars {
            if scalar.properties.canonicalCombiningClass.rawValue != 0 {
                run += 1
                longest = max(longest, run)
            } else {
                run = 0
            }
        }
        return longest
    }
}
