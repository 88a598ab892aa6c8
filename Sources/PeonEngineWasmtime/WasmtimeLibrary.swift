// Finding, opening and configuring the wasmtime shared library.
import CWasmtime
import Foundation
import PeonEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wasmtime major version whose C API layouts CWasmtime declares. Another major is refused.
let requiredWasmtimeMajor: UInt32 = 50

/// What to tell a user who has no usable wasmtime.
let wasmtimeInstallHint =
    "install it with `pip install wasmtime==50.0.1`, or pass --wasmtime-lib PATH (or set PEON_WASMTIME_LIB) to a wasmtime 50 libwasmtime"

/// An opened wasmtime library and the one `wasm_engine_t` peon-wasm configures in it, shared by every
/// ``WasmtimeEngine`` loaded from the same file for the life of the process.
///
/// The engine is configured with fuel metering and epoch interruption on, so every store can be given
/// a fuel budget and a deadline (stores without them get an unreachable budget and deadline).
///
/// `@unchecked Sendable`: the function table is immutable after loading, and wasmtime documents
/// `wasm_engine_t` and `wasmtime_module_t` as safe to share between threads; stores never leave the
/// instance that owns them.
final class WasmtimeRuntime: @unchecked Sendable {
    /// The resolved C functions.
    let api: peon_wasmtime_api
    /// The configured engine; never deleted (see the type's doc).
    let engine: OpaquePointer
    /// The library's version, e.g. `50.0.0`.
    let version: String
    /// The file the library was opened from.
    let path: String
    /// Advances the engine's epoch while some guest runs under a deadline.
    let ticker: EpochTicker

    private init(api: peon_wasmtime_api, engine: OpaquePointer, version: String, path: String) {
        self.api = api
        self.engine = engine
        self.version = version
        self.path = path
        self.ticker = EpochTicker(api: api, engine: engine)
    }

    /// Runtimes already opened, by the path they were opened from.
    private static let opened = Mutex<[String: WasmtimeRuntime]>([:])

    /// Opens (or returns the already opened) runtime for the library at `path`.
    ///
    /// `origin` names where the path came from, for the error message (e.g. "--wasmtime-lib").
    static func open(path: String, origin: String) throws(EngineError) -> WasmtimeRuntime {
        let result: Result<WasmtimeRuntime, EngineError> = opened.withLock { table in
            if let runtime = table[path] { return .success(runtime) }
            var buffer = [CChar](repeating: 0, count: 512)
            let probe = peon_wasmtime_probe_version(path, 1, 200, &buffer, buffer.count)
            guard probe >= 0 else {
                return .failure(EngineError(.unavailable,
                    "cannot load wasmtime from \(path) (from \(origin)): \(text(buffer)); \(wasmtimeInstallHint)"))
            }
            guard probe == 1 else {
                return .failure(EngineError(.unavailable,
                    "\(path) (from \(origin)) does not identify its wasmtime version (no resolve_vmctx_memory_ptr_<version> symbol), so its C API layouts cannot be trusted; \(wasmtimeInstallHint)"))
            }
            let versionText = text(buffer)
            guard versionText.split(separator: ".").first == "\(requiredWasmtimeMajor)"[...] else {
                return .failure(EngineError(.unavailable,
                    "\(path) (from \(origin)) is wasmtime \(versionText); peon-wasm needs wasmtime \(requiredWasmtimeMajor) because C API layouts change between major versions: \(wasmtimeInstallHint)"))
            }
            guard let functions = peon_wasmtime_open(path, &buffer, buffer.count) else {
                return .failure(EngineError(.unavailable,
                    "cannot load wasmtime from \(path) (from \(origin)): \(text(buffer)); \(wasmtimeInstallHint)"))
            }
            let api = functions.pointee
            let config = api.wasm_config_new()
            api.wasmtime_config_consume_fuel_set(config, true)
            api.wasmtime_config_epoch_interruption_set(config, true)
            // The GC proposal's heap is not a linear memory or a table, so `--memory` cannot bound it: a guest held about
            // half the cap again in GC arrays. Off, a module that uses GC types is refused when it compiles. Exceptions
            // live on that heap here too: without it a `throw` trapped as "GC heap out of memory", so they are off as
            // well, and a module using them is refused when it compiles (WasmKit runs them in its own memory).
            api.wasmtime_config_wasm_gc_set(config, false)
            api.wasmtime_config_wasm_exceptions_set(config, false)
            guard let engine = api.wasm_engine_new_with_config(config) else {
                return .failure(EngineError(.unavailable, "wasmtime at \(path) could not create an engine"))
            }
            let runtime = WasmtimeRuntime(api: api, engine: engine, version: versionText, path: path)
            table[path] = runtime
            return .success(runtime)
        }
        return try result.get()
    }

