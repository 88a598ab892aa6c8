import Foundation
package import PeonAudit
import PostgresNIO

/// Reads the central audit tables (``PostgresAuditSchema``): verifies each origin's copy with the
/// same verifier as a local log, and lists entries across hosts.
package final class PostgresAuditArchive: Sendable {
    /// The server and database.
    package let address: PostgresAddress
    private let link: PostgresLink

    /// Connects to `address`; an unreachable server throws ``AuditError/Code/io``.
    package init(_ address: PostgresAddress) throws(AuditError) {
        self.address = address
        do {
            link = try PostgresLink.connect(address)
        } catch {
            throw AuditError(.io, error.description)
        }
    }

    deinit { link.close() }

    /// The origins that have entries or checkpoints, sorted.
    package func origins() throws(AuditError) -> [String] {
        let rows = try run("""
            SELECT origin FROM peon_audit_entries GROUP BY origin
            UNION SELECT origin FROM peon_audit_checkpoints GROUP BY origin ORDER BY 1
            """)
        return rows.compactMap { row in Array(row).first.flatMap { try? $0.decode(String.self) } }
    }

    /// Verifies one origin's copy from the database alone: its rows are written, in `seq` order, as
    /// the exact lines they hold into a private temporary log beside its checkpoints (the latest as
    /// `LOG.checkpoint`, the earlier ones as extra checkpoints), and ``AuditVerifier`` checks it as it
    /// checks a local log: every leaf, the `prev` chain, the Merkle root at every checkpoint size and
    /// every signature with `verifierKey`. Also checked: each row's `seq` and query columns agree with
    /// its line, so `audit show --from` filters see what the verified lines say.
    ///
    /// Messages name `postgresql:ORIGIN:LINE` instead of the temporary file.
    package func verify(origin: String, verifierKey: String) throws(AuditError) -> VerificationSummary {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("peon-wasm-verify-\(UUID().uuidString)").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw AuditError(.io, "cannot create a temporary directory to verify \(origin): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logPath = directory + "/central.jsonl"
        let label = "postgresql:\(origin)"
        do throws(AuditError) {
            // A row below seq 0 is none a writer writes (seqs start at 0), and the pages below start there: one inserted
            // by hand was skipped here while `audit show --from` listed it beside the real entries.
            if let below = try run("SELECT min(seq) FROM peon_audit_entries WHERE origin = \(origin) AND seq < 0").first,
               let seq = try? Array(below)[0].decode(Int64?.self) {
                throw AuditError(.malformedEntry, "\(label): a row has seq \(seq); entries are numbered from 0, so it was not shipped by a writer")
            }
            try writeLog(origin: origin, to: logPath, label: label)
            let notes = try run("SELECT size, note FROM peon_audit_checkpoints WHERE origin = \(origin) ORDER BY size")
                .map { row throws(AuditError) -> String in
                    guard let note = try? Array(row)[1].decode(String.self) else {
                        throw AuditError(.checkpointMalformed, "\(label): a checkpoint row's note is not text")
                    }
                    // The rows are taken in the order of their `size` column, and the last is checked as the latest: a
                    // column that disagrees with its note would pass an older note off as the latest.
                    if let size = try? Array(row)[0].decode(Int64.self),
                       let signed = try? SignedNote.parse(note), let checkpoint = try? Checkpoint.parse(signed.text),
                       UInt64(exactly: size) != checkpoint.size {
                        throw AuditError(.checkpointMismatch, "\(label): a checkpoint row's size column says \(size), but its note covers \(checkpoint.size) entries")
                    }
                    return note
                }
            var extra: [String] = []
            for (index, note) in notes.enumerated() {
                let path = index == notes.count - 1 ? logPath + ".checkpoint" : directory + "/checkpoint-\(index)"
                guard FileManager.default.createFile(atPath: path, contents: Data(note.utf8)) else {
                    throw AuditError(.io, "cannot write a temporary checkpoint to verify \(origin)")
                }
                if index < notes.count - 1 { extra.append(path) }
            }
            return try AuditVerifier.verify(logPath: logPath, verifierKey: verifierKey, extraCheckpoints: extra)
        } catch {
            var message = error.message.replacingOccurrences(of: logPath + ".checkpoint", with: "\(label) (latest checkpoint)")
            message = message.replacingOccurrences(of: logPath, with: label)
            message = message.replacingOccurrences(of: directory + "/checkpoint-", with: "\(label) (checkpoint #")
            throw AuditError(error.code, message, line: error.line, seq: error.seq)
        }
    }

    /// Writes the origin's lines in `seq` order, checking each row's columns against its line.
    private func writeLog(origin: String, to path: String, label: String) throws(AuditError) {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw AuditError(.io, "cannot write a temporary log to verify \(origin)")
        }
        defer { try? handle.close() }
        var next: Int64 = 0
        let page = 5000
        while true {
            // The rows are fetched in pages of at most `page` rows and `Self.pageBytes` bytes of lines, sized from their
            // lengths first: the table is the fleet's, and one row may hold anything (a 100 MB line held ~2 GB while
            // it was read). A line longer than any writer writes is refused before it is fetched.
            let sizes = try run("""
                SELECT seq, octet_length(line)::bigint FROM peon_audit_entries
                WHERE origin = \(origin) AND seq >= \(next) ORDER BY seq LIMIT \(page)
                """)
            var take = 0
            var bytes = 0
            for row in sizes {
                let cells = Array(row)
                guard cells.count == 2, let seq = try? cells[0].decode(Int64.self), let length = try? cells[1].decode(Int64.self) else {
                    throw AuditError(.malformedEntry, "\(label): a row cannot be read as an entry")
                }
                guard length <= Int64(AuditLog.maxLineBytes) else {
                    throw AuditError(.malformedEntry,
                                     "\(label): the row (origin, seq \(seq)) holds \(length) bytes, more than an entry may (\(AuditLog.maxLineBytes))",
                                     line: Int(clamping: seq) &+ 1, seq: UInt64(clamping: seq))
                }
                if take > 0 && bytes + Int(length) > Self.pageBytes { break }
                bytes += Int(length)
                take += 1
            }
            if take == 0 { break }
            let rows = try run("""
                SELECT seq, run, module, call, resource, decision, outcome,
                       to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       CASE WHEN octet_length(line) <= \(AuditLog.maxLineBytes) THEN line END FROM peon_audit_entries
                WHERE origin = \(origin) AND seq >= \(next) ORDER BY seq LIMIT \(take)
                """)
            var chunk = Data()
            for row in rows {
                let cells = Array(row)
                guard cells.count == 9, let seq = try? cells[0].decode(Int64.self), seq >= next, seq < Int64.max,
                      let line = try? cells[8].decode(String.self) else {
                    throw AuditError(.malformedEntry, "\(label): a row cannot be read as an entry")
                }
                // One row is one entry: a line that does not parse, or holds a newline (two lines in one row would
                // verify as two entries while `audit show` shows neither), fails verification here.
                guard !line.utf8.contains(0x0A), case .success(let entry) = AuditEntry.parse(Array(line.utf8)) else {
                    throw AuditError(.malformedEntry,
                                     "\(label): the row (origin, seq \(seq)) does not hold exactly one entry",
                                     line: Int(seq) + 1, seq: UInt64(seq))
                }
                // The query columns (`time` included, which `--since` and `--until` filter on) must say what the line says.
                let columns = cells[1...7].map { try? $0.decode(String?.self) }
                let fromLine: [String?] = [entry.record.run, entry.record.module, entry.record.call,
                                           entry.record.resource, entry.record.decision?.rawValue, entry.record.outcome,
                                           entry.time]
                guard entry.seq == UInt64(clamping: seq), columns.map({ $0 ?? nil }) == fromLine else {
                    throw AuditError(.brokenChain,
                                     "\(label): the row (origin, seq \(seq)) does not match its own line (its seq or query columns were changed)",
                                     line: Int(seq) + 1, seq: UInt64(seq))
                }
                chunk.append(Data(line.utf8))
                chunk.append(0x0A)
                next = seq + 1
            }
            do {
                try handle.write(contentsOf: chunk)
            } catch {
                throw AuditError(.io, "cannot write a temporary log to verify \(origin)")
            }
            if sizes.count < page && take == sizes.count { break }
        }
    }

    /// The most bytes of lines one page of ``writeLog(origin:to:label:)`` fetches (one line more when it alone is larger).
    static let pageBytes = 32 << 20

    /// A filter for ``entries(_:)``; `nil` fields match everything.
    package struct Filter: Sendable {
        /// Only this origin (host key name).
        package var origin: String?
        /// Only this module.
        package var module: String?
        /// Only this decision.
        package var decision: AuditDecision?
        /// Only this run.
        package var run: String?
        /// Only this call (`fs.read`, `policy.store`, ...).
        package var call: String?
        /// Only entries at or after this time (anything PostgreSQL reads as a `timestamptz`; UTC if no zone).
        package var since: String?
        /// Only entries before this time.
        package var until: String?
        /// Only entries whose details say `first_use` (the first time the module reached its resource).
        package var firstUse = false
        /// The most entries returned (the newest ones last).
        package var limit: Int = 1000

        /// Matches everything, up to 1000 entries.
        package init() {}
    }

    /// One central entry: its origin and the entry its line holds.
    package struct Row: Sendable {
        /// The host's origin.
        package var origin: String
        /// The entry, parsed from the stored line (`nil` if the line is not an entry).
        package var entry: AuditEntry?
        /// The stored `seq`.
        package var seq: Int64
    }

    /// Entries across origins matching `filter`, in time order then origin and `seq`.
    package func entries(_ filter: Filter) throws(AuditError) -> [Row] {
        // A line longer than any entry is not fetched (it is not one): the row shows as not an entry.
        // Only rows `verify --from` checks: none below seq 0.
        var sql = "SELECT origin, seq, CASE WHEN octet_length(line) <= \(AuditLog.maxLineBytes) THEN line END FROM peon_audit_entries WHERE seq >= 0"
        var binds = PostgresBindings()
        func add(_ clause: String, _ value: String?) {
            guard let value else { return }
            binds.append(value)
            sql += " AND " + clause.replacingOccurrences(of: "?", with: "$\(binds.count)")
        }
        add("origin = ?", filter.origin)
        add("module = ?", filter.module)
        add("decision = ?", filter.decision?.rawValue)
        // The RUN column shows the start of an id: a prefix picks the run, as on a local log.
        add("left(run, length(?)) = ?", filter.run.map { $0.hasSuffix("…") ? String($0.dropLast()) : $0 })
        add("call = ?", filter.call)
        add("time >= ?::timestamptz", filter.since.map(Self.utc))
        add("time < ?::timestamptz", filter.until.map(Self.utc))
        // Before the limit, so the limit counts first uses. The bytes `"first_use":"true"` occur in a line only as
        // that detail: a quote inside any string value is written `\"`. The caller still checks the parsed entry.
        if filter.firstUse { sql += " AND strpos(line, '\"first_use\":\"true\"') > 0" }
        sql += " ORDER BY time, origin, seq LIMIT \(max(1, filter.limit))"
        return try run(PostgresQuery(unsafeSQL: sql, binds: binds)).map { row throws(AuditError) -> Row in
            let cells = Array(row)
            guard cells.count == 3, let origin = try? cells[0].decode(String.self), let seq = try? cells[1].decode(Int64.self) else {
                throw AuditError(.malformedEntry, "postgresql: a row of peon_audit_entries cannot be read")
            }
            let line: String?
            do { line = try cells[2].decode(String?.self) } catch {
                throw AuditError(.malformedEntry, "postgresql: a row of peon_audit_entries cannot be read")
            }
            let entry = line.flatMap { text in try? AuditEntry.parse(Array(text.utf8)).get() }
            return Row(origin: origin, entry: entry, seq: seq)
        }
    }

    /// A time without a zone is UTC (PostgreSQL would take the session's zone).
    static func utc(_ text: String) -> String {
        let hasZone = text.hasSuffix("Z") || text.range(of: #"[+-]\d{2}(:?\d{2})?$"#, options: .regularExpression) != nil
            && text.contains("T")
        return hasZone ? text : text + (text.contains("T") || text.contains(" ") ? "Z" : "T00:00:00Z")
    }

    private func run(_ query: PostgresQuery) throws(AuditError) -> [PostgresRow] {
        do {
            return try link.query(query)
        } catch {
            let missing = error.description.contains("does not exist")
            throw AuditError(missing ? .emptyLog : .io,
                             missing ? "\(address): no central audit tables yet (nothing was shipped): \(error.description)" : error.description)
        }
    }
}
