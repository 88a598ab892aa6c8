import PeonABI
import PeonEngine
import PeonInterface
import PeonRuntime
import Testing

/// The `peon:host` functions as a component sees them: the same host calls as core modules, with every
/// component value checked against the WIT type before the host is asked.
@Suite("peon:host bindings for components")
struct ComponentBindingsTests {
    static func function(_ interface: String, _ name: String, host: RecordingHost, limits: CanonicalLimits = CanonicalLimits())
        throws -> ComponentHostFunction
    {
        try #require(PeonHostBindings.componentFunctions(for: host, limits: limits).first {
            $0.interface == "peon:host/\(interface)@0.1.0" && $0.name == name
        })
    }

    static func errorRecord(_ code: HostErrorCode, _ message: String) -> ComponentValue {
        .record([ComponentField("code", .enumeration(code.description)), ComponentField("message", .string(message))])
    }

    @Test("every WIT function is offered once, under its interface, as for core modules")
    func everyFunctionIsOffered() {
        let functions = PeonHostBindings.componentFunctions(for: RecordingHost())
        let names = functions.map { "\($0.interface)#\($0.name)" }
        let core = PeonHostBindings.importDescriptors.map { "\($0.module)#\($0.name)" }
        #expect(names == core)
        #expect(PeonHostBindings.servesComponentImport("peon:host/types@0.1.0"))
        #expect(PeonHostBindings.servesComponentImport("wasi:cli/stdout@0.2.9"))
        #expect(!PeonHostBindings.servesComponentImport("wasi:http/outgoing-handler@0.2.9"))
        #expect(!PeonHostBindings.servesComponentImport("peon:host/fs@0.2.0"))
        #expect(!PeonHostBindings.servesComponentImport("peon:host/net@0.1.0"))
    }

    @Test("fs.read: a string path reaches the host; its bytes come back as ok(list<u8>)")
    func readReachesTheHost() throws {
        let host = RecordingHost()
        let read = try Self.function("fs", "read", host: host)
        let results = try read.body([.string("notes/a.txt")])
        #expect(host.calls == [.read("notes/a.txt")])
        #expect(results == [.result(isOk: true, .bytes(Array("file contents".utf8)))])
    }

    @Test("a host refusal comes back as err(error { code, message }) with the WIT's case names")
    func refusalIsAnErrorRecord() throws {
        let host = RecordingHost(failure: HostError(.invalidArgument, "no"))
        let results = try Self.function("fs", "remove", host: host).body([.string("x")])
        #expect(results == [.result(isOk: false, Self.errorRecord(.invalidArgument, "no"))])
    }

    @Test("db.query: named variant cases become database values; rows come back with field names")
    func databaseValuesConvertBothWays() throws {
        let host = RecordingHost(rows: DatabaseRows(columns: ["n"], rows: [[.integer(3), .null, .real(1.5), .text("t"), .blob([1])]]))
        let query = try Self.function("db", "query", host: host)
        let parameters: ComponentValue = .list([
            .variant("null", nil), .variant("integer", .s64(-1)), .variant("real", .f64(2)), .variant("text", .string("ä")),
            .variant("blob", .bytes([0, 9])),
        ])
        let results = try query.body([.string("main"), .string("SELECT 1"), parameters])
        #expect(host.calls == [.query("main", "SELECT 1", [.null, .integer(-1), .real(2), .text("ä"), .blob([0, 9])])])
        #expect(results == [.result(isOk: true, .record([
            ComponentField("columns", .list([.string("n")])),
            ComponentField("rows", .list([.list([
                .variant("integer", .s64(3)), .variant("null", nil), .variant("real", .f64(1.5)), .variant("text", .string("t")),
                .variant("blob", .bytes([1])),
            ])])),
        ]))])
    }

    @Test("values of the wrong shape end the call naming the import; the host is never asked",
          arguments: [
              ("fs", "read", [ComponentValue.u32(7)], "expected string, got a u32"),
              ("fs", "write", [.string("a"), .list([.string("x")])], "expected u8"),
              ("db", "query", [.string("d"), .string("s"), .list([.variant("bogus", nil)])], "variant case 'bogus'"),
              ("db", "query", [.string("d"), .string("s"), .list([.variant("integer", nil)])], "payload"),
              ("http", "send", [.record([ComponentField("method", .string("GET"))])], "expected record"),
              ("log", "log", [.enumeration("loud"), .string("m")], "enum case 'loud'"),
              ("fs", "read", [.string("a"), .string("b")], "called with 2 arguments"),
              ("exec", "run", [.string("p"), .list([.s32(1)]), .bytes([])], "expected string, got an s32"),
          ] as [(String, String, [ComponentValue], String)])
    func wrongShapesAreRefused(_ interface: String, _ name: String, _ arguments: [ComponentValue], _ expected: String) throws {
        let host = RecordingHost()
        let function = try Self.function(interface, name, host: host)
        let error = #expect(throws: GuestMemoryError.self) { try function.body(arguments) }
        #expect(error?.message.hasPrefix("peon:host/\(interface)@0.1.0#\(name): ") == true, "\(String(describing: error))")
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        #expect(host.calls.isEmpty)
    }

    @Test("arguments over the canonical limits are refused as error(limit-exceeded) and reported to the host")
    func oversizedArgumentsAreRefused() throws {
        let host = RecordingHost()
        let write = try Self.function("fs", "write", host: host, limits: CanonicalLimits(maxBytes: 16, maxElements: 4))
        let results = try write.body([.string("f"), .bytes(Array(repeating: 1, count: 64))])
        guard case .result(false, .record(let fields)?) = results.first else {
            Issue.record("expected err(error), got \(results)")
            return
        }
        #expect(fields.first == ComponentField("code", .enumeration("limit-exceeded")))
        #expect(host.calls == [.refused("fs.write", .limitExceeded)])
    }

    @Test("each function declares its wit/peon.wit type for the engine to check before instantiation")
    func functionsDeclareTheirWITTypes() throws {
        let host = RecordingHost()
        let error = "record { code: enum { denied, invalid-argument, not-found, limit-exceeded, io, timeout }, message: string }"
        #expect(try Self.function("fs", "read", host: host).type?.description == "func(string) -> result<list<u8>, \(error)>")
        #expect(try Self.function("fs", "write", host: host).type?.description == "func(string, list<u8>) -> result<_, \(error)>")
        #expect(try Self.function("log", "log", host: host).type?.description == "func(enum { debug, info, warn, error }, string)")
        #expect(try Self.function("db", "query", host: host).type?.description
            == "func(string, string, list<variant { null, integer(s64), real(f64), text(string), blob(list<u8>) }>) -> "
            + "result<record { columns: list<string>, rows: list<list<variant { null, integer(s64), real(f64), text(string), blob(list<u8>) }>> }, \(error)>")
        // Every function is typed: none is left for the engine to accept with any type.
        #expect(PeonHostBindings.componentFunctions(for: host).allSatisfy { $0.type != nil })
        #expect(host.calls.isEmpty)
    }

    @Test("components get a 16 MiB per-call argument limit; a call over it is an audited limit-exceeded refusal")
    func oversizedCallsAreRefusedBeforeTheBody() throws {
        let host = RecordingHost()
        let write = try Self.function("fs", "write", host: host, limits: PeonHostBindings.componentArgumentLimits)
        #expect(write.maximumArgumentBytes == 16 << 20)
        #expect(PeonHostBindings.componentFunctions(for: host).allSatisfy { $0.maximumArgumentBytes == 16 << 20 })
        let oversized = try #require(write.oversized)
        let results = try oversized("the arguments hold more than 16777216 bytes of strings and lists")
        #expect(results == [.result(isOk: false, Self.errorRecord(.limitExceeded, "the arguments hold more than 16777216 bytes of strings and lists"))])
        #expect(host.calls == [.refused("fs.write", .limitExceeded)])
        // log has no result to carry the refusal: the call ends instead.
        let log = try #require(try Self.function("log", "log", host: host).oversized)
        #expect(throws: GuestMemoryError.self) { try log("too big") }
    }

    @Test("a result over 1 Mi list elements (each list<u8> byte one) reaches a component as error(limit-exceeded); one at the limit passes")
    func resultsAreBoundedByListElements() throws {
        let limit = PeonHostBindings.componentResultElements
        #expect(limit == 1 << 20)
        let atLimit = RecordingHost(fileContents: [UInt8](repeating: 0x61, count: limit))
        let read = try Self.function("fs", "read", host: atLimit, limits: PeonHostBindings.componentArgumentLimits)
        #expect(try read.body([.string("a.txt")]) == [.result(isOk: true, .bytes([UInt8](repeating: 0x61, count: limit)))])

        // One byte more is far below the 16 MiB byte limit, but each byte would cross as two host values.
        let over = RecordingHost(fileContents: [UInt8](repeating: 0x61, count: limit + 1))
        let refused = try Self.function("fs", "read", host: over, limits: PeonHostBindings.componentArgumentLimits)
        let message = "the result holds more than 1048576 list elements (each byte of a list<u8> one), over a component's per-call limit"
        #expect(try refused.body([.string("a.txt")]) == [.result(isOk: false, Self.errorRecord(.limitExceeded, message))])
        #expect(over.calls == [.read("a.txt")])

        // Elements of other lists count too: 1 Mi + 1 directory entries, each one byte long.
        let entries = RecordingHost(directoryEntries: [String](repeating: "x", count: limit + 1))
        let listing = try Self.function("fs", "read-dir", host: entries, limits: CanonicalLimits(maxBytes: 64 << 20))
        #expect(try listing.body([.string(".")]) == [.result(isOk: false, Self.errorRecord(.limitExceeded, message))])
    }

    @Test("a component's run result must be result<string, string>")
    func runResultShapeIsChecked() throws {
        final class Answering: ComponentInstance {
            let answer: [ComponentValue]
            init(_ answer: [ComponentValue]) { self.answer = answer }
            func call(_ export: String, _ arguments: [ComponentValue], type: ComponentFunctionType) throws -> [ComponentValue] { answer }
            var remainingFuel: UInt64? { nil }
        }
        #expect(try PeonHostBindings.callComponentRun(Answering([.result(isOk: true, .string("hi"))]), input: "") == .success("hi"))
        #expect(try PeonHostBindings.callComponentRun(Answering([.result(isOk: false, .string("no"))]), input: "")
            == .failure(GuestRunError(message: "no")))
        #expect(throws: CanonicalValueMismatch.self) {
            try PeonHostBindings.callComponentRun(Answering([.result(isOk: true, .u32(1))]), input: "")
        }
        #expect(throws: CanonicalValueMismatch.self) { try PeonHostBindings.callComponentRun(Answering([]), input: "") }
        // The message names the shape, never the contents: a guest's value may be megabytes long.
        #expect {
            try PeonHostBindings.callComponentRun(Answering([.bytes([UInt8](repeating: 0, count: 1 << 20))]), input: "")
        } throws: { error in
            "\(error)" == "run returned a list of 1048576 u8, not a result<string, string>"
        }
    }
}

