import Crypto
import PeonSystem

/// The RFC 6962 §2.1 Merkle Tree Hash, with named domain-separation prefixes.
///
/// - Leaf hash: `SHA-256(0x00 || leaf)` — `leaf` is the exact bytes of one log line without its newline.
/// - Node hash: `SHA-256(0x01 || left || right)`.
/// - The hash of an empty tree is `SHA-256("")`.
/// - A tree of `n > 1` leaves splits at `k`, the largest power of two smaller than `n`.
///
/// All hashes are 32-byte arrays. The same definitions are used by Certificate Transparency, Go's checksum
/// database and Sigstore, so any of their verifiers can check our proofs.
public enum RFC6962 {
    /// The byte prefixed to a leaf before hashing (second-preimage protection).
    public static let leafPrefix: UInt8 = 0x00
    /// The byte prefixed to two child hashes before hashing.
    public static let nodePrefix: UInt8 = 0x01

    /// `SHA-256(0x00 || leaf)`.
    public static func leafHash(_ leaf: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        withUnsafeBytes(of: leafPrefix) { hasher.update(bufferPointer: $0) }
        let hashedInPlace: Void? = leaf.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        if hashedInPlace == nil { hasher.update(data: Array(leaf)) }
        return bytes(of: hasher.finalize())
    }

