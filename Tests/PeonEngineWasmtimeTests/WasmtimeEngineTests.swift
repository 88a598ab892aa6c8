import Foundation
import PeonEngine
import PeonEngineWasmtime
import PeonTestSupport
import Testing

/// A module whose only job is to be instantiated and called.
private func instantiate(
    _ text: String, _ hostFunctions: [HostFunction] = [], limits: ResourceLimits = ResourceLimits()
) throws -> any ModuleInstance {
    let engine = try #require(wasmtimeForTests)
    return try engine.compile(try wasm(text)).instantiate(hostFunctions, limits: limits)
}

/// Compiles `text`, then instantiates it with a deadline `deadline` from then: a loaded machine's slow compile does
/// not eat the time the test means for the guest (a deadline taken before compiling passed before instantiation
/// under a full parallel suite).
private func instantiate(
    _ text: String, _ hostFunctions: [HostFunction] = [], deadlineAfterCompiling deadline: Duration
) throws -> any ModuleInstance {
    let engine = try #require(wasmtimeForTests)
    let module = try engine.compile(try wasm(text))
    return try module.instantiate(hostFunctions, limits: ResourceLimits(deadline: .now + deadline))
}

/// An error a host function throws, to check it comes back unchanged.
private struct Refusal: Error, Equatable {
    let code: Int
}

/// Loading: wasmtime is optional, so its absence or a wrong library must be a clear, actionable error.
@Suite struct WasmtimeLoadingTests {
    @Test func aMissingLibraryIsUnavailableAndSaysHowToInstallWasmtime() {
        #expect {
            _ = try WasmtimeEngine.load(libraryPath: "/nonexistent/libwasmtime.so", cacheDirectory: nil)
        } throws: { error in
            guard let error = error as? EngineError, error.kind == .unavailable else { return false }
            return error.message.contains("/nonexistent/libwasmtime.so") && error.message.contains("pip install wasmtime==50.0.1")
        }
    }

    #if os(Linux)
    @Test func aLibraryThatIsNotWasmtimeIsRefusedBeforeAnyLayoutIsTrusted() {
        #expect {
            _ = try WasmtimeEngine.load(libraryPath: "libm.so.6", cacheDirectory: nil)
        } throws: { error in
            guard let error = error as? EngineError, error.kind == .unavailable else { return false }
            return error.message.contains("does not identify its wasmtime version")
        }
    }
    #endif

    @Test(.enabled(if: wasmtimeForTests != nil, wasmtimeSkipMessage))
    func theLoadedLibraryIsWasmtime50() throws {
        let engine = try #require(wasmtimeForTests)
        #expect(engine.version.hasPrefix("50."))
        #expect(engine.name == "wasmtime")
        #expect(engine.interruptsRunningCode && engine.supportsFuel)
    }
}

/// Calls, values and host functions: every C struct we declared (`wasmtime_val_t`, `wasmtime_extern_t`,
/// `wasmtime_func_t`, `wasmtime_memory_t`, `wasmtime_instance_t`, the vectors) goes through real calls here,
/// so a layout mistake shows up as a wrong value rather than as memory corruption later.
@Suite(.enabled(if: wasmtimeForTests != nil, wasmtimeSkipMessage))
struct WasmtimeCallTests {
    @Test func anExportedFunctionReturnsItsResult() throws {
        let instance = try instantiate("""
            (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
            """)
        #expect(try instance.call("add", [.i32(2), .i32(3)]) == [.i32(5)])
        #expect(try instance.call("add", [.i32(0xffff_ffff), .i32(1)]) == [.i32(0)])
    }

    @Test func valuesOfEveryNumberTypeCrossBothWaysBitExactly() throws {
        let echo: [HostFunction] = [WasmValueType.i32, .i64, .f32, .f64].map { type in
            HostFunction(module: "host", name: "echo_\(type)", signature: FunctionSignature([type], [type])) { _, arguments in
                arguments[0]
            }
        }
        let instance = try instantiate("""
            (module
              (import "host" "echo_i32" (func $i32 (param i32) (result i32)))
              (import "host" "echo_i64" (func $i64 (param i64) (result i64)))
              (import "host" "echo_f32" (func $f32 (param f32) (result f32)))
              (import "host" "echo_f64" (func $f64 (param f64) (result f64)))
              (func (export "i32") (param i32) (result i32) local.get 0 call $i32)
              (func (export "i64") (param i64) (result i64) local.get 0 call $i64)
              (func (export "f32") (param f32) (result f32) local.get 0 call $f32)
              (func (export "f64") (param f64) (result f64) local.get 0 call $f64))
            """, echo)
        let values: [WasmValue] = [
            .i32(0x8000_0001), .i64(0x8000_0000_0000_0001), .f32(0x7fc0_1234), .f64(0x7ff8_0000_dead_beef),
            .float(-1.5), .double(.pi),
        ]
        for value in values {
            #expect(try instance.call(value.type.description, [value]) == [value])
        }
    }

