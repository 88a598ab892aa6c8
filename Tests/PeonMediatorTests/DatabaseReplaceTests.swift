import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: a grant to insert (or update) deletes rows after all. SQLite's `REPLACE` conflict resolution
/// (`INSERT OR REPLACE`, `REPLACE INTO`, `UPDATE OR REPLACE`, a column declared `ON CONFLICT REPLACE`)
/// deletes the rows in the way without ever telling the authorizer; and a read that names no column
/// (`SELECT count(*) FROM SECRETS`) reaches the authorizer spelled as the guest typed it, so a deny rule
/// or a labelled grant on `secrets` would not see it.
@Suite struct DatabaseReplaceTests {
    static let insertOnly = """
        module = "writer"

        [[db]]
        database = "shop"
        tables = ["items", "pinned"]
        allow = ["read", "insert", "update"]
        """

    static func makeDatabase(_ scratch: Scratch) throws -> String {
        let path = scratch.path + "/shop.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        defer { sqlite3_close(handle) }
        let schema = """
            CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
            INSERT INTO items VALUES (1, 'first'), (2, 'second');
            CREATE TABLE pinned(id INTEGER PRIMARY KEY ON CONFLICT REPLACE, name TEXT);
            INSERT INTO pinned VALUES (1, 'kept');
            CREATE TABLE secrets(token TEXT); INSERT INTO secrets VALUES ('hunter2');
            """
        guard sqlite3_exec(handle, schema, nil, nil, nil) == SQLITE_OK else { throw HostError(.io, "fixture schema") }
        return path
    }

    /// The rows of `table`, as `id=name`, read outside the mediator.
    static func rows(_ path: String, _ table: String) -> [String] {
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { return [] }
        defer { sqlite3_close(handle) }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, "SELECT id, name FROM \(table) ORDER BY id", -1, &statement, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_finalize(statement) }
        var rows: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            let name = sqlite3_column_text(statement, 1).map { String(cString: $0) } ?? "NULL"
            rows.append("\(sqlite3_column_int64(statement, 0))=\(name)")
        }
        return rows
    }

    @Test(arguments: [
        ("INSERT OR REPLACE INTO items VALUES (1, 'overwritten')", "items"),
        ("REPLACE INTO items VALUES (2, 'gone')", "items"),
        ("UPDATE OR REPLACE items SET id = 1 WHERE id = 2", "items"),
        ("INSERT INTO pinned VALUES (1, 'replaced')", "pinned"),
    ])
    func aReplaceThatWouldDeleteARowNeedsTheDeleteGrant(sql: String, table: String) throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let before = Self.rows(path, table)
        let harness = try Harness(grants: Self.insertOnly, scratch: scratch, databases: ["shop": path])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "shop", sql: sql, parameters: [])
        }
        #expect(error?.code == .denied, "\(String(describing: error))")
        #expect(Self.rows(path, table) == before, "nothing the statement did reached the file")
        let decisions = try harness.decisions("db.execute")
        // The insert or update on the table was allowed; the refusal on it is the delete REPLACE would make.
        let onTable = decisions.filter { $0.resource == "db:shop/\(table)" }
        #expect(onTable.last?.decision == .deny, "\(onTable.map(\.reason))")
        #expect(onTable.count >= 2 && onTable.dropLast().allSatisfy { $0.decision == .allow })
        #expect(onTable.last?.reason.contains("db.delete") == true, "\(onTable.last?.reason ?? "")")
    }

    @Test func withTheDeleteGrantAReplaceRunsAndItsDeleteIsLogged() throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let harness = try Harness(grants: Self.insertOnly.replacingOccurrences(of: "\"update\"]", with: "\"update\", \"delete\"]"),
                                  scratch: scratch, databases: ["shop": path])
        #expect(try harness.mediator.execute(database: "shop", sql: "INSERT OR REPLACE INTO items VALUES (1, 'new')", parameters: []) == 1)
        #expect(Self.rows(path, "items") == ["1=new", "2=second"])
        // A plain insert of a new row deletes nothing and asks nothing more.
        #expect(try harness.mediator.execute(database: "shop", sql: "INSERT OR REPLACE INTO items VALUES (3, 'third')", parameters: []) == 1)
        let outcomes = try harness.entries().map(\.record).filter { $0.call == "db.execute" && $0.decision == nil }
        #expect(outcomes.first?.details["accesses"]?.contains("db.delete items") == true, "\(outcomes.first?.details ?? [:])")
    }

    @Test func aPlainInsertAndAnUpsertStillNeedOnlyTheirOwnGrants() throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let harness = try Harness(grants: Self.insertOnly, scratch: scratch, databases: ["shop": path])
        #expect(try harness.mediator.execute(database: "shop", sql: "INSERT INTO items VALUES (3, 'third')", parameters: []) == 1)
        #expect(try harness.mediator.execute(
            database: "shop", sql: "INSERT INTO items VALUES (1, 'x') ON CONFLICT(id) DO UPDATE SET name = 'upserted'", parameters: []) == 1)
        #expect(Self.rows(path, "items") == ["1=upserted", "2=second", "3=third"])
        #expect(try harness.decisions("db.execute").allSatisfy { $0.decision == .allow })
    }

    static let denySecrets = (
        model: """
            [request_definition]
            r = sub, obj, act

            [policy_definition]
            p = sub, obj, act, eft

            [policy_effect]
            e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

            [matchers]
            m = r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act
            """,
        policy: """
            p, agent, db:shop, db.open, allow
            p, agent, db:shop/*, db.read, allow
            p, agent, db:shop/secrets, db.read, deny
            """)

    @Test(arguments: [
        "SELECT count(*) FROM SECRETS", "SELECT count(*) FROM \"Secrets\"", "SELECT 1 FROM SECRETS",
        "SELECT EXISTS (SELECT 1 FROM sEcReTs)", "SELECT count(*) FROM main.SECRETS",
    ])
    func aTableIsDecidedOnItsStoredNameHoweverTheGuestSpellsIt(sql: String) throws {
        let scratch = try Scratch()
        let path = try Self.makeDatabase(scratch)
        let model = try scratch.file("model.conf", Self.denySecrets.model)
        let policy = try scratch.file("policy.csv", Self.denySecrets.policy)
        let snapshot = try PolicySnapshot.load(PolicySources(modelPath: model, policyPath: policy), defaultModule: "agent")
        let harness = try Harness(scratch: scratch, databases: ["shop": path], configure: { configuration in
            configuration.policy = MediatorPolicyStore(snapshot)
        })
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "shop", sql: sql, parameters: [])
        }
        #expect(error?.code == .denied, "\(sql): \(String(describing: error))")
        let resources = try harness.decisions("db.query").map(\.resource)
        #expect(!resources.contains { $0.hasPrefix("db:shop/") && $0 != "db:shop/secrets" }, "\(resources)")
        // Spelled as stored, a granted table is still read.
        let rows = try harness.mediator.query(database: "shop", sql: "SELECT count(*) FROM ITEMS", parameters: [])
        #expect(rows.rows == [[.integer(2)]])
        #expect(try harness.decisions("db.query").last?.resource == "db:shop/items")
    }
}
