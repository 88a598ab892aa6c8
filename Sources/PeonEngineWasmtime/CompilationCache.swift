// A directory of wasmtime-compiled modules, so repeated runs of a module skip Cranelift.
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonSystem

/// What the compilation cache did for one ``WasmtimeEngine/compileReportingCache(_:)``.
package enum CompilationCacheOutcome: Sendable, Hashable {
    /// The engine has no cache directory.
    case disabled
    /// A cached compilation was verified and loaded; nothing was compiled.
    case hit
    /// Nothing was cached; the module was compiled and (when the directory is writable) stored.
    case miss
    /// A cached file existed but failed verification or loading; it was replaced by a fresh compilation.
    case discarded(reason: String)
    /// The cache directory cannot be trusted or created (e.g. others can write to it); it was not used.
    case unusable(reason: String)
}

/// Compiled modules stored as files named by the module's SHA-256 and the engine's identity.
///
/// `wasmtime_module_deserialize` trusts its input completely (a crafted file is native code that runs
/// in the host), so a file is only loaded when:
/// - the directory and the file belong to the current user and nobody else can write to them, and the
///   file is a regular file reached without following a symbolic link;
/// - it starts with our magic, the SHA-256 of the module it was compiled from (so a file renamed onto
///   another module's name is refused) and the SHA-256 of the compiled bytes, which must match.
///
/// The checksum protects against corruption and truncation, not against an attacker who can write as
/// the current user; such an attacker can already replace the peon-wasm binary.
///
/// File layout: `PEONCW01` (8 bytes), module SHA-256 (32), payload SHA-256 (32), payload.
struct CompilationCache: Sendable {
    /// The directory holding the files.
    let directory: String
    /// The engine identity in file names: wasmtime version, configuration and architecture.
    let engineTag: String

    private static let magic = Array("PEONCW01".utf8)
    private static let headerSize = 8 + 32 + 32
    /// Files larger than this are not read (a compiled module this large is not plausible).
    private static let maximumFileSize = 2 << 30

    /// The file for a module digest.
    func path(for moduleDigest: [UInt8]) -> String {
        "\(directory)/\(hex(moduleDigest))-\(engineTag).cwasm"
    }

    /// Creates the directory (mode 0700) when missing, then checks it can be trusted; returns the reason
    /// it cannot.
    func prepareDirectory() -> String? {
        if !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                return "cannot create cache directory \(directory): \(error.localizedDescription)"
            }
        }
        var status = stat()
        guard stat(directory, &status) == 0 else { return "cannot stat cache directory \(directory)" }
        guard status.st_mode & S_IFMT == S_IFDIR else { return "cache path \(directory) is not a directory" }
        guard status.st_uid == geteuid() else { return "cache directory \(directory) belongs to another user" }
        guard status.st_mode & 0o022 == 0 else {
            return "cache directory \(directory) is writable by group or others; chmod 700 it"
        }
        return nil
    }

    /// The verified payload for `moduleDigest`, `.none` when there is no file, or the reason a file was refused.
    func load(_ moduleDigest: [UInt8]) -> Result<[UInt8], CacheRejection>? {
        let file = path(for: moduleDigest)
        let descriptor = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            return errno == ENOENT ? nil : .failure(CacheRejection("cannot open \(file): \(String(cString: strerror(errno)))"))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            return .failure(CacheRejection("\(file) is not a regular file"))
        }
        guard status.st_uid == geteuid(), status.st_mode & 0o022 == 0 else {
            return .failure(CacheRejection("\(file) belongs to another user or is writable by others"))
        }
        guard status.st_size >= Self.headerSize, status.st_size <= Self.maximumFileSize else {
            return .failure(CacheRejection("\(file) has an implausible size of \(status.st_size) bytes"))
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                retryingInterrupts { read(descriptor, buffer.baseAddress.map { $0 + filled }, buffer.count - filled) }
            }
            guard count > 0 else { return .failure(CacheRejection("\(file) could not be read completely")) }
            filled += count
        }
        guard bytes.starts(with: Self.magic) else { return .failure(CacheRejection("\(file) is not a peon-wasm cache file")) }
        guard Array(bytes[8..<40]) == moduleDigest else {
            return .failure(CacheRejection("\(file) was compiled from another module"))
        }
        let payload = Array(bytes[Self.headerSize...])
        guard Array(SHA256.hash(data: payload)) == Array(bytes[40..<72]) else {
            return .failure(CacheRejection("\(file) fails its checksum (corrupted or truncated)"))
        }
        return .success(payload)
    }

    /// Writes `payload` for `moduleDigest` atomically: into a new file of mode 0600 beside the target,
    /// then renamed over it, so a concurrent reader sees the old file, the new file or none. Returns
    /// whether it was written.
    @discardableResult
    func store(_ payload: [UInt8], for moduleDigest: [UInt8]) -> Bool {
        var contents = Self.magic
        contents += moduleDigest
        contents += Array(SHA256.hash(data: payload))
        contents += payload
        let target = path(for: moduleDigest)
        let temporary = "\(target).\(getpid()).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return false }
        let written = writeFully(descriptor, contents) == 0
        let closed = close(descriptor) == 0
        guard written, closed, rename(temporary, target) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }

    /// The default cache directory: `$XDG_CACHE_HOME/peon-wasm/wasmtime`, else
    /// `$HOME/.cache/peon-wasm/wasmtime` (`~/Library/Caches/peon-wasm/wasmtime` on macOS).
    static var defaultDirectory: String? {
        let environment = ProcessInfo.processInfo.environment
        if let base = environment["XDG_CACHE_HOME"], base.hasPrefix("/") {
            return "\(base)/peon-wasm/wasmtime"
        }
        guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
        #if os(macOS)
        return "\(home)/Library/Caches/peon-wasm/wasmtime"
        #else
        return "\(home)/.cache/peon-wasm/wasmtime"
        #endif
    }
}

/// Why a cache file was not used.
struct CacheRejection: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
