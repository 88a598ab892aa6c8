#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization
import Crypto
import PeonSystem

/// When appended entries reach the disk, and what each choice risks.
///
/// | mode | before `append` returns | lost by a process crash | lost by a machine crash or power loss |
/// |---|---|---|---|
/// | `always` | every entry written and fsynced | nothing | nothing |
/// | `effects` (default) | durable entries written and fsynced; others written | nothing | non-durable entries since the last fsync (reads, outcomes) |
/// | `batch` | durable and written entries written; buffered entries (reads, denials, outcomes) may wait in the process, at most 256 KiB and 10 ms, while it holds the log; fsyncs run in the background (one for all writes within 10 ms), at checkpoints and at close | buffered entries not yet written: entries of calls that reached nothing outside the process (every entry before a side effect, an HTTP request, guest output or a `log` line is written first) | what the background fsync has not reached (bounded: an appender fsyncs itself when 16,384 written entries are unsynced), including entries of side effects that already ran |
///
/// Concurrent callers share writes and fsyncs (group commit), so `always` costs less per entry as concurrency rises.
/// Periodic checkpoints are signed and written in the background in every mode.
public enum AuditSyncMode: String, Sendable, CaseIterable {
    /// Every entry is durable before `append` returns.
    case always
    /// Entries of side-effecting calls are durable before `append` returns; other entries reach the kernel.
    case effects
    /// Entries reach the kernel and are made durable in the background; side effects may run before their entry is
    /// on disk. A process keeps the log's lock between appends for up to 10 ms (a lease), so entries of calls that
    /// reach nothing outside it (``AuditDurability/buffered``) are numbered at once and written together.
    case batch
}

/// How far one entry must get before ``AuditLog/append(_:durability:)`` returns; the sync mode adds the rest.
///
/// The mediator picks it from what the call does, so the rule "no effect reaches the world before its decision is
/// in the log" holds in every mode: only a call that reaches nothing outside the process may leave its entry in the
/// process's buffer, and anything that does reach out (a side effect, a request, guest output) writes the buffer
/// first.
public enum AuditDurability: Sendable {
    /// A call that reaches nothing outside the process: a read, a denial, an outcome. In `batch` mode the entry may
    /// wait in the process's buffer; in other modes it is written.
    case buffered
    /// A call whose data can leave the process without changing anything (an HTTP GET): written before `append`
    /// returns in every mode, fsynced only in `always`.
    case written
    /// The write-ahead entry of a side effect: written, and fsynced in `always` and `effects` modes.
    case durable
}

/// An append-only, tamper-evident audit log: a JSON Lines file whose lines are the leaves of an RFC 6962 Merkle
/// tree, chained by `prev`, with a signed C2SP checkpoint kept beside it in `LOG.checkpoint`.
///
/// Any number of processes may append to one log at once. Each write holds an exclusive `flock` on the log only
/// while it appends: the writer first reads the lines other processes appended since it last held the lock, checks
/// each byte for byte (it must carry the next `seq`, chain to the line before and hold no control byte; any other
/// line gets the full parse, and stops the log unless it is that entry after all) and adds them to its Merkle tree, then
/// numbers and chains its own queued entries after them and writes them in one `write`. So the file holds one
/// gap-free `seq`, one hash chain and one tree, and every checkpoint (signed under the same lock, over the whole
/// file) extends the one before. Inside a process every caller goes through one ordered writer; whichever caller
/// reaches the disk first writes (and fsyncs) everything queued before it — group commit. A torn last line (a
/// writer that died mid-write) is cut, and a `log.recovered` entry appended, by the next open or the next write of
/// any process.
///
/// After a failed write or fsync, or a line of another writer that does not check, the log refuses every further
/// append (``AuditError/Code/failed``): callers must treat that as a deny, because an action whose record may be lost
/// must not run.
public final class AuditLog: Sendable {
    /// The log file.
    public let path: String
    /// Where the latest signed checkpoint is kept: the log path plus `.checkpoint`.
    public let checkpointPath: String
    /// Where the tree's state at that checkpoint is kept (``TreeFrontier``), so the next open need not re-hash the
    /// entries the checkpoint covers: the log path plus `.frontier`.
    package let frontierPath: String
    /// How many entries opening the log read and hashed: those after the signed checkpoint when `LOG.frontier`
    /// checked, all of them otherwise.
    package let entriesHashedAtOpen: UInt64
    /// The origin line of this log's checkpoints.
    public let origin: String
    /// The durability mode.
    public let sync: AuditSyncMode
    /// A checkpoint is written after every this many entries (0 turns periodic checkpoints off).
    public let checkpointEvery: Int
    /// With periodic checkpoints on, an entry this process appends is covered by a signed checkpoint within about this
    /// long, however few entries follow it (`nil`: by count only). A long-running host (`peon-wasm mcp`, a slow agent)
    /// otherwise left up to ``checkpointEvery`` entries unsigned until it exited.
    public let checkpointWithin: Duration?
    /// Periodic checkpoints start at least this far apart, so a busy log signs and fsyncs a bounded number of times a
    /// second instead of once per ``checkpointEvery`` entries (the unsigned tail is then what this long appends).
    public let checkpointSpacing: Duration
    /// The default ``checkpointWithin``.
    public static let defaultCheckpointWithin: Duration = .seconds(1)
    /// The default ``checkpointSpacing``.
    public static let defaultCheckpointSpacing: Duration = .milliseconds(100)
    /// The longest entry line accepted, in bytes.
    public static let maxLineBytes = 1 << 20
    /// The most bytes a line adds around its record's fields: `{"seq":` + 20 digits + `,"time":"` + 27 + `"` +
    /// `,"prev":"` + 64 + `"}`.
    static let framingBytes = 8 + 20 + 9 + 27 + 1 + 9 + 64 + 2
    /// In `batch` mode, written entries not yet fsynced at which the appender fsyncs itself: the bound on what a
    /// machine crash can lose when the background fsync falls behind.
    static let maxUnsyncedEntries: UInt64 = 16_384
    /// In `batch` mode, how long after the first unsynced write the background fsync starts: every write in between
    /// shares it. An fsync per side effect cost this VM's disk ~250–800 µs of kernel time each and, on two cores,
    /// slowed the very call it followed; one per 10 ms bounds them at 100 a second per log.
    static let backgroundSyncDelay: Duration = .milliseconds(10)
    /// In `batch` mode, buffered bytes at which the buffer is written at once.
    static let maxBufferedBytes = 256 * 1024
    /// In `batch` mode, the lease on the file lock ends after this long without an append...
    static let leaseIdle: Duration = .milliseconds(1)
    /// ... and after this long in any case, so other processes wait at most about this long for the lock.
    static let leaseLimit: Duration = .milliseconds(10)
    /// After a lease ran its full ``leaseLimit``, this process takes the lock per write for this long before it
    /// leases again: a process blocked on the lock is woken by the release, and every write in the gap releases the
    /// lock again, so it gets in. Short, because a lone process pays a lock, a stat and a write per entry meanwhile.
    static let leaseGap: Duration = .milliseconds(1)

    private let signer: CheckpointSigner
    private let fd: Int32

    /// Records waiting for the writer. A caller's place in the queue is its ticket; its `seq` is only known once
    /// written, because other processes may append in between.
    private struct Queue: ~Copyable {
        var nextTicket: UInt64 = 0
        /// The serialized fields of tickets `Writer.written ..< nextTicket`, in order.
        var pending: [[UInt8]] = []
        var failure: AuditError?
        var closed = false
    }

