import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: a guest reaches a database or table nobody granted through the gaps between decisions: the
/// file is parsed before anything is logged, a statement is re-prepared after a schema change and reads
/// another table, schema rows or page statistics leak through a statement that looks like bookkeeping,
/// or a statement exhausts the host's memory or disk.
@Suite struct DatabaseMediationTests {
    static let grants = """
        module = "analyst"

        [[db]]
        database = "analytics"
        tables = ["orders", "v", "t2"]
        allow = ["read", "schema", "insert", "delete"]
        """

    static func makeDatabase(_ scratch: Scratch) throws -> String {
        let path = scratch.path + "/analytics.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        defer { sqlite3_close(handle) }
        let schema = """
            CREATE TABLE orders(id INTEGER, total REAL); INSERT INTO orders VALUES (1, 9.5);
            CREATE TABLE secrets(token TEXT DEFAULT 'default-secret'); INSERT INTO secrets VALUES ('hunter2');
            CREATE VIEW v AS SELECT id FROM orders;
            """
        guard sqlite3_exec(handle, schema, nil, nil, nil) == SQLITE_OK else { throw HostError(.io, "fixture schema") }
        return path
    }

    /// Runs `sql` on the database file directly, as another process would.
    static func outside(_ path: String, _ sql: String) {
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { return }
        defer { sqlite3_close(handle) }
        sqlite3_exec(handle, sql, nil, nil, nil)
    }

