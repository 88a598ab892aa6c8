// Peon.swift: the Swift guest SDK for peon-wasm, for Embedded Swift (wasm32-unknown-none-wasm).
//
// It wraps the C guest SDK (modules/sdk/c: `import CPeon`), which declares the peon:host imports
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

    static func bytes(_ list: peon_list) -> [UInt8] {
        guard let p = list.ptr, list.len > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: p, count: list.len))
    }
}
