import Foundation
package import PeonAudit
import PeonRuntime
import PeonInterface
import PeonSystem
import PostgresNIO
import Synchronization

/// The central audit tables, created on first use (idempotently, under an advisory lock so that
/// hosts starting together do not race):
///
/// - `peon_audit_entries (origin, seq, time, run, module, call, resource, decision, outcome, line)`,
///   primary key `(origin, seq)`: `line` is the local log's exact JSON line, the other columns copy
///   its fields for queries. `origin` is the log's checkpoint origin (its signing key's name).
/// - `peon_audit_checkpoints (origin, size, note)`, primary key `(origin, size)`: each signed
///   checkpoint note as the local `LOG.checkpoint` held it.
///
/// Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on both: the tables are append-only for every role that
/// cannot drop the triggers (their owner can: create them with an administrator's role and grant the hosts only
/// `INSERT` and `SELECT`, docs/fleet.md). `audit verify --from` does not rely on them; it recomputes everything.
enum PostgresAuditSchema {
    static let entries = "peon_audit_entries"
    static let checkpoints = "peon_audit_checkpoints"

    static func ensure(_ link: PostgresLink) throws(PostgresStoreError) {
        try link.query("BEGIN")
        do throws(PostgresStoreError) {
            try link.query("SELECT pg_advisory_xact_lock(7370616001)")
            try link.query(PostgresQuery(unsafeSQL: """
                CREATE TABLE IF NOT EXISTS \(entries) (
                    origin text NOT NULL, seq bigint NOT NULL, time timestamptz NOT NULL, run text NOT NULL,
                    module text NOT NULL, call text NOT NULL, resource text NOT NULL, decision text, outcome text,
                    line text NOT NULL, PRIMARY KEY (origin, seq))
                """))
            try link.query(PostgresQuery(unsafeSQL: """
                CREATE TABLE IF NOT EXISTS \(checkpoints) (
                    origin text NOT NULL, size bigint NOT NULL, note text NOT NULL, PRIMARY KEY (origin, size))
                """))
            try link.query(PostgresQuery(unsafeSQL: """
                CREATE OR REPLACE FUNCTION peon_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'peon-wasm audit tables are append-only'; END $$
                """))
            for table in [entries, checkpoints] {
                try link.query(PostgresQuery(unsafeSQL: """
                    CREATE OR REPLACE TRIGGER \(table)_append_only BEFORE UPDATE OR DELETE ON \(table)
                    FOR EACH ROW EXECUTE FUNCTION peon_audit_append_only()
                    """))
                // Row triggers do not fire for TRUNCATE, which emptied every host's rows at once.
                try link.query(PostgresQuery(unsafeSQL: """
                    CREATE OR REPLACE TRIGGER \(table)_no_truncate BEFORE TRUNCATE ON \(table)
                    FOR EACH STATEMENT EXECUTE FUNCTION peon_audit_append_only()
                    """))
            }
            try link.query("COMMIT")
        } catch {
            _ = try? link.query("ROLLBACK")
            throw error
        }
    }
}

