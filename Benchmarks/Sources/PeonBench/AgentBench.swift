import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmtime
import PeonRuntime
import Synchronization

/// Section 6: module load + instantiate (cold and cached), memory per instance, and 100 concurrent agents.
struct AgentBench {
    let report: Report
    let workspace: Workspace
    let engines: [any WasmEngine]
    let quick: Bool

    func run() throws {
        report.line("## 6. Agents")
        report.line()
        try loadAndInstantiate()
        try concurrentAgents()
    }

    private func loadAndInstantiate() throws {
        let (session, _) = try workspace.session(sync: .batch, name: "load")
        defer { session.finish(outcome: "ok", reason: "") }
        let functions = session.hostFunctions
        let bytes = workspace.moduleBytes
        var rows: [[String]] = []
        let count = quick ? 5 : 15
        for engine in engines {
            var cold = engine
            if engine.name.contains("wasmtime") {
                // Cold: an engine with no compilation cache at all.
                cold = try WasmtimeEngine.load(libraryPath: nil, cacheDirectory: nil)
            }
            let coldStats = try measure(count: count, batch: 1, warmup: 1) {
                _ = try Guest(module: try cold.compile(bytes), hostFunctions: functions)
            }
            rows.append([engine.name, "compile + instantiate (cold)", formatNS(coldStats.median), formatNS(coldStats.p99)])
            var cachedLabel = "instantiate a compiled module"
            if engine.name.contains("wasmtime") {
                let cacheDirectory = try makeTemporaryDirectory("wasmtime-cache")
                let cachedEngine = try WasmtimeEngine.load(libraryPath: nil, cacheDirectory: cacheDirectory)
                _ = try cachedEngine.compile(bytes)
                let diskStats = try measure(count: count, batch: 1, warmup: 1) {
                    _ = try Guest(module: try cachedEngine.compile(bytes), hostFunctions: functions)
                }
                rows.append([engine.name, "load from the on-disk compilation cache + instantiate", formatNS(diskStats.median), formatNS(diskStats.p99)])
                cachedLabel = "instantiate a compiled module (in memory)"
            }
            let module = try engine.compile(bytes)
            let cachedStats = try measure(count: count * 4, batch: 1, warmup: 2) {
                _ = try Guest(module: module, hostFunctions: functions)
            }
            // Memory while 100 instances are alive: heap bytes in use (malloc's count, which RSS misses when freed
            // memory is reused) and resident growth (linear memory is mapped lazily: only touched pages count).
            let heapBefore = heapBytesInUse()
            let residentBefore = residentBytes()
            var instances: [Guest] = []
            for _ in 0..<100 { instances.append(try Guest(module: module, hostFunctions: functions)) }
            var touch = ArgumentWriter()
            _ = touch.string("x")
            for instance in instances { try instance.load(touch) }
            let heapPerInstance = (heapBytesInUse() - heapBefore) / 100
            let residentPerInstance = (residentBytes() - residentBefore) / 100
            instances.removeAll()
            rows.append([engine.name, cachedLabel, formatNS(cachedStats.median), formatNS(cachedStats.p99)])
            rows.append([engine.name, "memory per live instance, 100 alive (4 pages = 256 KiB linear memory each, mapped lazily): malloc heap in use / resident growth",
                         String(format: "%.0f KiB / %.0f KiB", Double(heapPerInstance) / 1024, Double(residentPerInstance) / 1024), "—"])
        }
        report.line("Module: the benchmark guest (\(workspace.moduleBytes.count) bytes, \(loopedImports.count + 1) imports), instantiated with all `peon:host` bindings.")
        report.line()
        report.table(["engine", "what", "median", "p99"], rows)
    }

    private func concurrentAgents() throws {
        let agents = 100
        let calls = Int(ProcessInfo.processInfo.environment["PEON_BENCH_AGENT_CALLS"] ?? "") ?? (quick ? 500 : 10_000)
        var rows: [[String]] = []
        for engine in engines {
            let (session, auditPath) = try workspace.session(sync: .batch, name: "agents-\(engine.name)")
            let module = try engine.compile(workspace.moduleBytes)
            var writer = ArgumentWriter()
            let path = writer.string("data/small.txt")
            // Entries one allowed fs.read writes, measured rather than assumed.
            let probe = try Guest(module: module, hostFunctions: session.hostFunctions)
            try probe.load(writer)
            let probeStart = session.audit.size
            guard try probe.loop("fs_read", [path.0, path.1], count: 10) == 10 else { throw BenchFailure("probe reads failed") }
            let entriesPerCall = Int(session.audit.size - probeStart) / 10
            // Every agent shares the session and its host functions (they keep no per-instance state).
            let ok = SharedCounter()
            let failures = SharedFailures()
            let ready = DispatchGroup()
            let done = DispatchGroup()
            let start = DispatchSemaphore(value: 0)
            let sizeBefore = session.audit.size
            let bytesBlock = writer
            for _ in 0..<agents {
                ready.enter()
                done.enter()
                let thread = Thread {
                    var isReady = false
                    do {
                        let guest = try Guest(module: module, hostFunctions: session.hostFunctions)
                        try guest.load(bytesBlock)
                        isReady = true
                        ready.leave()
                        start.wait()
                        let succeeded = try guest.loop("fs_read", [path.0, path.1], count: calls)
                        ok.value.add(succeeded, ordering: .relaxed)
                    } catch {
                        failures.lock.withLock { $0.append("\(error)") }
                        if !isReady { ready.leave() }
                    }
                    done.leave()
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            ready.wait()
            let clock = ContinuousClock.now
            for _ in 0..<agents { start.signal() }
            done.wait()
            let wall = nanoseconds(ContinuousClock.now - clock) / 1e9
            if let failure = failures.lock.withLock({ $0.first }) { throw BenchFailure("an agent failed: \(failure)") }
            let sizeAfter = session.audit.size
            let expected = UInt64(agents * calls * entriesPerCall)
            session.finish(outcome: "ok", reason: "")
            let verifyStart = ContinuousClock.now
            let summary = try AuditVerifier.verify(logPath: auditPath, verifierKey: nil)
            let verifyTime = nanoseconds(ContinuousClock.now - verifyStart) / 1e9
            let exact = ok.value.load(ordering: .relaxed) == agents * calls && sizeAfter - sizeBefore == expected && summary.size == sizeAfter + 1
            rows.append([engine.name, "\(agents) × \(formatCount(calls))", formatRate(Double(agents * calls) / wall) + " calls",
                         String(format: "%.2f s", wall), formatCount(Int(sizeAfter - sizeBefore)),
                         formatCount(Int(expected)) + " (\(entriesPerCall) per call)",
                         exact ? "yes, \(formatCount(Int(summary.size))) entries in \(String(format: "%.2f", verifyTime)) s" : "**NO** (log \(summary.size), ok \(ok.value.load(ordering: .relaxed)))"])
            try? FileManager.default.removeItem(atPath: auditPath)
        }
        report.line("\(agents) agents, each its own instance on its own thread, all started together; each makes \(formatCount(calls)) mediated `fs.read` calls of a granted 16-byte file "
            + "through one shared session (one mediator, one audit log in `batch` sync mode).")
        report.line()
        report.table(["engine", "agents × calls", "throughput", "wall", "entries appended", "expected", "log verifies with exactly the expected entries"], rows)
    }
}

/// Boxes so escaping thread closures can share an atomic and a mutex.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

final class SharedFailures: Sendable {
    let lock = Mutex<[String]>([])
}
