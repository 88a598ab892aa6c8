import Crypto
import Foundation
import WAT
import PeonSystem

/// A module's bytes as read from a file, with its identity.
///
/// `.wat` files are converted to binary with WasmKit's text parser; anything else must be a binary
/// module. Every way a path can fail to be a module is a ``RunError`` naming the path.
public struct ModuleFile: Sendable {
    /// The path as given.
    public var path: String
    /// The binary module.
    public var bytes: [UInt8]
    /// Lowercase hex SHA-256 of ``bytes`` (for `.wat`, of the converted binary): the module's identity
    /// in the audit log and in grants' `sha256` pins.
    public var sha256: String

    /// A WebAssembly text error as a person reads it: WasmKit's `... at Location(line: 2, column: 1)` becomes
    /// `... at line 2, column 1`.
    static func describeTextError(_ error: any Error) -> String {
        var text = String(describing: error)
        while let start = text.range(of: "Location(line: "), let end = text[start.upperBound...].firstIndex(of: ")") {
            let inner = text[start.upperBound..<end].replacingOccurrences(of: "column: ", with: "column ")
            text.replaceSubrange(start.lowerBound...end, with: "line " + inner)
        }
        return text
    }

    /// The largest module file accepted, 256 MiB.
    public static let maximumSize = 256 << 20

    /// Reads and, for `.wat`, converts the module at `path`.
    ///
    /// The path is opened once and the descriptor examined and read (``BoundedRead``): a file swapped in after
    /// the check is never the one read, a FIFO or device is refused without waiting on it, and a file over
    /// ``maximumSize`` is refused by its size, unread. A `.wat` text may start with one UTF-8 byte order mark, which
    /// is dropped (``OperatorText``); the binary, and so ``sha256``, is the same as without it.
    public init(path: String) throws(RunError) {
        self.path = path
        var bytes: [UInt8]
        do throws(BoundedReadError) {
            bytes = try BoundedRead.contents(ofPath: path, limit: Self.maximumSize)
        } catch {
            switch error.kind {
            case .directory:
                throw RunError(.unreadableModule, "'\(path)' is a directory, not a module file; name a .wasm or .wat file")
            case .notRegular:
                throw RunError(.unreadableModule, "'\(path)' is not a module file: \(error.reason); name a .wasm or .wat file")
            case .tooLarge:
                throw RunError(.invalidModule, "'\(path)' is larger than the \(Self.maximumSize >> 20) MiB a module may have; check the path")
            case .cannotOpen, .readFailed:
                throw RunError(.unreadableModule, "cannot read module '\(path)': \(error.reason); check the path")
            }
        }
        if bytes.isEmpty {
            throw RunError(.invalidModule, "'\(path)' is empty; expected a WebAssembly module (.wasm) or its text form (.wat)")
        }
        if path.hasSuffix(".wat") || path.hasSuffix(".wast") {
            // Text is for modules written by hand. WasmKit's parser takes about a second per megabyte (before the run's
            // clock starts) and recurses once per nesting level: 3,000 nested blocks overflowed its stack and crashed
            // peon-wasm with a backtrace. Both are bounded here; a compiled `.wasm` has neither limit.
            if bytes.count > Self.maximumTextSize {
                throw RunError(.invalidModule, "'\(path)' is \(bytes.count) bytes of WebAssembly text, more than the \(Self.maximumTextSize >> 20) MiB a .wat module may have; compile it (e.g. wasm-tools parse \(path) -o module.wasm) and give the .wasm")
            }
            if let line = Self.lineNestingTooDeeply(bytes) {
                throw RunError(.invalidModule, "'\(path)':\(line): the text nests parentheses more than \(Self.maximumTextNesting) levels deep; compile it (e.g. wasm-tools parse \(path) -o module.wasm) and give the .wasm")
            }
            // Text an operator edits by hand: one leading byte order mark (Notepad's) is dropped, two are refused, as
            // for grants and policy files (``OperatorText``). WasmKit's parser would take the mark for a token.
            let text: String
            do throws(OperatorTextError) {
                text = try OperatorText.decode(bytes)
            } catch {
                switch error {
                case .notUTF8(_):
                    throw RunError(.invalidModule, "'\(path)' is not UTF-8 text, so it cannot be WebAssembly text format; "
                                   + "save it as UTF-8, or give the .wasm binary")
                case .repeatedByteOrderMark:
                    throw RunError(.invalidModule, "'\(path)': cannot read WebAssembly text: \(error.message)")
                }
            }
            if text.isEmpty {
                throw RunError(.invalidModule, "'\(path)' holds only a byte order mark; expected a WebAssembly module (.wasm) or its text form (.wat)")
            }
            do {
                bytes = try wat2wasm(text)
            } catch {
                throw RunError(.invalidModule, "'\(path)': invalid WebAssembly text: \(Self.describeTextError(error)); fix the text there (or give a compiled .wasm)")
            }
        } else if !bytes.starts(with: [0x00, 0x61, 0x73, 0x6d]) {
            throw RunError(.invalidModule,
                "'\(path)' is not a WebAssembly module (it does not start with \\0asm); give a .wasm binary, or a .wat file for text")
        }
        self.bytes = bytes
        self.sha256 = hex(SHA256.hash(data: bytes))
    }

    /// The most bytes a `.wat` text module may have: 4 MiB.
    static let maximumTextSize = 4 << 20
    /// The deepest a `.wat` text module may nest parentheses (block comments counted alike): 1,000.
    static let maximumTextNesting = 1000

    /// The 1-based line where WebAssembly text `bytes` first nests parentheses (or `(; ;)` block comments) deeper than
    /// ``maximumTextNesting``, outside strings and `;;` line comments; `nil` when it never does. One pass, no recursion.
    static func lineNestingTooDeeply(_ bytes: [UInt8]) -> Int? {
        let open = UInt8(ascii: "("), close = UInt8(ascii: ")"), semicolon = UInt8(ascii: ";")
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), newline = UInt8(ascii: "\n")
        var depth = 0
        var comments = 0
        var line = 1
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            let next: UInt8? = index + 1 < count ? bytes[index + 1] : nil
            if byte == newline { line += 1 }
            if comments > 0 {
                if byte == open && next == semicolon {
                    comments += 1
                    if comments > maximumTextNesting { return line }
                    index += 2
                } else if byte == semicolon && next == close {
                    comments -= 1
                    index += 2
                } else {
                    index += 1
                }
                continue
            }
            switch byte {
            case quote:
                index += 1
                while index < count && bytes[index] != quote {
                    if bytes[index] == newline { line += 1 }
                    index += bytes[index] == backslash ? 2 : 1
                }
                index += 1
                continue
            case semicolon where next == semicolon:
                while index < count && bytes[index] != newline { index += 1 }
                continue
            case open where next == semicolon:
                comments = 1
                index += 2
                continue
            case open:
                depth += 1
                if depth > maximumTextNesting { return line }
            case close:
                depth -= 1
            default:
                break
            }
            index += 1
        }
        return nil
    }
}
