#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonSystem

/// What a successful verification established.
public struct VerificationSummary: Sendable, Equatable {
    /// The number of complete entries in the log.
    public var size: UInt64
    /// The RFC 6962 root of all of them.
    public var rootHash: [UInt8]
    /// The latest checkpoint (from `LOG.checkpoint`); its first `size` entries match its root.
    public var checkpoint: Checkpoint
    /// Whether the checkpoint's signature was checked against a verifier key.
    public var signatureChecked: Bool
    /// Entries appended after the latest checkpoint: chained and hashed, but not yet covered by a signature.
    public var uncheckpointed: UInt64 { size - checkpoint.size }
    /// True when a live writer held the log and its final, incomplete line was left out.
    public var skippedLiveTail: Bool
}

/// Checks an audit log end to end without trusting any byte of it.
///
/// Every line must be a well-formed entry whose `seq` is its index and whose `prev` is the leaf hash of the line
/// before; the RFC 6962 root of the first `n` entries must equal the root of every checkpoint of size `n`; and each
/// checkpoint's signature must verify with the given key. The first failure is reported with the entry's `seq` and
/// 1-based line. Memory stays O(log n) plus one line (lines are capped at ``AuditLog/maxLineBytes``).
public enum AuditVerifier {
    /// Verifies the log at `logPath` against `LOG.checkpoint` and any extra (older) checkpoint files.
    ///
    /// - Parameters:
    ///   - verifierKey: the signer's verifier key text; nil checks everything but the signatures
    ///     (``VerificationSummary/signatureChecked`` is then false).
    ///   - extraCheckpoints: paths of earlier checkpoints an auditor kept; each must be a prefix of the log.
    /// - Throws: an ``AuditError`` whose code says what failed (see ``AuditError/exitCode``).
    ///
    /// `progress`, if given, is called after every `progressEvery` entries with the entries checked so far, the
    /// bytes read and the bytes to read (nil when the log is still being written), so a command can show progress
    /// on a large log.
    public static func verify(logPath: String, verifierKey: String?,
                              extraCheckpoints: [String] = [],
                              progressEvery: UInt64 = 65_536,
                              progress: ((_ entries: UInt64, _ bytesRead: Int64, _ totalBytes: Int64?) -> Void)? = nil)
        throws(AuditError) -> VerificationSummary {
        let key = try verifierKey.map { (text) throws(AuditError) in try VerifierKey(text) }
        let fd = try FileIO.openRegularForReading(path: logPath)
        defer { close(fd) }
        // Writers hold an exclusive lock while they append and replace the checkpoint. Under a shared lock, the
        // checkpoint and the log's size are a consistent snapshot: every line up to that size is complete unless a
        // writer died mid-line. Verifying then reads only that prefix, without holding the lock (appends go on).
        // If the lock stays taken (an older peon-wasm holds it for its whole run), the last line may still be
        // growing: it is skipped as a live tail.
        let snapshot = AuditProofs.lockShared(fd)
        // An empty log is reported as empty (exit 3), whether or not a checkpoint was ever written beside it.
        var empty = stat()
        if fstat(fd, &empty) == 0, empty.st_size == 0, !FileIO.exists(logPath + ".checkpoint") {
            throw AuditError(.emptyLog, "\(logPath): the audit log holds no entries; there is nothing to verify")
        }
        // Without its own checkpoint, a file whose first line is no entry is not a log whose checkpoint was deleted.
        let ownPath = logPath + ".checkpoint"
        let ownMissing = !FileIO.exists(ownPath)
        if ownMissing, let reason = FileIO.notALogReason(fd: fd, path: logPath) {
            throw AuditError(.malformedEntry, "\(logPath):1: not a peon-wasm audit log: \(reason)", line: 1, seq: 0)
        }
        // A log whose checkpoint was deleted is still checked against the checkpoints its operator kept (what the
        // refusal to append says to do), and the missing checkpoint is reported after that check.
        var checkpoints: [(String, Checkpoint)] = []
        if !ownMissing || extraCheckpoints.isEmpty {
            checkpoints.append((ownPath, try loadCheckpoint(path: ownPath, key: key)))
        }
        for path in extraCheckpoints {
            // A checkpoint the caller kept and named: its absence is a wrong path, not a log that was never signed.
            guard FileIO.exists(path) else {
                throw AuditError(.checkpointMissing, "\(path): no such checkpoint file (given with --checkpoint); check the path")
            }
            checkpoints.append((path, try loadCheckpoint(path: path, key: key)))
        }
        var end: Int64?
        if snapshot {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw FileIO.ioError(logPath, "cannot examine") }
            end = Int64(st.st_size)
            _ = flock(fd, LOCK_UN)
        }
        let live = !snapshot

