// The `db` capability: named SQLite databases, with access decided by SQLite's own authorizer.
//
// No SQL text is parsed here. `sqlite3_prepare_v2` compiles the statement and, while doing so, calls
// the authorizer for every table and operation the compiled program will touch (including through
// views and triggers); the authorizer maps each call to a `DatabaseAccess` and asks the mediator.
// Whatever the mediator does not allow, and whatever has no mapping, makes the prepare fail.

import CSQLite
import PeonInterface
import PeonSystem
import Synchronization

/// An operation on a table, as the grants name it (`read | insert | update | delete | schema`).
package enum DatabaseOperation: String, Sendable, Hashable, CaseIterable {
    /// Reading rows or columns (`SELECT`, and the `WHERE` of an `UPDATE`/`DELETE`).
    case read
    /// `INSERT`.
    case insert
    /// `UPDATE`.
    case update
    /// `DELETE`.
    case delete
    /// Creating, dropping or altering the table, its indexes, triggers or a view of that name.
    case schema
}

/// One (table, operation) pair a statement needs; what the authorizer asks the mediator about.
struct DatabaseAccess: Sendable, Hashable, CustomStringConvertible {
    /// The table (or view) name as SQLite reports it.
    var table: String
    /// What the statement does to it.
    var operation: DatabaseOperation

    /// Creates an access.
    init(table: String, operation: DatabaseOperation) {
        self.table = table
        self.operation = operation
    }

    /// Equal when the operation and the table name's exact bytes are: SQLite tells `café` with a precomposed `é`
    /// from `e` + U+0301, which Swift's `==` on strings does not, and a decision made for one table must never be
    /// reused for the other.
    static func == (lhs: DatabaseAccess, rhs: DatabaseAccess) -> Bool {
        lhs.operation == rhs.operation && ExactText(lhs.table) == ExactText(rhs.table)
    }

    /// Hashes the operation and the table name's exact bytes (see ``==(_:_:)``).
    func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(ExactText(table))
    }

    /// `insert on 'orders'`.
    var description: String { "\(operation.rawValue) on '\(table)'" }
}

/// Opens the databases bound at run time and prepares guest statements under an authorizer.
///
/// Rules (each enforced here, tested in `DatabaseTests`):
/// - Exactly one statement per call; anything but whitespace or comments after it is
///   `invalid-argument` (SQLite itself compiles the rest to find out, with every action refused).
/// - Every table access is mapped to a ``DatabaseAccess`` and passed to `authorize`; a `false` makes
///   the statement `denied`, naming the table and operation. That includes reading the schema
///   (`sqlite_master`, also as `sqlite_schema`, inside any statement, `CREATE TABLE ... AS SELECT`
///   included), page statistics (`dbstat`) and table-valued functions (`json_each`): each needs a read
///   grant on that name. Only SQLite's own bookkeeping during an authorized schema change, and reads of
///   the schema's row ids, need none.
/// - `authorize` stays installed while the statement runs: if SQLite re-prepares it (after a schema
///   change by another connection), every access is asked again, so a view redefined between prepare
///   and step cannot reach a table nobody authorized.
/// - Refused whatever `authorize` says: `ATTACH`/`DETACH` (and the attach limit is 0), every `PRAGMA`,
///   `BEGIN`/`COMMIT`/`SAVEPOINT` (each statement commits on its own), virtual tables, any database
///   other than `main` (so no `TEMP` objects), `load_extension`, `fts3_tokenizer`, and any authorizer
///   action without a mapping.
/// - Parameters are bound with `sqlite3_bind_*`, never spliced into the SQL.
/// - Errors tell the guest only what its grants cover: a refusal of an access a trigger or view made names
///   nothing (``AuthorizerContext/refusal(_:through:)``), and SQLite's own message is kept only when the
///   names in it are the statement's allowed tables' or the guest's own (``DatabaseErrorMessage``); the
///   audit log gets the whole message (`HostError.auditMessage`). Tested in `DatabaseErrorMessageTests`.
/// - Results are capped by row count and bytes (`limit-exceeded`), counted as the host memory each cell
///   takes (a NULL costs what any cell costs); each statement runs under a deadline enforced by
///   SQLite's progress handler (`timeout`).
/// - SQLite's own work is bounded: no value longer than the result cap (`SQLITE_LIMIT_LENGTH`), temporary
///   storage in memory only, a process-wide hard heap limit (``heapLimitBytes``), defensive mode.
/// - Connections are opened read-write without `CREATE` (a database file that does not exist is
///   `not-found`) and kept for the run (the capability lives as long as its mediator): a statement uses
///   one connection at a time, alone, and gives it back when it goes away (at most
///   ``maxIdleConnections`` per database stay open).
/// - Compiled statements are cached per connection by SQL text, together with the accesses SQLite's
///   authorizer reported and the policy version they were compiled under. A cached statement is used
///   again only under the same policy version, and only after every one of its accesses has been asked
///   again through `authorize` (so each call still decides, audits, rate-limits and labels each table);
///   under another version (the policy reloaded) it is thrown away and compiled afresh, with SQLite's
///   authorizer. Statements that change the schema are never cached. The `BEGIN`, `COMMIT` and `ROLLBACK` the
///   capability runs around a write are its own, compiled once per connection (``DatabaseConnection/run(_:)``).
final class DatabaseCapability: Sendable {
    /// Database name -> SQLite file path.
    let databases: [String: String]
    /// The longest a single statement may run (default 30 s).
    let statementTimeout: Duration
    /// The largest single value (string or blob) SQLite may build, and the bound on SQLite's own memory
    /// for one statement's work (sorting, `DISTINCT`, temporary tables): ``SQLITE_LIMIT_LENGTH``.
    let maxValueBytes: Int

    /// The most memory SQLite may hold in this process, all connections together (`sqlite3_hard_heap_limit64`):
    /// a statement that needs more fails with `limit-exceeded` instead of exhausting the host.
    static let heapLimitBytes: Int64 = 256 << 20
    /// Page cache per connection (in KiB, as `PRAGMA cache_size` takes a negative number).
    static let cacheKiB = 8 << 10

    /// Creates the capability.
    ///
    /// - Parameters:
    ///   - databases: name -> SQLite file path, as bound with `--db NAME=PATH`.
    ///   - statementTimeout: the wall-clock bound for one statement's execution.
    init(databases: [String: String], statementTimeout: Duration = .seconds(30), maxValueBytes: Int = 16 << 20) {
        self.databases = databases
        self.statementTimeout = statementTimeout
        self.maxValueBytes = max(1, min(maxValueBytes, 1 << 30))
        _ = Self.limitHeap
    }

    /// The most connections per database kept open while no statement uses them.
    static let maxIdleConnections = 4
    /// The most compiled statements cached on one connection; compiling one more drops the oldest.
    static let maxCachedStatements = 32

    /// Idle connections by database name.
    private let idle = SleepingLock<[String: [DatabaseConnection]]>([:])
    /// How many guest statements were compiled and how many were reused from the cache (for tests and
    /// benchmarks).
    private let counters = SleepingLock<CacheCounters>(CacheCounters())

    /// How many guest statements SQLite compiled, and how many calls used a cached one.
    struct CacheCounters: Sendable, Equatable {
        /// Statements compiled (each with SQLite's authorizer).
        var compiled = 0
        /// Calls served by a cached statement.
        var reused = 0
        /// The capability's own `BEGIN`, `COMMIT` and `ROLLBACK` compiled, on all connections together (each
        /// at most once per connection, ``DatabaseConnection/run(_:)``).
        var transactionStatements = 0
    }