    /// What this process knows of the file (its first `fileEnd` bytes, checked) and of its own tickets.
    private struct Writer: ~Copyable {
        var nextSeq: UInt64
        var prev: [UInt8]
        var tree: CompactTree
        var fileEnd: Int64
        /// Tickets below this have their `seq` and their line (in `buffer` or in the file).
        var numbered: UInt64 = 0
        /// Tickets below this are written to the file.
        var written: UInt64 = 0
        /// Tickets below this are fsynced.
        var synced: UInt64 = 0
        /// The `seq` each numbered ticket got, until its caller collects it.
        var seqs: [UInt64: UInt64] = [:]
        /// Lines numbered and chained but not yet written: only while `leased`.
        var buffer: [UInt8] = []
        /// Whether this process holds the file lock between appends (`batch` mode), so nobody else can append.
        var leased = false
        /// When the lease was taken, and when it was last used.
        var leaseTaken = ContinuousClock.now
        var lastUse = ContinuousClock.now
        /// After a lease ran its full ``leaseLimit``, none is taken again before this (``leaseGap`` later): other
        /// processes waiting for the lock get their turn while this one locks per write.
        var noLeaseBefore = ContinuousClock.now
        /// Set by `close` just before the descriptor is closed: nothing may touch `fd` after it.
        var fileClosed = false
        /// The checkpoint file this writer last put in place: found there unchanged, it is known to be this log's
        /// without parsing it or checking its signature again.
        var published: (note: [UInt8], size: UInt64)?
    }

    /// Signs and writes periodic checkpoints and background fsyncs off the appending threads.
    private let background = DispatchQueue(label: "peon-wasm.audit-log")
    /// When the next periodic checkpoint is due, in nanoseconds after ``clockBase``; `Int64.max` when none is. Each
    /// scheduled checkpoint carries the deadline it was scheduled for and runs only if that deadline is still the due
    /// one: an earlier request replaces a later one, whose block then does nothing.
    private let checkpointDeadline = Atomic<Int64>(.max)
    /// When the last periodic checkpoint started, in nanoseconds after ``clockBase`` (``checkpointSpacing``).
    private let lastPeriodicCheckpoint = Atomic<Int64>(.min)
    /// How many periodic checkpoints ran (see ``periodicCheckpointCount``).
    private let periodicCheckpoints = Atomic<Int>(0)
    /// Whether a background fsync is queued and not yet started (at most one is).
    private let syncScheduled = Atomic<Bool>(false)
    /// How many background fsyncs ran (see ``backgroundSyncCount``).
    private let backgroundSyncs = Atomic<Int>(0)
    /// Ends leases on the file lock (its own queue, so a slow fsync or checkpoint never delays another process).
    private let leaseTimer = DispatchQueue(label: "peon-wasm.audit-lease")
    /// When this process last appended and when it took its lease, in nanoseconds after ``clockBase``: copies of
    /// `Writer.lastUse` and `Writer.leaseTaken` that the lease timer reads without the writer lock. While appends keep
    /// coming, it only re-arms; it takes the lock (and so never wakes or blocks an appending thread) only when a
    /// lease may have run out. The values under the lock stay the ones that decide.
    private let lastUseNanos = Atomic<Int64>(0)
    private let leaseTakenNanos = Atomic<Int64>(0)
    private let clockBase = ContinuousClock.now
    /// Counts the leases taken: a timer belongs to one lease and stops once another replaced it.
    private let leaseGeneration = Atomic<UInt64>(0)

    /// Both locks sleep rather than spin and hand over (``SleepingLock``): many threads append at once.
    private let queue: SleepingLock<Queue>
    /// Held while touching the file; always taken before `queue` when both are needed.
    private let writer: SleepingLock<Writer>

    private init(path: String, fd: Int32, signer: CheckpointSigner, origin: String, sync: AuditSyncMode,
                 checkpointEvery: Int, checkpointWithin: Duration?, checkpointSpacing: Duration,
                 size: UInt64, prev: [UInt8], tree: CompactTree, fileEnd: Int64, hashedAtOpen: UInt64) {
        self.path = path
        self.checkpointPath = path + ".checkpoint"
        self.frontierPath = path + ".frontier"
        self.entriesHashedAtOpen = hashedAtOpen
        self.fd = fd
        self.signer = signer
        self.origin = origin
        self.sync = sync
        self.checkpointEvery = checkpointEvery
        self.checkpointWithin = checkpointWithin.map { max($0, .zero) }
        self.checkpointSpacing = max(checkpointSpacing, .zero)
        queue = SleepingLock(Queue())
        writer = SleepingLock(Writer(nextSeq: size, prev: prev, tree: tree, fileEnd: fileEnd))
    }

