import Foundation
import PeonEngine
import WAT

/// Compute-heavy guests on each engine, beside the same algorithm written in Swift: what the choice of engine
/// costs a guest that spends its time computing rather than calling the host.
///
/// Three kernels stress different things: recursive `fib` (calls), a sieve of Eratosthenes over linear memory
/// (loads and stores), and an xorshift64* loop (64-bit arithmetic). Every guest result is checked against the
/// Swift twin's, so a miscompiled or wrongly bound kernel fails the run instead of reporting a time.
struct ComputeBench {
    let report: Report
    let engines: [any WasmEngine]
    let quick: Bool

    static let wat = """
        (module
          (memory (export "memory") 64)
          (func $fib (export "fib") (param $n i32) (result i32)
            (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
              (then (local.get $n))
              (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                             (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
          (func (export "sieve") (param $n i32) (result i32)
            (local $i i32) (local $j i32) (local $count i32)
            (memory.fill (i32.const 0) (i32.const 0) (local.get $n))
            (local.set $i (i32.const 2))
            (block $done
              (loop $outer
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (if (i32.eqz (i32.load8_u (local.get $i)))
                  (then
                    (local.set $count (i32.add (local.get $count) (i32.const 1)))
                    (if (i32.le_u (local.get $i) (i32.div_u (local.get $n) (local.get $i)))
                      (then
                        (local.set $j (i32.mul (local.get $i) (local.get $i)))
                        (block $marked
                          (loop $mark
                            (br_if $marked (i32.ge_u (local.get $j) (local.get $n)))
                            (i32.store8 (local.get $j) (i32.const 1))
                            (local.set $j (i32.add (local.get $j) (local.get $i)))
                            (br $mark)))))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $outer)))
            (local.get $count))
          (func (export "mix") (param $n i32) (result i64)
            (local $x i64) (local $i i32)
            (local.set $x (i64.const 0x9E3779B97F4A7C15))
            (block $done
              (loop $again
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 12))))
                (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 25))))
                (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 27))))
                (local.set $x (i64.mul (local.get $x) (i64.const 0x2545F4914F6CDD1D)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $again)))
            (local.get $x))
        )
        """

    /// One kernel: its export, argument, what it stresses, and its Swift twin.
    struct Kernel {
        var export: String
        var argument: UInt32
        var label: String
        var native: (UInt32) -> UInt64
    }

    static func fib(_ n: UInt32) -> UInt32 { n < 2 ? n : fib(n - 1) &+ fib(n - 2) }

    static func sieve(_ n: UInt32) -> UInt32 {
        var composite = [UInt8](repeating: 0, count: Int(n))
        var count: UInt32 = 0
        var i = 2
        while i < Int(n) {
            if composite[i] == 0 {
                count += 1
                if i <= Int(n) / i {
                    var j = i * i
                    while j < Int(n) { composite[j] = 1; j += i }
                }
            }
            i += 1
        }
        return count
    }

    static func mix(_ n: UInt32) -> UInt64 {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<n {
            x ^= x >> 12
            x ^= x << 25
            x ^= x >> 27
            x = x &* 0x2545_F491_4F6C_DD1D
        }
        return x
    }

    var kernels: [Kernel] {
        [
            Kernel(export: "fib", argument: quick ? 24 : 27, label: "calls", native: { UInt64(Self.fib($0)) }),
            Kernel(export: "sieve", argument: quick ? 1_000_000 : 4_000_000, label: "memory", native: { UInt64(Self.sieve($0)) }),
            Kernel(export: "mix", argument: quick ? 2_000_000 : 10_000_000, label: "64-bit arithmetic", native: { Self.mix($0) }),
        ]
    }

    func run() throws {
        report.line("## Compute-heavy guests, engine against engine")
        report.line()
        report.line("A guest that computes instead of calling the host: three kernels in one WAT module, each run whole per sample, "
            + "on each engine, beside the same algorithm compiled by Swift (release, `-O`) in this process. The guest's answer is checked "
            + "against Swift's every time. wasmtime meters fuel in every store (see the engine table in docs/engines.md), so its column includes that cost.")
        report.line()
        let bytes = try wat2wasm(Self.wat)
        let samples = quick ? 5 : 15
        var rows: [[String]] = []
        var speedups: [String] = []
        for kernel in kernels {
            let expected = kernel.native(kernel.argument)
            let native = try measure(count: samples, batch: 1, warmup: 1) {
                guard kernel.native(kernel.argument) == expected else { throw BenchFailure("the Swift \(kernel.export) is not deterministic") }
            }
            var row = ["`\(kernel.export)(\(formatCount(Int(kernel.argument))))` — \(kernel.label)", formatNS(native.median)]
            var medians: [String: Double] = [:]
            for engine in engines {
                let module = try engine.compile(bytes)
                let instance = try module.instantiate([], limits: ResourceLimits(memoryBytes: 64 << 20))
                let stats = try measure(count: samples, batch: 1, warmup: 1) {
                    let result = try instance.call(kernel.export, [.i32(kernel.argument)])
                    let value: UInt64? = result.first.flatMap { $0.i64 ?? $0.i32.map(UInt64.init) }
                    guard value == expected else {
                        throw BenchFailure("\(engine.name) \(kernel.export)(\(kernel.argument)) returned \(result), Swift says \(expected)")
                    }
                }
                medians[engine.name] = stats.median
                progress("compute \(engine.name) \(kernel.export): \(formatNS(stats.median)) (Swift \(formatNS(native.median)))")
                row += [formatNS(stats.median), formatNS(stats.p99), String(format: "%.1f×", stats.median / native.median)]
            }
            if let interpreted = medians["wasmkit"], let compiled = medians["wasmtime"] {
                row.append(String(format: "**%.0f×**", interpreted / compiled))
                speedups.append("\(kernel.export) " + String(format: "%.0f×", interpreted / compiled))
            }
            rows.append(row)
        }
        var header = ["kernel", "Swift median"]
        for engine in engines { header += ["\(engine.name) median", "\(engine.name) p99", "\(engine.name) ÷ Swift"] }
        if engines.count > 1 { header.append("wasmtime speed-up over WasmKit") }
        report.table(header, rows)
        if !speedups.isEmpty {
            report.line("- wasmtime over WasmKit on compute (median): " + speedups.joined(separator: ", "))
            report.line()
        }
    }
}
