import Crypto
import Foundation
import PeonAudit
import Testing

/// The Merkle tree must be RFC 6962 exactly, or no standard tool can check our logs.
///
/// The reference data comes from `Vectors/generate.py` (hashlib, the RFC's recursive definitions, and the roots
/// published with Certificate Transparency's tests). The proofs are also checked by ``IndependentVerifier``, a
/// second verifier in this file that rebuilds roots top-down from the RFC 6962 definitions, unlike the library's
/// RFC 9162 bit-walking verifier.
@Suite struct MerkleTreeTests {
    struct ReferenceTree: Decodable {
        struct Inclusion: Decodable {
            var leaf_index: Int
            var tree_size: Int
            var leaf_hash: String
            var root_hash: String
            var hashes: [String]
        }
        struct Consistency: Decodable {
            var old_size: Int
            var new_size: Int
            var old_root: String
            var new_root: String
            var hashes: [String]
        }
        var leaves: [String]
        var roots: [String]
        var inclusion: [Inclusion]
        var consistency: [Consistency]
    }

    static func reference() throws -> ReferenceTree {
        let url = try #require(Bundle.module.url(forResource: "Vectors/rfc6962-reference-tree", withExtension: "json"))
        return try JSONDecoder().decode(ReferenceTree.self, from: Data(contentsOf: url))
    }

