// The seams between the mediator and the four capabilities. Each capability takes the typed resource
// the mediator parsed (``GuestPath``, ``CanonicalURL``, ``ProgramPath``, ``DatabaseName``) and, where it
// must decide in the middle of its work, an `authorize` callback that the mediator answers through its
// pipeline. Everything here is internal: outside this module no capability can be built or called.

import PeonInterface

/// Files (`fs`): ``FileSystemCapability``.
protocol FileSystemProvider: Sendable {
    func readLabelled(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> LabelledBytes
    func write(_ path: GuestPath, data: [UInt8], labels: [String], authorize: (GuestPath) -> Bool) throws(HostError)
    func append(_ path: GuestPath, data: [UInt8], labels: [String], authorize: (GuestPath) -> Bool) throws(HostError)
    func readDirectoryLabelled(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> (names: [String], labels: [String])
    func remove(_ path: GuestPath, labels: [String], authorize: (GuestPath) -> Bool) throws(HostError)
}

/// SQLite databases (`db`): ``DatabaseCapability``.
protocol DatabaseProvider: Sendable {
    /// Compiles `sql` (or reuses it compiled under the same `policyVersion`), asking `authorize` about
    /// every table access; a statement refused once the database is open gives `refused` the database's labels
    /// first.
    func prepare(database: DatabaseName, sql: String, policyVersion: String, refused: ([String]) -> Void,
                 authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement
}

extension DatabaseProvider {
    /// ``prepare(database:sql:policyVersion:refused:authorize:)`` outside any policy (the version is empty),
    /// for callers that keep no labels.
    func prepare(database: DatabaseName, sql: String, authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement {
        try prepare(database: database, sql: sql, policyVersion: "", refused: { _ in }, authorize: authorize)
    }

    /// ``prepare(database:sql:policyVersion:refused:authorize:)`` for callers that keep no labels.
    func prepare(database: DatabaseName, sql: String, policyVersion: String,
                 authorize: @escaping (DatabaseAccess) -> Bool) throws(HostError) -> PreparedStatement {
        try prepare(database: database, sql: sql, policyVersion: policyVersion, refused: { _ in }, authorize: authorize)
    }
}

/// Programs (`exec`): ``ExecCapability``.
protocol ProgramRunner: Sendable {
    func run(program: ProgramPath, arguments: [String], stdin: [UInt8], environment: [String: String],
             timeout: Duration, maxOutputBytes: Int) throws(HostError) -> ExecOutput
}

/// HTTP (`http`): ``HTTPCapability``. It must not follow redirects, must check the resolved addresses
/// (refusing non-public ones unless listed in `allowedAddresses`), must cap the response and the time,
/// and must send exactly `request.url.target`.
protocol HTTPSender: Sendable {
    func send(_ request: OutgoingRequest, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
              maxResponseBytes: Int, deadline: ContinuousClock.Instant) throws(HostError) -> HTTPResponseValue
}

extension FileSystemCapability: FileSystemProvider {}
extension DatabaseCapability: DatabaseProvider {}
extension ExecCapability: ProgramRunner {}

extension HTTPCapability: HTTPSender {
    func send(_ request: OutgoingRequest, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
              maxResponseBytes: Int, deadline: ContinuousClock.Instant) throws(HostError) -> HTTPResponseValue {
        try send(request, injectedHeaders: injectedHeaders, allowedAddresses: allowedAddresses,
                 maxResponseBytes: Optional(maxResponseBytes), deadline: deadline)
    }
}

/// The transport when none is configured: every allowed request fails with `io`.
struct UnavailableHTTP: HTTPSender {
    func send(_ request: OutgoingRequest, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
              maxResponseBytes: Int, deadline: ContinuousClock.Instant) throws(HostError) -> HTTPResponseValue {
        throw HostError(.io, "this host has no HTTP transport configured")
    }
}
