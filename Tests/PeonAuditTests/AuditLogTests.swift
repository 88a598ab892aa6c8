import Crypto
import Foundation
import Synchronization
import PeonAudit
import PeonSystem
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func record(_ i: Int, call: String = "fs.read", thread: Int = 0) -> AuditRecord {
    AuditRecord(run: "run-\(thread)", module: "m.wasm", moduleSHA256: String(repeating: "ab", count: 32), call: call,
                resource: "fs:/srv/file-\(i).txt", decision: i % 3 == 0 ? .deny : .allow, reason: "rule r\(i % 5)",
                policy: "v1", details: ["payload_len": String(i), "thread": String(thread), "i": String(i)])
}

func lines(of path: String) throws -> [[UInt8]] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var parts = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
    if parts.last == [] { parts.removeLast() }
    return parts
}

/// The writer: what it appends verifies, survives reopening, recovers a torn tail, and keeps other processes out.
@Suite struct AuditLogTests {
    let dir: TemporaryDirectory
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 7, count: 32))
    }

    /// A log moved away or removed while a process had it open: the process kept writing the file it had opened and
    /// published its checkpoint at the path, over another log's (or beside none), and the run ended 0. Publishing
    /// now refuses, and the log stops (the run ends 74).
    @Test(arguments: ["moved", "replaced", "removed"])
    func aLogMovedOrRemovedWhileOpenGetsNoCheckpointAtItsPath(_ how: String) throws {
        let path = dir.path + "/\(how).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<3 { try log.append(record(i), durable: true) }
        try log.writeCheckpoint()
        let other = dir.path + "/\(how)-other.jsonl"
        let otherLog = try AuditLog.open(path: other, signer: signer, checkpointEvery: 0)
        try otherLog.append(record(9), durable: true)
        try otherLog.close()
        switch how {
        case "moved": #expect(rename(path, dir.path + "/\(how)-away.jsonl") == 0)
        case "replaced":
            #expect(rename(path, dir.path + "/\(how)-away.jsonl") == 0)
            #expect(rename(other, path) == 0 && rename(other + ".checkpoint", path + ".checkpoint") == 0)
        default: #expect(unlink(path) == 0)
        }
        let checkpointBefore = try? Data(contentsOf: URL(fileURLWithPath: path + ".checkpoint"))
        try log.append(record(3), durable: true)
        #expect(throws: AuditError.self) { try log.writeCheckpoint() }
        #expect((try? Data(contentsOf: URL(fileURLWithPath: path + ".checkpoint"))) == checkpointBefore,
                "a checkpoint was published at the path")
        #expect(throws: AuditError.self) { try log.append(record(4), durable: true) }
        try? log.close()
        if how == "replaced" {
            #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 1)
        }
    }

    @Test(arguments: AuditSyncMode.allCases)
    func whatTheWriterAppendsVerifiesInEverySyncMode(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 7)
        for i in 0..<25 { #expect(try log.append(record(i), durable: i % 2 == 0) == UInt64(i)) }
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 25)
        #expect(summary.checkpoint.size == 25)
        #expect(summary.checkpoint.origin == "peon-wasm/tests")
        #expect(summary.signatureChecked)
        let first = try AuditEntry.parse(try #require(try lines(of: path).first)).get()
        #expect(first.prev == AuditEntry.zeroPrev)
        #expect(first.record == record(0))
    }

    @Test func reopeningContinuesTheChainAndOldCheckpointsStayPrefixes() throws {
        let path = dir.path + "/reopen.jsonl"
        var log = try AuditLog.open(path: path, signer: signer)
        for i in 0..<5 { try log.append(record(i), durable: true) }
        try log.close()
        try FileManager.default.copyItem(atPath: path + ".checkpoint", toPath: dir.path + "/old.checkpoint")
        log = try AuditLog.open(path: path, signer: signer)
        #expect(log.size == 5)
        for i in 5..<9 { try log.append(record(i), durable: false) }
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey,
                                               extraCheckpoints: [dir.path + "/old.checkpoint"])
        #expect(summary.size == 9)
        let proof = try AuditProofs.consistency(logPath: path, oldSize: 5, newSize: nil, verifierKey: signer.verifierKey)
        let old = try AuditVerifier.loadCheckpoint(path: dir.path + "/old.checkpoint", key: try VerifierKey(signer.verifierKey))
        #expect(proof.oldRoot == old.rootHash)
        #expect(IndependentVerifier.consistent(oldSize: 5, newSize: 9, oldRoot: old.rootHash, newRoot: summary.rootHash, proof: proof.hashes))
    }

    @Test func aCheckpointSignedBeforeANewerOneWasPublishedDoesNotReplaceIt() throws {
        // Two writers (processes) checkpoint one log; each signs without the lock, so the one that signed the
        // smaller tree may come to publish second. The newer checkpoint stays.
        let path = dir.path + "/two-checkpoints.jsonl"
        let first = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        let second = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<3 { try first.append(record(i), durable: true) }
        try first.writeCheckpoint()
        let older = try String(contentsOfFile: path + ".checkpoint", encoding: .utf8)
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 3)
        for i in 3..<6 { try second.append(record(i), durable: true) }
        try second.writeCheckpoint()
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 6)
        try first.publish(older, size: 3)
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 6, "the older checkpoint replaced the newer one")
        try first.close()
        try second.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 6)
        #expect(summary.checkpoint.size == 6)
    }

    /// A checkpoint is written and fsynced beside the log before any lock is taken: an appender of this process or of
    /// another waits for a `rename`, not for the checkpoint's disk write. Before, the temporary file was written and
    /// fsynced under the writer lock and the file lock, and a side effect's write-ahead entry was seen waiting 2.1 ms
    /// for its `flock` behind it.
    @Test(arguments: AuditSyncMode.allCases)
    func aCheckpointReachesTheDiskWithoutHoldingTheLogsLocks(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/publish-unlocked-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 0)
        for i in 0..<3 { try log.append(record(i), durable: true) }
        try log.flush()
        let note = try signer.sign(Checkpoint(origin: signer.name, size: 3, rootHash: Array(repeating: 1, count: 32)))
        let other = open(path, O_RDONLY | O_CLOEXEC)
        try #require(other >= 0)
        defer { close(other) }
        var fileLockFree = false
        var appendedMeanwhile = false
        try log.publish(note, size: 3) {
            // Another process's view: the file lock is free (a batch lease is this process's own, and ended only by
            // its timer, so wait for it).
            let deadline = ContinuousClock.now + .seconds(10)
            while !fileLockFree && ContinuousClock.now < deadline {
                if flock(other, LOCK_EX | LOCK_NB) == 0 {
                    flock(other, LOCK_UN)
                    fileLockFree = true
                } else {
                    usleep(1_000)
                }
            }
            // This process's view: another thread appends while the checkpoint is staged.
            let done = DispatchSemaphore(value: 0)
            let appended = Mutex(false)
            Thread.detachNewThread {
                if (try? log.append(record(3), durable: true)) != nil { appended.withLock { $0 = true } }
                done.signal()
            }
            appendedMeanwhile = done.wait(timeout: .now() + 10) == .success && appended.withLock { $0 }
        }
        #expect(fileLockFree, "the file lock was held while the checkpoint was written")
        #expect(appendedMeanwhile, "an append waited for the checkpoint's disk write")
        #expect(try String(contentsOfFile: path + ".checkpoint", encoding: .utf8) == note)
        try log.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp.") } == [])
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 4)
    }

    /// A staged checkpoint that loses to a newer one is removed, and the newer one stays. While it waits, written and
    /// fsynced, it has no name beside the log (where the file system makes unnamed files): a process killed then, as
    /// a run stopped mid-checkpoint is, leaves no `LOG.checkpoint.tmp.*` behind.
    @Test func aStagedCheckpointThatIsNotPublishedLeavesNoFile() throws {
        let path = dir.path + "/staged-dropped.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<3 { try log.append(record(i), durable: true) }
        try log.writeCheckpoint()
        let newer = try String(contentsOfFile: path + ".checkpoint", encoding: .utf8)
        let older = try signer.sign(Checkpoint(origin: signer.name, size: 1, rootHash: Array(repeating: 1, count: 32)))
        var stagedFiles: [String] = []
        try log.publish(older, size: 1) {
            stagedFiles = (try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp.") }) ?? []
        }
        // `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`): can this folder hold an unnamed file?
        let probe = open(dir.path, 0o20000000 | O_DIRECTORY | O_WRONLY | O_CLOEXEC, 0o600)
        if probe >= 0 { close(probe) }
        #expect(stagedFiles.count == (probe >= 0 ? 0 : 1), "\(stagedFiles)")
        #expect(try String(contentsOfFile: path + ".checkpoint", encoding: .utf8) == newer)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp.") } == [])
        try log.close()
    }

    /// Someone who can write `LOG.checkpoint` puts there a "checkpoint" of a million entries signed by another key.
    /// Before, a writer kept any checkpoint that claimed more entries than its own, signature unchecked: every later
    /// checkpoint of the run, the final one too, was silently dropped, and the run reported success.
    @Test func aForgedLargerCheckpointDoesNotStopTheWriterFromSigning() throws {
        let path = dir.path + "/forged-larger.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<3 { try log.append(record(i), durable: true) }
        let forger = try CheckpointSigner(name: signer.name, seed: Array(repeating: 9, count: 32))
        let forged = try forger.sign(Checkpoint(origin: signer.name, size: 1_000_000, rootHash: Array(repeating: 0, count: 32)))
        try Data(forged.utf8).write(to: URL(fileURLWithPath: path + ".checkpoint"))
        try log.close()
        // The forgery is replaced, and recorded first: the log says someone wrote its checkpoint, and what.
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 4)
        #expect(summary.checkpoint.size == 4)
        let entry = try AuditEntry.parse(try #require(try lines(of: path).last)).get()
        #expect(entry.record.call == "log.checkpoint_replaced")
        #expect(entry.record.reason.contains("is not signed by this log's key"))
        #expect(entry.record.details["replaced_size"] == "1000000")
        #expect(entry.record.details["replaced_sha256"] == hex(SHA256.hash(data: Array(forged.utf8))))
    }

    /// Whatever else someone writes over `LOG.checkpoint` is recorded before it is replaced; a checkpoint this log's
    /// own writers published (older, or of other processes) never is.
    @Test(arguments: ["garbage\n", String(repeating: "x", count: (1 << 20) + 1)])
    func aCheckpointFileNoWriterPublishedIsRecordedBeforeItIsReplaced(_ contents: String) throws {
        let path = dir.path + "/garbage-\(contents.count).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 2)
        for i in 0..<5 { try log.append(record(i), durable: true) }
        try log.synchronize()
        #expect(try lines(of: path).allSatisfy { !String(decoding: $0, as: UTF8.self).contains("log.checkpoint_replaced") })
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path + ".checkpoint"))
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 6)
        #expect(summary.uncheckpointed == 0)
        let entry = try AuditEntry.parse(try #require(try lines(of: path).last)).get()
        #expect(entry.record.call == "log.checkpoint_replaced")
        #expect(entry.record.details["replaced_bytes"] == String(contents.utf8.count))
    }

    /// A forgery that claims exactly the entries and root the log has (anyone can compute them from the file) still
    /// carries the wrong signature, and is replaced: size and root alone would have kept it.
    @Test func aForgedCheckpointWithTheLogsOwnRootIsReplaced() throws {
        let path = dir.path + "/forged-same-root.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<10 { try log.append(record(i), durable: true) }
        let root = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).rootHash
        let forger = try CheckpointSigner(name: signer.name, seed: Array(repeating: 9, count: 32))
        let forged = try forger.sign(Checkpoint(origin: signer.name, size: 10, rootHash: root))
        try Data(forged.utf8).write(to: URL(fileURLWithPath: path + ".checkpoint"))
        let ours = try signer.sign(Checkpoint(origin: signer.name, size: 5, rootHash: Array(repeating: 1, count: 32)))
        try log.publish(ours, size: 5)
        #expect(try String(contentsOfFile: path + ".checkpoint", encoding: .utf8) == ours)
        try log.close()
    }

    /// Every log of a host is signed by one key (and, by default, under one origin), so someone who can write
    /// `LOG.checkpoint` can copy there the validly signed, larger checkpoint of another log of the host. Before, the
    /// writer kept it as "newer": every later checkpoint of the run, the final one too, was silently dropped, the run
    /// succeeded, and `audit verify` then reported removed entries. A checkpoint that claims more entries than the
    /// log holds cannot be this log's, and is replaced.
    @Test(arguments: AuditSyncMode.allCases)
    func anotherLogsLargerCheckpointCopiedOverThisOnesIsReplaced(_ mode: AuditSyncMode) throws {
        let pathA = dir.path + "/a-\(mode).jsonl"
        let pathB = dir.path + "/b-\(mode).jsonl"
        let logB = try AuditLog.open(path: pathB, signer: signer, sync: mode, checkpointEvery: 0)
        for i in 0..<10 { try logB.append(record(100 + i), durable: true) }
        try logB.close()
        let logA = try AuditLog.open(path: pathA, signer: signer, sync: mode, checkpointEvery: 0)
        for i in 0..<3 { try logA.append(record(i), durable: true) }
        try FileManager.default.removeItem(atPath: pathA + ".checkpoint")
        try FileManager.default.copyItem(atPath: pathB + ".checkpoint", toPath: pathA + ".checkpoint")
        try logA.append(record(3), durable: false)
        try logA.close()
        let summary = try AuditVerifier.verify(logPath: pathA, verifierKey: signer.verifierKey)
        #expect(summary.size == 5)
        #expect(summary.checkpoint.size == 5)
        #expect(summary.uncheckpointed == 0)
        let entry = try AuditEntry.parse(try #require(try lines(of: pathA).last)).get()
        #expect(entry.record.call == "log.checkpoint_replaced")
        #expect(entry.record.reason.contains("claims 10 entries but the log holds 4"))
    }

    /// The same copy, of a log exactly as long as this one is by the time a checkpoint it signed earlier is
    /// published: the size alone cannot tell, so the root decides, and the other log's checkpoint is replaced.
    @Test func anotherLogsCheckpointOfTheSameSizeButAnotherRootIsReplaced() throws {
        let pathA = dir.path + "/a-same.jsonl"
        let pathB = dir.path + "/b-same.jsonl"
        let logB = try AuditLog.open(path: pathB, signer: signer, checkpointEvery: 0)
        for i in 0..<5 { try logB.append(record(100 + i), durable: true) }
        try logB.close()
        let logA = try AuditLog.open(path: pathA, signer: signer, checkpointEvery: 0)
        for i in 0..<3 { try logA.append(record(i), durable: true) }
        try logA.writeCheckpoint()
        let earlier = try String(contentsOfFile: pathA + ".checkpoint", encoding: .utf8)
        for i in 3..<5 { try logA.append(record(i), durable: true) }
        try FileManager.default.removeItem(atPath: pathA + ".checkpoint")
        try FileManager.default.copyItem(atPath: pathB + ".checkpoint", toPath: pathA + ".checkpoint")
        // A checkpoint of A's first 3 entries, signed before the copy, is published after it.
        try logA.publish(earlier, size: 3)
        #expect(try String(contentsOfFile: pathA + ".checkpoint", encoding: .utf8) == earlier,
                "B's checkpoint of 5 entries was kept over A's")
        try logA.close()
        let summary = try AuditVerifier.verify(logPath: pathA, verifierKey: signer.verifierKey)
        #expect(summary.checkpoint.size == 6)
        let entry = try AuditEntry.parse(try #require(try lines(of: pathA).last)).get()
        #expect(entry.record.reason.contains("claims all 5 entries with another tree root"))
    }

    /// Publishing catches up with what other processes appended, as an append does, and so also cuts a line another
    /// writer left torn: the cut is recorded (`log.recovered`) like one an append makes.
    @Test func aTornLineFoundWhilePublishingIsCutAndRecorded() throws {
        let path = dir.path + "/torn-publish.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        for i in 0..<2 { try log.append(record(i), durable: true) }
        try log.writeCheckpoint()
        let earlier = try String(contentsOfFile: path + ".checkpoint", encoding: .utf8)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":2,\"time\":\"20".utf8))
        try handle.close()
        try log.publish(earlier, size: 2)
        try log.close()
        let calls = try lines(of: path).map { try AuditEntry.parse($0).get().record.call }
        #expect(calls == ["fs.read", "fs.read", "log.recovered"])
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 3)
        #expect(summary.checkpoint.size == 3)
    }

    /// A chained entry 10 bytes over the 1 MiB line cap, appended by a writer that does not bound its fields. The
    /// reader checked the cap only between its 64 KiB reads, so such a line (up to 64 KiB over) passed whole when it
    /// began early in a read: `audit verify` accepted it and a writer reopened the log over it, while a reader that
    /// started elsewhere (another writer catching up, the central archive) refused it.
    @Test func anEntryOverTheLineCapIsMalformedWhereverItStarts() throws {
        let path = dir.path + "/over-cap.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        try log.append(record(0), durable: true)
        try log.close()
        let prev = RFC6962.leafHash(try #require(try lines(of: path).last))
        var long = AuditEntry(seq: 1, time: "2026-11-21T20:00:00.000000Z", record: record(1), prev: toHex(prev))
        long.record.reason += String(repeating: "x", count: AuditLog.maxLineBytes + 10 - long.serialized().count)
        let line = long.serialized()
        #expect(line.count == AuditLog.maxLineBytes + 10)
        #expect(try AuditEntry.parse(line).get() == long, "the line is a well-formed entry but for its length")
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line + [0x0A]))
        try handle.close()
        #expect(throws: AuditError(.malformedEntry, "")) { try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey) }
        #expect(throws: AuditError(.malformedEntry, "")) { try AuditLog.open(path: path, signer: signer) }
        #expect(throws: AuditError(.malformedEntry, "")) { try AuditProofs.streamLeafHashes(logPath: path) { _, _ in } }
        #expect(throws: AuditError(.malformedEntry, "")) { try AuditProofs.inclusion(logPath: path, seq: 0, verifierKey: nil) }
    }

    @Test func anInclusionProofOfEveryEntryVerifiesIndependently() throws {
        let path = dir.path + "/prove.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        for i in 0..<13 { try log.append(record(i), durable: false) }
        try log.close()
        let all = try lines(of: path)
        for seq in 0..<13 {
            let p = try AuditProofs.inclusion(logPath: path, seq: UInt64(seq), verifierKey: signer.verifierKey)
            #expect(p.treeSize == 13)
            #expect(p.leafHash == IndependentVerifier.leaf(all[seq]))
            #expect(IndependentVerifier.root(index: seq, size: 13, leaf: p.leafHash, proof: p.hashes[...]) == p.rootHash)
            #expect(p.json.hasPrefix("{\"leaf_index\":\(seq),\"tree_size\":13,"))
        }
        #expect(throws: AuditError(.invalidArgument, "")) { try AuditProofs.inclusion(logPath: path, seq: 13, verifierKey: nil) }
    }

    /// A crash mid-line leaves a partial line; opening cuts exactly it, keeps every complete entry byte for byte,
    /// and records `log.recovered`.
    @Test func aTornTailIsCutAndRecordedOnOpenAndNoCompleteEntryIsLost() throws {
        let path = dir.path + "/torn.jsonl"
        var log = try AuditLog.open(path: path, signer: signer)
        for i in 0..<6 { try log.append(record(i), durable: true) }
        try log.close()
        let before = try lines(of: path)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":6,\"time\":\"2026-".utf8))
        try handle.close()
        #expect(throws: AuditError(.tornTail, "")) { try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey) }

        log = try AuditLog.open(path: path, signer: signer)
        try log.close()
        let after = try lines(of: path)
        #expect(Array(after.prefix(6)) == before)
        let recovered = try AuditEntry.parse(after[6]).get()
        #expect(recovered.record.call == "log.recovered")
        #expect(recovered.record.details["cut_bytes"] == "22")
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 7)
    }

    /// Appending to an altered log would let the next checkpoint re-sign (launder) the alteration: opening refuses
    /// when the open reads the altered entry (the last one the checkpoint covers, or any once `LOG.frontier` is gone;
    /// `FrontierTests` shows that an alteration before it is never re-signed either).
    @Test func anAlteredOrTruncatedLogIsNotReopenedForAppending() throws {
        let path = dir.path + "/laundering.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        for i in 0..<5 { try log.append(record(i), durable: true) }
        try log.close()
        let original = try String(contentsOfFile: path, encoding: .utf8)

        try original.replacingOccurrences(of: "file-4.txt", with: "file-X.txt").write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditLog.open(path: path, signer: signer) }

        let frontier = try Data(contentsOf: URL(fileURLWithPath: path + ".frontier"))
        try FileManager.default.removeItem(atPath: path + ".frontier")
        try original.replacingOccurrences(of: "file-2.txt", with: "file-X.txt").write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditLog.open(path: path, signer: signer) }
        try frontier.write(to: URL(fileURLWithPath: path + ".frontier"))

        let firstThree = original.split(separator: "\n").prefix(3).map { $0 + "\n" }.joined()
        try firstThree.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: AuditError(.checkpointMismatch, "")) { try AuditLog.open(path: path, signer: signer) }

        try original.write(toFile: path, atomically: false, encoding: .utf8)
        let other = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 8, count: 32))
        #expect(throws: AuditError(.badSignature, "")) { try AuditLog.open(path: path, signer: other) }
        try AuditLog.open(path: path, signer: signer).close()
    }

    /// A FIFO, a directory or a device posing as a log is refused at once instead of blocking or reading forever.
    @Test func aFIFODirectoryOrDevicePosingAsALogIsRefusedWithoutBlocking() throws {
        let fifo = dir.path + "/fifo.jsonl"
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in [fifo, dir.path, "/dev/zero"] {
            #expect(throws: AuditError(.io, "")) { try AuditVerifier.verify(logPath: path, verifierKey: nil) }
            #expect(throws: AuditError(.io, "")) { try AuditProofs.streamLeafHashes(logPath: path) { _, _ in } }
        }
        #expect(throws: AuditError(.io, "")) { try AuditLog.open(path: fifo, signer: signer) }
        let log = dir.path + "/log.jsonl"
        try Data().write(to: URL(fileURLWithPath: log))
        #expect(mkfifo(log + ".checkpoint", 0o600) == 0)
        // A checkpoint that cannot be read is exit 2 (`.io`), as docs/cli.md says, not a malformed note (8).
        #expect(throws: AuditError(.io, "")) { try AuditVerifier.verify(logPath: log, verifierKey: nil) }
    }

    @Test func twoWritersOnOneLogShareOneChainAndTree() throws {
        // Two opens of one file (two descriptors: their `flock`s exclude each other as two processes' would).
        let path = dir.path + "/shared.jsonl"
        let first = try AuditLog.open(path: path, signer: signer, checkpointEvery: 7)
        let second = try AuditLog.open(path: path, signer: signer, checkpointEvery: 7)
        var seqs: [UInt64] = []
        for i in 0..<20 {
            seqs.append(try (i % 3 == 0 ? second : first).append(record(i), durable: i % 2 == 0))
        }
        #expect(seqs == (0..<20).map(UInt64.init))
        try first.writeCheckpoint()
        let early = dir.path + "/shared-early.checkpoint"
        try FileManager.default.copyItem(atPath: path + ".checkpoint", toPath: early)
        try second.append(record(20), durable: true)
        try second.close()
        try first.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey, extraCheckpoints: [early])
        #expect(summary.size == 21)
        #expect(summary.uncheckpointed == 0)
        #expect(try lines(of: path).map { try AuditEntry.parse($0).get().record.details["i"] } == (0...20).map(String.init))
    }

    @Test func aLineAnotherWriterLeftTornIsCutAndRecordedByTheNextWriter() throws {
        let path = dir.path + "/torn-shared.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        try log.append(record(0), durable: true)
        // Another writer dies mid-line.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":1,\"time\":\"20".utf8))
        try handle.close()
        #expect(try log.append(record(1), durable: false) == 2)
        try log.close()
        let calls = try lines(of: path).map { try AuditEntry.parse($0).get().record.call }
        #expect(calls == ["fs.read", "log.recovered", "fs.read"])
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 3)
    }

    @Test func aForeignLineFromAnotherWriterStopsTheLog() throws {
        let path = dir.path + "/foreign.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        try log.append(record(0), durable: true)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":7}\n".utf8))
        try handle.close()
        #expect(throws: AuditError(.malformedEntry, "")) { try log.append(record(1), durable: false) }
        #expect(throws: AuditError(.failed, "")) { try log.append(record(2), durable: false) }
        try? log.close()
    }

    @Test func aClosedLogRefusesAppendsAndCloseIsIdempotent() throws {
        let path = dir.path + "/closed.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        try log.append(record(0), durable: true)
        try log.close()
        try log.close()
        #expect(throws: AuditError(.failed, "")) { try log.append(record(1), durable: true) }
    }

    /// Periodic checkpoints are written in the background; one that fails must stop the log like a failed write,
    /// so no later call runs unrecorded-but-unsigned, and what was appended before stays on disk.
    @Test(arguments: [AuditSyncMode.effects, .batch])
    func aCheckpointThatFailsInTheBackgroundStopsTheLog(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/background-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 5)
        // A new log is signed at once (size 0); a folder with something in it then takes the checkpoint's place,
        // so renaming the next checkpoint over it fails.
        try FileManager.default.removeItem(atPath: path + ".checkpoint")
        try FileManager.default.createDirectory(atPath: path + ".checkpoint", withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: path + ".checkpoint/occupied", contents: Data())
        for i in 0..<5 { try log.append(record(i), durable: false) }
        #expect(throws: AuditError(.failed, "")) { try log.synchronize() }
        #expect(throws: AuditError(.failed, "")) { try log.append(record(5), durable: false) }
        try log.close()
        #expect(try lines(of: path).count == 5)
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: path + ".checkpoint", isDirectory: &isFolder) && isFolder.boolValue)
        let strays = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("background-\(mode).jsonl.checkpoint.tmp") }
        #expect(strays.isEmpty, "the failed checkpoint's temporary file was removed: \(strays)")
    }

    /// A log that failed touches its files no more: a checkpoint signed before the failure (or by another writer of
    /// this process) is refused, not published, even once the obstacle that made the log fail is gone. Without the
    /// refusal it was written: a log that stopped (perhaps mid-line, by its own write) got a fresh signature.
    @Test func aLogThatFailedPublishesNoCheckpoint() throws {
        let path = dir.path + "/failed-publish.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .effects, checkpointEvery: 5)
        try FileManager.default.removeItem(atPath: path + ".checkpoint")
        try FileManager.default.createDirectory(atPath: path + ".checkpoint", withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: path + ".checkpoint/occupied", contents: Data())
        for i in 0..<5 { try log.append(record(i), durable: false) }
        #expect(throws: AuditError(.failed, "")) { try log.synchronize() }
        // The obstacle goes; a valid checkpoint of the five entries on file is offered.
        try FileManager.default.removeItem(atPath: path + ".checkpoint")
        var tree = CompactTree()
        for line in try lines(of: path) { tree.append(leafHash: RFC6962.leafHash(line)) }
        #expect(tree.size == 5)
        let note = try signer.sign(Checkpoint(origin: signer.name, size: 5, rootHash: tree.rootHash))
        #expect(throws: AuditError(.failed, "")) { try log.publish(note, size: 5) }
        #expect(!FileManager.default.fileExists(atPath: path + ".checkpoint"), "a failed log published a checkpoint")
        try log.close()
        #expect(!FileManager.default.fileExists(atPath: path + ".checkpoint"), "closing a failed log published a checkpoint")
    }

    @Test(arguments: AuditSyncMode.allCases)
    func synchronizeLeavesEveryAppendedEntryInTheFile(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/synchronize-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 0)
        for i in 0..<40 { try log.append(record(i), durable: false) }
        try log.synchronize()
        #expect(try lines(of: path).count == 40)
        try log.close()
    }

    /// Many threads append at once: the file holds every record exactly once, `seq` runs 0..<n without gaps, each
    /// thread's records keep their order, and the log verifies.
    @Test(arguments: [AuditSyncMode.always, .effects, .batch])
    func concurrentAppendsLoseAndDuplicateNothing(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/concurrent-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 97)
        let threads = 8, perThread = 150
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var last: UInt64?
            for i in 0..<perThread {
                do {
                    let seq = try log.append(record(i, thread: t), durable: i % 4 == 0)
                    if let last, seq <= last { errors.withLock { $0.append("thread \(t): seq \(seq) after \(last)") } }
                    last = seq
                } catch {
                    errors.withLock { $0.append("thread \(t): \(error)") }
                }
            }
        }
        try log.close()
        #expect(errors.withLock { $0 }.isEmpty)
        let entries = try lines(of: path).map { try AuditEntry.parse($0).get() }
        #expect(entries.count == threads * perThread)
        #expect(entries.map(\.seq) == (0..<UInt64(threads * perThread)).map { $0 })
        var seen = Set<String>()
        var nextPerThread = [Int](repeating: 0, count: threads)
        for e in entries {
            let t = try #require(Int(e.record.details["thread"] ?? ""))
            let i = try #require(Int(e.record.details["i"] ?? ""))
            #expect(seen.insert("\(t)/\(i)").inserted, "duplicate \(t)/\(i)")
            #expect(i == nextPerThread[t], "thread \(t) out of order")
            nextPerThread[t] = i + 1
        }
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == UInt64(threads * perThread))
    }

    @Test func serializationEscapesEverythingThatCouldBreakTheLine() throws {
        let nasty = "a\"b\\c\nd\re\tf\u{0}g\u{1f}h\u{7f}i\u{2028}j\u{2029}k ünï 🦀"
        let entry = AuditEntry(seq: 3, time: "2026-01-01T00:00:00.000000Z",
                               record: AuditRecord(run: nasty, module: "m", moduleSHA256: "", call: "c", resource: nasty,
                                                   details: [nasty: nasty, "b": "1", "a": "2"]),
                               prev: AuditEntry.zeroPrev)
        let line = entry.serialized()
        #expect(!line.contains(0x0A) && !line.contains(0x0D))
        #expect(try AuditEntry.parse(line).get() == entry)
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasPrefix("{\"seq\":3,\"time\":\"2026-01-01T00:00:00.000000Z\",\"run\":"))
        #expect(text.contains(#""details":{"a":"2","a\"b"#) && text.contains(#"🦀","b":"1"},"prev""#))
        #expect(text.hasSuffix(",\"prev\":\"\(AuditEntry.zeroPrev)\"}"))
    }

    @Test func entryTimesAreRFC3339UTCWithMicroseconds() throws {
        let path = dir.path + "/time.jsonl"
        let log = try AuditLog.open(path: path, signer: signer)
        try log.append(record(0), durable: true)
        try log.close()
        let time = try AuditEntry.parse(try #require(try lines(of: path).first)).get().time
        let pattern = try Regex(#"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"#)
        #expect(time.wholeMatch(of: pattern) != nil, "\(time)")
    }
}

/// The signing key: created once with 0600, reloaded the same, refused when others can read it.
@Suite struct CheckpointSignerTests {
    @Test func aNewKeyIsCreatedWithMode0600AndReloadsToTheSameVerifierKey() throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let path = dir.path + "/nested/dir/audit.key"
        let a = try CheckpointSigner.loadOrCreate(keyPath: path, name: "peon-wasm/host")
        let b = try CheckpointSigner.loadOrCreate(keyPath: path, name: "ignored-when-loading")
        #expect(a.verifierKey == b.verifierKey)
        #expect(b.name == "peon-wasm/host")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let key = try VerifierKey(a.verifierKey)
        #expect(key.name == "peon-wasm/host")
        #expect(key.publicKey == a.publicKey)
    }

    @Test func aKeyReadableByOthersIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }
        let path = dir.path + "/audit.key"
        _ = try CheckpointSigner.loadOrCreate(keyPath: path, name: "n")
        chmod(path, 0o644)
        #expect(throws: AuditError(.badKey, "")) { try CheckpointSigner.load(keyPath: path) }
    }

    /// The signed-note encoding matches Python's `cryptography` Ed25519 and the C2SP layout byte for byte
    /// (Ed25519 signatures are deterministic), checked against the generator's happy-path checkpoint.
    @Test func checkpointsAreByteIdenticalToAnIndependentSignedNoteImplementation() throws {
        let url = try #require(Bundle.module.url(forResource: "Vectors/tamper/happy-path", withExtension: "json"))
        let vector = try JSONDecoder().decode(TamperVectorTests.Vector.self, from: Data(contentsOf: url))
        let signer = try CheckpointSigner(name: "peon-wasm/test-vectors", seed: Array(0..<32))
        #expect(signer.verifierKey == vector.verifier_key)
        let expected = try #require(vector.checkpoint)
        let cp = try Checkpoint.parse(try SignedNote.parse(expected).text)
        #expect(try signer.sign(cp) == expected)
    }

    @Test(arguments: ["", "a+b", "a+zzzzzzzz+AQ==", "name+00000000+" + String(repeating: "A", count: 44), "n a+00000000+AA=="])
    func malformedVerifierKeysAreRefused(_ text: String) {
        #expect(throws: AuditError(.badKey, "")) { try VerifierKey(text) }
    }
}

