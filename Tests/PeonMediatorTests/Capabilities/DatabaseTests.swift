import CSQLite
import Foundation
@testable import PeonMediator
import PeonInterface
import PeonTestSupport
import Testing

/// Threat: a guest with a read grant on `orders` writes to it, reads `secrets` directly or through a
/// view or trigger, attaches another file, flips a `PRAGMA`, smuggles a second statement, injects SQL
/// through a parameter, or runs a query forever. The fixture database:
///
/// ```
/// orders(id INTEGER PRIMARY KEY, item TEXT, amount REAL)    3 rows      granted (read, per test more)
/// customers(id INTEGER PRIMARY KEY, name TEXT)              1 row       granted in some tests
/// secrets(token TEXT)                                       1 row       never granted
/// secret_view AS SELECT token FROM secrets                              granted "read" in one test
/// audit_trail(note TEXT) + trigger on customers inserts into it         never granted
/// ```
@Suite struct DatabaseTests {
    struct Fixture {
        let path: String
        let directory: String
        let capability: DatabaseCapability

        init(directory: URL, statementTimeout: Duration = .seconds(30)) throws {
            self.directory = directory.path
            path = directory.path + "/app.db"
            var handle: OpaquePointer?
            guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
            defer { sqlite3_close(handle) }
            let schema = """
                CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, amount REAL);
                INSERT INTO orders(item, amount) VALUES ('apple', 1.5), ('pear', 2.0), ('plum', 3.25);
                CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
                INSERT INTO customers(name) VALUES ('ada');
                CREATE TABLE secrets(token TEXT);
                INSERT INTO secrets VALUES ('hunter2');
                CREATE VIEW secret_view AS SELECT token FROM secrets;
                CREATE TABLE audit_trail(note TEXT);
                CREATE TRIGGER log_customer AFTER INSERT ON customers BEGIN INSERT INTO audit_trail VALUES (new.name); END;
                """
            guard sqlite3_exec(handle, schema, nil, nil, nil) == SQLITE_OK else { throw HostError(.io, "fixture schema") }
            capability = DatabaseCapability(databases: ["app": path], statementTimeout: statementTimeout)
        }

        /// The whole database as text, for "nothing changed" checks (read with no authorizer).
        func dump() -> [String] {
            var handle: OpaquePointer?
            guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK, let handle else { return ["<unopenable>"] }
            defer { sqlite3_close(handle) }
            var lines: [String] = []
            for sql in ["SELECT type || ':' || name FROM sqlite_schema ORDER BY name",
                        "SELECT * FROM orders", "SELECT * FROM customers", "SELECT * FROM secrets", "SELECT * FROM audit_trail"] {
                var statement: OpaquePointer?
                guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else { lines.append("<missing: \(sql)>"); continue }
                defer { sqlite3_finalize(statement) }
                while sqlite3_step(statement) == SQLITE_ROW {
                    let columns = (0..<sqlite3_column_count(statement)).map { index in
                        sqlite3_column_text(statement, index).map { String(cString: $0) } ?? "NULL"
                    }
                    lines.append(columns.joined(separator: "|"))
                }
            }
            return lines
        }
    }

    /// A grant as a set of accesses, recording every question.
    final class Grant {
        let allowed: Set<DatabaseAccess>
        var asked: [DatabaseAccess] = []
        init(_ allowed: [(String, DatabaseOperation)]) {
            self.allowed = Set(allowed.map { DatabaseAccess(table: $0.0, operation: $0.1) })
        }
        func check(_ access: DatabaseAccess) -> Bool {
            asked.append(access)
            return allowed.contains(access)
        }
    }

    static func withFixture(statementTimeout: Duration = .seconds(30), _ body: (Fixture) throws -> Void) throws {
        try withTemporaryDirectory { url in try body(try Fixture(directory: url, statementTimeout: statementTimeout)) }
    }

