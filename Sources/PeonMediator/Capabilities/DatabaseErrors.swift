// What SQLite's own error messages may tell the guest.
//
// SQLite's messages name schema objects (`UNIQUE constraint failed: secrets.token`, `no such column: x`) and
// carry text the schema's author wrote (a trigger's `RAISE(ABORT, '...')`). The guest sees such a message only
// when every schema name in it belongs to a table the statement was allowed to touch, or was written by the
// guest itself; otherwise it sees SQLite's generic text for the error code. The audit log keeps the message.

import CSQLite
import PeonInterface

/// The names a database's schema holds, each with the table or view it belongs to: what an error message
/// must not show the guest unless its grants cover that table.
struct SchemaNames {
    /// Every name (ASCII-lowercased, as SQLite compares names): tables, views, indexes, triggers and the
    /// columns of tables and views, each with the ASCII-lowercased names of the tables or views it belongs to
    /// (a column name can belong to many).
    var owners: [[UInt8]: Set<String>] = [:]

    /// The most names read; a schema with more is not checked name by name (every message is shortened).
    static let maxNames = 50_000

    /// Reads the names with the authorizer standing aside (the capability's own statements); `nil` if the
    /// schema cannot be read or holds more than ``maxNames`` names.
    static func read(_ connection: OpaquePointer, context: AuthorizerContext) -> SchemaNames? {
        context.internalStatement = true
        defer { context.internalStatement = false }
        var names = SchemaNames()
        var count = 0
        func add(_ name: String, owner: String) -> Bool {
            count += 1
            if count > maxNames { return false }
            names.owners[Array(asciiLowercased(name).utf8), default: []].insert(asciiLowercased(owner))
            return true
        }
        var relations: [String] = []
        let complete = each(connection, "SELECT type, name, tbl_name FROM sqlite_schema", bind: nil) { row in
            guard row.count == 3 else { return false }
            if row[0] == "table" || row[0] == "view" { relations.append(row[1]) }
            return add(row[1], owner: row[2])
        }
        guard complete else { return nil }
        for relation in relations {
            // A view whose definition no longer compiles has no columns to read: the schema is not fully known.
            let read = each(connection, "SELECT name FROM pragma_table_xinfo(?1)", bind: relation) { row in
                guard let column = row.first else { return false }
                return add(column, owner: relation)
            }
            guard read else { return nil }
        }
        return names
    }

    /// Steps `sql` (with `bind` as its one text parameter), handing each row's text columns to `row`; `false`
    /// when the statement fails or `row` says stop.
    private static func each(_ connection: OpaquePointer, _ sql: String, bind: String?, row: ([String]) -> Bool) -> Bool {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else { return false }
        defer { sqlite3_finalize(statement) }
        if let bind {
            let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
            guard sqlite3_bind_text(statement, 1, bind, -1, transient) == SQLITE_OK else { return false }
        }
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { return true }
            guard result == SQLITE_ROW else { return false }
            let columns = Int(sqlite3_column_count(statement))
            let values = (0..<Int32(columns)).map { index in
                sqlite3_column_text(statement, index).map { String(cString: $0) } ?? ""
            }
            guard row(values) else { return false }
        }
    }
}

/// Decides what of SQLite's message the guest is told.
enum DatabaseErrorMessage {
    /// Messages longer than this are not checked name by name (a `RAISE` text can be long): the guest gets the
    /// generic text.
    static let maxCheckedBytes = 4096

    /// The error for SQLite's `message` with result code `result`, prefixed by `what` (`running the statement`).
    ///
    /// The guest's message keeps SQLite's text (control characters escaped) when every schema name in it
    /// (compared as SQLite compares names: ASCII case ignored, whole words only) belongs to a table the
    /// statement was allowed to touch (``AuthorizerContext/grantedTables``), or appears in what the guest sent
    /// (`guestText`: the SQL and its text parameters), since then it tells the guest nothing it did not write
    /// (and shortening it would tell the guest the name exists). A statement allowed to read the schema table
    /// could read every name, and keeps every message. Otherwise the guest gets SQLite's generic text for the
    /// primary code (`constraint failed`, `SQL logic error`) and a hint; the audit log records the message.
    static func hostError(
        _ code: HostErrorCode, what: String, message: String, result: Int32,
        connection: OpaquePointer, context: AuthorizerContext, guestText: [String]
    ) -> HostError {
        let full = "\(what): \(message)"
        let shown = "\(what): \(sanitize(message))"
        let kept = shown == full ? HostError(code, shown) : HostError(code, shown, auditMessage: full)
        let tables = context.grantedTables
        if tables.contains(where: { AuthorizerAction.schemaTables.contains($0) }) { return kept }
        let generic = HostError(
            code, "\(what): \(String(cString: sqlite3_errstr(result & 0xff))) (SQLite's message names something this statement's grants do not cover; the operator's audit log has it)",
            auditMessage: full)
        let bytes = Array(asciiLowercased(message).utf8)
        guard bytes.count <= maxCheckedBytes, let schema = SchemaNames.read(connection, context: context) else { return generic }
        let words = NameSearch.words(bytes)
        var guestWords: Set<[UInt8]>?
        var guestBytes: [[UInt8]]?
        for (name, owners) in schema.owners where owners.isDisjoint(with: tables) {
            guard NameSearch.occurs(name, in: bytes, words: words) else { continue }
            // A name the guest wrote itself: kept, or whether it is shortened would say that it exists.
            let sent = guestBytes ?? guestText.map { Array(asciiLowercased($0).utf8) }
            guestBytes = sent
            let sentWords = guestWords ?? sent.reduce(into: Set<[UInt8]>()) { $0.formUnion(NameSearch.words($1)) }
            guestWords = sentWords
            if !sent.contains(where: { NameSearch.occurs(name, in: $0, words: sentWords) }) { return generic }
        }
        return kept
    }
}

/// Finding a name as a whole word in a text (both ASCII-lowercased bytes).
enum NameSearch {
    /// Whether `byte` can be part of an unquoted SQL name: ASCII letters, digits, `_`, `$`, and any byte of a
    /// non-ASCII character.
    static func isNameByte(_ byte: UInt8) -> Bool {
        byte >= 0x80 || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$")
            || (0x30...0x39).contains(byte) || (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
    }

    /// The maximal runs of name bytes in `text`.
    static func words(_ text: [UInt8]) -> Set<[UInt8]> {
        var words: Set<[UInt8]> = []
        var current: [UInt8] = []
        for byte in text {
            if isNameByte(byte) {
                current.append(byte)
            } else if !current.isEmpty {
                words.insert(current)
                current.removeAll(keepingCapacity: true)
            }
        }
        if !current.isEmpty { words.insert(current) }
        return words
    }

    /// Whether `name` occurs in `text` with no name byte right before or after it. A name made of name bytes
    /// only is looked up in `words` (the words of `text`); any other (`"my table"`) is searched for.
    static func occurs(_ name: [UInt8], in text: [UInt8], words: Set<[UInt8]>) -> Bool {
        guard !name.isEmpty else { return false }
        if name.allSatisfy(isNameByte) { return words.contains(name) }
        guard name.count <= text.count else { return false }
        for start in 0...(text.count - name.count) where text[start] == name[0] {
            guard text[start..<(start + name.count)].elementsEqual(name) else { continue }
            let before = start == 0 || !isNameByte(text[start - 1]) || !isNameByte(name[0])
            let end = start + name.count
            let after = end == text.count || !isNameByte(text[end]) || !isNameByte(name[name.count - 1])
            if before && after { return true }
        }
        return false
    }
}
