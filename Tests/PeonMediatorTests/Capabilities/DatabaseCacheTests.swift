import CSQLite
import Foundation
@testable import PeonMediator
import PeonInterface
import Testing

/// The connection and statement cache: a statement is compiled once per policy version and reused, but
/// every access it makes is decided again on every use, so a cached statement never reaches a table the
/// current call's grants do not cover.
@Suite struct DatabaseCacheTests {
    typealias Grant = DatabaseTests.Grant
    static let ordersRead = DatabaseAccess(table: "orders", operation: .read)

    @Test func aStatementIsCompiledOnceAndEveryUseDecidesItsAccessesAgain() throws {
        try DatabaseTests.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let sql = "SELECT item FROM orders WHERE id = ?"
            var items: [[[DatabaseValue]]] = []
            for id in 1...3 {
                let statement = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check)
                #expect(statement.accesses == [Self.ordersRead])
                items.append(try statement.query([.integer(Int64(id))], maxRows: 10, maxBytes: 1000).rows)
            }
            #expect(items == [[[.text("apple")]], [[.text("pear")]], [[.text("plum")]]])
            #expect(fixture.capability.cacheCounters == .init(compiled: 1, reused: 2))
            #expect(grant.asked == [Self.ordersRead, Self.ordersRead, Self.ordersRead], "asked once per call")
        }
    }

    /// Two SQL texts Swift calls equal (a precomposed `é` and `e` + U+0301) name two different tables for SQLite: the
    /// statement compiled for one must never run for the other, which is decided (and here denied) on its own.
    @Test func aCanonicallyEquivalentSQLTextIsCompiledOnItsOwn() throws {
        try DatabaseTests.withFixture { fixture in
            let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
            DatabaseMediationTests.outside(fixture.path, "CREATE TABLE \"\(composed)\" (x); INSERT INTO \"\(composed)\" VALUES ('granted');"
                + "CREATE TABLE \"\(decomposed)\" (x); INSERT INTO \"\(decomposed)\" VALUES ('other')")
            let grant = Grant([(composed, .read)])
            let granted = "SELECT x FROM \"\(composed)\"", other = "SELECT x FROM \"\(decomposed)\""
            #expect(granted == other, "Swift calls the two texts equal")
            let rows = try fixture.capability.prepare(database: "app", sql: granted, policyVersion: "v1", authorize: grant.check)
                .query([], maxRows: 10, maxBytes: 1000).rows
            #expect(rows == [[.text("granted")]])
            let error = hostError { () throws(HostError) in
                _ = try fixture.capability.prepare(database: "app", sql: other, policyVersion: "v1", authorize: grant.check)
                    .query([], maxRows: 10, maxBytes: 1000)
            }
            #expect(error?.code == .denied, "the other table is not granted: \(String(describing: error))")
            #expect(fixture.capability.cacheCounters.reused == 0)
            // In one statement, the decision made for the granted table is not reused for the other one.
            let join = Grant([(composed, .read)])
            let joined = hostError { () throws(HostError) in
                _ = try fixture.capability.prepare(database: "app", sql: "SELECT a.x, b.x FROM \"\(composed)\" a, \"\(decomposed)\" b",
                                                   policyVersion: "v1", authorize: join.check).query([], maxRows: 10, maxBytes: 1000)
            }
            #expect(joined?.code == .denied, "\(String(describing: joined))")
            #expect(join.asked.contains { $0.table.utf8.elementsEqual(decomposed.utf8) }, "the other table was asked about")
        }
    }

    @Test func anotherPolicyVersionCompilesTheStatementAgain() throws {
        try DatabaseTests.withFixture { fixture in
            let grant = Grant([("orders", .read)])
            let sql = "SELECT count(*) FROM orders"
            for version in ["v1", "v2", "v2", "v1"] {
                let statement = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: version, authorize: grant.check)
                #expect(try statement.query([], maxRows: 10, maxBytes: 1000).rows == [[.integer(3)]])
            }
            #expect(fixture.capability.cacheCounters == .init(compiled: 3, reused: 1))
        }
    }

    @Test func aCachedStatementWhoseTableIsNoLongerGrantedIsDeniedBeforeItRuns() throws {
        try DatabaseTests.withFixture { fixture in
            let sql = "DELETE FROM orders WHERE id = ?"
            let granted = Grant([("orders", .read), ("orders", .delete)])
            _ = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: granted.check)
            let before = fixture.dump()
            let revoked = Grant([("orders", .read)])
            let error = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: revoked.check)
                    .execute([.integer(1)])
            }
            #expect(error?.code == .denied)
            #expect(error?.message.contains("delete on 'orders'") == true, "\(String(describing: error))")
            #expect(revoked.asked.contains(DatabaseAccess(table: "orders", operation: .delete)))
            #expect(fixture.dump() == before)
        }
    }

    /// Another connection redefines a view between two uses: SQLite re-prepares the cached statement
    /// while it runs and reports the new table, and every later use asks about that table before running.
    @Test func aTableAReprepareReportsIsAskedOnEveryLaterUse() throws {
        try DatabaseTests.withFixture { fixture in
            DatabaseMediationTests.outside(fixture.path, "CREATE VIEW w AS SELECT item AS x FROM orders")
            let grant = Grant([("w", .read), ("orders", .read), ("secrets", .read)])
            let sql = "SELECT x FROM w"
            _ = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check)
                .query([], maxRows: 10, maxBytes: 1000)
            #expect(!grant.asked.contains(DatabaseAccess(table: "secrets", operation: .read)))
            DatabaseMediationTests.outside(fixture.path, "DROP VIEW w; CREATE VIEW w AS SELECT token AS x FROM secrets")
            let second = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check)
                .query([], maxRows: 10, maxBytes: 1000)
            #expect(second.rows == [[.text("hunter2")]])
            let third = Grant([("w", .read), ("orders", .read)])
            let error = hostError { () throws(HostError) in
                try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: third.check)
            }
            #expect(error?.code == .denied, "\(String(describing: error))")
            #expect(third.asked.contains(DatabaseAccess(table: "secrets", operation: .read)))
        }
    }

    @Test func statementsThatChangeTheSchemaAreNeverCached() throws {
        try DatabaseTests.withFixture { fixture in
            let grant = Grant([("notes", .schema)])
            for _ in 0..<2 {
                _ = try fixture.capability.prepare(database: "app", sql: "CREATE TABLE notes(body TEXT)", policyVersion: "v1", authorize: grant.check)
            }
            #expect(fixture.capability.cacheCounters == .init(compiled: 2, reused: 0))
        }
    }

    @Test func twoStatementsInUseAtOnceEachHaveTheirOwnConnection() throws {
        try DatabaseTests.withFixture { fixture in
            let grant = Grant([("orders", .read), ("customers", .read)])
            let sql = "SELECT count(*) FROM orders"
            let first = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check)
            // The first still holds its connection (and its statement): the same SQL compiles again elsewhere.
            let second = try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check)
            let other = try fixture.capability.prepare(database: "app", sql: "SELECT name FROM customers", policyVersion: "v1", authorize: grant.check)
            #expect(try second.query([], maxRows: 10, maxBytes: 1000).rows == [[.integer(3)]])
            #expect(try other.query([], maxRows: 10, maxBytes: 1000).rows == [[.text("ada")]])
            #expect(try first.query([], maxRows: 10, maxBytes: 1000).rows == [[.integer(3)]])
            #expect(fixture.capability.cacheCounters == .init(compiled: 3, reused: 0))
        }
    }

    /// A statement that can write runs in the capability's own transaction, whose `BEGIN`, `COMMIT` and `ROLLBACK` are
    /// compiled once per connection rather than once per call (compiling them cost more than running them). They keep
    /// working after a rolled-back statement and after another connection changed the schema, and a failed write still
    /// leaves nothing behind.
    @Test func theTransactionStatementsAreCompiledOncePerConnection() throws {
        try DatabaseTests.withFixture { fixture in
            let grant = Grant([("orders", .insert), ("orders", .delete)])
            let insert = "INSERT INTO orders(item, amount) VALUES (?, 1.0)"
            func write(_ sql: String, _ parameters: [DatabaseValue]) throws(HostError) -> UInt64 {
                try fixture.capability.prepare(database: "app", sql: sql, policyVersion: "v1", authorize: grant.check).execute(parameters)
            }
            for item in ["fig", "kiwi", "lime"] {
                let changed = try write(insert, [.text(item)])
                #expect(changed == 1)
            }
            // A constraint violation: the statement's transaction is rolled back.
            let failed = hostError { () throws(HostError) in
                try write("INSERT INTO orders(id, item, amount) VALUES (1, 'duplicate', 0)", [])
            }
            #expect(failed?.code == .invalidArgument, "\(String(describing: failed))")
            // Another connection changes the schema; the kept transaction statements still run.
            DatabaseMediationTests.outside(fixture.path, "CREATE TABLE extra(x)")
            let changed = try write(insert, [.text("date")])
            #expect(changed == 1)
            let orders = fixture.dump().filter { $0.hasSuffix("|1.0") }
            #expect(orders == ["4|fig|1.0", "5|kiwi|1.0", "6|lime|1.0", "7|date|1.0"])
            #expect(!fixture.dump().contains { $0.contains("duplicate") })
            #expect(fixture.capability.cacheCounters.transactionStatements == 3, "BEGIN, COMMIT and ROLLBACK, once each on the one connection")
            #expect(fixture.capability.cacheCounters.reused == 3, "the four inserts shared one connection")
        }
    }
}