    /// The counters so far.
    var cacheCounters: CacheCounters { counters.withLock { $0 } }

    /// Takes an idle connection to `database`, or opens one.
    ///
    /// An idle connection whose file is no longer the one at its path (replaced by a rename, as an `fs.write`
    /// does, or removed) is closed, not used: its statements would read the old file while the database's labels
    /// are read by path from the new one (``DatabaseConnection/hasMoved``).
    private func checkOut(_ database: String, path: String) throws(HostError) -> DatabaseConnection {
        while let connection = idle.withLock({ $0[database]?.popLast() }) {
            if !connection.hasMoved { return connection }
            // Closed when the last reference goes, here: it is in no pool and no call holds it.
        }
        let context = AuthorizerContext(authorize: { _ in false })
        let handle = try Self.open(path: path, name: database, context: context, maxValueBytes: maxValueBytes)
        // The file SQLite opened (absolute, links resolved): where the database's labels live.
        let file = sqlite3_db_filename(handle, "main").map { String(cString: $0) } ?? ""
        return DatabaseConnection(database: database, handle: handle, context: context, file: file.isEmpty ? path : file,
                                  counters: counters)
    }

    /// Gives a connection back once its statement is done: it forgets the call's `authorize` (which holds
    /// the call's ticket) and waits idle, unless enough connections already do (then it closes).
    func checkIn(_ connection: DatabaseConnection) {
        connection.context.release()
        if connection.retired { return }
        idle.withLock { pool in
            var list = pool[connection.database] ?? []
            if list.count < Self.maxIdleConnections { list.append(connection) }
            pool[connection.database] = list
        }
    }

    /// Sets the process-wide hard heap limit once.
    private static let limitHeap: Void = {
        _ = sqlite3_hard_heap_limit64(heapLimitBytes)
    }()

    /// Compiles one statement against `database`, asking `authorize` about every table access.
    ///
    /// The mediator decides, writes its audit entry, and then calls ``PreparedStatement/query(_:maxRows:maxBytes:deadline:)``
    /// or ``PreparedStatement/execute(_:deadline:)``. `authorize` stays installed: if SQLite recompiles
    /// the statement later (after a schema change) it is asked again.
    ///
    /// A statement refused once the database is open says something about its schema (`no such table`, a column
    /// count, a refused table's existence): `refused` is then given the database's labels before the error is
    /// thrown, so the call brings them as a failed statement that ran does. A syntax error too: SQLite's message
    /// quotes the guest's own names (`no such table: x: syntax error`), so no message can be trusted to say the
    /// schema played no part. If the labels cannot be read, the error is `io` instead (closed).
    ///
    /// - Throws: `not-found` (no such database name or file), `invalid-argument` (empty SQL, a syntax
    ///   error, more than one statement), `denied` (a refused access or action), `io`.
    func prepare(
        database name: DatabaseName,
        sql: String,
        policyVersion: String,
        refused: ([String]) -> Void,
        authorize: @escaping (DatabaseAccess) -> Bool
    ) throws(HostError) -> PreparedStatement {
        let database = name.description
        guard let path = databases[database] else {
            throw HostError(.notFound, "no database named '\(database)' is bound to this run")
        }
        if sql.utf8.count > Self.maxSQLBytes {
            throw HostError(.limitExceeded, "the SQL is longer than \(Self.maxSQLBytes) bytes")
        }
        let connection = try checkOut(database, path: path)
        let context = connection.context
        context.reset(authorize: authorize)
        context.sqlText = sql
        do throws(HostError) {
            if let cached = connection.statements[ExactText(sql)] {
                if cached.policyVersion == policyVersion {
                    // Every access the statement makes is decided again, in the order SQLite first reported them.
                    for access in cached.accesses where context.ask(access, through: cached.reachedThrough[access]) != SQLITE_OK {
                        throw context.denial ?? HostError(.denied, "\(access) is not granted")
                    }
                    counters.withLock { $0.reused += 1 }
                    return PreparedStatement(capability: self, connection: connection, cached: cached, timeout: statementTimeout)
                }
                // The policy changed since it was compiled: compile it again, with SQLite's authorizer.
                connection.forget(sql)
                context.reset(authorize: authorize)
                context.sqlText = sql
            }
            context.storedNames = Self.storedNames(connection.handle, context: context)
            let statement = try Self.compileSingle(sql, connection: connection.handle, context: context)
            counters.withLock { $0.compiled += 1 }
            let compiled = CachedStatement(sql: sql, statement: statement, policyVersion: policyVersion, accesses: context.accesses,
                                           reachedThrough: context.reachedThrough)
            if !context.changesSchema { connection.remember(compiled) }
            return PreparedStatement(capability: self, connection: connection, cached: compiled, timeout: statementTimeout)
        } catch {
            checkIn(connection)
            refused(try DatabaseLabels.read(file: connection.file, database: database))
            throw error
        }
    }

    /// The longest SQL text accepted (1 MiB).
    static let maxSQLBytes = 1 << 20

    private static func open(path: String, name: String, context: AuthorizerContext, maxValueBytes: Int) throws(HostError) -> OpaquePointer {
        var handle: OpaquePointer?
        let result = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard result == SQLITE_OK, let connection = handle else {
            if let handle { sqlite3_close_v2(handle) }
            if result == SQLITE_CANTOPEN {
                throw HostError(.notFound, "database '\(name)' could not be opened (does its file exist?)")
            }
            throw HostError(.io, "database '\(name)' could not be opened: \(String(cString: sqlite3_errstr(result)))")
        }
        // Defence in depth beside the authorizer: no attached databases at all, bounded SQL and values
        // (so `printf('%.*c', 2000000000, 'x')` fails at once instead of building 2 GB), temporary
        // storage in memory (bounded by the heap limit) rather than spilled to /var/tmp, a small page
        // cache, defensive mode, and no trust in functions named by the schema.
        sqlite3_limit(connection, SQLITE_LIMIT_ATTACHED, 0)
        sqlite3_limit(connection, SQLITE_LIMIT_SQL_LENGTH, Int32(maxSQLBytes))
        sqlite3_limit(connection, SQLITE_LIMIT_LENGTH, Int32(clamping: maxValueBytes))
        sqlite3_extended_result_codes(connection, 0)
        let configured = peon_sqlite3_set_defensive(connection) == SQLITE_OK
            && peon_sqlite3_untrusted_schema(connection) == SQLITE_OK
            && sqlite3_exec(connection, "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -\(cacheKiB)", nil, nil, nil) == SQLITE_OK
        guard configured else {
            let reason = String(cString: sqlite3_errmsg(connection))
            sqlite3_close_v2(connection)
            throw HostError(.io, "database '\(name)' could not be configured safely: \(reason)")
        }
        context.connection = connection
        context.modules = Self.moduleNames(connection)
        let pointer = Unmanaged.passUnretained(context).toOpaque()
        sqlite3_set_authorizer(connection, authorizerCallback, pointer)
        sqlite3_progress_handler(connection, 1000, progressCallback, pointer)
        context.seesRowDeletes = peon_sqlite3_set_preupdate_hook(connection, preUpdateCallback, pointer) == 1
        return connection
    }

