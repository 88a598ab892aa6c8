package import PeonEngine
@_spi(Fuzzing) import WasmKit
import WasmParser
import Foundation

/// The WasmKit engine: a pure-Swift interpreter, peon-wasm's zero-setup default.
///
/// Modules are compiled eagerly at instantiation, so an invalid function body fails before any guest
/// code runs. WasmKit has no way to interrupt running guest code, so ``interruptsRunningCode`` is
/// `false`: the deadline is enforced at every host-call boundary here, and a guest spinning without
/// host calls is stopped by the runtime's process isolation (see `PeonRuntime.Supervisor`).
package struct WasmKitEngine: WasmEngine {
    /// WasmKit's engine is `@unchecked Sendable` by WasmKit's own declaration: its shared state
    /// (type interner, configuration) is internally synchronized.
    private let engine: WasmKit.Engine

    /// Whether modules compiled by this engine meter fuel (costs ~15 % in loops, so it is opt-in).
    package let supportsFuel: Bool

    /// Creates an engine. `fuelMetering` must be `true` to run instances with a fuel budget.
    package init(fuelMetering: Bool = false) {
        self.supportsFuel = fuelMetering
        // The default bounds checking (`mprotect` on Linux) stays, although its trap guard costs a `sigprocmask`
        // system call on every entry into the guest (each `cabi_realloc` too): the software mode copies the whole
        // memory on every `memory.grow`, so a guest growing page by page to the cap burned 30 s of CPU instead of
        // 0.1 s (EngineConformanceTests.pageByPageGrowthIsNotQuadratic).
        self.engine = WasmKit.Engine(configuration: EngineConfiguration(
            compilationMode: .eager, fuelMetering: fuelMetering))
    }

    /// `wasmkit`.
    package var name: String { "wasmkit" }

    /// `false`: see the type's documentation.
    package var interruptsRunningCode: Bool { false }

    /// Parses the module and reads its import and export signatures.
    package func compile(_ bytes: [UInt8]) throws(EngineError) -> any CompiledModule {
        let module: WasmKit.Module
        do {
            module = try parseWasm(bytes: bytes)
        } catch {
            throw EngineError(.invalidModule, Self.describe(error))
        }
        let definedFunctionTypes = try Self.definedFunctionTypeIndices(bytes)
        try Self.refuseLongNegationChains(bytes)
        // A module with a start function, without it: what instantiation checks every function body on first.
        let startBlanked: WasmKit.Module?
        if let stripped = Self.blankingStartSection(bytes) {
            do {
                startBlanked = try parseWasm(bytes: stripped)
            } catch {
                throw EngineError(.invalidModule, Self.describe(error))
            }
        } else {
            startBlanked = nil
        }
        return try WasmKitModule(engine: engine, module: module, definedFunctionTypes: definedFunctionTypes,
                                 storage: try DeclaredStorage(parsing: bytes), startBlanked: startBlanked)
    }

    /// `bytes` with their start section (id 8) made an empty custom section of the same length, or `nil` when there
    /// is none. The bytes have parsed as a module, so the walk meets well-formed sections; every length is still
    /// checked, and anything unexpected gives `nil`.
    ///
    /// WasmKit runs a module's start function while instantiating, *before* it compiles (and so validates) the other
    /// function bodies: a module with an invalid body would run its start function, host calls and all, and only
    /// then be found invalid. Instantiating this copy first, with nothing to run, checks every body before any
    /// guest code runs, as the WebAssembly specification and wasmtime do.
    static func blankingStartSection(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 8 else { return nil }
        var blanked: [UInt8]?
        var index = 8
        while index < bytes.count {
            let id = bytes[index]
            var cursor = index + 1
            var size = 0
            var shift = 0
            while true {
                guard cursor < bytes.count, shift <= 28 else { return nil }
                let byte = bytes[cursor]
                size |= Int(byte & 0x7F) << shift
                cursor += 1
                if byte & 0x80 == 0 { break }
                shift += 7
            }
            guard size <= bytes.count - cursor else { return nil }
            let end = cursor + size
            if id == 8, size >= 1 {
                // A custom section of the same length in its place (id 0, an empty name, then filler), so every
                // offset an error names is the original module's. Only a module that has one is copied.
                var copy = blanked ?? bytes
                copy[index] = 0
                for position in cursor..<end { copy[position] = 0 }
                blanked = copy
            }
            index = end
        }
        return blanked
    }

    /// WasmKit's parser error as one plain sentence: WasmKit 0.4.2 prints its message struct
    /// (`"Message(text: "magic header not detected ...")" at offset 0x4`), which is shown without the wrapper.
    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        // WasmKit names a bad LEB128 integer by its enum case alone, and a module cut short in its own words.
        switch text {
        case "integerRepresentationTooLong": return "an integer is encoded in more bytes than its type allows (a damaged or hand-made module)"
        case "overflow": return "an integer overflows its type (a damaged or hand-made module)"
        case "insufficientBytes": return "the module ends inside an integer (a truncated file)"
        default: break
        }
        let cut = "Unexpected end of byte sequence."
        if text.hasPrefix(cut) { return "the module ends early (a truncated file)" + text.dropFirst(cut.count) }
        let opening = "\"Message(text: \"", closing = "\")\""
        guard let start = text.range(of: opening),
              let end = text.range(of: closing, options: .backwards, range: start.upperBound..<text.endIndex) else { return text }
        return String(text[..<start.lowerBound]) + String(text[start.upperBound..<end.lowerBound]) + String(text[end.upperBound...])
    }

    /// The most `i32.eqz`/`i64.eqz` instructions a function body may hold in a row (counted as in
    /// ``NegationChainMeter``).
    ///
    /// WasmKit 0.4.2's translator records an `eqz` of an `eqz` as a recursive value (a negated fusable condition) and
    /// builds and frees such a chain recursively: a valid module of 100,000 `i32.eqz` in a row (100 KB) overflowed the
    /// native stack while it was compiled, and `run`, `inspect`, `grants check` and the `mcp` server died of SIGSEGV
    /// with a backtrace. Compiled code holds a handful in a row; 1,024 levels need well under 512 KiB of stack.
    static let maxNegationChain = 1024

    /// Refuses, as an invalid module, one whose function bodies hold more than ``maxNegationChain`` `eqz` instructions
    /// in a row, before WasmKit's translator sees it (see ``maxNegationChain``).
    static func refuseLongNegationChains(_ bytes: [UInt8]) throws(EngineError) {
        var parser = WasmParser.Parser(bytes: bytes)
        var meter = NegationChainMeter(limit: maxNegationChain)
        // Function indices count imported functions first; the code section holds the bodies of the others.
        var importedFunctions = 0
        while true {
            let payload: ParsingPayload?
            do {
                payload = try parser.parseNext()
            } catch {
                return  // The module's structure is WasmKit's to report (it parsed it already, so this does not happen).
            }
            guard let payload else { return }
            if case .importSection(let imports) = payload {
                importedFunctions = imports.count { if case .function = $0.descriptor { true } else { false } }
            }
            guard case .codeSection(let bodies) = payload else { continue }
            for (index, body) in bodies.enumerated() {
                meter.run = 0
                var instructions = ExpressionParser(code: body)
                // An instruction this parser cannot read (one of a proposal WasmKit's translator is built without) ends
                // the count of its body: the translator refuses the body there, in its own words, after translating what
                // came before, which is why the chain up to it is still counted.
                while let instruction = try? instructions.parse() {
                    instruction(visitor: &meter)
                }
                if meter.exceeded {
                    throw EngineError(.invalidModule, "function \(importedFunctions + index) holds more than \(maxNegationChain) i32.eqz or i64.eqz instructions in a row, which the WasmKit engine cannot compile without exhausting its stack; run the module with --engine wasmtime")
                }
            }
        }
    }

    /// The type indices of the functions the module defines (its function section), which WasmKit's
    /// public API does not expose but export signatures need.
    private static func definedFunctionTypeIndices(_ bytes: [UInt8]) throws(EngineError) -> [UInt32] {
        var parser = WasmParser.Parser(bytes: bytes)
        do {
            while let payload = try parser.parseNext() {
                if case .functionSection(let indices) = payload { return indices }
            }
        } catch {
            throw EngineError(.invalidModule, Self.describe(error))
        }
        return []
    }
}

