import Crypto
import Foundation
import PeonAudit
import Testing

/// `audit prove` and `audit consistency` fold the log's leaves into the proof's subtree roots as they stream past
/// (``RFC6962/inclusionRanges(index:treeSize:)``, ``RFC6962/consistencyRanges(oldSize:newSize:)``, ``RangeRoots``)
/// instead of holding every leaf hash. Their proofs must be exactly those of the recursive definitions of RFC 6962
/// §2.1.1 and §2.1.2 (``ReferenceProofs``, the in-memory implementation the product used before), for every pair of
/// sizes up to 70 and for random pairs up to a few thousand, and must verify.
@Suite struct StreamingProofTests {
    let dir: TemporaryDirectory
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 7, count: 32))
    }

    static func leaves(_ count: Int) -> [[UInt8]] {
        (0..<count).map { IndependentVerifier.leaf(Array("leaf \($0)".utf8)) }
    }

    /// The roots of `ranges`, folded from `leaves` streamed once, in order (all of them, past the ranges too).
    static func streamed(_ ranges: [Range<UInt64>], _ leaves: [[UInt8]]) throws -> [[UInt8]] {
        var folder = try RangeRoots(ranges)
        for leaf in leaves { folder.append(leafHash: leaf) }
        return try #require(folder.roots)
    }

    @Test func streamedProofsEqualTheRecursiveDefinitionForEverySizeUpTo70() throws {
        let all = Self.leaves(70)
        var failures: [String] = []
        for n in 0...all.count {
            let tree = all[..<n]
            let root = ReferenceProofs.mth(tree)
            for m in 0..<n {
                let expected = ReferenceProofs.path(m, tree)
                let ranges = try RFC6962.inclusionRanges(index: UInt64(m), treeSize: UInt64(n))
                let proof = try Self.streamed(ranges, all)
                if proof != expected { failures.append("inclusion \(m)@\(n) streamed") }
                if try RFC6962.inclusionProof(index: m, leafHashes: tree) != expected { failures.append("inclusion \(m)@\(n) in memory") }
                do {
                    try RFC6962.verifyInclusion(index: UInt64(m), treeSize: UInt64(n), leafHash: all[m], proof: proof, rootHash: root)
                } catch { failures.append("inclusion \(m)@\(n) does not verify: \(error)") }
            }
            for m in 0...n {
                let expected = ReferenceProofs.proof(m, tree)
                let ranges = try RFC6962.consistencyRanges(oldSize: UInt64(m), newSize: UInt64(n))
                let proof = try Self.streamed(ranges, all)
                if proof != expected { failures.append("consistency \(m)->\(n) streamed") }
                if try RFC6962.consistencyProof(oldSize: m, leafHashes: tree) != expected { failures.append("consistency \(m)->\(n) in memory") }
                do {
                    try RFC6962.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: ReferenceProofs.mth(all[..<m]),
                                                  newRoot: root, proof: proof)
                } catch { failures.append("consistency \(m)->\(n) does not verify: \(error)") }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures.prefix(20))")
    }

    @Test func streamedProofsEqualTheRecursiveDefinitionForRandomSizesUpTo3000() throws {
        let all = Self.leaves(3000)
        var random = SplitMix64(seed: 0x5eed_6962)
        var failures: [String] = []
        for _ in 0..<40 {
            let n = Int(random.next() % 3000) + 1
            let m = Int(random.next() % UInt64(n))
            let old = Int(random.next() % UInt64(n + 1))
            let tree = all[..<n]
            let root = ReferenceProofs.mth(tree)
            let inclusion = try Self.streamed(try RFC6962.inclusionRanges(index: UInt64(m), treeSize: UInt64(n)), all)
            if inclusion != ReferenceProofs.path(m, tree) { failures.append("inclusion \(m)@\(n)") }
            if (try? RFC6962.verifyInclusion(index: UInt64(m), treeSize: UInt64(n), leafHash: all[m], proof: inclusion, rootHash: root)) == nil {
                failures.append("inclusion \(m)@\(n) does not verify")
            }
            let consistency = try Self.streamed(try RFC6962.consistencyRanges(oldSize: UInt64(old), newSize: UInt64(n)), all)
            if consistency != ReferenceProofs.proof(old, tree) { failures.append("consistency \(old)->\(n)") }
            if (try? RFC6962.verifyConsistency(oldSize: UInt64(old), newSize: UInt64(n), oldRoot: ReferenceProofs.mth(all[..<old]),
                                               newRoot: root, proof: consistency)) == nil {
                failures.append("consistency \(old)->\(n) does not verify")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures.prefix(20))")
    }

    /// Sizes from a hostile checkpoint or command line (up to 2^64 - 1) plan at most 64 ranges (65 for consistency)
    /// at once: nothing is allocated or looped per leaf, and no arithmetic overflows.
    @Test func theLargestSizesPlanAtMost65DisjointRanges() throws {
        for (index, size) in [(UInt64.max - 1, UInt64.max), (0, .max), (1 << 63, .max), (UInt64.max - 2, UInt64.max - 1)] {
            let ranges = try RFC6962.inclusionRanges(index: index, treeSize: size)
            // The sibling subtrees and the leaf itself partition the tree.
            #expect(ranges.count <= 64)
            #expect(ranges.allSatisfy { $0.upperBound <= size && !$0.contains(index) })
            #expect(ranges.map { $0.upperBound - $0.lowerBound }.reduce(0, +) == size - 1)
            _ = try RangeRoots(ranges)
        }
        for (old, new) in [(UInt64(1), UInt64.max), (.max - 1, .max), (1 << 63, .max), (3, 1 << 63 + 1)] {
            let ranges = try RFC6962.consistencyRanges(oldSize: old, newSize: new)
            #expect(!ranges.isEmpty && ranges.count <= 65)
            #expect(ranges.allSatisfy { $0.upperBound <= new })
            _ = try RangeRoots(ranges)
        }
        #expect(throws: AuditError(.invalidArgument, "")) { try RFC6962.inclusionRanges(index: 5, treeSize: 5) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RFC6962.consistencyRanges(oldSize: 6, newSize: 5) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RangeRoots([0..<4, 3..<6]) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RangeRoots([2..<2]) }
    }

    /// Writes a signed log of `count` entries and returns the leaf hash of each line.
    func writeLog(_ path: String, count: Int) throws -> [[UInt8]] {
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        for i in 0..<count { try log.append(record(i), durable: false) }
        try log.close()
        return try lines(of: path).map { IndependentVerifier.leaf($0) }
    }

    @Test func proofsFromALogFileEqualTheRecursiveDefinitionForEveryPairOfSizesUpTo70() throws {
        let path = dir.path + "/seventy.jsonl"
        let hashes = try writeLog(path, count: 70)
        #expect(hashes.count == 70)
        let root = ReferenceProofs.mth(hashes[...])
        var failures: [String] = []
        for seq in 0..<70 {
            let p = try AuditProofs.inclusion(logPath: path, seq: UInt64(seq), verifierKey: signer.verifierKey)
            if p.leafIndex != UInt64(seq) || p.treeSize != 70 || p.leafHash != hashes[seq] || p.rootHash != root
                || p.hashes != ReferenceProofs.path(seq, hashes[...]) { failures.append("inclusion \(seq)") }
        }
        for new in 0...70 {
            for old in 0...new {
                let p = try AuditProofs.consistency(logPath: path, oldSize: UInt64(old), newSize: UInt64(new), verifierKey: nil)
                if p.oldSize != UInt64(old) || p.newSize != UInt64(new) || p.oldRoot != ReferenceProofs.mth(hashes[..<old])
                    || p.newRoot != ReferenceProofs.mth(hashes[..<new]) || p.hashes != ReferenceProofs.proof(old, hashes[..<new]) {
                    failures.append("consistency \(old)->\(new)")
                }
            }
        }
        let byDefault = try AuditProofs.consistency(logPath: path, oldSize: 33, newSize: nil, verifierKey: nil)
        #expect(byDefault.newSize == 70 && byDefault.hashes == ReferenceProofs.proof(33, hashes[...]))
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures.prefix(20))")
    }

    @Test func proofsFromALargerLogFileEqualTheRecursiveDefinitionAtRandom() throws {
        let path = dir.path + "/larger.jsonl"
        let hashes = try writeLog(path, count: 2500)
        let root = ReferenceProofs.mth(hashes[...])
        var random = SplitMix64(seed: 0x10_6962)
        for _ in 0..<12 {
            let seq = Int(random.next() % 2500)
            let p = try AuditProofs.inclusion(logPath: path, seq: UInt64(seq), verifierKey: nil)
            #expect(p.hashes == ReferenceProofs.path(seq, hashes[...]), "inclusion \(seq)")
            #expect(p.leafHash == hashes[seq] && p.rootHash == root)
            try RFC6962.verifyInclusion(index: p.leafIndex, treeSize: p.treeSize, leafHash: p.leafHash, proof: p.hashes, rootHash: p.rootHash)
            let new = Int(random.next() % 2500) + 1
            let old = Int(random.next() % UInt64(new + 1))
            let c = try AuditProofs.consistency(logPath: path, oldSize: UInt64(old), newSize: UInt64(new), verifierKey: nil)
            #expect(c.hashes == ReferenceProofs.proof(old, hashes[..<new]), "consistency \(old)->\(new)")
            try RFC6962.verifyConsistency(oldSize: c.oldSize, newSize: c.newSize, oldRoot: c.oldRoot, newRoot: c.newRoot, proof: c.hashes)
        }
    }

    /// The checks before the proof are those of the in-memory implementation, in its order: a log that does not
    /// hold its checkpoint's entries is a mismatch (exit 10) before any argument is weighed against it (exit 13).
    @Test func aStreamedProofKeepsEveryCheckAndItsOrder() throws {
        let path = dir.path + "/checks.jsonl"
        _ = try writeLog(path, count: 9)
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.inclusion(logPath: path, seq: 9, verifierKey: nil) }
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.consistency(logPath: path, oldSize: 3, newSize: 10, verifierKey: nil) }
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.consistency(logPath: path, oldSize: 1, newSize: .max, verifierKey: nil) }
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.consistency(logPath: path, oldSize: 5, newSize: 4, verifierKey: nil) }
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.consistency(logPath: path, oldSize: .max, newSize: nil, verifierKey: nil) }

        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        // An entry altered: the root no longer matches.
        try Data(String(decoding: original, as: UTF8.self).replacingOccurrences(of: "file-4.txt", with: "file-X.txt").utf8)
            .write(to: URL(fileURLWithPath: path))
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditProofs.inclusion(logPath: path, seq: 1, verifierKey: nil) }
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditProofs.consistency(logPath: path, oldSize: 1, newSize: 3, verifierKey: nil) }
        // Truncated: the checkpoint covers more than the log, whatever the arguments say.
        let firstSix = original.split(separator: 0x0A).prefix(6).map { Data($0) + Data([0x0A]) }.reduce(Data(), +)
        try firstSix.write(to: URL(fileURLWithPath: path))
        for seq in [UInt64(2), 9, .max] {
            #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditProofs.inclusion(logPath: path, seq: seq, verifierKey: nil) }
        }
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditProofs.consistency(logPath: path, oldSize: 8, newSize: 2, verifierKey: nil) }
        // The checkpoint's signature is checked first when a key is given.
        try original.write(to: URL(fileURLWithPath: path))
        let other = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 8, count: 32))
        #expect(throws: AuditError(.badSignature, "")) { try AuditProofs.inclusion(logPath: path, seq: 1, verifierKey: other.verifierKey) }
        #expect(try AuditProofs.inclusion(logPath: path, seq: 1, verifierKey: signer.verifierKey).treeSize == 9)
    }
}

