import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 (a port the kernel picks), one connection at a time, for
/// end-to-end tests of agents that use `http`. It never listens on another interface.
///
/// It answers each path from a fixed route table (404 for anything else) and records every request
/// it receives, so a test can check what an agent sent, and prove a refused call never arrived. A
/// route can also add header fields, answer late, or echo the raw request (``Response/echo``).
public final class LoopbackHTTPServer: @unchecked Sendable {
    // Invariant: `requests` is only touched while `lock` is held; `listener`, `port` and `routes`
    // never change after `init`.

    /// A canned answer.
    public struct Response: Sendable {
        /// The status code.
        public var status: Int
        /// The `Content-Type` header.
        public var contentType: String
        /// The body; ignored when ``echoesRequest`` is set.
        public var body: [UInt8]
        /// Further header fields, sent after `Content-Type`, e.g. a redirect's `Location`.
        public var headers: [(name: String, value: String)]
        /// How long the server waits before answering, to test a client's deadline. While it waits
        /// it serves no one else (one connection at a time).
        public var delay: Duration
        /// Whether the body is the request exactly as it arrived (head, blank line, body) instead of
        /// ``body``, so a test can see what a client really put on the wire.
        public var echoesRequest: Bool

        /// Creates an answer with `body` as UTF-8 text.
        public init(status: Int = 200, contentType: String = "text/plain", headers: [(name: String, value: String)] = [],
                    delay: Duration = .zero, _ body: String) {
            self.init(status: status, contentType: contentType, headers: headers, delay: delay, bytes: Array(body.utf8))
        }

        /// Creates an answer with `body` as raw bytes.
        public init(status: Int = 200, contentType: String, headers: [(name: String, value: String)] = [],
                    delay: Duration = .zero, bytes body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
            self.delay = delay
            self.echoesRequest = false
        }

        /// An answer (200, `message/http`) whose body is the request's raw bytes as received.
        public static let echo: Response = {
            var answer = Response(contentType: "message/http", bytes: [])
            answer.echoesRequest = true
            return answer
        }()
    }

    /// A request as the server received it.
    public struct Request: Sendable {
        /// The method, e.g. `GET`.
        public var method: String
        /// The request target, e.g. `/api/triage`.
        public var path: String
        /// The header fields, names lower-cased, in arrival order.
        public var headers: [(name: String, value: String)]
        /// The body (per `Content-Length`).
        public var body: [UInt8]

        /// The first value of the header `name` (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first { $0.name == name.lowercased() }?.value
        }
    }

    /// The port the server listens on.
    public let port: UInt16
    private let routes: [String: Response]
    private let listener: Int32
    private let lock = NSLock()
    private var requests: [Request] = []
    private let finished = DispatchSemaphore(value: 0)

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts listening on 127.0.0.1 and serving `routes` (request target to answer) on a thread of
    /// its own until ``stop()``.
    public init(routes: [String: Response]) throws {
        (listener, port) = try listenOnLoopback()
        self.routes = routes
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// The requests received so far, oldest first.
    public var received: [Request] {
        lock.withLock { requests }
    }

    /// Stops accepting connections and waits for the serving thread to end.
    public func stop() {
        _ = shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        close(listener)
    }

    private func serve() {
        defer { finished.signal() }
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        var contentLength = 0
        var head = ""
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return }
            data.append(contentsOf: buffer[..<count])
            if headEnd == nil, let end = Self.firstIndex(of: separator, in: data) {
                headEnd = end + separator.count
                head = String(decoding: data[..<end], as: UTF8.self)
                contentLength = Self.fields(of: head).first { $0.name == "content-length" }
                    .flatMap { Int($0.value) } ?? 0
            }
            if let headEnd, data.count - headEnd >= contentLength { break }
        }
        guard let headEnd else { return }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let words = requestLine.split(separator: " ").map(String.init)
        let request = Request(method: words.first ?? "", path: words.count > 1 ? words[1] : "/",
                              headers: Self.fields(of: head),
                              body: Array(data[headEnd..<(headEnd + contentLength)]))
        lock.withLock { requests.append(request) }
        var answer = routes[request.path] ?? Response(status: 404, "not found\n")
        if answer.echoesRequest { answer.body = Array(data[..<(headEnd + contentLength)]) }
        if answer.delay > .zero { Thread.sleep(forTimeInterval: answer.delay.timeInterval) }
        respond(connection, answer)
    }

    private static func fields(of head: String) -> [(name: String, value: String)] {
        head.split(separator: "\r\n").dropFirst().compactMap { line in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (parts[0].lowercased(), parts[1].trimmingCharacters(in: .whitespaces))
        }
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    private func respond(_ connection: Int32, _ answer: Response) {
        var text = "HTTP/1.1 \(answer.status) \(Self.reasonPhrase(answer.status))\r\n"
            + "Content-Type: \(answer.contentType)\r\n"
        for field in answer.headers { text += "\(field.name): \(field.value)\r\n" }
        text += "Content-Length: \(answer.body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(text.utf8) + answer.body
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(connection, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    private static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 404: "Not Found"
        default: "Status"
        }
    }
}

extension Duration {
    /// The duration in seconds, for APIs that take a `TimeInterval`.
    fileprivate var timeInterval: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// A TCP socket listening on 127.0.0.1 at a port the kernel picks, and that port: for test servers, which never listen
/// on another interface.
public func listenOnLoopback() throws -> (descriptor: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 16) == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}