/// Interoperability with Go's `golang.org/x/mod/sumdb/note`, which the docs name as a verifier of our checkpoints:
/// the key pair and signed note below are the public example of that package's own tests (its `TestSign` and
/// `TestOpen`), signed by Go, not by us.
@Suite struct GoSignedNoteInteropTests {
    static let privateKey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    static let verifierKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let otherVerifierKey = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
    static let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    static let peter = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    static let enoch = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

    @Test func goKeysLoadAndDeriveTheSameVerifierKey() throws {
        let signer = try CheckpointSigner(privateKeyText: Self.privateKey)
        #expect(signer.name == "PeterNeumann")
        #expect(hex(signer.keyHash) == "c74f20a3")
        #expect(signer.verifierKey == Self.verifierKey)
        #expect(signer.privateKeyText == Self.privateKey)
    }

    @Test func aNoteGoSignedVerifiesAlsoBesideAnotherKeysSignature() throws {
        let key = try VerifierKey(Self.verifierKey)
        let note = try SignedNote.parse(Self.text + "\n" + Self.peter)
        #expect(note.text == Self.text)
        try note.verify(with: key)
        // A second signature by a key we were not given is ignored, whichever comes first.
        try SignedNote.parse(Self.text + "\n" + Self.peter + Self.enoch).verify(with: key)
        try SignedNote.parse(Self.text + "\n" + Self.enoch + Self.peter).verify(with: key)
        try SignedNote.parse(Self.text + "\n" + Self.enoch + Self.peter).verify(with: try VerifierKey(Self.otherVerifierKey))
    }

