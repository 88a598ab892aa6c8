import Foundation
@testable import PeonAudit
import Testing

/// `batch` mode's lease on the file lock and its buffer: entries of calls that reach nothing outside the process
/// are numbered at once and written together, but never held back from the file, a reader or another process for
/// longer than the lease lasts, and an entry that must be written takes every buffered one before it along.
@Suite(.timeLimit(.minutes(2))) struct BatchLeaseTests {
    let dir: TemporaryDirectory
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 9, count: 32))
    }

    @Test func aBufferedEntryIsNumberedAtOnceAndReachesTheFileWhenTheLeaseEnds() throws {
        let path = dir.path + "/lease.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        for i in 0..<5 { #expect(try log.append(record(i), durability: .buffered) == UInt64(i)) }
        #expect(log.size == 5)
        // No flush, no close: the lease ends after 1 ms idle (10 ms at most) and writes the buffer.
        let deadline = Date().addingTimeInterval(5)
        while try lines(of: path).count < 5 && Date() < deadline { usleep(2_000) }
        #expect(try lines(of: path).count == 5)
        try log.close()
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 5)
    }

    @Test func sideEffectEntriesWrittenTogetherShareOneBackgroundFsyncThatNeedsNoLaterAppend() throws {
        let path = dir.path + "/shared-sync.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        let started = ContinuousClock.now
        for i in 0..<50 { _ = try log.append(record(i, call: "exec.run"), durability: .durable) }
        let took = ContinuousClock.now - started
        // Nothing else is appended: the fsync scheduled by the first write still comes and covers all 50.
        let deadline = Date().addingTimeInterval(10)
        while log.unsyncedEntries > 0 && Date() < deadline { usleep(2_000) }
        #expect(log.unsyncedEntries == 0, "the background fsync never covered the last writes")
        if took < .milliseconds(10) {
            // All 50 were written inside one delay window: one fsync (one more at most if it raced the last write).
            #expect(log.backgroundSyncCount <= 2, "\(log.backgroundSyncCount) fsyncs for writes made within 10 ms")
        }
        try log.close()
        #expect(try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey).size == 50)
    }

    @Test(arguments: [AuditDurability.written, .durable])
    func anEntryThatMustBeWrittenTakesTheBufferedOnesBeforeItToTheFile(_ durability: AuditDurability) throws {
        let path = dir.path + "/ordered.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        for i in 0..<20 { _ = try log.append(record(i), durability: .buffered) }
        #expect(try log.append(record(20, call: "http.send"), durability: durability) == 20)
        // Read straight away, without the lock: every line up to the written one is there, in order.
        let written = try lines(of: path)
        #expect(written.count == 21)
        let seqs = try written.map { try AuditEntry.parse($0).get().seq }
        #expect(seqs == (0...20).map { UInt64($0) })
        try log.close()
    }

    @Test func flushWritesTheBufferWithoutWaitingForTheLease() throws {
        let path = dir.path + "/flush.jsonl"
        let log = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        for i in 0..<3 { _ = try log.append(record(i), durability: .buffered) }
        try log.flush()
        #expect(try lines(of: path).count == 3)
        try log.close()
    }

    @Test func anotherWriterGetsTheLogWhileOneKeepsAppending() throws {
        // Two independent opens of one file exclude each other exactly like two processes (separate descriptions).
        let path = dir.path + "/two.jsonl"
        let busy = try AuditLog.open(path: path, signer: signer, sync: .batch, checkpointEvery: 0)
        let other = try AuditLog.open(path: path, signer: signer, sync: .effects, checkpointEvery: 0)
        let stop = ManagedAtomicFlag()
        let appended = ManagedCounter()
        let thread = Thread {
            var i = 0
            while !stop.isSet {
                if (try? busy.append(record(i), durability: .buffered)) != nil { appended.increment() }
                i += 1
            }
        }
        thread.start()
        // The busy writer's lease ends at least every 10 ms: the other writer's appends get through meanwhile.
        let started = Date()
        for i in 0..<20 { _ = try other.append(record(1000 + i), durable: true) }
        let took = Date().timeIntervalSince(started)
        stop.set()
        while !thread.isFinished { usleep(1_000) }
        try busy.close()
        try other.close()
        #expect(took < 30)
        let summary = try AuditVerifier.verify(logPath: path, verifierKey: signer.verifierKey)
        #expect(summary.size == UInt64(appended.value + 20))
    }
}

/// A flag and a counter shared with a `Thread`.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func increment() { lock.lock(); count += 1; lock.unlock() }
}
