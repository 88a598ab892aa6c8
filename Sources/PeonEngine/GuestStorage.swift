import Synchronization
import WasmParser

/// The linear memories and tables a module defines, as its binary declares them.
///
/// ``ResourceLimits/memoryBytes`` bounds the **sum** of everything a guest instance holds in them: the
/// bytes of every linear memory plus ``tableElementBytes`` per table element. Both engines read the
/// declarations from here, refuse a module whose declared minimums already exceed the cap
/// (``checkMinimums(within:)``) and bound growth past it (WasmKit through a ``StorageLedger``, wasmtime
/// through per-entity limits from ``uniformLimits(budget:)``). Imported memories and tables are not
/// listed: neither engine provides them, so a module that imports one does not link.
package struct DeclaredStorage: Sendable, Hashable {
    /// A declared minimum and optional maximum: pages for a memory, elements for a table.
    package struct Limits: Sendable, Hashable {
        /// The size at instantiation.
        package var minimum: UInt64
        /// The most it may grow to, if declared.
        package var maximum: UInt64?

        /// Creates limits.
        package init(minimum: UInt64, maximum: UInt64? = nil) {
            self.minimum = minimum
            self.maximum = maximum
        }
    }

    /// The memories the module defines, in pages.
    package var memories: [Limits]
    /// The tables the module defines, in elements.
    package var tables: [Limits]

    /// The size of a WebAssembly page.
    package static let pageBytes = 65_536

    /// What one table element is charged: 8 bytes, the host memory both engines spend per element
    /// (WasmKit stores one `Int` per element; wasmtime one pointer per `funcref`/`externref` slot).
    package static let tableElementBytes = 8

    /// Creates a description from known declarations.
    package init(memories: [Limits] = [], tables: [Limits] = []) {
        self.memories = memories
        self.tables = tables
    }

    /// Reads the memory and table sections of a module binary. Throws ``EngineError/Kind/invalidModule``
    /// when the sections cannot be read (the module is refused rather than run with unbounded storage).
    package init(parsing bytes: [UInt8]) throws(EngineError) {
        var memories: [Limits] = []
        var tables: [Limits] = []
        var parser = WasmParser.Parser(bytes: bytes, features: .all)
        do {
            while let payload = try parser.parseNext() {
                switch payload {
                case .memorySection(let declared):
                    // Threads are not run here (every instance is one thread, and `memory.atomic.wait` would block
                    // the host's). WasmKit refused such a module as invalid, wasmtime only when instantiating it (69).
                    if declared.contains(where: { $0.type.shared }) {
                        throw EngineError(.invalidModule, "the module declares a shared memory (the threads proposal), which peon-wasm does not run")
                    }
                    memories += declared.map { Limits(minimum: $0.type.min, maximum: $0.type.max) }
                case .tableSection(let declared):
                    tables += declared.map { Limits(minimum: $0.type.limits.min, maximum: $0.type.limits.max) }
                default:
                    break
                }
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.invalidModule, "cannot read the module's memories and tables to bound them: \(error)")
        }
        self.init(memories: memories, tables: tables)
    }

    /// The bytes `pages` pages take, saturating at `Int.max`.
    package static func bytes(pages: UInt64) -> Int {
        let (product, overflow) = Int(clamping: pages).multipliedReportingOverflow(by: pageBytes)
        return overflow ? .max : product
    }

    /// The bytes `elements` table elements are charged, saturating at `Int.max`.
    package static func bytes(elements: UInt64) -> Int {
        let (product, overflow) = Int(clamping: elements).multipliedReportingOverflow(by: tableElementBytes)
        return overflow ? .max : product
    }

    /// What the module holds right after instantiation: every memory's and table's minimum, summed
    /// (saturating at `Int.max`).
    package var minimumBytes: Int {
        let memoryBytes = memories.reduce(0) { saturatingAdd($0, Self.bytes(pages: $1.minimum)) }
        return tables.reduce(memoryBytes) { saturatingAdd($0, Self.bytes(elements: $1.minimum)) }
    }

    /// Throws ``EngineError/Kind/instantiation`` when the declared minimums alone exceed
    /// `limits.memoryBytes`, naming what the module declares.
    package func checkMinimums(within limits: ResourceLimits) throws(EngineError) {
        let needed = minimumBytes
        guard needed > max(limits.memoryBytes, 0) else { return }
        throw EngineError(.instantiation,
            "the module declares \(needed) bytes of memories and tables at instantiation (\(summary)), over the memory cap of \(limits.memoryBytes) bytes; raise it with --memory")
    }

    /// The declarations in words, for error messages.
    package var summary: String {
        let memoryPages = memories.reduce(UInt64(0)) { $0 &+ $1.minimum }
        let elements = tables.reduce(UInt64(0)) { $0 &+ $1.minimum }
        return "\(memories.count) \(memories.count == 1 ? "memory" : "memories") of \(memoryPages) pages, "
            + "\(tables.count) \(tables.count == 1 ? "table" : "tables") of \(elements) elements at \(Self.tableElementBytes) bytes each"
    }

    /// One size limit for every memory and one for every table whose worst case stays within `budget`
    /// bytes: `memories.count × memoryBytes + tables.count × tableElementBytes × tableElements ≤ budget`.
    ///
    /// For an engine whose limiter caps each memory and each table separately (wasmtime's store
    /// limiter). Every memory may reach the largest declared minimum and every table the largest
    /// declared table minimum; what is left goes to growth, the tables (when they can grow at all) getting
    /// at most an eighth of it when memories can grow too, the memories the rest in equal shares. A
    /// module with one memory, the usual case, may grow it to the whole budget less its tables. Throws
    /// ``EngineError/Kind/instantiation`` when the minimums cannot fit.
    package func uniformLimits(budget: Int) throws(EngineError) -> (memoryBytes: Int, tableElements: Int) {
        let budget = max(budget, 0)
        try checkMinimums(within: ResourceLimits(memoryBytes: budget))
        let memoryFloor = memories.map { Self.bytes(pages: $0.minimum) }.max() ?? 0
        let tableFloor = tables.map { Int(clamping: $0.minimum) }.max() ?? 0
        let tableFloorBytes = Self.bytes(elements: UInt64(tableFloor))
        let base = saturatingAdd(saturatingMultiply(memoryFloor, memories.count),
                                 saturatingMultiply(tableFloorBytes, tables.count))
        guard base <= budget else {
            throw EngineError(.instantiation,
                "the module declares \(summary); this engine caps each memory and each table alike, so they need up to \(base) bytes, over the memory cap of \(budget) bytes; raise it with --memory")
        }
        var rest = budget - base
        var tableElements = tableFloor
        if !tables.isEmpty {
            let ceiling = tables.map { $0.maximum.map { Int(clamping: $0) } ?? .max }.max() ?? tableFloor
            if ceiling > tableFloor {
                let memoriesGrow = memories.contains { ($0.maximum ?? .max) > $0.minimum }
                let share = memoriesGrow ? rest / 8 : rest
                let perTable = share / Self.tableElementBytes / tables.count
                let extra = min(perTable, ceiling - tableFloor)
                tableElements += extra
                rest -= extra * Self.tableElementBytes * tables.count
            }
        }
        let memoryBytes = memories.isEmpty ? 0 : memoryFloor + rest / memories.count
        return (memoryBytes, tableElements)
    }
}

