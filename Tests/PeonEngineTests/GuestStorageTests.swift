import PeonEngine
import PeonTestSupport
import Testing

/// `--memory` bounds the sum of every linear memory and every table (8 bytes per element) of one
/// instance, on every engine: many tables, a huge `table.grow`, a big initial table or many memories
/// cannot hold more than the cap between them.
@Suite("Guest storage cap")
struct GuestStorageCapTests {
    /// 16 MiB, the cap the attacks were tried under.
    static let cap = 16 << 20

    private func instantiate(_ engine: EngineUnderTest, _ text: String, cap: Int = GuestStorageCapTests.cap) throws
        -> any ModuleInstance
    {
        try engine.make(false).compile(try wasm(text)).instantiate([], limits: ResourceLimits(memoryBytes: cap))
    }

    private func expectRefused(_ engine: EngineUnderTest, _ text: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: EngineError.self, sourceLocation: sourceLocation) {
            try instantiate(engine, text)
        }
        #expect(error?.kind == .instantiation, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.message.contains("memory cap") == true, "\(String(describing: error))",
                sourceLocation: sourceLocation)
    }

    @Test("tables whose declared sizes together exceed the cap do not instantiate", arguments: TestEngines.all)
    func manyTablesAreRefused(engine: EngineUnderTest) throws {
        // Three tables of 1M elements: each one alone fits (8 MB), together 24 MB do not.
        expectRefused(engine, "(module (table 1000000 funcref) (table 1000000 funcref) (table 1000000 funcref))")
        // A memory of 12.5 MiB and a table of 8 MB: each fits, the sum does not.
        expectRefused(engine, "(module (memory 200) (table 1000000 funcref))")
        // 150M elements, the 1.2 GB attack.
        expectRefused(engine, "(module (table 150000000 funcref))")
        // Just under the cap instantiates.
        _ = try instantiate(engine, "(module (memory 128) (table 1000000 funcref))")
    }

    @Test("table.grow and memory.grow stop where the sum reaches the cap", arguments: TestEngines.all)
    func tableGrowthIsBounded(engine: EngineUnderTest) throws {
        let instance = try instantiate(engine, """
            (module (memory 1) (table 1 funcref)
              (func (export "tgrow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0)))
              (func (export "tsize") (result i32) (table.size 0))
              (func (export "mgrow") (param i32) (result i32) (memory.grow (local.get 0)))
              (func (export "msize") (result i32) (memory.size)))
            """)
        #expect(try instance.call("tgrow", [.i32(150_000_000)]) == [.i32(0xFFFF_FFFF)], "the 1.2 GB table.grow")
        // Grow both as far as they go, in steps; whatever each engine's split, the sum stays under the cap.
        while try instance.call("tgrow", [.i32(50_000)]) != [.i32(0xFFFF_FFFF)] {}
        while try instance.call("mgrow", [.i32(4)]) != [.i32(0xFFFF_FFFF)] {}
        guard case .i32(let elements)? = try instance.call("tsize", []).first,
              case .i32(let pages)? = try instance.call("msize", []).first
        else {
            Issue.record("table.size or memory.size returned no i32")
            return
        }
        let held = Int(pages) * 65_536 + Int(elements) * DeclaredStorage.tableElementBytes
        #expect(held <= Self.cap, "\(pages) pages and \(elements) elements under a 16 MiB cap")
        #expect(elements > 1 && pages > 1, "both could grow")
    }

    @Test("on WasmKit the cap is exact: the table's bytes are the memory's to lose")
    func wasmKitChargesTheExactSum() throws {
        let engine = try #require(TestEngines.all.first { $0.name == "wasmkit" })
        let instance = try instantiate(engine, """
            (module (memory 1) (table 1 funcref)
              (func (export "tgrow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0)))
              (func (export "mgrow") (param i32) (result i32) (memory.grow (local.get 0))))
            """)
        #expect(try instance.call("tgrow", [.i32(999_999)]) == [.i32(1)], "8 MB of table fits")
        // 8 MB of table + 12 MiB of memory is over 16 MiB: the memory cannot take what the table holds.
        #expect(try instance.call("mgrow", [.i32(191)]) == [.i32(0xFFFF_FFFF)])
        #expect(try instance.call("mgrow", [.i32(100)]) == [.i32(1)])
        // 8 MB + 101 pages leave room for about 270k more elements, not 300k.
        #expect(try instance.call("tgrow", [.i32(300_000)]) == [.i32(0xFFFF_FFFF)])
        #expect(try instance.call("tgrow", [.i32(269_000)]) == [.i32(1_000_000)])
    }

    @Test("many memories together stay under the cap", arguments: TestEngines.all)
    func manyMemoriesAreBoundedTogether(engine: EngineUnderTest) throws {
        let count = 20
        var text = "(module\n"
        for index in 0..<count { text += "(memory $m\(index) 1 1024)\n" }
        for index in 0..<count {
            text += "(func (export \"grow\(index)\") (param i32) (result i32) (memory.grow $m\(index) (local.get 0)))\n"
            text += "(func (export \"size\(index)\") (result i32) (memory.size $m\(index)))\n"
        }
        text += ")"
        let instance: any ModuleInstance
        do {
            instance = try engine.make(false).compile(try wasm(text))
                .instantiate([], limits: ResourceLimits(memoryBytes: Self.cap))
        } catch let error as EngineError where engine.name == "wasmkit" {
            // WasmKit is built without the multi-memory proposal: such a module is refused outright.
            #expect(error.message.contains("memor"), "\(error)")
            return
        }
        var pages = 0
        for index in 0..<count {
            // Grow each memory a page at a time until it is refused.
            while try instance.call("grow\(index)", [.i32(1)]) != [.i32(0xFFFF_FFFF)] {}
            guard case .i32(let size)? = try instance.call("size\(index)", []).first else {
                Issue.record("memory.size returned no i32")
                return
            }
            pages += Int(size)
        }
        #expect(pages * 65_536 <= Self.cap, "20 memories hold \(pages) pages under a 16 MiB cap")
        #expect(pages > count, "the memories could grow at all")
    }
}

