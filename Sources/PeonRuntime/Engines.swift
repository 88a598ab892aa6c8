// PeonRuntime's public API names types of two internal targets (the engine protocol and values from
// PeonEngine; the policy sources, snapshot and approver from PeonMediator). Those targets are not products,
// so they are re-exported here: `import PeonRuntime` is all an embedder writes. Only what that API names is
// public in them; everything else there has package access.
@_exported public import PeonEngine
@_exported public import PeonMediator
import PeonEngineWasmKit
import PeonEngineWasmtime

/// The engines a program embedding PeonRuntime runs modules on, for ``RunRequest/engine``.
///
/// The engine targets themselves are internal to the package (no engine type leaves its target), so these
/// factories are the one public way to get an engine; the `peon-wasm` command uses them too.
public enum Engines {
    /// WasmKit, the embedded interpreter and the default: nothing to install.
    ///
    /// - Parameter fuelMetering: whether instructions are counted against ``RunLimits/fuel`` (slower).
    public static func wasmKit(fuelMetering: Bool = false) -> any WasmEngine {
        WasmKitEngine(fuelMetering: fuelMetering)
    }

    /// wasmtime's Cranelift JIT through its C API, loaded from `libraryPath`, or else from `PEON_WASMTIME_LIB`,
    /// `libwasmtime.so` on the library path, or the `wasmtime` 50 Python wheel (`pip install wasmtime==50.0.1`).
    /// Compiled modules are cached in `$XDG_CACHE_HOME/peon-wasm/wasmtime`.
    ///
    /// - Throws: ``RunError/Kind/configuration`` when the library cannot be found or loaded.
    public static func wasmtime(libraryPath: String? = nil) throws(RunError) -> any WasmEngine {
        do {
            return try WasmtimeEngine.load(libraryPath: libraryPath)
        } catch {
            throw RunError(.configuration, error.message)
        }
    }
}