        var reader = LineReader(fd: fd, path: logPath, maxLine: AuditLog.maxLineBytes, end: end)
        var tree = CompactTree()
        var prev = [UInt8](repeating: 0, count: 32)
        var skippedLiveTail = false
        try checkPrefixes(checkpoints, tree: tree, logPath: logPath)
        var bytesRead: Int64 = 0
        let every = max(1, progressEvery)
        while let item = try reader.next() {
            let seq = tree.size
            if let progress, seq > 0, seq % every == 0 { progress(seq, bytesRead, end) }
            let lineNumber = Int(seq) + 1
            // Worked out only for a message (an interpolation per line cost the verifier ~5 % of its time).
            var place: String { "\(logPath):\(lineNumber)" }
            switch item {
            case .tooLong:
                throw AuditError(.malformedEntry, "\(place): entry seq \(seq) is longer than \(AuditLog.maxLineBytes) bytes",
                                 line: lineNumber, seq: seq)
            case .partial:
                if live { skippedLiveTail = true; continue }
                // A cut line that a checkpoint covers is a removed signed entry, not a writer's crash.
                for (path, cp) in checkpoints where cp.size > seq {
                    throw AuditError(.checkpointMismatch,
                                     "\(place): entry seq \(seq) is cut short but \(path) covers \(cp.size) entries: signed entries were removed (truncated)",
                                     line: lineNumber, seq: seq)
                }
                throw AuditError(.tornTail,
                                 "\(place): the last line has no newline (a writer died mid-line); the next open of the log cuts it and records log.recovered",
                                 line: lineNumber, seq: seq)
            case .line(let bytes):
                bytesRead += Int64(bytes.count) + 1
                let entry: AuditEntry
                switch AuditEntry.parse(bytes) {
                case .success(let e): entry = e
                case .failure(let e):
                    throw AuditError(.malformedEntry, "\(place): entry seq \(seq) is not a valid entry: \(e.reason)",
                                     line: lineNumber, seq: seq)
                }
                guard entry.seq == seq else {
                    throw AuditError(.brokenChain,
                                     "\(place): line \(lineNumber) holds seq \(entry.seq) where seq \(seq) belongs: entries were deleted, inserted or reordered here",
                                     line: lineNumber, seq: seq)
                }
                guard isLowercaseHex(entry.prev, of: prev) else {
                    if seq == 0 {
                        throw AuditError(.brokenChain, "\(place): entry seq 0 must have prev of 64 zeros: the start of the log was removed or altered",
                                         line: lineNumber, seq: seq)
                    }
                    throw AuditError(.brokenChain,
                                     "\(logPath):\(lineNumber - 1): entry seq \(seq - 1) does not hash to the prev of seq \(seq) (line \(lineNumber)): one of the two was altered, or entries were removed or inserted between them",
                                     line: lineNumber - 1, seq: seq - 1)
                }
                let leaf = RFC6962.leafHash(bytes)
                tree.append(leafHash: leaf)
                prev = leaf
                try checkPrefixes(checkpoints, tree: tree, logPath: logPath)
            }
        }
        // Checked before emptiness: a log emptied under a checkpoint that covers entries had its signed entries
        // removed (exit 10), which is not the empty log of a host that never ran anything (exit 3).
        for (path, cp) in checkpoints where cp.size > tree.size {
            throw AuditError(.checkpointMismatch,
                             "\(logPath):\(tree.size + 1): the checkpoint \(path) covers \(cp.size) entries but the log has \(tree.size): entries from seq \(tree.size) on were removed (truncated)",
                             line: Int(tree.size) + 1, seq: tree.size)
        }
        guard tree.size > 0 else {
            throw AuditError(.emptyLog, "\(logPath): the audit log holds no entries; there is nothing to verify")
        }
        guard let latest = checkpoints.first?.1 else {
            throw AuditError(.checkpointMissing, "\(ownPath): no checkpoint")
        }
        if ownMissing, let kept = checkpoints.max(by: { $0.1.size < $1.1.size }) {
            let after = tree.size - kept.1.size
            throw AuditError(.checkpointMissing,
                             "\(ownPath): no checkpoint; the log's first \(kept.1.size) entries match \(kept.0) (checked), \(after == 0 ? "and no entry follows them" : "and the \(after) entries after them are chained but signed by nothing"): if you trust \(after == 0 ? "the log" : "those entries"), sign the log with `peon-wasm audit checkpoint \(logPath) --refresh`")
        }
        return VerificationSummary(size: tree.size, rootHash: tree.rootHash, checkpoint: latest,
                                   signatureChecked: key != nil, skippedLiveTail: skippedLiveTail)
    }

    private static func checkPrefixes(_ checkpoints: [(String, Checkpoint)], tree: CompactTree,
                                      logPath: String) throws(AuditError) {
        for (path, cp) in checkpoints where cp.size == tree.size {
            let root = tree.rootHash
            guard root == cp.rootHash else {
                let last = tree.size == 0 ? "the empty log" : "seq 0...\(tree.size - 1) (lines 1...\(tree.size))"
                throw AuditError(.checkpointMismatch,
                                 "\(logPath):\(tree.size): the root of \(last) is \(hex(root)) but \(path) signed \(hex(cp.rootHash)): an entry up to seq \(tree.size == 0 ? 0 : tree.size - 1) was altered, or the checkpoint was replaced",
                                 line: Int(tree.size), seq: tree.size == 0 ? 0 : tree.size - 1)
            }
        }
    }

    /// Reads, parses and (with a key) authenticates one signed checkpoint file.
    public static func loadCheckpoint(path: String, key: VerifierKey?) throws(AuditError) -> Checkpoint {
        guard FileIO.exists(path) else {
            throw AuditError(.checkpointMissing,
                             "\(path): no checkpoint; a log gets one when it is created and as a run writes it, so one copied without it cannot be verified: copy its .checkpoint beside it, or give one you kept with --checkpoint FILE (only the log's operator, having checked it, should sign it anew with `peon-wasm audit checkpoint LOG --refresh`)")
        }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(path: path, limit: SignedNote.maxBytes)
        } catch {
            // `readAll` names the path itself; a checkpoint that cannot be read (a folder, a FIFO, no permission, past
            // the size a note may have) is exit 2, as the exit-code table says, not a malformed note (8).
            throw error
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AuditError(.checkpointMalformed, "\(path): the checkpoint is not UTF-8 text")
        }
        do {
            let note = try SignedNote.parse(text)
            if let key { try note.verify(with: key) }
            return try Checkpoint.parse(note.text)
        } catch {
            throw AuditError(error.code, "\(path): \(error.message)")
        }
    }
}