/// The accounting behind the cap, without an engine.
@Suite("Declared storage and ledger")
struct StorageAccountingTests {
    @Test func minimumsAreSummedAtEightBytesPerElement() {
        let storage = DeclaredStorage(memories: [.init(minimum: 2), .init(minimum: 1, maximum: 3)],
                                      tables: [.init(minimum: 10), .init(minimum: 5)])
        #expect(storage.minimumBytes == 3 * 65_536 + 15 * 8)
        #expect(throws: EngineError.self) { try storage.checkMinimums(within: ResourceLimits(memoryBytes: 3 * 65_536 + 119)) }
        #expect(throws: Never.self) { try storage.checkMinimums(within: ResourceLimits(memoryBytes: 3 * 65_536 + 120)) }
        let huge = DeclaredStorage(memories: [.init(minimum: .max)], tables: [.init(minimum: .max)])
        #expect(huge.minimumBytes == .max)
    }

    /// WasmKit copies a table whole to grow it, and fuel does not charge the copy: `table.grow 1` in a loop was
    /// quadratic (78 s of one MCP call under a 3 MiB cap). The ledger bounds the elements growth copies in all to 8
    /// times what the budget holds; growth that doubles still reaches the whole budget.
    @Test func tableGrowthCopiesAreBounded() {
        let budget = 1 << 20
        let elements = budget / DeclaredStorage.tableElementBytes
        let stepwise = StorageLedger(budget: budget, declared: DeclaredStorage(tables: [.init(minimum: 0)]))
        #expect(stepwise.allowTable(toElements: 0))
        var size = 0
        var copied = 0
        while stepwise.allowTable(toElements: size + 1) {
            copied += size
            size += 1
        }
        #expect(size < elements, "growth by one element reached the whole budget: \(size)")
        #expect(copied <= elements * StorageLedger.tableCopyFactor)
        #expect(copied + size > elements * StorageLedger.tableCopyFactor, "it stopped before the copy allowance: \(size)")
        let doubling = StorageLedger(budget: budget, declared: DeclaredStorage(tables: [.init(minimum: 1)]))
        #expect(doubling.allowTable(toElements: 1))
        var grown = 1
        while grown < elements {
            grown = min(grown * 2, elements)
            #expect(doubling.allowTable(toElements: grown), "doubling refused at \(grown)")
        }
    }

    @Test func theLedgerRefusesTheSumAndChargesAmbiguousGrowthConservatively() {
        let ledger = StorageLedger(budget: 10 * 65_536,
                                   declared: DeclaredStorage(memories: [.init(minimum: 1), .init(minimum: 4)],
                                                             tables: [.init(minimum: 100)]))
        #expect(ledger.allowTable(toElements: 100))
        #expect(ledger.allowMemory(toBytes: 65_536))
        #expect(ledger.allowMemory(toBytes: 4 * 65_536))
        #expect(ledger.chargedBytes == 5 * 65_536 + 800)
        // Growth to 5 pages: it could be either memory; charged as the 1-page one growing (+4 pages).
        #expect(ledger.allowMemory(toBytes: 5 * 65_536))
        #expect(ledger.chargedBytes == 9 * 65_536 + 800)
        #expect(!ledger.allowMemory(toBytes: 6 * 65_536), "+1 page from 5 would pass 10 pages with the table")
        #expect(!ledger.allowTable(toElements: 100 + 65_536 / 8), "the table cannot take the last page either")
        #expect(ledger.allowTable(toElements: 100 + 65_536 / 8 - 100))
        #expect(ledger.chargedBytes <= 10 * 65_536)
    }

    @Test(arguments: [
        (1, 0, false), (1, 1, false), (20, 0, false), (2, 3, true), (1, 1, true), (0, 4, true), (3, 0, true),
    ])
    func uniformLimitsNeverExceedTheBudgetInTheWorstCase(memories: Int, tables: Int, growableTables: Bool) throws {
        var declaredMemories: [DeclaredStorage.Limits] = []
        for index in 0..<memories {
            declaredMemories.append(DeclaredStorage.Limits(minimum: UInt64(index + 1), maximum: 1024))
        }
        var declaredTables: [DeclaredStorage.Limits] = []
        for index in 0..<tables {
            let minimum = UInt64(100 * (index + 1))
            declaredTables.append(DeclaredStorage.Limits(minimum: minimum, maximum: growableTables ? nil : minimum))
        }
        let storage = DeclaredStorage(memories: declaredMemories, tables: declaredTables)
        for budget in [16 << 20, 256 << 20, 3 * 65_536 * max(memories, 1) + 1_000] {
            guard let split = try? storage.uniformLimits(budget: budget) else { continue }
            let worst = memories * split.memoryBytes + tables * DeclaredStorage.tableElementBytes * split.tableElements
            #expect(worst <= budget, "\(memories) memories, \(tables) tables, budget \(budget): \(split)")
            #expect(split.memoryBytes >= (memories == 0 ? 0 : memories * 65_536))
            #expect(split.tableElements >= (tables == 0 ? 0 : tables * 100))
        }
        if memories == 1 && tables == 0 {
            #expect(try storage.uniformLimits(budget: 16 << 20).memoryBytes == 16 << 20, "one memory may use it all")
        }
    }
}