/// A parsed WasmKit module with its interface resolved to engine-neutral descriptors.
struct WasmKitModule: CompiledModule {
    let engine: WasmKit.Engine
    let module: WasmKit.Module
    let imports: [PeonEngine.ImportDescriptor]
    let exports: [PeonEngine.ExportDescriptor]
    /// The memories and tables the module defines, charged against the memory limit.
    let storage: DeclaredStorage
    /// The module without its start section, when it has one: instantiated first, so that every function body is
    /// checked before the start function runs (``WasmKitEngine/blankingStartSection(_:)``).
    let startBlanked: WasmKit.Module?

    /// Instantiates the module with nothing to run (its start section blanked, if it has one) in a store of its
    /// own under `memoryBytes`, with imports that are never called, so that WasmKit checks every function body.
    /// A body that does not check is an invalid module; anything else (a segment out of bounds, the cap, a
    /// non-function import) is left for the real instantiation to report.
    func checkBodies(memoryBytes: Int) throws(EngineError) {
        let check = startBlanked ?? module
        let store = Store(engine: WasmKit.Engine(configuration: engine.configuration))
        store.resourceLimiter = StorageCap(StorageLedger(budget: memoryBytes, declared: storage))
        var definitions = Imports()
        for entry in imports {
            guard case .function(let signature) = entry.kind else { return }
            definitions.define(module: entry.module, name: entry.name, Function(
                store: store, parameters: signature.parameters.compactMap(\.wasmKitType),
                results: signature.results.compactMap(\.wasmKitType)
            ) { _, _ in
                throw EngineError(.trap(.other("called while checking the module")), "no code runs while the module is checked")
            })
        }
        do {
            _ = try check.instantiate(store: store, imports: definitions)
        } catch let error as WasmKitError {
            throw EngineError(.invalidModule, "\(error)")
        } catch {
            return
        }
    }

