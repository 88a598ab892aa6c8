import Foundation
import PeonAudit
import PeonSystem
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening a log resumes from `LOG.frontier` (the tree at the signed checkpoint) instead of re-hashing every entry,
/// only when the file agrees with the signed checkpoint and with the log; anything else is a full scan with every
/// check it always had, and nothing a writer signs afterwards can launder an entry altered before the checkpoint.
@Suite struct FrontierTests {
    let dir: TemporaryDirectory
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 7, count: 32))
    }

    /// A log of `count` entries, closed (so checkpointed, with its frontier).
    func makeLog(_ name: String, count: Int, checkpointEvery: Int = 1000) throws -> String {
        let path = dir.path + "/" + name
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: checkpointEvery)
        for i in 0..<count { try log.append(record(i), durability: .buffered) }
        try log.close()
        return path
    }

    /// Opens the log at `path`, expects it to have read `hashed` entries and to hold `size`, appends one, closes it
    /// and expects it to verify with `size + 1` entries.
    func reopenAppendAndVerify(_ path: String, hashed: UInt64, size: UInt64) throws {
        let log = try AuditLog.open(path: path, signer: signer)
        #expect(log.entriesHashedAtOpen == hashed)
        #expect(log.size == size)
        try log.append(record(Int(size)), durable: true)
        try log.close()
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == size + 1)
    }

    /// Every size shape of the tree (odd, even, powers of two and one past them): the reopened writer hashes nothing
    /// it already signed, and what it appends verifies with the same root a full scan computes.
    @Test(arguments: [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 100, 1025])
    func aReopenedLogResumesFromItsCheckpointAndStillVerifies(_ count: Int) throws {
        let path = try makeLog("resume-\(count).jsonl", count: count)
        #expect(FileManager.default.fileExists(atPath: path + ".frontier"))
        let log = try AuditLog.open(path: path, signer: signer)
        #expect(log.entriesHashedAtOpen == 0)
        #expect(log.size == UInt64(count))
        for i in 0..<3 { try log.append(record(count + i), durable: i == 1) }
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == UInt64(count + 3))
        #expect(summary.checkpoint.size == UInt64(count + 3))

        // The same log without its frontier: a full scan finds the same tree.
        try FileManager.default.removeItem(atPath: path + ".frontier")
        let scanned = try AuditLog.open(path: path, signer: signer)
        #expect(scanned.entriesHashedAtOpen == UInt64(count + 3))
        #expect(scanned.size == UInt64(count + 3))
        try scanned.close()
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == UInt64(count + 3))
    }

    /// Entries written after the last checkpoint (a writer that died before checkpointing them) are read and hashed
    /// as before, and only they are.
    @Test func entriesAfterTheCheckpointAreReadAndOnlyThey() throws {
        let path = try makeLog("tail.jsonl", count: 50)
        let saved = (checkpoint: try Data(contentsOf: URL(fileURLWithPath: path + ".checkpoint")),
                     frontier: try Data(contentsOf: URL(fileURLWithPath: path + ".frontier")))
        let log = try AuditLog.open(path: path, signer: signer)
        for i in 50..<57 { try log.append(record(i), durable: true) }
        try log.close()
        // As if the process had died before its final checkpoint: the checkpoint and frontier of 50 entries.
        try saved.checkpoint.write(to: URL(fileURLWithPath: path + ".checkpoint"))
        try saved.frontier.write(to: URL(fileURLWithPath: path + ".frontier"))

        try reopenAppendAndVerify(path, hashed: 7, size: 57)
    }

    /// What a frontier file may hold that does not check: each is ignored (a full scan), the log opens as before,
    /// and the next checkpoint writes a good one again.
    @Test(arguments: ["garbage", "empty", "wrong-peak", "wrong-prev", "offset-minus-one", "offset-past-end",
                      "size-of-another-checkpoint", "extra-line", "huge", "fifo", "symlink-to-dev-zero", "directory"])
    func aFrontierThatDoesNotCheckMeansAFullScan(_ damage: String) throws {
        let path = try makeLog("damaged.jsonl", count: 21)
        let frontierPath = path + ".frontier"
        let good = try String(contentsOfFile: frontierPath, encoding: .utf8)
        var lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func flipLastDigit(_ line: String) -> String { String(line.dropLast()) + (line.hasSuffix("0") ? "1" : "0") }
        try FileManager.default.removeItem(atPath: frontierPath)
        switch damage {
        case "garbage": try "not a frontier\n".write(toFile: frontierPath, atomically: false, encoding: .utf8)
        case "empty": try Data().write(to: URL(fileURLWithPath: frontierPath))
        case "wrong-peak": lines[4] = flipLastDigit(lines[4])
        case "wrong-prev": lines[3] = flipLastDigit(lines[3])
        case "offset-minus-one", "offset-past-end":
            let offset = try #require(Int64(lines[2].dropFirst("offset ".count)))
            lines[2] = "offset \(damage == "offset-minus-one" ? offset - 1 : offset + 1_000_000)"
        case "size-of-another-checkpoint": lines[1] = "size 20"
        case "extra-line": lines.insert("peak " + String(repeating: "0", count: 64), at: lines.count - 1)
        case "huge": try Data(repeating: 0x41, count: 1 << 20).write(to: URL(fileURLWithPath: frontierPath))
        case "fifo": #expect(mkfifo(frontierPath, 0o600) == 0)
        case "symlink-to-dev-zero": try FileManager.default.createSymbolicLink(atPath: frontierPath, withDestinationPath: "/dev/zero")
        case "directory": try FileManager.default.createDirectory(atPath: frontierPath, withIntermediateDirectories: false)
        default: Issue.record("unknown damage \(damage)")
        }
        if ["wrong-peak", "wrong-prev", "offset-minus-one", "offset-past-end", "size-of-another-checkpoint", "extra-line"].contains(damage) {
            try lines.joined(separator: "\n").write(toFile: frontierPath, atomically: false, encoding: .utf8)
        }
        try reopenAppendAndVerify(path, hashed: 21, size: 21)
        if damage != "directory" {
            // The final checkpoint put a frontier that checks back in place.
            #expect(try AuditLog.open(path: path, signer: signer).entriesHashedAtOpen == 0)
        }
    }

    /// A last entry longer than the first look back (8 KiB) is found all the same.
    @Test func aLongLastEntryIsFoundAtTheBoundary() throws {
        let path = dir.path + "/long.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        try log.append(record(0), durable: true)
        var long = record(1)
        for key in ["a", "b", "c", "d", "e"] { long.details[key] = String(repeating: key, count: 4000) }
        try log.append(long, durable: true)
        try log.close()
        #expect(try lines(of: path)[1].count > 20_000)
        let reopened = try AuditLog.open(path: path, signer: signer)
        #expect(reopened.entriesHashedAtOpen == 0)
        #expect(reopened.size == 2)
        try reopened.close()
    }

    /// The last entry the checkpoint covers is read and checked at every open: altered, cut or replaced, the open
    /// falls back to the full scan, which refuses the log as before.
    @Test(arguments: ["altered", "cut", "removed"])
    func theCheckpointsLastEntryIsCheckedAtEveryOpen(_ damage: String) throws {
        let path = try makeLog("boundary.jsonl", count: 12)
        var entries = try lines(of: path)
        switch damage {
        case "altered": entries[11] = Array(String(decoding: entries[11], as: UTF8.self).replacingOccurrences(of: "file-11", with: "file-XX").utf8)
        case "cut": entries[11].removeLast(5)
        default: entries.removeLast()
        }
        try Data(entries.map { $0 + [0x0A] }.joined()).write(to: URL(fileURLWithPath: path))
        #expect(throws: AuditError.self) { try AuditLog.open(path: path, signer: signer) }
    }

    /// An entry altered before the checkpoint's last one is not read at open, but never laundered: the writer resumes
    /// from the tree the key signed, so `audit verify` still finds the alteration after more appends and checkpoints,
    /// and putting the original bytes back makes the whole log, new checkpoint included, verify.
    @Test func anEntryAlteredBeforeTheCheckpointIsNeverResigned() throws {
        let path = try makeLog("launder.jsonl", count: 10)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let text = try #require(String(data: original, encoding: .utf8))
        let altered = text.replacingOccurrences(of: "file-3.txt", with: "file-X.txt")
        #expect(altered != text)
        try altered.write(toFile: path, atomically: false, encoding: .utf8)

        let log = try AuditLog.open(path: path, signer: signer)
        #expect(log.entriesHashedAtOpen == 0)
        for i in 10..<15 { try log.append(record(i), durable: true) }
        try log.close()
        // The chain breaks at the altered entry (its hash is no longer the next entry's `prev`).
        #expect(throws: AuditError(.brokenChain, "")) {
            try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        }

        var restored = try Data(contentsOf: URL(fileURLWithPath: path))
        let range = try #require(restored.range(of: Data("file-X.txt".utf8)))
        restored.replaceSubrange(range, with: Data("file-3.txt".utf8))
        try restored.write(to: URL(fileURLWithPath: path))
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 15)
        #expect(summary.checkpoint.size == 15)
    }

    /// The file's text round-trips, and its parser refuses what a writer never writes.
    @Test func theFrontierTextIsStrict() throws {
        let frontier = TreeFrontier(size: 5, offset: 1234, prev: Array(repeating: 0xAB, count: 32),
                                    peaks: [Array(repeating: 1, count: 32), Array(repeating: 0xAB, count: 32)])
        let text = String(decoding: frontier.serialized(), as: UTF8.self)
        #expect(TreeFrontier.parse(frontier.serialized()) == frontier)
        for bad in [text.replacingOccurrences(of: "size 5", with: "size 05"),
                    text.replacingOccurrences(of: "size 5", with: "size +5"),
                    text.replacingOccurrences(of: "size 5", with: "size 4"),
                    text.replacingOccurrences(of: "offset 1234", with: "offset 99999999999999999999"),
                    text.replacingOccurrences(of: "abab", with: "ABAB"),
                    String(text.dropLast()),
                    text + "\n",
                    text.replacingOccurrences(of: "frontier 1", with: "frontier 2")] {
            #expect(TreeFrontier.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
        #expect(TreeFrontier.parse(Array("peon-wasm audit frontier 1\nsize 0\noffset 0\nprev \(String(repeating: "0", count: 64))\n".utf8)) != nil)
    }
}