    @Test func theModuleDescribesItsImportsAndExports() throws {
        let engine = try #require(wasmtimeForTests)
        let module = try engine.compile(try wasm("""
            (module
              (import "env" "log" (func (param i32 i64)))
              (memory (export "memory") 1 4)
              (func (export "run") (result f64) f64.const 1))
            """))
        #expect(module.imports == [ImportDescriptor(module: "env", name: "log", kind: .function(FunctionSignature([.i32, .i64])))])
        #expect(module.exports == [
            ExportDescriptor(name: "memory", kind: .memory(minimumPages: 1, maximumPages: 4)),
            ExportDescriptor(name: "run", kind: .function(FunctionSignature([], [.f64]))),
        ])
    }

    @Test func aHostFunctionReadsAndWritesTheCallersMemory() throws {
        let upper = HostFunction(module: "env", name: "upper", signature: FunctionSignature([.i32, .i32], [.i32])) { guest, arguments in
            let text = try guest.readString(at: arguments.i32(0), count: arguments.i32(1))
            try guest.writeBytes(Array(text.uppercased().utf8), at: arguments.i32(0))
            return .i32(UInt32(guest.memorySize))
        }
        let instance = try instantiate("""
            (module
              (import "env" "upper" (func $upper (param i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "hello, peon")
              (func (export "run") (result i32) i32.const 16 i32.const 11 call $upper))
            """, [upper])
        #expect(try instance.call("run", []) == [.i32(65536)])
        #expect(try instance.guest.readString(at: 16, count: 11) == "HELLO, PEON")
    }

    @Test func aHostFunctionCallsAnExportSuchAsCabiReallocDuringItsCall() throws {
        let give = HostFunction(module: "env", name: "give", signature: FunctionSignature([], [.i32])) { guest, _ in
            #expect(guest.hasExport("cabi_realloc"))
            let results = try guest.callExport("cabi_realloc", [.i32(0), .i32(0), .i32(1), .i32(5)])
            let pointer = try #require(results.first?.i32)
            try guest.writeBytes(Array("abcde".utf8), at: pointer)
            return .i32(pointer)
        }
        let instance = try instantiate("""
            (module
              (import "env" "give" (func $give (result i32)))
              (memory (export "memory") 1)
              (global $next (mut i32) (i32.const 1024))
              (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
                (local $p i32)
                global.get $next local.set $p
                global.get $next local.get 3 i32.add global.set $next
                local.get $p)
              (func (export "run") (result i32) call $give))
            """, [give])
        #expect(try instance.call("run", []) == [.i32(1024)])
        #expect(try instance.guest.readString(at: 1024, count: 5) == "abcde")
    }

    @Test func anErrorThrownByAHostFunctionSurfacesUnchanged() throws {
        let refuse = HostFunction(module: "env", name: "refuse", signature: FunctionSignature([])) { _, _ in
            throw Refusal(code: 7)
        }
        let instance = try instantiate("""
            (module (import "env" "refuse" (func $refuse)) (func (export "run") call $refuse))
            """, [refuse])
        #expect(throws: Refusal(code: 7)) { try instance.call("run", []) }
        // The instance stays usable and the error is not reported twice.
        #expect(throws: Refusal(code: 7)) { try instance.call("run", []) }
    }

    @Test func errorsInsideANestedExportCallReachTheHostFunctionThatMadeIt() throws {
        // `catching` calls the export `reenter`, which calls the host again (refused, as on every engine)
        // and `boom`, which traps; the host function sees each error and may handle or rethrow it.
        let inner = HostFunction(module: "env", name: "inner", signature: FunctionSignature([])) { _, _ in nil }
        let catching = HostFunction(module: "env", name: "catching", signature: FunctionSignature([.i32], [.i32])) { guest, arguments in
            do {
                _ = try guest.callExport(arguments.i32(0) == 0 ? "reenter" : "boom", [])
                return .i32(0)
            } catch let error as EngineError {
                return .i32(error.trapReason == .unreachable ? 2 : 1)
            }
        }
        let passing = HostFunction(module: "env", name: "passing", signature: FunctionSignature([])) { guest, _ in
            _ = try guest.callExport("boom", [])
            return nil
        }
        let instance = try instantiate("""
            (module
              (import "env" "inner" (func $inner))
              (import "env" "catching" (func $catching (param i32) (result i32)))
              (import "env" "passing" (func $passing))
              (func (export "reenter") call $inner)
              (func (export "boom") unreachable)
              (func (export "caught") (param i32) (result i32) local.get 0 call $catching)
              (func (export "passed") call $passing))
            """, [inner, catching, passing])
        #expect(try instance.call("caught", [.i32(0)]) == [.i32(1)])
        #expect(try instance.call("caught", [.i32(1)]) == [.i32(2)])
        #expect { try instance.call("passed", []) } throws: { error in
            (error as? EngineError)?.trapReason == .unreachable
        }
    }

    @Test func aHostileRangeFromTheGuestIsAGuestMemoryErrorNotACrash() throws {
        let read = HostFunction(module: "env", name: "read", signature: FunctionSignature([.i32, .i32])) { guest, arguments in
            _ = try guest.readBytes(at: arguments.i32(0), count: arguments.i32(1))
            return nil
        }
        let instance = try instantiate("""
            (module
              (import "env" "read" (func $read (param i32 i32)))
              (memory (export "memory") 1)
              (func (export "run") (param i32 i32) local.get 0 local.get 1 call $read))
            """, [read])
        #expect(throws: GuestMemoryError.self) { try instance.call("run", [.i32(0xffff_fff0), .i32(32)]) }
        #expect(throws: GuestMemoryError.self) { try instance.call("run", [.i32(65535), .i32(2)]) }
        #expect(try instance.call("run", [.i32(65535), .i32(1)]) == [])
    }

    @Test func aHostFunctionReturningTheWrongTypeIsAnErrorNotGarbage() throws {
        let wrong = HostFunction(module: "env", name: "wrong", signature: FunctionSignature([], [.i32])) { _, _ in .i64(1) }
        let instance = try instantiate("""
            (module (import "env" "wrong" (func $wrong (result i32))) (func (export "run") (result i32) call $wrong))
            """, [wrong])
        #expect { try instance.call("run", []) } throws: { error in
            (error as? EngineError)?.kind == .incompatibleImport
        }
    }

    @Test func callingAMissingExportOrWithWrongArgumentsIsMissingExport() throws {
        let instance = try instantiate("(module (func (export \"f\") (param i32)))")
        for (name, arguments) in [("nope", [WasmValue]()), ("f", []), ("f", [.i64(1)])] {
            #expect { try instance.call(name, arguments) } throws: { error in
                (error as? EngineError)?.kind == .missingExport
            }
        }
    }

    @Test func theStartFunctionRunsWithHostFunctionsAndMemory() throws {
        let note = HostFunction(module: "env", name: "note", signature: FunctionSignature([.i32])) { guest, arguments in
            try guest.writeUInt32(arguments.i32(0) * 2, at: 8)
            return nil
        }
        let instance = try instantiate("""
            (module
              (import "env" "note" (func $note (param i32)))
              (memory (export "memory") 1)
              (func $start i32.const 21 call $note)
              (start $start))
            """, [note])
        #expect(try instance.guest.readUInt32(at: 8) == 42)
    }

    @Test func compiledModulesRunInParallelInstances() async throws {
        let engine = try #require(wasmtimeForTests)
        let module = try engine.compile(try wasm("""
            (module (func (export "sum") (param i32) (result i32) (local $s i32)
              (block (loop
                local.get 0 i32.eqz br_if 1
                local.get $s local.get 0 i32.add local.set $s
                local.get 0 i32.const 1 i32.sub local.set 0
                br 0))
              local.get $s))
            """))
        let results = try await withThrowingTaskGroup(of: [WasmValue].self) { group in
            for _ in 0..<4 {
                group.addTask { try module.instantiate([], limits: ResourceLimits()).call("sum", [.i32(1000)]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == Array(repeating: [.i32(500_500)], count: 4))
    }
}

/// Traps and limits: every way a guest can stop abnormally becomes the engine-neutral error, and a
/// runaway guest is stopped by its deadline, its fuel or its memory cap.
@Suite(.enabled(if: wasmtimeForTests != nil, wasmtimeSkipMessage))
struct WasmtimeTrapAndLimitTests {
    static let traps: [(String, TrapReason)] = [
        ("unreachable", .unreachable),
        ("i32.const 70000 i32.load drop", .outOfBoundsMemoryAccess),
        ("i32.const 1 i32.const 0 i32.div_u drop", .integerDivideByZero),
        ("i32.const 0x80000000 i32.const -1 i32.div_s drop", .integerOverflow),
        ("f32.const nan i32.trunc_f32_s drop", .invalidConversionToInteger),
        ("i32.const 5 call_indirect (type $v) ", .outOfBoundsTableAccess),
        ("i32.const 1 call_indirect (type $v)", .uninitializedElement),
        ("i32.const 0 call_indirect (type $v)", .indirectCallTypeMismatch),
        ("i32.const 0 call $recurse drop", .callStackExhausted),
    ]

    @Test(arguments: traps)
    func aTrapIsReportedWithItsReason(body: String, reason: TrapReason) throws {
        let instance = try instantiate("""
            (module
              (type $v (func))
              (memory 1)
              (table 2 funcref)
              (elem (i32.const 0) $takesI32)
              (func $takesI32 (param i32))
              (func $recurse (param i32) (result i32) local.get 0 i32.const 1 i32.add call $recurse)
              (func (export "run") \(body)))
            """)
        #expect { try instance.call("run", []) } throws: { error in
            (error as? EngineError)?.trapReason == reason
        }
    }

    @Test func aTrapMessageIsOneLineNamingTheExportTheTrapAndTheFrame() throws {
        let instance = try instantiate("(module (memory 1) (func (export \"run\") i32.const 70000 i32.load drop))")
        #expect { try instance.call("run", []) } throws: { error in
            guard let error = error as? EngineError else { return false }
            return !error.message.contains("\n") && error.message.hasPrefix("export run trapped: out of bounds memory access (memory fault")
                && error.message.contains("<wasm function 0> at 0x")
        }
    }

    @Test func anInfiniteLoopIsStoppedByTheDeadline() throws {
        let instance = try instantiate("(module (func (export \"spin\") (loop br 0)))",
                                       deadlineAfterCompiling: .milliseconds(100))
        #expect { try instance.call("spin", []) } throws: { error in
            (error as? EngineError)?.trapReason == .timeout
        }
        // Past the deadline nothing runs any more.
        #expect { try instance.call("spin", []) } throws: { error in
            (error as? EngineError)?.trapReason == .timeout
        }
    }

    @Test func aGuestWithTimeLeftIsNotInterrupted() throws {
        let instance = try instantiate("""
            (module (func (export "count") (param i32) (result i32)
              (block (loop local.get 0 i32.eqz br_if 1 local.get 0 i32.const 1 i32.sub local.set 0 br 0))
              i32.const 7))
            """, limits: ResourceLimits(deadline: .now + .seconds(60)))
        for _ in 0..<3 {
            #expect(try instance.call("count", [.i32(100_000)]) == [.i32(7)])
        }
    }

    @Test func aHostCallThatOutlivesTheDeadlineEndsTheRun() throws {
        let slow = HostFunction(module: "env", name: "slow", signature: FunctionSignature([])) { _, _ in
            Thread.sleep(forTimeInterval: 1)
            return nil
        }
        let instance = try instantiate("""
            (module (import "env" "slow" (func $slow)) (func (export "run") call $slow))
            """, [slow], deadlineAfterCompiling: .milliseconds(200))
        #expect { try instance.call("run", []) } throws: { error in
            (error as? EngineError)?.trapReason == .timeout
        }
    }

    @Test func runningOutOfFuelTrapsAndFuelIsReported() throws {
        let text = """
            (module
              (func (export "spin") (loop br 0))
              (func (export "small") (result i32) i32.const 1 i32.const 2 i32.add))
            """
        let instance = try instantiate(text, limits: ResourceLimits(fuel: 10_000))
        #expect(try instance.call("small", []) == [.i32(3)])
        let left = try #require(instance.remainingFuel)
        #expect(left < 10_000 && left > 9_000)
        #expect { try instance.call("spin", []) } throws: { error in
            (error as? EngineError)?.trapReason == .outOfFuel
        }
        #expect(instance.remainingFuel == 0)
        #expect(try instantiate(text).remainingFuel == nil)
    }

    @Test func memoryGrowPastTheCapReturnsMinusOneAndTheGuestGoesOn() throws {
        let instance = try instantiate("""
            (module
              (memory (export "memory") 1)
              (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))
            """, limits: ResourceLimits(memoryBytes: 2 * 65536))
        #expect(try instance.call("grow", [.i32(1)]) == [.i32(1)])
        #expect(try instance.call("grow", [.i32(1)]) == [.i32(0xffff_ffff)])
        #expect(try instance.call("grow", [.i32(0x1_0000)]) == [.i32(0xffff_ffff)])
        #expect(instance.guest.memorySize == 2 * 65536)
    }

    @Test func anInitialMemoryAboveTheCapFailsInstantiation() throws {
        #expect {
            _ = try instantiate("(module (memory 4))", limits: ResourceLimits(memoryBytes: 65536))
        } throws: { error in
            (error as? EngineError)?.kind == .instantiation
        }
    }

    @Test func aStartFunctionTrapFailsInstantiationWithTheTrap() throws {
        #expect {
            _ = try instantiate("(module (func $s unreachable) (start $s))")
        } throws: { error in
            (error as? EngineError)?.trapReason == .unreachable
        }
    }
}