    /// `SHA-256(0x01 || left || right)`.
    public static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        withUnsafeBytes(of: nodePrefix) { hasher.update(bufferPointer: $0) }
        left.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        right.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return bytes(of: hasher.finalize())
    }

    /// A digest's 32 bytes, copied at once (`Array(digest)` walks the digest as a sequence, byte by byte).
    static func bytes(of digest: SHA256.Digest) -> [UInt8] {
        digest.withUnsafeBytes { Array($0) }
    }

    /// The hash of the empty tree, `SHA-256("")`.
    public static var emptyRoot: [UInt8] { Array(SHA256.hash(data: [UInt8]())) }

    /// The largest power of two strictly smaller than `n` (requires `n >= 2`).
    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// The Merkle Tree Hash of the given leaf hashes (`MTH(D[n])` with the leaf hashes precomputed).
    public static func rootHash(leafHashes: ArraySlice<[UInt8]>) -> [UInt8] {
        switch leafHashes.count {
        case 0: return emptyRoot
        case 1: return leafHashes[leafHashes.startIndex]
        default:
            let k = split(leafHashes.count)
            let mid = leafHashes.startIndex + k
            return nodeHash(rootHash(leafHashes: leafHashes[..<mid]), rootHash(leafHashes: leafHashes[mid...]))
        }
    }

    /// The audit path `PATH(m, D[n])` of RFC 6962 §2.1.1 for leaf `index` in the tree of the given leaf hashes,
    /// ordered from the leaf's sibling up to the root's child.
    ///
    /// Requires `0 <= index < leafHashes.count`; otherwise throws ``AuditError/Code/invalidArgument``. This holds
    /// every leaf hash; `audit prove` streams the log instead (``inclusionRanges(index:treeSize:)``, ``RangeRoots``).
    public static func inclusionProof(index: Int, leafHashes: ArraySlice<[UInt8]>) throws(AuditError) -> [[UInt8]] {
        guard index >= 0, index < leafHashes.count else {
            throw AuditError(.invalidArgument, "leaf index \(index) is outside a tree of size \(leafHashes.count)")
        }
        return try inclusionRanges(index: UInt64(index), treeSize: UInt64(leafHashes.count))
            .map { rootHash(leafHashes: slice(leafHashes, $0)) }
    }

    /// The consistency proof `PROOF(m, D[n])` of RFC 6962 §2.1.2 between the first `oldSize` leaves and all of them.
    ///
    /// Requires `0 <= oldSize <= leafHashes.count`. The proof is empty when `oldSize` is 0 or equals the tree size.
    /// This holds every leaf hash; `audit consistency` streams the log instead (``consistencyRanges(oldSize:newSize:)``).
    public static func consistencyProof(oldSize: Int, leafHashes: ArraySlice<[UInt8]>) throws(AuditError) -> [[UInt8]] {
        guard oldSize >= 0, oldSize <= leafHashes.count else {
            throw AuditError(.invalidArgument,
                             "old size \(oldSize) is outside a tree of size \(leafHashes.count); choose 0...\(leafHashes.count)")
        }
        return try consistencyRanges(oldSize: UInt64(oldSize), newSize: UInt64(leafHashes.count))
            .map { rootHash(leafHashes: slice(leafHashes, $0)) }
    }

    /// The leaf hashes of `range` (leaf indices from the slice's start); the range lies inside the slice.
    private static func slice(_ leafHashes: ArraySlice<[UInt8]>, _ range: Range<UInt64>) -> ArraySlice<[UInt8]> {
        leafHashes[(leafHashes.startIndex + Int(range.lowerBound))..<(leafHashes.startIndex + Int(range.upperBound))]
    }

    /// The largest power of two strictly smaller than `n` (requires `n >= 2`), without a loop that could overflow.
    static func split(_ n: UInt64) -> UInt64 {
        1 << (63 - UInt64((n - 1).leadingZeroBitCount))
    }

    /// The leaf ranges whose Merkle Tree Hashes, in order, are the audit path `PATH(index, D[treeSize])` of RFC 6962
    /// §2.1.1: the sibling subtrees from the leaf's up to the root's child.
    ///
    /// The ranges are disjoint and depend on `index` and `treeSize` alone, so the path can be computed by folding
    /// the leaves as they stream past (``RangeRoots``) instead of holding them: at most 64 ranges, whatever the size.
    /// Requires `index < treeSize`; otherwise throws ``AuditError/Code/invalidArgument``.
    public static func inclusionRanges(index: UInt64, treeSize: UInt64) throws(AuditError) -> [Range<UInt64>] {
        guard index < treeSize else {
            throw AuditError(.invalidArgument, "leaf index \(index) is outside a tree of size \(treeSize)")
        }
        // PATH(m, D[lo..<hi]) is PATH(m, the half holding m) followed by MTH(the other half): walking down from the
        // root gives the ranges top first, and the path lists them leaf side first.
        var ranges: [Range<UInt64>] = []
        var lo: UInt64 = 0
        var hi = treeSize
        while hi - lo > 1 {
            let mid = lo + split(hi - lo)
            if index < mid {
                ranges.append(mid..<hi)
                hi = mid
            } else {
                ranges.append(lo..<mid)
                lo = mid
            }
        }
        return ranges.reversed()
    }

    /// The leaf ranges whose Merkle Tree Hashes, in order, are the consistency proof `PROOF(oldSize, D[newSize])`
    /// of RFC 6962 §2.1.2 (empty when `oldSize` is 0 or equals `newSize`).
    ///
    /// Like ``inclusionRanges(index:treeSize:)``: disjoint, at most 65 (one per level, and the old tree's last
    /// subtree), computed from the two sizes alone.
    /// Requires `oldSize <= newSize`; otherwise throws ``AuditError/Code/invalidArgument``.
    public static func consistencyRanges(oldSize: UInt64, newSize: UInt64) throws(AuditError) -> [Range<UInt64>] {
        guard oldSize <= newSize else {
            throw AuditError(.invalidArgument, "old size \(oldSize) is larger than new size \(newSize)")
        }
        guard oldSize > 0, oldSize < newSize else { return [] }
        // SUBPROOF(m, D[lo..<hi], b): `oldSize` stays the absolute boundary, so m == n is `oldSize == hi` and
        // m <= k is `oldSize <= mid`. Each step takes the half without the boundary's path as one range.
        var ranges: [Range<UInt64>] = []
        var lo: UInt64 = 0
        var hi = newSize
        var complete = true
        while oldSize != hi {
            let mid = lo + split(hi - lo)
            if oldSize <= mid {
                ranges.append(mid..<hi)
                hi = mid
            } else {
                ranges.append(lo..<mid)
                lo = mid
                complete = false
            }
        }
        if !complete { ranges.append(lo..<hi) }
        return ranges.reversed()
    }

    /// Checks an inclusion proof (RFC 9162 §2.1.3.2): that `leafHash` is leaf `index` of the tree of `treeSize`
    /// leaves whose root is `rootHash`.
    ///
    /// Requires `index < treeSize`; a wrong size, a wrong proof length or a root mismatch throws
    /// ``AuditError/Code/checkpointMismatch`` naming both roots.
    public static func verifyInclusion(index: UInt64, treeSize: UInt64, leafHash: [UInt8], proof: [[UInt8]],
                                       rootHash: [UInt8]) throws(AuditError) {
        guard index < treeSize else {
            throw AuditError(.invalidArgument, "leaf index \(index) is not below tree size \(treeSize)")
        }
        var fn = index
        var sn = treeSize - 1
        var r = leafHash
        for p in proof {
            guard sn != 0 else { throw AuditError(.checkpointMismatch, "inclusion proof is longer than the tree allows") }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw AuditError(.checkpointMismatch, "inclusion proof is shorter than the tree requires") }
        guard r == rootHash else {
            throw AuditError(.checkpointMismatch,
                             "inclusion proof gives root \(hex(r)), expected \(hex(rootHash))")
        }
    }

    /// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `oldSize` leaves with root `oldRoot` is a
    /// prefix of the tree of `newSize` leaves with root `newRoot`.
    ///
    /// Requires `oldSize <= newSize`. Throws ``AuditError/Code/checkpointMismatch`` when the proof does not hold.
    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: [UInt8], newRoot: [UInt8],
                                         proof: [[UInt8]]) throws(AuditError) {
        guard oldSize <= newSize else {
            throw AuditError(.invalidArgument, "old size \(oldSize) is larger than new size \(newSize)")
        }
        if oldSize == newSize {
            guard proof.isEmpty, oldRoot == newRoot else {
                throw AuditError(.checkpointMismatch, "trees of equal size \(newSize) have different roots or a non-empty proof")
            }
            return
        }
        if oldSize == 0 {
            guard proof.isEmpty else { throw AuditError(.checkpointMismatch, "a proof from the empty tree must be empty") }
            return
        }
        guard !proof.isEmpty else { throw AuditError(.checkpointMismatch, "consistency proof is empty") }
        var path = proof[...]
        if oldSize & (oldSize - 1) == 0 { path = [oldRoot] + path }   // old tree is a complete subtree
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        guard let first = path.first else { throw AuditError(.checkpointMismatch, "consistency proof is empty") }
        var fr = first
        var sr = first
        for c in path.dropFirst() {
            guard sn != 0 else { throw AuditError(.checkpointMismatch, "consistency proof is longer than the trees allow") }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw AuditError(.checkpointMismatch, "consistency proof is shorter than the trees require") }
        guard fr == oldRoot else {
            throw AuditError(.checkpointMismatch, "consistency proof gives old root \(hex(fr)), expected \(hex(oldRoot))")
        }
        guard sr == newRoot else {
            throw AuditError(.checkpointMismatch, "consistency proof gives new root \(hex(sr)), expected \(hex(newRoot))")
        }
    }
}

