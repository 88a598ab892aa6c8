package import Foundation
package import Logging
package import MCP
import NIOCore
import NIOHTTP1
import NIOPosix
import PeonRuntime
import Synchronization

/// The streamable HTTP transport of `peon-wasm mcp --http ADDR`: a small HTTP/1.1 listener (SwiftNIO)
/// in front of the MCP SDK's `StatefulHTTPServerTransport`, one SDK transport and server per session
/// (`Mcp-Session-Id`), all sharing one ``ToolServer`` (its tools, its call limit, its audit log).
///
/// What it guards, before the SDK sees a request:
/// - the path: only ``endpoint`` (`/mcp`); anything else is 404;
/// - DNS rebinding: the `Host` header must name the address it listens on (or, on loopback, `localhost`,
///   `127.0.0.1`, `[::1]` with its port) or one of `allowedHosts` (the names a reverse proxy forwards
///   under), and an `Origin`, when a browser sends one, one of those hosts; else 421 or 403 (the SDK's
///   `OriginValidator`, also applied by each session's transport);
/// - size: a body longer than `maxMessageBytes` is answered 413 without being held;
/// - shape: a POST body that is not JSON, a batch, or a message the SDK's transport and its server would read
///   differently is answered 400 with a JSON-RPC error at once, holding no answer stream and no id
///   (``JSONRPCScreen/refusal(_:)``);
/// - sessions: at most `maxSessions` at once; when full, the session idle longest with no call running
///   is closed to make room, else a new one is refused (503);
/// - connections (``ConnectionLimits``): at most 256 open at once (more are closed at once); a request must
///   arrive whole within 30 s of its first byte (or of the connection's opening), and a connection nothing
///   was read from or written to for 120 s is closed; the bodies being received may hold at most 64 MiB
///   together (a request past that is answered 503). A local client
///   can then neither trickle bytes to hold the server's descriptors nor make it buffer without limit.
///
/// It speaks plain HTTP: for anything but loopback put it behind a reverse proxy that adds TLS and
/// authentication (the command refuses a non-loopback address unless told otherwise).
package final class HTTPToolListener: Sendable {
    /// The one path MCP is served on.
    package static let endpoint = "/mcp"

    /// What one listener allows every connection together and each one.
    package struct ConnectionLimits: Sendable {
        /// The most connections open at once.
        package var maxConnections = 256
        /// How long a request may take to arrive, from its first byte (or the connection's opening) to its end.
        package var requestLimit: Duration = .seconds(30)
        /// How long a connection may stay with nothing read and nothing written (an event stream with no event
        /// for that long is closed too; the client reconnects).
        package var idleLimit: Duration = .seconds(120)
        /// The most request-body bytes all connections may hold at once.
        package var bufferedBytes = 64 << 20
        /// The most bytes of messages one session may have kept for resumption (the SDK keeps every message it
        /// sends a session, for a client that reconnects with `Last-Event-ID`, until the session ends). Past it
        /// the session takes no new request: it is ended at its first moment with no call running.
        package var replayBytesPerSession = 16 << 20
        /// The most bytes of such messages all sessions may have kept together; past it, idle sessions are
        /// ended, those holding most first, and no session takes a new request until they fit again.
        package var replayBytes = 256 << 20

        /// The defaults.
        package init() {}
    }

    private let limits: ConnectionLimits
    private let connections: ConnectionBudget

    private let router: HTTPSessionRouter
    private let channel: Mutex<(any Channel)?> = Mutex(nil)
    private let host: String
    private let port: Int
    private let maxMessageBytes: Int
    private let allowedHosts: [String]

    /// A listener for `tools` on `host`:`port` (port 0: any free port). `allowedHosts` are further
    /// `Host` header values accepted (`name` for any port, or `name:port`).
    package init(tools: ToolServer, host: String, port: Int, maxMessageBytes: Int, allowedHosts: [String] = [],
                maxSessions: Int = 64, limits: ConnectionLimits = ConnectionLimits()) {
        self.limits = limits
        connections = ConnectionBudget(limits)
        self.host = host
        self.port = port
        self.maxMessageBytes = maxMessageBytes
        self.allowedHosts = allowedHosts
        router = HTTPSessionRouter(tools: tools, maxSessions: max(1, maxSessions),
                                   replay: ReplayBudget(perSession: limits.replayBytesPerSession, total: limits.replayBytes))
    }

    /// Whether `host` is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
    package static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" || bare == "::1" { return true }
        let parts = bare.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Binds and starts accepting connections in the background; returns the address bound (with the
    /// real port when `port` was 0). Throws when the address cannot be bound.
    package func start() async throws -> (host: String, port: Int) {
        let router = router
        let limit = maxMessageBytes
        let budget = connections
        let requestLimit = TimeAmount(limits.requestLimit)
        let idleLimit = TimeAmount(limits.idleLimit)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .bind(host: host, port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    // Counted here, on the event loop, at once: past the limit the connection is closed before
                    // anything is read, however busy the tasks that serve connections are.
                    let admitted = budget.open()
                    if admitted {
                        child.closeFuture.whenComplete { _ in budget.close() }
                    } else {
                        child.eventLoop.execute { child.close(promise: nil) }
                    }
                    let operations = child.pipeline.syncOperations
                    try operations.configureHTTPServerPipeline(withErrorHandling: true)
                    // Before the HTTP decoder: the clock of a request starts with its first byte.
                    let clock = RequestClock(limit: requestLimit)
                    try operations.addHandler(RequestStartHandler(clock: clock), position: .first)
                    try operations.addHandler(IdleConnectionCloser(), position: .first)
                    try operations.addHandler(IdleStateHandler(allTimeout: idleLimit), position: .first)
                    // After it: the clock stops at the request's end.
                    try operations.addHandler(RequestEndHandler(clock: clock))
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: child)
                }
            }
        let boundPort = server.channel.localAddress?.port ?? port
        channel.withLock { $0 = server.channel }
        await router.configure(validator: Self.validator(host: host, port: boundPort, allowedHosts: allowedHosts))
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await Self.serve(connection, router: router, maxMessageBytes: limit, budget: budget) }
                    }
                }
            }
        }
        return (host, boundPort)
    }

    /// Stops accepting connections and ends every session (their event streams close).
    package func close() async {
        let open = channel.withLock { channel -> (any Channel)? in
            defer { channel = nil }
            return channel
        }
        try? await open?.close()
        await router.endAll()
    }

    /// The `Host`/`Origin` check for a listener on `host`:`port` that also accepts `allowedHosts`.
    static func validator(host: String, port: Int, allowedHosts: [String]) -> OriginValidator {
        // The address listened on, as the printed URL names it; on loopback also the usual names of loopback, which
        // `127.0.0.2` or `127.000.000.001` is not among.
        // Lowercase, as the request's `Host` and `Origin` are compared (``HTTPSessionRouter``).
        let name = host.contains(":") && !host.hasPrefix("[") ? "[\(host.lowercased())]" : host.lowercased()
        let bound = OriginValidator(allowedHosts: ["\(name):\(port)"], allowedOrigins: ["http://\(name):\(port)", "https://\(name):\(port)"])
        let usual = isLoopback(host) ? OriginValidator.localhost(port: port) : OriginValidator(allowedHosts: [], allowedOrigins: [])
        var hosts = usual.allowedHosts + bound.allowedHosts.filter { !usual.allowedHosts.contains($0) }
        var origins = usual.allowedOrigins + bound.allowedOrigins.filter { !usual.allowedOrigins.contains($0) }
        for extra in allowedHosts.map({ $0.lowercased() }) {
            // `name` stands for the name with or without any port; `name:port` for exactly that.
            let patterns = extra.hasSuffix("]") || !extra.contains(":") ? [extra, extra + ":*"] : [extra]
            hosts += patterns
            origins += patterns.flatMap { ["http://" + $0, "https://" + $0] }
        }
        return OriginValidator(allowedHosts: hosts, allowedOrigins: origins)
    }

    /// One connection: requests one after another (HTTP/1.1 keep-alive), each answered in full (an
    /// event stream until it ends) before the next is read.
    private static func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>,
                              router: HTTPSessionRouter, maxMessageBytes: Int, budget: ConnectionBudget) async {
        var held = 0
        defer { budget.release(held) }
        let watch = ConnectionCloseWatch(connection.channel.closeFuture)
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            var overBudget = false
            for try await part in inbound {
                switch part {
                case .head(let received):
                    head = received
                    body.clear()
                    budget.release(held)
                    held = 0
                    tooLarge = false
                    overBudget = false
                case .body(var chunk):
                    if tooLarge || overBudget { continue }
                    if body.readableBytes + chunk.readableBytes > maxMessageBytes {
                        tooLarge = true
                        body.clear()
                    } else if !budget.reserve(chunk.readableBytes) {
                        overBudget = true
                        body.clear()
                    } else {
                        held += chunk.readableBytes
                        body.writeBuffer(&chunk)
                    }
                case .end:
                    guard let request = head else { continue }
                    head = nil
                    let routed: RoutedResponse
                    if tooLarge {
                        routed = RoutedResponse(.error(statusCode: 413, .invalidRequest(
                            "a message longer than \(maxMessageBytes) bytes was refused (--max-message)")))
                    } else if overBudget {
                        routed = RoutedResponse(.error(statusCode: 503, .internalError(
                            "Service Unavailable: the server holds too many request bytes at once; try again")))
                    } else {
                        routed = await router.handle(request: request, body: Data(body.readableBytesView))
                    }
                    body.clear()
                    budget.release(held)
                    held = 0
                    let open: Bool
                    do {
                        open = try await write(routed, to: outbound, watch: watch, keepAlive: request.isKeepAlive)
                    } catch {
                        routed.ticket?.abandon()
                        routed.ticket?.finish()
                        throw error
                    }
                    routed.ticket?.finish()
                    if !open { return }
                }
            }
        }
    }

    /// Writes `routed`'s response; returns whether the connection stays open for another request. An event stream
    /// is written until it ends or the connection closes (`watch`); a connection that closes first marks the
    /// call it carried as abandoned by its client (``CallTicket/abandon()``).
    private static func write(_ routed: RoutedResponse, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                              watch: ConnectionCloseWatch, keepAlive: Bool) async throws -> Bool {
        let response = routed.response
        var headers = HTTPHeaders()
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        let status = HTTPResponseStatus(statusCode: response.statusCode)
        if case .stream(let stream, _) = response {
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
            // The stream waits for the SDK's next event, which may be long in coming (a call waiting for a slot):
            // a closed connection ends the wait instead of leaving it, and the call, to the session's end.
            let copying = Task { () -> Bool in
                do {
                    for try await chunk in stream {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
                    }
                } catch {
                    // The session ended under the stream (or the connection under the write): end the response;
                    // the client reconnects or stops.
                }
                return !Task.isCancelled
            }
            watch.watch(copying)
            let ended = await withTaskCancellationHandler { await copying.value } onCancel: { copying.cancel() }
            watch.unwatch()
            if !ended {
                routed.ticket?.abandon()
                return false
            }
            try await outbound.write(.end(nil))
            return keepAlive
        }
        let body = routed.body ?? response.bodyData ?? Data()
        headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        if !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
        return keepAlive
    }
}