    /// Comparing or searching text with a long run of combining marks as a `String` takes quadratic time: a 1 MiB
    /// checkpoint whose signature name held such a run kept `audit verify`, and every run opening the log, busy for
    /// minutes (found by a red-team pass). A note with more than 32 in a row is malformed, as a log line's key is.
    /// A key name peon-wasm would refuse in its own checkpoint is refused when the key is made.
    @Test func aKeyNameWithALongRunOfCombiningMarksIsRefused() throws {
        #expect(throws: AuditError.self) { try CheckpointSigner.checkName("op" + String(repeating: "\u{0301}", count: 33)) }
        try CheckpointSigner.checkName("op" + String(repeating: "\u{0301}", count: 32))
    }

    @Test func aNoteWithALongRunOfCombiningMarksIsRefused() throws {
        func note(marks: Int) -> String {
            Self.text + "\n" + Self.peter.replacingOccurrences(of: "PeterNeumann", with: "Peter" + String(repeating: "\u{0301}", count: marks))
        }
        #expect(try SignedNote.parse(note(marks: 32)).signatures.count == 1)
        #expect(throws: AuditError.self) { try SignedNote.parse(note(marks: 33)) }
        let mixed = Self.text.replacingOccurrences(of: "answer", with: "a" + String(repeating: "\u{0316}\u{0301}\u{0334}", count: 11))
        #expect(throws: AuditError.self) { try SignedNote.parse(mixed + "\n" + Self.peter) }
    }

