package import Foundation
package import Logging
package import MCP
import NIOCore
import NIOHTTP1
import NIOPosix
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
/// - sessions: at most `maxSessions` at once; when full, the session idle longest with no call running
///   is closed to make room, else a new one is refused (503).
///
/// It speaks plain HTTP: for anything but loopback put it behind a reverse proxy that adds TLS and
/// authentication (the command refuses a non-loopback address unless told otherwise).
package final class HTTPToolListener: Sendable {
    /// The one path MCP is served on.
    package static let endpoint = "/mcp"

    private let router: HTTPSessionRouter
    private let channel: Mutex<(any Channel)?> = Mutex(nil)
    private let host: String
    private let port: Int
    private let maxMessageBytes: Int
    private let allowedHosts: [String]

    /// A listener for `tools` on `host`:`port` (port 0: any free port). `allowedHosts` are further
    /// `Host` header values accepted (`name` for any port, or `name:port`).
    package init(tools: ToolServer, host: String, port: Int, maxMessageBytes: Int, allowedHosts: [String] = [],
                maxSessions: Int = 64) {
        self.host = host
        self.port = port
        self.maxMessageBytes = maxMessageBytes
        self.allowedHosts = allowedHosts
        router = HTTPSessionRouter(tools: tools, maxSessions: max(1, maxSessions))
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
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .bind(host: host, port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
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
                        group.addTask { await Self.serve(connection, router: router, maxMessageBytes: limit) }
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
        let base = isLoopback(host) ? OriginValidator.localhost(port: port) : {
            let name = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            return OriginValidator(allowedHosts: ["\(name):\(port)"], allowedOrigins: ["http://\(name):\(port)", "https://\(name):\(port)"])
        }()
        var hosts = base.allowedHosts
        var origins = base.allowedOrigins
        for extra in allowedHosts {
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
                              router: HTTPSessionRouter, maxMessageBytes: Int) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            for try await part in inbound {
                switch part {
                case .head(let received):
                    head = received
                    body.clear()
                    tooLarge = false
                case .body(var chunk):
                    if tooLarge { continue }
                    if body.readableBytes + chunk.readableBytes > maxMessageBytes {
                        tooLarge = true
                        body.clear()
                    } else {
                        body.writeBuffer(&chunk)
                    }
                case .end:
                    guard let request = head else { continue }
                    head = nil
                    let response: HTTPResponse
                    if tooLarge {
                        response = .error(statusCode: 413, .invalidRequest(
                            "a message longer than \(maxMessageBytes) bytes was refused (--max-message)"))
                    } else {
                        response = await router.handle(request: request, body: Data(body.readableBytesView))
                    }
                    let open = try await write(response, to: outbound, keepAlive: request.isKeepAlive)
                    if !open { return }
                }
            }
        }
    }

    /// Writes `response`; returns whether the connection stays open for another request.
    private static func write(_ response: HTTPResponse, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                              keepAlive: Bool) async throws -> Bool {
        var headers = HTTPHeaders()
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        let status = HTTPResponseStatus(statusCode: response.statusCode)
        if case .stream(let stream, _) = response {
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
            do {
                for try await chunk in stream {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
                }
            } catch {
                // The session ended under the stream: end the response; the client reconnects or stops.
            }
            try await outbound.write(.end(nil))
            return keepAlive
        }
        let body = response.bodyData ?? Data()
        headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        if !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
        return keepAlive
    }
}

