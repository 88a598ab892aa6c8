/// Whether bytes are exactly one JSON text as RFC 8259 defines it, checked without building any value.
///
/// Foundation's readers are lenient: `JSONSerialization` and `JSONDecoder` take `{"a":1,}` and `[1,]` (a
/// trailing comma), which Python's, JavaScript's and Go's readers refuse. A message one reader takes and another
/// refuses is read by a gateway or a policy engine in front of us as an error, or as nothing, while we act on it;
/// so text that is not strict JSON is refused before any lenient reader sees it.
///
/// One pass, no recursion (nesting is tracked on a byte stack), no allocation beyond that stack.
package enum JSONSyntax {
    /// Where `bytes` stop being one strict JSON text, and why; `nil` when they are one (surrounded by nothing
    /// but JSON white space).
    package static func firstProblem(in bytes: some Collection<UInt8>) -> (offset: Int, reason: String)? {
        if let answer = bytes.withContiguousStorageIfAvailable({ check($0) }) { return answer }
        return Array(bytes).withUnsafeBufferPointer { check($0) }
    }

    /// What the checker expects next.
    private enum Expect {
        case value, valueOrClose, keyOrClose, key, colon, commaOrClose, end
    }

    private static func check(_ b: UnsafeBufferPointer<UInt8>) -> (offset: Int, reason: String)? {
        var stack: [UInt8] = []
        var expect = Expect.value
        var i = 0
        let n = b.count
        func afterValue() -> Expect { stack.isEmpty ? .end : .commaOrClose }
        while true {
            while i < n, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
            guard i < n else {
                return expect == .end ? nil : (i, "the text ends inside a JSON value")
            }
            let byte = b[i]
            switch expect {
            case .end:
                return (i, "text follows the JSON value")
            case .colon:
                guard byte == UInt8(ascii: ":") else { return (i, "':' expected after an object member's name") }
                i += 1
                expect = .value
            case .commaOrClose:
                if byte == UInt8(ascii: ",") {
                    i += 1
                    expect = stack.last == UInt8(ascii: "{") ? .key : .value
                } else if (byte == UInt8(ascii: "}") && stack.last == UInt8(ascii: "{"))
                            || (byte == UInt8(ascii: "]") && stack.last == UInt8(ascii: "[")) {
                    i += 1
                    stack.removeLast()
                    expect = afterValue()
                } else {
                    return (i, "',' or the end of the \(stack.last == UInt8(ascii: "{") ? "object" : "array") expected")
                }
            case .keyOrClose, .key:
                if expect == .keyOrClose && byte == UInt8(ascii: "}") {
                    i += 1
                    stack.removeLast()
                    expect = afterValue()
                } else if byte == UInt8(ascii: "\"") {
                    guard let end = stringEnd(b, from: i) else { return (i, "a malformed string") }
                    i = end
                    expect = .colon
                } else {
                    return (i, expect == .key ? "a member name expected after ',' (no trailing comma)" : "a member name or '}' expected")
                }
            case .value, .valueOrClose:
                if expect == .valueOrClose && byte == UInt8(ascii: "]") {
                    i += 1
                    stack.removeLast()
                    expect = afterValue()
                    continue
                }
                switch byte {
                case UInt8(ascii: "{"):
                    stack.append(byte)
                    i += 1
                    expect = .keyOrClose
                case UInt8(ascii: "["):
                    stack.append(byte)
                    i += 1
                    expect = .valueOrClose
                case UInt8(ascii: "\""):
                    guard let end = stringEnd(b, from: i) else { return (i, "a malformed string") }
                    i = end
                    expect = afterValue()
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    guard let end = numberEnd(b, from: i) else { return (i, "a malformed number") }
                    i = end
                    expect = afterValue()
                case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                    let word: StaticString = byte == UInt8(ascii: "t") ? "true" : byte == UInt8(ascii: "f") ? "false" : "null"
                    let length = word.utf8CodeUnitCount
                    guard n - i >= length,
                          (0..<length).allSatisfy({ b[i + $0] == word.utf8Start[$0] }) else { return (i, "an unknown word") }
                    i += length
                    expect = afterValue()
                default:
                    return (i, expect == .value && !stack.isEmpty ? "a value expected (no trailing comma)" : "a value expected")
                }
            }
        }
    }

    /// The index just past the string starting with the quote at `start`, or `nil` when it is not one.
    private static func stringEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var i = start + 1
        let n = b.count
        while i < n {
            let byte = b[i]
            if byte == UInt8(ascii: "\"") { return i + 1 }
            if byte < 0x20 { return nil }
            if byte == UInt8(ascii: "\\") {
                guard i + 1 < n else { return nil }
                switch b[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard n - i >= 6, (2..<6).allSatisfy({ isHexDigit(b[i + $0]) }) else { return nil }
                    i += 6
                default:
                    return nil
                }
            } else {
                i += 1
            }
        }
        return nil
    }

    /// The index just past the number starting at `start`
    /// (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`), or `nil` when it is not one.
    private static func numberEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var i = start
        let n = b.count
        func isDigit(_ index: Int) -> Bool { index < n && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[index]) }
        if i < n, b[i] == UInt8(ascii: "-") { i += 1 }
        guard isDigit(i) else { return nil }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(i) { return nil }  // a leading zero
        } else {
            while isDigit(i) { i += 1 }
        }
        if i < n, b[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { return nil }
            while isDigit(i) { i += 1 }
        }
        if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < n, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { return nil }
            while isDigit(i) { i += 1 }
        }
        return i
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }
}
