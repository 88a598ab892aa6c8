// Peon.swift: the Swift guest SDK for peon-wasm, for Embedded Swift (wasm32-unknown-none-wasm).
//
// `Peon.FS`, `Peon.HTTP`, `Peon.DB`, `Peon.Exec`, `Peon.log`. It wraps the C guest SDK (modules/sdk/c: `import CPeon`), which declares the peon:host imports
// exactly as the canonical ABI lowers wit/peon.wit and exports `run`, `cabi_post_run` and
// `cabi_realloc`. Calls throw a typed `PeonError` (Embedded Swift has typed throws only).
// An agent defines its entry point with `@_cdecl("peon_run")` and hands it to `Peon.serve`:
//
//     @_cdecl("peon_run")
//     func peonRun(_ input: UnsafePointer<CChar>, _ length: Int, _ out: UnsafeMutablePointer<peon_buf>) -> Bool {
//         Peon.serve(input, length, out) { input throws(PeonError) in "hello, \(input)" }
//     }
import CPeon

/// A refusal or failure from the host: `record error { code: error-code, message: string }`.
public struct PeonError: Error {
    /// `enum error-code`.
    public enum Code: UInt8 {
        case denied = 0, invalidArgument, notFound, limitExceeded, io, timeout
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// Takes over a `peon_error` from the C SDK (freeing its message).
    init(taking err: inout peon_error) {
        code = Code(rawValue: UInt8(truncatingIfNeeded: err.code.rawValue)) ?? .io
        message = err.message.map { String(cString: $0) } ?? ""
        peon_error_free(&err)
    }

    /// The WIT name of the code, e.g. "denied".
    public var codeName: String {
        switch code {
        case .denied: return "denied"
        case .invalidArgument: return "invalid-argument"
        case .notFound: return "not-found"
        case .limitExceeded: return "limit-exceeded"
        case .io: return "io"
        case .timeout: return "timeout"
        }
    }

    /// "code: message", for answers and logs.
    public var description: String { codeName + ": " + message }
}

/// The host's interfaces, as Swift functions.
public enum Peon {
    /// Files inside the trees the grants name.
    public enum FS {
        /// Reads a whole file.
        public static func read(_ path: String) throws(PeonError) -> [UInt8] {
            var err = peon_error()
            var data: UnsafeMutablePointer<UInt8>? = nil
            var length = 0
            let ok = path.withCString { peon_fs_read($0, &data, &length, &err) }
            guard ok, let data else { throw PeonError(taking: &err) }
            defer { peon_free(data) }
            return Array(UnsafeBufferPointer(start: data, count: length))
        }

        /// Creates or replaces a file.
        public static func write(_ path: String, _ bytes: [UInt8]) throws(PeonError) {
            var err = peon_error()
            let ok = path.withCString { p in bytes.withUnsafeBufferPointer { peon_fs_write(p, $0.baseAddress, $0.count, &err) } }
            if !ok { throw PeonError(taking: &err) }
        }

        /// Creates a file or appends to it.
        public static func append(_ path: String, _ bytes: [UInt8]) throws(PeonError) {
            var err = peon_error()
            let ok = path.withCString { p in bytes.withUnsafeBufferPointer { peon_fs_append(p, $0.baseAddress, $0.count, &err) } }
            if !ok { throw PeonError(taking: &err) }
        }

        /// Lists the names in a directory.
        public static func readDir(_ path: String) throws(PeonError) -> [String] {
            var err = peon_error()
            var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
            var count = 0
            let ok = path.withCString { peon_fs_read_dir($0, &names, &count, &err) }
            guard ok, let names else { throw PeonError(taking: &err) }
            defer { peon_strings_free(names, count) }
            var result: [String] = []
            for i in 0..<count {
                if let name = names[i] { result.append(String(cString: name)) }
            }
            return result
        }

        /// Removes a file or an empty directory.
        public static func remove(_ path: String) throws(PeonError) {
            var err = peon_error()
            let ok = path.withCString { peon_fs_remove($0, &err) }
            if !ok { throw PeonError(taking: &err) }
        }
    }

