import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?KEY=VALUE&...]` address, parsed.
///
/// peon-wasm's own query keys: `table` (the policy table, default `casbin_rule`), `channel` (the
/// `LISTEN` channel, default `casbin_role_watcher`, the one `casbin-postgresql-watcher` notifies),
/// `poll` (seconds between version checks, default 10), `sslmode` (`disable`, the default, or
/// `require`, which verifies the server's certificate). The password may also come from
/// `$PGPASSWORD`. ``description`` never shows the password, so the address can go into messages
/// and audit entries.
package struct PostgresAddress: Sendable, Hashable, CustomStringConvertible {
    /// The server's host name or address.
    package var host: String
    /// The server's TCP port.
    package var port: Int
    /// The role to log in as.
    package var user: String
    /// The password, if any.
    package var password: String?
    /// The database.
    package var database: String
    /// The query keys (`table`, `channel`, `poll`, `sslmode`).
    package var parameters: [String: String]

    /// Whether `text` is a PostgreSQL address (rather than a file path).
    package static func isAddress(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    /// Parses `text`; throws one line saying what is wrong.
    package init(_ text: String) throws(PostgresStoreError) {
        guard Self.isAddress(text), let components = URLComponents(string: text) else {
            throw PostgresStoreError("'\(Self.redacted(text))' is not a postgresql://USER@HOST:PORT/DATABASE address")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresStoreError("'\(Self.redacted(text))' names no host; write postgresql://USER@HOST:PORT/DATABASE")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresStoreError("'\(Self.redacted(text))' names no user; write postgresql://USER@HOST:PORT/DATABASE")
        }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else {
            throw PostgresStoreError("'\(Self.redacted(text))': port \(port) is out of range")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        self.host = host
        self.port = port
        self.user = user
        self.password = components.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
        self.database = database.isEmpty ? user : database
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] { parameters[item.name] = item.value ?? "" }
        let known: Set = ["table", "channel", "poll", "sslmode"]
        for key in parameters.keys.sorted() where !known.contains(key) {
            throw PostgresStoreError("'\(Self.redacted(text))': unknown key '\(key)'; known: channel, poll, sslmode, table")
        }
        if let mode = parameters["sslmode"], !["disable", "require"].contains(mode) {
            throw PostgresStoreError("'\(Self.redacted(text))': sslmode must be disable or require, got '\(mode)'")
        }
        for key in ["table", "channel"] {
            if let name = parameters[key], !Self.isIdentifier(name) {
                throw PostgresStoreError("'\(Self.redacted(text))': \(key) '\(name)' must be a plain SQL name (letters, digits, _; not starting with a digit)")
            }
        }
        if let poll = parameters["poll"] {
            guard let seconds = Double(poll), seconds >= 0.1, seconds <= 86_400 else {
                throw PostgresStoreError("'\(Self.redacted(text))': poll must be seconds between 0.1 and 86400, got '\(poll)'")
            }
        }
        self.parameters = parameters
    }

    /// `postgresql://USER@HOST:PORT/DATABASE`, without password or query.
    package var description: String { "postgresql://\(user)@\(host):\(port)/\(database)" }

    /// The policy table (`table`, default `casbin_rule`).
    package var table: String { parameters["table"] ?? "casbin_rule" }

    /// The notification channel (`channel`, default `casbin_role_watcher`).
    package var channel: String { parameters["channel"] ?? "casbin_role_watcher" }

    /// The time between version checks (`poll`, default 10 seconds).
    package var pollInterval: Duration {
        let seconds = parameters["poll"].flatMap(Double.init) ?? 10
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// A plain SQL identifier: safe to put into a statement unquoted.
    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        let letters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
        let rest = letters.union(CharacterSet(charactersIn: "0123456789"))
        return letters.contains(first) && name.unicodeScalars.allSatisfy { rest.contains($0) }
    }

    /// `text` with any password between `:` and `@` replaced by `***`.
    static func redacted(_ text: String) -> String {
        // The last `@` before the path ends the credentials, as the parser reads them (a password may hold `@`).
        guard let scheme = text.range(of: "://") else { return text }
        let authorityEnd = text[scheme.upperBound...].firstIndex(where: { $0 == "/" || $0 == "?" }) ?? text.endIndex
        guard let at = text[scheme.upperBound..<authorityEnd].lastIndex(of: "@") else { return text }
        let credentials = text[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// A PostgreSQL problem, as one line for `peon-wasm: error:`.
package struct PostgresStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message.
    package var description: String
    /// Whether the server answered and refused (no such user or database, a wrong password, no TLS where the address
    /// asks for it): the address is wrong, and trying again later will not help (a configuration error, not an outage).
    package var refusedByServer: Bool
    /// Whether the server gave no answer in time (``PostgresLink/timeout``): an outage or a slow query, not a table of
    /// the wrong shape.
    package var timedOut: Bool

    /// Creates an error.
    package init(_ description: String, refusedByServer: Bool = false, timedOut: Bool = false) {
        self.description = description
        self.refusedByServer = refusedByServer
        self.timedOut = timedOut
    }
}

/// One blocking connection: every call waits (at most ``timeout``) for the server on the calling
/// thread. peon-wasm's policy loading and its reloader and shipper threads are synchronous, so this
/// is the bridge from them to PostgresNIO's event loops. Never call it on an event loop thread.
final class PostgresLink: Sendable {
    let connection: PostgresConnection
    let address: PostgresAddress
    /// How long a connect or a query may take before it counts as "unreachable".
    let timeout: TimeAmount

    static let logger: Logger = Logger(label: "peon-wasm.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    private init(connection: PostgresConnection, address: PostgresAddress, timeout: TimeAmount) {
        self.connection = connection
        self.address = address
        self.timeout = timeout
    }

    /// PostgresNIO requires a connection to be closed before it is released: close it here if the
    /// owner did not (never from an event loop thread, where waiting would deadlock).
    deinit {
        guard !connection.isClosed, !connection.eventLoop.inEventLoop else { return }
        _ = try? Self.bounded(connection.close(), on: connection.eventLoop, timeout: timeout).wait()
    }

    /// Connects to `address`, or throws a line naming the server and the reason.
    static func connect(_ address: PostgresAddress, timeout: TimeAmount = .seconds(5)) throws(PostgresStoreError) -> PostgresLink {
        let tls: PostgresConnection.Configuration.TLS
        if address.parameters["sslmode"] == "require" {
            do {
                tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            } catch {
                throw PostgresStoreError("\(address): cannot set up TLS (\(error))")
            }
        } else {
            tls = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: address.host, port: address.port, username: address.user, password: address.password,
            database: address.database, tls: tls)
        configuration.options.connectTimeout = timeout
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let future = PostgresConnection.connect(on: loop, configuration: configuration, id: 1, logger: logger)
        do {
            let connection = try bounded(future, on: loop, timeout: timeout + .seconds(1)).wait()
            return PostgresLink(connection: connection, address: address, timeout: timeout)
        } catch {
            if let error = error as? PSQLError {
                if error.code == .sslUnsupported {
                    throw PostgresStoreError("the PostgreSQL server \(address) does not offer TLS, and the address asks for it (sslmode=require); drop sslmode=require or enable TLS on the server", refusedByServer: true)
                }
                if let message = error.serverInfo?[.message] {
                    throw PostgresStoreError("the PostgreSQL server \(address) refused the connection: \(message); check the user, password and database the address names", refusedByServer: true)
                }
            }
            throw PostgresStoreError("cannot reach the PostgreSQL server \(address): \(connectionFailure(error)); check that the server runs and accepts connections at that address")
        }
    }

    /// Runs `query` and returns all its rows, waiting at most `limit` (default: ``timeout``).
    @discardableResult
    func query(_ query: PostgresQuery, timeout limit: TimeAmount? = nil) throws(PostgresStoreError) -> [PostgresRow] {
        let loop = connection.eventLoop
        do {
            let result = try Self.bounded(connection.query(query, logger: Self.logger), on: loop, timeout: limit ?? timeout).wait()
            return Array(result.rows)
        } catch {
            throw PostgresStoreError("\(address): \(Self.describe(error))", timedOut: (error as? PostgresStoreError)?.timedOut ?? false)
        }
    }

    /// Whether the connection is gone (the server closed it or the network failed).
    var isClosed: Bool { connection.isClosed }

    /// Closes the connection (waiting at most the timeout).
    func close() {
        _ = try? Self.bounded(connection.close(), on: connection.eventLoop, timeout: timeout).wait()
    }

    /// `future`, failed with a timeout error if it has not completed within `timeout`.
    static func bounded<Value: Sendable>(_ future: EventLoopFuture<Value>, on loop: any EventLoop,
                                         timeout: TimeAmount) -> EventLoopFuture<Value> {
        let promise = loop.makePromise(of: Value.self)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(PostgresStoreError("no answer within \(timeout.nanoseconds / 1_000_000) ms", timedOut: true))
        }
        future.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }

    /// Why a connection could not be made, in words: the system's reason when the driver names an `errno`
    /// (`connection refused`), the server's message when it answered, else the driver's description. The driver's
    /// own text for a refused connection is a dump of nested values (`SingleConnectionFailure(target: ...)`).
    static func connectionFailure(_ error: any Error) -> String {
        let text = describe(error)
        if let start = text.range(of: "(errno: "), let end = text[start.upperBound...].firstIndex(of: ")"),
           let code = Int32(text[start.upperBound..<end]) {
            return String(cString: strerror(code)).lowercased()
        }
        if text.contains("timeout") || text.contains("Timeout") { return "no answer in time" }
        return text
    }

    /// A readable reason: the server's message for a `PSQLError`, else the error's own text.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresStoreError { return error.description }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