    /// The stored tables and views by ASCII-lowercased name (``AuthorizerContext/storedNames``), read with
    /// the authorizer standing aside; `nil` if the schema cannot be read.
    static func storedNames(_ connection: OpaquePointer, context: AuthorizerContext) -> [ExactText: String]? {
        context.internalStatement = true
        defer { context.internalStatement = false }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')",
                                 -1, &statement, nil) == SQLITE_OK else {
            return nil
        }
        defer { sqlite3_finalize(statement) }
        var names: [ExactText: String] = [:]
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { return names }
            guard result == SQLITE_ROW else { return nil }
            if let text = sqlite3_column_text(statement, 0) {
                let name = String(cString: text)
                names[ExactText(asciiLowercased(name))] = name
            }
        }
    }


    /// The names of the virtual table modules this SQLite has, lowercased (read before the authorizer
    /// is installed); `nil` if they cannot be read.
    private static func moduleNames(_ connection: OpaquePointer) -> Set<String>? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, "SELECT name FROM pragma_module_list", -1, &statement, nil) == SQLITE_OK else {
            return nil
        }
        defer { sqlite3_finalize(statement) }
        var names: Set<String> = []
        while sqlite3_step(statement) == SQLITE_ROW {
            if let text = sqlite3_column_text(statement, 0) { names.insert(String(cString: text).lowercased()) }
        }
        return names
    }

    /// Prepares the first statement of `sql` and refuses any second one.
    private static func compileSingle(_ sql: String, connection: OpaquePointer, context: AuthorizerContext) throws(HostError) -> OpaquePointer {
        var utf8 = Array(sql.utf8)
        utf8.append(0)
        return try utf8.withUnsafeBufferPointer { (buffer) throws(HostError) -> OpaquePointer in
            guard let base = buffer.baseAddress else { throw HostError(.invalidArgument, "the SQL is empty") }
            let start = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
            var statement: OpaquePointer?
            var tail: UnsafePointer<CChar>?
            let length = Int32(buffer.count - 1)
            let result = sqlite3_prepare_v2(connection, start, length, &statement, &tail)
            if result != SQLITE_OK {
                if let denial = context.denial { throw denial }
                let text = String(cString: sqlite3_errmsg(connection))
                throw DatabaseErrorMessage.hostError(
                    result == SQLITE_AUTH ? .denied : .invalidArgument, what: "the SQL was refused",
                    message: text, result: result,
                    connection: connection, context: context, guestText: [sql])
            }
            guard let statement else { throw HostError(.invalidArgument, "the SQL contains no statement") }
            do throws(HostError) {
                // VACUUM rewrites the whole file through a database it attaches (refused), and cannot run inside
                // the transaction a write runs in: refused here, by its first word.
                if firstKeyword(of: buffer) == "vacuum" {
                    throw HostError(.denied, "VACUUM is refused")
                }
                try context.finishPreparing()
            } catch {
                sqlite3_finalize(statement)
                throw error
            }
            if let tail {
                let used = start.distance(to: tail)
                if used < Int(length) {
                    // Let SQLite decide whether the rest holds a statement, with every action refused.
                    context.refuseEverything = true
                    defer { context.refuseEverything = false }
                    var second: OpaquePointer?
                    let rest = sqlite3_prepare_v2(connection, tail, length - Int32(used), &second, nil)
                    if second != nil || rest != SQLITE_OK {
                        sqlite3_finalize(second)
                        sqlite3_finalize(statement)
                        throw HostError(.invalidArgument, "exactly one SQL statement is allowed per call; remove what follows the first")
                    }
                }
            }
            return statement
        }
    }
}

/// One open connection of a run, with the statements compiled on it.
///
/// `@unchecked Sendable`. Invariant: used by one thread at a time. It is either idle in its capability's
/// pool (touched by no one) or checked out to exactly one ``PreparedStatement`` (touched only by the call
/// that holds that statement); SQLite opened it in multi-thread mode (`SQLITE_OPEN_NOMUTEX`), which
/// allows a connection to move between threads as long as no two use it at once.
final class DatabaseConnection: @unchecked Sendable {
    /// The database name it belongs to.
    let database: String
    /// The SQLite connection.
    let handle: OpaquePointer
    /// The authorizer's state, reached by SQLite's callbacks for this connection.
    let context: AuthorizerContext
    /// The database file SQLite opened, which carries the database's labels (``DatabaseLabels``).
    let file: String
    /// Set when the file was found replaced under the connection: it is closed when its call ends, never pooled.
    var retired = false

    /// Whether the file this connection reads is no longer the one at its path (renamed over, or removed), as
    /// SQLite's unix VFS tells (`SQLITE_FCNTL_HAS_MOVED`: the path's inode against the open file's). The labels
    /// are read by path, so they are the data's only while this is `false`. `true` also when SQLite cannot tell.
    var hasMoved: Bool {
        var moved: Int32 = 0
        let result = sqlite3_file_control(handle, "main", SQLITE_FCNTL_HAS_MOVED, &moved)
        return result != SQLITE_OK || moved != 0
    }
    /// Compiled statements by SQL text (byte for byte: two texts Swift calls equal may name different tables), and
    /// the order they were compiled in (oldest first).
    private(set) var statements: [ExactText: CachedStatement] = [:]
    private var order: [ExactText] = []
    /// The capability's own `BEGIN`, `COMMIT` and `ROLLBACK`, each compiled on its first use and kept until the
    /// connection closes: compiling them for every write (`sqlite3_exec`) cost more than running them.
    private var transactionStatements: [TransactionControl: OpaquePointer] = [:]
    /// The capability's counters, where compiling a transaction statement is counted.
    private let counters: SleepingLock<DatabaseCapability.CacheCounters>

    init(database: String, handle: OpaquePointer, context: AuthorizerContext, file: String,
         counters: SleepingLock<DatabaseCapability.CacheCounters>) {
        self.database = database
        self.handle = handle
        self.context = context
        self.file = file
        self.counters = counters
    }

    /// Runs `control` as the capability's own statement (the authorizer allows it without asking anyone, the
    /// pre-update hook ignores it); SQLite's result code, `SQLITE_OK` when it ran to completion.
    ///
    /// Compiled once per connection: none of the three reads the schema, and if SQLite ever recompiled one,
    /// the authorizer would still see it as the capability's own, since `internalStatement` is set while it runs.
    func run(_ control: TransactionControl) -> Int32 {
        context.internalStatement = true
        defer { context.internalStatement = false }
        let statement: OpaquePointer
        if let compiled = transactionStatements[control] {
            statement = compiled
        } else {
            var compiled: OpaquePointer?
            let result = sqlite3_prepare_v2(handle, control.rawValue, -1, &compiled, nil)
            guard result == SQLITE_OK, let compiled else {
                sqlite3_finalize(compiled)
                return result == SQLITE_OK ? SQLITE_ERROR : result
            }
            counters.withLock { $0.transactionStatements += 1 }
            transactionStatements[control] = compiled
            statement = compiled
        }
        let result = sqlite3_step(statement)
        // Reset at once, so the statement holds nothing between uses; the step's error stays on the connection
        // (`sqlite3_errmsg`) for the caller's message.
        sqlite3_reset(statement)
        return result == SQLITE_DONE ? SQLITE_OK : result
    }

    /// Keeps `statement` for later calls, dropping the oldest when the cache is full.
    func remember(_ statement: CachedStatement) {
        let key = ExactText(statement.sql)
        if statements[key] != nil { forget(statement.sql) }
        if order.count >= DatabaseCapability.maxCachedStatements, let oldest = order.first { forget(oldest.text) }
        statements[key] = statement
        order.append(key)
        statement.isCached = true
    }

