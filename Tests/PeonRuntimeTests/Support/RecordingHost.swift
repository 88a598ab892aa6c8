import PeonInterface
import Synchronization

/// A ``HostInterface`` that records every call and answers with canned values, or with `failure`
/// when one is set.
final class RecordingHost: HostInterface {
    /// One call as the host received it.
    enum Call: Equatable {
        case read(String)
        case write(String, [UInt8])
        case append(String, [UInt8])
        case readDirectory(String)
        case remove(String)
        case send(HTTPRequestValue)
        case query(String, String, [DatabaseValue])
        case execute(String, String, [DatabaseValue])
        case run(String, [String], [UInt8])
        case log(LogLevel, String)
        case refused(String, HostErrorCode)
    }

    private let recorded = Mutex<[Call]>([])
    let failure: HostError?
    let fileContents: [UInt8]
    let directoryEntries: [String]
    let response: HTTPResponseValue
    let rows: DatabaseRows
    let changedRows: UInt64
    let output: ExecOutput

    init(
        failure: HostError? = nil,
        fileContents: [UInt8] = Array("file contents".utf8),
        directoryEntries: [String] = ["a.txt", "b", "ünïcode"],
        response: HTTPResponseValue = HTTPResponseValue(
            status: 201, headers: [HTTPHeader(name: "content-type", value: "text/plain")], body: Array("created".utf8)),
        rows: DatabaseRows = DatabaseRows(
            columns: ["id", "name", "score", "photo", "note"],
            rows: [[.integer(-7), .text("ada"), .real(2.5), .blob([0, 255]), .null], [.integer(Int64.max), .text(""), .real(-0.0), .blob([]), .null]]),
        changedRows: UInt64 = 0x1_0000_0003,
        output: ExecOutput = ExecOutput(code: -2, stdout: Array("out".utf8), stderr: Array("err!".utf8))
    ) {
        self.failure = failure
        self.fileContents = fileContents
        self.directoryEntries = directoryEntries
        self.response = response
        self.rows = rows
        self.changedRows = changedRows
        self.output = output
    }

    var calls: [Call] { recorded.withLock { $0 } }

    private func record(_ call: Call) throws(HostError) {
        recorded.withLock { $0.append(call) }
        if let failure { throw failure }
    }

    func read(path: String) throws(HostError) -> [UInt8] {
        try record(.read(path))
        return fileContents
    }

    func write(path: String, data: [UInt8]) throws(HostError) { try record(.write(path, data)) }

    func append(path: String, data: [UInt8]) throws(HostError) { try record(.append(path, data)) }

    func readDirectory(path: String) throws(HostError) -> [String] {
        try record(.readDirectory(path))
        return directoryEntries
    }

    func remove(path: String) throws(HostError) { try record(.remove(path)) }

    func send(_ request: HTTPRequestValue) throws(HostError) -> HTTPResponseValue {
        try record(.send(request))
        return response
    }

    func query(database: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> DatabaseRows {
        try record(.query(database, sql, parameters))
        return rows
    }

    func execute(database: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> UInt64 {
        try record(.execute(database, sql, parameters))
        return changedRows
    }

    func run(program: String, arguments: [String], stdin: [UInt8]) throws(HostError) -> ExecOutput {
        try record(.run(program, arguments, stdin))
        return output
    }

    func log(level: LogLevel, message: String) {
        recorded.withLock { $0.append(.log(level, message)) }
    }

    func refused(call: String, error: HostError) {
        recorded.withLock { $0.append(.refused(call, error.code)) }
    }
}