    @Test func everyPrefixOfTheCTReferenceTreeHasThePublishedRoot() throws {
        let ref = try Self.reference()
        let leaves = try ref.leaves.map { try #require(fromHex($0)) }
        let hashes = leaves.map { RFC6962.leafHash($0) }
        var compact = CompactTree()
        #expect(toHex(compact.rootHash) == ref.roots[0])
        for n in 1...leaves.count {
            compact.append(leafHash: hashes[n - 1])
            #expect(toHex(RFC6962.rootHash(leafHashes: hashes[..<n])) == ref.roots[n], "recursive root of size \(n)")
            #expect(toHex(compact.rootHash) == ref.roots[n], "compact root of size \(n)")
        }
    }

    @Test func inclusionProofsMatchTheReferenceAndVerifyTwoWays() throws {
        let ref = try Self.reference()
        let hashes = try ref.leaves.map { RFC6962.leafHash(try #require(fromHex($0))) }
        var failures: [String] = []
        for v in ref.inclusion {
            let proof = try RFC6962.inclusionProof(index: v.leaf_index, leafHashes: hashes[..<v.tree_size])
            if proof.map(toHex) != v.hashes { failures.append("proof \(v.leaf_index)@\(v.tree_size) differs") }
            let root = try #require(fromHex(v.root_hash))
            do {
                try RFC6962.verifyInclusion(index: UInt64(v.leaf_index), treeSize: UInt64(v.tree_size),
                                            leafHash: hashes[v.leaf_index], proof: proof, rootHash: root)
            } catch { failures.append("library rejects \(v.leaf_index)@\(v.tree_size): \(error)") }
            if IndependentVerifier.root(index: v.leaf_index, size: v.tree_size, leaf: hashes[v.leaf_index], proof: proof[...]) != root {
                failures.append("independent verifier rejects \(v.leaf_index)@\(v.tree_size)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures)")
    }

    @Test func consistencyProofsMatchTheReferenceAndVerifyTwoWays() throws {
        let ref = try Self.reference()
        let hashes = try ref.leaves.map { RFC6962.leafHash(try #require(fromHex($0))) }
        var failures: [String] = []
        for v in ref.consistency {
            let proof = try RFC6962.consistencyProof(oldSize: v.old_size, leafHashes: hashes[..<v.new_size])
            if proof.map(toHex) != v.hashes { failures.append("proof \(v.old_size)->\(v.new_size) differs") }
            let old = try #require(fromHex(v.old_root)), new = try #require(fromHex(v.new_root))
            do {
                try RFC6962.verifyConsistency(oldSize: UInt64(v.old_size), newSize: UInt64(v.new_size),
                                              oldRoot: old, newRoot: new, proof: proof)
            } catch { failures.append("library rejects \(v.old_size)->\(v.new_size): \(error)") }
            if v.old_size > 0, v.old_size < v.new_size,
               !IndependentVerifier.consistent(oldSize: v.old_size, newSize: v.new_size, oldRoot: old, newRoot: new, proof: proof) {
                failures.append("independent verifier rejects \(v.old_size)->\(v.new_size)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures)")
    }

    /// Every proof for every pair of sizes up to 40 verifies independently, and every one-bit change, dropped hash
    /// or wrong index is refused by the library's verifier.
    @Test func proofsOfLargerTreesVerifyAndTamperedProofsAreRefused() throws {
        let hashes = (0..<40).map { RFC6962.leafHash(Array("leaf \($0)".utf8)) }
        var failures: [String] = []
        for n in 1...hashes.count {
            let root = RFC6962.rootHash(leafHashes: hashes[..<n])
            for m in 0..<n {
                let proof = try RFC6962.inclusionProof(index: m, leafHashes: hashes[..<n])
                if IndependentVerifier.root(index: m, size: n, leaf: hashes[m], proof: proof[...]) != root {
                    failures.append("inclusion \(m)@\(n)")
                }
                for i in proof.indices {
                    var bad = proof
                    bad[i][i % 32] ^= 0x01
                    if (try? RFC6962.verifyInclusion(index: UInt64(m), treeSize: UInt64(n), leafHash: hashes[m], proof: bad, rootHash: root)) != nil {
                        failures.append("flipped bit accepted in inclusion \(m)@\(n) hash \(i)")
                    }
                }
                if !proof.isEmpty, (try? RFC6962.verifyInclusion(index: UInt64(m), treeSize: UInt64(n), leafHash: hashes[m],
                                                                 proof: Array(proof.dropLast()), rootHash: root)) != nil {
                    failures.append("truncated inclusion proof accepted \(m)@\(n)")
                }
                if n > 1, (try? RFC6962.verifyInclusion(index: UInt64((m + 1) % n), treeSize: UInt64(n), leafHash: hashes[m],
                                                        proof: proof, rootHash: root)) != nil {
                    failures.append("wrong index accepted \(m)@\(n)")
                }
            }
            for m in 1..<n {
                let old = RFC6962.rootHash(leafHashes: hashes[..<m])
                let proof = try RFC6962.consistencyProof(oldSize: m, leafHashes: hashes[..<n])
                if !IndependentVerifier.consistent(oldSize: m, newSize: n, oldRoot: old, newRoot: root, proof: proof) {
                    failures.append("independent consistency \(m)->\(n)")
                }
                do {
                    try RFC6962.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: old, newRoot: root, proof: proof)
                } catch { failures.append("library consistency \(m)->\(n): \(error)") }
                for i in proof.indices {
                    var bad = proof
                    bad[i][31] ^= 0x80
                    if (try? RFC6962.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: old, newRoot: root, proof: bad)) != nil {
                        failures.append("flipped bit accepted in consistency \(m)->\(n) hash \(i)")
                    }
                }
                if (try? RFC6962.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: root, newRoot: old, proof: proof)) != nil {
                    failures.append("swapped roots accepted \(m)->\(n)")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures: \(failures.prefix(20))")
    }

    @Test func proofRequestsOutsideTheTreeAreErrorsNotCrashes() {
        let hashes = (0..<5).map { RFC6962.leafHash([UInt8($0)]) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RFC6962.inclusionProof(index: 5, leafHashes: hashes[...]) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RFC6962.inclusionProof(index: -1, leafHashes: hashes[...]) }
        #expect(throws: AuditError(.invalidArgument, "")) { try RFC6962.consistencyProof(oldSize: 6, leafHashes: hashes[...]) }
        #expect(throws: AuditError(.invalidArgument, "")) {
            try RFC6962.verifyInclusion(index: 9, treeSize: 5, leafHash: hashes[0], proof: [], rootHash: hashes[0])
        }
    }
}

/// A second RFC 6962 proof verifier, written from the recursive definitions of §2.1.1 and §2.1.2 (the proof is
/// consumed from its end, top of the tree first), with its own hashing. It shares no code with the library.
enum IndependentVerifier {
    static func leaf(_ b: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: [0] + b)) }
    static func node(_ l: [UInt8], _ r: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: [1] + l + r)) }
    static func split(_ n: Int) -> Int { var k = 1; while k * 2 < n { k *= 2 }; return k }

    /// The root an inclusion proof implies, or nil if the proof has the wrong shape.
    static func root(index m: Int, size n: Int, leaf: [UInt8], proof: ArraySlice<[UInt8]>) -> [UInt8]? {
        if n == 1 { return proof.isEmpty ? leaf : nil }
        guard let sibling = proof.last else { return nil }
        let k = split(n)
        if m < k {
            return root(index: m, size: k, leaf: leaf, proof: proof.dropLast()).map { node($0, sibling) }
        }
        return root(index: m - k, size: n - k, leaf: leaf, proof: proof.dropLast()).map { node(sibling, $0) }
    }

    /// Whether a consistency proof shows the old tree is a prefix of the new one (requires 0 < old < new).
    static func consistent(oldSize: Int, newSize: Int, oldRoot: [UInt8], newRoot: [UInt8], proof: [[UInt8]]) -> Bool {
        guard let (o, n) = sub(m: oldSize, n: newSize, proof: proof[...], complete: true, oldRoot: oldRoot) else { return false }
        return o == oldRoot && n == newRoot
    }

    /// (old subtree hash, new subtree hash) for the subtree of `n` leaves of which the first `m` are old.
    private static func sub(m: Int, n: Int, proof: ArraySlice<[UInt8]>, complete: Bool,
                            oldRoot: [UInt8]) -> ([UInt8], [UInt8])? {
        if m == n {
            if complete { return proof.isEmpty ? (oldRoot, oldRoot) : nil }
            return proof.count == 1 ? (proof[proof.startIndex], proof[proof.startIndex]) : nil
        }
        guard let sibling = proof.last else { return nil }
        let k = split(n)
        if m <= k {
            guard let (o, nw) = sub(m: m, n: k, proof: proof.dropLast(), complete: complete, oldRoot: oldRoot) else { return nil }
            return (o, node(nw, sibling))
        }
        guard let (o, nw) = sub(m: m - k, n: n - k, proof: proof.dropLast(), complete: false, oldRoot: oldRoot) else { return nil }
        return (node(sibling, o), node(sibling, nw))
    }
}

func toHex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

func fromHex(_ s: String) -> [UInt8]? {
    var out: [UInt8] = []
    var it = s.makeIterator()
    while let hi = it.next() {
        guard let lo = it.next(), let byte = UInt8(String([hi, lo]), radix: 16) else { return nil }
        out.append(byte)
    }
    return out
}
