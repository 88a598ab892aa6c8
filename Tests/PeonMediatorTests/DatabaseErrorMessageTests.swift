import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: SQLite's error messages tell a guest what its grants do not let it read. A granted table's
/// trigger, or a granted view, reaches a table the guest has no grant on, and the refusal names that table;
/// a trigger's `RAISE` text (written by whoever made the schema) names it; an error the guest provokes on
/// purpose echoes a name so that whether it is shortened tells the guest the name exists. The guest's
/// message keeps only names of tables the statement was allowed to touch and names the guest wrote itself;
/// the audit log keeps SQLite's whole message.
@Suite struct DatabaseErrorMessageTests {
    static let grants = """
        module = "notes-agent"

        [[db]]
        database = "app"
        tables = ["notes", "tags", "guarded", "shown", "numbered", "numbered_secrets"]
        allow = ["read", "insert"]
        """

    static func makeDatabase(_ scratch: Scratch) throws -> String {
        let path = scratch.path + "/app.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        defer { sqlite3_close(handle) }
        let schema = """
            CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, n INT CHECK (n >= 0));
            CREATE TABLE secrets(token TEXT UNIQUE, owner TEXT);
            INSERT INTO secrets VALUES ('hunter2', 'alice');
            CREATE TRIGGER notes_copy AFTER INSERT ON notes BEGIN INSERT INTO secrets(token) VALUES (NEW.body); END;
            CREATE TABLE tags(name TEXT NOT NULL UNIQUE, weight INT CHECK (weight >= 0));
            INSERT INTO tags VALUES ('first', 1);
            CREATE TABLE guarded(v INT);
            CREATE TRIGGER guarded_negative BEFORE INSERT ON guarded WHEN NEW.v < 0
                BEGIN SELECT RAISE(ABORT, 'v must not be negative'); END;
            CREATE TRIGGER guarded_large BEFORE INSERT ON guarded WHEN NEW.v > 1000
                BEGIN SELECT RAISE(ABORT, 'too large: copied to secrets.token'); END;
            CREATE TRIGGER guarded_control BEFORE INSERT ON guarded WHEN NEW.v = 13
                BEGIN SELECT RAISE(ABORT, 'line one\nline two\u{1B}[2J'); END;
            CREATE VIEW shown AS SELECT token FROM secrets;
            CREATE VIEW numbered AS SELECT row_number() OVER () AS n FROM secrets;
            CREATE VIEW numbered_secrets AS SELECT row_number() OVER () AS n FROM secrets;
            """
        guard sqlite3_exec(handle, schema, nil, nil, nil) == SQLITE_OK else {
            throw HostError(.io, "fixture schema: \(String(cString: sqlite3_errmsg(handle)))")
        }
        return path
    }

    /// The outcome entry of the last `call` (the entry that records how the call ended).
    static func lastOutcome(_ harness: Harness, _ call: String) throws -> AuditRecord? {
        try harness.entries().map(\.record).last { $0.call == call && $0.decision == nil }
    }

