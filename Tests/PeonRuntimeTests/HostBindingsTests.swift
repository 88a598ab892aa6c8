import Foundation
import PeonABI
import PeonEngine
import PeonInterface
import PeonRuntime
import Synchronization
import PeonTestSupport
import Testing

/// Each `peon:host` import, called the way a canonical-ABI guest calls it, reaches the matching
/// ``HostInterface`` method with the guest's exact values, and the host's answer (or refusal) lands
/// in the return area where the guest will look. A malformed call never reaches the host.
@Suite struct HostBindingsTests {
    /// Places guest data below the fake allocator's heap (which starts at 0x8000).
    struct Arena {
        let guest: FakeGuest
        var cursor = 0x1000

        mutating func place(_ bytes: [UInt8], alignment: Int = 1) -> (WasmValue, WasmValue) {
            cursor = (cursor + alignment - 1) / alignment * alignment
            let start = cursor
            guest.poke(bytes, at: start)
            cursor += bytes.count
            return (.i32(UInt32(start)), .i32(UInt32(bytes.count)))
        }

        mutating func place(_ string: String) -> (WasmValue, WasmValue) { place(Array(string.utf8)) }

        /// A list of (pointer, length) pairs: strings, or two-string records when `pairs` is set.
        mutating func placeStrings(_ strings: [String]) -> (WasmValue, WasmValue) {
            let pointers = strings.map { place($0) }
            var table: [UInt8] = []
            for (pointer, count) in pointers {
                table += bytes32(pointer.i32 ?? 0) + bytes32(count.i32 ?? 0)
            }
            let (start, _) = place(table, alignment: 4)
            return (start, .i32(UInt32(strings.count)))
        }

        func bytes32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
        func bytes64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    }

    static let returnArea = 0x4000

    func function(_ module: String, _ name: String, host: RecordingHost) throws -> HostFunction {
        try #require(PeonHostBindings.hostFunctions(for: host).first { $0.module == module && $0.name == name })
    }