/// The running total of one instance's memories and tables, against its budget: the accounting behind
/// an engine limiter that reports only "this memory (or table) wants to become N bytes (elements)".
///
/// The first `declared.memories.count` memory requests (and `declared.tables.count` table requests) are
/// the allocations at instantiation; later ones are growth. A growth request does not say which memory
/// or table grows, so with several of them the ledger charges it as growth of the smallest one that
/// could have grown to the requested size: that never undercounts (the ledger's sizes always dominate
/// the real ones), at the price of refusing some growth early in a module with several memories or
/// several tables. With one memory and one table the ledger is exact. A refused request changes nothing.
package final class StorageLedger: Sendable {
    private struct State {
        var memories: [Int] = []
        var tables: [Int] = []
        var charged = 0
        /// Table elements copied by growth so far (WasmKit copies a table whole to grow it).
        var tableElementsCopied = 0
    }

    private let budget: Int
    private let declared: DeclaredStorage
    private let state = Mutex(State())

    /// Creates an empty ledger for an instance of a module declaring `declared`, capped at `budget` bytes.
    package init(budget: Int, declared: DeclaredStorage) {
        self.budget = max(budget, 0)
        self.declared = declared
    }

    /// The bytes charged so far.
    package var chargedBytes: Int { state.withLock { $0.charged } }

    /// Whether a memory may become `desired` bytes; records it when it may.
    package func allowMemory(toBytes desired: Int) -> Bool {
        state.withLock { state in
            Self.allow(desired, bytesPerUnit: 1, sizes: &state.memories, allocations: declared.memories.count,
                       charged: &state.charged, budget: budget)
        }
    }

    /// The most table elements growth may copy in all, as a multiple of the elements the budget holds: 8.
    ///
    /// WasmKit grows a table by allocating the new size and copying the old elements, so `table.grow 1` in a loop is
    /// quadratic, and fuel does not charge the copies: a guest under a 3 MiB cap held an MCP call for 78 s. Growth that
    /// doubles copies at most twice the final size; past this much copying, growth fails (`table.grow` returns -1).
    package static let tableCopyFactor = 8

    /// Whether a table may become `desired` elements; records it when it may.
    package func allowTable(toElements desired: Int) -> Bool {
        state.withLock { state in
            let growing = state.tables.count >= declared.tables.count && !state.tables.isEmpty
            var copied = state.tableElementsCopied
            if growing {
                // The size it grows from: the largest recorded one not above `desired` (the ledger's own rule below).
                let from = state.tables.filter { $0 <= desired }.max() ?? 0
                copied = saturatingAdd(copied, from)
                let allowance = saturatingMultiply(budget / DeclaredStorage.tableElementBytes, Self.tableCopyFactor)
                guard copied <= allowance else { return false }
            }
            guard Self.allow(desired, bytesPerUnit: DeclaredStorage.tableElementBytes, sizes: &state.tables,
                             allocations: declared.tables.count, charged: &state.charged, budget: budget) else { return false }
            state.tableElementsCopied = copied
            return true
        }
    }

    /// `sizes` are the recorded sizes in units (bytes for memories, elements for tables), each charged
    /// `bytesPerUnit` bytes.
    private static func allow(
        _ desired: Int, bytesPerUnit: Int, sizes: inout [Int], allocations: Int, charged: inout Int, budget: Int
    ) -> Bool {
        guard desired >= 0 else { return false }
        // An allocation at instantiation, or (defensively) a request for something never recorded.
        if sizes.count < allocations || sizes.isEmpty {
            let total = saturatingAdd(charged, saturatingMultiply(desired, bytesPerUnit))
            guard total <= budget else { return false }
            sizes.append(desired)
            charged = total
            return true
        }
        // Growth: charge it against the smallest recorded size it could have grown from.
        guard let index = sizes.indices.filter({ sizes[$0] <= desired }).min(by: { sizes[$0] < sizes[$1] }) else {
            // Every recorded size is already at least as large, so whichever one grows is already
            // charged for `desired`; nothing to add.
            return true
        }
        let total = saturatingAdd(charged, saturatingMultiply(desired - sizes[index], bytesPerUnit))
        guard total <= budget else { return false }
        sizes[index] = desired
        charged = total
        return true
    }
}

private func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

private func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : product
}
