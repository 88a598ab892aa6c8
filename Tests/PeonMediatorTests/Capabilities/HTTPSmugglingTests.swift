import Foundation
@testable import PeonMediator

#if canImport(Glibc)
import Glibc
#endif
import PeonInterface
import PeonTestSupport
import Testing

/// A keep-alive server that never reads a request body (as many do for `GET`): whatever follows a request's head on
/// the connection is read as the next request. Each request line it reads is recorded; each request is answered with
/// its own request target as the body. A request with `Connection: close` is answered, and the connection closed.
final class BodyIgnoringServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var lines: [String] = []
    private var authorizations: [String] = []
    private var accepted = 0
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        (listener, port) = try listenOnLoopback()
        Thread { [self] in serve() }.start()
    }

    /// Every request line read, oldest first.
    var requestLines: [String] { lock.withLock { lines } }
    /// How many connections were accepted.
    var connections: Int { lock.withLock { accepted } }
    /// Every `Authorization` value read, oldest first.
    var authorizationsSeen: [String] { lock.withLock { authorizations } }

    func stop() {
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
            lock.withLock { accepted += 1 }
            // Each connection on a thread of its own, so that a kept one does not block the next.
            Thread { [self] in
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                _ = setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                handle(connection)
                close(connection)
            }.start()
        }
    }

    private func handle(_ connection: Int32) {
        var buffer: [UInt8] = []
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            // The next head: up to the blank line; a body is never skipped.
            var end: Int?
            while end == nil {
                if let found = buffer.firstRange(of: separator) { end = found.upperBound; break }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = recv(connection, &chunk, chunk.count, 0)
                guard count > 0 else { return }
                buffer += chunk[..<count]
            }
            guard let end else { return }
            let head = String(decoding: buffer[..<end], as: UTF8.self)
            buffer.removeFirst(end)
            let headLines = head.split(separator: "\r\n").map(String.init)
            let requestLine = headLines.first ?? ""
            let closes = headLines.contains { $0.lowercased() == "connection: close" }
            lock.withLock {
                lines.append(requestLine)
                for line in headLines where line.lowercased().hasPrefix("authorization:") {
                    authorizations.append(String(line.dropFirst("authorization:".count)).trimmingCharacters(in: .whitespaces))
                }
            }
            let target = requestLine.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(target.utf8.count)\r\n\r\n\(target)"
            _ = answer.utf8CString.withUnsafeBytes { send(connection, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
            if closes { return }
        }
    }
}

/// A guest's request body cannot become a second request on a kept connection (found by a red-team pass): with a
/// server that does not read `GET` bodies, the body `POST /admin/delete-all ...` was a request no policy decided and no
/// entry recorded, the next call got the answer of a smuggled `GET /secret`, and the next call's injected credential
/// completed a smuggled request.
@Suite(.serialized) struct HTTPSmugglingTests {
    let capability = HTTPCapability(maxResponseBytes: 1 << 20, timeout: .seconds(10))

    func send(_ server: BodyIgnoringServer, _ path: String, method: String = "GET", body: String = "",
              injected: [HTTPHeader] = []) throws -> HTTPResponseValue {
        try capability.send(
            OutgoingRequest(method: method, url: CanonicalURL(parsing: "http://127.0.0.1:\(server.port)\(path)"), headers: [], body: Array(body.utf8)),
            injectedHeaders: injected, allowedAddresses: ["127.0.0.1"], maxResponseBytes: nil, deadline: .now + .seconds(10))
    }

    @Test func aBodyIsNeverReadAsAnotherRequest() throws {
        let server = try BodyIgnoringServer()
        defer { server.stop() }
        let smuggled = "POST /admin/delete-all HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        // This server reads no body, whatever the method.
        #expect(try send(server, "/public/a", method: "POST", body: smuggled).body == Array("/public/a".utf8))
        // A second smuggled request whose answer would wait on the connection for the next call.
        #expect(try send(server, "/public/a", method: "POST", body: "GET /secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").body
                == Array("/public/a".utf8))
        #expect(try send(server, "/public/b").body == Array("/public/b".utf8), "the next call got another request's answer")
        // An unterminated request that the next call's head (and its credential) would complete.
        _ = try send(server, "/public/a", method: "POST", body: "POST /admin/delete-all HTTP/1.1\r\nX-Ignore: ")
        let injected = [HTTPHeader(name: "Authorization", value: "Bearer s3cr3t")]
        #expect(try send(server, "/public/c", injected: injected).body == Array("/public/c".utf8))
        Thread.sleep(forTimeInterval: 0.2)
        #expect(server.requestLines.allSatisfy { $0.hasPrefix("GET /public/") || $0.hasPrefix("POST /public/") }, "\(server.requestLines)")
        #expect(server.authorizationsSeen == ["Bearer s3cr3t"])
    }

    /// `GET` and `HEAD` carry no body (no server reads one): refused before anything is sent.
    @Test(arguments: ["GET", "HEAD", "get"])
    func aBodyOnAMethodWithoutOneIsRefused(method: String) throws {
        let server = try BodyIgnoringServer()
        defer { server.stop() }
        #expect(throws: HostError.self) { try send(server, "/public/a", method: method, body: "x") }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(server.requestLines.isEmpty)
    }

    /// Without a body, a connection is still kept for the next call to the same place.
    @Test func requestsWithoutABodyStillShareAConnection() throws {
        let server = try BodyIgnoringServer()
        defer { server.stop() }
        for path in ["/a", "/b", "/c"] { #expect(try send(server, path).body == Array(path.utf8)) }
        #expect(server.requestLines == ["GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /c HTTP/1.1"])
        #expect(server.connections == 1)
    }
}