    /// Opens (creating with mode 0600 if needed) the log at `path` for appending beside any other process that has it
    /// open, recovering a torn tail.
    ///
    /// - Parameters:
    ///   - signer: signs checkpoints.
    ///   - sync: when entries reach the disk; see ``AuditSyncMode``.
    ///   - checkpointEvery: write `LOG.checkpoint` after every this many entries (0: only on demand and close).
    ///   - checkpointWithin: with `checkpointEvery` above 0, also sign an entry within about this long of its append,
    ///     however few follow it (`nil`: by count only).
    ///   - checkpointSpacing: start periodic checkpoints at least this far apart.
    ///   - origin: the checkpoint origin line; defaults to the signer's key name.
    /// Opening checks that the existing `LOG.checkpoint` is signed by `signer` and still matches the log, so an
    /// altered log is never re-signed by a later checkpoint.
    ///
    /// - Throws: ``AuditError/Code/io`` if it cannot be read or written, ``AuditError/Code/malformedEntry`` if its last
    ///   complete line is not an entry, ``AuditError/Code/checkpointMismatch`` or ``AuditError/Code/badSignature`` if
    ///   the log no longer matches its checkpoint or the checkpoint is not this signer's (run `peon-wasm audit verify`).
    ///
    /// A log that holds entries but has no checkpoint beside it is refused (`checkpointMissing`): every log gets a
    /// signed checkpoint (of size 0) when it is created, before its first entry, so one without is a log whose
    /// checkpoint was deleted, and appending would sign whatever it now holds. `adoptingUnsigned` (what
    /// `audit checkpoint --refresh` passes, once an operator has checked the log) signs it anyway.
    public static func open(path: String, signer: CheckpointSigner, sync: AuditSyncMode = .effects,
                            checkpointEvery: Int = 1000, checkpointWithin: Duration? = defaultCheckpointWithin,
                            checkpointSpacing: Duration = defaultCheckpointSpacing, origin: String? = nil,
                            adoptingUnsigned: Bool = false) throws(AuditError) -> AuditLog {
        let fd = posixOpen(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EISDIR { throw AuditError(.io, "\(path): it is a directory; name the audit log file itself (e.g. \(path)/audit.jsonl)") }
            throw FileIO.ioError(path, "cannot open the audit log")
        }
        var keep = false
        defer { if !keep { posixClose(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw AuditError(.io, "\(path): the audit log must be a regular file, and this is a FIFO, a socket or a device; name a file")
        }
        // Writers hold the exclusive lock only while appending (and replacing the checkpoint): under a shared lock the
        // checkpoint and the log are a consistent pair, and a line without its newline is a torn tail, not a write
        // in progress.
        try FileIO.flockWaiting(fd, LOCK_SH, path: path)
        let scan: (tree: CompactTree, prev: [UInt8], completeBytes: Int64, torn: Bool, hashed: UInt64)
        do throws(AuditError) {
            scan = try scanForOpen(fd: fd, path: path, signer: signer, adoptingUnsigned: adoptingUnsigned)
        } catch {
            _ = flock(fd, LOCK_UN)
            throw error
        }
        _ = flock(fd, LOCK_UN)
        let log = AuditLog(path: path, fd: fd, signer: signer, origin: origin ?? signer.name, sync: sync,
                           checkpointEvery: checkpointEvery, checkpointWithin: checkpointWithin,
                           checkpointSpacing: checkpointSpacing, size: scan.tree.size, prev: scan.prev, tree: scan.tree,
                           fileEnd: scan.completeBytes, hashedAtOpen: scan.hashed)
        keep = true
        if scan.tree.size == 0 && !FileIO.exists(path + ".checkpoint") {
            // A new log is signed before its first entry, so that a log with entries and no checkpoint is never
            // one of ours (see above).
            try log.writeCheckpoint()
        }
        if scan.torn {
            // The next write cuts the torn line and records `log.recovered` (unless another process did so first);
            // the checkpoint makes that durable in every sync mode, and signed at once.
            try log.writeCheckpoint()
        }
        return log
    }

    /// Hashes every complete line of the log after its signed checkpoint (every line when ``TreeFrontier`` does not
    /// check; call with a lock held) and checks it against the signed checkpoint.
    private static func scanForOpen(fd: Int32, path: String, signer: CheckpointSigner, adoptingUnsigned: Bool)
        throws(AuditError) -> (tree: CompactTree, prev: [UInt8], completeBytes: Int64, torn: Bool, hashed: UInt64) {
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

        // Hash every complete line after the signed checkpoint (every line, unless `LOG.frontier` checks); find a
        // torn tail.
        var tree = CompactTree()
        var prev = [UInt8](repeating: 0, count: 32)
        var completeBytes: Int64 = 0
        if let signed, !adoptingUnsigned, let resumed = resume(fd: fd, path: path, at: signed) {
            (tree, prev, completeBytes) = resumed
        }
        let resumedAt = tree.size
        var reader = LineReader(fd: fd, path: path, maxLine: maxLineBytes, offset: completeBytes)
        var last: [UInt8] = []
        var torn = false
        try checkSigned(tree)
        // Entries past the signed checkpoint are signed by the next checkpoint this writer makes: each must be chained
        // to the one before it (its seq and prev), or an entry altered since the last checkpoint would be signed in its
        // altered form. (Those the checkpoint covers are checked by its root.)
        let unsignedFrom = signed?.size ?? 0
        while let span = try reader.nextSpan() {
            switch span {
            case .line(let range):
                // Hashed in the reader's buffer; only the last line is kept (in one reused array).
                let seq = tree.size
                let (leaf, length, chained) = reader.withBytes(range) { bytes in
                    last.removeAll(keepingCapacity: true)
                    last.append(contentsOf: bytes)
                    let chained = seq < unsignedFrom || AuditEntry.isChainedLine(bytes, seq: seq, prev: prev)
                    return (RFC6962.leafHash(bytes), bytes.count, chained)
                }
                guard chained else {
                    // A file without a checkpoint whose first line is no entry is no log at all (said so below too).
                    if signed == nil, let reason = FileIO.notALogReason(fd: fd, path: path) {
                        throw Self.notALog(path, reason)
                    }
                    throw AuditError(.brokenChain,
                                     "\(path):\(seq + 1): entry seq \(seq), after the last checkpoint, is not chained to the entry before it (an entry was altered, removed or inserted since the log was signed); refusing to append to or sign it: run `peon-wasm audit verify \(path)`",
                                     line: Int(seq) + 1, seq: seq)
                }
                tree.append(leafHash: leaf)
                try checkSigned(tree)
                prev = leaf
                completeBytes += Int64(length) + 1
            case .tooLong:
                throw AuditError(.malformedEntry,
                                 "\(path):\(tree.size + 1): a line is longer than \(maxLineBytes) bytes; run `peon-wasm audit verify \(path)`",
                                 line: Int(tree.size) + 1, seq: tree.size)
            case .partial:
                torn = true
            }
        }
        if signed == nil, tree.size > 0 || torn, !adoptingUnsigned {
            if let reason = FileIO.notALogReason(fd: fd, path: path) { throw Self.notALog(path, reason) }
            throw AuditError(.checkpointMissing,
                             "\(path): the log holds \(tree.size) entries but no checkpoint: it was deleted, and appending would sign whatever the log now holds; check the log against a checkpoint kept elsewhere (`peon-wasm audit verify \(path) --checkpoint COPY`), then sign it with `peon-wasm audit checkpoint \(path) --refresh`")
        }
        if let signed, signed.size > tree.size {
            throw AuditError(.checkpointMismatch,
                             "\(path): the signed checkpoint covers \(signed.size) entries but the log has \(tree.size): entries were removed; refusing to append (run `peon-wasm audit verify \(path)`)")
        }
        if tree.size > resumedAt {
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
        return (tree, prev, completeBytes, torn, tree.size - resumedAt)
    }

    /// The refusal of a file without a checkpoint that is not an audit log (`reason`: why its first line is no entry).
    private static func notALog(_ path: String, _ reason: String) -> AuditError {
        AuditError(.malformedEntry,
                   "\(path) is not a peon-wasm audit log: \(reason), and it has no checkpoint; give a log peon-wasm wrote, or a path that does not exist yet",
                   line: 1, seq: 0)
    }

    /// The tree, last leaf hash and byte offset at the signed checkpoint `signed`, from `LOG.frontier`, when all of it
    /// checks: its peaks fold to the checkpoint's signed root for the same size, and the line ending at its offset is
    /// entry `size - 1` with its `prev` as leaf hash. `nil` otherwise (no file, one left by an older checkpoint,
    /// garbage, a cut or altered boundary line): the caller scans the whole log.
    ///
    /// What this skips is re-hashing the entries the checkpoint covers. Entries altered there are still found by
    /// `audit verify`, and never re-signed: the tree resumes from the peaks the key signed, so every later
    /// checkpoint commits to the entries as they were when signed, not as the file now holds them.
    private static func resume(fd: Int32, path: String, at signed: Checkpoint)
        -> (tree: CompactTree, prev: [UInt8], offset: Int64)? {
        guard let bytes = try? FileIO.readAll(path: path + ".frontier", limit: TreeFrontier.maxBytes),
              let frontier = TreeFrontier.parse(bytes), frontier.size == signed.size,
              let tree = CompactTree(size: frontier.size, peaks: frontier.peaks), tree.rootHash == signed.rootHash else {
            return nil
        }
        if frontier.size == 0 {
            return frontier.prev == [UInt8](repeating: 0, count: 32) ? (tree, frontier.prev, 0) : nil
        }
        // With an odd size the last leaf is a peak of its own: the signature covers `prev` too.
        if frontier.size & 1 == 1, frontier.peaks.last != frontier.prev { return nil }
        guard let line = lineEnding(at: frontier.offset, fd: fd), RFC6962.leafHash(line) == frontier.prev,
              case .success(let entry) = AuditEntry.parse(line), entry.seq == frontier.size - 1 else {
            return nil
        }
        return (tree, frontier.prev, frontier.offset)
    }

    /// The complete line whose newline is the byte before `offset`, read backwards at most ``maxLineBytes`` (plus its
    /// newline); `nil` if the file is shorter, that byte is no newline, or the line is longer.
    private static func lineEnding(at offset: Int64, fd: Int32) -> [UInt8]? {
        var st = stat()
        guard offset > 0, fstat(fd, &st) == 0, Int64(st.st_size) >= offset else { return nil }
        // Entries are short: 8 KiB back finds the newline before most; only a long line needs the whole span.
        return lineEnding(at: offset, fd: fd, span: Int(min(offset, 8192)))
            ?? lineEnding(at: offset, fd: fd, span: Int(min(offset, Int64(maxLineBytes) + 2)))
    }

    /// ``lineEnding(at:fd:)`` reading `span` bytes back.
    private static func lineEnding(at offset: Int64, fd: Int32, span: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: span)
        let start = offset - Int64(span)
        var filled = 0
        while filled < span {
            let n = bytes.withUnsafeMutableBytes { raw in
                retryingInterrupts { pread(fd, raw.baseAddress.map { $0 + filled }, span - filled, off_t(start + Int64(filled))) }
            }
            guard n > 0 else { return nil }
            filled += n
        }
        guard bytes.last == 0x0A else { return nil }
        let body = bytes.dropLast()
        if let newline = body.lastIndex(of: 0x0A) { return Array(body[(newline + 1)...]) }
        // No newline within the span: the line starts the file, or is longer than the span (or than any entry).
        return start == 0 && body.count <= maxLineBytes ? Array(body) : nil
    }

    /// The number of entries in the log as this process last saw it (the next `seq` it would have written).
    public var size: UInt64 { writer.withLock { $0.nextSeq } }

    /// Entries this process wrote that no fsync has covered yet (what a machine crash could lose in `batch` mode).
    package var unsyncedEntries: UInt64 { writer.withLock { $0.written > $0.synced ? $0.written - $0.synced : 0 } }

    /// Background fsyncs run so far (`batch` mode), for tests that check they are shared.
    package var backgroundSyncCount: Int { backgroundSyncs.load(ordering: .relaxed) }

    /// Appends a record and returns its `seq`.
    ///
    /// Pass `durable: true` for the decision entry of a side-effecting call (fs write/append/remove, http other than
    /// GET/HEAD, db execute, exec): in `always` and `effects` mode it is written and fsynced before this returns, so
    /// the record exists before the action runs. Safe to call from many threads and many processes; the order of
    /// `seq` is the order of the lines in the file.
    @discardableResult
    public func append(_ record: AuditRecord, durable: Bool) throws(AuditError) -> UInt64 {
        try append(record, durability: durable ? .durable : .written)
    }

    /// Appends a record and returns its `seq`; `durability` says how far it must get first (see
    /// ``AuditDurability``): in `batch` mode a ``AuditDurability/buffered`` entry may wait in this process's buffer,
    /// already numbered and chained, until the buffer fills, the lease on the file ends, or an entry that must be
    /// written (or ``flush()``) follows it.
    ///
    /// `isAdmitted` is asked under the lock that orders entries, just before this one takes its place: when it
    /// answers `false` nothing is appended (`invalidArgument`). A run uses it to stop its calls'
    /// entries at its `run.end`: whatever is appended after that entry saw the run's end.
    @discardableResult
    public func append(
        _ record: AuditRecord, durability: AuditDurability, onlyIf isAdmitted: () -> Bool = { true }
    ) throws(AuditError) -> UInt64 {
        // Everything that depends on the record alone is serialized before any lock; under the file lock, only what
        // the order decides: seq, time, prev, and the hashes that chain this line to the next.
        // Oversized values are recorded by prefix, SHA-256 and length: every decision gets its entry.
        // (Bounded only when it must be: a copy of the record costs a retain and release per field.)
        let fields = AuditEntry.serializedFields(of: record.exceedsBounds ? record.bounded() : record)
        let lineBytes = fields.count + Self.framingBytes
        guard lineBytes <= Self.maxLineBytes else {
            throw AuditError(.invalidArgument, "an audit entry of \(lineBytes) bytes exceeds \(Self.maxLineBytes); record payloads by hash")
        }
        let ticket = try queue.withLock { q throws(AuditError) -> UInt64 in
            if q.closed { throw AuditError(.failed, "\(path): the audit log is closed") }
            if let failure = q.failure { throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)") }
            guard isAdmitted() else { throw AuditError(.invalidArgument, "\(path): the entry was not admitted") }
            q.pending.append(fields)
            defer { q.nextTicket += 1 }
            return q.nextTicket
        }
        let wantSync: Bool
        let mayBuffer: Bool
        switch sync {
        case .always: (wantSync, mayBuffer) = (true, false)
        case .effects: (wantSync, mayBuffer) = (durability == .durable, false)
        case .batch: (wantSync, mayBuffer) = (false, durability == .buffered)
        }
        let (seq, unsynced) = try writer.withLock { w throws(AuditError) -> (UInt64, UInt64) in
            let done = wantSync ? w.synced > ticket : (mayBuffer ? w.numbered > ticket : w.written > ticket)
            if !done {
                try writeQueued(&w, fsync: wantSync, flush: !mayBuffer)
            }
            guard let seq = w.seqs.removeValue(forKey: ticket) else {
                throw AuditError(.failed, "\(path): the audit log lost track of an entry it wrote")
            }
            return (seq, w.written > w.synced ? w.written - w.synced : 0)
        }
        if sync == .batch {
            if unsynced >= Self.maxUnsyncedEntries {
                try writer.withLock { w throws(AuditError) in
                    if w.synced <= ticket { try writeQueued(&w, fsync: true, flush: true) }
                }
            } else if unsynced > 0 {
                scheduleBackgroundSync()
            }
        }
        return seq
    }

    /// Writes the entries this process holds in its buffer (`batch` mode), without an fsync. The runtime calls it
    /// before a guest's output or `log` line leaves the process, so nothing the guest read reaches a terminal before
    /// the read's entry is in the file.
    public func flush() throws(AuditError) {
        try writer.withLock { w throws(AuditError) in
            guard w.leased, !w.buffer.isEmpty, !w.fileClosed else { return }
            do throws(AuditError) {
                try writeBuffer(&w)
            } catch {
                fail(&w, error)
                throw error
            }
        }
    }

    /// Queues a background fsync of what has been written, ``backgroundSyncDelay`` from now, unless one is already
    /// queued: writes in between share it. It holds no lock while the disk works, so appenders keep writing; a
    /// failure stops the log like a failed write.
    private func scheduleBackgroundSync() {
        guard syncScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        let delay = Int(clamping: nanoseconds(of: Self.backgroundSyncDelay))
        // After `close`, the block finds the file closed and does nothing (close fsynced everything itself).
        background.asyncAfter(deadline: .now() + .nanoseconds(delay)) { [self] in
            syncScheduled.store(false, ordering: .releasing)
            // `close` drains this queue after marking the file closed, so the descriptor stays open while this runs.
            guard let target = writer.withLock({ $0.fileClosed ? nil : $0.written }) else { return }
            backgroundSyncs.add(1, ordering: .relaxed)
            guard posixFsync(fd) == 0 else {
                let error = FileIO.ioError(path, "fsync failed")
                queue.withLock { $0.failure = $0.failure ?? error }
                return
            }
            writer.withLock { $0.synced = max($0.synced, target) }
        }
    }

    /// How many periodic checkpoints this log ran (not those of ``writeCheckpoint()`` or `close`): for tests.
    package var periodicCheckpointCount: Int { periodicCheckpoints.load(ordering: .relaxed) }

    /// Asks for a periodic checkpoint: `urgent` (``checkpointEvery`` entries were numbered, or a torn tail was cut) as
    /// soon as ``checkpointSpacing`` allows, otherwise within ``checkpointWithin``. A request that is due no sooner
    /// than the one already pending changes nothing, so the common case is one atomic load.
    private func requestCheckpoint(urgent: Bool) {
        var pending = checkpointDeadline.load(ordering: .acquiring)
        // Every pending deadline is at most `checkpointWithin` after its request (``checkpointSpacing`` is clamped to it).
        if pending != .max && !urgent { return }
        guard urgent || checkpointWithin != nil else { return }
        let now = nanoseconds(since: clockBase, at: ContinuousClock.now)
        let spacing = nanoseconds(of: min(checkpointSpacing, checkpointWithin ?? checkpointSpacing))
        let earliest = saturatingAdd(lastPeriodicCheckpoint.load(ordering: .relaxed), spacing)
        let wanted = urgent ? now : saturatingAdd(now, nanoseconds(of: checkpointWithin ?? .zero))
        let due = max(wanted, earliest)
        while due < pending {
            let (exchanged, found) = checkpointDeadline.compareExchange(
                expected: pending, desired: due, ordering: .acquiringAndReleasing)
            if exchanged {
                let delay = Int(clamping: max(0, due - now))
                // After `close`, the block finds the log closed and does nothing (close checkpointed everything itself).
                background.asyncAfter(deadline: .now() + .nanoseconds(delay)) { [self] in runPeriodicCheckpoint(due: due) }
                return
            }
            pending = found
        }
    }

    /// Runs the periodic checkpoint scheduled for `due`, unless an earlier request replaced it, the log is closed or
    /// stopped, or nothing this process numbered is left unsigned. A failure is kept like a failed write: every later
    /// append refuses.
    private func runPeriodicCheckpoint(due: Int64) {
        // The start is recorded before the deadline is released: an appender that then finds no checkpoint pending
        // (and asks for one) sees this start, and spaces its request from it. Blocks run one at a time on
        // `background`, so restoring it when another deadline replaced this one races with nothing but readers.
        let previous = lastPeriodicCheckpoint.exchange(nanoseconds(since: clockBase, at: ContinuousClock.now), ordering: .relaxed)
        guard checkpointDeadline.compareExchange(expected: due, desired: .max, ordering: .acquiringAndReleasing).exchanged else {
            lastPeriodicCheckpoint.store(previous, ordering: .relaxed)
            return
        }
        if queue.withLock({ $0.closed || $0.failure != nil }) { return }
        let signed = writer.withLock { w in
            w.fileClosed || (w.buffer.isEmpty && w.published?.size == w.nextSeq && w.numbered == w.written)
        }
        if signed && queue.withLock({ $0.pending.isEmpty }) { return }
        periodicCheckpoints.add(1, ordering: .relaxed)
        do throws(AuditError) {
            try writeCheckpoint()
        } catch {
            queue.withLock { $0.failure = $0.failure ?? error }
        }
    }

    /// Takes the file lock (or uses this process's lease on it), numbers and chains everything queued after what
    /// other processes wrote, writes it unless it may stay buffered (`flush` false, lease held, buffer not full),
    /// releases the lock unless leased, and fsyncs if asked. Call with `writer` held.
    private func writeQueued(_ w: inout Writer, fsync wantSync: Bool, flush: Bool) throws(AuditError) {
        // An append that passed the `closed` check just before `close` must not write to a closed (or reused) descriptor.
        guard !w.fileClosed else { throw AuditError(.failed, "\(path): the audit log is closed") }
        let end: UInt64
        do throws(AuditError) {
            let cut = try lockFile(&w)
            end = try numberQueued(&w, cut: cut, flush: flush || wantSync)
            if !w.leased { _ = flock(fd, LOCK_UN) }
        } catch {
            fail(&w, error)
            _ = flock(fd, LOCK_UN)  // harmless if not held
            throw error
        }
        // The fsync runs after the lock is released, so other processes write meanwhile; it still covers every byte
        // of the file written so far, including this caller's.
        if wantSync && w.synced < end {
            guard posixFsync(fd) == 0 else {
                let error = FileIO.ioError(path, "fsync failed")
                fail(&w, error)
                throw error
            }
            w.synced = end
        }
    }

    /// Takes the exclusive file lock unless this process's lease holds it, and then catches up with what other
    /// processes appended (returning a torn tail it cut). In `batch` mode the lock is kept as a lease, ended by a
    /// timer after ``leaseIdle`` without appends or ``leaseLimit`` in all.
    private func lockFile(_ w: inout Writer, lease: Bool = true) throws(AuditError) -> [UInt8]? {
        let now = ContinuousClock.now
        w.lastUse = now
        lastUseNanos.store(nanoseconds(since: clockBase, at: now), ordering: .relaxed)
        if w.leased { return nil }
        try FileIO.flockWaiting(fd, LOCK_EX, path: path)
        do throws(AuditError) {
            let cut = try catchUp(&w)
            if lease && sync == .batch && now >= w.noLeaseBefore {
                w.leased = true
                w.leaseTaken = now
                leaseTakenNanos.store(nanoseconds(since: clockBase, at: now), ordering: .relaxed)
                let generation = leaseGeneration.add(1, ordering: .relaxed).newValue
                scheduleLeaseCheck(of: generation, after: Self.leaseIdle)
            }
            return cut
        } catch {
            _ = flock(fd, LOCK_UN)
            throw error
        }
    }

    /// Ends the lease when it has been idle for ``leaseIdle`` or held for ``leaseLimit``: writes the buffer and
    /// releases the lock. A write failure stops the log like any other.
    private func scheduleLeaseCheck(of generation: UInt64, after delay: Duration) {
        let delayNanoseconds = max(1, Int(clamping: nanoseconds(of: delay)))
        leaseTimer.asyncAfter(deadline: .now() + .nanoseconds(delayNanoseconds)) { [self] in
            // Without the lock first: an appender that used the lease since the last check pushed its end back.
            guard leaseGeneration.load(ordering: .relaxed) == generation else { return }
            let now = nanoseconds(since: clockBase, at: ContinuousClock.now)
            let idleLeft = nanoseconds(of: Self.leaseIdle) - (now - lastUseNanos.load(ordering: .relaxed))
            let holdLeft = nanoseconds(of: Self.leaseLimit) - (now - leaseTakenNanos.load(ordering: .relaxed))
            if idleLeft > 0 && holdLeft > 0 {
                scheduleLeaseCheck(of: generation, after: .nanoseconds(min(idleLeft, holdLeft)))
                return
            }
            let again = writer.withLock { w -> Duration? in
                // The generation only changes under this lock, so this check is exact.
                guard w.leased, !w.fileClosed, leaseGeneration.load(ordering: .relaxed) == generation else { return nil }
                let now = ContinuousClock.now
                let idleLeft = Self.leaseIdle - (now - w.lastUse)
                let holdLeft = Self.leaseLimit - (now - w.leaseTaken)
                if idleLeft > .zero && holdLeft > .zero { return min(idleLeft, holdLeft) }
                if holdLeft <= .zero { w.noLeaseBefore = now + Self.leaseGap }
                do throws(AuditError) {
                    try endLease(&w)
                } catch {
                    fail(&w, error)
                }
                return nil
            }
            if let again { scheduleLeaseCheck(of: generation, after: again) }
        }
    }

    /// Writes the buffer and releases the lease's lock.
    private func endLease(_ w: inout Writer) throws(AuditError) {
        guard w.leased else { return }
        defer {
            w.leased = false
            _ = flock(fd, LOCK_UN)
        }
        if !w.buffer.isEmpty { try writeBuffer(&w) }
    }

    /// Records a failure: every later append refuses, and a lease held is released (its buffer is dropped with the
    /// log), so another process can go on with the file.
    private func fail(_ w: inout Writer, _ error: AuditError) {
        queue.withLock { $0.failure = $0.failure ?? error }
        w.buffer = []
        if w.leased {
            w.leased = false
            _ = flock(fd, LOCK_UN)
        }
    }

    /// Writes the buffered lines in one `write`. With the file lock held.
    private func writeBuffer(_ w: inout Writer) throws(AuditError) {
        guard !w.buffer.isEmpty else {
            w.written = w.numbered
            return
        }
        // On failure the file may now end mid-line; the log stops, and the next writer or open cuts the line.
        try FileIO.writeAll(fd: fd, w.buffer[...], path: path)
        w.fileEnd += Int64(w.buffer.count)
        w.buffer.removeAll(keepingCapacity: w.buffer.capacity <= Self.maxBufferedBytes * 2)
        w.written = w.numbered
    }

    /// With the file lock held: numbers and chains the queued entries (after a `log.recovered` entry, if a torn tail
    /// was cut) into the buffer, and writes the buffer if `flush`, if it is full, or if this process holds no lease.
    /// Returns the ticket count now written.
    private func numberQueued(_ w: inout Writer, cut: [UInt8]?, flush: Bool) throws(AuditError) -> UInt64 {
        // A log that failed (perhaps mid-line, by its own write) touches the file no more: another writer or the
        // next open recovers it.
        let batch = try queue.withLock { q throws(AuditError) -> [[UInt8]] in
            if let failure = q.failure { throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)") }
            let batch = q.pending
            q.pending = []
            return batch
        }
        // Every line is written straight into the buffer, and hashed where it lies.
        w.buffer.reserveCapacity(w.buffer.count + batch.reduce(cut == nil ? 0 : 1024) { $0 + $1.count + Self.framingBytes + 1 })
        let firstSeq = w.nextSeq
        func add(_ fields: [UInt8]) {
            let start = w.buffer.count
            AuditEntry.appendHead(seq: w.nextSeq, to: &w.buffer)
            w.buffer.append(UInt8(ascii: "\""))
            AuditClock.appendNow(to: &w.buffer)
            w.buffer.append(UInt8(ascii: "\""))
            w.buffer += fields
            AuditEntry.appendTail(prev: w.prev, to: &w.buffer)
            let leaf = RFC6962.leafHash(w.buffer[start...])
            w.tree.append(leafHash: leaf)
            w.prev = leaf
            w.buffer.append(0x0A)
            w.nextSeq += 1
        }
        if let cut {
            let afterSeq = w.nextSeq == 0 ? "none" : String(w.nextSeq - 1)
            let record = AuditRecord(
                run: "", module: "", moduleSHA256: "", call: "log.recovered", resource: "log:" + path,
                reason: "the log ended in an incomplete line (the writer stopped mid-write); the partial line was cut",
                details: ["cut_bytes": String(cut.count), "cut_sha256": hex(SHA256.hash(data: cut)), "after_seq": afterSeq])
            add(AuditEntry.serializedFields(of: record.bounded()))
        }
        var ticket = w.numbered
        for fields in batch {
            w.seqs[ticket] = w.nextSeq
            add(fields)
            ticket += 1
        }
        w.numbered = ticket
        if flush || cut != nil || !w.leased || w.buffer.count >= Self.maxBufferedBytes {
            try writeBuffer(&w)
        }
        if cut != nil {
            guard posixFsync(fd) == 0 else { throw FileIO.ioError(path, "fsync failed") }
            w.synced = w.written
        }
        if checkpointEvery > 0 && w.nextSeq > firstSeq {
            let every = UInt64(checkpointEvery)
            requestCheckpoint(urgent: cut != nil || w.nextSeq / every > firstSeq / every)
        }
        return w.written
    }

    /// A key for `purpose` that only a holder of this log's signing key can derive (``CheckpointSigner/derivedKey(_:)``).
    package func derivedKey(_ purpose: String) -> [UInt8] { signer.derivedKey(purpose) }

    /// Throws unless the log's path still names the file this process has open (same device and inode).
    private func checkStillAtPath() throws(AuditError) {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0 else { throw FileIO.ioError(path, "cannot examine the audit log") }
        guard stat(path, &named) == 0, named.st_dev == open.st_dev, named.st_ino == open.st_ino else {
            throw AuditError(.io,
                             "\(path): the audit log was moved, replaced or removed while this process had it open: the entries since went to the file it had opened, and no checkpoint is published over another file; stop whatever moves the log (rotate logs between runs), then run `peon-wasm audit verify` on both files")
        }
    }

    /// With the file lock held: reads the lines other processes appended since this one last held the lock, checks
    /// that each parses, has the next `seq` and chains to the line before, and adds them to the tree. A line without
    /// its newline can only be left by a writer that died or failed mid-write (writers hold the lock while writing):
    /// it is cut, and its bytes returned so the cut is recorded.
    private func catchUp(_ w: inout Writer) throws(AuditError) -> [UInt8]? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileIO.ioError(path, "cannot examine the audit log") }
        let size = Int64(st.st_size)
        if size == w.fileEnd { return nil }
        guard size > w.fileEnd else {
            throw AuditError(.brokenChain, "\(path): the log shrank from \(w.fileEnd) to \(size) bytes while open: entries were removed; refusing to append (run `peon-wasm audit verify \(path)`)")
        }
        var reader = LineReader(fd: fd, path: path, maxLine: Self.maxLineBytes, offset: w.fileEnd, end: size)
        while let span = try reader.nextSpan() {
            let seq = w.nextSeq
            let lineNumber = Int(seq) + 1
            switch span {
            case .line(let range):
                // Checked and hashed in the reader's buffer: nothing is copied for a line that checks.
                try reader.withBytes(range) { (bytes) throws(AuditError) in
                    // The common case, checked byte for byte without parsing: the line is what a writer of this
                    // format writes for entry `seq` after the line before (`{"seq":N,...,"prev":"HEX"}`, no control
                    // bytes). Anything else gets the full parse, which names what is wrong. `audit verify` checks
                    // every field.
                    if !AuditEntry.isChainedLine(bytes, seq: seq, prev: w.prev) {
                        switch AuditEntry.parse(Array(bytes)) {
                        case .success(let entry) where entry.seq == seq && entry.prev == hex(w.prev): break
                        case .success:
                            throw AuditError(.brokenChain,
                                             "\(path):\(lineNumber): another writer appended a line that is not entry seq \(seq) chained to the line before; refusing to append (run `peon-wasm audit verify \(path)`)",
                                             line: lineNumber, seq: seq)
                        case .failure(let e):
                            throw AuditError(.malformedEntry,
                                             "\(path):\(lineNumber): another writer appended a line that is not a valid entry (\(e.reason)); refusing to append (run `peon-wasm audit verify \(path)`)",
                                             line: lineNumber, seq: seq)
                        }
                    }
                    let leaf = RFC6962.leafHash(bytes)
                    w.tree.append(leafHash: leaf)
                    w.prev = leaf
                    w.nextSeq += 1
                    w.fileEnd += Int64(bytes.count) + 1
                }
            case .tooLong:
                throw AuditError(.malformedEntry,
                                 "\(path):\(lineNumber): another writer appended a line longer than \(Self.maxLineBytes) bytes; refusing to append (run `peon-wasm audit verify \(path)`)",
                                 line: lineNumber, seq: seq)
            case .partial(let range):
                guard ftruncate(fd, off_t(w.fileEnd)) == 0, posixFsync(fd) == 0 else {
                    throw FileIO.ioError(path, "cannot cut the torn tail")
                }
                return reader.withBytes(range) { Array($0) }
            }
        }
        return nil
    }

