// The `http` capability: one request to one checked address, with the host's secrets added last.

import AsyncHTTPClient
import Dispatch
import NIOCore
import NIOHTTP1
package import PeonInterface
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends a guest's HTTP request the mediator authorized, to a public address only.
///
/// Rules (each enforced here, tested in `HTTPTests` and `HTTPAddressTests`):
/// - The URL arrives as a ``CanonicalURL`` the mediator parsed once (PeonInterface); that value is
///   what policy decided on and what the log records, and its ``CanonicalURL/target`` is, byte for
///   byte, the request target sent: the request is refused (`invalid-argument`) if the HTTP client
///   would put anything else on the request line.
/// - The host name is resolved once, here. If *any* address it resolves to is loopback, private,
///   link-local (incl. cloud metadata), CGNAT, multicast, unspecified, reserved, or an IPv6 form that
///   embeds one of those (see ``IPAddress/nonPublicReason``), the request is `denied` — unless that
///   exact address (canonical text, e.g. `127.0.0.1`, `::1`) is in `allowedAddresses`. The connection
///   then goes to the checked address (no second lookup, so DNS rebinding cannot swap it), while TLS
///   still verifies the certificate for the host name.
/// - Redirects are never followed: a 3xx comes back to the guest as it is, and any next hop is a new
///   call the mediator authorizes again.
/// - Guest headers must be well-formed (no CR, LF or NUL), and the guest may not set `Host`,
///   `Content-Length`, `Transfer-Encoding`, `Connection`, `Upgrade`, `TE`, `Trailer`, `Keep-Alive`,
///   `Expect` or `Proxy-*`. Injected headers replace any guest header of the same name
///   (case-insensitively) and are never returned or put in an error message.
/// - `CONNECT`, `TRACE` and `TRACK` are refused (a `TRACE` echo would hand injected secrets to the guest), and so
///   is a body on `GET` or `HEAD` (no server reads one; see the next point but one).
/// - The response body is capped (`limit-exceeded`); the whole call, DNS included, is bounded by the
///   timeout and the caller's deadline (`timeout`). Bodies are not decompressed.
/// - Connections are kept alive within one capability (one run) only, per host name, checked address,
///   scheme and port: a later call reuses an idle connection only when its own fresh lookup and check reach
///   the same address. Nothing is pooled across runs or guests; ``shutdown()`` closes them all.
/// - A request with a body goes on a connection of its own, with `Connection: close`, and that connection is
///   never used again. A server that does not read a body (most do not for `GET`) reads it as the next request
///   on the connection: kept alive, a guest's body was a second request no policy decided and no entry records
///   (`POST /admin/...` behind a granted `GET`), whose answer the next call received, and which the next call's
///   injected credential completed. Without a body, the guest controls no byte after the request's end (its
///   headers are checked, `Content-Length` and `Transfer-Encoding` are the host's), so keeping it is safe.
///
/// `send` blocks the calling thread (the guest's) until the answer; never call it on a SwiftNIO event
/// loop thread.
package final class HTTPCapability: Sendable {
    /// The largest response body accepted when the grant sets none, and the ceiling for any grant.
    let maxResponseBytes: Int
    /// The longest one call may take when the caller's deadline is later.
    let timeout: Duration

    /// Whether ``shutdown()`` was called.
    private let isShutDown = Mutex(false)

    /// The clients kept for keep-alive, one per destination, oldest first (at most ``maxClients``).
    private let clients = Mutex<[(key: Destination, client: HTTPClient)]>([])

    /// The most destinations a run keeps connections to; using one more closes the oldest.
    static let maxClients = 16

    /// Where a kept connection goes: what the URL names and the address its check reached.
    struct Destination: Hashable, Sendable {
        var scheme: String
        var host: String
        var port: Int
        var address: String
    }

    /// The most headers a guest may send, and their total size in bytes.
    static let maxRequestHeaders = 100
    /// The largest total size of the guest's header names and values.
    static let maxRequestHeaderBytes = 64 << 10

    /// Header names only the host sets (and every `Proxy-*` name, ``isHostOnly(_:)``).
    static let hostOnlyHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
        "expect",
    ]

    /// Whether only the host may set the header `name`: the framing and hop-by-hop headers, and every `Proxy-*`
    /// header, which speaks to a proxy on the way rather than to the server the grant names.
    static func isHostOnly(_ name: String) -> Bool {
        let lower = name.lowercased()
        return hostOnlyHeaders.contains(lower) || lower.hasPrefix("proxy-")
    }
    static let refusedMethods: Set<String> = ["CONNECT", "TRACE", "TRACK"]

    /// Creates the capability.
    ///
    /// - Parameters:
    ///   - maxResponseBytes: default and ceiling for a response body (default 16 MiB).
    ///   - timeout: the longest a call may take (default 30 s).
    package init(maxResponseBytes: Int = 16 << 20, timeout: Duration = .seconds(30)) {
        self.maxResponseBytes = max(0, maxResponseBytes)
        self.timeout = timeout
    }

    /// Sends `request` and returns the response as it came, 3xx included.
    ///
    /// - Parameters:
    ///   - request: the guest's request, its URL already parsed by the mediator.
    ///   - injectedHeaders: headers the grant adds (secrets); they replace guest headers of the same name.
    ///   - allowedAddresses: non-public addresses a grant names exactly (canonical text).
    ///   - maxResponseBytes: the grant's cap, itself capped by the capability's ``maxResponseBytes``.
    ///   - deadline: the latest the call may end.
    /// - Throws: `invalid-argument` (URL, method or headers), `denied` (a non-public address),
    ///   `not-found` (the name does not resolve), `limit-exceeded` (response too large, too many
    ///   headers), `timeout`, `io` (connection or TLS failure).
    package func send(
        _ request: OutgoingRequest,
        injectedHeaders: [HTTPHeader],
        allowedAddresses: Set<String>,
        maxResponseBytes: Int?,
        deadline: ContinuousClock.Instant
    ) throws(HostError) -> HTTPResponseValue {
        if isShutDown.withLock({ $0 }) { throw HostError(.io, "http: the host is shutting down") }
        let url = request.url
        let method = try Self.checkedMethod(request.method)
        // `GET` and `HEAD` define no body, and a server reads none: it would take the bytes for another request.
        // Refused as browsers' `fetch` refuses it; data goes with a method a grant names for it.
        if !request.body.isEmpty, ["GET", "HEAD"].contains(method.uppercased()) {
            throw HostError(.invalidArgument, "http: a \(method.uppercased()) request carries no body; send the data with POST or PUT (a method the grant allows)")
        }
        let headers = try Self.mergedHeaders(guest: request.headers, injected: injectedHeaders)
        let end = min(deadline, ContinuousClock.now.advanced(by: timeout))
        let cap = min(maxResponseBytes ?? self.maxResponseBytes, self.maxResponseBytes)

        let address = try Self.checkedAddress(for: url, allowedAddresses: allowedAddresses, deadline: end)

        // A body: a connection of its own, closed after this answer (see the type's notes).
        let oneShot = !request.body.isEmpty
        let client: HTTPClient
        if oneShot {
            guard !isShutDown.withLock({ $0 }) else { throw HostError(.io, "http: the host is shutting down") }
            client = Self.makeClient(for: url, address: address, timeout: timeout)
        } else {
            client = try self.client(for: url, address: address)
        }
        defer { if oneShot { Self.close(client) } }

        let outgoing: HTTPClient.Request
        do {
            outgoing = try HTTPClient.Request(
                url: url.description, method: HTTPMethod(rawValue: method),
                headers: HTTPHeaders(oneShot ? headers + [("Connection", "close")] : headers),
                body: request.body.isEmpty ? nil : .bytes(request.body))
        } catch {
            throw HostError(.invalidArgument, "http: the request could not be built for '\(url)'")
        }
        // What was decided and logged is what goes on the request line, or nothing goes out.
        guard Self.requestTarget(of: outgoing.url) == url.target else {
            throw HostError(.invalidArgument, "http: the HTTP client would send another request target than '\(url.target)'; the request is refused")
        }
        let delegate = ResponseAccumulator(request: outgoing, maxBodySize: cap)
        let nioDeadline = NIODeadline.now() + Self.timeAmount(until: end)
        let response: HTTPClient.Response
        do {
            response = try client.execute(request: outgoing, delegate: delegate, deadline: nioDeadline).futureResult.wait()
        } catch {
            throw Self.hostError(for: error, url: url, cap: cap)
        }
        let body = response.body.map { Array($0.readableBytesView) } ?? []
        return HTTPResponseValue(
            status: UInt16(clamping: response.status.code),
            headers: response.headers.map { HTTPHeader(name: $0.name, value: $0.value) },
            body: body)
    }

    /// Refuses new calls from now on and closes the kept connections. Calls already running finish or time out
    /// on their own.
    package func shutdown() {
        isShutDown.withLock { $0 = true }
        let kept = clients.withLock { kept in
            defer { kept = [] }
            return kept
        }
        for entry in kept { Self.close(entry.client) }
    }

    deinit {
        // A capability dropped without shutdown() still closes its connections.
        for entry in clients.withLock({ $0 }) { Self.close(entry.client) }
    }

    /// Shuts `client` down without blocking (the callback form never waits, so it is safe on any thread); the
    /// shutdown keeps the client alive until it is done.
    private static func close(_ client: HTTPClient) {
        client.shutdown(queue: .global()) { _ in }
    }

    /// The client for `url` connecting to `address` (which this call checked), kept for later calls to the same
    /// destination. The connection goes to `address` whatever the name resolves to later (`dnsOverride`), while
    /// the `Host` header and TLS keep the name.
    private func client(for url: CanonicalURL, address: IPAddress) throws(HostError) -> HTTPClient {
        let key = Destination(scheme: url.scheme, host: url.hostText, port: url.port, address: address.description)
        let (client, evicted): (HTTPClient?, HTTPClient?) = clients.withLock { kept in
            if isShutDown.withLock({ $0 }) { return (nil, nil) }
            if let index = kept.firstIndex(where: { $0.key == key }) {
                let entry = kept.remove(at: index)
                kept.append(entry)
                return (entry.client, nil)
            }
            let client = Self.makeClient(for: url, address: address, timeout: timeout)
            kept.append((key, client))
            let evicted = kept.count > Self.maxClients ? kept.removeFirst().client : nil
            return (client, evicted)
        }
        if let evicted { Self.close(evicted) }
        guard let client else { throw HostError(.io, "http: the host is shutting down") }
        return client
    }

    /// A new client for `url` that connects to `address` (which the call checked) whatever the name resolves to
    /// later (`dnsOverride`), while the `Host` header and TLS keep the name.
    private static func makeClient(for url: CanonicalURL, address: IPAddress, timeout: Duration) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: Self.timeAmount(for: timeout), read: Self.timeAmount(for: timeout)),
            proxy: nil,
            decompression: .disabled)
        // Each call's own deadline (passed with the request) bounds it; these bound a connection.
        configuration.connectionPool = .init(idleTimeout: .seconds(5))
        // One attempt per call: by default the client retries a refused or failed connection with backoff until
        // the connect timeout, so a guest would wait 30 s to learn a port is closed. Retrying is the guest's
        // decision (each attempt is then its own mediated, audited call).
        configuration.connectionPool.retryConnectionEstablishment = false
        if case .name(let name) = url.host {
            configuration.dnsOverride = [name: address.description]
        }
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    // MARK: Checks

    /// The request target AsyncHTTPClient puts on the request line for `url` (its `uri`: the
    /// percent-encoded path, `/` when empty, then `?` and the query).
    static func requestTarget(of url: URL) -> String? {
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: true) else { return nil }
        let path = url.path.isEmpty ? "/" : components.percentEncodedPath
        guard let query = url.query else { return path }
        return path + "?" + query
    }

    static func checkedMethod(_ method: String) throws(HostError) -> String {
        guard !method.isEmpty, method.utf8.count <= 32, method.utf8.allSatisfy(isTokenByte) else {
            throw HostError(.invalidArgument, "http: '\(method)' is not a valid method")
        }
        if refusedMethods.contains(method.uppercased()) {
            throw HostError(.invalidArgument, "http: the method \(method.uppercased()) is refused")
        }
        return method
    }

    /// The guest's headers checked, without those an injected header replaces, followed by the injected ones.
    static func mergedHeaders(guest: [HTTPHeader], injected: [HTTPHeader]) throws(HostError) -> [(String, String)] {
        if guest.count > maxRequestHeaders {
            throw HostError(.limitExceeded, "http: more than \(maxRequestHeaders) request headers")
        }
        var total = 0
        for header in guest {
            total += header.name.utf8.count + header.value.utf8.count
            try checkHeader(header, source: "the request")
            if isHostOnly(header.name) {
                throw HostError(.invalidArgument, "http: the header '\(header.name)' is set by the host, not the guest")
            }
        }
        if total > maxRequestHeaderBytes {
            throw HostError(.limitExceeded, "http: the request headers exceed \(maxRequestHeaderBytes) bytes")
        }
        for header in injected {
            // Never quote an injected value: it is a secret.
            guard header.name.utf8.allSatisfy(isTokenByte), !header.name.isEmpty, header.value.utf8.allSatisfy(isFieldValueByte) else {
                throw HostError(.invalidArgument, "http: a header the grant injects ('\(header.name)') is malformed; fix the grant")
            }
        }
        let replaced = Set(injected.map { $0.name.lowercased() })
        return guest.filter { !replaced.contains($0.name.lowercased()) }.map { ($0.name, $0.value) }
            + injected.map { ($0.name, $0.value) }
    }

    static func checkHeader(_ header: HTTPHeader, source: String) throws(HostError) {
        guard !header.name.isEmpty, header.name.utf8.allSatisfy(isTokenByte) else {
            throw HostError(.invalidArgument, "http: '\(header.name)' in \(source) is not a valid header name")
        }
        guard header.value.utf8.allSatisfy(isFieldValueByte) else {
            throw HostError(.invalidArgument, "http: the value of header '\(header.name)' contains CR, LF, NUL or another control character")
        }
    }

    /// The one address to connect to, after checking every address the host resolves to.
    static func checkedAddress(for url: CanonicalURL, allowedAddresses: Set<String>, deadline: ContinuousClock.Instant) throws(HostError) -> IPAddress {
        let addresses: [IPAddress]
        switch url.host {
        case .address(let address):
            addresses = [address]
        case .name(let name):
            addresses = try resolve(name, deadline: deadline)
        }
        let allowed = Set(allowedAddresses.compactMap { IPAddress($0) })
        for address in addresses {
            if let reason = address.nonPublicReason, !allowed.contains(address) {
                let shown: String
                if case .address = url.host { shown = "\(address)" } else { shown = "'\(url.hostText)' resolves to an address that" }
                throw HostError(.denied, "http: \(shown) is \(reason), which is refused unless a grant names the exact address")
            }
        }
        guard let first = addresses.first else {
            throw HostError(.notFound, "http: '\(url.hostText)' has no addresses")
        }
        return first
    }

    /// Resolves `name` with `getaddrinfo` on a background thread, waiting at most until `deadline`.
    static func resolve(_ name: String, deadline: ContinuousClock.Instant) throws(HostError) -> [IPAddress] {
        let outcome = ResolverOutcome()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            outcome.store(lookUp(name))
            done.signal()
        }
        let wait = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, min(Int(wait.components.seconds), 3600)) * 1_000_000_000
            + Int(wait.components.attoseconds / 1_000_000_000)
        if done.wait(timeout: .now() + .nanoseconds(max(0, nanoseconds))) == .timedOut {
            throw HostError(.timeout, "http: resolving '\(name)' took longer than the deadline")
        }
        switch outcome.load() {
        case .some(.success(let addresses)):
            return addresses
        case .some(.failure(let error)):
            throw error
        case .none:
            throw HostError(.io, "http: resolving '\(name)' failed")
        }
    }

    private static func lookUp(_ name: String) -> Result<[IPAddress], HostError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let result = getaddrinfo(name, nil, &hints, &list)
        guard result == 0 else {
            let text = gai_strerror(result).map { String(cString: $0) } ?? "error \(result)"
            if result == EAI_NONAME {
                return .failure(HostError(.notFound, "http: '\(name)' does not resolve (\(text.lowercased()))"))
            }
            return .failure(HostError(.io, "http: resolving '\(name)' failed (\(text.lowercased()))"))
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var cursor = list
        while let entry = cursor {
            if let socketAddress = entry.pointee.ai_addr {
                switch Int32(socketAddress.pointee.sa_family) {
                case AF_INET:
                    let bytes = UnsafeRawPointer(socketAddress).withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                    }
                    addresses.append(IPAddress(bytes: bytes))
                case AF_INET6:
                    let bytes = UnsafeRawPointer(socketAddress).withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    addresses.append(IPAddress(bytes: bytes))
                default:
                    break
                }
            }
            cursor = entry.pointee.ai_next
        }
        var seen: Set<IPAddress> = []
        return .success(addresses.filter { seen.insert($0).inserted })
    }

    static func timeAmount(for duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return .nanoseconds(1) }
        return .nanoseconds(Int64(clamping: seconds) &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }

    static func timeAmount(until deadline: ContinuousClock.Instant) -> TimeAmount {
        let remaining = ContinuousClock.now.duration(to: deadline)
        let (seconds, attoseconds) = remaining.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return .nanoseconds(1) }
        return .nanoseconds(Int64(clamping: seconds) &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }

    static func hostError(for error: any Error, url: CanonicalURL, cap: Int) -> HostError {
        if error is ResponseAccumulator.ResponseTooBigError {
            return HostError(.limitExceeded, "http: the response from \(url.hostText) is larger than \(cap) bytes")
        }
        if let client = error as? HTTPClientError {
            switch client {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .tlsHandshakeTimeout, .writeTimeout:
                return HostError(.timeout, "http: \(url.hostText) did not answer in time")
            case .remoteConnectionClosed:
                return HostError(.io, "http: \(url.hostText) closed the connection")
            default:
                return HostError(.io, "http: the request to \(url.hostText) failed (\(client))")
            }
        }
        let text = String(String(describing: error).prefix(200))
        return HostError(.io, "http: the request to \(url.hostText) failed (\(text))")
    }
}

/// The result of a background `getaddrinfo`, handed from the resolver thread to the waiting one.
private final class ResolverOutcome: Sendable {
    private let value = Mutex<Result<[IPAddress], HostError>?>(nil)

    func store(_ result: Result<[IPAddress], HostError>) {
        value.withLock { $0 = result }
    }

    func load() -> Result<[IPAddress], HostError>? {
        value.withLock { $0 }
    }
}

/// RFC 9110 `tchar`.
private func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

/// RFC 9110 field-value bytes: visible ASCII, space, tab and obs-text; never CR, LF or NUL.
private func isFieldValueByte(_ byte: UInt8) -> Bool {
    byte == 0x09 || (0x20...0x7e).contains(byte) || byte >= 0x80
}

/// A request the mediator authorized: the method, the parsed URL it decided on, the guest's headers
/// and body.
package struct OutgoingRequest: Sendable {
    /// The method, upper case.
    var method: String
    /// The URL, parsed once by the mediator.
    var url: CanonicalURL
    /// The guest's headers (injected ones are added by the capability).
    var headers: [HTTPHeader]
    /// The body.
    var body: [UInt8]

    /// Creates a request.
    package init(method: String, url: CanonicalURL, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}