/// Linking and validation: what a module asks for and what bytes it is made of are checked before
/// any guest code runs.
@Suite(.enabled(if: wasmtimeForTests != nil, wasmtimeSkipMessage))
struct WasmtimeLinkingTests {
    @Test func anImportNoHostFunctionProvidesIsNamedInTheError() throws {
        #expect {
            _ = try instantiate("(module (import \"peon:host/fs\" \"read\" (func (param i32))))")
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.kind == .unknownImport && error.message.contains("peon:host/fs") && error.message.contains("read")
        }
    }

    @Test func anImportedMemoryIsAnUnknownImport() throws {
        #expect {
            _ = try instantiate("(module (import \"env\" \"memory\" (memory 1)))")
        } throws: { error in
            (error as? EngineError)?.kind == .unknownImport
        }
    }

    @Test func aHostFunctionWithAnotherSignatureIsAnIncompatibleImport() throws {
        let function = HostFunction(module: "env", name: "f", signature: FunctionSignature([.i64])) { _, _ in nil }
        #expect {
            _ = try instantiate("(module (import \"env\" \"f\" (func (param i32))))", [function])
        } throws: { error in
            (error as? EngineError)?.kind == .incompatibleImport
        }
    }

    @Test func aHostFunctionWithTwoResultsIsRefused() throws {
        let function = HostFunction(module: "env", name: "f", signature: FunctionSignature([], [.i32, .i32])) { _, _ in nil }
        #expect {
            _ = try instantiate("(module (import \"env\" \"f\" (func (result i32 i32))))", [function])
        } throws: { error in
            (error as? EngineError)?.kind == .incompatibleImport
        }
    }

    @Test(arguments: [
        [UInt8](),
        Array("not wasm at all".utf8),
        [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05],
        [0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00],
    ])
    func bytesThatAreNotAValidModuleAreAnInvalidModule(bytes: [UInt8]) throws {
        let engine = try #require(wasmtimeForTests)
        #expect { _ = try engine.compile(bytes) } throws: { error in
            (error as? EngineError)?.kind == .invalidModule
        }
    }

    @Test func anInvalidModuleMessageIsOneLineWithWasmtimesReasonAndOffset() throws {
        let engine = try #require(wasmtimeForTests)
        #expect { _ = try engine.compile([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05]) } throws: { error in
            (error as? EngineError)?.message
                == "invalid module: failed to parse WebAssembly module: unexpected end-of-file (at offset 0xa)"
        }
    }

    @Test func aModuleThatFailsValidationIsAnInvalidModule() throws {
        let engine = try #require(wasmtimeForTests)
        // `(func (result i32))` with an empty body: type mismatch at the end of the function.
        let bytes: [UInt8] = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
            0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f,
            0x03, 0x02, 0x01, 0x00,
            0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
        ]
        #expect { _ = try engine.compile(bytes) } throws: { error in
            (error as? EngineError)?.kind == .invalidModule
        }
    }
}