    /// Finds and opens wasmtime: `explicitPath` (from `--wasmtime-lib`), then `PEON_WASMTIME_LIB`, then
    /// the system library path, then the `wasmtime` Python package.
    ///
    /// An explicit path or environment variable that does not work is an error (the user asked for that
    /// file); the two automatic places are tried quietly, and failing both is an error that says how to
    /// install wasmtime.
    static func locate(explicitPath: String?) throws(EngineError) -> WasmtimeRuntime {
        if let explicitPath {
            return try open(path: explicitPath, origin: "--wasmtime-lib")
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment["PEON_WASMTIME_LIB"], !fromEnvironment.isEmpty {
            return try open(path: fromEnvironment, origin: "PEON_WASMTIME_LIB")
        }
        var reasons: [String] = []
        do {
            return try open(path: systemLibraryName, origin: "the system library path")
        } catch {
            reasons.append(error.message)
        }
        if let pythonPath = pythonPackageLibrary() {
            do {
                return try open(path: pythonPath, origin: "the wasmtime Python package")
            } catch {
                reasons.append(error.message)
            }
        }
        if reasons.contains(where: { $0.contains("is wasmtime ") || $0.contains("does not identify") }) {
            throw EngineError(.unavailable, reasons.joined(separator: "; "))
        }
        throw EngineError(.unavailable,
            "wasmtime is not installed: no --wasmtime-lib, no PEON_WASMTIME_LIB, no \(systemLibraryName) on the library path and no wasmtime Python package; \(wasmtimeInstallHint)")
    }

    /// The library's file name as the dynamic loader searches for it.
    static var systemLibraryName: String {
        #if os(macOS)
        "libwasmtime.dylib"
        #else
        "libwasmtime.so"
        #endif
    }

    /// The C API library inside the `wasmtime` Python package, if `python3` finds the package.
    ///
    /// The package is found (`importlib.util.find_spec`), not imported: importing it would run its code, which
    /// loads the same library into Python through ctypes, only to print a folder (about 35 ms of every
    /// `--engine wasmtime` run without `--wasmtime-lib` or `PEON_WASMTIME_LIB`, measured in docs/benchmarks.md).
    static func pythonPackageLibrary() -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.pythonPackageFolderScript("wasmtime")]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let directory = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
              !directory.isEmpty
        else { return nil }
        return "\(directory)/\(pythonPlatformDirectory)/\(pythonLibraryName)"
    }

    /// A Python program that prints the folder of the package `package` (a plain identifier) without importing
    /// it, and exits 0 only when it printed one (1 when there is no such package, or it is a single module).
    static func pythonPackageFolderScript(_ package: String) -> String {
        """
        import importlib.util, sys
        spec = importlib.util.find_spec("\(package)")
        folders = list(spec.submodule_search_locations or []) if spec else []
        if not folders:
            sys.exit(1)
        print(folders[0])
        """
    }

    /// The per-platform folder wasmtime-py keeps its library in, e.g. `linux-x86_64`.
    private static var pythonPlatformDirectory: String {
        #if os(macOS)
        let system = "darwin"
        #else
        let system = "linux"
        #endif
        #if arch(arm64)
        let machine = "aarch64"
        #else
        let machine = "x86_64"
        #endif
        return "\(system)-\(machine)"
    }

    /// The library's file name inside wasmtime-py.
    private static var pythonLibraryName: String {
        #if os(macOS)
        "_libwasmtime.dylib"
        #else
        "_libwasmtime.so"
        #endif
    }
}

/// The text in a NUL-terminated C buffer.
private func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A thread that advances the engine's epoch every ``period`` while at least one guest runs under a
/// deadline, and sleeps otherwise.
///
/// A store's epoch deadline is expressed in ticks, so a deadline `d` away becomes `ceil(d / period) + 1`
/// ticks: the guest is interrupted no earlier than its deadline and at most about one period after it.
///
/// `@unchecked Sendable`: `users` is only touched under `condition`'s lock.
final class EpochTicker: @unchecked Sendable {
    /// The tick interval.
    static let period: Duration = .milliseconds(5)

    private let api: peon_wasmtime_api
    private let engine: OpaquePointer
    private let condition = NSCondition()
    private var users = 0
    private var started = false

    init(api: peon_wasmtime_api, engine: OpaquePointer) {
        self.api = api
        self.engine = engine
    }

    /// Marks the start of a guest run that has a deadline; starts the thread the first time.
    func begin() {
        condition.lock()
        users += 1
        if !started {
            started = true
            let thread = Thread { [self] in run() }
            thread.name = "peon-wasm wasmtime epoch ticker"
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Marks the end of a guest run begun with ``begin()``.
    func end() {
        condition.lock()
        users -= 1
        condition.unlock()
    }

    /// The number of ticks that place the deadline at or after `deadline`.
    static func ticks(until deadline: ContinuousClock.Instant) -> UInt64 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return 1 }
        let ratio = remaining / period
        guard ratio < 1e15 else { return UInt64(1) << 50 }
        return UInt64(ratio.rounded(.up)) + 1
    }

    private func run() {
        let nanoseconds = UInt32(Self.period.components.attoseconds / 1_000_000_000)
        while true {
            condition.lock()
            while users == 0 { condition.wait() }
            condition.unlock()
            usleep(nanoseconds / 1000)
            api.wasmtime_engine_increment_epoch(engine)
        }
    }
}
