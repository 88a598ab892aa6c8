import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 with a random port, one connection at a time, for the HTTP
/// tests. It records every request it receives, so a test can prove a refused call never arrived.
///
/// Routes: `/hello` (200 "hello"), `/echo` (200, the raw request head and body back), `/redirect`
/// (302 to the cloud metadata address), `/big` (200, 100 000 bytes), `/slow` (answers after 3 s).
final class TestHTTPServer: @unchecked Sendable {
    // Invariant: `requests` is only touched while `lock` is held; `listener` and `port` never change
    // after `init`.
    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var requests: [String] = []
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// The requests received so far, each as its raw head.
    var received: [String] {
        lock.withLock { requests }
    }

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
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var head = ""
        var body: [UInt8] = []
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return }
            data.append(contentsOf: buffer[..<count])
            let text = String(decoding: data, as: UTF8.self)
            guard let range = text.range(of: "\r\n\r\n") else { continue }
            head = String(text[..<range.lowerBound])
            let headBytes = text[..<range.upperBound].utf8.count
            let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                return Int(parts[1].trimmingCharacters(in: .whitespaces))
            }.first ?? 0
            if data.count - headBytes >= length {
                body = Array(data[headBytes..<(headBytes + length)])
                break
            }
        }
        lock.withLock { requests.append(head) }
        let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        switch path {
        case "/hello":
            respond(connection, "200 OK", [], Array("hello".utf8))
        case "/echo":
            respond(connection, "200 OK", [], Array((head + "\r\n\r\n").utf8) + body)
        case "/redirect":
            respond(connection, "302 Found", ["Location: http://169.254.169.254/latest/meta-data/"], [])
        case "/big":
            respond(connection, "200 OK", [], [UInt8](repeating: 0x61, count: 100_000))
        case "/slow":
            sleep(3)
            respond(connection, "200 OK", [], Array("late".utf8))
        default:
            respond(connection, "404 Not Found", [], [])
        }
    }

    private func respond(_ connection: Int32, _ status: String, _ headers: [String], _ body: [UInt8]) {
        var text = "HTTP/1.1 \(status)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for header in headers { text += header + "\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8) + body
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(connection, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