/// The compilation cache: a hit must give the same module, and any damaged or foreign file must fall
/// back to compiling — `wasmtime_module_deserialize` trusts its input, so a bad file must never reach it.
@Suite(.enabled(if: wasmtimeForTests != nil, wasmtimeSkipMessage))
struct WasmtimeCompilationCacheTests {
    static let moduleText = "(module (func (export \"answer\") (result i32) i32.const 42))"

    private func engine(cachingIn directory: URL) throws -> WasmtimeEngine {
        let loaded = try #require(wasmtimeForTests)
        return try WasmtimeEngine.load(libraryPath: loaded.libraryPath, cacheDirectory: directory.path)
    }

    private func answer(_ module: any CompiledModule) throws -> [WasmValue] {
        try module.instantiate([], limits: ResourceLimits()).call("answer", [])
    }

    private func cacheFiles(_ directory: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "cwasm" }
    }

    @Test func aSecondCompilationIsServedFromTheCache() throws {
        try withTemporaryDirectory { directory in
            let cacheDirectory = directory.appendingPathComponent("cache")
            let engine = try engine(cachingIn: cacheDirectory)
            let bytes = try wasm(Self.moduleText)
            let first = try engine.compileReportingCache(bytes)
            #expect(first.cache == .miss)
            let second = try engine.compileReportingCache(bytes)
            #expect(second.cache == .hit)
            #expect(try answer(second.module) == [.i32(42)])
            #expect(second.module.exports == first.module.exports)
            #expect(try cacheFiles(cacheDirectory).count == 1)
            let attributes = try FileManager.default.attributesOfItem(atPath: cacheDirectory.path)
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
        }
    }

    @Test(arguments: ["flipped-payload-bit", "truncated", "empty", "foreign-header", "other-module"])
    func aDamagedCacheFileFallsBackToCompiling(damage: String) throws {
        try withTemporaryDirectory { directory in
            let engine = try engine(cachingIn: directory)
            let bytes = try wasm(Self.moduleText)
            _ = try engine.compileReportingCache(bytes)
            let file = try #require(try cacheFiles(directory).first)
            var contents = try Data(contentsOf: file)
            switch damage {
            case "flipped-payload-bit": contents[contents.count / 2] ^= 0x10
            case "truncated": contents = contents.prefix(contents.count - 100)
            case "empty": contents = Data()
            case "foreign-header": contents.replaceSubrange(0..<8, with: Array("\u{7f}ELF\u{2}\u{1}\u{1}\u{0}".utf8))
            default:
                let other = try wasm("(module (func (export \"answer\") (result i32) i32.const 7))")
                _ = try engine.compileReportingCache(other)
                let otherFile = try #require(try cacheFiles(directory).first { $0 != file })
                contents = try Data(contentsOf: otherFile)
            }
            try contents.write(to: file)
            let recompiled = try engine.compileReportingCache(bytes)
            guard case .discarded = recompiled.cache else {
                Issue.record("expected the damaged file to be discarded, got \(recompiled.cache)")
                return
            }
            #expect(try answer(recompiled.module) == [.i32(42)])
            // The fresh compilation replaced the damaged file.
            #expect(try engine.compileReportingCache(bytes).cache == .hit)
        }
    }

    @Test func aCacheDirectoryOthersCanWriteIsNotUsed() throws {
        try withTemporaryDirectory { directory in
            try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory.path)
            let engine = try engine(cachingIn: directory)
            let result = try engine.compileReportingCache(try wasm(Self.moduleText))
            guard case .unusable = result.cache else {
                Issue.record("expected the cache to be unusable, got \(result.cache)")
                return
            }
            #expect(try answer(result.module) == [.i32(42)])
            #expect(try cacheFiles(directory).isEmpty)
        }
    }

    @Test func aCacheFileOthersCanWriteIsNotLoaded() throws {
        try withTemporaryDirectory { directory in
            let engine = try engine(cachingIn: directory)
            let bytes = try wasm(Self.moduleText)
            _ = try engine.compileReportingCache(bytes)
            let file = try #require(try cacheFiles(directory).first)
            try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: file.path)
            guard case .discarded = try engine.compileReportingCache(bytes).cache else {
                Issue.record("expected a world-writable cache file to be discarded")
                return
            }
        }
    }
}