    /// Waits for a background checkpoint, then writes and fsyncs every entry appended so far: after it returns, a
    /// machine crash loses nothing that was appended before the call, in any sync mode.
    ///
    /// - Throws: ``AuditError/Code/failed`` if a write, fsync or background checkpoint failed earlier (the log has
    ///   stopped), ``AuditError/Code/io`` if this write fails.
    public func synchronize() throws(AuditError) {
        background.sync {}
        let target = try queue.withLock { q throws(AuditError) -> UInt64 in
            if let failure = q.failure { throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)") }
            return q.nextTicket
        }
        try writer.withLock { w throws(AuditError) in
            if w.synced < target { try writeQueued(&w, fsync: true, flush: true) }
        }
    }

    /// Makes every entry durable and replaces `LOG.checkpoint` with a signed checkpoint of the whole log (including
    /// what other processes appended): it extends every checkpoint written before it.
    public func writeCheckpoint() throws(AuditError) {
        // A publish that finds a checkpoint this log's writers cannot have written records that in an entry; the
        // second round signs a checkpoint that covers the entry (at most two rounds: a file swapped again meanwhile
        // is recorded, and checkpointed by the next checkpoint).
        if try writeCheckpointRound() { _ = try writeCheckpointRound() }
    }

    /// Numbers, writes, fsyncs, signs and publishes what is queued; returns whether publishing recorded a
    /// `log.checkpoint_replaced` entry that the published checkpoint does not cover.
    private func writeCheckpointRound() throws(AuditError) -> Bool {
        // Under the writer lock and the file lock, only what the order decides: everything queued is numbered and
        // written, and the tree head taken. The slow parts (the log's fsync, the signature, the new file's write and
        // fsync, the directory's fsync) run without them, so appenders of this process and others keep going.
        let head = try writer.withLock { w throws(AuditError) -> (size: UInt64, root: [UInt8], end: UInt64, frontier: TreeFrontier) in
            guard !w.fileClosed else { throw AuditError(.failed, "\(path): the audit log is closed") }
            do throws(AuditError) {
                let cut = try lockFile(&w, lease: false)
                // The checkpoint ends a lease: the lock is released below either way.
                w.leased = false
                defer { _ = flock(fd, LOCK_UN) }
                let end = try numberQueued(&w, cut: cut, flush: true)
                // Everything numbered is written now: `fileEnd` ends the line of entry `nextSeq - 1`.
                let frontier = TreeFrontier(size: w.nextSeq, offset: w.fileEnd, prev: w.prev, peaks: w.tree.peakHashes)
                return (w.nextSeq, w.tree.rootHash, end, frontier)
            } catch {
                fail(&w, error)
                throw error
            }
        }
        do throws(AuditError) {
            // The entries reach the disk before any checkpoint claims them.
            guard posixFsync(fd) == 0 else { throw FileIO.ioError(path, "fsync failed") }
            writer.withLock { $0.synced = max($0.synced, head.end) }
            let note = try signer.sign(Checkpoint(origin: origin, size: head.size, rootHash: head.root))
            let recorded = try publish(note, size: head.size, frontier: head.frontier)
            FileIO.syncDirectory(of: checkpointPath)
            return recorded
        } catch {
            writer.withLock { fail(&$0, error) }
            throw error
        }
    }