/// The sessions of one listener, by `Mcp-Session-Id`.
actor HTTPSessionRouter {
    private struct Entry {
        let transport: StatefulHTTPServerTransport
        let session: ToolSession
        var lastUsed: ContinuousClock.Instant
    }

    private let tools: ToolServer
    private let maxSessions: Int
    private var sessions: [String: Entry] = [:]
    private var validator = OriginValidator.localhost()

    init(tools: ToolServer, maxSessions: Int) {
        self.tools = tools
        self.maxSessions = maxSessions
    }

    func configure(validator: OriginValidator) { self.validator = validator }

    /// Answers one HTTP request.
    func handle(request head: HTTPRequestHead, body: Data) async -> HTTPResponse {
        var headers: [String: String] = [:]
        for (name, value) in head.headers {
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        let request = HTTPRequest(method: head.method.rawValue, headers: headers, body: body.isEmpty ? nil : body,
                                  path: head.uri)
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path == HTTPToolListener.endpoint else {
            return .error(statusCode: 404, .invalidRequest("Not Found: MCP is served at \(HTTPToolListener.endpoint)"))
        }
        let context = HTTPValidationContext(httpMethod: request.method, sessionID: nil, isInitializationRequest: false,
                                            supportedProtocolVersions: Version.supported)
        if let refused = validator.validate(request, context: context) { return refused }
        if let id = request.header(HTTPHeaderName.sessionID) {
            guard var entry = sessions[id] else {
                return .error(statusCode: 404, .invalidRequest("Not Found: no session \(id.prefix(64)); initialize a new one"))
            }
            entry.lastUsed = .now
            sessions[id] = entry
            let response = await entry.transport.handleRequest(request)
            if request.method.uppercased() == "DELETE" { await end(id) }
            return response
        }
        guard request.method.uppercased() == "POST", let body = request.body, Self.isInitialize(body) else {
            return .error(statusCode: 400, .invalidRequest("Bad Request: no Mcp-Session-Id header; start a session with initialize"))
        }
        guard makeRoom() else {
            return .error(statusCode: 503, .internalError("Service Unavailable: too many sessions are open; close one (DELETE) and try again"))
        }
        let id = UUID().uuidString.lowercased()
        let transport = StatefulHTTPServerTransport(
            sessionIDGenerator: FixedSessionID(id: id),
            validationPipeline: StandardValidationPipeline(validators: [
                validator, AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(),
                ProtocolVersionValidator(), SessionValidator(),
            ]))
        let session = await tools.makeSession()
        do {
            try await tools.start(session, transport: RequestIDTransport(transport))
        } catch {
            await tools.end(session)
            return .error(statusCode: 500, .internalError("the session could not start: \(error)"))
        }
        sessions[id] = Entry(transport: transport, session: session, lastUsed: .now)
        return await transport.handleRequest(request)
    }

    /// Closes the session idle longest with no call running when the table is full; `false` if none can go.
    private func makeRoom() -> Bool {
        guard sessions.count >= maxSessions else { return true }
        let idle = sessions.filter { $0.value.session.inFlight.load(ordering: .acquiring) == 0 }
        guard let oldest = idle.min(by: { $0.value.lastUsed < $1.value.lastUsed }) else { return false }
        let entry = oldest.value
        sessions.removeValue(forKey: oldest.key)
        Task { await tools.end(entry.session) }
        return true
    }

    private func end(_ id: String) async {
        guard let entry = sessions.removeValue(forKey: id) else { return }
        await tools.end(entry.session)
    }

    /// Ends every session.
    func endAll() async {
        for id in Array(sessions.keys) { await end(id) }
    }

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
/// ``StdioLineTransport`` does on stdio), so `run.start`/`run.end` can name it; everything else passes
/// through to `inner`.
package actor RequestIDTransport: Transport {
    /// The wrapped transport.
    package let inner: any Transport
    private let stream: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var pump: Task<Void, Never>?

    /// Unused: errors go to stderr as `peon-wasm:` lines; the protocol requires one.
    package nonisolated let logger = Logger(label: "peon-wasm.mcp.request-id", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Wraps `inner`.
    package init(_ inner: any Transport) {
        self.inner = inner
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

    /// Sends through `inner`.
    package func send(_ data: Data) async throws { try await inner.send(data) }

    /// The annotated messages.
    package func receive() -> AsyncThrowingStream<Data, any Error> { stream }
}
