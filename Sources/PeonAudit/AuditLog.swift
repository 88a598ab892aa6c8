#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization
import Crypto

/// When appended entries reach the disk, and what each choice risks.
///
/// | mode | before `append` returns | lost by a process crash | lost by a machine crash or power loss |
/// |---|---|---|---|
/// | `always` | every entry written and fsynced | nothing | nothing |
/// | `effects` (default) | durable entries written and fsynced; others written | nothing | non-durable entries since the last fsync (reads, outcomes) |
/// | `batch` | entries kept in memory, written per 256 KiB and fsynced in the background, checkpoint and close | up to one batch | up to one batch plus what the background fsync has not reached (bounded: an appender fsyncs itself when 16,384 written entries are unsynced), including entries of side effects that already ran |
///
/// Concurrent callers share fsyncs (group commit), so `always` costs less per entry as concurrency rises. Periodic
/// checkpoints are signed and written in the background in every mode.
public enum AuditSyncMode: String, Sendable, CaseIterable {
    /// Every entry is durable before `append` returns.
    case always
    /// Entries of side-effecting calls are durable before `append` returns; other entries reach the kernel.
    case effects
    /// Entries are buffered and made durable in batches; side effects may run before their entry is on disk.
    case batch
}

/// An append-only, tamper-evident audit log: a JSON Lines file whose lines are the leaves of an RFC 6962 Merkle
/// tree, chained by `prev`, with a signed C2SP checkpoint kept beside it in `LOG.checkpoint`.
///
/// One process owns a log at a time (an exclusive `flock`), and inside it every caller goes through one ordered
/// writer: `append` assigns the next `seq` under a lock, so the order is total, and whichever caller reaches the
/// disk first writes (and fsyncs) everything queued before it — group commit. Opening a log whose last line is
/// incomplete (a crash mid-write) cuts the partial line and appends a `log.recovered` entry.
///
/// After a failed write or fsync the log refuses every further append (``AuditError/Code/failed``): callers must
/// treat that as a deny, because an action whose record may be lost must not run.
public final class AuditLog: Sendable {
    /// The log file.
    public let path: String
    /// Where the latest signed checkpoint is kept: the log path plus `.checkpoint`.
    public let checkpointPath: String
    /// The origin line of this log's checkpoints.
    public let origin: String
    /// The durability mode.
    public let sync: AuditSyncMode
    /// A checkpoint is written after every this many entries (0 turns periodic checkpoints off).
    public let checkpointEvery: Int
    /// The longest entry line accepted, in bytes.
    public static let maxLineBytes = 1 << 20
    /// The most bytes a line adds around its record's fields: `{"seq":` + 20 digits + `,"time":"` + 27 + `"` +
    /// `,"prev":"` + 64 + `"}`.
    static let framingBytes = 8 + 20 + 9 + 27 + 1 + 9 + 64 + 2
    /// In `batch` mode, queued bytes that make the appender write the batch to the kernel; the fsync follows in the
    /// background. (The write stays with the appender: with many more busy threads than cores, a background writer
    /// was scheduled too rarely and 100 agents' throughput fell by more than half.)
    static let batchBytes = 1 << 18
    /// In `batch` mode, written entries not yet fsynced at which the appender fsyncs itself: the bound on what a
    /// machine crash can lose when the background fsync falls behind.
    static let maxUnsyncedEntries: UInt64 = 16_384

    private let signer: CheckpointSigner
    private let fd: Int32

    private struct Sequencer: ~Copyable {
        var nextSeq: UInt64
        var prev: [UInt8]
        var tree: CompactTree
        var pending: [UInt8] = []
        var failure: AuditError?
        var closed = false
    }

    private struct Writer: ~Copyable {
        var written: UInt64
        var synced: UInt64
        /// Set by `close` just before the descriptor is closed: nothing may touch `fd` after it.
        var fileClosed = false
    }

    /// Signs and writes periodic checkpoints off the appending threads.
    private let background = DispatchQueue(label: "peon-wasm.audit-log")
    /// Whether a periodic checkpoint is due and not yet started (at most one is queued).
    private let checkpointDue = Atomic<Bool>(false)
    /// Whether a background fsync is queued and not yet started (at most one is).
    private let syncScheduled = Atomic<Bool>(false)

    private let sequencer: Mutex<Sequencer>
    /// Held while touching the file; always taken before `sequencer` when both are needed.
    private let writer: Mutex<Writer>