    @Test func aNoteGoSignedFailsOnceAnyOfItChanges() throws {
        let key = try VerifierKey(Self.verifierKey)
        let altered = Self.text.replacingOccurrences(of: "answer", with: "Answer")
        #expect(throws: AuditError.self) { try SignedNote.parse(altered + "\n" + Self.peter).verify(with: key) }
        // Only another key's signature: not verified by this key.
        #expect(throws: AuditError.self) { try SignedNote.parse(Self.text + "\n" + Self.enoch).verify(with: key) }
        // A mangled signature, and a key hash that names another key.
        let mangled = Self.peter.replacingOccurrences(of: "SffcvIAQ", with: "SffcvIAR")
        #expect(throws: AuditError.self) { try SignedNote.parse(Self.text + "\n" + mangled).verify(with: key) }
        let misnamed = Self.peter.replacingOccurrences(of: "x08g", with: "xxxx")
        #expect(throws: AuditError.self) { try SignedNote.parse(Self.text + "\n" + misnamed).verify(with: key) }
        // Go's note package rejects these as malformed; so do we (or, at the least, never verify them).
        for bad in [Self.text, Self.text + "\n", Self.text + "\n" + String(Self.peter.dropLast()),
                    "\u{01}" + Self.text + "\n" + Self.peter, Self.text + "\n" + Self.peter + "Unexpected line.\n"] {
            #expect(throws: AuditError.self) { try SignedNote.parse(bad).verify(with: key) }
        }
    }
}