    /// Drops the cached statement for `sql` and finalizes it (the caller holds the connection, and no
    /// statement of it is in use: one call at a time holds a connection).
    func forget(_ sql: String) {
        let key = ExactText(sql)
        guard let statement = statements.removeValue(forKey: key) else { return }
        order.removeAll { $0 == key }
        statement.isCached = false
        statement.finalize()
    }

    deinit {
        for statement in statements.values { statement.finalize() }
        for statement in transactionStatements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }
}

/// The transaction statements the capability runs itself around a guest statement that can write.
enum TransactionControl: String {
    /// Starts the statement's transaction (deferred, as `sqlite3_exec("BEGIN")` did).
    case begin = "BEGIN"
    /// Commits it.
    case commit = "COMMIT"
    /// Rolls it back.
    case rollback = "ROLLBACK"
}

/// A compiled statement and what its compile found: the accesses SQLite's authorizer reported (in
/// first-seen order) and the policy version they were decided under. Finalized when it goes away.
final class CachedStatement {
    let sql: String
    let statement: OpaquePointer
    let policyVersion: String
    /// The accesses to decide again before each later use; kept up to date when SQLite re-prepares the
    /// statement while it runs (a schema change can add a table).
    var accesses: [DatabaseAccess]
    /// The accesses only a trigger or view made, and which (``AuthorizerContext/reachedThrough``).
    var reachedThrough: [DatabaseAccess: String]
    /// Whether its connection's cache holds it.
    var isCached = false
    private var finalized = false

    init(sql: String, statement: OpaquePointer, policyVersion: String, accesses: [DatabaseAccess],
         reachedThrough: [DatabaseAccess: String] = [:]) {
        self.sql = sql
        self.statement = statement
        self.policyVersion = policyVersion
        self.accesses = accesses
        self.reachedThrough = reachedThrough
    }

    /// Finalizes the statement now (idempotent). Only while its connection is held: SQLite must not see
    /// two threads on one connection.
    func finalize() {
        if finalized { return }
        finalized = true
        sqlite3_finalize(statement)
    }

    deinit {
        finalize()
    }
}

/// A compiled statement, ready to run after the mediator has recorded its decision.
///
/// Not thread-safe: use it on the thread that prepared it. It holds its connection alone and gives it
/// back to the capability (and its statement to the connection's cache) when it goes away.
final class PreparedStatement {
    /// Every (table, operation) the authorizer saw, in first-seen order, without duplicates.
    var accesses: [DatabaseAccess] { context.accesses }
    /// Whether SQLite says the statement cannot change the database (`sqlite3_stmt_readonly`).
    var isReadOnly: Bool { sqlite3_stmt_readonly(statement) != 0 }
    /// How many parameters (`?`, `?NNN`, `:name`) the statement takes.
    var parameterCount: Int { Int(sqlite3_bind_parameter_count(statement)) }

    /// The information-flow labels the database carries (``DatabaseLabels``), sorted.
    ///
    /// Read by the path SQLite opened, and then checked to still be this connection's file: a file replaced
    /// meanwhile (renamed over by an `fs.write`, or by another process) carries other labels than the rows the
    /// statement read, so the call fails with `io` and the connection is closed.
    func databaseLabels() throws(HostError) -> [String] {
        let labels = try DatabaseLabels.read(file: lease.file, database: lease.database)
        try requireUnmoved()
        return labels
    }

    /// Records `labels` on the database, before the statement runs: a write by a labelled run labels the
    /// database first, so its data is never there unlabelled. `call` names the refused call in an error; a
    /// file replaced under the connection is refused as in ``databaseLabels()``.
    func labelDatabase(_ labels: [String], call: String) throws(HostError) {
        try DatabaseLabels.add(labels, file: lease.file, database: lease.database, call: call)
        try requireUnmoved()
    }

    /// Throws `io`, and retires the connection, when its file is no longer the one at its path.
    private func requireUnmoved() throws(HostError) {
        guard lease.hasMoved else { return }
        lease.retired = true
        throw HostError(.io, "the file of database '\(lease.database)' was replaced or removed during the call, so the labels of what the statement read cannot be known; the call is refused, try it again")
    }

    private let capability: DatabaseCapability
    private let lease: DatabaseConnection
    private let compiled: CachedStatement
    private var connection: OpaquePointer { lease.handle }
    private var statement: OpaquePointer { compiled.statement }
    private var context: AuthorizerContext { lease.context }
    private let timeout: Duration
    /// The text parameters of the current run: what the guest sent besides the SQL, whose names SQLite's
    /// messages may echo to it.
    private var guestParameters: [String] = []

    init(capability: DatabaseCapability, connection: DatabaseConnection, cached: CachedStatement, timeout: Duration) {
        self.capability = capability
        self.lease = connection
        self.compiled = cached
        self.timeout = timeout
    }

    deinit {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        // A re-prepare while running may have reported new accesses: the next use asks about them too.
        // A statement no cache holds is finalized here, while this call still holds the connection.
        if compiled.isCached {
            compiled.accesses = context.accesses
            compiled.reachedThrough = context.reachedThrough
        } else {
            compiled.finalize()
        }
        capability.checkIn(lease)
    }

    /// Runs the statement and returns its rows.
    ///
    /// - Parameters:
    ///   - parameters: one value per parameter, in order.
    ///   - maxRows: more rows than this is `limit-exceeded`.
    ///   - maxBytes: more result bytes (text and blob bytes, 8 per number, plus column names) is `limit-exceeded`.
    ///   - deadline: an optional earlier end than the capability's statement timeout.
    func query(
        _ parameters: [DatabaseValue], maxRows: Int, maxBytes: Int, deadline: ContinuousClock.Instant? = nil
    ) throws(HostError) -> DatabaseRows {
        try start(parameters, deadline: deadline)
        defer { finish() }
        let columnCount = Int(sqlite3_column_count(statement))
        var columns: [String] = []
        var bytes = 0
        for index in 0..<Int32(columnCount) {
            let name = sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
            bytes += name.utf8.count
            columns.append(name)
        }
        var rows: [[DatabaseValue]] = []
        while try step() {
            if rows.count >= maxRows {
                throw HostError(.limitExceeded, "the query returns more than \(maxRows) rows")
            }
            // Counted before the row is built, so a row of NULLs costs what it will take in memory.
            bytes += DatabaseValue.rowOverhead + columnCount * MemoryLayout<DatabaseValue>.stride
            if bytes > maxBytes {
                throw HostError(.limitExceeded, "the query result is larger than \(maxBytes) bytes")
            }
            var row: [DatabaseValue] = []
            row.reserveCapacity(columnCount)
            for index in 0..<Int32(columnCount) {
                let value = columnValue(index)
                bytes += value.byteCount - MemoryLayout<DatabaseValue>.stride
                if bytes > maxBytes {
                    throw HostError(.limitExceeded, "the query result is larger than \(maxBytes) bytes")
                }
                row.append(value)
            }
            rows.append(row)
        }
        return DatabaseRows(columns: columns, rows: rows)
    }