/// The recursive definitions of RFC 6962 §2.1 over leaf hashes held in memory, as the product computed proofs
/// before it streamed them: `MTH`, `PATH` (§2.1.1) and `PROOF`/`SUBPROOF` (§2.1.2), with the test's own hashing.
enum ReferenceProofs {
    static func split(_ n: Int) -> Int { var k = 1; while k * 2 < n { k *= 2 }; return k }

    static func mth(_ d: ArraySlice<[UInt8]>) -> [UInt8] {
        switch d.count {
        case 0: return Array(SHA256.hash(data: [UInt8]()))
        case 1: return d[d.startIndex]
        default:
            let mid = d.startIndex + split(d.count)
            return IndependentVerifier.node(mth(d[..<mid]), mth(d[mid...]))
        }
    }

    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        guard d.count > 1 else { return [] }
        let k = split(d.count)
        let mid = d.startIndex + k
        return m < k ? path(m, d[..<mid]) + [mth(d[mid...])] : path(m - k, d[mid...]) + [mth(d[..<mid])]
    }

    static func proof(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        guard m > 0, m < d.count else { return [] }
        return subproof(m, d, true)
    }

    static func subproof(_ m: Int, _ d: ArraySlice<[UInt8]>, _ complete: Bool) -> [[UInt8]] {
        let n = d.count
        if m == n { return complete ? [] : [mth(d)] }
        let k = split(n)
        let mid = d.startIndex + k
        return m <= k ? subproof(m, d[..<mid], complete) + [mth(d[mid...])] : subproof(m - k, d[mid...], false) + [mth(d[..<mid])]
    }
}

/// A small seeded generator (SplitMix64), so a failing random case can be rerun as it was.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
