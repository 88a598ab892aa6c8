import PeonAudit
import Synchronization
package import PeonInterface

// `db`: first decided on `db:NAME` with action `db.open` (compiled from any `[[db]]` grant on that
// database), and that write-ahead entry exists before the database file is opened. Then SQLite's
// authorizer reports every table the statement touches, while it prepares the statement and again if
// it ever re-prepares it (after a schema change); each report is a nested, audited decision on
// `db:NAME/TABLE` with action `db.read|insert|update|delete|schema`.
extension Mediator {
    /// `db.query`: one read-only statement.
    package func query(database name: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> DatabaseRows {
        try statementCall("db.query", name, sql: sql, parameters: parameters, sideEffect: false) { (statement) throws(HostError) in
            guard statement.isReadOnly else {
                throw HostError(.denied, "db.query runs read-only statements; use db.execute to write")
            }
            let rows = try statement.query(parameters, maxRows: configuration.caps.maxRows,
                                           maxBytes: configuration.caps.maxResultBytes, deadline: configuration.deadline)
            return (rows, ["rows": String(rows.rows.count)])
        }
    }

    /// `db.execute`: one statement; returns the number of rows changed.
    package func execute(database name: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> UInt64 {
        try statementCall("db.execute", name, sql: sql, parameters: parameters, sideEffect: true) { (statement) throws(HostError) in
            let changed = try statement.execute(parameters, deadline: configuration.deadline)
            return (changed, ["changed": String(changed)])
        }
    }

    private func statementCall<T>(
        _ call: String, _ name: String, sql: String, parameters: [DatabaseValue], sideEffect: Bool,
        _ body: (PreparedStatement) throws(HostError) -> (T, [String: String])
    ) throws(HostError) -> T {
        let database = try parse(call, kind: "db") { () throws(HostError) in try DatabaseName(parsing: name) }
        try begin(call, .database(database))
        var details = payloadDetails(Array(sql.utf8), prefix: "sql")
        details["parameters"] = String(parameters.count)
        var request = CallRequest(call: call, resource: .database(database), action: "db.open",
                                  sideEffect: sideEffect, details: details)
        // A statement's text and parameters are what a write stores; a query's can reach a server log or a
        // trigger. Both are checked.
        request.outgoing = [("sql", Array(sql.utf8))]
            + parameters.enumerated().compactMap { index, value in value.egressBytes.map { ("parameter \(index + 1)", $0) } }
        return try mediate(request) { (ticket) throws(HostError) in
            let check = nestedCheck(ticket)
            let refusedTable = Atomic<Bool>(false)
            let statement: PreparedStatement
            // A refusal from SQLite's compiler says something about the schema, and the schema holds data too
            // (`table notes has 5 columns but 9 values were supplied`, `no such table: bit1`): it brings the
            // database's labels, as a failed statement that ran does, whatever the refusal says.
            var refusedLabels: [String] = []
            do throws(HostError) {
                statement = try databases.prepare(database: database, sql: sql, policyVersion: ticket.version,
                                                  refused: { refusedLabels = $0 }) { access in
                    let allowed = check(.table(database, access.table), "db." + access.operation.rawValue)
                    if !allowed { refusedTable.store(true, ordering: .relaxed) }
                    return allowed
                }
            } catch {
                var details = ["within_seq": String(ticket.decisionSeq)]
                if !refusedLabels.isEmpty {
                    ticket.flow.bring(refusedLabels, seq: ticket.decisionSeq)
                    details["database_labels"] = refusedLabels.joined(separator: ",")
                }
                // A statement refused by a fixed rule (ATTACH, PRAGMA, a second statement, bad SQL, ...) rather than
                // by a table's grant is a denial too, and is logged as one.
                if !refusedTable.load(ordering: .relaxed) {
                    try record(call: call, resource: Resource.database(database).description, decision: .deny,
                               reason: error.loggedMessage, version: ticket.version, outcome: error.code.description,
                               details: details, durability: .buffered)
                }
                // A table refused for the labels the statement would write there: say that, not "not granted".
                if error.code == .denied, let refusal = ticket.flow.nestedFlowRefusal { throw refusal }
                throw error
            }
            // SQLite reports a statement's tables in no fixed order: `INSERT INTO t SELECT ... FROM hr` may
            // decide the insert before the read that labels the data. Check every write again now.
            try recheckFlow(ticket)
            // Labels travel with the database (``DatabaseLabels``): a write by a run holding labels records
            // them first, and a statement brings those recorded, as a read of a labelled file does.
            var labelDetails: [String: String] = [:]
            if sideEffect {
                let held = heldLabels(ticket.flow).keys.sorted()
                if !held.isEmpty && !statement.isReadOnly {
                    try statement.labelDatabase(held, call: call)
                    labelDetails["database_labels_recorded"] = held.joined(separator: ",")
                }
            }
            // The database's labels are read after the statement ran, never before: a labelled writer records its
            // labels before its rows go in, so rows this statement saw were written under labels read here (read
            // before, a writer between the two would hand over its rows unlabelled). A `db.execute` brings them
            // too, and so does a failed statement: a row count (`INSERT ... SELECT` of as many rows as a byte's
            // value) and an error (`JSON path error near 'alice 120000'`) carry the data they were computed from.
            // They join the run only when the call ends, so this statement's own writes are cleared as before.
            func bringDatabaseLabels() throws(HostError) {
                let labels = try statement.databaseLabels()
                if !labels.isEmpty {
                    ticket.flow.bring(labels, seq: ticket.decisionSeq)
                    labelDetails["database_labels"] = labels.joined(separator: ",")
                }
            }
            let value: T
            let details: [String: String]
            do throws(HostError) {
                (value, details) = try body(statement)
            } catch {
                try bringDatabaseLabels()
                throw error
            }
            try bringDatabaseLabels()
            var outcome = details.merging(labelDetails) { own, _ in own }
            outcome["accesses"] = statement.accesses.map { "db.\($0.operation.rawValue) \($0.table)" }.joined(separator: "; ")
            return (value, outcome)
        }
    }
}
