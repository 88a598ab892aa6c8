import Foundation
import PeonABI
import PeonEngine
import PeonEngineWasmKit
import PeonInterface
import PeonRuntime
import PeonTestSupport
import Testing

/// Real guests on the real engine: the WAT modules in `Guests/` (which `Guests/check-components.sh`
/// proves are canonical-ABI-exact against `wit/peon.wit`) call every `peon:host` function, and a
/// hostile one feeds the host wrapped pointers, oversized lists, invalid UTF-8, bad discriminants,
/// misaligned return areas and an allocator that lies. The well-behaved calls arrive intact; every
/// hostile one ends the run with a ``GuestMemoryError`` naming the import, and the host survives.
@Suite struct EngineGuestTests {
    static let guestsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Guests")
    static let error = CanonicalType.record([.enumeration(6), .string])

    static func instantiate(_ guest: String, host: RecordingHost) throws -> any ModuleInstance {
        let text = try String(contentsOf: guestsFolder.appendingPathComponent("\(guest).wat"), encoding: .utf8)
        let module = try WasmKitEngine().compile(try wasm(text))
        try PeonHostBindings.checkModule(imports: module.imports, exports: module.exports)
        return try module.instantiate(PeonHostBindings.hostFunctions(for: host), limits: ResourceLimits())
    }

    @Test func aGuestCallingEveryFunctionReachesTheHostWithItsExactValues() throws {
        let contents = Array("line one\nline two\n".utf8)
        let host = RecordingHost(fileContents: contents)
        let instance = try Self.instantiate("every-call", host: host)

        let answer = try PeonHostBindings.callRun(instance, input: "/data/ïn.txt")

        #expect(answer == .success("out"))
        #expect(host.calls == [
            .log(.info, "starting"),
            .read("/data/ïn.txt"),
            .write("out.txt", contents),
            .append("out.txt", contents),
            .readDirectory("/srv"),
            .remove("old.txt"),
            .send(HTTPRequestValue(
                method: "POST", url: "https://api.example.com/v1/items",
                headers: [HTTPHeader(name: "accept", value: "text/plain"), HTTPHeader(name: "x-peon", value: "1")],
                body: contents)),
            .query("analytics", "select * from t where id = ?", [.integer(42), .text("ada")]),
            .execute("analytics", "delete from t", []),
            .run("/usr/bin/wc", ["-l", "x y"], contents),
        ])
        #expect(try instance.guest.readUInt32(at: 0x9f0) == 1, "cabi_post_run ran once")
    }

    @Test func theHostsAnswersLandInTheGuestsReturnAreas() throws {
        let host = RecordingHost()
        let instance = try Self.instantiate("every-call", host: host)
        _ = try PeonHostBindings.callRun(instance, input: "in.txt")

        var lifter = CanonicalLifter(guest: instance.guest)
        let header = CanonicalType.record([.string, .string])
        let value = CanonicalType.variant([nil, .s64, .f64, .string, .list(.u8)])
        #expect(try lifter.load(.result(ok: .list(.string), error: Self.error), at: 0x860)
            == .ok(.list(host.directoryEntries.map(CanonicalValue.string))))
        #expect(try lifter.load(.result(ok: .record([.u16, .list(header), .list(.u8)]), error: Self.error), at: 0x8a0)
            == .ok(.record([.u16(201), .list([.record([.string("content-type"), .string("text/plain")])]), .bytes(Array("created".utf8))])))
        let rows = try lifter.load(.result(ok: .record([.list(.string), .list(.list(value))]), error: Self.error), at: 0x8c0)
        guard case .variant(0, .record(let fields)?) = rows, fields.count == 2, case .list(let lifted) = fields[1] else {
            Issue.record("query did not answer ok(rows): \(rows)")
            return
        }
        #expect(lifted.count == host.rows.rows.count)
        #expect(try lifter.load(.result(ok: .u64, error: Self.error), at: 0x8e0) == .ok(.u64(host.changedRows)))
        #expect(try lifter.load(.result(ok: nil, error: Self.error), at: 0x880) == .ok(nil))
    }

    @Test func aRefusalReachesTheGuestWhichReportsIt() throws {
        let host = RecordingHost(failure: HostError(.denied, "no grant allows fs.read on /etc/shadow"))
        let instance = try Self.instantiate("every-call", host: host)
        let answer = try PeonHostBindings.callRun(instance, input: "/etc/shadow")
        #expect(answer == .failure(GuestRunError(message: "no grant allows fs.read on /etc/shadow")))
        #expect(host.calls == [.log(.info, "starting"), .read("/etc/shadow")])
        var lifter = CanonicalLifter(guest: instance.guest)
        #expect(try lifter.load(.result(ok: .list(.u8), error: Self.error), at: 0x800)
            == .error(.record([.enumeration(0), .string("no grant allows fs.read on /etc/shadow")])))
    }

    @Test func aLargeResultGrowsGuestMemoryThroughItsAllocator() throws {
        let contents = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let host = RecordingHost(fileContents: contents)
        let instance = try Self.instantiate("every-call", host: host)
        #expect(instance.guest.memorySize == 2 * 65536)
        _ = try PeonHostBindings.callRun(instance, input: "big.bin")
        #expect(instance.guest.memorySize > 300_000)
        #expect(host.calls.contains(.write("out.txt", contents)))
    }

    @Test(arguments: [
        ("p", "peon:host/fs@0.1.0#read"),
        ("l", "peon:host/fs@0.1.0#write"),
        ("u", "peon:host/log@0.1.0#log"),
        ("d", "peon:host/db@0.1.0#query"),
        ("r", "peon:host/db@0.1.0#execute"),
    ])
    func aHostileCallEndsTheRunNamingTheImportAndNeverReachesTheHost(mode: String, importName: String) throws {
        let host = RecordingHost()
        let instance = try Self.instantiate("hostile", host: host)
        let error = #expect(throws: GuestMemoryError.self) { _ = try PeonHostBindings.callRun(instance, input: mode) }
        #expect(error?.message.hasPrefix("\(importName): ") == true, "\(error?.message ?? "")")
        #expect(host.calls.isEmpty)
    }

    @Test func anAllocatorReturningABlockOutsideMemoryIsAGuestError() throws {
        let host = RecordingHost()
        let instance = try Self.instantiate("hostile", host: host)
        let error = #expect(throws: GuestMemoryError.self) { _ = try PeonHostBindings.callRun(instance, input: "a") }
        #expect(error?.message.contains("cabi_realloc returned") == true)
    }

    @Test func aRunResultOutsideMemoryIsAGuestError() throws {
        let instance = try Self.instantiate("hostile", host: RecordingHost())
        #expect(throws: GuestMemoryError.self) { _ = try PeonHostBindings.callRun(instance, input: "o") }
        #expect(try PeonHostBindings.callRun(instance, input: "-") == .success("fine"), "the instance is still usable")
    }
}