/// The component header and a component's import and export names, read without an engine.
@Suite("component binaries")
struct ComponentBinaryTests {
    /// A component importing instance `peon:host/fs@0.1.0` (type 0) and exporting func `run` (index 0):
    /// the header, a type section (skipped whole), an import section and an export section.
    static let tiny: [UInt8] = {
        let name = Array("peon:host/fs@0.1.0".utf8)
        let imports: [UInt8] = [0x01, 0x00, UInt8(name.count)] + name + [0x05, 0x00]
        let exports: [UInt8] = [0x01, 0x00, 0x03] + Array("run".utf8) + [0x01, 0x00, 0x00]
        return [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
            + [0x07, 0x02, 0xAA, 0xBB]
            + [0x0a, UInt8(imports.count)] + imports
            + [0x0b, UInt8(exports.count)] + exports
    }()

    @Test("the layer bytes tell a component from a core module")
    func headerIsRecognized() {
        #expect(ComponentBinary.isComponent(Self.tiny))
        #expect(!ComponentBinary.isComponent([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]))
        #expect(!ComponentBinary.isComponent([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00]))
    }

    @Test("imports and exports are listed with their kinds")
    func interfaceIsRead() throws {
        let interface = try ComponentBinary.interface(Self.tiny)
        #expect(interface.imports == [ComponentBinary.Item(name: "peon:host/fs@0.1.0", kind: "instance")])
        #expect(interface.exports == [ComponentBinary.Item(name: "run", kind: "func")])
    }

    @Test("the legacy 0x01 name form is a plain name, as wasmtime reads it: no suffix swallows the next import")
    func legacyNameFormIsAPlainName() throws {
        // Import `a` (a func, type 0) in the legacy form `0x01 name`, then instance `peon:host/log@0.1.7`. wasmtime 50
        // (wasmparser) reads `0x01` exactly like `0x00`; reading a "version suffix" after the name instead takes the
        // func's kind byte for one and desynchronizes from the engine for the rest of the section.
        let other = Array("peon:host/log@0.1.7".utf8)
        let imports: [UInt8] = [0x02, 0x01, 0x01, UInt8(ascii: "a"), 0x01, 0x00, 0x00, UInt8(other.count)] + other + [0x05, 0x01]
        let bytes: [UInt8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00] + [0x0a, UInt8(imports.count)] + imports
        let interface = try ComponentBinary.interface(bytes)
        #expect(interface.imports == [ComponentBinary.Item(name: "a", kind: "func"),
                                      ComponentBinary.Item(name: "peon:host/log@0.1.7", kind: "instance")])
    }

    @Test("every truncation and a lying section size is an error, never a crash")
    func truncationsAreErrors() {
        // Cut anywhere inside a section (a cut between sections is a shorter, valid component).
        let sectionEnds: Set<Int> = [8, 12, Self.tiny.count - 2 - 9]
        for length in 8..<Self.tiny.count where !sectionEnds.contains(length) {
            #expect(throws: ComponentBinary.Malformed.self) { try ComponentBinary.interface(Array(Self.tiny.prefix(length))) }
        }
        var lying = Self.tiny
        lying[9] = 0x7f
        #expect(throws: ComponentBinary.Malformed.self) { try ComponentBinary.interface(lying) }
    }
}