/// The root of a growing RFC 6962 tree in O(log n) memory: the hashes of the perfect subtrees that the leaves
/// appended so far decompose into (a "compact range" starting at 0), largest first.
///
/// The writer keeps one to sign checkpoints without holding every leaf; the verifier keeps one to check that each
/// checkpoint is a prefix of the log while streaming through it.
public struct CompactTree: Sendable {
    /// The number of leaves appended.
    public private(set) var size: UInt64 = 0
    private var peaks: [[UInt8]] = []

    /// An empty tree.
    public init() {}

    /// The tree of `size` leaves whose perfect subtrees, largest (leftmost) first, have the root hashes `peaks`: one
    /// per bit set in `size`, as ``peaks`` lists them. `nil` when the count does not match or a hash is not 32 bytes.
    /// The peaks are what a checkpoint's root is folded from, so a tree resumed from them extends exactly the leaves
    /// they were taken from (``AuditLog`` resumes from a signed checkpoint's peaks instead of re-hashing every line).
    package init?(size: UInt64, peaks: [[UInt8]]) {
        guard peaks.count == size.nonzeroBitCount, peaks.allSatisfy({ $0.count == 32 }) else { return nil }
        self.size = size
        self.peaks = peaks
    }

    /// The root hashes of the perfect subtrees the leaves so far form, largest (leftmost) first.
    package var peakHashes: [[UInt8]] { peaks }

