// The wasmtime engine, loaded at run time: see issue 8.
import CWasmtime
import Crypto
package import PeonEngine

/// The wasmtime engine (Cranelift JIT), loaded at run time from wasmtime's C API library.
///
/// The package builds and the WasmKit engine works without wasmtime installed; this engine is only
/// available once ``load(libraryPath:cacheDirectory:)`` finds a wasmtime 50 library:
///
/// ```swift
/// let engine = try WasmtimeEngine.load()            // or load(libraryPath: "/opt/wasmtime/lib/libwasmtime.so")
/// let module = try engine.compile(bytes)             // compiled once, then served from the cache
/// let instance = try module.instantiate(hostFunctions, limits: ResourceLimits(deadline: .now + .seconds(30)))
/// ```
///
/// It implements the same semantics as the WasmKit engine (see ``WasmEngine``): a passed deadline
/// interrupts running guest code (epoch interruption, checked by a ticker thread every 5 ms), fuel
/// metering is always available, and the memory cap is enforced by the store's limiter. The engine is
/// configured with fuel and epoch checks on for every module, which costs some speed even in runs
/// that set neither.
package struct WasmtimeEngine: WasmEngine {
    let runtime: WasmtimeRuntime
    let cache: CompilationCache?

    /// `wasmtime`.
    package var name: String { "wasmtime" }
    /// True: a passed deadline interrupts running guest code through epoch interruption.
    package var interruptsRunningCode: Bool { true }
    /// True: wasmtime meters fuel.
    package var supportsFuel: Bool { true }
    /// The wasmtime version of the loaded library, e.g. `50.0.0`.
    package var version: String { runtime.version }
    /// The file the library was loaded from.
    package var libraryPath: String { runtime.path }
    /// The directory compiled modules are cached in, or `nil` when caching is off.
    package var cacheDirectory: String? { cache?.directory }

    /// The default compilation cache directory: `$XDG_CACHE_HOME/peon-wasm/wasmtime`, else
    /// `~/.cache/peon-wasm/wasmtime` (`~/Library/Caches/peon-wasm/wasmtime` on macOS); `nil` when
    /// neither variable is set.
    package static var defaultCacheDirectory: String? { CompilationCache.defaultDirectory }

    /// Loads wasmtime and configures an engine.
    ///
    /// The library is looked for at `libraryPath` (the CLI's `--wasmtime-lib`), then at
    /// `PEON_WASMTIME_LIB`, then as `libwasmtime.so` on the system library path, then inside the
    /// `wasmtime` Python package (`pip install wasmtime==50.0.1`). Only wasmtime 50 is accepted: the
    /// C API's struct layouts change between major versions. The library stays loaded for the life of
    /// the process, and engines loaded from the same file share one wasmtime engine.
    ///
    /// - Parameter cacheDirectory: where compiled modules are cached (created with mode 0700), or `nil`
    ///   for no cache. Default: ``defaultCacheDirectory``.
    /// - Throws: ``EngineError`` `.unavailable` with a message saying what was tried and how to install
    ///   wasmtime.
    package static func load(libraryPath: String? = nil, cacheDirectory: String? = WasmtimeEngine.defaultCacheDirectory)
        throws(EngineError) -> WasmtimeEngine
    {
        let runtime = try WasmtimeRuntime.locate(explicitPath: libraryPath)
        let cache = cacheDirectory.map {
            CompilationCache(directory: $0, engineTag: "wasmtime\(runtime.version)-fuel-epoch-\(architecture)")
        }
        return WasmtimeEngine(runtime: runtime, cache: cache)
    }

    /// Compiles and validates a module (or loads its compilation from the cache).
    package func compile(_ bytes: [UInt8]) throws(EngineError) -> any CompiledModule {
        try compileReportingCache(bytes).module
    }

    /// Compiles a module like ``compile(_:)`` and reports what the compilation cache did, for tests,
    /// benchmarks and `--verbose` output.
    package func compileReportingCache(_ bytes: [UInt8]) throws(EngineError)
        -> (module: any CompiledModule, cache: CompilationCacheOutcome)
    {
        guard !bytes.isEmpty else { throw EngineError(.invalidModule, "invalid module: 0 bytes (expected the \\0asm header)") }
        guard let cache else { return (try compileFresh(bytes), .disabled) }
        if let reason = cache.prepareDirectory() {
            return (try compileFresh(bytes), .unusable(reason: reason))
        }
        let digest = Array(SHA256.hash(data: bytes))
        var outcome = CompilationCacheOutcome.miss
        switch cache.load(digest) {
        case .success(let payload):
            switch deserialize(payload) {
            case .success(let handle):
                return (try makeModule(handle, bytes), .hit)
            case .failure(let rejection):
                outcome = .discarded(reason: rejection.reason)
            }
        case .failure(let rejection):
            outcome = .discarded(reason: rejection.reason)
        case nil:
            break
        }
        let module = try compileFresh(bytes)
        if let payload = serialize(module.handle) {
            cache.store(payload, for: digest)
        }
        return (module, outcome)
    }

    private func compileFresh(_ bytes: [UInt8]) throws(EngineError) -> WasmtimeCompiledModule {
        let api = runtime.api
        var handle: OpaquePointer?
        let error = bytes.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            guard let base = buffer.baseAddress else { return nil }
            return api.wasmtime_module_new(runtime.engine, base, buffer.count, &handle)
        }
        if let error {
            throw EngineError(.invalidModule, "invalid module: \(api.consume(error: error))")
        }
        guard let handle else { throw EngineError(.invalidModule, "invalid module: wasmtime returned no module") }
        return try makeModule(handle, bytes)
    }

    /// Wraps a compiled module (taking ownership of `handle`, deleted here on failure) with the memories
    /// and tables `bytes` declares, which the store's limiter is derived from.
    private func makeModule(_ handle: OpaquePointer, _ bytes: [UInt8]) throws(EngineError) -> WasmtimeCompiledModule {
        let storage: DeclaredStorage
        do {
            storage = try DeclaredStorage(parsing: bytes)
        } catch {
            runtime.api.wasmtime_module_delete(handle)
            throw error
        }
        return WasmtimeCompiledModule(runtime: runtime, handle: handle, storage: storage)
    }

    private func serialize(_ module: OpaquePointer) -> [UInt8]? {
        let api = runtime.api
        var bytes = wasm_byte_vec_t()
        if let error = api.wasmtime_module_serialize(module, &bytes) {
            _ = api.consume(error: error)
            return nil
        }
        defer { api.wasm_byte_vec_delete(&bytes) }
        guard let data = bytes.data else { return nil }
        return Array(UnsafeBufferPointer(start: data, count: bytes.size))
    }

    private func deserialize(_ payload: [UInt8]) -> Result<OpaquePointer, CacheRejection> {
        let api = runtime.api
        var handle: OpaquePointer?
        let error = payload.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            guard let base = buffer.baseAddress else { return nil }
            return api.wasmtime_module_deserialize(runtime.engine, base, buffer.count, &handle)
        }
        if let error { return .failure(CacheRejection("wasmtime refused the cached compilation: \(api.consume(error: error))")) }
        guard let handle else { return .failure(CacheRejection("wasmtime returned no module for the cached compilation")) }
        return .success(handle)
    }
}

/// The CPU architecture, part of the cache's engine identity.
private var architecture: String {
    #if arch(x86_64)
    "x86_64"
    #elseif arch(arm64)
    "aarch64"
    #else
    "unknown"
    #endif
}
