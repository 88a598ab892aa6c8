import PeonEngine
import PeonTestSupport
import Testing

/// What every engine must do the same way: the guest is hostile, so a bad pointer, a trap, a runaway
/// loop or a host error must end one call cleanly and leave the host healthy for the next.
@Suite("Engine conformance")
struct EngineConformanceTests {
    struct Boom: Error, Equatable { let code: Int }

    private func instantiate(
        _ engine: EngineUnderTest, _ text: String, hostFunctions: [HostFunction] = [],
        limits: ResourceLimits = ResourceLimits(), fuel: Bool = false
    ) throws -> any ModuleInstance {
        let module = try engine.make(fuel).compile(try wasm(text))
        return try module.instantiate(hostFunctions, limits: limits)
    }

    /// Compiles `text`, then instantiates it with a deadline `deadline` from then, so a loaded machine's slow compile
    /// does not eat the guest's time.
    private func instantiate(
        _ engine: EngineUnderTest, _ text: String, hostFunctions: [HostFunction] = [],
        deadlineAfterCompiling deadline: Duration
    ) throws -> any ModuleInstance {
        let module = try engine.make(false).compile(try wasm(text))
        return try module.instantiate(hostFunctions, limits: ResourceLimits(deadline: .now + deadline))
    }

    @Test("an exported function is called with core values", arguments: TestEngines.all)
    func callsAnExport(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (func (export "add") (param i32 i64) (result i64)
              (i64.add (i64.extend_i32_u (local.get 0)) (local.get 1))))
            """)
        #expect(try instance.call("add", [.i32(40), .i64(2)]) == [.i64(42)])
    }

    @Test("imports and exports are listed with their signatures", arguments: TestEngines.all)
    func listsImportsAndExports(engine: EngineUnderTest) throws {
        let module = try engine.make(false).compile(try wasm("""
            (module
              (import "env" "log" (func (param i32 i32)))
              (memory (export "memory") 1)
              (func (export "run") (param i32) (result i32) (local.get 0)))
            """))
        #expect(module.imports == [ImportDescriptor(module: "env", name: "log", kind: .function(FunctionSignature([.i32, .i32])))])
        #expect(module.exports.map(\.name) == ["memory", "run"])
        #expect(module.exports.last?.kind == .function(FunctionSignature([.i32], [.i32])))
    }

    @Test("a host function reads and writes guest memory", arguments: TestEngines.all)
    func hostFunctionUsesMemory(engine: EngineUnderTest) throws {
        let upper = HostFunction(module: "env", name: "upper", signature: FunctionSignature([.i32, .i32], [.i32])) { guest, args in
            let text = try guest.readString(at: args.i32(0), count: args.i32(1))
            try guest.writeBytes(Array(text.uppercased().utf8), at: args.i32(0))
            return .i32(args.i32(1))
        }
        let instance = try instantiate(engine, """
            (module (import "env" "upper" (func $upper (param i32 i32) (result i32)))
              (memory (export "memory") 1) (data (i32.const 16) "peon")
              (func (export "go") (result i32) (call $upper (i32.const 16) (i32.const 4))))
            """, hostFunctions: [upper])
        #expect(try instance.call("go", []) == [.i32(4)])
        #expect(try instance.guest.readString(at: 16, count: 4) == "PEON")
    }

    @Test("a host function calls a guest export from inside the call", arguments: TestEngines.all)
    func hostCallsGuestExportDuringCall(engine: EngineUnderTest) throws {
        let fill = HostFunction(module: "env", name: "fill", signature: FunctionSignature([], [.i32])) { guest, _ in
            let pointer = try guest.callExport("alloc", [.i32(8)])
            guard case .i32(let address)? = pointer.first else { throw Boom(code: 1) }
            try guest.writeBytes(Array("abcdefgh".utf8), at: address)
            return .i32(address)
        }
        let instance = try instantiate(engine, """
            (module (import "env" "fill" (func $fill (result i32)))
              (memory (export "memory") 1) (global $top (mut i32) (i32.const 1024))
              (func (export "alloc") (param i32) (result i32)
                (global.get $top) (global.set $top (i32.add (global.get $top) (local.get 0))))
              (func (export "go") (result i32) (call $fill)))
            """, hostFunctions: [fill])
        #expect(try instance.call("go", []) == [.i32(1024)])
        #expect(try instance.guest.readString(at: 1024, count: 8) == "abcdefgh")
    }

    @Test("an error thrown by a host function surfaces unchanged", arguments: TestEngines.all)
    func hostErrorPropagates(engine: EngineUnderTest) throws {
        let fail = HostFunction(module: "env", name: "fail", signature: FunctionSignature([])) { _, _ in throw Boom(code: 7) }
        let instance = try instantiate(engine, """
            (module (import "env" "fail" (func $fail)) (func (export "go") (call $fail)))
            """, hostFunctions: [fail])
        #expect(throws: Boom(code: 7)) { try instance.call("go", []) }
    }

    @Test("a hostile pointer is a guest memory error, not a host crash", arguments: TestEngines.all)
    func hostilePointerIsRefused(engine: EngineUnderTest) throws {
        let read = HostFunction(module: "env", name: "read", signature: FunctionSignature([.i32, .i32])) { guest, args in
            _ = try guest.readBytes(at: args.i32(0), count: args.i32(1))
            return nil
        }
        let instance = try instantiate(engine, """
            (module (import "env" "read" (func $read (param i32 i32))) (memory (export "memory") 1)
              (func (export "go") (param i32 i32) (call $read (local.get 0) (local.get 1))))
            """, hostFunctions: [read])
        for (pointer, length) in [(0xFFFF_FFF0, 32), (65_530, 7), (0, 65_537), (0xFFFF_FFFF, 0xFFFF_FFFF)] as [(UInt32, UInt32)] {
            #expect(throws: GuestMemoryError.self) { try instance.call("go", [.i32(pointer), .i32(length)]) }
        }
        #expect(try instance.call("go", [.i32(65_532), .i32(4)]) == [])
    }

    @Test("guest traps are reported by kind", arguments: TestEngines.all)
    func trapsAreReported(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (memory 1)
              (func (export "unreachable") unreachable)
              (func (export "oob") (drop (i32.load (i32.const 70000))))
              (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
              (func $down (export "recurse") (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1)))))
            """)
        let cases: [(String, [WasmValue], TrapReason)] = [
            ("unreachable", [], .unreachable), ("oob", [], .outOfBoundsMemoryAccess),
            ("div", [.i32(0)], .integerDivideByZero), ("recurse", [.i32(0)], .callStackExhausted),
        ]
        for (export, arguments, reason) in cases {
            let error = try #require(throws: EngineError.self) { try instance.call(export, arguments) }
            #expect(error.trapReason == reason, "\(export)")
        }
        #expect(try instance.call("div", [.i32(1)]) == [.i32(1)], "the instance stays usable after traps")
    }

    @Test("memory.grow past the cap fails without stopping the guest", arguments: TestEngines.all)
    func memoryCapRefusesGrowth(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (memory (export "memory") 1)
              (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
            """, limits: ResourceLimits(memoryBytes: 4 * 65_536))
        #expect(try instance.call("grow", [.i32(3)]) == [.i32(1)])
        #expect(try instance.call("grow", [.i32(1)]) == [.i32(0xFFFF_FFFF)])
        #expect(try instance.call("grow", [.i32(65_536)]) == [.i32(0xFFFF_FFFF)])
        #expect(instance.guest.memorySize == 4 * 65_536)
    }

    /// A hostile guest's cheapest way to burn host CPU with memory: grow one page at a time up to the default cap
    /// (4,096 pages). An engine that copies its memory on every growth (WasmKit's software bounds-checking mode
    /// does: a new zeroed buffer and a copy each time) turns that into terabytes of copying, past 30 s of CPU; a
    /// reserved address range (WasmKit's `mprotect` mode, wasmtime) makes each growth constant time, ~0.1 s in
    /// all (0.02 s in this test). The bound, 10 s, is hundreds of times that, so only a growth that copies crosses it.
    @Test("growing memory one page at a time up to the cap stays cheap", arguments: TestEngines.all)
    func pageByPageGrowthIsNotQuadratic(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (memory (export "memory") 1)
              (func (export "grow_all") (result i32) (local $pages i32)
                (block $done
                  (loop $again
                    (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                    (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
                    (br $again)))
                (local.get $pages)))
            """, limits: ResourceLimits())
        let started = ContinuousClock.now
        let grown = try instance.call("grow_all", [])
        let took = ContinuousClock.now - started
        #expect(grown == [.i32(UInt32(ResourceLimits.defaultMemoryBytes / 65_536 - 1))])
        #expect(took < .seconds(10), "\(engine): \(took) to grow page by page to the cap")
    }

    @Test("a module whose initial memory exceeds the cap does not instantiate", arguments: TestEngines.all)
    func initialMemoryOverCapIsRefused(engine: EngineUnderTest) throws {
        #expect(throws: EngineError.self) {
            try instantiate(engine, "(module (memory 100))", limits: ResourceLimits(memoryBytes: 65_536))
        }
    }

    @Test("an infinite loop runs out of fuel", arguments: TestEngines.all)
    func fuelStopsALoop(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (func (export "spin") (loop (br 0))))
            """, limits: ResourceLimits(fuel: 100_000), fuel: true)
        let error = try #require(throws: EngineError.self) { try instance.call("spin", []) }
        #expect(error.trapReason == .outOfFuel)
    }

    @Test("a host call after the deadline ends the run with a timeout", arguments: TestEngines.all)
    func deadlineStopsHostCalls(engine: EngineUnderTest) throws {
        let tick = HostFunction(module: "env", name: "tick", signature: FunctionSignature([])) { _, _ in nil }
        let instance = try instantiate(engine, """
            (module (import "env" "tick" (func $tick)) (func (export "spin") (loop (call $tick) (br 0))))
            """, hostFunctions: [tick], deadlineAfterCompiling: .milliseconds(200))
        let error = try #require(throws: EngineError.self) { try instance.call("spin", []) }
        #expect(error.trapReason == .timeout)
    }

    /// Every shipped engine runs this, and an absent one is recorded as cancelled (skipped) with the reason. An
    /// engine that interrupts running code must stop a loop that never calls the host; one that cannot (WasmKit)
    /// must say so, so the runtime's worker process enforces the deadline (AgentRunTests' `killedRunIsRecorded`
    /// checks that), and must honour a deadline that passed during pure guest code at the next host call.
    @Test("a loop with no host calls is stopped at the deadline, by the engine or at its next host call", arguments: TestEngines.shipped)
    func deadlineStopsAPureLoop(engine: EngineUnderTest) throws {
        if let absence = engine.absence { try Test.cancel(absence) }
        let made = try engine.make(true)
        try #require(made.interruptsRunningCode == engine.interruptsRunningCode,
                     "\(engine.name) must \(engine.interruptsRunningCode ? "" : "not ")claim to interrupt running code")
        let deadline = ContinuousClock.now + .milliseconds(200)
        if made.interruptsRunningCode {
            // Fuel only as a backstop: if the interruption were broken the loop would end out of fuel (seconds
            // later) rather than hang the suite.
            let instance = try instantiate(engine, """
                (module (func (export "spin") (loop (br 0))))
                """, limits: ResourceLimits(fuel: made.supportsFuel ? 20_000_000_000 : nil, deadline: deadline),
                fuel: made.supportsFuel)
            let error = try #require(throws: EngineError.self) { try instance.call("spin", []) }
            #expect(error.trapReason == .timeout)
            #expect(ContinuousClock.now - deadline < .seconds(10), "the loop ran on long after the deadline")
            return
        }
        // Long stretches of pure code between host calls. The engine checks the deadline before running a host
        // function, so `tick` never runs late; if that check were missing, `tick` ends the loop with `Boom` a second
        // after the deadline instead of letting it spin forever.
        let tick = HostFunction(module: "env", name: "tick", signature: FunctionSignature([])) { _, _ in
            if ContinuousClock.now > deadline + .seconds(1) { throw Boom(code: 1) }
            return nil
        }
        let instance = try instantiate(engine, """
            (module (import "env" "tick" (func $tick))
              (func (export "spin") (local i32)
                (loop $outer
                  (call $tick)
                  (local.set 0 (i32.const 0))
                  (loop $pure (br_if $pure (i32.ne (local.tee 0 (i32.add (local.get 0) (i32.const 1))) (i32.const 100000))))
                  (br $outer))))
            """, hostFunctions: [tick], limits: ResourceLimits(deadline: deadline))
        let error = try #require(throws: EngineError.self) { try instance.call("spin", []) }
        #expect(error.trapReason == .timeout)
    }

    @Test("a host call from guest code inside another host call is refused", arguments: TestEngines.all)
    func reentrantHostCallIsRefused(engine: EngineUnderTest) throws {
        let outer = HostFunction(module: "env", name: "outer", signature: FunctionSignature([])) { guest, _ in
            _ = try guest.callExport("inner", [])
            return nil
        }
        let noop = HostFunction(module: "env", name: "noop", signature: FunctionSignature([])) { _, _ in nil }
        let instance = try instantiate(engine, """
            (module (import "env" "outer" (func $outer)) (import "env" "noop" (func $noop))
              (func (export "inner") (call $noop)) (func (export "go") (call $outer)))
            """, hostFunctions: [outer, noop])
        #expect(throws: EngineError.self) { try instance.call("go", []) }
    }

    @Test("an unknown import is named", arguments: TestEngines.all)
    func unknownImportIsNamed(engine: EngineUnderTest) throws {
        let error = try #require(throws: EngineError.self) {
            try instantiate(engine, #"(module (import "mystery" "door" (func)))"#)
        }
        #expect(error.kind == .unknownImport)
        #expect(error.message.contains("mystery.door"))
    }

    @Test("a host function with another signature does not link", arguments: TestEngines.all)
    func incompatibleImportIsRefused(engine: EngineUnderTest) throws {
        let f = HostFunction(module: "env", name: "f", signature: FunctionSignature([.i64])) { _, _ in nil }
        let error = try #require(throws: EngineError.self) {
            try instantiate(engine, #"(module (import "env" "f" (func (param i32))))"#, hostFunctions: [f])
        }
        #expect(error.kind == .incompatibleImport)
    }

    @Test("bytes that are not a valid module are refused", arguments: TestEngines.all)
    func invalidModulesAreRefused(engine: EngineUnderTest) throws {
        let valid = try wasm(#"(module (func (export "f") (result i32) (i32.const 1)))"#)
        let inputs: [[UInt8]] = [[], Array("hello world".utf8), Array(valid.prefix(valid.count - 3)), [0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]]
        for bytes in inputs {
            let error = try #require(throws: EngineError.self) {
                let module = try engine.make(false).compile(bytes)
                _ = try module.instantiate([], limits: ResourceLimits())
            }
            #expect(error.kind == .invalidModule || error.kind == .instantiation)
        }
    }

    @Test("a function body that fails validation is refused before any code runs", arguments: TestEngines.all)
    func invalidBodyIsRefusedEarly(engine: EngineUnderTest) throws {
        // (func (result i32) i64.const 0): type mismatch, written in binary because the text parser rejects it.
        let bytes: [UInt8] = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7f, 3, 2, 1, 0,
                              10, 6, 1, 4, 0, 0x42, 0, 0x0b]
        #expect(throws: EngineError.self) {
            let module = try engine.make(false).compile(bytes)
            _ = try module.instantiate([], limits: ResourceLimits())
        }
    }

    /// A valid module whose body negates a value 100,000 times in a row (100 KB) crashed WasmKit's translator with a
    /// native stack overflow (SIGSEGV and a backtrace, in `run`, `inspect`, `grants check` and a shared `mcp` server;
    /// found by a red-team pass). WasmKit refuses it as an invalid module before its translator sees it, also when
    /// `nop` or an empty `block` or `loop` stand between the negations; wasmtime runs it. 1,024 in a row still run.
    @Test("a long chain of i32.eqz is refused by WasmKit, never a crash", arguments: TestEngines.all)
    func longNegationChainsAreRefusedNotCrashed(engine: EngineUnderTest) throws {
        func module(_ count: Int, between: String = "") -> String {
            let body = Array(repeating: "i32.eqz " + between, count: count).joined(separator: " ")
            return "(module (func (export \"go\") (param i32) (result i32) local.get 0 \(body)))"
        }
        let fine = try instantiate(engine, module(1024, between: "nop"))
        #expect(try fine.call("go", [.i32(7)]) == [.i32(1)])  // an even number of negations of 7: true
        // No chain at all: an instruction that pops a value (`drop`, `local.set`, `local.tee`) makes WasmKit forget the
        // last `eqz`, so 100,000 of these compile (refused at first: a false positive found by a second pass).
        for between in ["local.get 0 drop", "local.tee 0"] {
            let unchained = try instantiate(engine, module(100_000, between: between))
            #expect(try unchained.call("go", [.i32(7)]).count == 1)
        }
        for text in [module(100_000), module(1025, between: "nop"), module(1025, between: "block end"),
                     module(1025, between: "loop end")] {
            if engine.name == "wasmkit" {
                let error = try #require(throws: EngineError.self) { try instantiate(engine, text) }
                #expect(error.kind == .invalidModule)
                #expect(error.message.contains("--engine wasmtime"), "\(error.message)")
            } else {
                let instance = try instantiate(engine, text)
                #expect(try instance.call("go", [.i32(0)]).count == 1)
            }
        }
    }

    @Test("a start function that traps fails instantiation", arguments: TestEngines.all)
    func trappingStartFunctionFails(engine: EngineUnderTest) throws {
        let error = try #require(throws: EngineError.self) {
            try instantiate(engine, "(module (func $s unreachable) (start $s))")
        }
        #expect(error.kind == .instantiation || error.trapReason == .unreachable)
    }

    @Test("calling a missing export is an error", arguments: TestEngines.all)
    func missingExportIsAnError(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, "(module)")
        let error = try #require(throws: EngineError.self) { try instance.call("run", []) }
        #expect(error.kind == .missingExport)
    }
}