    /// Outgoing HTTP requests.
    public enum HTTP {
        /// A response as the host returned it (redirects are not followed).
        public struct Response {
            public var status: UInt16
            public var headers: [(name: String, value: String)]
            public var body: [UInt8]
        }

        /// Sends a request and waits for the whole response.
        public static func send(method: String, url: String, headers: [(name: String, value: String)] = [],
                                body: [UInt8] = []) throws(PeonError) -> Response {
            // One arena holds every header name and value, NUL-terminated, for the C SDK.
            var arena: [UInt8] = []
            var offsets: [(Int, Int)] = []
            for header in headers {
                let name = arena.count
                arena.append(contentsOf: Array(header.name.utf8))
                arena.append(0)
                let value = arena.count
                arena.append(contentsOf: Array(header.value.utf8))
                arena.append(0)
                offsets.append((name, value))
            }
            arena.append(0)
            var err = peon_error()
            var response = peon_response()
            let ok = arena.withUnsafeBufferPointer { a -> Bool in
                guard let start = a.baseAddress else { return false } // never: the arena ends in a NUL
                let base = UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self)
                let raw = offsets.map { peon_header(name: base + $0.0, value: base + $0.1) }
                return method.withCString { m in
                    url.withCString { u in
                        raw.withUnsafeBufferPointer { h in
                            body.withUnsafeBufferPointer { b in
                                peon_http_send(m, u, h.baseAddress, h.count, b.baseAddress, b.count, &response, &err)
                            }
                        }
                    }
                }
            }
            if !ok { throw PeonError(taking: &err) }
            defer { peon_response_free(&response) }
            var result = Response(status: response.status, headers: [], body: [])
            for i in 0..<response.headers_len {
                if let h = response.headers?[i] { result.headers.append((string(h.name), string(h.value))) }
            }
            if let b = response.body, response.body_len > 0 {
                result.body = Array(UnsafeBufferPointer(start: b, count: response.body_len))
            }
            return result
        }
    }

    /// Named SQLite databases.
    public enum DB {
        /// A SQLite value (`variant value`).
        public enum Value: Equatable {
            case null
            case integer(Int64)
            case real(Double)
            case text(String)
            case blob([UInt8])
        }

        /// Query results: column names, then one array of values per row.
        public struct Rows {
            public var columns: [String]
            public var rows: [[Value]]
        }

        /// Runs one read statement with bound parameters.
        public static func query(_ database: String, _ sql: String, _ params: [Value] = []) throws(PeonError) -> Rows {
            var err = peon_error()
            var table = peon_table()
            let ok = lowered(params) { values in
                database.withCString { d in sql.withCString { peon_db_query(d, $0, values, params.count, &table, &err) } }
            }
            if !ok { throw PeonError(taking: &err) }
            defer { peon_table_free(&table) }
            var rows = Rows(columns: [], rows: [])
            for i in 0..<table.column_count {
                if let c = table.columns?[i] { rows.columns.append(string(c)) }
            }
            for r in 0..<table.row_count {
                var row: [Value] = []
                var c = 0
                while let cell = peon_table_cell(&table, r, c) {
                    row.append(lift(cell.pointee))
                    c += 1
                }
                rows.rows.append(row)
            }
            return rows
        }

        /// Runs one write statement with bound parameters; returns the number of rows changed.
        public static func execute(_ database: String, _ sql: String, _ params: [Value] = []) throws(PeonError) -> UInt64 {
            var err = peon_error()
            var changed: UInt64 = 0
            let ok = lowered(params) { values in
                database.withCString { d in sql.withCString { peon_db_execute(d, $0, values, params.count, &changed, &err) } }
            }
            if !ok { throw PeonError(taking: &err) }
            return changed
        }