    @Test func withoutAGrantOnTheDatabaseItsFileIsNeverOpened() throws {
        let scratch = try Scratch()
        // The name is bound to a file that does not exist: opening it would answer not-found.
        let harness = try Harness(grants: "module = \"analyst\"\n", scratch: scratch,
                                  databases: ["analytics": scratch.path + "/missing.db"])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "analytics", sql: "select 1", parameters: [])
        }
        #expect(error?.code == .denied, "the open was decided (and refused) before the file was touched: \(String(describing: error))")
        let decisions = try harness.decisions("db.query")
        #expect(decisions.map(\.resource) == ["db:analytics"])
        #expect(decisions.map(\.decision) == [.deny])
    }

    @Test func theOpenDecisionIsLoggedBeforeEachTableDecision() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": try Self.makeDatabase(scratch)])
        _ = try harness.mediator.query(database: "analytics", sql: "select total from orders", parameters: [])
        let entries = try harness.entries().filter { $0.record.call == "db.query" }
        #expect(entries.map(\.record.resource) == ["db:analytics", "db:analytics/orders", "db:analytics"])
        #expect(entries.map(\.record.decision) == [.allow, .allow, nil])
        #expect(entries[1].record.details["within_seq"] == String(entries[0].seq))
    }

    /// A statement SQLite re-prepares (another connection changed the schema between prepare and step)
    /// is authorized again, and each new decision is in the log: the view now reads `secrets`, which is
    /// denied and audited, and no row of it reaches the guest.
    @Test func aReprepareAfterAViewIsRedefinedIsAuthorizedAndAuditedAgain() throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": path])
        let database = SchemaChangingDatabase(inner: DatabaseCapability(databases: ["analytics": path])) {
            Self.outside(path, "DROP VIEW v; CREATE VIEW v AS SELECT token AS id FROM secrets;")
        }
        let mediator = Mediator(harness.mediator.configuration, fileSystem: FileSystemCapability(), databases: database,
                                programs: ExecCapability(workingDirectory: scratch.path), http: UnavailableHTTP())
        let error = harness.error { () throws(HostError) in
            try mediator.query(database: "analytics", sql: "select id from v", parameters: [])
        }
        #expect(error?.code == .denied, "\(String(describing: error))")
        let decisions = try harness.decisions("db.query")
        let secrets = decisions.filter { $0.resource == "db:analytics/secrets" }
        #expect(secrets.map(\.decision) == [.deny], "the re-prepare's read of secrets was decided and logged")
        let callSeq = try #require(try harness.entries().first { $0.record.call == "db.query" && $0.record.resource == "db:analytics" }?.seq)
        #expect(secrets.first?.details["within_seq"] == String(callSeq), "the re-prepare's decision belongs to the call")
    }

    @Test(arguments: [
        "create table t2 as select sql from sqlite_master",
        "create table t2 as select name, sql from sqlite_schema",
        "create table t2 as select * from dbstat",
        "create table t2 as select * from json_each((select group_concat(sql) from sqlite_master))",
    ])
    func schemaRowsAndPageStatisticsNeedAReadGrantInsideAnyStatement(sql: String) throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": path])
        let error = harness.error { () throws(HostError) in try harness.mediator.execute(database: "analytics", sql: sql, parameters: []) }
        #expect(error?.code == .denied, "\(sql): \(String(describing: error))")
        var handle: OpaquePointer?
        #expect(sqlite3_open(path, &handle) == SQLITE_OK)
        defer { sqlite3_close(handle) }
        var statement: OpaquePointer?
        #expect(sqlite3_prepare_v2(handle, "select count(*) from sqlite_master where name = 't2'", -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_int(statement, 0) == 0, "t2 was not created")
    }

    @Test(arguments: ["select sql from sqlite_master", "select * from dbstat", "select * from json_each('[1]')",
                      "select count(*) from secrets", "select 1 from secrets limit 1", "select exists(select 1 from secrets)",
                      "select count(*) from dbstat", "select count(*) from sqlite_master"])
    func readingSchemaOrStatisticsDirectlyNeedsAGrant(sql: String) throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in try harness.mediator.query(database: "analytics", sql: sql, parameters: []) }
        #expect(error?.code == .denied, "\(sql): \(String(describing: error))")
    }

    @Test func schemaChangesThatOnlyDoBookkeepingStillWork() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": try Self.makeDatabase(scratch)])
        _ = try harness.mediator.execute(database: "analytics", sql: "create table t2 as select id from orders", parameters: [])
        _ = try harness.mediator.execute(database: "analytics", sql: "alter table t2 add column note text", parameters: [])
        _ = try harness.mediator.execute(database: "analytics", sql: "insert into t2 values (2, 'x')", parameters: [])
        _ = try harness.mediator.execute(database: "analytics", sql: "drop table t2", parameters: [])
    }

    /// 8,000 rows of 1,999 NULLs is 16 M cells: as host memory that is hundreds of MB, so it hits the
    /// 16 MiB result cap at once (it used to count 1 byte per NULL and hold 1.3 GB).
    @Test func aResultOfNullsIsCountedAsTheMemoryItTakes() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": try Self.makeDatabase(scratch)])
        let columns = Array(repeating: "NULL", count: 1999).joined(separator: ",")
        let sql = "with recursive r(n) as (select 1 union all select n + 1 from r where n < 8000) select \(columns) from r"
        let error = harness.error { () throws(HostError) in try harness.mediator.query(database: "analytics", sql: sql, parameters: []) }
        #expect(error?.code == .limitExceeded)
        #expect(error?.message.contains("larger than") == true, "\(String(describing: error))")
        #expect(DatabaseValue.null.byteCount == MemoryLayout<DatabaseValue>.stride, "a NULL costs a whole cell")
    }

    /// SQLite may not build a value larger than the result cap: a 100 MB `printf` stops inside SQLite at
    /// the limit (its `printf` then answers NULL) instead of being built whole and only then
    /// refused by the result cap; a blob past the limit fails with `limit-exceeded`.
    @Test func sqliteCannotBuildAValueLargerThanTheResultCap() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["analytics": try Self.makeDatabase(scratch)])
        let rows = try harness.mediator.query(database: "analytics", sql: "select printf('%.*c', 100000000, 'x')", parameters: [])
        #expect(rows.rows == [[.null]], "SQLite gave up at the limit instead of building 100 MB")
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "analytics", sql: "select length(zeroblob(100000000))", parameters: [])
        }
        #expect(error?.code == .limitExceeded, "\(String(describing: error))")
    }
}

/// The real database capability, with a schema change by "another connection" right after each prepare.
struct SchemaChangingDatabase: DatabaseProvider {
    let inner: DatabaseCapability
    let change: @Sendable () -> Void

    init(inner: DatabaseCapability, change: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.change = change
    }

    func prepare(database: DatabaseName, sql: String, policyVersion: String, refused: ([String]) -> Void,
                 authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement {
        let statement = try inner.prepare(database: database, sql: sql, policyVersion: policyVersion, refused: refused,
                                          authorize: authorize)
        change()
        return statement
    }
}