    /// Runs the statement to completion and returns the number of rows it changed.
    ///
    /// A statement that can write runs in a transaction of the capability's own, committed only if no row
    /// change was refused on the way (a delete by `REPLACE` without a `delete` grant): what SQLite did up to
    /// the refusal is rolled back, so a refused change never reaches the file.
    func execute(_ parameters: [DatabaseValue], deadline: ContinuousClock.Instant? = nil) throws(HostError) -> UInt64 {
        try start(parameters, deadline: deadline)
        defer { finish() }
        if isReadOnly {
            while try step() {}
            return 0
        }
        let begun = lease.run(.begin)
        guard begun == SQLITE_OK else { throw error(begun, "starting the statement's transaction") }
        var changed: UInt64 = 0
        do throws(HostError) {
            while try step() {}
            changed = UInt64(max(0, sqlite3_changes64(connection)))
            if context.vetoed {
                throw context.denial ?? HostError(.denied, "a row the statement would delete is not granted")
            }
        } catch {
            sqlite3_reset(statement)
            _ = lease.run(.rollback)
            throw error
        }
        sqlite3_reset(statement)
        let committed = lease.run(.commit)
        if committed != SQLITE_OK {
            let failure = error(committed, "committing the statement")
            _ = lease.run(.rollback)
            throw failure
        }
        return changed
    }

    // MARK: Running

    private func start(_ parameters: [DatabaseValue], deadline: ContinuousClock.Instant?) throws(HostError) {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        guestParameters = parameters.compactMap { if case .text(let text) = $0 { text } else { nil } }
        let expected = parameterCount
        if parameters.count != expected {
            throw HostError(.invalidArgument, "the statement takes \(expected) parameters, \(parameters.count) were given")
        }
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let result: Int32
            switch value {
            case .null:
                result = sqlite3_bind_null(statement, index)
            case .integer(let number):
                result = sqlite3_bind_int64(statement, index, number)
            case .real(let number):
                result = sqlite3_bind_double(statement, index, number)
            case .text(let text):
                var bytes = Array(text.utf8)
                let count = UInt64(bytes.count)
                bytes.append(0)
                result = bytes.withUnsafeBufferPointer { buffer in
                    sqlite3_bind_text64(
                        statement, index, UnsafeRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: CChar.self),
                        count, transientDestructor, UInt8(SQLITE_UTF8))
                }
            case .blob(let blob):
                result = blob.withUnsafeBytes { raw in
                    // A zero-length blob needs a non-NULL pointer, or SQLite binds NULL instead.
                    raw.baseAddress == nil
                        ? sqlite3_bind_zeroblob(statement, index, 0)
                        : sqlite3_bind_blob64(statement, index, raw.baseAddress, UInt64(raw.count), transientDestructor)
                }
            }
            if result != SQLITE_OK {
                throw error(result, "binding parameter \(index)")
            }
        }
        context.beginRunning()
        let ownDeadline = ContinuousClock.now.advanced(by: timeout)
        context.deadline = deadline.map { min($0, ownDeadline) } ?? ownDeadline
        let milliseconds = max(1, min(5000, ContinuousClock.now.duration(to: context.deadline ?? ownDeadline).milliseconds))
        sqlite3_busy_timeout(connection, Int32(milliseconds))
    }

    private func finish() {
        context.deadline = nil
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
    }

    /// One `sqlite3_step`: `true` for a row, `false` when done.
    private func step() throws(HostError) -> Bool {
        let result = sqlite3_step(statement)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            if let denial = context.denial { throw denial }
            throw error(result, "running the statement")
        }
    }

    private func columnValue(_ index: Int32) -> DatabaseValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            guard let text = sqlite3_column_text(statement, index) else { return .text("") }
            let count = Int(sqlite3_column_bytes(statement, index))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let blob = sqlite3_column_blob(statement, index) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: blob, count: count)))
        default:
            return .null
        }
    }

    /// The error for SQLite's result code `result` while doing `what`, with SQLite's message as far as the
    /// guest may see it (``DatabaseErrorMessage``).
    private func error(_ result: Int32, _ what: String) -> HostError {
        let message = String(cString: sqlite3_errmsg(connection))
        let code: HostErrorCode
        switch result & 0xff {
        case SQLITE_INTERRUPT: return HostError(.timeout, "the statement ran past its deadline and was interrupted")
        case SQLITE_AUTH: code = .denied
        case SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE: code = .invalidArgument
        case SQLITE_FULL, SQLITE_TOOBIG, SQLITE_NOMEM: code = .limitExceeded
        case SQLITE_BUSY, SQLITE_LOCKED: code = .timeout
        case SQLITE_READONLY, SQLITE_PERM: code = .denied
        default: code = .io
        }
        return DatabaseErrorMessage.hostError(code, what: what, message: message, result: result, connection: connection,
                                              context: context, guestText: [compiled.sql] + guestParameters)
    }
}

/// `PreparedStatement` wraps SQLite handles that must stay on one thread.
@available(*, unavailable)
extension PreparedStatement: Sendable {}

// MARK: - The authorizer

/// State the C callbacks reach through their user-data pointer. Lives as long as the connection
/// (the `PreparedStatement` holds it), and is only touched on the thread running the statement.
final class AuthorizerContext {
    /// The current call's question; a refusal for every access while the connection is idle.
    private(set) var authorize: (DatabaseAccess) -> Bool
    /// Set while checking for a second statement: refuse everything, ask no one.
    var refuseEverything = false
    /// The tables the statement being compiled drops (ASCII-lowercased): their triggers go with them.
    var droppedTables: Set<String> = []
    /// The tables the statement being compiled creates (ASCII-lowercased): their own constraints read them.
    var createdTables: Set<String> = []
    /// Whether the statement being compiled is an ALTER TABLE (SQLite runs statements of its own for it).
    var altersTable = false
    /// Whether it is an ALTER TABLE ... DROP COLUMN.
    var dropsColumn = false
    var accesses: [DatabaseAccess] = []
    /// For each access that only a trigger or view made (never the guest's own SQL), the innermost trigger or
    /// view SQLite named: a refusal of it does not name the table to the guest (``refusal(_:through:)``).
    var reachedThrough: [DatabaseAccess: String] = [:]
    /// The statement's SQL text: a refused table SQLite reports with neither a trigger nor a view as its source, and
    /// that the text never writes as a word, was reached through something SQLite did not name (a view holding a
    /// window function is compiled as a subquery, and its tables come without the view's name). Read only when an
    /// access is refused (``writes(_:in:)``).
    var sqlText = ""
    private var seen: Set<DatabaseAccess> = []
    /// Decisions already made (SQLite asks once per column).
    private var decided: [DatabaseAccess: Bool] = [:]
    /// The first refusal, reported instead of SQLite's generic "not authorized".
    var denial: HostError?
    /// When the running statement must stop; checked by the progress handler.
    var deadline: ContinuousClock.Instant?
    /// The connection the callbacks belong to, to tell stored tables from CTE names.
    var connection: OpaquePointer?
    /// The virtual table modules SQLite has (their names are eponymous tables: `dbstat`, `json_each`);
    /// `nil` if the list could not be read, and then every name counts as stored (fail closed).
    var modules: Set<String>?
    /// Set once the statement creates, drops or alters something: SQLite then reads and writes the
    /// schema table itself, which is bookkeeping for the already-authorized schema action.
    private(set) var changesSchema = false
    /// Whether the statement contains a `SELECT` of its own.
    private var selects = false
    /// Columns of the schema table read while the statement changes the schema, before it is known
    /// whether they are SQLite's bookkeeping or a `SELECT` of the guest's (`CREATE TABLE x AS SELECT sql
    /// FROM sqlite_master`): decided when the statement is compiled (``finishPreparing()``).
    private var provisionalSchemaReads = false
    /// Whether the statement has been compiled and is running: an authorizer call now is SQLite
    /// re-preparing it (after a schema change), and is decided afresh.
    private var running = false
    /// Accesses allowed in this call, kept while it runs (unlike `decided`), so a row the statement deletes
    /// under an allowed `delete` is not asked about again.
    private var granted: Set<DatabaseAccess> = []
    /// Set when a row change the statement was about to make was refused (a delete by `REPLACE`): the
    /// statement's transaction is rolled back whatever SQLite answers.
    private(set) var vetoed = false
    /// Whether SQLite tells us of each row it deletes (the pre-update hook); when it cannot, every insert
    /// and update also needs the `delete` grant of its table (`REPLACE` may delete rows).
    var seesRowDeletes = false
    /// The stored tables and views by their ASCII-lowercased name, read before each compile: SQLite
    /// reports some reads (`SELECT count(*) FROM SECRETS`) with the table named as the guest spelled it,
    /// and the decision must be on the table's one name. `nil` when it could not be read (fail closed).
    /// Keyed byte for byte: two names Swift calls equal (`café` precomposed or not) are two tables to SQLite.
    var storedNames: [ExactText: String]?
    /// Set while the capability runs a statement of its own (the name list, `BEGIN`, `COMMIT`): allowed
    /// without asking anyone.
    var internalStatement = false

