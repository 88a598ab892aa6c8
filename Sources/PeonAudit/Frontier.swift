#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonSystem

/// Where a log's tree stood at its latest checkpoint, kept in `LOG.frontier` so that opening the log resumes from
/// there instead of re-reading and re-hashing every line (which took a `peon-wasm run` 2.2 s on a 1,000,000-entry,
/// 410 MB log, and grew with every run).
///
/// It holds nothing to trust on its own: the tree's peaks must fold to the root of the checkpoint `LOG.checkpoint`
/// signs for the same size, the line that ends at `offset` must hash to `prev` and carry `seq` `size - 1`, and the
/// lines after it are read and hashed as before. Anything that does not check (no file, an older checkpoint, a cut
/// or altered boundary line, garbage) means a full scan, so the file can be deleted at any time.
///
/// The text, ASCII, one field per line:
///
/// ```
/// peon-wasm audit frontier 1
/// size 1000
/// offset 409218
/// prev <64 hex digits: the leaf hash of entry size-1>
/// peak <64 hex digits>          (one per bit set in size, largest subtree first)
/// ```
package struct TreeFrontier: Equatable, Sendable {
    /// The number of entries the tree holds.
    package var size: UInt64
    /// The byte offset just past the newline of entry `size - 1` (0 for an empty log).
    package var offset: Int64
    /// The leaf hash of entry `size - 1` (32 zero bytes for an empty log).
    package var prev: [UInt8]
    /// The tree's peaks (``CompactTree/peakHashes``).
    package var peaks: [[UInt8]]

    /// A frontier of `size` entries ending at byte `offset`.
    package init(size: UInt64, offset: Int64, prev: [UInt8], peaks: [[UInt8]]) {
        self.size = size
        self.offset = offset
        self.prev = prev
        self.peaks = peaks
    }

    /// The first line of the file.
    static let header = "peon-wasm audit frontier 1"
    /// Longer than any valid file (64 peaks at most): a larger one is not read.
    package static let maxBytes = 8192

    /// The file's text.
    package func serialized() -> [UInt8] {
        var text = Self.header + "\nsize \(size)\noffset \(offset)\nprev " + hex(prev) + "\n"
        for peak in peaks { text += "peak " + hex(peak) + "\n" }
        return Array(text.utf8)
    }

    /// Parses the file's text strictly; `nil` for anything else (a wrong count of peaks, a hash that is not 64
    /// lowercase hex digits, a number with a sign or leading zeros, an extra line).
    package static func parse(_ bytes: [UInt8]) -> TreeFrontier? {
        guard bytes.count <= maxBytes, bytes.last == UInt8(ascii: "\n") else { return nil }
        let lines = bytes.dropLast().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.count >= 4, String(decoding: lines[0], as: UTF8.self) == header,
              let size = number(lines[1], key: "size"), let offset = number(lines[2], key: "offset"),
              offset <= UInt64(Int64.max), let prev = hash(lines[3], key: "prev") else { return nil }
        var peaks: [[UInt8]] = []
        for line in lines.dropFirst(4) {
            guard let peak = hash(line, key: "peak") else { return nil }
            peaks.append(peak)
        }
        guard peaks.count == size.nonzeroBitCount, (size == 0) == (offset == 0) else { return nil }
        return TreeFrontier(size: size, offset: Int64(offset), prev: prev, peaks: peaks)
    }

    /// `KEY DIGITS`: a decimal without sign or leading zeros that fits 64 bits.
    private static func number(_ line: ArraySlice<UInt8>, key: String) -> UInt64? {
        let prefix = Array((key + " ").utf8)
        guard line.starts(with: prefix) else { return nil }
        let digits = line.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              digits.count == 1 || digits.first != 0x30 else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    /// `KEY HEX`: 32 bytes as 64 lowercase hex digits (as ``hex(_:)`` writes them: an uppercase digit is refused).
    private static func hash(_ line: ArraySlice<UInt8>, key: String) -> [UInt8]? {
        let prefix = Array((key + " ").utf8)
        guard line.starts(with: prefix) else { return nil }
        let digits = String(decoding: line.dropFirst(prefix.count), as: UTF8.self)
        guard digits.utf8.count == 64, let bytes = unhex(digits), hex(bytes) == digits else { return nil }
        return bytes
    }
}
