/// The `peon:host@0.1.0` interface (`wit/peon.wit`) as Swift sees it.
///
/// The canonical-ABI bindings in `PeonRuntime` lift a guest's call into these values and call a
/// ``HostInterface``; the mediator is the only conformer that production code builds, so every call
/// a guest makes passes policy, approval and audit before a capability acts.

/// The guest-visible error codes, the WIT `error-code` enum in declaration order.
package enum HostErrorCode: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case denied = 0
    case invalidArgument = 1
    case notFound = 2
    case limitExceeded = 3
    case io = 4
    case timeout = 5

    /// The WIT spelling, e.g. `invalid-argument`.
    package var description: String {
        switch self {
        case .denied: "denied"
        case .invalidArgument: "invalid-argument"
        case .notFound: "not-found"
        case .limitExceeded: "limit-exceeded"
        case .io: "io"
        case .timeout: "timeout"
        }
    }
}

/// A refusal or failure returned to the guest as the WIT `error` record: a code and a one-line message.
///
/// Messages go to the guest, so they never contain secrets (injected headers, host paths outside the
/// grant) — only what the guest itself sent, and what rule refused it.
package struct HostError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The machine-readable code.
    package var code: HostErrorCode
    /// What was refused or what failed, and why.
    package var message: String
    /// What the audit log records instead of ``message``, when the guest is told less than the operator: the
    /// whole SQLite message whose names the guest's grants do not cover. `nil`: the log records ``message``.
    package var auditMessage: String?

    /// Creates an error.
    package init(_ code: HostErrorCode, _ message: String) {
        self.code = code
        self.message = message
        self.auditMessage = nil
    }

    /// Creates an error whose audit entry records `auditMessage` (the operator's, never sent to the guest)
    /// rather than `message`.
    package init(_ code: HostErrorCode, _ message: String, auditMessage: String) {
        self.code = code
        self.message = message
        self.auditMessage = auditMessage
    }

    /// What the audit log records for this error: ``auditMessage``, or ``message`` when there is none.
    package var loggedMessage: String { auditMessage ?? message }

    /// `code: message`.
    package var description: String { "\(code): \(message)" }
}

/// An HTTP header (WIT `http.header`).
package struct HTTPHeader: Sendable, Hashable {
    /// The header name as sent; compared case-insensitively.
    package var name: String
    /// The header value.
    package var value: String

    /// Creates a header.
    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// An outgoing HTTP request (WIT `http.request`).
package struct HTTPRequestValue: Sendable, Hashable {
    /// The method, e.g. `GET`.
    package var method: String
    /// The absolute URL.
    package var url: String
    /// Headers the guest sets. Headers a grant injects are added by the host and override these.
    package var headers: [HTTPHeader]
    /// The request body.
    package var body: [UInt8]

    /// Creates a request.
    package init(method: String, url: String, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// An HTTP response (WIT `http.response`). Redirects are returned as they are, never followed by the host.
package struct HTTPResponseValue: Sendable, Hashable {
    /// The status code.
    package var status: UInt16
    /// The response headers.
    package var headers: [HTTPHeader]
    /// The response body, capped by the grant's `max-response`.
    package var body: [UInt8]

    /// Creates a response.
    package init(status: UInt16, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A SQLite value (WIT `db.value`).
package enum DatabaseValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// The result of a query (WIT `db.rows`).
package struct DatabaseRows: Sendable, Hashable {
    /// The column names, in order.
    package var columns: [String]
    /// The rows, each with one value per column.
    package var rows: [[DatabaseValue]]

    /// Creates a result.
    package init(columns: [String], rows: [[DatabaseValue]]) {
        self.columns = columns
        self.rows = rows
    }
}

/// What a program run through `exec` produced (WIT `exec.output`).
package struct ExecOutput: Sendable, Hashable {
    /// The exit code; a program killed by a signal reports 128 + the signal number.
    package var code: Int32
    /// Captured standard output, up to the cap.
    package var stdout: [UInt8]
    /// Captured standard error, up to the cap.
    package var stderr: [UInt8]

    /// Creates an output.
    package init(code: Int32, stdout: [UInt8], stderr: [UInt8]) {
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// A log level (WIT `log.level`, in declaration order).
package enum LogLevel: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case debug = 0, info = 1, warn = 2, error = 3

    /// The WIT spelling.
    package var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warn: "warn"
        case .error: "error"
        }
    }
}

/// Everything a guest can ask of the world, one method per WIT function.
///
/// Calls arrive on the guest's own thread and may block it (an HTTP request waits for its answer);
/// an implementation must bound every call by the run's deadline. A conformer is per run: it knows the
/// module, the run id and the limits.
package protocol HostInterface: AnyObject, Sendable {
    /// `fs.read`: the whole file.
    func read(path: String) throws(HostError) -> [UInt8]
    /// `fs.write`: creates or replaces the file.
    func write(path: String, data: [UInt8]) throws(HostError)
    /// `fs.append`: creates the file or appends to it.
    func append(path: String, data: [UInt8]) throws(HostError)
    /// `fs.read-dir`: the entry names, without `.` and `..`.
    func readDirectory(path: String) throws(HostError) -> [String]
    /// `fs.remove`: removes a file (or an empty directory).
    func remove(path: String) throws(HostError)
    /// `http.send`.
    func send(_ request: HTTPRequestValue) throws(HostError) -> HTTPResponseValue
    /// `db.query`: one read statement with bound parameters.
    func query(database: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> DatabaseRows
    /// `db.execute`: one write statement with bound parameters; returns the number of rows changed.
    func execute(database: String, sql: String, parameters: [DatabaseValue]) throws(HostError) -> UInt64
    /// `exec.run`: runs a program (never a shell) and waits for it.
    func run(program: String, arguments: [String], stdin: [UInt8]) throws(HostError) -> ExecOutput
    /// `log.log`: a line on the host's stderr, prefixed with the module name, rate-limited.
    func log(level: LogLevel, message: String)
    /// A call that never reached its method: its arguments were over the host's size limits, so they were not
    /// decoded, and the guest gets `error` back. `call` is the WIT function (`fs.write`, `http.send`). It exists so
    /// that such a refusal leaves a trace too: the mediator audits it as a denial.
    func refused(call: String, error: HostError)
    /// Why the run must stop before its next host call, or `nil` while it may go on: the mediator ends a
    /// run that keeps calling long after its call quota refused it (each refusal would be one more audit
    /// entry). The bindings check it before each call and end the guest with it.
    var stopReason: String? { get }
}

extension HostInterface {
    /// No reason to stop, for hosts without a quota.
    package var stopReason: String? { nil }
}

/// Thrown by a host binding when ``HostInterface/stopReason`` ends the run: the guest's call is not made.
package struct RunStoppedByHost: Error, Sendable, CustomStringConvertible {
    /// Why, for the run's error line and its `run.end`.
    package let reason: String

    /// Creates the error.
    package init(_ reason: String) {
        self.reason = reason
    }

    /// The reason.
    package var description: String { reason }
}