/// RFC 6962 proofs over a log file, for `peon-wasm audit prove` and `audit consistency`.
public enum AuditProofs {
    /// An inclusion proof in the JSON shape the CLI prints.
    public struct Inclusion: Sendable, Equatable {
        /// The leaf index (the entry's `seq`).
        public var leafIndex: UInt64
        /// The size of the tree the proof is against.
        public var treeSize: UInt64
        /// The leaf hash of the entry's line.
        public var leafHash: [UInt8]
        /// The tree's root.
        public var rootHash: [UInt8]
        /// The audit path, leaf side first.
        public var hashes: [[UInt8]]

        /// `{"leaf_index":..,"tree_size":..,"leaf_hash":"hex","root_hash":"hex","hashes":["hex",...]}`.
        public var json: String {
            "{\"leaf_index\":\(leafIndex),\"tree_size\":\(treeSize),\"leaf_hash\":\"\(hex(leafHash))\",\"root_hash\":\"\(hex(rootHash))\",\"hashes\":[\(hashes.map { "\"\(hex($0))\"" }.joined(separator: ","))]}"
        }
    }

    /// A consistency proof in the JSON shape the CLI prints.
    public struct Consistency: Sendable, Equatable {
        /// The smaller tree's size.
        public var oldSize: UInt64
        /// The larger tree's size.
        public var newSize: UInt64
        /// The smaller tree's root.
        public var oldRoot: [UInt8]
        /// The larger tree's root.
        public var newRoot: [UInt8]
        /// The proof hashes.
        public var hashes: [[UInt8]]

        /// `{"old_size":..,"new_size":..,"old_root":"hex","new_root":"hex","hashes":["hex",...]}`.
        public var json: String {
            "{\"old_size\":\(oldSize),\"new_size\":\(newSize),\"old_root\":\"\(hex(oldRoot))\",\"new_root\":\"\(hex(newRoot))\",\"hashes\":[\(hashes.map { "\"\(hex($0))\"" }.joined(separator: ","))]}"
        }
    }

    /// Takes a shared `flock` on `fd`, waiting up to 5 s for writers; false if it stays taken.
    static func lockShared(_ fd: Int32) -> Bool {
        for _ in 0..<5000 {
            if retryingInterrupts({ flock(fd, LOCK_SH | LOCK_NB) }) == 0 { return true }
            guard errno == EWOULDBLOCK else { return false }
            usleep(1000)
        }
        return false
    }

    /// Streams the leaf hashes of every complete line of a log, in order, to `body` (a trailing partial line is
    /// ignored), and returns the number of complete lines.
    ///
    /// Only the lines before `hashingBelow` are hashed and passed on; the rest are counted (and still checked
    /// against ``AuditLog/maxLineBytes``). Memory stays one line: the caller keeps what it needs.
    package static func streamLeafHashes(logPath: String, hashingBelow: UInt64 = .max,
                                         _ body: (_ index: UInt64, _ leafHash: [UInt8]) -> Void) throws(AuditError) -> UInt64 {
        let fd = try FileIO.openRegularForReading(path: logPath)
        defer { close(fd) }
        var reader = LineReader(fd: fd, path: logPath, maxLine: AuditLog.maxLineBytes)
        var count: UInt64 = 0
        while let span = try reader.nextSpan() {
            switch span {
            case .line(let range):
                // Hashed in the reader's buffer, not copied out.
                if count < hashingBelow { body(count, reader.withBytes(range) { RFC6962.leafHash($0) }) }
                count += 1
            case .tooLong:
                throw AuditError(.malformedEntry, "\(logPath):\(count + 1): line longer than \(AuditLog.maxLineBytes) bytes",
                                 line: Int(clamping: count + 1), seq: count)
            case .partial: break
            }
        }
        return count
    }

    /// What one pass over a log gives a proof: the number of complete lines, the roots of some of its prefixes, the
    /// roots of the proof's leaf ranges and one leaf hash. O(log n) hashes, whatever the log's size.
    private struct Pass {
        var count: UInt64 = 0
        var prefixRoots: [UInt64: [UInt8]] = [:]
        var rangeRoots: [[UInt8]]?
        var leafHash: [UInt8]?
    }

    /// Reads the log once, folding its leaf hashes into the roots of the prefixes of `prefixSizes` (one shared
    /// ``CompactTree``), the roots of `ranges` (``RangeRoots``) and the hash of leaf `leaf`.
    private static func pass(logPath: String, prefixSizes: Set<UInt64>, ranges: [Range<UInt64>],
                             leaf: UInt64?) throws(AuditError) -> Pass {
        var result = Pass()
        var folder = try RangeRoots(ranges)
        var prefix = CompactTree()
        if prefixSizes.contains(0) { result.prefixRoots[0] = prefix.rootHash }
        // Past every size, range and leaf asked for, lines are only counted.
        let hashed = max(prefixSizes.max() ?? 0, folder.end, leaf.map { $0 + 1 } ?? 0)
        let count = try streamLeafHashes(logPath: logPath, hashingBelow: hashed) { index, hash in
            if index == leaf { result.leafHash = hash }
            folder.append(leafHash: hash)
            prefix.append(leafHash: hash)
            if prefixSizes.contains(prefix.size) { result.prefixRoots[prefix.size] = prefix.rootHash }
        }
        result.count = count
        result.rangeRoots = folder.roots
        return result
    }

    /// A missing log is a mistyped path (exit 2), not a log without a checkpoint (exit 7, whose advice to sign one
    /// would fail next with the same missing file). The CLI calls it before it looks for a key, so that a missing
    /// log is reported before a missing or unreadable key: the log is the operator's first word, and first mistake.
    package static func requireLog(_ logPath: String) throws(AuditError) {
        guard FileIO.exists(logPath) else { throw AuditError(.io, "\(logPath): no such audit log; check the path") }
        // A folder or a FIFO is named as what it is, before anything beside it (`LOG.checkpoint`) is looked for.
        let fd = try FileIO.openRegularForReading(path: logPath)
        _ = close(fd)
    }

    /// The inclusion proof of entry `seq` against the log's latest checkpoint, whose root must match the log.
    ///
    /// One pass over the log in O(log n) memory: the proof's subtrees are known from `seq` and the checkpoint's
    /// size before the log is read (``RFC6962/inclusionRanges(index:treeSize:)``), and folded as the lines go by.
    public static func inclusion(logPath: String, seq: UInt64, verifierKey: String?) throws(AuditError) -> Inclusion {
        let key = try verifierKey.map { (text) throws(AuditError) in try VerifierKey(text) }
        try requireLog(logPath)
        let cp = try AuditVerifier.loadCheckpoint(path: logPath + ".checkpoint", key: key)
        let covered = seq < cp.size
        let ranges = try covered ? RFC6962.inclusionRanges(index: seq, treeSize: cp.size) : []
        let scan = try pass(logPath: logPath, prefixSizes: [cp.size], ranges: ranges, leaf: covered ? seq : nil)
        try checkPrefix(scan, logPath: logPath, checkpoint: cp)
        guard covered else {
            // An entry the log does not hold is not one a fresh checkpoint would cover.
            if seq >= scan.count {
                throw AuditError(.invalidArgument, "\(logPath) has no entry seq \(seq): it holds \(scan.count) entries, seq 0 to \(scan.count == 0 ? 0 : scan.count - 1)")
            }
            throw AuditError(.invalidArgument, "seq \(seq) is not covered by the latest checkpoint (size \(cp.size)); refresh it with `peon-wasm audit checkpoint \(logPath) --refresh`")
        }
        guard let proof = scan.rangeRoots, let leafHash = scan.leafHash else { throw shortPass(logPath) }
        return Inclusion(leafIndex: seq, treeSize: cp.size, leafHash: leafHash, rootHash: cp.rootHash, hashes: proof)
    }

    /// The consistency proof between the first `oldSize` entries and the first `newSize` (default: the latest
    /// checkpoint's size), both prefixes of the log.
    ///
    /// One pass over the log in O(log n) memory, as ``inclusion(logPath:seq:verifierKey:)``
    /// (``RFC6962/consistencyRanges(oldSize:newSize:)``).
    public static func consistency(logPath: String, oldSize: UInt64, newSize: UInt64?,
                                   verifierKey: String?) throws(AuditError) -> Consistency {
        let key = try verifierKey.map { (text) throws(AuditError) in try VerifierKey(text) }
        try requireLog(logPath)
        let cp = try AuditVerifier.loadCheckpoint(path: logPath + ".checkpoint", key: key)
        let newSize = newSize ?? cp.size
        let ordered = oldSize <= newSize
        let ranges = try ordered ? RFC6962.consistencyRanges(oldSize: oldSize, newSize: newSize) : []
        let scan = try pass(logPath: logPath, prefixSizes: ordered ? [cp.size, oldSize, newSize] : [cp.size],
                            ranges: ranges, leaf: nil)
        try checkPrefix(scan, logPath: logPath, checkpoint: cp)
        guard newSize <= scan.count else {
            throw AuditError(.invalidArgument, "new size \(newSize) is larger than the log (\(scan.count) entries); give a new size of at most \(scan.count)")
        }
        guard ordered else {
            throw AuditError(.invalidArgument, "old size \(oldSize) is larger than new size \(newSize); give the smaller size first: `audit consistency LOG OLD-SIZE [NEW-SIZE]` (NEW-SIZE defaults to the checkpoint's size, \(cp.size))")
        }
        guard let proof = scan.rangeRoots, let oldRoot = scan.prefixRoots[oldSize], let newRoot = scan.prefixRoots[newSize] else {
            throw shortPass(logPath)
        }
        return Consistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, hashes: proof)
    }

    private static func checkPrefix(_ scan: Pass, logPath: String, checkpoint cp: Checkpoint) throws(AuditError) {
        guard cp.size <= scan.count else {
            throw AuditError(.checkpointMismatch, "\(logPath): the checkpoint covers \(cp.size) entries but the log has \(scan.count); run `peon-wasm audit verify`")
        }
        guard scan.prefixRoots[cp.size] == cp.rootHash else {
            throw AuditError(.checkpointMismatch, "\(logPath): the log does not match its checkpoint's root; run `peon-wasm audit verify`")
        }
    }

    /// A pass that counted the lines a proof needs but did not fold them: cannot happen (every line counted below
    /// the sizes asked for is hashed), so it is reported as a read error rather than trusted.
    private static func shortPass(_ logPath: String) -> AuditError {
        AuditError(.io, "\(logPath): the log's lines were counted but not all hashed while building the proof; run the command again")
    }
}

/// Whether `text` is the lowercase hex of `bytes` (what `hex(bytes) == text` says, without building the text).
func isLowercaseHex(_ text: String, of bytes: [UInt8]) -> Bool {
    let compared = text.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
        guard utf8.count == 2 * bytes.count else { return false }
        for (index, byte) in bytes.enumerated() where utf8[2 * index] != hexDigit(byte >> 4) || utf8[2 * index + 1] != hexDigit(byte & 0x0F) {
            return false
        }
        return true
    }
    if let compared { return compared }
    var utf8 = text.utf8.makeIterator()
    for byte in bytes {
        guard utf8.next() == hexDigit(byte >> 4), utf8.next() == hexDigit(byte & 0x0F) else { return false }
    }
    return utf8.next() == nil
}
