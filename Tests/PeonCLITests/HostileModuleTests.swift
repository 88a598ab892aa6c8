import Foundation
import PeonTestSupport
import Testing

/// Threat: a module shaped to break the host rather than to do anything (found by a red-team pass).
@Suite struct HostileModuleTests {
    static var engines: [String] { ComponentRunTests.wasmtimeAvailable ? ["wasmkit", "wasmtime"] : ["wasmkit"] }

    /// `fd_write` with 2^29 I/O vectors in a 4 GiB memory: `count * 8` is 2^32, which crashed the worker with a
    /// Swift backtrace (an overflow trap). More than IOV_MAX vectors are refused now; nothing crashes.
    @Test(arguments: engines)
    func aHugeIOVectorCountInAFourGiBMemoryDoesNotCrashTheHost(engine: String) throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("iov.wat")
            try Data("""
                (module
                  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
                  (memory (export "memory") 65536)
                  (func (export "_start")
                    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0x20000000) (i32.const 0)))))
                """.utf8).write(to: module)
            let run = try runPeonWasm(["run", module.path, "--engine", engine, "--memory", "4GiB", "--timeout", "30s",
                                       "--audit", folder.appendingPathComponent("audit.jsonl").path],
                                      environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(run.status != 70, "the worker crashed: \(run.stderr.prefix(300))")
            #expect(!run.stderr.contains("Program crashed") && !run.stderr.contains("Backtrace"), "\(run.stderr.prefix(300))")
        }
    }

    /// The GC proposal's heap is neither a linear memory nor a table, so `--memory` could not bound it: under wasmtime
    /// (where GC was on by default) a guest held about half the cap again in GC arrays. GC is off on both engines: a
    /// module using GC types is refused before it runs (65).
    @Test(arguments: engines)
    func garbageCollectedTypesAreRefused(engine: String) throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("gc.wat")
            try Data("""
                (module
                  (type $bytes (array (mut i8)))
                  (func (export "_start")
                    (drop (array.new_default $bytes (i32.const 1048576)))))
                """.utf8).write(to: module)
            let run = try runPeonWasm(["run", module.path, "--engine", engine, "--memory", "16MiB", "--timeout", "30s",
                                       "--audit", folder.appendingPathComponent("audit.jsonl").path],
                                      environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(run.status == 65, "\(engine): \(run.status) \(run.stderr.prefix(300))")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr.prefix(600))")
        }
    }

    /// A shared memory (the threads proposal) is not run: an invalid module (65) on both engines. wasmtime refused it
    /// only when instantiating, as a trap (69).
    @Test(arguments: engines)
    func aSharedMemoryIsRefusedAsInvalid(engine: String) throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("shared.wat")
            try Data(#"(module (memory (export "memory") 1 1 shared) (func (export "_start")))"#.utf8).write(to: module)
            let run = try runPeonWasm(["run", module.path, "--engine", engine, "--timeout", "30s",
                                       "--audit", folder.appendingPathComponent("audit.jsonl").path],
                                      environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(run.status == 65, "\(engine): \(run.status) \(run.stderr.prefix(300))")
            // WasmKit's own parser, which does not read the threads proposal, names it first ("malformed limit").
            #expect(engine == "wasmkit" || run.stderr.contains("shared memory"), "\(run.stderr.prefix(300))")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr.prefix(300))")
        }
    }

    /// A start function that runs out of fuel is out of fuel (71) on both engines, not a trap (69) on one.
    @Test(arguments: engines)
    func fuelRunningOutInAStartFunctionIsExit71(engine: String) throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("spin.wat")
            try Data("""
                (module
                  (memory (export "memory") 1)
                  (func $spin (loop $l (br $l)))
                  (start $spin)
                  (func (export "_start")))
                """.utf8).write(to: module)
            let run = try runPeonWasm(["run", module.path, "--engine", engine, "--fuel", "100000", "--timeout", "30s",
                                       "--audit", folder.appendingPathComponent("audit.jsonl").path],
                                      environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(run.status == 71, "\(run.stderr)")
        }
    }
}