/// The canonical ABI clears `may_leave` while the host runs guest code on its own behalf: the `cabi_realloc` that
/// copies `run`'s input in, and `cabi_post_run` after the answer was read. An import called there is refused (the run
/// fails naming the import) and never reaches the host; before, `cabi_post_run` could call `log` (and any other import).
@Suite struct ImportsClosedTests {
    /// `run` answers `ok("hi")`; `cabi_post_run` calls `log` when `post` is set, `cabi_realloc` when `realloc` is.
    static func module(callFromPost: Bool, callFromRealloc: Bool) -> String {
        """
        (module
          (import "peon:host/log@0.1.0" "log" (func $log (param i32 i32 i32)))
          (memory (export "memory") 1)
          (global $next (mut i32) (i32.const 0x1000))
          (data (i32.const 0x100) "sneaky")
          (data (i32.const 0x200) "hi")
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (local $at i32)
            \(callFromRealloc ? "(call $log (i32.const 1) (i32.const 0x100) (i32.const 6))" : "")
            (local.set $at (global.get $next))
            (global.set $next (i32.add (global.get $next) (i32.add (local.get 3) (i32.const 8))))
            (local.get $at))
          (func (export "run") (param i32 i32) (result i32)
            (i32.store (i32.const 0x300) (i32.const 0))
            (i32.store (i32.const 0x304) (i32.const 0x200))
            (i32.store (i32.const 0x308) (i32.const 2))
            (i32.const 0x300))
          (func (export "cabi_post_run") (param i32)
            \(callFromPost ? "(call $log (i32.const 1) (i32.const 0x100) (i32.const 6))" : "")))
        """
    }

    static func run(callFromPost: Bool, callFromRealloc: Bool) throws -> (Result<Result<String, GuestRunError>, any Error>, RecordingHost) {
        let host = RecordingHost()
        let module = try WasmKitEngine().compile(try wasm(module(callFromPost: callFromPost, callFromRealloc: callFromRealloc)))
        let instance = try module.instantiate(PeonHostBindings.hostFunctions(for: host), limits: ResourceLimits())
        return (Result { try PeonHostBindings.callRun(instance, input: "input") }, host)
    }

    @Test(arguments: [(true, false), (false, true)])
    func anImportCalledWhereTheABIForbidsItIsRefused(fromPost: Bool, fromRealloc: Bool) throws {
        let (result, host) = try Self.run(callFromPost: fromPost, callFromRealloc: fromRealloc)
        guard case .failure(let error) = result else {
            Issue.record("the run answered \(result) although its guest called log from inside \(fromPost ? "cabi_post_run" : "cabi_realloc")")
            return
        }
        #expect("\(error)".contains("peon:host/log@0.1.0#log: called from inside cabi_realloc"), "\(error)")
        #expect(host.calls.isEmpty, "the import never reached the host: \(host.calls)")
    }

    @Test func theSameGuestWithoutThoseCallsRuns() throws {
        let (result, host) = try Self.run(callFromPost: false, callFromRealloc: false)
        #expect(try result.get() == .success("hi"))
        #expect(host.calls.isEmpty)
    }
}