/// Cancels the copying of an event stream to a connection when the connection closes (one per connection, so that
/// a kept-alive connection's many responses do not each leave a callback on it).
final class ConnectionCloseWatch: Sendable {
    private let state = Mutex<(closed: Bool, copying: Task<Bool, Never>?)>((false, nil))

    init(_ closed: EventLoopFuture<Void>) {
        closed.whenComplete { [self] _ in self.connectionClosed() }
    }

    /// Cancels `copying` when the connection closes (at once if it has).
    func watch(_ copying: Task<Bool, Never>) {
        let closed = state.withLock { state in
            if !state.closed { state.copying = copying }
            return state.closed
        }
        if closed { copying.cancel() }
    }

    /// The copying ended.
    func unwatch() {
        state.withLock { $0.copying = nil }
    }

    private func connectionClosed() {
        let copying = state.withLock { state in
            state.closed = true
            defer { state.copying = nil }
            return state.copying
        }
        copying?.cancel()
    }
}

/// The router's answer to one HTTP request: the SDK's response, the ticket of the `tools/call` it carries (so the
/// listener can tell the call when its client goes away, and end the ticket with the response), and a body to
/// write instead of the response's own.
struct RoutedResponse: Sendable {
    var response: HTTPResponse
    var ticket: CallTicket?
    var body: Data?

