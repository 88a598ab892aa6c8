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
