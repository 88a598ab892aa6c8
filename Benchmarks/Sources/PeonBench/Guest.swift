import Foundation
import PeonABI
import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime
import PeonRuntime
import WAT

/// The host functions a benchmark guest calls in a loop, as wit/peon.wit lowers them (the signatures
/// come from the runtime's own bindings, so the guest matches the ABI exactly).
let loopedImports: [(module: String, name: String, label: String)] = [
    ("peon:host/fs@0.1.0", "read", "fs_read"),
    ("peon:host/fs@0.1.0", "write", "fs_write"),
    ("peon:host/db@0.1.0", "query", "db_query"),
    ("peon:host/db@0.1.0", "execute", "db_execute"),
    ("peon:host/exec@0.1.0", "run", "exec_run"),
    ("peon:host/http@0.1.0", "send", "http_send"),
]

/// The floor: a host function that does nothing, with fs.read's core shape (path ptr, path len, return area).
let noopModule = "bench"
let noopName = "noop"

/// Where the host puts call arguments in guest memory, and where results land.
enum GuestLayout {
    static let returnArea: UInt32 = 256
    static let arguments: UInt32 = 1024
    static let heapStart = 131_072  // cabi_realloc's bump heap, reset before every call
}

/// A WAT module with one export per looped import: `loop_LABEL(args..., n) -> ok-count` calls the import
/// n times with the same arguments (the return area fixed, the heap reset each time) and counts `ok` results.
func benchmarkGuestWAT() throws -> String {
    var imports = ""
    var loops = ""
    var all = loopedImports.map { ($0.module, $0.name, $0.label) }
    all.append((noopModule, noopName, "noop"))
    for (module, name, label) in all {
        let signature: FunctionSignature
        if module == noopModule {
            signature = FunctionSignature([.i32, .i32, .i32], [])
        } else {
            guard let expected = PeonHostBindings.expectedSignature(module: module, name: name) else {
                throw BenchFailure("the runtime has no binding for \(module) \(name)")
            }
            signature = expected
        }
        guard signature.results.isEmpty, signature.parameters.allSatisfy({ $0 == .i32 }), let last = signature.parameters.indices.last else {
            throw BenchFailure("unexpected core signature for \(module) \(name): \(signature)")
        }
        let params = signature.parameters.map { "\($0)" }.joined(separator: " ")
        imports += "  (import \"\(module)\" \"\(name)\" (func $\(label) (param \(params))))\n"
        let argumentCount = last  // everything but the return area
        let loopParams = (0..<argumentCount).map { _ in "(param i32)" }.joined(separator: " ")
        let gets = (0..<argumentCount).map { "(local.get \($0))" }.joined(separator: " ")
        loops += """
              (func (export "loop_\(label)") \(loopParams) (param $n i32) (result i32)
                (local $i i32) (local $ok i32)
                (block $done
                  (loop $again
                    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                    (global.set $heap (i32.const \(GuestLayout.heapStart)))
                    (call $\(label) \(gets) (i32.const \(GuestLayout.returnArea)))
                    (local.set $ok (i32.add (local.get $ok) (i32.eqz (i32.load8_u (i32.const \(GuestLayout.returnArea))))))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $again)))
                (local.get $ok))

            """
    }
    return """
        (module
        \(imports)
          (memory (export "memory") 4)
          (global $heap (mut i32) (i32.const \(GuestLayout.heapStart)))
          (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32) (result i32)
            (local $ptr i32) (local $end i32)
            (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                                     (i32.sub (i32.const 0) (local.get $align))))
            (local.set $end (i32.add (local.get $ptr) (local.get $new_size)))
            (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
              (then
                (if (i32.eq (i32.const -1)
                      (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))
                                            (i32.const 1))))
                  (then unreachable))))
            (global.set $heap (local.get $end))
            (if (i32.ne (local.get $old) (i32.const 0))
              (then (memory.copy (local.get $ptr) (local.get $old)
                      (select (local.get $old_size) (local.get $new_size) (i32.lt_u (local.get $old_size) (local.get $new_size))))))
            (local.get $ptr))
        \(loops)
        )
        """
}

func benchmarkGuestBytes() throws -> [UInt8] {
    try wat2wasm(try benchmarkGuestWAT())
}

let noopHostFunction = HostFunction(module: noopModule, name: noopName, signature: FunctionSignature([.i32, .i32, .i32], [])) { _, _ in nil }

/// Builds guest-memory argument blocks: strings and lists laid out from GuestLayout.arguments.
struct ArgumentWriter {
    var bytes: [UInt8] = []
    var base = GuestLayout.arguments

    mutating func align(_ alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
    /// Appends raw bytes; returns (pointer, length).
    mutating func raw(_ data: [UInt8], alignment: Int = 1) -> (UInt32, UInt32) {
        align(alignment)
        let pointer = base + UInt32(bytes.count)
        bytes += data
        return (pointer, UInt32(data.count))
    }
    mutating func string(_ text: String) -> (UInt32, UInt32) { raw(Array(text.utf8)) }
    mutating func u32(_ value: UInt32) {
        bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
    /// list<string>: an array of (ptr, len) pairs.
    mutating func strings(_ texts: [String]) -> (UInt32, UInt32) {
        let parts = texts.map { string($0) }
        align(4)
        let pointer = base + UInt32(bytes.count)
        for (p, l) in parts { u32(p); u32(l) }
        return (pointer, UInt32(texts.count))
    }
    /// list<value> of db integers: each 16 bytes, tag u8 @0 (1 = integer), s64 @8.
    mutating func integers(_ values: [Int64]) -> (UInt32, UInt32) {
        align(8)
        let pointer = base + UInt32(bytes.count)
        for value in values {
            bytes += [1, 0, 0, 0, 0, 0, 0, 0]
            bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) }
        }
        return (pointer, UInt32(values.count))
    }
}

/// One instantiated benchmark guest on one engine with a given set of host functions.
final class Guest {
    let instance: any ModuleInstance
    init(module: any CompiledModule, hostFunctions: [HostFunction]) throws {
        instance = try module.instantiate(hostFunctions + [noopHostFunction], limits: ResourceLimits(memoryBytes: 64 << 20))
    }
    /// Writes the argument block into guest memory.
    func load(_ writer: ArgumentWriter) throws {
        try instance.guest.writeBytes(writer.bytes, at: writer.base)
    }
    /// Calls loop_LABEL(arguments..., n); returns how many calls returned ok.
    func loop(_ label: String, _ arguments: [UInt32], count: Int) throws -> Int {
        let result = try instance.call("loop_\(label)", arguments.map { WasmValue.i32($0) } + [.i32(UInt32(count))])
        guard let first = result.first, let ok = first.i32 else { throw BenchFailure("loop_\(label) returned \(result)") }
        return Int(ok)
    }
}

/// The engines available on this machine: WasmKit always, wasmtime when its library loads.
func availableEngines(report: Report) -> [any WasmEngine] {
    var engines: [any WasmEngine] = [WasmKitEngine()]
    do {
        engines.append(try WasmtimeEngine.load(libraryPath: nil))
    } catch {
        report.line("> wasmtime is not available (\(error)); only WasmKit is measured.")
        report.line()
    }
    return engines
}
