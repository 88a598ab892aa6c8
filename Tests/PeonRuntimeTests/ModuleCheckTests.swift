import PeonABI
import PeonEngine
import PeonRuntime
import PeonTestSupport
import Testing

/// A module that asks for a `peon:host` function this host does not have, or asks with the wrong core
/// type, is refused before it runs, with the import named — not linked to something that reads its
/// memory with the wrong layout. The `run` export and the allocator are checked the same way.
@Suite struct ModuleCheckTests {
    static let goodExports: [ExportDescriptor] = [
        ExportDescriptor(name: "memory", kind: .memory(minimumPages: 1, maximumPages: nil)),
        ExportDescriptor(name: "cabi_realloc", kind: .function(FunctionSignature([.i32, .i32, .i32, .i32], [.i32]))),
        ExportDescriptor(name: "run", kind: .function(FunctionSignature([.i32, .i32], [.i32]))),
        ExportDescriptor(name: "cabi_post_run", kind: .function(FunctionSignature([.i32], []))),
    ]

    static func importing(_ module: String, _ name: String, _ signature: FunctionSignature) -> ImportDescriptor {
        ImportDescriptor(module: module, name: name, kind: .function(signature))
    }

    @Test func aModuleUsingEveryFunctionCorrectlyPasses() throws {
        let imports = PeonHostBindings.hostFunctions(for: RecordingHost()).map {
            Self.importing($0.module, $0.name, $0.signature)
        } + [Self.importing("wasi_snapshot_preview1", "fd_write", FunctionSignature([.i32, .i32, .i32, .i32], [.i32]))]
        try PeonHostBindings.checkModule(imports: imports, exports: Self.goodExports)
    }

    @Test func aWrongSignatureIsRefusedNamingTheImportAndTheExpectedType() {
        let imports = [Self.importing("peon:host/fs@0.1.0", "read", FunctionSignature([.i32, .i32], []))]
        let error = #expect(throws: HostBindingError.self) {
            try PeonHostBindings.checkModule(imports: imports, exports: Self.goodExports)
        }
        #expect(error?.item == "peon:host/fs@0.1.0#read")
        #expect(error?.message.contains("(i32, i32) -> ()") == true)
        #expect(error?.message.contains("(i32, i32, i32) -> ()") == true)
    }

    @Test(arguments: [
        ("peon:host/fs@0.1.0", "read_dir"),  // the dash is part of the name
        ("peon:host/fs@0.2.0", "read"),  // another version
        ("peon:host/net@0.1.0", "connect"),  // an interface that does not exist
        ("peon:host/types@0.1.0", "error"),  // an interface without functions
    ])
    func anUnknownPeonHostImportIsRefusedByName(module: String, name: String) {
        let imports = [Self.importing(module, name, FunctionSignature([.i32, .i32, .i32]))]
        let error = #expect(throws: HostBindingError.self) {
            try PeonHostBindings.checkModule(imports: imports, exports: Self.goodExports)
        }
        #expect(error?.item == "\(module)#\(name)")
        #expect(error?.message.contains("`\(module)#\(name)`") == true)
    }

    @Test func aNonFunctionImportFromPeonHostIsRefused() {
        let imports = [ImportDescriptor(module: "peon:host/fs@0.1.0", name: "read", kind: .global)]
        #expect(throws: HostBindingError.self) { try PeonHostBindings.checkModule(imports: imports, exports: Self.goodExports) }
    }

    @Test func aModuleThatCannotReceiveResultsIsRefused() {
        let imports = [Self.importing("peon:host/fs@0.1.0", "read", FunctionSignature([.i32, .i32, .i32]))]
        let noRealloc = Self.goodExports.filter { $0.name != "cabi_realloc" && $0.name != "run" }
        let error = #expect(throws: HostBindingError.self) { try PeonHostBindings.checkModule(imports: imports, exports: noRealloc) }
        #expect(error?.item == "cabi_realloc")
        let noMemory = Self.goodExports.filter { $0.name != "memory" }
        #expect(throws: HostBindingError.self) { try PeonHostBindings.checkModule(imports: imports, exports: noMemory) }
    }

    @Test func onlyLogNeedsNoAllocator() throws {
        let imports = [Self.importing("peon:host/log@0.1.0", "log", FunctionSignature([.i32, .i32, .i32]))]
        try PeonHostBindings.checkModule(imports: imports, exports: [Self.goodExports[0]])
    }

    @Test func aRunExportOfTheWrongShapeIsRefused() {
        let exports = Self.goodExports.map {
            $0.name == "run" ? ExportDescriptor(name: "run", kind: .function(FunctionSignature([.i32, .i32], [.i32, .i32]))) : $0
        }
        let error = #expect(throws: HostBindingError.self) { try PeonHostBindings.checkModule(imports: [], exports: exports) }
        #expect(error?.item == "run")
    }

    @Test func importDescriptorsListEveryFunctionWithItsSignature() {
        let descriptors = PeonHostBindings.importDescriptors
        #expect(descriptors.count == 10)
        for descriptor in descriptors {
            guard case .function(let signature) = descriptor.kind else { Issue.record("\(descriptor) is not a function"); continue }
            #expect(PeonHostBindings.expectedSignature(module: descriptor.module, name: descriptor.name) == signature)
        }
    }

    @Test func aWASICommandWithoutPeonHostNeedsNothing() throws {
        try PeonHostBindings.checkModule(
            imports: [Self.importing("wasi_snapshot_preview1", "proc_exit", FunctionSignature([.i32]))],
            exports: [ExportDescriptor(name: "_start", kind: .function(FunctionSignature([])))])
    }

    // MARK: run

    @Test func callRunReturnsTheModulesAnswerOrItsError() throws {
        for (discriminant, text) in [(UInt8(0), "summary: ok"), (1, "cannot summarize")] {
            let guest = FakeGuest()
            let instance = FakeInstance(guest: guest)
            var received = ""
            instance.export("run") { arguments in
                received = String(decoding: guest.peek(Int(arguments[0].i32 ?? 0), count: Int(arguments[1].i32 ?? 0)), as: UTF8.self)
                guest.poke(Array(text.utf8), at: 0x600)
                guest.poke([discriminant], at: 0x500)
                guest.poke32(0x600, at: 0x504)
                guest.poke32(UInt32(text.utf8.count), at: 0x508)
                return [.i32(0x500)]
            }
            let result = try PeonHostBindings.callRun(instance, input: "quarterly numbers")
            #expect(received == "quarterly numbers")
            #expect(result == (discriminant == 0 ? .success(text) : .failure(GuestRunError(message: text))))
        }
    }

    @Test func aRunResultPointingOutsideMemoryIsAGuestError() {
        let guest = FakeGuest()
        let instance = FakeInstance(guest: guest)
        instance.export("run") { _ in
            guest.poke([0], at: 0x500)
            guest.poke32(0xFFFF_0000, at: 0x504)
            guest.poke32(0x10, at: 0x508)
            return [.i32(0x500)]
        }
        #expect(throws: GuestMemoryError.self) { _ = try PeonHostBindings.callRun(instance, input: "") }
    }
}