    /// Replaces `LOG.checkpoint` with `note` (a checkpoint of `size` entries), under the writer lock and the file
    /// lock, unless the one there is newer and can be this log's: another process (or a later checkpoint of this
    /// one) published while this one was signing, and a checkpoint never goes back.
    ///
    /// Kept only when it is signed by this log's key, claims no more entries than the file holds (after catching up
    /// with what other processes appended: they write their entries before they checkpoint them), and, when it
    /// claims exactly the entries this writer knows, has this writer's root. Anything else is replaced: a forgery
    /// (another key), or the validly signed checkpoint of another log of this host (every log of a host shares the
    /// key and, by default, the origin) copied here. Kept, either would silently stop every later checkpoint of the
    /// run, the final one too, and the run would not know.
    ///
    /// The new checkpoint is written and fsynced beside the old one before either lock is taken (`staged`, which tests
    /// use to look at the locks, runs then): under the locks only the decision and a `rename` remain, so neither this
    /// process's appenders nor another process's wait behind the checkpoint's disk write.
    ///
    /// A file there that none of this log's writers can have published (it does not parse, another key signed it,
    /// it claims more entries than the log holds, or all of them with another root) is evidence that someone wrote
    /// `LOG.checkpoint`: before replacing it, a `log.checkpoint_replaced` entry records why, its SHA-256 and what
    /// it claimed. Returns whether it did; that entry is not covered by `note`.
    @discardableResult
    package func publish(_ note: String, size: UInt64, frontier: TreeFrontier? = nil,
                         staged: () -> Void = {}) throws(AuditError) -> Bool {
        let file = try StagedFile(replacing: checkpointPath, contents: Array(note.utf8))
        // A cache, not a record: not fsynced (lost or torn, the next open scans the whole log).
        var pendingFrontier: StagedFile? = nil
        if let frontier, frontier.size == size {
            pendingFrontier = try? StagedFile(replacing: frontierPath, contents: frontier.serialized(), mode: 0o600, durable: false)
        }
        staged()
        var pending: StagedFile? = consume file
        defer {
            pending.take()?.discard()
            pendingFrontier.take()?.discard()
        }
        return try writer.withLock { w throws(AuditError) -> Bool in
            guard !w.fileClosed else { throw AuditError(.failed, "\(path): the audit log is closed") }
            // A log that failed (perhaps mid-line, by its own write) touches the file no more, so it cannot catch up.
            if let failure = queue.withLock({ $0.failure }) {
                throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)")
            }
            // While this process leases the file its lock is held already and nobody else appended; otherwise take
            // it, and catch up with what other processes appended, as an append does.
            let took = !w.leased
            var cut: [UInt8]?
            if took {
                try FileIO.flockWaiting(fd, LOCK_EX, path: path)
                do throws(AuditError) {
                    cut = try catchUp(&w)
                } catch {
                    _ = flock(fd, LOCK_UN)
                    throw error
                }
            }
            defer { if took { _ = flock(fd, LOCK_UN) } }
            // The checkpoint is published at the log's path; it must still name the file this process writes. A log
            // moved away or removed (and perhaps another put in its place) while open kept taking this process's
            // entries in the old file, and this checkpoint would have been published beside another file, or none.
            try checkStillAtPath()
            if cut != nil {
                // A torn tail was cut: record it (with whatever is queued) first, as an append does.
                _ = try numberQueued(&w, cut: cut, flush: true)
            }
            let found = inspectPublished(entries: w.nextSeq, root: w.tree.rootHash, ours: w.published)
            if let claimed = found.size, found.problem == nil, claimed > size { return false }
            if let problem = found.problem {
                var details = ["replaced_sha256": found.digest, "replaced_bytes": String(found.bytes)]
                if let claimed = found.size { details["replaced_size"] = String(claimed) }
                let record = AuditRecord(
                    run: "", module: "", moduleSHA256: "", call: "log.checkpoint_replaced", resource: "log:" + path,
                    reason: "\(checkpointPath) \(problem); this log's writers never published it, so it was replaced",
                    details: details)
                try recordInternally(record, &w)
            }
            try pending.take()?.commit()
            // After the checkpoint, under the same locks: an open (which holds the shared lock) sees the two agree,
            // or falls back to a full scan. A failure here costs the next open time, nothing else.
            if let staged = pendingFrontier.take() {
                do throws(AuditError) { try staged.commit() } catch { unlink(frontierPath) }
            } else {
                unlink(frontierPath)
            }
            w.published = (Array(note.utf8), size)
            return found.problem != nil
        }
    }

    /// With the writer lock and the file lock held: appends `record` (a lifecycle entry of the log itself) after
    /// everything queued, and writes it.
    private func recordInternally(_ record: AuditRecord, _ w: inout Writer) throws(AuditError) {
        let fields = AuditEntry.serializedFields(of: record.bounded())
        let ticket = try queue.withLock { q throws(AuditError) -> UInt64 in
            if let failure = q.failure { throw AuditError(.failed, "\(path): the audit log stopped after an earlier failure: \(failure.message)") }
            q.pending.append(fields)
            defer { q.nextTicket += 1 }
            return q.nextTicket
        }
        _ = try numberQueued(&w, cut: nil, flush: true)
        w.seqs.removeValue(forKey: ticket)
    }

    /// What `LOG.checkpoint` holds now: the size its checkpoint claims when it parses, why none of this log's writers
    /// can have published it (`nil` when one can have, or when there is no file), and the file's SHA-256 (only then)
    /// and length.
    ///
    /// The file this writer last published (`ours`), found unchanged, is taken as it is: the common case costs one
    /// read, no parse and no signature check under the locks. A checkpoint signed by this log's key and claiming fewer
    /// entries than the log holds passes: it cannot be checked against the compact tree (and is replaced by a larger
    /// one anyway).
    private func inspectPublished(entries: UInt64, root: [UInt8], ours: (note: [UInt8], size: UInt64)?)
        -> (size: UInt64?, problem: String?, digest: String, bytes: Int) {
        let bytes: [UInt8]
        do throws(AuditError) {
            bytes = try FileIO.readAll(path: checkpointPath, limit: SignedNote.maxBytes)
        } catch {
            // Nothing there; or something a rename cannot replace (a folder), which stops the log when it fails.
            var st = stat()
            if lstat(checkpointPath, &st) != 0 || (st.st_mode & S_IFMT) == S_IFDIR { return (nil, nil, "", 0) }
            return (nil, "is not a regular file of at most \(SignedNote.maxBytes) bytes", "", Int(clamping: st.st_size))
        }
        if let ours, ours.note == bytes { return (ours.size, nil, "", bytes.count) }
        let digest = hex(SHA256.hash(data: bytes))
        guard let note = try? SignedNote.parse(String(decoding: bytes, as: UTF8.self)),
              let checkpoint = try? Checkpoint.parse(note.text) else {
            return (nil, "does not parse as a signed checkpoint", digest, bytes.count)
        }
        guard (try? note.verify(with: try VerifierKey(signer.verifierKey))) != nil else {
            return (checkpoint.size, "is not signed by this log's key", digest, bytes.count)
        }
        guard Self.canBeCheckpoint(checkpoint, ofEntries: entries, root: root) else {
            let problem = checkpoint.size > entries
                ? "claims \(checkpoint.size) entries but the log holds \(entries)"
                : "claims all \(entries) entries with another tree root"
            return (checkpoint.size, problem, digest, bytes.count)
        }
        return (checkpoint.size, nil, "", bytes.count)
    }

    /// Whether `checkpoint` can be one of a log that holds `entries` entries with tree root `root`: it claims no
    /// more entries, and when it claims all of them, it has that root. (A smaller one cannot be checked against the
    /// compact tree; it is replaced by the next checkpoint anyway, which is larger.)
    private static func canBeCheckpoint(_ checkpoint: Checkpoint, ofEntries entries: UInt64, root: [UInt8]) -> Bool {
        checkpoint.size < entries || (checkpoint.size == entries && checkpoint.rootHash == root)
    }

    /// The size the checkpoint file at `path` claims, or `nil` when it is missing or does not parse. Its signature is
    /// not checked here: `open`, `publish` and `audit verify` check it.
    package static func publishedSize(_ path: String) -> UInt64? {
        publishedNote(path)?.checkpoint.size
    }

    /// The signed note in the file at `path` and the checkpoint it holds, or `nil` when it is missing or does not parse.
    private static func publishedNote(_ path: String) -> (note: SignedNote, checkpoint: Checkpoint)? {
        guard let bytes = try? FileIO.readAll(path: path, limit: SignedNote.maxBytes),
              let note = try? SignedNote.parse(String(decoding: bytes, as: UTF8.self)),
              let checkpoint = try? Checkpoint.parse(note.text) else { return nil }
        return (note, checkpoint)
    }

    /// Writes a final checkpoint and closes the file. Calling it again does nothing.
    public func close() throws(AuditError) {
        let wasClosed = queue.withLock { q in
            defer { q.closed = true }
            return q.closed
        }
        guard !wasClosed else { return }
        background.sync {}  // let a queued background checkpoint finish first
        defer {
            // Mark the file closed (appends still in flight now fail instead of writing), let a background fsync
            // that already started finish, and only then release the descriptor.
            writer.withLock { $0.fileClosed = true }
            background.sync {}
            posixClose(fd)
        }
        if queue.withLock({ $0.failure }) == nil {
            try writeCheckpoint()
        }
    }

    deinit {
        let wasClosed = queue.withLock { $0.closed }
        if !wasClosed {
            // Best effort for a caller that forgot close(): make queued entries durable, then release the file.
            try? writeCheckpoint()
            posixClose(fd)
        }
    }
}

// Module-level names for the libc functions that `AuditLog` shadows with its own `open` and `close`.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func posixClose(_ fd: Int32) { _ = close(fd) }
private func posixFsync(_ fd: Int32) -> Int32 { fsync(fd) }

/// `duration` in whole nanoseconds, saturating (a lease's durations are milliseconds).
private func nanoseconds(of duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return seconds < 0 ? .min : .max }
    let (sum, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    return overflowAgain ? (whole < 0 ? .min : .max) : sum
}

/// `a + b`, saturating at `Int64.min` and `Int64.max`.
private func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b < 0 ? .min : .max) : sum
}

/// The nanoseconds from `base` to `instant` on the continuous clock.
private func nanoseconds(since base: ContinuousClock.Instant, at instant: ContinuousClock.Instant) -> Int64 {
    nanoseconds(of: instant - base)
}