    init(engine: WasmKit.Engine, module: WasmKit.Module, definedFunctionTypes: [UInt32],
         storage: DeclaredStorage, startBlanked: WasmKit.Module? = nil) throws(EngineError) {
        self.engine = engine
        self.module = module
        self.storage = storage
        self.startBlanked = startBlanked
        var importedFunctionTypes: [FunctionSignature] = []
        var imports: [PeonEngine.ImportDescriptor] = []
        for entry in module.imports {
            let kind: ExternalKind
            switch entry.descriptor {
            case .function(let typeIndex):
                guard let type = module.functionType(at: typeIndex) else {
                    throw EngineError(.invalidModule, "import \(entry.module).\(entry.name) names a missing type \(typeIndex)")
                }
                let signature = FunctionSignature(type)
                importedFunctionTypes.append(signature)
                kind = .function(signature)
            case .memory(let limits): kind = .memory(minimumPages: limits.min, maximumPages: limits.max)
            case .table: kind = .table
            case .global: kind = .global
            case .tag: kind = .tag
            }
            imports.append(PeonEngine.ImportDescriptor(module: entry.module, name: entry.name, kind: kind))
        }
        self.imports = imports
        self.exports = module.exports.map { export in
            let kind: ExternalKind
            switch export.descriptor {
            case .function(let index):
                let index = Int(index)
                if index < importedFunctionTypes.count {
                    kind = .function(importedFunctionTypes[index])
                } else if index - importedFunctionTypes.count < definedFunctionTypes.count,
                    let type = module.functionType(at: definedFunctionTypes[index - importedFunctionTypes.count])
                {
                    kind = .function(FunctionSignature(type))
                } else {
                    kind = .function(FunctionSignature([.other("?")]))
                }
            case .memory: kind = .memory(minimumPages: 0, maximumPages: nil)
            case .table: kind = .table
            case .global: kind = .global
            case .tag: kind = .tag
            }
            return PeonEngine.ExportDescriptor(name: export.name, kind: kind)
        }
    }

    func instantiate(_ hostFunctions: [PeonEngine.HostFunction], limits: ResourceLimits) throws -> any PeonEngine.ModuleInstance {
        try WasmKitInstance(module: self, hostFunctions: hostFunctions, limits: limits)
    }
}

extension FunctionSignature {
    init(_ type: FunctionType) {
        self.init(type.parameters.map(WasmValueType.init), type.results.map(WasmValueType.init))
    }
}

extension WasmValueType {
    init(_ type: ValueType) {
        switch type {
        case .i32: self = .i32
        case .i64: self = .i64
        case .f32: self = .f32
        case .f64: self = .f64
        case .v128: self = .other("v128")
        case .ref: self = .other("ref")
        }
    }

    var wasmKitType: ValueType? {
        switch self {
        case .i32: .i32
        case .i64: .i64
        case .f32: .f32
        case .f64: .f64
        case .other: nil
        }
    }
}

extension WasmValue {
    init?(_ value: Value) {
        switch value {
        case .i32(let v): self = .i32(v)
        case .i64(let v): self = .i64(v)
        case .f32(let v): self = .f32(v)
        case .f64(let v): self = .f64(v)
        case .v128, .ref: return nil
        }
    }

    var wasmKitValue: Value {
        switch self {
        case .i32(let v): .i32(v)
        case .i64(let v): .i64(v)
        case .f32(let v): .f32(v)
        case .f64(let v): .f64(v)
        }
    }
}

/// Counts the `i32.eqz` and `i64.eqz` instructions of a function body in a row, for
/// ``WasmKitEngine/refuseLongNegationChains(_:)``. WasmKit chains an `eqz` onto the last instruction it emitted, and
/// forgets that instruction whenever it pops an operand or emits another one; so the count starts again at every
/// instruction but those that do neither (a local, global or constant read, `nop`, a block's start or end, a branch
/// that ends the reachable code). An upper bound of the chain: `local.get 0; i32.eqz; local.set 1` repeated is no chain.
struct NegationChainMeter: AnyInstructionVisitor {
    typealias VisitorError = Never
    var binaryOffset = 0
    /// The `eqz` instructions since the last one that breaks a chain.
    var run = 0
    /// The most allowed in a row.
    let limit: Int
    /// Whether some body went over ``limit``.
    private(set) var exceeded = false

    init(limit: Int) { self.limit = limit }

    mutating func visit(_ instruction: Instruction) {
        switch instruction {
        case .i32Eqz, .i64Eqz:
            run += 1
            if run > limit { exceeded = true }
        case .nop, .block, .loop, .end, .else, .tryTable, .br, .unreachable, .return, .localGet, .globalGet,
             .i32Const, .i64Const, .f32Const, .f64Const, .v128Const, .refNull, .refFunc:
            break
        default:
            run = 0
        }
    }
}