    init(authorize: @escaping (DatabaseAccess) -> Bool) {
        self.authorize = authorize
    }

    /// The answer for one authorizer call: `SQLITE_OK` or `SQLITE_DENY`. `source` is the innermost trigger or
    /// view the access comes from (`nil`: the guest's own SQL text).
    func decide(action: Int32, _ first: String?, _ second: String?, database: String?, through source: String? = nil) -> Int32 {
        if refuseEverything { return SQLITE_DENY }
        if internalStatement { return SQLITE_OK }
        if action == SQLITE_SELECT { selects = true }
        if action == SQLITE_ALTER_TABLE {
            altersTable = true
            // Only DROP COLUMN names a column (in the database's slot); RENAME TO and RENAME COLUMN look alike.
            dropsColumn = database != nil
        }
        if altersTable, let name = first.map(asciiLowercased) {
            // The statements SQLite itself runs for an ALTER TABLE (the one statement of this call, its text fixed by
            // SQLite): the integrity check of a new column's CHECK constraint, and for DROP COLUMN the rewrite of the
            // `temp` schema, which is always empty (temporary objects are refused). A RENAME stays refused there: it
            // would move a table's rows under a name other grants cover (`schema` on `salaries`, `read` on `pub`).
            if action == SQLITE_PRAGMA && name == "quick_check" { return SQLITE_OK }
            if action == SQLITE_READ && name == "pragma_quick_check" { return SQLITE_OK }
            if dropsColumn && database == "temp" && (action == SQLITE_READ || action == SQLITE_UPDATE)
                && (name == "sqlite_temp_master" || name == "sqlite_temp_schema") {
                return SQLITE_OK
            }
        }
        var first = first
        if action == SQLITE_READ, let name = first {
            // SQLite reports a read without a database both for a common table expression's own rows
            // (`WITH RECURSIVE c(x) ... FROM c`: nothing stored, judged by what its SELECT reads) and for a
            // stored table read without a column (`SELECT count(*) FROM secrets`). Only a name that is neither
            // a stored table or view nor a virtual table module (`dbstat`, `json_each`) is a CTE.
            if database == nil && !isStored(name) { return SQLITE_OK }
            // A read without a column names the table as the guest spelled it (`FROM SECRETS`): decide on
            // the table's stored name, so no spelling reaches a table under another grant or past a deny rule.
            // A table this statement creates is not stored yet: its own CHECK constraints and generated columns
            // read it while it is created.
            guard let stored = storedName(name) ?? (createdTables.contains(asciiLowercased(name)) ? name : nil) else {
                if denial == nil {
                    denial = Self.refusal("'\(sanitize(name))' is not a table of the schema read before the statement was compiled; try again",
                                          through: source)
                }
                return SQLITE_DENY
            }
            first = stored
        }
        if !seesRowDeletes && (action == SQLITE_INSERT || action == SQLITE_UPDATE),
           case .access(let access) = AuthorizerAction.classify(action: action, first, second, database: database),
           ask(DatabaseAccess(table: access.table, operation: .delete), through: source) != SQLITE_OK {
            // Without the pre-update hook a REPLACE could delete rows unseen: fail closed.
            return SQLITE_DENY
        }
        if action == SQLITE_DROP_TABLE, let table = first { droppedTables.insert(asciiLowercased(table)) }
        if action == SQLITE_CREATE_TABLE, let table = first { createdTables.insert(asciiLowercased(table)) }
        // Dropping a table drops its triggers with it: SQLite asks about each, naming the table second. They go as
        // part of that table's schema change, which is decided on the table; a trigger alone is never dropped.
        if action == SQLITE_DROP_TRIGGER, let table = second, droppedTables.contains(asciiLowercased(table)) {
            return ask(DatabaseAccess(table: table, operation: .schema), through: source)
        }
        switch AuthorizerAction.classify(action: action, first, second, database: database) {
        case .allow:
            return SQLITE_OK
        case .refuse(let reason):
            if denial == nil { denial = Self.refusal(reason, through: source) }
            return SQLITE_DENY
        case .access(let access):
            if access.operation == .schema { changesSchema = true }
            if access.operation == .read && AuthorizerAction.schemaTables.contains(access.table.lowercased()) {
                // The row id alone is SQLite's own bookkeeping (it reads it after every CREATE and for table-valued
                // functions); it tells at most how many schema rows there are.
                if (second ?? "").lowercased() == "rowid" { return SQLITE_OK }
                if changesSchema && !running {
                    provisionalSchemaReads = true
                    return SQLITE_OK
                }
            }
            return ask(access, through: source)
        }
    }

    /// Starts a new use of the connection with the calling statement's `authorize` and nothing decided.
    func reset(authorize: @escaping (DatabaseAccess) -> Bool) {
        self.authorize = authorize
        refuseEverything = false
        droppedTables = []
        createdTables = []
        altersTable = false
        dropsColumn = false
        accesses = []
        reachedThrough = [:]
        seen = []
        decided = [:]
        denial = nil
        deadline = nil
        changesSchema = false
        selects = false
        provisionalSchemaReads = false
        running = false
        granted = []
        sqlText = ""
        vetoed = false
        internalStatement = false
    }

    /// Ends a use: forgets the call's `authorize` (it holds the call's ticket and its mediator) and
    /// refuses everything until the next ``reset(authorize:)``.
    func release() {
        authorize = { _ in false }
        deadline = nil
        running = false
    }

    /// Asks the mediator once per access and compile (SQLite asks once per column). `source` is the trigger or
    /// view the access comes from (``reachedThrough``), `nil` when the guest's own SQL names the table.
    func ask(_ access: DatabaseAccess, through source: String? = nil) -> Int32 {
        if seen.insert(access).inserted {
            accesses.append(access)
            if let source { reachedThrough[access] = source }
        } else if source == nil {
            reachedThrough[access] = nil
        }
        let allowed: Bool
        if let earlier = decided[access] {
            allowed = earlier
        } else {
            allowed = authorize(access)
            decided[access] = allowed
        }
        if !allowed {
            if denial == nil {
                let source = reachedThrough[access] ?? (Self.writes(access.table, in: sqlText) ? nil : "a view or subquery SQLite does not name")
                denial = Self.refusal("\(access) is not granted", through: source)
            }
            return SQLITE_DENY
        }
        granted.insert(access)
        return SQLITE_OK
    }

