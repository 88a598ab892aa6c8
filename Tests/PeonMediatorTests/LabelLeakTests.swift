import CPeonSupport
import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: labelled data reaching an uncleared sink through a channel the label bookkeeping missed (found by a
/// red-team pass). Each test stages the relay the labels exist to stop: agent A leaves labelled data somewhere
/// shared, agent B, whose own grants label nothing, gets it and posts it.
@Suite struct LabelLeakTests {
    /// Agent A's part, done directly: `shared.db` holds a salary and carries `hr`, as after a cleared insert.
    static func labelledDatabase(_ scratch: Scratch) throws -> String {
        let database = try DatabaseLabelTests.database(in: scratch)
        var handle: OpaquePointer?
        guard sqlite3_open(database, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        let inserted = sqlite3_exec(handle, "INSERT INTO notes VALUES ('alice 120000')", nil, nil, nil)
        sqlite3_close(handle)
        guard inserted == SQLITE_OK else { throw HostError(.io, "fixture") }
        try DatabaseLabels.add(["hr"], file: database, database: "shared", call: "db.execute")
        return database
    }

    /// A `db.execute` returns a row count, or an error, computed from the rows it read: SQLite's
    /// `JSON path error near '…'` quotes a value whole, and `INSERT … SELECT` of as many rows as a character's
    /// code spells the data out one call at a time. Either reached agent B with none of the database's labels.
    @Test func aDbExecuteOnALabelledDatabaseBringsItsLabels() throws {
        let shared = try Scratch()
        let database = try Self.labelledDatabase(shared)

        // The error carries the value.
        let sender = RecordingSender()
        let byError = try DatabaseLabelTests.poster(scratch: try Scratch(), database: database, sender: sender)
        let failed = byError.error { () throws(HostError) in
            _ = try byError.mediator.execute(database: "shared", sql: "INSERT INTO notes SELECT json_extract('{}', text) FROM notes",
                                             parameters: [])
        }
        let message = try #require(failed).message
        #expect(message.contains("alice 120000"), "the error quotes the labelled value: \(message)")
        #expect(LabelFlowTests.post(byError, message)?.code == .denied, "the failed db.execute brought hr")

        // The row count carries it too: 97 rows inserted, one for each unit of 'a'.
        let byCount = try DatabaseLabelTests.poster(scratch: try Scratch(), database: database, sender: sender)
        let count = try byCount.mediator.execute(database: "shared", sql: """
            INSERT INTO notes WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
              WHERE x < (SELECT unicode(text) FROM notes LIMIT 1)) SELECT 'x' FROM c
            """, parameters: [])
        #expect(count == 97, "one row per unit of the first character of 'alice'")
        #expect(LabelFlowTests.post(byCount, String(count))?.code == .denied, "the db.execute brought hr")
        #expect(sender.sent.isEmpty, "nothing labelled reached the transport: \(sender.sent.count) sent")
        let outcome = try #require(try byCount.entries().map(\.record).first { $0.call == "db.execute" && $0.outcome == "ok" })
        #expect(outcome.details["database_labels"] == "hr")
    }

    /// A read checked the file's labels before it read the bytes, and reads on to the end of a file that grows: a
    /// labelled append (labels first, then bytes) landing while a large file was read came back unlabelled.
    @Test func aReadRacingALabelledAppendNeverGetsItsBytesUnlabelled() throws {
        let scratch = try Scratch()
        let base = 32 << 20
        let contents = Data(repeating: UInt8(ascii: "x"), count: base)
        let capability = FileSystemCapability()
        let secret = Array("alice 120000".utf8)
        let clock = ContinuousClock()
        var alone = 0.0
        var leaks: [String] = []
        for attempt in 0..<12 {
            // A fresh unlabelled file each time (an attribute, once set, stays).
            let path = scratch.path + "/shared\(attempt).log"
            try contents.write(to: URL(fileURLWithPath: path))
            defer { unlink(path) }
            let guestPath = try GuestPath(parsing: path, relativeTo: nil)
            if attempt == 0 {
                // How long one read of the file takes, to land the append in the middle of one.
                let took = try clock.measure { _ = try capability.readLabelled(guestPath, authorize: { _ in true }) }
                alone = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
            }
            let delay = alone * (Double(attempt % 4 + 1) / 6)
            let appended = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                Thread.sleep(forTimeInterval: delay)
                _ = try? capability.append(guestPath, data: secret, labels: ["hr"], authorize: { _ in true })
                appended.signal()
            }
            let read = try capability.readLabelled(guestPath, authorize: { _ in true })
            appended.wait()
            if read.bytes.count > base && !read.labels.contains("hr") {
                leaks.append("attempt \(attempt): \(read.bytes.count - base) appended bytes read, labels \(read.labels)")
            }
        }
        #expect(leaks.isEmpty, "labelled bytes read without their labels: \(leaks)")
    }

    /// A database in WAL mode keeps its newest rows in `NAME-wal` until a checkpoint, and only the database file
    /// carried the labels: while agent A's run (or anything else) held the database open, agent B, granted to read
    /// files in the same folder, read A's rows out of the write-ahead log unlabelled.
    /// Agent A's part, through the mediator: a database in WAL mode in `shared` into which A inserted a salary it read
    /// (so the database carries `hr`); A's run goes on, its connection open, so the row sits in `shared.db-wal`.
    static func salaryInTheWriteAheadLog(_ shared: Scratch) throws -> (database: String, agentA: Harness) {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let database = try DatabaseLabelTests.database(in: shared)
        var handle: OpaquePointer?
        try #require(sqlite3_open(database, &handle) == SQLITE_OK)
        try #require(sqlite3_exec(handle, "PRAGMA journal_mode = WAL", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(handle)
        let agentA = try DatabaseLabelTests.writer(hr: hr.path, scratch: shared, database: database)
        let data = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        _ = try agentA.mediator.execute(database: "shared", sql: "INSERT INTO notes VALUES (?)",
                                        parameters: [.text(String(decoding: data, as: UTF8.self))])
        #expect(try DatabaseLabels.read(file: database, database: "shared") == ["hr"])
        return (database, agentA)
    }

    @Test func theWriteAheadLogOfALabelledDatabaseCarriesItsLabels() throws {
        let shared = try Scratch()
        let (database, agentA) = try Self.salaryInTheWriteAheadLog(shared)

        // Agent A's run goes on, its connection open: the row is in shared.db-wal.
        let sender = RecordingSender()
        let agentB = try Harness(grants: LabelFlowTests.poster(shared: shared.path), scratch: try Scratch(), http: sender)
        let wal = try agentB.mediator.read(path: database + "-wal")
        #expect(String(decoding: wal, as: UTF8.self).contains("alice 120000"), "the row sits in the write-ahead log")
        #expect(LabelFlowTests.post(agentB)?.code == .denied, "reading the database's log brought its labels")
        #expect(sender.sent.isEmpty)
        withExtendedLifetime(agentA) {}
    }

    /// Threat: the write-ahead log laundered by taking its database away. `NAME-wal` brings the labels of the file
    /// `NAME` beside it; an unlabelled run that replaced `NAME` with an unlabelled file (`fs.write`), or removed it,
    /// then read the log unlabelled, rows and all. Replacing or removing a database under its journal is refused
    /// (it would corrupt the database too), and a journal whose database is gone is not read.
    @Test(arguments: ["replace", "remove", "gone"])
    func theWriteAheadLogIsNotLaunderedByTakingItsDatabaseAway(_ how: String) throws {
        let shared = try Scratch()
        let (database, agentA) = try Self.salaryInTheWriteAheadLog(shared)

        let sender = RecordingSender()
        let agentB = try Harness(grants: """
            module = "poster"

            [[fs]]
            paths = ["\(shared.path)/**"]
            allow = ["read", "write", "remove"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, scratch: try Scratch(), http: sender)
        switch how {
        case "replace":
            let refused = agentB.error { () throws(HostError) in try agentB.mediator.write(path: database, data: Array("x".utf8)) }
            #expect(refused?.code == .denied, "\(String(describing: refused))")
        case "remove":
            let refused = agentB.error { () throws(HostError) in try agentB.mediator.remove(path: database) }
            #expect(refused?.code == .denied, "\(String(describing: refused))")
        default:
            // Taken away outside peon-wasm (another process, an operator): the log's labels cannot be known.
            try FileManager.default.moveItem(atPath: database, toPath: database + ".moved")
        }
        var read: [UInt8] = []
        let failure = agentB.error { () throws(HostError) in read = try agentB.mediator.read(path: database + "-wal") }
        if how == "gone" { #expect(failure != nil, "a journal whose database is gone was read") }
        // Whatever the read handed over is posted: the salary must not reach the partner.
        _ = LabelFlowTests.post(agentB, String(decoding: read, as: UTF8.self))
        #expect(sender.sent.allSatisfy { !String(decoding: $0.0.body, as: UTF8.self).contains("alice") },
                "the log's rows were read without the database's labels and posted")
        withExtendedLifetime(agentA) {}
    }

    /// A labelled grant on a folder inside a broader, unlabelled grant: reading a file in the labelled folder is
    /// allowed by both, and only the line the engine decided on (the broader one, first in the file) brought its
    /// labels, so the salary file came back unlabelled. Data read under a labelled grant carries its labels
    /// whichever allowed line decided.
    @Test func aBroaderUnlabelledGrantDoesNotLaunderALabelledOne() throws {
        let shared = try Scratch()
        _ = try shared.file("hr/salaries.txt", "alice 120000")
        let sender = RecordingSender()
        let agent = try Harness(grants: """
            module = "poster"

            [[fs]]
            paths = ["\(shared.path)/**"]
            allow = ["read", "list"]

            [[fs]]
            paths = ["\(shared.path)/hr/**"]
            allow = ["read", "list"]
            labels = ["hr"]

            [[db]]
            database = "shared"
            tables = ["*"]
            allow = ["read"]

            [[db]]
            database = "shared"
            tables = ["notes"]
            allow = ["read"]
            labels = ["hr"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, scratch: try Scratch(), databases: ["shared": try DatabaseLabelTests.database(in: shared)], http: sender)
        let data = try agent.mediator.read(path: shared.path + "/hr/salaries.txt")
        #expect(LabelFlowTests.post(agent, String(decoding: data, as: UTF8.self))?.code == .denied,
                "the file lies under the labelled grant")
        let read = try #require(try agent.entries().map(\.record).first { $0.call == "fs.read" && $0.outcome == "ok" })
        #expect(read.details["labels_acquired"] == "hr")

        let other = try Harness(grants: try String(contentsOfFile: agent.scratch.path + "/grants.toml", encoding: .utf8),
                                scratch: try Scratch(), databases: ["shared": shared.path + "/shared.db"], http: sender)
        _ = try other.mediator.query(database: "shared", sql: "SELECT text FROM notes", parameters: [])
        #expect(LabelFlowTests.post(other)?.code == .denied, "the table lies under the labelled grant")
        #expect(sender.sent.isEmpty)
    }
}