    init(_ response: HTTPResponse, ticket: CallTicket? = nil, body: Data? = nil) {
        self.response = response
        self.ticket = ticket
        self.body = body
    }
}

/// The sessions of one listener, by `Mcp-Session-Id`.
actor HTTPSessionRouter {
    private struct Entry {
        let transport: StatefulHTTPServerTransport
        let session: ToolSession
        /// What the SDK keeps of this session's messages for resumption.
        let kept: ReplayBudget.Session
        /// The keys of the session's requests the SDK's transport holds an answer stream for.
        let requestIDs: InFlightRequestIDs
        var lastUsed: ContinuousClock.Instant
    }

    private let tools: ToolServer
    private let maxSessions: Int
    private let replay: ReplayBudget
    private var sessions: [String: Entry] = [:]
    /// Sessions being started (their slot is taken, their entry not yet made).
    private var starting = 0
    private var validator = OriginValidator.localhost()

    init(tools: ToolServer, maxSessions: Int, replay: ReplayBudget) {
        self.tools = tools
        self.maxSessions = maxSessions
        self.replay = replay
    }

    func configure(validator: OriginValidator) { self.validator = validator }

    /// The sessions open now.
    var count: Int { sessions.count }

    /// Answers one HTTP request.
    func handle(request head: HTTPRequestHead, body: Data) async -> RoutedResponse {
        await route(request: head, body: body)
    }

    private func route(request head: HTTPRequestHead, body: Data) async -> RoutedResponse {
        // Exactly one `Host` (RFC 9112 §3.2: an HTTP/1.1 request without one, or any with two, is a 400; an HTTP/1.0
        // one without is refused too, as no MCP client sends one), at most one `Origin`: the SDK's check reads one of
        // them, and skipped a missing `Host`; `Host: evil` beside `host: 127.0.0.1` was allowed or refused at random, as
        // the dictionary below ordered them.
        guard head.headers["Host"].count == 1 else {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest("Bad Request: a request must carry exactly one Host header")))
        }
        guard head.headers["Origin"].count <= 1 else {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest("Bad Request: a request may carry at most one Origin header")))
        }
        // Keyed by the lowercase name, so that a header sent twice in two spellings is one entry whichever the SDK asks.
        var headers: [String: String] = [:]
        for (name, value) in head.headers {
            let key = name.lowercased()
            // A host name is case-insensitive (`LOCALHOST:PORT` names the listener too); the checks compare lowercase.
            let spelled = key == "host" || key == "origin" ? value.lowercased() : value
            headers[key] = headers[key].map { $0 + ", " + spelled } ?? spelled
        }
        let request = HTTPRequest(method: head.method.rawValue, headers: headers, body: body.isEmpty ? nil : body,
                                  path: head.uri)
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path == HTTPToolListener.endpoint else {
            return RoutedResponse(.error(statusCode: 404, .invalidRequest("Not Found: MCP is served at \(HTTPToolListener.endpoint)")))
        }
        let context = HTTPValidationContext(httpMethod: request.method, sessionID: nil, isInitializationRequest: false,
                                            supportedProtocolVersions: Version.supported)
        if let refused = validator.validate(request, context: context) { return RoutedResponse(refused) }
        if let body = request.body, JSONRPCScreen.hasInvalidRequestID(body) {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest(JSONRPCScreen.invalidIDMessage)))
        }
        // What the SDK's transport and its server would read differently (or not at all) would be answered by nobody.
        if request.method.uppercased() == "POST", let body = request.body, let refusal = JSONRPCScreen.refusal(body) {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest(refusal.message)), body: refusal.body)
        }
        let posted = request.method.uppercased() == "POST" ? request.body.map(Self.postedID) ?? .other : .other
        if posted == .ambiguous {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest(Self.ambiguousIDMessage)))
        }
        if let id = request.header(HTTPHeaderName.sessionID) {
            guard var entry = sessions[id] else {
                return RoutedResponse(.error(statusCode: 404, .invalidRequest("Not Found: no session \(id.prefix(64)); initialize a new one")))
            }
            entry.lastUsed = .now
            sessions[id] = entry
            // A request or a stream's opening (not an answer to the server, nor a notification such as a
            // cancellation, which running calls may need) of a session past the resumption budget is not taken:
            // the SDK would keep what it sends back too. Its session ends once no call of it runs, and its client
            // starts a new one.
            var postedRequestID: RequestID?
            if case .request(_, let requestID) = posted { postedRequestID = requestID }
            // A second `initialize` on a session: the SDK's transport refused it under `id: null`, though its id was
            // readable (JSON-RPC 2.0 answers under the request's id whenever it can be read).
            if let requestID = postedRequestID, request.method.uppercased() == "POST", let body = request.body, Self.isInitialize(body) {
                let message = "Invalid Request: this session is already initialized; send initialize without an Mcp-Session-Id header to start a new one"
                return RoutedResponse(.error(statusCode: 400, .invalidRequest(message), sessionID: id),
                                      body: JSONRPCScreen.errorBody(id: requestID, code: JSONRPCScreen.invalidRequestCode, message: message))
            }
            if postedRequestID != nil || request.method.uppercased() == "GET", let refusal = await replayRefusal(id, entry) {
                return refusal.response(sessionID: id, requestID: postedRequestID)
            }
            // The SDK's transport keeps a request's answer stream under its id's text: a request whose id reads like
            // that of one still waiting for its answer would take the other's stream (and answer), so it is refused
            // here, before the SDK sees it.
            var taken: String?
            if case .request(let key, let requestID) = posted {
                if let holder = entry.requestIDs.take(key: key, spelling: requestID.spelling) {
                    let message = Self.collisionMessage(requestID, holder: holder)
                    return RoutedResponse(.error(statusCode: 400, .invalidRequest(message), sessionID: id),
                                          body: JSONRPCScreen.errorBody(id: requestID, code: JSONRPCScreen.invalidRequestCode, message: message))
                }
                taken = key
            }
            // A call takes its place in line here, before the SDK holds it: past the limit it is refused 503 at once.
            var ticket: CallTicket?
            if request.method.uppercased() == "POST", let body = request.body, let requestID = Self.toolCallID(body) {
                switch tools.limiter.enter(bytes: body.count) {
                case .failure(let refusal):
                    if let taken { entry.requestIDs.release(key: taken) }
                    return RoutedResponse(.error(statusCode: 503, .serverError(code: ToolServer.notStartedCode, message: refusal.message),
                                                 sessionID: id, extraHeaders: ["Retry-After": "1"]),
                                          body: JSONRPCScreen.errorBody(id: requestID, code: ToolServer.notStartedCode, message: refusal.message))
                case .success(let place):
                    ticket = entry.session.openTicket(requestID: requestID.spelling, place: place)
                }
            }
            // The SDK keeps an event (a stream's opening) for every POST and GET it answers with a stream.
            if request.method.uppercased() != "DELETE" { entry.kept.add(0) }
            let response = await entry.transport.handleRequest(request)
            // Only a request the SDK took in (it answers with an event stream) waits for an answer.
            if let taken, !Self.isStream(response) { entry.requestIDs.release(key: taken) }
            if request.method.uppercased() == "DELETE" { await end(id) }
            return RoutedResponse(response, ticket: ticket)
        }
        guard request.method.uppercased() == "POST", let body = request.body, Self.isInitialize(body) else {
            return RoutedResponse(.error(statusCode: 400, .invalidRequest("Bad Request: no Mcp-Session-Id header; start a session with initialize")))
        }
        guard makeRoom() else {
            return RoutedResponse(.error(statusCode: 503, .internalError("Service Unavailable: too many sessions are open; close one (DELETE) and try again")))
        }
        guard await fitReplay() else {
            return RoutedResponse(.error(statusCode: 503, .internalError(ReplayBudget.fullMessage), extraHeaders: ["Retry-After": "1"]))
        }
        // The slot is taken before the first await: this actor is reentrant, and initializes arriving together
        // must not all find room.
        starting += 1
        defer { starting -= 1 }
        let id = UUID().uuidString.lowercased()
        let transport = StatefulHTTPServerTransport(
            sessionIDGenerator: FixedSessionID(id: id),
            validationPipeline: StandardValidationPipeline(validators: [
                validator, AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(),
                ProtocolVersionValidator(), SessionValidator(),
            ]))
        let session = await tools.makeSession()
        let kept = replay.session()
        let requestIDs = InFlightRequestIDs()
        do {
            try await tools.start(session, transport: RequestIDTransport(transport, kept: kept, requestIDs: requestIDs))
        } catch {
            kept.release()
            await tools.end(session)
            return RoutedResponse(.error(statusCode: 500, .internalError("the session could not start: \(error)")))
        }
        kept.add(0)
        sessions[id] = Entry(transport: transport, session: session, kept: kept, requestIDs: requestIDs, lastUsed: .now)
        // The initialize request's id is in flight like any other until it is answered.
        var taken: String?
        if case .request(let key, let requestID) = posted, requestIDs.take(key: key, spelling: requestID.spelling) == nil {
            taken = key
        }
        let response = await transport.handleRequest(request)
        if let taken, !Self.isStream(response) { requestIDs.release(key: taken) }
        return RoutedResponse(response)
    }

    /// Closes a session with no call running when the table is full (``sessionToClose(_:)``); `false` if none can go.
    private func makeRoom() -> Bool {
        guard sessions.count + starting >= maxSessions else { return true }
        let idle = sessions.filter { $0.value.session.inFlight.load(ordering: .acquiring) == 0 }.map { id, entry in
            IdleSession(id: id, lastUsed: entry.lastUsed, holdsLabels: !entry.session.labels.current.isEmpty)
        }
        guard let id = Self.sessionToClose(idle), let entry = sessions.removeValue(forKey: id) else { return false }
        Task { await tools.end(entry.session) }
        return true
    }

    /// A session with no call running, as ``sessionToClose(_:)`` weighs it.
    struct IdleSession {
        var id: String
        var lastUsed: ContinuousClock.Instant
        var holdsLabels: Bool
    }

    /// Which idle session to close for a new one: the one idle longest among those holding no labels, and only
    /// when every idle session holds labels, the one idle longest of them. A closed session's client starts a new
    /// one, which begins clean while the client still holds what the old one's calls returned, so a session
    /// holding labels is the last to go.
    static func sessionToClose(_ idle: [IdleSession]) -> String? {
        let unlabelled = idle.filter { !$0.holdsLabels }
        return (unlabelled.isEmpty ? idle : unlabelled).min { $0.lastUsed < $1.lastUsed }?.id
    }

    private func end(_ id: String) async {
        guard let entry = sessions.removeValue(forKey: id) else { return }
        entry.kept.release()
        await tools.end(entry.session)
    }

    /// Why a new request of session `id` is not taken, or `nil` when it is: past its own resumption budget the
    /// session ends when no call of it runs (`404`: its client starts a new session, as MCP says) and refuses
    /// the request meanwhile (`503`); past the budget all sessions share, idle sessions are ended first, those
    /// keeping most first (``fitReplay()``), and the request is refused while they still do not fit.
    private func replayRefusal(_ id: String, _ entry: Entry) async -> ReplayBudget.Refusal? {
        let idle = entry.session.inFlight.load(ordering: .acquiring) == 0
        if entry.kept.isOver {
            guard idle else { return .sessionFull }
            await end(id)
            return .sessionEnded
        }
        guard await fitReplay() else { return .serverFull }
        return sessions[id] == nil ? .sessionEndedForRoom : nil
    }

    /// Ends sessions with no call running, those keeping the most first, until what all sessions keep is within
    /// the shared budget; `false` if it still is not.
    private func fitReplay() async -> Bool {
        guard replay.isOver else { return true }
        let idle = sessions.filter { $0.value.session.inFlight.load(ordering: .acquiring) == 0 }
            .map { (id: $0.key, bytes: $0.value.kept.bytes) }
            .sorted { $0.bytes > $1.bytes }
        for session in idle {
            await end(session.id)
            if !replay.isOver { return true }
        }
        return !replay.isOver
    }

    /// Ends every session.
    func endAll() async {
        for id in Array(sessions.keys) { await end(id) }
    }

    /// The request id of `body` when it is a `tools/call` request; `nil` for anything else.
    static func toolCallID(_ body: Data) -> RequestID? {
        struct Probe: Decodable { var method: String?; var id: ID? }
        guard let probe = try? JSONDecoder().decode(Probe.self, from: body), probe.method == CallTool.name,
              let id = probe.id
        else { return nil }
        return RequestID(id)
    }

    /// What a POSTed JSON-RPC message's id is to the router.
    enum PostedID: Equatable {
        /// Not a request with an id: a notification, a response, or no JSON-RPC at all (the SDK answers those).
        case other
        /// A request: `key` is the text the SDK's transport files its answer stream under, `id` the id its server reads.
        case request(key: String, id: RequestID)
        /// A request whose id the SDK's transport and its server would read differently (a JSON object with two `id`
        /// members): its answer would go to another stream.
        case ambiguous
    }

    /// The id of the request POSTed in `body`, as the SDK's transport files it (its routing key) and as its server
    /// decodes it.
    static func postedID(_ body: Data) -> PostedID {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], object["method"] is String,
              let key = JSONRPCScreen.routingKey(object)
        else { return .other }
        struct Probe: Decodable { var id: ID }
        guard let probe = try? JSONDecoder().decode(Probe.self, from: body) else { return .ambiguous }
        let id = RequestID(probe.id)
        return id.text == key ? .request(key: key, id: id) : .ambiguous
    }

    /// Whether `response` is an event stream (the SDK took a request in and will answer on it).
    static func isStream(_ response: HTTPResponse) -> Bool {
        if case .stream = response { return true }
        return false
    }

    /// What a request whose id reads like that of a request of its session still waiting for an answer is told.
    static func collisionMessage(_ id: RequestID, holder: String) -> String {
        "Invalid Request: id \(id.spelling.prefix(64)) reads like the id \(holder.prefix(64)) of a request of this session "
            + "still waiting for its answer, and the two answers would be confused; send it again with an id not used "
            + "before in this session"
    }

    /// What a request whose JSON object names two ids is told.
    static let ambiguousIDMessage = "Invalid Request: the request has more than one id; send it with exactly one"

    /// Whether `body` is a JSON-RPC `initialize` request.
    static func isInitialize(_ body: Data) -> Bool {
        struct Probe: Decodable { var method: String?; var id: Value? }
        guard let probe = try? JSONDecoder().decode(Probe.self, from: body) else { return false }
        return probe.method == "initialize" && probe.id != nil
    }
}