    /// The task's case: `notes` is granted, its trigger inserts into `secrets`, which is not. The insert is
    /// refused, and the guest is not told which table the trigger reached, nor the trigger's name; the audit
    /// log says both.
    @Test func aTriggerOfAGrantedTableReachingAnUngrantedOneDoesNotNameIt() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        // Twice: the second call finds the statement compiled before (had it succeeded), and must answer alike.
        for _ in 0..<2 {
            let error = harness.error { () throws(HostError) in
                try harness.mediator.execute(database: "app", sql: "INSERT INTO notes(body, n) VALUES ('hunter2', 1)", parameters: [])
            }
            let message = error?.message ?? ""
            #expect(error?.code == .denied, "\(String(describing: error))")
            #expect(!message.contains("secrets") && !message.contains("notes_copy"), "the guest was told: \(message)")
            #expect(message.contains("trigger or view"), "the guest is told why in general terms: \(message)")
            let outcome = try #require(try Self.lastOutcome(harness, "db.execute"))
            #expect(outcome.reason.contains("insert on 'secrets'") && outcome.reason.contains("notes_copy"),
                    "the operator's log names the table and the trigger: \(outcome.reason)")
        }
    }

    /// A granted view that reads an ungranted table: the same.
    @Test func aGrantedViewOverAnUngrantedTableDoesNotNameIt() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "app", sql: "SELECT * FROM shown", parameters: [])
        }
        #expect(error?.code == .denied)
        #expect(error.map { !$0.message.contains("secrets") && !$0.message.contains("token") } == true, "\(String(describing: error))")
    }

    /// The same through a view SQLite compiles as a subquery (one with a window function): it reports the table with
    /// no view as its source, and the refusal named `secrets` to the guest (found by a red-team pass).
    /// The text counts only where it writes the name as a whole word (as for SQLite's messages): never inside a
    /// longer one, so a comment holding every three-letter string runs together names nothing.
    @Test(arguments: ["SELECT count(*) FROM numbered", "SELECT n FROM numbered", "SELECT n FROM numbered -- xsecretsx",
                      "SELECT n FROM numbered /* asecretsecrets */", "SELECT n FROM numbered_secrets"])
    func aGrantedViewSQLiteDoesNotNameDoesNotNameItsTableEither(sql: String) throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        for _ in 0..<2 {
            let error = harness.error { () throws(HostError) in try harness.mediator.query(database: "app", sql: sql, parameters: []) }
            #expect(error?.code == .denied)
            #expect(error.map { !$0.message.contains("secrets") } == true, "\(String(describing: error))")
            let outcome = try #require(try Self.lastOutcome(harness, "db.query"))
            #expect(outcome.reason.contains("read on 'secrets'"), "the operator's log names it: \(outcome.reason)")
        }
        // A table the guest names itself is still named back, however it quotes it.
        for named in ["SELECT * FROM secrets", "SELECT * FROM \"Secrets\"", "SELECT * FROM [secrets]", "SELECT * FROM `secrets`"] {
            let error = harness.error { () throws(HostError) in try harness.mediator.query(database: "app", sql: named, parameters: []) }
            #expect(error?.message.contains("secrets") == true, "\(named): \(String(describing: error))")
        }
    }

    /// The tables the guest names itself are named back, and SQLite's messages about granted tables, and
    /// about names that exist nowhere, stay as SQLite wrote them.
    @Test(arguments: [
        ("SELECT * FROM secrets", "read on 'secrets' is not granted"),
        ("SELECT zzz FROM notes", "no such column: zzz"),
        ("SELECT * FROM nosuch", "no such table: nosuch"),
        ("INSERT INTO notes(zzz) VALUES (1)", "table notes has no column named zzz"),
        // `owner` is a column of `secrets`: shortening this message would tell the guest so.
        ("SELECT owner FROM notes", "no such column: owner"),
        ("INSERT INTO tags(name, weight) VALUES (NULL, 1)", "NOT NULL constraint failed: tags.name"),
        ("INSERT INTO tags(name, weight) VALUES ('first', 1)", "UNIQUE constraint failed: tags.name"),
        ("INSERT INTO tags(name, weight) VALUES ('second', -1)", "CHECK constraint failed: weight >= 0"),
        ("INSERT INTO guarded VALUES (-1)", "v must not be negative"),
    ])
    func messagesAboutWhatTheGuestMayTouchOrNamedItselfAreKept(sql: String, expected: String) throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "app", sql: sql, parameters: [])
        }
        #expect(error?.message.contains(expected) == true, "\(sql): \(String(describing: error))")
    }

    /// A trigger's `RAISE` text is the schema author's: kept when it names nothing outside the statement's
    /// grants, replaced by SQLite's generic text for the error code when it does. The log keeps it whole,
    /// escaped like every other log text.
    @Test func aRaiseTextNamingAnUngrantedTableIsReplaced() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "app", sql: "INSERT INTO guarded VALUES (5000)", parameters: [])
        }
        #expect(error?.code == .invalidArgument)
        let message = error?.message ?? ""
        #expect(!message.contains("secrets") && !message.contains("token"), "the guest was told: \(message)")
        #expect(message.contains("constraint failed"), "SQLite's generic text for the code: \(message)")
        let outcome = try #require(try Self.lastOutcome(harness, "db.execute"))
        #expect(outcome.reason.contains("too large: copied to secrets.token"), "the log keeps SQLite's message: \(outcome.reason)")
    }

    /// A message with a line break and an escape sequence reaches the guest as one escaped line, and the log
    /// entry holding it whole is still one parseable line.
    @Test func controlCharactersInSQLitesMessageAreEscaped() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "app", sql: "INSERT INTO guarded VALUES (13)", parameters: [])
        }
        let message = error?.message ?? ""
        #expect(message.contains("line one") && !message.contains("\n") && !message.contains("\u{1B}"), "\(message)")
        // `entries()` parses the log line by line: a raw line break in the reason would break it.
        let outcome = try #require(try Self.lastOutcome(harness, "db.execute"))
        #expect(outcome.reason.contains("line one\nline two\u{1B}[2J"), "\(outcome.reason)")
    }

    /// With the trigger's table granted for insert, the constraint SQLite checks there is the statement's own:
    /// its message is kept.
    @Test func aConstraintOfATableTheStatementMayWriteIsKept() throws {
        let scratch = try Scratch()
        let grants = Self.grants + """


            [[db]]
            database = "app"
            tables = ["secrets"]
            allow = ["insert"]
            """
        let harness = try Harness(grants: grants, scratch: scratch, databases: ["app": try Self.makeDatabase(scratch)])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "app", sql: "INSERT INTO notes(body, n) VALUES (?, 1)", parameters: [.text("hunter2")])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("UNIQUE constraint failed: secrets.token") == true, "\(String(describing: error))")
    }
}
