import Foundation
@_spi(Benchmarks) @testable import PeonMediator
import PeonInterface
import PeonTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Keep-alive within a run: calls to the same checked destination share a connection, every call is still
/// checked (address, allow-list) before anything is sent, and `shutdown()` closes what was kept.
@Suite(.serialized) struct HTTPKeepAliveTests {
    func get(_ capability: HTTPCapability, _ url: String, allowed: Set<String> = ["127.0.0.1"]) throws(HostError) -> HTTPResponseValue {
        try capability.send(
            OutgoingRequest(method: "GET", url: CanonicalURL(parsing: url), headers: [], body: []), injectedHeaders: [],
            allowedAddresses: allowed, maxResponseBytes: nil, deadline: ContinuousClock.now + .seconds(10))
    }

    @Test func callsToOneDestinationShareAConnection() throws {
        let server = try KeepAliveServer()
        defer { server.stop() }
        let capability = HTTPCapability(timeout: .seconds(10))
        defer { capability.shutdown() }
        for _ in 0..<10 {
            let response = try get(capability, "http://127.0.0.1:\(server.port)/ping")
            #expect(response.status == 200 && response.body == Array("ok".utf8))
        }
        #expect(server.counts.requests == 10)
        #expect(server.counts.connections == 1, "each call opened its own connection")
    }

    @Test func aKeptConnectionDoesNotBypassTheAddressCheck() throws {
        let server = try KeepAliveServer()
        defer { server.stop() }
        let capability = HTTPCapability(timeout: .seconds(10))
        defer { capability.shutdown() }
        _ = try get(capability, "http://127.0.0.1:\(server.port)/ping")
        // The same destination, but this call's grant no longer lists the loopback address.
        let error = hostError { () throws(HostError) in _ = try get(capability, "http://127.0.0.1:\(server.port)/ping", allowed: []) }
        #expect(error?.code == .denied)
        #expect(server.counts.requests == 1)
    }

    @Test func shutdownClosesTheKeptConnections() throws {
        let server = try KeepAliveServer()
        defer { server.stop() }
        let capability = HTTPCapability(timeout: .seconds(10))
        _ = try get(capability, "http://127.0.0.1:\(server.port)/ping")
        #expect(server.counts.closed == 0)
        capability.shutdown()
        let deadline = ContinuousClock.now + .seconds(10)
        while server.counts.closed == 0 && ContinuousClock.now < deadline { usleep(10_000) }
        #expect(server.counts.closed == 1)
        #expect(hostError { () throws(HostError) in _ = try get(capability, "http://127.0.0.1:\(server.port)/ping") }?.code == .io)
    }

    @Test func separateCapabilitiesNeverShareAConnection() throws {
        let server = try KeepAliveServer()
        defer { server.stop() }
        for _ in 0..<3 {
            let capability = HTTPCapability(timeout: .seconds(10))
            defer { capability.shutdown() }
            _ = try get(capability, "http://127.0.0.1:\(server.port)/ping")
        }
        #expect(server.counts.connections == 3)
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that keeps connections open (a thread per connection) and counts
/// connections, requests and connections the client closed.
final class KeepAliveServer: Sendable {
    struct Counts: Sendable { var connections = 0, requests = 0, closed = 0 }
    let port: UInt16
    private let listener: Int32
    private let state = Mutex(Counts())
    var counts: Counts { state.withLock { $0 } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            if fd >= 0 { close(fd) }
            throw CocoaError(.fileWriteUnknown)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listener = fd
        Thread { [self] in acceptLoop() }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 { close(listener); return }
            state.withLock { $0.connections += 1 }
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok".utf8)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count <= 0 {
                state.withLock { $0.closed += 1 }
                return
            }
            pending += buffer[..<count]
            // GET requests only: each ends at the blank line after its head.
            while let end = Self.headEnd(pending) {
                pending.removeFirst(end)
                state.withLock { $0.requests += 1 }
                _ = answer.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }
}
