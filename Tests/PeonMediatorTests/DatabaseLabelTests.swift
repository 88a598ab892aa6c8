import CPeonSupport
import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: labelled data laundered through a database. Agent A, holding `hr`, may write a shared table (its
/// grant clears `hr`); agent B reads that table under a grant that labels nothing and posts what it read.
/// The database carries the labels of what was written to it, as a file does.
@Suite struct DatabaseLabelTests {
    /// A database with one table `notes(text)`, and the path to it.
    static func database(in scratch: Scratch) throws -> String {
        let path = scratch.path + "/shared.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        let created = sqlite3_exec(handle, "CREATE TABLE notes(text TEXT)", nil, nil, nil)
        sqlite3_close(handle)
        guard created == SQLITE_OK else { throw HostError(.io, "fixture") }
        return path
    }

    /// Agent A: reads the HR folder (labelled `hr`) and may insert into `notes` (cleared for `hr`).
    static func writer(hr: String, scratch: Scratch, database: String) throws -> Harness {
        try Harness(grants: """
            module = "reader"

            [[fs]]
            paths = ["\(hr)/**"]
            allow = ["read"]
            labels = ["hr"]

            [[db]]
            database = "shared"
            tables = ["notes"]
            allow = ["insert"]
            clearance = ["hr"]
            """, scratch: scratch, databases: ["shared": database])
    }

    /// Agent B: reads `notes` under a grant that labels nothing, and may post.
    static func poster(scratch: Scratch, database: String, sender: RecordingSender) throws -> Harness {
        try Harness(grants: """
            module = "poster"

            [[db]]
            database = "shared"
            tables = ["notes"]
            allow = ["read", "insert"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, scratch: scratch, databases: ["shared": database], http: sender)
    }

    @Test func labelsRelayThroughADatabaseToASecondAgent() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        let agentA = try Self.writer(hr: hr.path, scratch: shared, database: database)
        let data = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        #expect(try DatabaseLabels.read(file: database, database: "shared") == [], "nothing labelled was written yet")
        _ = try agentA.mediator.execute(database: "shared", sql: "INSERT INTO notes VALUES (?)",
                                        parameters: [.text(String(decoding: data, as: UTF8.self))])
        #expect(try DatabaseLabels.read(file: database, database: "shared") == ["hr"])
        let insert = try #require(try agentA.entries().map(\.record).first { $0.call == "db.execute" && $0.outcome == "ok" })
        #expect(insert.details["database_labels_recorded"] == "hr")

        let sender = RecordingSender()
        let agentB = try Self.poster(scratch: try Scratch(), database: database, sender: sender)
        #expect(LabelFlowTests.post(agentB) == nil, "unlabelled, agent B may post")
        let rows = try agentB.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
        #expect(rows.rows.count == 1)
        // (Through a local: a failed #require would reflect the harness, whose audit log Swift Testing cannot show.)
        let refused = LabelFlowTests.post(agentB)
        let error = try #require(refused)
        #expect(error.code == .denied)
        #expect(error.message.contains("hr (read at audit seq"), "\(error.message)")
        #expect(sender.sent.count == 1, "the refused POST never reached the transport")
        let query = try #require(try agentB.entries().map(\.record).first { $0.call == "db.query" && $0.outcome == "ok" })
        #expect(query.details["database_labels"] == "hr")
        #expect(query.details["labels_acquired"] == "hr")
    }

    @Test func anUnlabelledRunWritesWithoutLabellingAndAFailedQueryBringsTheDatabasesLabels() throws {
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        let sender = RecordingSender()
        let agent = try Self.poster(scratch: shared, database: database, sender: sender)
        _ = try agent.mediator.execute(database: "shared", sql: "INSERT INTO notes VALUES ('hello')", parameters: [])
        #expect(try DatabaseLabels.read(file: database, database: "shared") == [])
        _ = try agent.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
        #expect(LabelFlowTests.post(agent) == nil)

        // Labelled now (by another run). Whether a query fails can depend on the data (`json(text)` fails on a
        // value that is no JSON), so a failed query brings the database's labels like one that returns rows.
        try DatabaseLabels.add(["hr"], file: database, database: "shared", call: "db.execute")
        let failed = agent.error { () throws(HostError) in
            _ = try agent.mediator.query(database: "shared", sql: "SELECT json(text) FROM notes", parameters: [])
        }
        #expect(failed != nil)
        #expect(LabelFlowTests.post(agent)?.code == .denied, "the failed query brought hr")
    }

    /// A statement SQLite refuses to compile still says something about a labelled database: a labelled run that may
    /// change the schema spells a number as a column count (`table notes has 5 columns but 9 values were
    /// supplied`), or bits as tables that exist (`no such table` against `no such column`). The refusal came before
    /// the statement ran, and brought no labels: the unlabelled run posted what it learnt. Found by a red-team pass.
    @Test(arguments: [
        "INSERT INTO notes VALUES (1, 2, 3, 4, 5, 6, 7, 8, 9)",
        "INSERT INTO bit1 VALUES (1)",
        "SELECT nosuch FROM notes",
        // A syntax error too: a guest names a table so that its refusal reads like one (found by a red-team pass).
        #"SELECT * FROM "bit0: syntax error""#,
        "SELEC text FROM notes",
    ])
    func aStatementRefusedWhileCompilingBringsTheDatabasesLabels(sql: String) throws {
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        let sender = RecordingSender()
        let agent = try Self.poster(scratch: shared, database: database, sender: sender)
        let unlabelled = agent.error { () throws(HostError) in
            if sql.hasPrefix("SELECT") {
                _ = try agent.mediator.query(database: "shared", sql: sql, parameters: [])
            } else {
                _ = try agent.mediator.execute(database: "shared", sql: sql, parameters: [])
            }
        }
        #expect(unlabelled != nil)
        #expect(LabelFlowTests.post(agent) == nil, "an unlabelled database brings nothing")

        try DatabaseLabels.add(["hr"], file: database, database: "shared", call: "db.execute")
        let refused = agent.error { () throws(HostError) in
            if sql.hasPrefix("SELECT") {
                _ = try agent.mediator.query(database: "shared", sql: sql, parameters: [])
            } else {
                _ = try agent.mediator.execute(database: "shared", sql: sql, parameters: [])
            }
        }
        #expect(refused != nil)
        #expect(LabelFlowTests.post(agent)?.code == .denied, "the refused statement brought hr")
        #expect(sender.sent.count == 1, "only the post before the labels was sent")
        let logged = try agent.entries().map(\.record).filter { $0.details["database_labels"] == "hr" }
        #expect(!logged.isEmpty, "the audit log says which labels the refusal brought")
    }

    /// A statement that reads a labelled table into another, uncleared one is refused, and the guest is told why: it
    /// was told "update on 'notes' is not granted", though the grant allows the update (found by a red-team pass).
    @Test func aStatementRefusedForItsLabelsSaysSo() throws {
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        var handle: OpaquePointer?
        #expect(sqlite3_open(database, &handle) == SQLITE_OK)
        #expect(sqlite3_exec(handle, "CREATE TABLE salaries(pay TEXT); INSERT INTO salaries VALUES ('120000')", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(handle)
        let agent = try Harness(grants: """
            module = "mover"

            [[db]]
            database = "shared"
            tables = ["salaries"]
            allow = ["read"]
            labels = ["hr"]

            [[db]]
            database = "shared"
            tables = ["notes"]
            allow = ["update", "read"]
            """, scratch: shared, databases: ["shared": database])
        let refused = agent.error { () throws(HostError) in
            _ = try agent.mediator.execute(database: "shared", sql: "UPDATE notes SET text = (SELECT pay FROM salaries)", parameters: [])
        }
        #expect(refused?.code == .denied)
        #expect(refused?.message.contains("would send data labelled hr") == true, "\(String(describing: refused))")
    }

    @Test func runsLabellingOneDatabaseAtOnceLoseNoLabel() throws {
        let labels = (0..<8).map { "label\($0)" }
        var lost: [String] = []
        for _ in 0..<30 {
            let shared = try Scratch()
            let database = try Self.database(in: shared)
            // Eight runs label the database at the same moment, once each.
            DispatchQueue.concurrentPerform(iterations: labels.count) { index in
                _ = try? DatabaseLabels.add([labels[index]], file: database, database: "shared", call: "db.execute")
            }
            let found = try DatabaseLabels.read(file: database, database: "shared")
            if found != labels { lost.append(found.joined(separator: ",")) }
        }
        #expect(lost.isEmpty, "labels lost: \(lost.prefix(3))")
    }

    @Test func aDamagedLabelAttributeFailsTheQueryClosed() throws {
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        let agent = try Self.poster(scratch: shared, database: database, sender: RecordingSender())
        let one: [UInt8] = [0x31]
        let set = one.withUnsafeBytes { raw in
            peon_setxattr(database, FileLabels.prefix + "not a label", raw.baseAddress, UInt(raw.count), 0)
        }
        try #require(set == 0)
        let error = agent.error { () throws(HostError) in
            _ = try agent.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
        }
        #expect(error?.code == .io, "\(String(describing: error))")
    }

    @Test func theFileAttributeOfADatabaseFileCountsToo() throws {
        let shared = try Scratch()
        let database = try Self.database(in: shared)
        let fd = open(database, O_RDWR | O_CLOEXEC)
        try #require(fd >= 0)
        try FileLabels.write(["pii"], to: fd, database, "write")
        close(fd)
        let sender = RecordingSender()
        let agent = try Self.poster(scratch: shared, database: database, sender: sender)
        _ = try agent.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
        #expect(LabelFlowTests.post(agent)?.code == .denied)
    }
}

/// Threat: a guest swaps the database file under its own cached connection to lose the database's labels. A
/// statement refused while compiling (a syntax error) opens and caches a connection without reading a row, so it
/// brings no labels; an `fs.write` by the still unlabelled run then replaces the file (the new file takes the
/// writer's labels: none); a query on the cached connection read the old file's rows while the labels were read
/// by path from the new one, and the run posted the salaries unlabelled.
@Suite struct DatabaseSwapTests {
    static func agent(scratch: Scratch, database: String, sender: RecordingSender) throws -> Harness {
        try Harness(grants: """
            module = "swapper"

            [[db]]
            database = "shared"
            tables = ["notes"]
            allow = ["read"]

            [[fs]]
            paths = ["\(scratch.path)/**"]
            allow = ["read", "write"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, scratch: scratch, databases: ["shared": database], http: sender)
    }

    @Test(arguments: ["an unlabelled copy", "not a database"])
    func aDatabaseFileReplacedUnderACachedConnectionIsNotReadUnlabelled(_ replacement: String) throws {
        let shared = try Scratch()
        // The labelled database's rows, its labels added only below.
        let database = try DatabaseLabelTests.database(in: shared)
        var handle: OpaquePointer?
        #expect(sqlite3_open(database, &handle) == SQLITE_OK)
        #expect(sqlite3_exec(handle, "INSERT INTO notes VALUES ('alice 120000')", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(handle)
        // A database with the same table and nothing in it, and no labels.
        let elsewhere = try Scratch()
        let copy = try DatabaseLabelTests.database(in: elsewhere)
        let sender = RecordingSender()
        let agent = try Self.agent(scratch: shared, database: database, sender: sender)
        // Compiling fails before any row is read: a connection is opened and kept. The labels come only afterwards
        // (a refusal brings the database's labels too), as if another run labelled the database meanwhile.
        #expect(agent.error { () throws(HostError) in
            _ = try agent.mediator.query(database: "shared", sql: "SELEC text FROM notes", parameters: [])
        } != nil)
        #expect(LabelFlowTests.post(agent) == nil, "nothing labelled was read yet")
        try DatabaseLabels.add(["hr"], file: database, database: "shared", call: "db.execute")
        let bytes: [UInt8] = replacement == "an unlabelled copy"
            ? Array(try Data(contentsOf: URL(fileURLWithPath: copy))) : Array("not a database".utf8)
        try agent.mediator.write(path: database, data: bytes)
        #expect(try DatabaseLabels.read(file: database, database: "shared") == [], "the new file is unlabelled")
        var leaked: [String] = []
        var failure: HostError?
        do {
            let rows = try agent.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
            leaked = rows.rows.flatMap { $0 }.compactMap { if case .text(let text) = $0 { text } else { nil } }
        } catch {
            // Refusing the query is safe too; handing over the old file's rows unlabelled is not.
            failure = error
        }
        if replacement == "an unlabelled copy" {
            // The cached connection to the replaced file is closed: the query reads the file now at the path.
            #expect(failure == nil, "\(String(describing: failure))")
            #expect(leaked.isEmpty)
        }
        // Whatever the query handed over is posted: the salary must not reach the partner.
        _ = LabelFlowTests.post(agent, leaked.joined(separator: "\n"))
        #expect(sender.sent.allSatisfy { !String(decoding: $0.0.body, as: UTF8.self).contains("alice") },
                "the old file's rows were read without its labels and posted")
        withExtendedLifetime(elsewhere) {}
    }

    /// The same swap in the middle of one call (another process renames a file over the database between the
    /// statement and the label read): the labels read by path are not the rows', so the call fails and the
    /// connection is not used again.
    @Test func aDatabaseFileReplacedDuringACallFailsTheCall() throws {
        let shared = try Scratch()
        let database = try LabelLeakTests.labelledDatabase(shared)
        let capability = DatabaseCapability(databases: ["shared": database])
        let name = try DatabaseName(parsing: "shared")
        do {
            let statement = try capability.prepare(database: name, sql: "SELECT text FROM notes", policyVersion: "v1") { _ in true }
            let rows = try statement.query([], maxRows: 10, maxBytes: 1 << 20)
            #expect(rows.rows.count == 1)
            #expect(try statement.databaseLabels() == ["hr"], "not moved yet: the labels are the rows'")
            let replacement = shared.path + "/unlabelled.db"
            #expect(FileManager.default.createFile(atPath: replacement, contents: Data()))
            #expect(rename(replacement, database) == 0)
            #expect(throws: HostError.self) { try statement.databaseLabels() }
            #expect(throws: HostError.self) { try statement.labelDatabase(["hr"], call: "db.execute") }
        }
        // The retired connection was closed, not pooled: the next statement opens the new (empty) file.
        #expect(throws: HostError.self) {
            _ = try capability.prepare(database: name, sql: "SELECT text FROM notes", policyVersion: "v1") { _ in true }
        }
    }
}