    @Test func everyWITFunctionIsBoundWithItsLoweredSignature() {
        let functions = PeonHostBindings.hostFunctions(for: RecordingHost())
        let expected: [String: FunctionSignature] = [
            "peon:host/fs@0.1.0#read": FunctionSignature([.i32, .i32, .i32]),
            "peon:host/fs@0.1.0#write": FunctionSignature([.i32, .i32, .i32, .i32, .i32]),
            "peon:host/fs@0.1.0#append": FunctionSignature([.i32, .i32, .i32, .i32, .i32]),
            "peon:host/fs@0.1.0#read-dir": FunctionSignature([.i32, .i32, .i32]),
            "peon:host/fs@0.1.0#remove": FunctionSignature([.i32, .i32, .i32]),
            "peon:host/http@0.1.0#send": FunctionSignature(Array(repeating: .i32, count: 9)),
            "peon:host/db@0.1.0#query": FunctionSignature(Array(repeating: .i32, count: 7)),
            "peon:host/db@0.1.0#execute": FunctionSignature(Array(repeating: .i32, count: 7)),
            "peon:host/exec@0.1.0#run": FunctionSignature(Array(repeating: .i32, count: 7)),
            "peon:host/log@0.1.0#log": FunctionSignature([.i32, .i32, .i32]),
        ]
        #expect(Dictionary(uniqueKeysWithValues: functions.map { ("\($0.module)#\($0.name)", $0.signature) }) == expected)
        #expect(PeonHostBindings.interfaceModules == [
            "peon:host/fs@0.1.0", "peon:host/http@0.1.0", "peon:host/db@0.1.0", "peon:host/exec@0.1.0", "peon:host/log@0.1.0",
        ])
        #expect(PeonHostBindings.expectedSignature(module: "peon:host/fs@0.1.0", name: "read_dir") == nil)
        #expect(PeonHostBindings.runFunction.exportSignature == FunctionSignature([.i32, .i32], [.i32]))
    }

    @Test func readPassesThePathAndReturnsTheBytesInGuestMemory() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost(fileContents: [1, 2, 3, 0, 255])
        let (path, length) = arena.place("/srv/reports/q1.txt")
        let result = try invoke(try function("peon:host/fs@0.1.0", "read", host: host), guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
        #expect(result == nil)
        #expect(host.calls == [.read("/srv/reports/q1.txt")])
        #expect(guest.memory[Self.returnArea] == 0)
        #expect(guest.peekBytes(pairAt: Self.returnArea + 4) == [1, 2, 3, 0, 255])
    }

    @Test(arguments: HostErrorCode.allCases)
    func aRefusalReachesTheGuestAsItsErrorCodeAndMessage(code: HostErrorCode) throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost(failure: HostError(code, "no grant allows fs.remove on /etc/passwd"))
        let (path, length) = arena.place("/etc/passwd")
        _ = try invoke(try function("peon:host/fs@0.1.0", "remove", host: host), guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
        #expect(guest.memory[Self.returnArea] == 1)
        #expect(guest.memory[Self.returnArea + 4] == code.rawValue)
        #expect(guest.peekString(pairAt: Self.returnArea + 8) == "no grant allows fs.remove on /etc/passwd")
    }

    @Test func writeAndAppendPassTheirData() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (path, pathLength) = arena.place("notes.txt")
        let (data, dataLength) = arena.place([9, 8, 7])
        let area = WasmValue.i32(UInt32(Self.returnArea))
        _ = try invoke(try function("peon:host/fs@0.1.0", "write", host: host), guest: guest, [path, pathLength, data, dataLength, area])
        #expect(guest.memory[Self.returnArea] == 0)
        _ = try invoke(try function("peon:host/fs@0.1.0", "append", host: host), guest: guest, [path, pathLength, data, dataLength, area])
        #expect(host.calls == [.write("notes.txt", [9, 8, 7]), .append("notes.txt", [9, 8, 7])])
    }

    @Test func readDirReturnsAListOfStrings() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost(directoryEntries: ["a.txt", "", "ünïcode"])
        let (path, length) = arena.place("/srv")
        _ = try invoke(try function("peon:host/fs@0.1.0", "read-dir", host: host), guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
        #expect(guest.memory[Self.returnArea] == 0)
        let list = Int(guest.peek32(Self.returnArea + 4))
        #expect(guest.peek32(Self.returnArea + 8) == 3)
        #expect((0..<3).map { guest.peekString(pairAt: list + $0 * 8) } == ["a.txt", "", "ünïcode"])
    }

    @Test func sendLiftsTheWholeRequestAndLowersTheResponse() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (method, methodLength) = arena.place("POST")
        let (url, urlLength) = arena.place("https://api.example.com/v1/items")
        let (headers, headerCount) = arena.placeStrings(["accept", "text/plain", "x-trace", "42"])
        let (body, bodyLength) = arena.place(Array("{}".utf8))
        // The header table above holds 4 strings; as records of two strings it is 2 headers.
        let headerRecords = WasmValue.i32((headerCount.i32 ?? 0) / 2)
        _ = try invoke(
            try function("peon:host/http@0.1.0", "send", host: host), guest: guest,
            [method, methodLength, url, urlLength, headers, headerRecords, body, bodyLength, .i32(UInt32(Self.returnArea))])
        #expect(host.calls == [.send(HTTPRequestValue(
            method: "POST", url: "https://api.example.com/v1/items",
            headers: [HTTPHeader(name: "accept", value: "text/plain"), HTTPHeader(name: "x-trace", value: "42")],
            body: Array("{}".utf8)))])
        // result<response, error>: discriminant, then response { status u16 @4, headers @8, body @16 }.
        #expect(guest.memory[Self.returnArea] == 0)
        #expect(guest.memory[Self.returnArea + 4] == 201)
        #expect(guest.peek32(Self.returnArea + 12) == 1)
        let header = Int(guest.peek32(Self.returnArea + 8))
        #expect(guest.peekString(pairAt: header) == "content-type")
        #expect(guest.peekString(pairAt: header + 8) == "text/plain")
        #expect(guest.peekString(pairAt: Self.returnArea + 16) == "created")
    }

    @Test func queryPassesTypedParametersAndReturnsRows() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (database, databaseLength) = arena.place("analytics")
        let (sql, sqlLength) = arena.place("select * from orders where id = ? and name = ?")
        let (text, textLength) = arena.place("ada")
        // Two values of 16 bytes each: integer(-5) and text("ada").
        var values: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0] + arena.bytes64(UInt64(bitPattern: -5))
        values += [3, 0, 0, 0, 0, 0, 0, 0] + arena.bytes32(text.i32 ?? 0) + arena.bytes32(textLength.i32 ?? 0)
        let (parameters, _) = arena.place(values, alignment: 8)
        _ = try invoke(
            try function("peon:host/db@0.1.0", "query", host: host), guest: guest,
            [database, databaseLength, sql, sqlLength, parameters, .i32(2), .i32(UInt32(Self.returnArea))])
        #expect(host.calls == [.query("analytics", "select * from orders where id = ? and name = ?", [.integer(-5), .text("ada")])])
        #expect(guest.memory[Self.returnArea] == 0)
        var lifter = CanonicalLifter(guest: guest)
        let value = CanonicalType.variant([nil, .s64, .f64, .string, .list(.u8)])
        let rows = try lifter.load(.record([.list(.string), .list(.list(value))]), at: UInt32(Self.returnArea + 4))
        #expect(rows == .record([
            .list(["id", "name", "score", "photo", "note"].map(CanonicalValue.string)),
            .list([
                .list([.variant(case: 1, payload: .s64(-7)), .variant(case: 3, payload: .string("ada")), .variant(case: 2, payload: .f64(2.5)),
                       .variant(case: 4, payload: .bytes([0, 255])), .variant(case: 0, payload: nil)]),
                .list([.variant(case: 1, payload: .s64(.max)), .variant(case: 3, payload: .string("")), .variant(case: 2, payload: .f64(-0.0)),
                       .variant(case: 4, payload: .bytes([])), .variant(case: 0, payload: nil)]),
            ]),
        ]))
    }

    @Test func executeNeedsAnEightByteAlignedReturnAreaAndReturnsTheCount() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (database, databaseLength) = arena.place("analytics")
        let (sql, sqlLength) = arena.place("delete from orders")
        let execute = try function("peon:host/db@0.1.0", "execute", host: host)
        #expect(throws: GuestMemoryError.self) {
            _ = try invoke(execute, guest: guest, [database, databaseLength, sql, sqlLength, .i32(0), .i32(0), .i32(UInt32(Self.returnArea + 4))])
        }
        #expect(host.calls.isEmpty)
        _ = try invoke(execute, guest: guest, [database, databaseLength, sql, sqlLength, .i32(0), .i32(0), .i32(UInt32(Self.returnArea))])
        #expect(host.calls == [.execute("analytics", "delete from orders", [])])
        #expect(guest.memory[Self.returnArea] == 0)
        #expect(guest.peek64(Self.returnArea + 8) == 0x1_0000_0003)
    }

    @Test func execRunPassesArgumentsAndStdinAndReturnsTheOutput() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (program, programLength) = arena.place("/usr/bin/wc")
        let (arguments, argumentCount) = arena.placeStrings(["-l", "; rm -rf /"])
        let (stdin, stdinLength) = arena.place(Array("a\nb\n".utf8))
        _ = try invoke(
            try function("peon:host/exec@0.1.0", "run", host: host), guest: guest,
            [program, programLength, arguments, argumentCount, stdin, stdinLength, .i32(UInt32(Self.returnArea))])
        #expect(host.calls == [.run("/usr/bin/wc", ["-l", "; rm -rf /"], Array("a\nb\n".utf8))])
        #expect(guest.memory[Self.returnArea] == 0)
        #expect(Int32(bitPattern: guest.peek32(Self.returnArea + 4)) == -2)
        #expect(guest.peekString(pairAt: Self.returnArea + 8) == "out")
        #expect(guest.peekString(pairAt: Self.returnArea + 16) == "err!")
    }

    @Test func logPassesTheLevelAndMessageAndRefusesAnUnknownLevel() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let (message, length) = arena.place("starting")
        let log = try function("peon:host/log@0.1.0", "log", host: host)
        #expect(try invoke(log, guest: guest, [.i32(2), message, length]) == nil)
        #expect(host.calls == [.log(.warn, "starting")])
        let error = #expect(throws: GuestMemoryError.self) { _ = try invoke(log, guest: guest, [.i32(4), message, length]) }
        #expect(error?.message.hasPrefix("peon:host/log@0.1.0#log: ") == true)
        #expect(host.calls.count == 1)
    }

    @Test func aBadArgumentPointerNeverReachesTheHostAndNamesTheImport() throws {
        let guest = FakeGuest()
        let host = RecordingHost()
        let read = try function("peon:host/fs@0.1.0", "read", host: host)
        let error = #expect(throws: GuestMemoryError.self) {
            _ = try invoke(read, guest: guest, [.i32(0xFFFF_FFF0), .i32(64), .i32(UInt32(Self.returnArea))])
        }
        #expect(error?.message.hasPrefix("peon:host/fs@0.1.0#read: ") == true)
        #expect(host.calls.isEmpty)
    }

    /// The host's method is never called, but the host is told, so the refusal is audited like any other.
    @Test func argumentsOverTheLimitAreRefusedAsLimitExceededWithoutCallingTheHostMethod() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let write = try #require(PeonHostBindings.hostFunctions(for: host, limits: CanonicalLimits(maxBytes: 100))
            .first { $0.name == "write" })
        let (path, pathLength) = arena.place("big.bin")
        let (data, dataLength) = arena.place([UInt8](repeating: 1, count: 200))
        _ = try invoke(write, guest: guest, [path, pathLength, data, dataLength, .i32(UInt32(Self.returnArea))])
        #expect(host.calls == [.refused("fs.write", .limitExceeded)])
        #expect(guest.memory[Self.returnArea] == 1)
        #expect(guest.memory[Self.returnArea + 4] == HostErrorCode.limitExceeded.rawValue)
        #expect(guest.peekString(pairAt: Self.returnArea + 8).contains("100-byte limit"))
    }

    @Test func anImportCalledFromInsideReallocIsRefused() throws {
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let host = RecordingHost()
        let functions = PeonHostBindings.hostFunctions(for: host)
        let read = try #require(functions.first { $0.name == "read" })
        let log = try #require(functions.first { $0.name == "log" })
        let (path, length) = arena.place("in.txt")
        let (message, messageLength) = arena.place("sneaky")
        guest.onRealloc = { _ = try invoke(log, guest: guest, [.i32(1), message, messageLength]) }
        let error = #expect(throws: CanonicalValueMismatch.self) {
            _ = try invoke(read, guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
        }
        #expect(error?.message.contains("peon:host/log@0.1.0#log: called from inside cabi_realloc") == true)
        #expect(host.calls == [.read("in.txt")])
        guest.onRealloc = nil
        _ = try invoke(log, guest: guest, [.i32(1), message, messageLength])
        #expect(host.calls.last == .log(.info, "sneaky"), "the guard reopens after the failed call")
    }

    /// The `may_leave` guard is per thread: while one instance's result is being lowered (its `cabi_realloc` is
    /// running), another instance on another thread, bound through the same host-function array, is served.
    @Test func oneSetOfHostFunctionsServesInstancesOnSeveralThreadsAtOnce() throws {
        final class Outcome: Sendable { let text = Mutex("not run") }
        let host = RecordingHost()
        let read = try #require(PeonHostBindings.hostFunctions(for: host).first { $0.name == "read" })
        let insideRealloc = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let first = Outcome()
        let thread = Thread {
            let guest = FakeGuest()
            var arena = Arena(guest: guest)
            let (path, length) = arena.place("first.txt")
            var paused = false
            guest.onRealloc = {
                guard !paused else { return }
                paused = true
                insideRealloc.signal()
                release.wait()
            }
            do {
                _ = try invoke(read, guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
                first.text.withLock { $0 = guest.memory[Self.returnArea] == 0 ? "ok" : "error result" }
            } catch {
                first.text.withLock { $0 = "\(error)" }
            }
            finished.signal()
        }
        thread.start()
        insideRealloc.wait()
        let guest = FakeGuest()
        var arena = Arena(guest: guest)
        let (path, length) = arena.place("second.txt")
        _ = try invoke(read, guest: guest, [path, length, .i32(UInt32(Self.returnArea))])
        #expect(guest.memory[Self.returnArea] == 0)
        release.signal()
        finished.wait()
        #expect(first.text.withLock { $0 } == "ok")
        #expect(Set(host.calls.map { "\($0)" }) == ["read(\"first.txt\")", "read(\"second.txt\")"])
    }
}
