import Foundation
import PeonAudit
import PeonTestSupport
import Testing

/// `audit prove` and `audit consistency` stream the log once and hold O(log n) hashes. They held every leaf hash
/// (~90 bytes each with the array's overhead): a log of 100 million entries took gigabytes to prove one entry.
@Suite("audit proofs in bounded memory", .serialized)
struct AuditProofMemoryTests {
    /// A signed log of small valid entries, written directly (the writer's locking and checks would take minutes
    /// for this many in a debug build): the lines are the writer's format, checked against ``AuditEntry``.
    struct GeneratedLog {
        var path: String
        var size: Int
        var root: [UInt8]
        /// The leaf hash of entry `size / 2`, the one the test proves.
        var middleLeaf: [UInt8]
    }

    static let time = "2026-11-21T20:00:00.000000Z"
    static let record = AuditRecord(run: "r", module: "m", moduleSHA256: "", call: "fs.read", resource: "fs:/a", decision: .allow)

    /// Writes the first `sizes[i]` entries of one chained log to `paths[i]`, each with its signed checkpoint.
    static func generate(_ paths: [String], sizes: [Int], signer: CheckpointSigner) throws -> [GeneratedLog] {
        let template = AuditEntry(seq: 0, time: time, record: record, prev: AuditEntry.zeroPrev).serialized()
        let head = Array("{\"seq\":0,\"time\":\"\(time)\"".utf8)
        let tail = Array(",\"prev\":\"\(AuditEntry.zeroPrev)\"}".utf8)
        try #require(template.starts(with: head) && template.suffix(tail.count).elementsEqual(tail), "the entry format changed")
        let middle = Array(template[head.count..<(template.count - tail.count)])
        let timeBytes = Array(",\"time\":\"\(time)\"".utf8)

        let largest = try #require(sizes.max())
        let handles = try paths.map { path in
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return try #require(FileHandle(forWritingAtPath: path))
        }
        var buffers = Array(repeating: [UInt8](), count: paths.count)
        var logs: [GeneratedLog] = zip(paths, sizes).map { GeneratedLog(path: $0, size: $1, root: [], middleLeaf: []) }
        var tree = CompactTree()
        var prev = [UInt8](repeating: 0, count: 32)
        var line: [UInt8] = []
        for seq in 0..<largest {
            line.removeAll(keepingCapacity: true)
            line += "{\"seq\":".utf8
            line += String(seq).utf8
            line += timeBytes
            line += middle
            line += ",\"prev\":\"".utf8
            appendHex(prev, to: &line)
            line += "\"}".utf8
            if seq == 1 || seq == largest - 1 {
                #expect(line == AuditEntry(seq: UInt64(seq), time: time, record: record, prev: hexString(prev)).serialized())
            }
            let leaf = RFC6962.leafHash(line)
            tree.append(leafHash: leaf)
            prev = leaf
            for i in logs.indices where seq < logs[i].size {
                buffers[i] += line
                buffers[i].append(0x0A)
                if seq == logs[i].size / 2 { logs[i].middleLeaf = leaf }
                if seq + 1 == logs[i].size { logs[i].root = tree.rootHash }
                if buffers[i].count >= 4 << 20 {
                    try handles[i].write(contentsOf: buffers[i])
                    buffers[i].removeAll(keepingCapacity: true)
                }
            }
        }
        for i in logs.indices {
            try handles[i].write(contentsOf: buffers[i])
            try handles[i].close()
            let note = try signer.sign(Checkpoint(origin: signer.name, size: UInt64(logs[i].size), rootHash: logs[i].root))
            try Data(note.utf8).write(to: URL(fileURLWithPath: logs[i].path + ".checkpoint"))
        }
        return logs
    }

    static func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        appendHex(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(ofHex text: String) throws -> [UInt8] {
        let utf8 = Array(text.utf8)
        try #require(utf8.count % 2 == 0)
        return try stride(from: 0, to: utf8.count, by: 2).map { i in
            try #require(UInt8(String(decoding: utf8[i..<(i + 2)], as: UTF8.self), radix: 16))
        }
    }

    /// The peak RSS of `audit prove` and `audit consistency` over a log 8 times larger grows by less than 8 MiB.
    /// Streaming, it does not grow (~37 MB either way, within 1 MB: the proof is 19 hashes, the fold a few dozen);
    /// holding every leaf hash (at least 72 bytes each), the 280,000 extra entries took over 20 MB more. Measured as
    /// a difference, so the binary's own size and the allocator's habits cancel out. Each proof must also verify
    /// against the signed checkpoint.
    @Test func proveAndConsistencyPeakMemoryDoesNotGrowWithTheLog() throws {
        try withTemporaryDirectory { folder in
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 7, count: 32))
            let logs = try Self.generate([folder.appendingPathComponent("small.jsonl").path,
                                          folder.appendingPathComponent("large.jsonl").path],
                                         sizes: [40_000, 320_000], signer: signer)
            var peaks: [String: [Int]] = [:]
            for log in logs {
                let seq = log.size / 2
                let prove = try runPeonWasmMeasuringMemory(["audit", "prove", log.path, String(seq), "--key", signer.verifierKey],
                                                           directory: folder)
                try #require(prove.result.status == 0, "\(prove.result.stderr)")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(prove.result.stdout.utf8)) as? [String: Any])
                let hashes = try (try #require(json["hashes"] as? [String])).map { try Self.bytes(ofHex: $0) }
                #expect(json["tree_size"] as? Int == log.size)
                #expect(json["leaf_hash"] as? String == Self.hexString(log.middleLeaf))
                try RFC6962.verifyInclusion(index: UInt64(seq), treeSize: UInt64(log.size), leafHash: log.middleLeaf,
                                            proof: hashes, rootHash: log.root)
                peaks["prove", default: []].append(try #require(prove.peakBytes))

                let consistency = try runPeonWasmMeasuringMemory(["audit", "consistency", log.path, String(log.size / 3)],
                                                                 directory: folder)
                try #require(consistency.result.status == 0, "\(consistency.result.stderr)")
                #expect(consistency.result.stdout.contains("\"new_root\":\"\(Self.hexString(log.root))\""))
                peaks["consistency", default: []].append(try #require(consistency.peakBytes))
            }
            for (command, bytes) in peaks {
                #expect(bytes[1] - bytes[0] < 8 << 20, "peak RSS of audit \(command): \(bytes[0]) bytes at 40,000 entries, \(bytes[1]) at 320,000")
            }
        }
    }
}
