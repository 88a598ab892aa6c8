import Foundation
import PeonAudit
import PeonSystem
import Testing

/// When periodic checkpoints come: a few entries are signed within ``AuditLog/checkpointWithin`` of their append
/// (a long-running host used to leave them unsigned until it exited), a busy log checkpoints at most once per
/// ``AuditLog/checkpointSpacing``, and an idle one not at all.
@Suite struct CheckpointScheduleTests {
    let dir: TemporaryDirectory
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 9, count: 32))
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass; returns whether it held.
    private func eventually(within seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try condition()
    }

    /// Three entries, far fewer than `checkpointEvery`, are covered by a signed checkpoint while the log stays open, and
    /// the log verifies with no entry after its checkpoint. Without the age bound they waited for `close`.
    @Test(arguments: AuditSyncMode.allCases)
    func aFewEntriesAreSignedSoonWithoutClosingTheLog(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/age-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 1000,
                                    checkpointWithin: .milliseconds(200))
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 0)
        for i in 0..<3 { try log.append(record(i), durability: .buffered) }
        #expect(eventually(within: 20) { AuditLog.publishedSize(path + ".checkpoint") == 3 },
                "no checkpoint covered the three entries while the log was open")
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 3)
        #expect(summary.uncheckpointed == 0)
        #expect(summary.signatureChecked)
        try log.close()
    }

    /// Once everything this process appended is signed, no further checkpoint runs: an idle log costs nothing.
    @Test func anIdleLogIsNotCheckpointedAgain() throws {
        let path = dir.path + "/idle.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 1000,
                                    checkpointWithin: .milliseconds(50), checkpointSpacing: .zero)
        try log.append(record(0), durability: .buffered)
        #expect(eventually(within: 20) { AuditLog.publishedSize(path + ".checkpoint") == 1 })
        let runs = log.periodicCheckpointCount
        #expect(runs >= 1)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(log.periodicCheckpointCount == runs, "an idle log kept checkpointing")
        // A new entry gets its own checkpoint.
        try log.append(record(1), durability: .buffered)
        #expect(eventually(within: 20) { AuditLog.publishedSize(path + ".checkpoint") == 2 })
        try log.close()
    }

    /// A periodic checkpoint that comes due after another checkpoint already signed everything does nothing: no
    /// second signature and three fsyncs for the same entries.
    @Test func aCheckpointDueAfterEverythingWasSignedIsSkipped() throws {
        let path = dir.path + "/covered.jsonl"
        // Two seconds: the explicit checkpoint below comes long before the periodic one is due, even on a loaded machine.
        let log = try AuditLog.open(path: path, signer: signer, sync: .effects, checkpointEvery: 1000,
                                    checkpointWithin: .seconds(2))
        for i in 0..<3 { try log.append(record(i), durability: .buffered) }
        try log.writeCheckpoint()
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 3)
        let before = log.periodicCheckpointCount
        Thread.sleep(forTimeInterval: 2.6)
        #expect(log.periodicCheckpointCount == before, "the due checkpoint signed what was signed already")
        try log.append(record(3), durability: .buffered)
        #expect(eventually(within: 20) { AuditLog.publishedSize(path + ".checkpoint") == 4 })
        #expect(log.periodicCheckpointCount == before + 1)
        try log.close()
    }

    /// A busy log with a small `checkpointEvery` checkpoints once, then waits for the spacing: 2,000 entries at 10 per
    /// checkpoint were 200 checkpoints (each three fsyncs and a signature) before. Closing still signs every entry.
    @Test(arguments: [AuditSyncMode.effects, .batch])
    func checkpointsByCountWaitForTheSpacing(_ mode: AuditSyncMode) throws {
        let path = dir.path + "/spacing-\(mode).jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: mode, checkpointEvery: 10,
                                    checkpointWithin: nil, checkpointSpacing: .seconds(600))
        for i in 0..<2000 { try log.append(record(i), durability: .buffered) }
        try log.synchronize()
        #expect(log.periodicCheckpointCount == 1, "\(log.periodicCheckpointCount) periodic checkpoints within the spacing")
        try log.close()
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == 2000)
        #expect(summary.uncheckpointed == 0)
    }

    /// Without spacing, checkpoints by count come as before: one per `checkpointEvery` entries at most, and more than
    /// one for many entries.
    @Test func withoutSpacingCheckpointsFollowTheCount() throws {
        let path = dir.path + "/count.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .effects, checkpointEvery: 10,
                                    checkpointWithin: nil, checkpointSpacing: .zero)
        for round in 1...5 {
            for i in 0..<10 { try log.append(record(round * 10 + i), durability: .buffered) }
            #expect(eventually(within: 20) { log.periodicCheckpointCount >= round },
                    "round \(round): \(log.periodicCheckpointCount) periodic checkpoints")
            #expect(eventually(within: 20) { AuditLog.publishedSize(path + ".checkpoint") == UInt64(round * 10) })
        }
        try log.close()
    }

    /// With `checkpointEvery` 0 (what `audit checkpoint --refresh` opens with) nothing is signed but on demand.
    @Test func noPeriodicCheckpointsWhenTurnedOff() throws {
        let path = dir.path + "/off.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .effects, checkpointEvery: 0,
                                    checkpointWithin: .milliseconds(10))
        for i in 0..<5 { try log.append(record(i), durability: .buffered) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(log.periodicCheckpointCount == 0)
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 0)
        try log.close()
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 5)
    }

    /// A checkpoint that comes due after `close` touches nothing: the closed log's final checkpoint stays.
    @Test func aCheckpointDueAfterCloseDoesNothing() throws {
        let path = dir.path + "/closed.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 1000,
                                    checkpointWithin: .milliseconds(300))
        for i in 0..<4 { try log.append(record(i), durability: .buffered) }
        try log.close()
        let final = try Data(contentsOf: URL(fileURLWithPath: path + ".checkpoint"))
        let countAtClose = log.periodicCheckpointCount
        Thread.sleep(forTimeInterval: 0.6)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".checkpoint")) == final)
        #expect(log.periodicCheckpointCount == countAtClose)
        #expect(AuditLog.publishedSize(path + ".checkpoint") == 4)
    }
}
