import CSQLiteBench
import Foundation

/// The native twins: the same operation called straight from Swift, no guest, no ABI, no policy, no audit.
enum NativeFS {
    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchFailure("open \(path): errno \(errno)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw BenchFailure("read \(path): errno \(errno)") }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    static func write(_ path: String, _ data: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchFailure("open \(path): errno \(errno)") }
        defer { close(fd) }
        let n = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard n == data.count else { throw BenchFailure("short write to \(path)") }
    }
}

/// SQLite through its C API on one open connection (what a native program would do).
final class NativeSQLite {
    private var db: OpaquePointer?
    private var select: OpaquePointer?
    private var insert: OpaquePointer?

    static func createBenchmarkDatabase(at path: String, rows: Int) throws {
        try? FileManager.default.removeItem(atPath: path)
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw BenchFailure("cannot create \(path)") }
        defer { sqlite3_close(db) }
        var sql = "CREATE TABLE items(id INTEGER PRIMARY KEY, v INTEGER); BEGIN;"
        for row in 1...rows { sql += "INSERT INTO items(id, v) VALUES (\(row), \(row * 7));" }
        sql += "COMMIT;"
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw BenchFailure("cannot fill \(path)") }
    }

    init(path: String) throws {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else { throw BenchFailure("cannot open \(path)") }
        guard sqlite3_prepare_v2(db, NativeSQLite.selectSQL, -1, &select, nil) == SQLITE_OK,
              sqlite3_prepare_v2(db, NativeSQLite.insertSQL, -1, &insert, nil) == SQLITE_OK
        else { throw BenchFailure("cannot prepare statements") }
    }

    deinit {
        sqlite3_finalize(select)
        sqlite3_finalize(insert)
        sqlite3_close(db)
    }

    static let selectSQL = "SELECT v FROM items WHERE id = ?"
    static let insertSQL = "INSERT INTO items(v) VALUES (?)"

    /// A point select on a prepared statement.
    func pointSelect(_ id: Int64) throws -> Int64 {
        sqlite3_reset(select)
        sqlite3_bind_int64(select, 1, id)
        guard sqlite3_step(select) == SQLITE_ROW else { throw BenchFailure("no row \(id)") }
        let value = sqlite3_column_int64(select, 0)
        while sqlite3_step(select) == SQLITE_ROW {}
        return value
    }

    /// An autocommit insert on a prepared statement.
    func insertRow(_ value: Int64) throws {
        sqlite3_reset(insert)
        sqlite3_bind_int64(insert, 1, value)
        guard sqlite3_step(insert) == SQLITE_DONE else { throw BenchFailure("insert failed") }
    }

    /// Open, prepare, step, finalize, close: what the capability does per call, natively.
    static func pointSelectFresh(path: String, id: Int64) throws -> Int64 {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else { throw BenchFailure("open") }
        defer { sqlite3_close(db) }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, selectSQL, -1, &statement, nil) == SQLITE_OK else { throw BenchFailure("prepare") }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_int64(statement, 1, id)
        guard sqlite3_step(statement) == SQLITE_ROW else { throw BenchFailure("no row") }
        return sqlite3_column_int64(statement, 0)
    }
}

/// posix_spawn of a program with its stdout and stderr captured through pipes, then waitpid.
enum NativeExec {
    static func run(_ program: String) throws -> Int32 {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw BenchFailure("pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, outPipe[0])
        posix_spawn_file_actions_addclose(&actions, errPipe[0])
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(program), nil]
        defer { for pointer in argv { free(pointer) } }
        let environment: [UnsafeMutablePointer<CChar>?] = [nil]
        let status = posix_spawn(&pid, program, &actions, nil, argv, environment)
        close(outPipe[1])
        close(errPipe[1])
        defer { close(outPipe[0]); close(errPipe[0]) }
        guard status == 0 else { throw BenchFailure("posix_spawn \(program): \(status)") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        for fd in [outPipe[0], errPipe[0]] {
            while buffer.withUnsafeMutableBytes({ Foundation.read(fd, $0.baseAddress, $0.count) }) > 0 {}
        }
        var exitStatus: Int32 = 0
        while waitpid(pid, &exitStatus, 0) < 0 && errno == EINTR {}
        return exitStatus
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 (a thread per connection, keep-alive), answering every
/// request with 200 and a short body: the loopback peer for http.send and its native twin.
final class LoopbackServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw BenchFailure("socket") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw BenchFailure("bind/listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        self.listener = listener
        let fd = listener
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { continue }
                Thread.detachNewThread { LoopbackServer.serve(client) }
            }
        }
    }

    private static func serve(_ client: Int32) {
        defer { close(client) }
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok".utf8)
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let terminator: [UInt8] = [13, 10, 13, 10]
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            pending += buffer[0..<n]
            // Requests carry no body (GET), so each ends at the blank line.
            while let end = pending.firstRange(of: terminator) {
                pending.removeSubrange(0..<end.upperBound)
                let sent = response.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent != response.count { return }
            }
        }
    }
}