        /// Lays the parameters out as `peon_value`s over one arena holding their text and blobs.
        static func lowered(_ params: [Value], _ body: (UnsafePointer<peon_value>?) -> Bool) -> Bool {
            var arena: [UInt8] = []
            var spans: [(Int, Int)] = []
            for p in params {
                switch p {
                case .text(let s):
                    spans.append((arena.count, s.utf8.count))
                    arena.append(contentsOf: Array(s.utf8))
                case .blob(let b):
                    spans.append((arena.count, b.count))
                    arena.append(contentsOf: b)
                default:
                    spans.append((0, 0))
                }
            }
            arena.append(0)
            return arena.withUnsafeMutableBufferPointer { a -> Bool in
                guard let base = a.baseAddress else { return false } // never: the arena ends in a NUL
                var values: [peon_value] = []
                for (i, p) in params.enumerated() {
                    var v = peon_value_null()
                    switch p {
                    case .null: break
                    case .integer(let n): v = peon_value_integer(n)
                    case .real(let r): v = peon_value_real(r)
                    case .text, .blob:
                        v.kind = isText(p) ? 3 : 4
                        v.val.text = peon_list(ptr: base + spans[i].0, len: spans[i].1)
                    }
                    values.append(v)
                }
                return values.withUnsafeBufferPointer { body($0.baseAddress) }
            }
        }

        static func isText(_ v: Value) -> Bool {
            if case .text = v { return true }
            return false
        }

        static func lift(_ v: peon_value) -> Value {
            switch v.kind {
            case 1: return .integer(v.val.integer)
            case 2: return .real(v.val.real)
            case 3: return .text(string(v.val.text))
            case 4: return .blob(bytes(v.val.blob))
            default: return .null
            }
        }
    }

    /// Programs the host runs directly (no shell).
    public enum Exec {
        /// Runs `program` with `args` and `stdin`; returns (exit code, stdout, stderr).
        public static func run(_ program: String, _ args: [String], stdin: [UInt8] = []) throws(PeonError) -> (code: Int32, stdout: [UInt8], stderr: [UInt8]) {
            // NUL-terminated copies of the arguments for the C SDK.
            var storage: [[CChar]] = args.map { arg in
                var chars = arg.utf8.map { CChar(bitPattern: $0) }
                chars.append(0)
                return chars
            }
            var err = peon_error()
            var output = peon_output()
            var pointers: [UnsafePointer<CChar>?] = []
            let count = storage.count
            let ok = storage.withUnsafeMutableBufferPointer { buffers -> Bool in
                for i in 0..<count { pointers.append(buffers[i].withUnsafeBufferPointer { $0.baseAddress }) }
                return program.withCString { p in
                    stdin.withUnsafeBufferPointer { s in
                        pointers.withUnsafeBufferPointer { a in
                            peon_exec(p, a.baseAddress, count, s.baseAddress, s.count, &output, &err)
                        }
                    }
                }
            }
            if !ok { throw PeonError(taking: &err) }
            defer { peon_output_free(&output) }
            return (output.code, bytes(output.out), bytes(output.err))
        }
    }

    /// How important a log line is.
    public enum Level: Int32 { case debug = 0, info, warn, error }

    /// Writes one line to the host's log.
    public static func log(_ level: Level, _ message: String) {
        message.withCString { peon_log(peon_level(rawValue: UInt32(level.rawValue)), $0) }
    }

    /// Runs `body` as the agent's `run`: `input` comes in as a String; the returned String is the
    /// ok answer and a thrown `PeonError` becomes the error answer.
    public static func serve(_ input: UnsafePointer<CChar>, _ length: Int, _ out: UnsafeMutablePointer<peon_buf>,
                             _ body: (String) throws(PeonError) -> String) -> Bool {
        let text = String(decoding: UnsafeBufferPointer(start: UnsafeRawPointer(input).assumingMemoryBound(to: UInt8.self), count: length), as: UTF8.self)
        do {
            let answer = try body(text)
            append(answer, to: out)
            return true
        } catch {
            append(error.description, to: out)
            return false
        }
    }

    static func append(_ s: String, to out: UnsafeMutablePointer<peon_buf>) {
        var s = s
        s.withUTF8 { peon_buf_append(out, $0.baseAddress, $0.count) }
    }

    static func string(_ list: peon_list) -> String {
        String(decoding: bytes(list), as: UTF8.self)
    }

    static func bytes(_ list: peon_list) -> [UInt8] {
        guard let p = list.ptr, list.len > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: p, count: list.len))
    }
}
