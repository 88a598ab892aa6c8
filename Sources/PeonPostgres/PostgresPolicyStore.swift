import Foundation
package import PeonMediator
package import PeonPolicy
import PostgresNIO
import Synchronization

/// The policy lines of a Casbin SQL adapter's table (`casbin_rule`: `id, ptype, v0 ... v5`, as
/// pycasbin's SQLAlchemy adapter and Go's gorm adapter create it), read from PostgreSQL.
///
/// Each row is one line: `ptype` is its section (`p`, `g`, ...), `v0 ... v5` its values with trailing
/// empty or NULL values dropped (as the adapters do), in `id` order. A rule's location is the store's
/// name and its `id`, so a decision quotes `postgresql://.../casbin_rule:42`, and the snapshot's
/// version (a SHA-256 over every line with its location) identifies the rows it was built from.
///
/// Change announcements: `LISTEN` on the address's channel (default `casbin_role_watcher`, where
/// `casbin-postgresql-watcher` sends `NOTIFY`; any payload means "reload"), on a connection of its
/// own that reconnects every second while the server is away.
package final class PostgresPolicyStore: PolicyLineStore {
    /// The server, database, table and channel.
    package let address: PostgresAddress
    /// The most rows a table may hold; a larger one is refused rather than loaded into memory.
    package static let maxRows = 1_000_000
    /// How long fetching the rows may take: a table near ``maxRows`` takes seconds to send, longer than the 5 s a
    /// connect or a small query gets.
    static let rowsTimeout: TimeAmount = .seconds(60)
    /// The most bytes of rule text (`ptype`, `v0` ... `v5` together) a policy may hold.
    package static let maxBytes = 256 << 20

    private let reader: Mutex<PostgresLink?> = Mutex(nil)
    private let watching = Atomic<Bool>(false)
    private let listener: Mutex<PostgresLink?> = Mutex(nil)

    /// Creates a store for `address` (nothing is connected until the first read).
    package init(_ address: PostgresAddress) { self.address = address }

    /// `postgresql://USER@HOST:PORT/DATABASE/TABLE`.
    package var name: String { "\(address)/\(address.table)" }

    /// The address's `poll` (default 10 s).
    package var pollInterval: Duration { address.pollInterval }

    /// Why the table's size refuses it (more than ``maxRows`` rows, or more than ``maxBytes`` of rule text), from
    /// the sizing query's one row; `nil` when it fits (or the row cannot be read: the load then fails on its own).
    static func sizeRefusal(_ rows: [PostgresRow], name: String) -> String? {
        guard let cells = rows.first.map({ Array($0) }), cells.count == 2,
              let count = try? cells[0].decode(Int64.self), let bytes = try? cells[1].decode(Int64.self) else { return nil }
        if count > Int64(maxRows) {
            return "policy store \(name): the table holds more than \(maxRows) rows; peon-wasm refuses to load it"
        }
        if bytes > Int64(maxBytes) {
            return "policy store \(name): the table's rules hold \(bytes) bytes, more than \(maxBytes); peon-wasm refuses to load it"
        }
        return nil
    }

    /// Reads every row of the table. An unreachable server throws with
    /// ``PolicyLoadError/storeUnavailable`` set; a missing table or a bad row throws without it.
    package func loadRules() throws(PolicyLoadError) -> [PolicyRule] {
        let link: PostgresLink
        do {
            link = try connectedReader()
        } catch {
            throw PolicyLoadError("policy store \(name): \(error.description)", storeUnavailable: !error.refusedByServer)
        }
        let table = address.table
        let limit = Self.maxRows + 1
        /// A failed query: unreachable if the connection is gone or the server did not answer in time (then the
        /// connection, its query perhaps still running, is dropped), else a table of the wrong shape.
        func failure(_ error: PostgresStoreError) -> PolicyLoadError {
            if error.timedOut {
                reader.withLock { $0 = nil }
                link.close()
                return PolicyLoadError(
                    "policy store \(name): the table was not read in time (\(error.description)); the server is busy or slow, or the table very large",
                    storeUnavailable: true)
            }
            let lost = link.isClosed
            if lost { reader.withLock { $0 = nil } }
            return PolicyLoadError(
                lost ? "policy store \(name): \(error.description)"
                    : "policy store \(name): cannot read the table (\(error.description)); it needs the columns id, ptype, v0 ... v5 of Casbin's SQL adapters",
                storeUnavailable: lost)
        }
        // Both queries read one snapshot of the table (a read-only REPEATABLE READ transaction, always rolled back):
        // read apart, rows committed between the size and the fetch got past the limits (256 MiB held 601 MB).
        do {
            _ = try link.query(PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        } catch {
            throw failure(error)
        }
        defer { if !link.isClosed { _ = try? link.query(PostgresQuery(unsafeSQL: "ROLLBACK")) } }
        // Sized first, without fetching: a table past the limits is refused by what it is, not by the query timeout
        // that fetching a million and one rows (or a few huge ones) would run into.
        let sized: [PostgresRow]
        do {
            sized = try link.query(PostgresQuery(unsafeSQL: """
                SELECT count(*)::bigint, coalesce(sum(octet_length(ptype) + coalesce(octet_length(v0), 0)
                    + coalesce(octet_length(v1), 0) + coalesce(octet_length(v2), 0) + coalesce(octet_length(v3), 0)
                    + coalesce(octet_length(v4), 0) + coalesce(octet_length(v5), 0)), 0)::bigint
                FROM (SELECT * FROM \(table) ORDER BY id LIMIT \(limit)) AS head
                """))
        } catch {
            throw failure(error)
        }
        if let refusal = Self.sizeRefusal(sized, name: name) { throw PolicyLoadError(refusal) }
        let rows: [PostgresRow]
        do {
            rows = try link.query(PostgresQuery(unsafeSQL: """
                SELECT id::bigint, ptype::text, v0::text, v1::text, v2::text, v3::text, v4::text, v5::text
                FROM \(table) ORDER BY id LIMIT \(limit)
                """), timeout: Self.rowsTimeout)
        } catch {
            throw failure(error)
        }
        guard rows.count <= Self.maxRows else {
            throw PolicyLoadError("policy store \(name): the table holds more than \(Self.maxRows) rows; peon-wasm refuses to load it")
        }
        // And what was fetched is measured again: a view whose rows differ from one statement to the next is not one
        // snapshot (as a table is), and must not pass either.
        let fetchedBytes = rows.reduce(0) { total, row in
            total + Array(row).dropFirst().reduce(0) { $0 + ($1.bytes?.readableBytes ?? 0) }  // the id aside, as sized above
        }
        guard fetchedBytes <= Self.maxBytes else {
            throw PolicyLoadError("policy store \(name): the rows hold more than \(Self.maxBytes) bytes; peon-wasm refuses to load them")
        }
        var rules: [PolicyRule] = []
        rules.reserveCapacity(rows.count)
        for row in rows {
            let id: Int64
            var fields: [String?] = []
            do {
                let cells = Array(row)
                guard cells.count == 8 else { throw PolicyLoadError("policy store \(name): the rows query returned \(cells.count) columns, not 8") }
                guard let number = try cells[0].decode(Int64?.self) else {
                    throw PolicyLoadError("policy store \(name): a row has no id (NULL); every row needs an integer id, as Casbin's SQL adapters create it (id serial PRIMARY KEY)")
                }
                id = number
                for cell in cells.dropFirst() { fields.append(try cell.decode(String?.self)) }
            } catch let error as PolicyLoadError {
                throw error
            } catch {
                // The driver's own text is a dump of its types; the columns are what to check.
                throw PolicyLoadError("policy store \(name): a row cannot be read; id must be an integer and ptype, v0 ... v5 text")
            }
            guard let section = fields[0]?.trimmingCharacters(in: .whitespaces), !section.isEmpty else {
                throw PolicyLoadError("\(name):\(id): the row has no ptype; give p, g or another section of the model")
            }
            var values = fields.dropFirst().map { $0 ?? "" }
            while let last = values.last, last.isEmpty { values.removeLast() }
            rules.append(PolicyRule(section: section, values: Array(values), source: name, line: Int(id)))
        }
        return rules
    }

    private func connectedReader() throws(PostgresStoreError) -> PostgresLink {
        if let link = reader.withLock({ $0 }), !link.isClosed { return link }
        let link = try PostgresLink.connect(address)
        reader.withLock { $0 = link }
        return link
    }

    /// Starts the `LISTEN` connection on a thread of its own; `changed` runs for every notification on
    /// the channel and after every reconnect.
    package func startWatching(_ changed: @escaping @Sendable () -> Void) {
        guard !watching.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            var connectedBefore = false
            while watching.load(ordering: .acquiring) {
                guard let link = try? PostgresLink.connect(address) else {
                    Thread.sleep(forTimeInterval: 1)
                    continue
                }
                listener.withLock { $0 = link }
                let context = link.connection.addListener(channel: address.channel) { _, _ in changed() }
                // Announcements sent while this connection was down are lost: read the table again.
                if connectedBefore { changed() }
                connectedBefore = true
                while watching.load(ordering: .acquiring), !link.isClosed {
                    Thread.sleep(forTimeInterval: 0.2)
                }
                context.stop()
                listener.withLock { $0 = nil }
                link.close()
            }
        }
        thread.name = "peon-wasm policy listener"
        thread.start()
    }

    /// Stops listening and closes the connections.
    package func stopWatching() {
        watching.store(false, ordering: .releasing)
        listener.withLock { $0 }?.close()
        reader.withLock { link in
            link?.close()
            link = nil
        }
    }
}