    private init(path: String, fd: Int32, signer: CheckpointSigner, origin: String, sync: AuditSyncMode,
                 checkpointEvery: Int, size: UInt64, prev: [UInt8], tree: CompactTree) {
        self.path = path
        self.checkpointPath = path + ".checkpoint"
        self.fd = fd
        self.signer = signer
        self.origin = origin
        self.sync = sync
        self.checkpointEvery = checkpointEvery
        sequencer = Mutex(Sequencer(nextSeq: size, prev: prev, tree: tree))
        writer = Mutex(Writer(written: size, synced: size))
    }

    /// Opens (creating with mode 0600 if needed) and locks the log at `path`, recovering a torn tail.
    ///
    /// - Parameters:
    ///   - signer: signs checkpoints.
    ///   - sync: when entries reach the disk; see ``AuditSyncMode``.
    ///   - checkpointEvery: write `LOG.checkpoint` after every this many entries (0: only on demand and close).
    ///   - origin: the checkpoint origin line; defaults to the signer's key name.
    /// Opening checks that the existing `LOG.checkpoint` is signed by `signer` and still matches the log, so an
    /// altered log is never re-signed by a later checkpoint.
    ///
    /// - Throws: ``AuditError/Code/locked`` if another process has the log open, ``AuditError/Code/io`` if it
    ///   cannot be read or written, ``AuditError/Code/malformedEntry`` if its last complete line is not an entry,
    ///   ``AuditError/Code/checkpointMismatch`` or ``AuditError/Code/badSignature`` if the log no longer matches
    ///   its checkpoint or the checkpoint is not this signer's (run `peon-wasm audit verify`).
    public static func open(path: String, signer: CheckpointSigner, sync: AuditSyncMode = .effects,
                            checkpointEvery: Int = 1000, origin: String? = nil) throws(AuditError) -> AuditLog {
        let fd = posixOpen(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileIO.ioError(path, "cannot open the audit log") }
        var keep = false
        defer { if !keep { posixClose(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw AuditError(.io, "\(path): the audit log must be a regular file")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK {
                throw AuditError(.locked, "\(path): another process is appending to this audit log; wait for it to finish or use another log")
            }
            throw FileIO.ioError(path, "cannot lock the audit log")
        }

        // The latest checkpoint must still describe a prefix of the log: otherwise the log was altered since it
        // was signed, and appending would re-sign (launder) the altered entries. Fail closed instead.
        var signed: Checkpoint?
        if FileIO.exists(path + ".checkpoint") {
            do {
                signed = try AuditVerifier.loadCheckpoint(path: path + ".checkpoint", key: try VerifierKey(signer.verifierKey))
            } catch {
                throw AuditError(error.code, "\(error.message); refusing to append to a log whose checkpoint this key cannot vouch for (run `peon-wasm audit verify \(path)`)")
            }
        }
        func checkSigned(_ tree: CompactTree) throws(AuditError) {
            guard let signed, signed.size == tree.size, signed.rootHash != tree.rootHash else { return }
            throw AuditError(.checkpointMismatch,
                             "\(path): the first \(signed.size) entries no longer match the signed checkpoint: the log was altered after it was signed; refusing to append (run `peon-wasm audit verify \(path)`)")
        }

        // Hash every complete line; find a torn tail.
        var reader = LineReader(fd: fd, path: path, maxLine: maxLineBytes)
        var tree = CompactTree()
        var prev = [UInt8](repeating: 0, count: 32)
        var last: [UInt8]?
        var completeBytes: Int64 = 0
        var torn: [UInt8]?
        try checkSigned(tree)
        while let item = try reader.next() {
            switch item {
            case .line(let bytes):
                let leaf = RFC6962.leafHash(bytes)
                tree.append(leafHash: leaf)
                try checkSigned(tree)
                prev = leaf
                last = bytes
                completeBytes += Int64(bytes.count) + 1
            case .tooLong:
                throw AuditError(.malformedEntry,
                                 "\(path):\(tree.size + 1): a line is longer than \(maxLineBytes) bytes; run `peon-wasm audit verify \(path)`",
                                 line: Int(tree.size) + 1, seq: tree.size)
            case .partial(let bytes):
                torn = bytes
            }
        }
        if let signed, signed.size > tree.size {
            throw AuditError(.checkpointMismatch,
                             "\(path): the signed checkpoint covers \(signed.size) entries but the log has \(tree.size): entries were removed; refusing to append (run `peon-wasm audit verify \(path)`)")
        }
        if let last {
            let lineNumber = Int(tree.size)
            switch AuditEntry.parse(last) {
            case .success(let entry) where entry.seq == tree.size - 1: break
            case .success(let entry):
                throw AuditError(.brokenChain,
                                 "\(path):\(lineNumber): the last entry has seq \(entry.seq) but is entry \(tree.size - 1); run `peon-wasm audit verify \(path)`",
                                 line: lineNumber, seq: tree.size - 1)
            case .failure(let e):
                throw AuditError(.malformedEntry,
                                 "\(path):\(lineNumber): the last entry is not valid (\(e.reason)); run `peon-wasm audit verify \(path)`",
                                 line: lineNumber, seq: tree.size - 1)
            }
        }
        if torn != nil {
            guard ftruncate(fd, off_t(completeBytes)) == 0, posixFsync(fd) == 0 else {
                throw FileIO.ioError(path, "cannot cut the torn tail")
            }
        }
        let log = AuditLog(path: path, fd: fd, signer: signer, origin: origin ?? signer.name, sync: sync,
                           checkpointEvery: checkpointEvery, size: tree.size, prev: prev, tree: tree)
        keep = true
        if let torn {
            let record = AuditRecord(
                run: "", module: "", moduleSHA256: "", call: "log.recovered", resource: "log:" + path,
                reason: "the log ended in an incomplete line (the writer stopped mid-write); the partial line was cut",
                details: ["cut_bytes": String(torn.count), "cut_sha256": hex(SHA256.hash(data: torn)),
                          "after_seq": tree.size == 0 ? "none" : String(tree.size - 1)])
            try log.append(record, durable: true)
            try log.writeCheckpoint()   // durable in every sync mode, and signed at once
        }
        return log
    }

    /// The number of entries appended so far (the next `seq`).
    public var size: UInt64 { sequencer.withLock { $0.nextSeq } }

    /// Appends a record and returns its `seq`.
    ///
    /// Pass `durable: true` for the decision entry of a side-effecting call (fs write/append/remove, http other than
    /// GET/HEAD, db execute, exec): in `always` and `effects` mode it is written and fsynced before this returns, so
    /// the record exists before the action runs. Safe to call from many threads; the order of `seq` is the order of
    /// the lines in the file.
    @discardableResult
    public func append(_ record: AuditRecord, durable: Bool) throws(AuditError) -> UInt64 {
        // Everything that depends on the record alone is serialized before the lock; inside it, only what the
        // order decides: seq, time, prev, and the hashes that chain this line to the next.
        // Oversized values are recorded by prefix, SHA-256 and length: every decision gets its entry.
        let fields = AuditEntry.serializedFields(of: record.bounded())
        let lineBytes = fields.count + Self.framingBytes
        guard lineBytes <= Self.maxLineBytes else {
            throw AuditError(.invalidArgument, "an audit entry of \(lineBytes) bytes exceeds \(Self.maxLineBytes); record payloads by hash")
        }
        var line: [UInt8] = []
        line.reserveCapacity(lineBytes + 1)
        let (seq, queued) = try sequencer.withLock { s throws(AuditError) -> (UInt64, Int) in
            if s.closed { throw AuditError(.failed, "\(path): the audit log is closed") }
            if let failure = s.failure { throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)") }
            let seq = s.nextSeq
            AuditEntry.appendHead(seq: seq, to: &line)
            line.append(UInt8(ascii: "\""))
            AuditClock.appendNow(to: &line)
            line.append(UInt8(ascii: "\""))
            line += fields
            AuditEntry.appendTail(prev: s.prev, to: &line)
            let leaf = RFC6962.leafHash(line)
            s.tree.append(leafHash: leaf)
            s.prev = leaf
            line.append(0x0A)
            s.pending += line
            s.nextSeq += 1
            return (seq, s.pending.count)
        }
        switch sync {
        case .always: try flush(through: seq + 1, fsync: true)
        case .effects: try flush(through: seq + 1, fsync: durable)
        case .batch:
            if queued >= Self.batchBytes {
                try flush(through: seq + 1, fsync: false)
                if writer.withLock({ $0.written > $0.synced ? $0.written - $0.synced : 0 }) >= Self.maxUnsyncedEntries {
                    try flush(through: seq + 1, fsync: true)
                } else {
                    scheduleBackgroundSync()
                }
            }
        }
        if checkpointEvery > 0, (seq + 1) % UInt64(checkpointEvery) == 0 {
            // Signing and replacing the checkpoint file (three fsyncs) would stall this caller; the entries are
            // already as durable as the mode promises, so the checkpoint follows in the background.
            scheduleCheckpoint()
        }
        return seq
    }

    /// Queues a background fsync of what has been written, unless one is already queued. It holds no lock while the
    /// disk works, so appenders keep writing; a failure stops the log like a failed write.
    private func scheduleBackgroundSync() {
        guard syncScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        background.async { [self] in
            syncScheduled.store(false, ordering: .releasing)
            // `close` drains this queue after marking the file closed, so the descriptor stays open while this runs.
            guard let target = writer.withLock({ $0.fileClosed ? nil : $0.written }) else { return }
            guard posixFsync(fd) == 0 else {
                let error = FileIO.ioError(path, "fsync failed")
                sequencer.withLock { $0.failure = $0.failure ?? error }
                return
            }
            writer.withLock { $0.synced = max($0.synced, target) }
        }
    }

    /// Queues a background checkpoint unless one is already queued. A failure is kept like a failed write:
    /// every later append refuses.
    private func scheduleCheckpoint() {
        guard checkpointDue.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        background.async { [self] in
            checkpointDue.store(false, ordering: .releasing)
            do throws(AuditError) {
                try writeCheckpoint()
            } catch {
                sequencer.withLock { $0.failure = $0.failure ?? error }
            }
        }
    }

    /// Writes (and optionally fsyncs) everything queued, unless another caller already did so past `count` entries.
    private func flush(through count: UInt64, fsync wantSync: Bool) throws(AuditError) {
        try writer.withLock { w throws(AuditError) in
            if wantSync ? w.synced >= count : w.written >= count { return }
            _ = try writeQueued(&w, fsync: wantSync)
        }
    }

    /// Writes the queue; returns the size and root the file now holds. Call with `writer` held.
    private func writeQueued(_ w: inout Writer, fsync wantSync: Bool) throws(AuditError) -> (UInt64, [UInt8]) {
        // An append that passed the `closed` check just before `close` must not write to a closed (or reused) descriptor.
        guard !w.fileClosed else { throw AuditError(.failed, "\(path): the audit log is closed") }
        let (bytes, end, root) = sequencer.withLock { s in
            let bytes = s.pending
            s.pending = []
            return (bytes, s.nextSeq, s.tree.rootHash)
        }
        do throws(AuditError) {
            if !bytes.isEmpty { try FileIO.writeAll(fd: fd, bytes[...], path: path) }
            w.written = end
            if wantSync && w.synced < end {
                guard posixFsync(fd) == 0 else { throw FileIO.ioError(path, "fsync failed") }
                w.synced = end
            }
        } catch {
            // The file may now end mid-line; stop here, and let the next open recover it.
            sequencer.withLock { $0.failure = $0.failure ?? error }
            throw error
        }
        return (end, root)
    }

    /// Waits for a background checkpoint, then writes and fsyncs every entry appended so far: after it returns, a
    /// machine crash loses nothing that was appended before the call, in any sync mode.
    ///
    /// - Throws: ``AuditError/Code/failed`` if a write, fsync or background checkpoint failed earlier (the log has
    ///   stopped), ``AuditError/Code/io`` if this write fails.
    public func synchronize() throws(AuditError) {
        background.sync {}
        if let failure = sequencer.withLock({ $0.failure }) {
            throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)")
        }
        try flush(through: size, fsync: true)
    }

    /// Makes every entry durable and replaces `LOG.checkpoint` with a signed checkpoint of the whole log.
    public func writeCheckpoint() throws(AuditError) {
        try writer.withLock { w throws(AuditError) in
            let (size, root) = try writeQueued(&w, fsync: true)
            let note = try signer.sign(Checkpoint(origin: origin, size: size, rootHash: root))
            try FileIO.replaceAtomically(path: checkpointPath, contents: Array(note.utf8))
        }
    }

    /// Writes a final checkpoint, releases the lock and closes the file. Calling it again does nothing.
    public func close() throws(AuditError) {
        let wasClosed = sequencer.withLock { s in
            defer { s.closed = true }
            return s.closed
        }
        guard !wasClosed else { return }
        background.sync {}  // let a queued background checkpoint finish first
        defer {
            // Mark the file closed (appends still in flight now fail instead of writing), let a background fsync
            // that already started finish, and only then release the descriptor.
            writer.withLock { $0.fileClosed = true }
            background.sync {}
            _ = flock(fd, LOCK_UN)
            posixClose(fd)
        }
        if sequencer.withLock({ $0.failure }) == nil {
            try writeCheckpoint()
        }
    }

    deinit {
        let wasClosed = sequencer.withLock { $0.closed }
        if !wasClosed {
            // Best effort for a caller that forgot close(): make queued entries durable, then release the file.
            try? writeCheckpoint()
            _ = flock(fd, LOCK_UN)
            posixClose(fd)
        }
    }
}

// Module-level names for the libc functions that `AuditLog` shadows with its own `open` and `close`.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func posixClose(_ fd: Int32) { _ = close(fd) }
private func posixFsync(_ fd: Int32) -> Int32 { fsync(fd) }