    /// Whether the guest's SQL writes `table` as a whole word (ASCII case ignored), as a message naming it may be kept
    /// (``DatabaseErrorMessage``, ``NameSearch``): then naming it tells the guest nothing a direct `SELECT` on that name would
    /// not. Found anywhere in the text, a name leaked out of a comment listing every three-letter string.
    static func writes(_ table: String, in sql: String) -> Bool {
        let text = Array(asciiLowercased(sql).utf8)
        return NameSearch.occurs(Array(asciiLowercased(table).utf8), in: text, words: NameSearch.words(text))
    }

    /// A refusal, as the guest sees it. Of an access the guest's own SQL makes, `message` as it is (the guest
    /// named the table). Of one made by a trigger or view (`source`), no name at all: the table, the function,
    /// the trigger or view come from the schema, which the guest's grants need not let it read (a granted
    /// `notes` whose trigger writes the ungranted `secrets`). The audit log gets `message` and the source.
    static func refusal(_ message: String, through source: String?) -> HostError {
        guard let source else { return HostError(.denied, message) }
        return HostError(
            .denied, "the statement reaches, through a trigger or view, something its grants do not cover; the operator's audit log names it",
            auditMessage: "\(message) (reached through the trigger or view '\(sanitize(source))')")
    }

    /// Called by SQLite's pre-update hook before each row the running statement deletes: a delete the
    /// authorizer never reported (a `REPLACE` conflict resolution, `INSERT OR REPLACE`, `UPDATE OR REPLACE`,
    /// a table declared `ON CONFLICT REPLACE`) is decided like any other access, and audited. A refusal
    /// cannot stop SQLite here, so it marks the statement vetoed: its transaction is rolled back.
    func rowWillBeDeleted(from table: String) -> Bool {
        let access = DatabaseAccess(table: table, operation: .delete)
        if granted.contains(access) { return true }
        if ask(access) == SQLITE_OK { return true }
        vetoed = true
        return false
    }

    /// Called once the statement compiled: schema rows read by a statement that also selects are the
    /// guest's reads, not bookkeeping, and need a read grant on `sqlite_master` like any other table (except in
    /// an ALTER TABLE, whose selects SQLite writes).
    func finishPreparing() throws(HostError) {
        // An ALTER TABLE's selects are SQLite's own (a CHECK or DEFAULT cannot hold a subquery).
        if provisionalSchemaReads && selects && !altersTable {
            if ask(DatabaseAccess(table: "sqlite_master", operation: .read)) != SQLITE_OK {
                throw denial ?? HostError(.denied, "reading the schema table needs a read grant on sqlite_master")
            }
        }
        provisionalSchemaReads = false
    }

    /// The tables (and views) whose accesses were allowed in this call, ASCII-lowercased: the names SQLite's
    /// messages may show the guest (``DatabaseErrorMessage``).
    var grantedTables: Set<String> { Set(granted.map { asciiLowercased($0.table) }) }

    /// Called before each run: from now on an authorizer call is a re-prepare, and every access it
    /// reports is asked (and audited) again.
    func beginRunning() {
        running = true
        decided.removeAll()
    }
}

extension AuthorizerContext {
    /// The one name SQLite knows `table` by: a schema table or virtual table module lowercased, a stored
    /// table or view as it was created (SQLite compares names ignoring ASCII case); `nil` when unknown.
    func storedName(_ table: String) -> String? {
        let lower = asciiLowercased(table)
        if AuthorizerAction.schemaTables.contains(lower) { return lower }
        if let stored = storedNames?[ExactText(lower)] { return stored }
        if let modules, modules.contains(lower) { return lower }
        return nil
    }

    /// Whether `table` names a stored table or view, the schema table, or a virtual table module (an
    /// eponymous table such as `dbstat`), as the parser sees the schema right now.
    func isStored(_ table: String) -> Bool {
        guard let connection, let modules else { return true }
        let lower = table.lowercased()
        if AuthorizerAction.schemaTables.contains(lower) || modules.contains(lower) { return true }
        // With a NULL column name this only checks that the table exists; it fails for CTE names.
        return sqlite3_table_column_metadata(connection, "main", table, nil, nil, nil, nil, nil, nil) == SQLITE_OK
    }
}

/// How one `sqlite3_set_authorizer` action is treated, independent of any grant.
enum AuthorizerAction: Equatable {
    /// Needs no grant (`SELECT` itself, recursive CTEs, ordinary functions, schema bookkeeping).
    case allow
    /// Refused whatever the grants say.
    case refuse(String)
    /// Allowed if the mediator allows this access.
    case access(DatabaseAccess)

    /// The schema tables. SQLite itself writes to them while creating or dropping objects (the
    /// `CREATE`/`DROP` action is authorized separately; defensive mode and the refused `PRAGMA`s keep a
    /// guest from writing them directly). Reading them is reading the schema: it needs a read grant on
    /// `sqlite_master`, except SQLite's own bookkeeping reads during a schema change.
    static let schemaTables: Set<String> = ["sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"]
    /// Functions that reach outside the database.
    static let refusedFunctions: Set<String> = ["load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"]

    static func classify(action: Int32, _ first: String?, _ second: String?, database: String?) -> AuthorizerAction {
        // For ALTER TABLE, SQLite names the database first and the table second; the slot other calls name the
        // database in holds the column a DROP COLUMN drops (it was refused as "'price' is not reachable").
        if action == SQLITE_ALTER_TABLE {
            if let first, first != "main" { return .refuse("only the main database is reachable ('\(first)' is not)") }
            return on(second, .schema)
        }
        if let database, database != "main" {
            return .refuse("only the main database is reachable ('\(database)' is not)")
        }
        func on(_ table: String?, _ operation: DatabaseOperation) -> AuthorizerAction {
            guard let table, !table.isEmpty else { return .refuse("an operation without a table name is refused") }
            return .access(DatabaseAccess(table: table, operation: operation))
        }
        func write(_ table: String?, _ operation: DatabaseOperation) -> AuthorizerAction {
            if let table, schemaTables.contains(table.lowercased()) { return .allow }
            return on(table, operation)
        }
        switch action {
        case SQLITE_SELECT, SQLITE_RECURSIVE:
            return .allow
        case SQLITE_READ:
            return on(first, .read)
        case SQLITE_INSERT:
            return write(first, .insert)
        case SQLITE_UPDATE:
            return write(first, .update)
        case SQLITE_DELETE:
            return write(first, .delete)
        case SQLITE_CREATE_TABLE, SQLITE_DROP_TABLE, SQLITE_CREATE_VIEW, SQLITE_DROP_VIEW, SQLITE_ANALYZE, SQLITE_REINDEX:
            return on(first, .schema)
        case SQLITE_CREATE_TRIGGER:
            // A trigger is SQL stored now and run later, on whatever connection next writes its table, under
            // that writer's grants (another agent's, or the owner's own application, which has none): a guest
            // with `schema` on one table could plant one that copies or deletes tables it may not touch, and
            // SQLite does not decide the body's tables until the trigger fires. Triggers are the operator's.
            return .refuse("creating a trigger is refused: its SQL would run later under another writer's grants")
        case SQLITE_DROP_TRIGGER:
            // The operator's triggers guard and record what the table's writers do: a guest does not switch them off
            // (dropping the whole table, which its `schema` grant allows, takes them with it, visibly).
            return .refuse("dropping a trigger is refused: triggers are the database owner's")
        case SQLITE_CREATE_INDEX, SQLITE_DROP_INDEX, SQLITE_ALTER_TABLE:
            return on(second, .schema)
        case SQLITE_FUNCTION:
            let name = (second ?? "").lowercased()
            return refusedFunctions.contains(name) ? .refuse("the SQL function \(name)() is refused") : .allow
        case SQLITE_PRAGMA:
            return .refuse("PRAGMA \(first ?? "") is refused")
        case SQLITE_ATTACH:
            return .refuse("ATTACH is refused")
        case SQLITE_DETACH:
            return .refuse("DETACH is refused")
        case SQLITE_TRANSACTION, SQLITE_SAVEPOINT:
            return .refuse("transactions are refused: each statement commits on its own")
        case SQLITE_CREATE_VTABLE, SQLITE_DROP_VTABLE:
            return .refuse("virtual tables are refused")
        case SQLITE_CREATE_TEMP_TABLE, SQLITE_CREATE_TEMP_INDEX, SQLITE_CREATE_TEMP_TRIGGER, SQLITE_CREATE_TEMP_VIEW,
             SQLITE_DROP_TEMP_TABLE, SQLITE_DROP_TEMP_INDEX, SQLITE_DROP_TEMP_TRIGGER, SQLITE_DROP_TEMP_VIEW:
            return .refuse("temporary objects are refused")
        default:
            return .refuse("SQLite operation \(action) is refused")
        }
    }
}