/// Hands the SDK transport the session id the router chose, so the router knows it before answering.
struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}

/// A transport that adds each `tools/call`'s JSON-RPC request id to its `_meta` (as
/// ``StdioLineTransport`` does on stdio), so `run.start`/`run.end` can name it, and, once an answer is sent, frees its
/// id in `requestIDs` (``InFlightRequestIDs``); everything else passes through to `inner`.
package actor RequestIDTransport: Transport, InjectingTransport {
    /// The wrapped transport.
    package let inner: any Transport
    private let requestIDs: InFlightRequestIDs?
    private let stream: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var pump: Task<Void, Never>?
    /// Counts what the SDK keeps of each message sent, for a session of the HTTP listener.
    private let kept: ReplayBudget.Session?

    /// Unused: errors go to stderr as `peon-wasm:` lines; the protocol requires one.
    package nonisolated let logger = Logger(label: "peon-wasm.mcp.request-id", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Wraps `inner`; what the SDK keeps of each message sent is counted in `kept`, and the ids of the answers sent
    /// are freed in `requestIDs`.
    init(_ inner: any Transport, kept: ReplayBudget.Session? = nil, requestIDs: InFlightRequestIDs? = nil) {
        self.inner = inner
        self.kept = kept
        self.requestIDs = requestIDs
        let pair = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self)
        stream = pair.stream
        continuation = pair.continuation
    }

    /// Connects `inner` and starts passing its messages on, annotated.
    package func connect() async throws {
        try await inner.connect()
        let source = await inner.receive()
        let continuation = continuation
        pump = Task {
            do {
                for try await data in source { continuation.yield(StdioLineTransport.annotate(data)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    /// Disconnects `inner`.
    package func disconnect() async {
        await inner.disconnect()
        pump?.cancel()
        continuation.finish()
    }

    /// Sends through `inner`, counting what the SDK keeps of it; an answer frees its request's id once `inner` has
    /// routed it (the SDK's transport has then forgotten the request's stream).
    package func send(_ data: Data) async throws {
        kept?.add(data.count)
        defer {
            if let requestIDs, let key = Self.answerKey(data) { requestIDs.release(key: key) }
        }
        try await inner.send(data)
    }

    /// The routing key of `data` when it is a JSON-RPC answer (no `method`, a `result` or an `error`), as the SDK's
    /// transport reads it; `nil` for anything else.
    static func answerKey(_ data: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["method"] == nil,
              object["result"] != nil || object["error"] != nil
        else { return nil }
        return JSONRPCScreen.routingKey(object)
    }

    /// The annotated messages.
    package func receive() -> AsyncThrowingStream<Data, any Error> { stream }

    /// Adds `data` to the messages read (``InjectingTransport``).
    package nonisolated func inject(_ data: Data) -> Bool {
        if case .enqueued = continuation.yield(data) { return true }
        return false
    }
}

/// The requests of one HTTP session that wait for their answer, by the key the SDK's transport files their answer
/// stream under (``JSONRPCScreen/routingKey(_:)``), each with its id's JSON spelling.
///
/// The SDK's `StatefulHTTPServerTransport` keeps one answer stream per key and routes an answer to the stream of its
/// id's text: `7` and `"7"` (a number and a string, two requests to its server) share the key `7`, as do two
/// requests with one id. A second request on a key in use would take the first's stream: one caller would get the
/// other's answer, the other none. The router takes a request's key here before the SDK sees it and refuses a
/// request whose key is taken; the key is freed when the answer is sent, or at once when the SDK did not take the
/// request in. A request that is never answered (its client cancelled it) keeps its key until the session ends, as
/// the SDK keeps its stream: MCP forbids reusing an id within a session anyway.
final class InFlightRequestIDs: Sendable {
    private let held = Mutex<[String: String]>([:])

    /// An empty table.
    init() {}

    /// Takes `key` for the request whose id is spelled `spelling`: `nil` when it was free, else the spelling of the
    /// request that holds it (nothing is taken then).
    func take(key: String, spelling: String) -> String? {
        held.withLock { held in
            if let holder = held[key] { return holder }
            held[key] = spelling
            return nil
        }
    }

    /// Frees `key`.
    func release(key: String) {
        held.withLock { _ = $0.removeValue(forKey: key) }
    }

    /// The keys taken now (for tests).
    var count: Int { held.withLock { $0.count } }
}

/// Open connections and buffered request bytes of one listener, against its ``HTTPToolListener/ConnectionLimits``.
final class ConnectionBudget: Sendable {
    private let connections = Atomic<Int>(0)
    private let bytes = Atomic<Int>(0)
    private let maxConnections: Int
    private let maxBytes: Int

    init(_ limits: HTTPToolListener.ConnectionLimits) {
        maxConnections = limits.maxConnections
        maxBytes = limits.bufferedBytes
    }

    /// Counts a new connection; `false` (and nothing counted) when the limit is reached.
    func open() -> Bool {
        if connections.add(1, ordering: .relaxed).newValue > maxConnections {
            connections.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Counts a connection's end.
    func close() { connections.subtract(1, ordering: .relaxed) }

    /// Takes `count` bytes of the shared budget; `false` (and nothing taken) when it would pass the limit.
    func reserve(_ count: Int) -> Bool {
        if bytes.add(count, ordering: .relaxed).newValue > maxBytes {
            bytes.subtract(count, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives `count` bytes back.
    func release(_ count: Int) {
        if count > 0 { bytes.subtract(count, ordering: .relaxed) }
    }
}

/// The deadline of the request arriving on one connection, shared by the handler before the HTTP decoder (which
/// starts it at the first byte) and the one after it (which stops it at the request's end). Used on the
/// connection's event loop only.
final class RequestClock {
    let limit: TimeAmount
    var deadline: Scheduled<Void>?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    /// Starts the clock unless it runs: the connection closes when it runs out.
    func start(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
    }

    /// Stops the clock.
    func stop() {
        deadline?.cancel()
        deadline = nil
    }
}

/// Starts the request clock when a connection opens and at the first byte after a request ended.
final class RequestStartHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let clock: RequestClock

    init(clock: RequestClock) {
        self.clock = clock
    }

    func channelActive(context: ChannelHandlerContext) {
        clock.start(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.start(context)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock.stop()
        context.fireChannelInactive()
    }
}

/// Stops the request clock when a request has arrived whole.
final class RequestEndHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    private let clock: RequestClock

    init(clock: RequestClock) {
        self.clock = clock
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { clock.stop() }
        context.fireChannelRead(data)
    }
}

/// Closes a connection on which nothing was read or written for the listener's idle limit.
final class IdleConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension HTTPToolListener {
    /// The sessions open now (for tests of the session limit).
    package func openSessions() async -> Int {
        await router.count
    }
}