    @Test func aGrantedReadReturnsRowsAndReportsItsAccesses() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let statement = try fixture.capability.prepare(database: "app", sql: "SELECT item, amount FROM orders WHERE amount > ? ORDER BY id", authorize: grant.check)
            #expect(statement.accesses == [DatabaseAccess(table: "orders", operation: .read)])
            #expect(statement.isReadOnly)
            let rows = try statement.query([.real(1.6)], maxRows: 10, maxBytes: 1000)
            #expect(rows.columns == ["item", "amount"])
            #expect(rows.rows == [[.text("pear"), .real(2.0)], [.text("plum"), .real(3.25)]])
        }
    }

    @Test func anUngrantedTableIsDeniedAndNamed() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let error = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: "SELECT o.item, s.token FROM orders o, secrets s", authorize: grant.check)
            }
            #expect(error?.code == .denied)
            #expect(error?.message.contains("read on 'secrets'") == true)
        }
    }

    @Test(arguments: [
        ("INSERT INTO orders(item, amount) VALUES ('x', 1)", "insert on 'orders'"),
        ("UPDATE orders SET amount = 0", "update on 'orders'"),
        ("DELETE FROM orders", "delete on 'orders'"),
        ("DROP TABLE orders", "schema on 'orders'"),
        ("ALTER TABLE orders ADD COLUMN x", "schema on 'orders'"),
        ("CREATE INDEX idx ON orders(item)", "schema on 'orders'"),
        ("CREATE TABLE extra(x)", "schema on 'extra'"),
        ("REPLACE INTO orders(id, item) VALUES (1, 'x')", "on 'orders'"),
        ("INSERT INTO orders SELECT * FROM orders", "insert on 'orders'"),
    ])
    func aWriteOnAReadOnlyGrantIsDeniedAndChangesNothing(sql: String, named: String) throws {
        try Self.withFixture { fixture in
            let before = fixture.dump()
            let grant = Grant([("orders", .read)])
            let error = hostError { () throws(HostError) in
                let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: grant.check)
                return try statement.execute([])
            }
            #expect(error?.code == .denied)
            #expect(error?.message.contains(named) == true)
            #expect(fixture.dump() == before)
        }
    }

    @Test(arguments: [
        "ATTACH DATABASE 'other.db' AS other",
        "ATTACH 'file:other.db?mode=rwc' AS other",
        "DETACH DATABASE main",
        "PRAGMA writable_schema = 1",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA table_info(orders)",
        "PRAGMA main.user_version = 7",
        "SELECT * FROM pragma_table_info('orders')",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT fts3_tokenizer('simple')",
        "SELECT hex(fts3_tokenizer('evil', x'0000000000000000'))",
        "BEGIN",
        "SAVEPOINT s",
        "CREATE TEMP TABLE t(x)",
        "CREATE VIRTUAL TABLE v USING fts5(x)",
        "VACUUM",
        "VACUUM INTO 'copy.db'",
        "SELECT * FROM temp.sqlite_master",
    ])
    func aRefusedStatementIsDeniedEvenWhenEveryTableAccessIsAllowed(sql: String) throws {
        try Self.withFixture { fixture in
            let before = fixture.dump()
            let files = try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted()
            let error = hostError { () throws(HostError) in
                let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: { _ in true })
                return try statement.execute([])
            }
            #expect(error?.code == .denied)
            #expect(fixture.dump() == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted() == files)
        }
    }

    @Test(arguments: [
        "SELECT 1; DROP TABLE orders",
        "SELECT 1;DROP TABLE orders;",
        "SELECT 1; SELECT 2",
        "SELECT 1; garbage that does not parse",
    ])
    func aSecondStatementIsRefusedAndNeverRuns(sql: String) throws {
        try Self.withFixture { fixture in
            let before = fixture.dump()
            let grant = Grant([("orders", .read), ("orders", .schema), ("orders", .delete)])
            let error = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: sql, authorize: grant.check)
            }
            #expect(error?.code == .invalidArgument)
            #expect(!grant.asked.contains(DatabaseAccess(table: "orders", operation: .schema)))
            #expect(fixture.dump() == before)
        }
    }

    @Test(arguments: ["SELECT 1;", "SELECT 1; -- trailing comment", "SELECT 1 /* c */ ; /* c */ ;  \n"])
    func trailingSeparatorsAndCommentsAreNotASecondStatement(sql: String) throws {
        try Self.withFixture { fixture in
            let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: { _ in false })
            #expect(try statement.query([], maxRows: 1, maxBytes: 100).rows == [[.integer(1)]])
        }
    }

    /// A guest with `schema` on `customers` plants a trigger whose body copies `secrets` into `orders` and empties it.
    /// SQLite decides the body's tables only when the trigger fires, on whoever's connection writes `customers`
    /// next (another agent with wider grants, or the owner's own application): it was created, logged as a schema
    /// change of `customers` only. Found by a red-team pass. Refused now, whatever the grants say, and so is dropping
    /// the owner's triggers.
    @Test func aGuestCannotPlantATrigger() throws {
        try Self.withFixture { fixture in
            let before = fixture.dump()
            for sql in [
                "CREATE TRIGGER plant AFTER INSERT ON customers BEGIN INSERT INTO orders(item) SELECT token FROM secrets; DELETE FROM secrets; END",
                "CREATE TRIGGER IF NOT EXISTS main.plant BEFORE UPDATE ON customers BEGIN SELECT 1; END",
            ] {
                let error = hostError { () throws(HostError) in
                    let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: { _ in true })
                    return try statement.execute([])
                }
                #expect(error?.code == .denied, "\(sql)")
                #expect(error?.message.contains("trigger") == true, "\(String(describing: error))")
            }
            #expect(fixture.dump() == before)
            // Nor drop one the owner set (a guard, an audit trail), even with `schema` on its table.
            let drop = hostError { () throws(HostError) in
                let statement = try fixture.capability.prepare(database: "app", sql: "DROP TRIGGER log_customer", authorize: { _ in true })
                return try statement.execute([])
            }
            #expect(drop?.code == .denied && drop?.message.contains("trigger") == true, "\(String(describing: drop))")
            #expect(fixture.dump() == before)
            // Dropping the table itself, which `schema` on it allows, takes its triggers with it (found by a newcomer:
            // it was refused as "dropping a trigger").
            let grant = Grant([("customers", .schema), ("customers", .delete)])
            let statement = try fixture.capability.prepare(database: "app", sql: "DROP TABLE customers", authorize: grant.check)
            _ = try statement.execute([])
            #expect(!fixture.dump().contains("trigger:log_customer"), "\(fixture.dump())")
            #expect(!fixture.dump().contains("table:customers"))
        }
    }

    /// A table created with a CHECK constraint or a generated column: SQLite reads the new table while it creates
    /// it, and that read was refused as naming no stored table, whatever the grants (found by a red-team pass).
    @Test(arguments: ["CREATE TABLE p2(a CHECK(a > 0))", "CREATE TABLE p3(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2))"])
    func aTableWithConstraintsCanBeCreated(sql: String) throws {
        try Self.withFixture { fixture in
            let table = sql.contains("p2") ? "p2" : "p3"
            let grant = Grant([(table, .schema), (table, .read)])
            let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: grant.check)
            _ = try statement.execute([])
            #expect(fixture.dump().contains("table:\(table)"))
            // Still decided: without the read grant the constraint's read is refused.
            let other = Grant([("q9", .schema)])
            let refused = hostError { () throws(HostError) in
                _ = try fixture.capability.prepare(database: "app", sql: "CREATE TABLE q9(a CHECK(a > 0))", authorize: other.check)
            }
            #expect(refused?.code == .denied, "\(String(describing: refused))")
        }
    }

    /// `ALTER TABLE … ADD COLUMN … CHECK(...)` and `… DROP COLUMN` under a `schema` grant: SQLite runs statements of
    /// its own for them (an integrity check, a rewrite of the always-empty `temp` schema), which were refused ("'pragma_quick_check'
    /// is not a table", "'amount' is not reachable"), whatever the grants (found by a regression pass).
    @Test(arguments: ["ALTER TABLE orders ADD COLUMN qty INTEGER CHECK(qty > 0)", "ALTER TABLE orders DROP COLUMN amount"])
    func aTableCanBeAlteredUnderItsSchemaGrant(sql: String) throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .schema), ("orders", .read), ("orders", .update)])
            let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: grant.check)
            _ = try statement.execute([])
            #expect(grant.asked.contains(DatabaseAccess(table: "orders", operation: .schema)))
            // Still decided on the table: without `schema` on it, refused.
            let other = Grant([("orders", .read)])
            let refused = hostError { () throws(HostError) in
                _ = try fixture.capability.prepare(database: "app", sql: "ALTER TABLE orders ADD COLUMN z INTEGER", authorize: other.check)
            }
            #expect(refused?.code == .denied)
            // A rename stays refused: `schema` on `orders` must not move its rows under a name other grants cover.
            let everything = Grant([("orders", .schema), ("orders", .read), ("orders", .update), ("pub", .schema), ("pub", .read)])
            for rename in ["ALTER TABLE orders RENAME TO pub", "ALTER TABLE orders RENAME COLUMN item TO thing"] {
                let error = hostError { () throws(HostError) in
                    let statement = try fixture.capability.prepare(database: "app", sql: rename, authorize: everything.check)
                    return try statement.execute([])
                }
                #expect(error?.code == .denied, "\(rename)")
            }
            #expect(fixture.dump().contains("table:orders"))
        }
    }

    @Test func aViewOrTriggerCannotReachAnUngrantedTable() throws {
        try Self.withFixture { fixture in
            let before = fixture.dump()
            let viewGrant = Grant([("secret_view", .read)])
            let view = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: "SELECT token FROM secret_view", authorize: viewGrant.check)
            }
            #expect(view?.code == .denied)
            // The guest is not told which table the view reads; the audit log is.
            #expect(view?.message.contains("secrets") == false)
            #expect(view?.auditMessage?.contains("'secrets'") == true)
            let triggerGrant = Grant([("customers", .insert)])
            let trigger = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: "INSERT INTO customers(name) VALUES ('eve')", authorize: triggerGrant.check)
            }
            #expect(trigger?.code == .denied)
            #expect(trigger?.message.contains("audit_trail") == false)
            #expect(trigger?.auditMessage?.contains("insert on 'audit_trail'") == true)
            #expect(fixture.dump() == before)
        }
    }

    @Test func theSchemaTableNeedsAGrantLikeAnyOtherTable() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            for sql in ["SELECT sql FROM sqlite_schema", "SELECT name FROM sqlite_master"] {
                let error = hostError { () throws(HostError) in try fixture.capability.prepare(database: "app", sql: sql, authorize: grant.check) }
                #expect(error?.code == .denied)
            }
        }
    }

    @Test func aCommonTableExpressionNeedsOnlyTheGrantsOfWhatItReads() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let statement = try fixture.capability.prepare(
                database: "app", sql: "WITH cheap AS (SELECT item FROM orders WHERE amount < 2) SELECT * FROM cheap", authorize: grant.check)
            #expect(statement.accesses == [DatabaseAccess(table: "orders", operation: .read)])
            #expect(try statement.query([], maxRows: 10, maxBytes: 100).rows == [[.text("apple")]])
            // A CTE that borrows a stored table's name reads only its own rows, never the stored table.
            let shadow = try fixture.capability.prepare(
                database: "app", sql: "WITH secrets AS (SELECT 1 AS token) SELECT token FROM secrets", authorize: grant.check)
            #expect(try shadow.query([], maxRows: 10, maxBytes: 100).rows == [[.integer(1)]])
        }
    }

    @Test func parametersAreBoundSoAnInjectionStringStaysData() throws {
        try Self.withFixture { fixture in
            let hostile = "x'); DROP TABLE customers; --"
            let grant = Grant([("customers", .insert), ("customers", .read), ("audit_trail", .insert)])
            let insert = try fixture.capability.prepare(database: "app", sql: "INSERT INTO customers(name) VALUES (?)", authorize: grant.check)
            #expect(try insert.execute([.text(hostile)]) == 1)
            let select = try fixture.capability.prepare(database: "app", sql: "SELECT name FROM customers WHERE name = ?", authorize: grant.check)
            #expect(try select.query([.text(hostile)], maxRows: 10, maxBytes: 1000).rows == [[.text(hostile)]])
            #expect(fixture.dump().contains("1|ada"))
        }
    }

    @Test func everyValueKindRoundTrips() throws {
        try Self.withFixture { fixture in
            let statement = try fixture.capability.prepare(database: "app", sql: "SELECT ?, ?, ?, ?, ?, ?", authorize: { _ in false })
            let values: [DatabaseValue] = [.null, .integer(.min), .real(-0.5), .text("é\u{0}z"), .blob([0, 255]), .blob([])]
            #expect(try statement.query(values, maxRows: 1, maxBytes: 1000).rows == [values])
        }
    }

    @Test func theWrongNumberOfParametersIsInvalidArgument() throws {
        try Self.withFixture { fixture in
            let statement = try fixture.capability.prepare(database: "app", sql: "SELECT ?", authorize: { _ in false })
            #expect(hostError { () throws(HostError) in try statement.query([], maxRows: 1, maxBytes: 100) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try statement.query([.null, .null], maxRows: 1, maxBytes: 100) }?.code == .invalidArgument)
        }
    }

    @Test func rowAndByteCapsAreLimitExceeded() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let statement = try fixture.capability.prepare(database: "app", sql: "SELECT item FROM orders", authorize: grant.check)
            #expect(try statement.query([], maxRows: 3, maxBytes: 1000).rows.count == 3)
            #expect(hostError { () throws(HostError) in try statement.query([], maxRows: 2, maxBytes: 1000) }?.code == .limitExceeded)
            #expect(hostError { () throws(HostError) in try statement.query([], maxRows: 10, maxBytes: 8) }?.code == .limitExceeded)
            let huge = try fixture.capability.prepare(database: "app", sql: "SELECT zeroblob(1000000)", authorize: grant.check)
            #expect(hostError { () throws(HostError) in try huge.query([], maxRows: 10, maxBytes: 1000) }?.code == .limitExceeded)
        }
    }

    @Test func aRunawayQueryIsInterruptedAtItsDeadline() throws {
        try Self.withFixture(statementTimeout: .milliseconds(300)) { fixture in
            let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
            let statement = try fixture.capability.prepare(database: "app", sql: sql, authorize: { _ in false })
            let start = ContinuousClock.now
            #expect(hostError { () throws(HostError) in try statement.query([], maxRows: 1, maxBytes: 100) }?.code == .timeout)
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    @Test func grantedWritesAndSchemaChangesWork() throws {
        try Self.withFixture { fixture in
            let grant = Grant([("orders", .insert), ("orders", .update), ("orders", .read), ("orders", .delete), ("notes", .schema), ("notes", .insert)])
            let update = try fixture.capability.prepare(database: "app", sql: "UPDATE orders SET amount = amount * 2 WHERE amount < ?", authorize: grant.check)
            #expect(!update.isReadOnly)
            #expect(Set(update.accesses) == [DatabaseAccess(table: "orders", operation: .update), DatabaseAccess(table: "orders", operation: .read)])
            #expect(try update.execute([.integer(3)]) == 2)
            #expect(try fixture.capability.prepare(database: "app", sql: "DELETE FROM orders WHERE id = 1", authorize: grant.check).execute([]) == 1)
            _ = try fixture.capability.prepare(database: "app", sql: "CREATE TABLE notes(body TEXT)", authorize: grant.check).execute([])
            #expect(try fixture.capability.prepare(database: "app", sql: "INSERT INTO notes VALUES (?)", authorize: grant.check).execute([.text("n")]) == 1)
        }
    }

    @Test func anUnboundNameOrMissingFileIsNotFoundAndNothingIsCreated() throws {
        try withTemporaryDirectory { url in
            let missing = url.path + "/missing.db"
            let capability = DatabaseCapability(databases: ["gone": missing])
            #expect(hostError { () throws(HostError) in try capability.prepare(database: "other", sql: "SELECT 1", authorize: { _ in true }) }?.code == .notFound)
            #expect(hostError { () throws(HostError) in try capability.prepare(database: "gone", sql: "SELECT 1", authorize: { _ in true }) }?.code == .notFound)
            #expect(!FileManager.default.fileExists(atPath: missing))
        }
    }

    @Test(arguments: ["", "   ", "-- only a comment", "SELEC 1"])
    func emptyOrMalformedSQLIsInvalidArgument(sql: String) throws {
        try Self.withFixture { fixture in
            #expect(hostError { () throws(HostError) in try fixture.capability.prepare(database: "app", sql: sql, authorize: { _ in true }) }?.code == .invalidArgument)
        }
    }
}

extension DatabaseCapability {
    /// Prepares against a database named by text, parsed the way the mediator parses it (``DatabaseName``).
    func prepare(database: String, sql: String, authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement {
        try prepare(database: DatabaseName(parsing: database), sql: sql, authorize: authorize)
    }

    /// As above, under a policy version (the statement cache keys on it).
    func prepare(database: String, sql: String, policyVersion: String,
                 authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement {
        try prepare(database: DatabaseName(parsing: database), sql: sql, policyVersion: policyVersion, authorize: authorize)
    }
}