private func authorizerCallback(
    _ userData: UnsafeMutableRawPointer?,
    _ action: Int32,
    _ first: UnsafePointer<CChar>?,
    _ second: UnsafePointer<CChar>?,
    _ database: UnsafePointer<CChar>?,
    _ trigger: UnsafePointer<CChar>?
) -> Int32 {
    guard let userData else { return SQLITE_DENY }
    let context = Unmanaged<AuthorizerContext>.fromOpaque(userData).takeUnretainedValue()
    return context.decide(
        action: action, first.map { String(cString: $0) }, second.map { String(cString: $0) },
        database: database.map { String(cString: $0) }, through: trigger.map { String(cString: $0) })
}

/// SQLite's pre-update hook: asks about each row delete (see ``AuthorizerContext/rowWillBeDeleted(from:)``)
/// and interrupts the statement on a refusal (its transaction is rolled back either way).
private func preUpdateCallback(
    _ userData: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ operation: Int32,
    _ database: UnsafePointer<CChar>?, _ table: UnsafePointer<CChar>?, _ key: sqlite3_int64, _ newKey: sqlite3_int64
) {
    guard operation == SQLITE_DELETE, let userData else { return }
    let context = Unmanaged<AuthorizerContext>.fromOpaque(userData).takeUnretainedValue()
    if context.internalStatement { return }
    guard let table else {
        if let connection { sqlite3_interrupt(connection) }
        return
    }
    if !context.rowWillBeDeleted(from: String(cString: table)), let connection {
        sqlite3_interrupt(connection)
    }
}

/// The first word of an SQL text, ASCII-lowercased, after white space and comments (`--` to the end of the
/// line, `/* ... */`); empty when it does not start with a letter.
func firstKeyword(of sql: UnsafeBufferPointer<UInt8>) -> String {
    var index = 0
    let count = sql.count
    func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
    while index < count {
        if isSpace(sql[index]) {
            index += 1
        } else if sql[index] == UInt8(ascii: "-"), index + 1 < count, sql[index + 1] == UInt8(ascii: "-") {
            while index < count, sql[index] != 0x0A { index += 1 }
        } else if sql[index] == UInt8(ascii: "/"), index + 1 < count, sql[index + 1] == UInt8(ascii: "*") {
            index += 2
            while index < count, !(sql[index] == UInt8(ascii: "*") && index + 1 < count && sql[index + 1] == UInt8(ascii: "/")) {
                index += 1
            }
            index = min(count, index + 2)
        } else {
            break
        }
    }
    var word: [UInt8] = []
    while index < count, word.count < 16 {
        let byte = sql[index] | 0x20
        guard (0x61...0x7A).contains(byte) else { break }
        word.append(byte)
        index += 1
    }
    return String(decoding: word, as: UTF8.self)
}

/// `text` with A-Z lowercased and every other byte kept: how SQLite compares identifiers.
func asciiLowercased(_ text: String) -> String {
    guard text.utf8.contains(where: { (0x41...0x5A).contains($0) }) else { return text }
    return String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
}

private func progressCallback(_ userData: UnsafeMutableRawPointer?) -> Int32 {
    guard let userData else { return 1 }
    let context = Unmanaged<AuthorizerContext>.fromOpaque(userData).takeUnretainedValue()
    guard let deadline = context.deadline else { return 0 }
    return ContinuousClock.now >= deadline ? 1 : 0
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the bind call returns.
private let transientDestructor = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension DatabaseValue {
    /// What the value costs the host, counted against a query's byte cap: the cell itself (every cell,
    /// NULL included, takes a whole `DatabaseValue` in the row) plus its text or blob bytes.
    var byteCount: Int {
        let cell = MemoryLayout<DatabaseValue>.stride
        switch self {
        case .null, .integer, .real: return cell
        case .text(let text): return cell + text.utf8.count
        case .blob(let blob): return cell + blob.count
        }
    }

    /// What one row's array costs beside its cells (the array's header).
    static let rowOverhead = 32
}

extension Duration {
    /// Whole milliseconds, rounded down, saturating.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? Int.min : Int.max }
        return Int(clamping: product + attoseconds / 1_000_000_000_000_000)
    }
}

/// The information-flow labels a database carries across runs: one extended attribute per label on the
/// database file, `user.peon.label.NAME`, added before a statement of a run holding labels writes to it, and
/// acquired by every later query of it, whatever that query's own grant says.
///
/// - The whole database, not its rows: SQLite keeps nothing per row that we could trust, so a database is
///   labelled by everything labelled that was ever written to it (it errs towards labelling).
/// - One attribute per label: two runs labelling one database at once each add their own, and neither can
///   lose the other's (one attribute holding a list would need a read-modify-write). Adding one that exists
///   changes nothing.
/// - By path, not by a descriptor of our own: SQLite holds the file with POSIX locks, which the close of any
///   other descriptor of this process on that file would drop. The path is the one SQLite opened, from the
///   operator's `--db NAME=PATH`, never from a guest.
/// - The file's `user.peon.labels` (``FileLabels``, e.g. a database file written through `fs`) counts too.
/// - A file system without user attributes cannot hold labels: a labelled write fails closed with `io`, and a
///   read finds none (nothing labelled can have been written there). A damaged attribute fails the query.
enum DatabaseLabels {
    /// The labels on the database file at `file`, sorted.
    static func read(file: String, database: String) throws(HostError) -> [String] {
        try FileLabels.read(.path(file), what: "database '\(database)'")
    }

    /// Adds `labels` to the database file at `file` (those it lacks); `io` when the file system cannot
    /// record one, and then the statement does not run.
    static func add(_ labels: [String], file: String, database: String, call: String) throws(HostError) {
        try FileLabels.add(labels, to: .path(file), what: "\(call) on database '\(database)'")
    }
}