    /// Appends one leaf hash.
    public mutating func append(leafHash: [UInt8]) {
        var hash = leafHash
        var s = size
        while s & 1 == 1 {
            hash = RFC6962.nodeHash(peaks.removeLast(), hash)
            s >>= 1
        }
        peaks.append(hash)
        size += 1
    }

    /// The Merkle Tree Hash of the leaves appended so far.
    public var rootHash: [UInt8] {
        guard var hash = peaks.last else { return RFC6962.emptyRoot }
        for peak in peaks.dropLast().reversed() { hash = RFC6962.nodeHash(peak, hash) }
        return hash
    }
}

/// The Merkle Tree Hashes of a few disjoint leaf ranges, folded from the leaf hashes as they stream past in
/// order, in O(log n) memory: only the range the current leaf falls in is open, as one ``CompactTree``.
///
/// With the ranges of ``RFC6962/inclusionRanges(index:treeSize:)`` or ``RFC6962/consistencyRanges(oldSize:newSize:)``
/// this computes a proof in one pass over a log of any size, holding O(log n) hashes instead of every leaf hash.
public struct RangeRoots: Sendable {
    /// The ranges in leaf order, each with its place in the caller's list.
    private let order: [(range: Range<UInt64>, place: Int)]
    /// The next range of `order` to be completed.
    private var next = 0
    /// The open range's leaves so far.
    private var open = CompactTree()
    /// The roots found so far, in the caller's order.
    private var found: [[UInt8]?]
    /// The number of leaf hashes appended.
    public private(set) var leaves: UInt64 = 0
    /// One past the last leaf any range needs: the leaves from here on can be skipped.
    public let end: UInt64

    /// Folds the roots of `ranges` (in any order). Throws ``AuditError/Code/invalidArgument`` if one is empty or two
    /// overlap: a leaf belongs to at most one range.
    public init(_ ranges: [Range<UInt64>]) throws(AuditError) {
        let order = ranges.enumerated().map { (range: $0.element, place: $0.offset) }
            .sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (i, item) in order.enumerated() {
            guard !item.range.isEmpty else { throw AuditError(.invalidArgument, "an empty leaf range has no subtree root") }
            if i > 0, order[i - 1].range.upperBound > item.range.lowerBound {
                throw AuditError(.invalidArgument, "leaf ranges \(order[i - 1].range) and \(item.range) overlap")
            }
        }
        self.order = order
        self.found = Array(repeating: nil, count: ranges.count)
        self.end = order.last?.range.upperBound ?? 0
    }

    /// Appends the hash of leaf number ``leaves``.
    public mutating func append(leafHash: [UInt8]) {
        let index = leaves
        leaves += 1
        guard next < order.count, order[next].range.contains(index) else { return }
        open.append(leafHash: leafHash)
        if index + 1 == order[next].range.upperBound {
            found[order[next].place] = open.rootHash
            open = CompactTree()
            next += 1
        }
    }

    /// The roots of the ranges in the order they were given, or nil until every range's last leaf was appended.
    public var roots: [[UInt8]]? {
        guard next == order.count else { return nil }
        return found.compactMap { $0 }
    }
}

/// Bytes of lowercase or uppercase hex, or nil if the text is not hex of even length.
func unhex(_ text: some StringProtocol) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count / 2)
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var i = 0
    while i < utf8.count {
        guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