/// Ships one local audit log to the central tables (``PostgresAuditSchema``), in `seq` order, from
/// where the central copy of its origin ends: the high-water mark is read from the database before
/// every batch, so a restart, an outage or a second process shipping the same log neither loses nor
/// duplicates an entry (`INSERT ... ON CONFLICT (origin, seq) DO NOTHING`, one statement per batch,
/// so the central copy is always a gap-free prefix). A checkpoint is shipped once every entry it
/// covers is.
///
/// As an ``AuditSink`` it runs on a thread of its own, twice a second; an unreachable server is
/// said once on stderr (and once when it answers again) and retried, never blocking the run.
package final class PostgresAuditShipper: AuditSink {
    /// The server and database.
    package let address: PostgresAddress
    /// The most entries one `INSERT` carries.
    static let batchSize = 200

    private struct State {
        var link: PostgresLink?
        /// The local log's byte offset of the line with `seq == cursorSeq`.
        var cursorSeq: UInt64 = 0
        var cursorOffset: UInt64 = 0
        /// The checkpoint note last shipped.
        var shippedNote: String?
        var down = false
    }

    private let state: Mutex<State> = Mutex(State())
    private let running = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let report: @Sendable (String) -> Void

    /// Creates a shipper to `address`; `report` gets the outage lines (`peon-wasm: ...` on stderr by default).
    package init(_ address: PostgresAddress, report: (@Sendable (String) -> Void)? = nil) {
        self.address = address
        // An outage line can carry the server's own text (an error a trigger raised): escaped, one line.
        self.report = report ?? { line in FileHandle.standardError.write(Data(("peon-wasm: " + TerminalText.escaped(line) + "\n").utf8)) }
    }

    /// The address, without password.
    package var name: String { address.description }

    /// What one pass shipped.
    package struct Progress: Sendable, Equatable {
        /// Entries inserted by this pass (rows another shipper inserted first are not counted).
        package var entries: Int = 0
        /// Checkpoints inserted by this pass.
        package var checkpoints: Int = 0
        /// Whether the central copy now holds every complete line of the local log and its latest checkpoint.
        package var caughtUp = false
        /// Whether the pass stopped at its batch limit with more lines to ship.
        package var more = false

        /// Nothing shipped yet.
        package init() {}
    }

    /// Starts the background thread for `log`.
    package func start(log: AuditLog) {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) {
                let drain = draining.load(ordering: .acquiring)
                let progress = try? ship(logPath: log.path, origin: log.origin)
                if drain, progress?.caughtUp == true { break }
                if progress?.more == true { continue }
                Thread.sleep(forTimeInterval: drain ? 0.2 : 0.5)
            }
            stopped.signal()
        }
        thread.name = "peon-wasm audit shipper"
        thread.start()
    }

    /// Asks the thread to ship everything and stop, waiting at most `timeout`.
    package func finish(timeout: Duration) {
        guard running.load(ordering: .acquiring) else { return }
        draining.store(true, ordering: .releasing)
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        if stopped.wait(timeout: .now() + .milliseconds(milliseconds)) == .timedOut {
            running.store(false, ordering: .releasing)
            report("audit sink \(name): not every entry was shipped before the run ended; the next run (or `peon-wasm audit ship`) sends the rest")
        }
        running.store(false, ordering: .releasing)
        state.withLock { state in
            state.link?.close()
            state.link = nil
        }
    }

    /// One pass: connects if needed, then ships local lines from the central high-water mark on
    /// (at most a few batches) and the latest checkpoint if every entry it covers is central.
    /// Throws when the server cannot be reached or refuses; reports the first failure of an outage.
    @discardableResult
    package func ship(logPath: String, origin: String, maxBatches: Int = 20) throws(PostgresStoreError) -> Progress {
        do {
            let progress = try shipUnreported(logPath: logPath, origin: origin, maxBatches: maxBatches)
            let wasDown = state.withLock { state in
                defer { state.down = false }
                return state.down
            }
            if wasDown { report("audit sink \(name) answers again; shipping resumed") }
            return progress
        } catch {
            let first = state.withLock { state in
                state.link?.close()
                state.link = nil
                defer { state.down = true }
                return !state.down
            }
            if first {
                report("audit sink: \(error.description); the local log keeps every entry and shipping resumes when the server answers")
            }
            throw error
        }
    }

    private func shipUnreported(logPath: String, origin: String, maxBatches: Int) throws(PostgresStoreError) -> Progress {
        let link = try connected()
        var progress = Progress()
        var batches = 0
        while true {
            let next = try highWaterMark(link, origin: origin)
            let (lines, endOffset) = try readLines(logPath: logPath, from: next, max: Self.batchSize)
            if lines.isEmpty { break }
            let prev = try centralLeafHash(link, origin: origin, before: next, logPath: logPath)
            progress.entries += try insert(link, origin: origin, first: next, lines: lines, prev: prev)
            state.withLock { state in
                state.cursorSeq = next + UInt64(lines.count)
                state.cursorOffset = endOffset
            }
            batches += 1
            if batches >= maxBatches {
                progress.more = true
                return progress
            }
        }
        let shipped = try highWaterMark(link, origin: origin)
        var checkpointShipped = true
        if let note = Self.readCheckpoint(logPath: logPath), note != state.withLock({ $0.shippedNote }) {
            checkpointShipped = false
            guard let size = Self.checkpointSize(note) else {
                // Not a signed checkpoint (a writer replacing it mid-read is atomic, so this is damage):
                // it cannot be shipped; `audit verify` on the local log says what is wrong.
                state.withLock { $0.shippedNote = note }
                report("audit sink: \(logPath).checkpoint is not a signed checkpoint; it was not shipped (run `peon-wasm audit verify \(logPath)`)")
                progress.caughtUp = true
                return progress
            }
            if size <= shipped {
                let rows = try link.query("""
                    INSERT INTO peon_audit_checkpoints (origin, size, note) VALUES (\(origin), \(Int64(size)), \(note))
                    ON CONFLICT (origin, size) DO NOTHING RETURNING size
                    """)
                progress.checkpoints += rows.count
                state.withLock { $0.shippedNote = note }
                checkpointShipped = true
            }
        }
        progress.caughtUp = checkpointShipped
        return progress
    }

    private func connected() throws(PostgresStoreError) -> PostgresLink {
        if let link = state.withLock({ $0.link }), !link.isClosed { return link }
        let link = try PostgresLink.connect(address)
        do {
            try PostgresAuditSchema.ensure(link)
        } catch {
            link.close()
            throw error
        }
        state.withLock { $0.link = link }
        return link
    }

    private func highWaterMark(_ link: PostgresLink, origin: String) throws(PostgresStoreError) -> UInt64 {
        let rows = try link.query("SELECT coalesce(max(seq) + 1, 0)::bigint FROM peon_audit_entries WHERE origin = \(origin)")
        guard let row = rows.first, let cell = Array(row).first, let value = try? cell.decode(Int64.self), value >= 0 else {
            throw PostgresStoreError("\(address): cannot read the central high-water mark of \(origin)")
        }
        return UInt64(value)
    }

    /// The leaf hash of the central copy's entry `seq - 1` of `origin` (64 zero bits before entry 0): what the local
    /// entry `seq` must chain to. Resuming by count alone appended another log's lines (a rotated log shipped under
    /// the same origin) after a central copy they do not continue, or continued after a row an insider had forged, and
    /// the central copy could then never verify.
    private func centralLeafHash(_ link: PostgresLink, origin: String, before seq: UInt64, logPath: String) throws(PostgresStoreError) -> [UInt8] {
        guard seq > 0 else { return [UInt8](repeating: 0, count: 32) }
        let rows = try link.query("SELECT line FROM peon_audit_entries WHERE origin = \(origin) AND seq = \(Int64(clamping: seq - 1))")
        guard let row = rows.first, let cell = Array(row).first, let line = try? cell.decode(String.self) else {
            throw PostgresStoreError("\(address): the central copy of \(origin) has no entry \(seq - 1) to continue from; run `peon-wasm audit verify --from` on it")
        }
        return RFC6962.leafHash(Array(line.utf8))
    }

    /// Up to `max` complete lines of the local log starting at entry `seq`, and the offset after them.
    private func readLines(logPath: String, from seq: UInt64, max: Int) throws(PostgresStoreError) -> ([[UInt8]], UInt64) {
        guard let handle = FileHandle(forReadingAtPath: logPath) else {
            throw PostgresStoreError("\(logPath): cannot read the local audit log to ship it")
        }
        defer { try? handle.close() }
        var (cursorSeq, offset) = state.withLock { ($0.cursorSeq, $0.cursorOffset) }
        if cursorSeq > seq { (cursorSeq, offset) = (0, 0) }
        var lines: [[UInt8]] = []
        var pending: [UInt8] = []
        let chunk = 1 << 20
        do {
            try handle.seek(toOffset: offset)
        } catch {
            throw PostgresStoreError("\(logPath): cannot read the local audit log to ship it")
        }
        while lines.count < max {
            guard let data = try? handle.read(upToCount: chunk), !data.isEmpty else { break }
            pending += data
            var start = pending.startIndex
            while lines.count < max, let newline = pending[start...].firstIndex(of: 0x0A) {
                let line = Array(pending[start..<newline])
                let lineEnd = offset + UInt64(newline - start + 1)
                if cursorSeq >= seq { lines.append(line) }
                cursorSeq += 1
                offset = lineEnd
                start = newline + 1
            }
            pending = Array(pending[start...])
            if pending.count > AuditLog.maxLineBytes + 1 {
                throw PostgresStoreError("\(logPath): a line longer than \(AuditLog.maxLineBytes) bytes; run `peon-wasm audit verify \(logPath)`")
            }
        }
        if cursorSeq < seq {
            throw PostgresStoreError("the central table holds \(seq) entries of this origin but \(logPath) has \(cursorSeq): the local log is not the one that was shipped (or lost entries); run `peon-wasm audit verify` on both")
        }
        return (lines, offset)
    }

    /// Inserts `lines` (entries `first`...) after checking that each chains to the one before it, the first to `prev`
    /// (the central copy's last entry): a local line altered after it was written, or a log that does not continue the
    /// central copy, stops the shipping before anything of the batch is inserted.
    private func insert(_ link: PostgresLink, origin: String, first: UInt64, lines: [[UInt8]], prev: [UInt8]) throws(PostgresStoreError) -> Int {
        var sql = "INSERT INTO peon_audit_entries (origin, seq, time, run, module, call, resource, decision, outcome, line) VALUES "
        var binds = PostgresBindings(capacity: lines.count * 10)
        var prev = prev
        for (index, bytes) in lines.enumerated() {
            let seq = first + UInt64(index)
            guard case .success(let entry) = AuditEntry.parse(bytes), entry.seq == seq,
                  let text = String(validating: bytes, as: UTF8.self) else {
                throw PostgresStoreError("local audit log: entry \(seq) is not a valid entry in its place; shipping stops here (run `peon-wasm audit verify`)")
            }
            var expected: [UInt8] = []
            appendHex(prev, to: &expected)
            guard Array(entry.prev.utf8) == expected else {
                throw PostgresStoreError(seq == first
                    ? "local audit log: entry \(seq) does not continue the central copy of \(origin) (its prev is not the hash of the central entry \(seq == 0 ? "before it" : String(seq - 1))): this is not the log that was shipped under \(origin) (a rotated or replaced log: ship it under its own --origin, or sign it with its own key), or the central copy was altered; nothing more was shipped (run `peon-wasm audit verify` on the log, and `audit verify --from` on the central copy)"
                    : "local audit log: entry \(seq) does not chain to entry \(seq - 1) (one of them was altered); shipping stops here (run `peon-wasm audit verify`)")
            }
            prev = RFC6962.leafHash(bytes)
            let base = index * 10
            if index > 0 { sql += ", " }
            sql += "($\(base + 1), $\(base + 2), $\(base + 3)::timestamptz, $\(base + 4), $\(base + 5), $\(base + 6), $\(base + 7), $\(base + 8), $\(base + 9), $\(base + 10))"
            binds.append(origin)
            binds.append(Int64(clamping: seq))
            binds.append(entry.time)
            binds.append(entry.record.run)
            binds.append(entry.record.module)
            binds.append(entry.record.call)
            binds.append(entry.record.resource)
            binds.append(entry.record.decision?.rawValue)
            binds.append(entry.record.outcome)
            binds.append(text)
        }
        sql += " ON CONFLICT (origin, seq) DO NOTHING RETURNING seq"
        return try link.query(PostgresQuery(unsafeSQL: sql, binds: binds)).count
    }

    /// The signed checkpoint at `LOG.checkpoint` as text, or nil when there is none, it is not UTF-8, or it is not
    /// a regular file of at most ``SignedNote/maxBytes`` bytes.
    package static func readCheckpoint(logPath: String) -> String? {
        // Bounded and from one descriptor: a checkpoint over the size a signed note may have is refused by its
        // size, unread, and a FIFO or device put at LOG.checkpoint is never waited on.
        guard let bytes = try? FileIO.readAll(path: logPath + ".checkpoint", limit: SignedNote.maxBytes) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The tree size a signed checkpoint note covers, or `nil` if it is not one.
    static func checkpointSize(_ note: String) -> UInt64? {
        guard let signed = try? SignedNote.parse(note), let checkpoint = try? Checkpoint.parse(signed.text) else { return nil }
        return checkpoint.size
    }
}
