import Foundation
import PeonAudit
import PeonEngine
import PeonRuntime

/// Section 2b: what information-flow labels cost. The same reads and writes from the guest, once under grants
/// without labels and once under a grant with `labels = ["hr"]` and `clearance = ["hr"]`: every read brings the
/// label into the run, every write is checked against the run's labels and labels the file it writes
/// (`user.peon.labels`).
struct LabelBench {
    let report: Report
    let engines: [any WasmEngine]
    let server: LoopbackServer
    let quick: Bool

    var sampleCount: Int { quick ? 11 : 31 }

    func run() throws {
        report.line("## 2b. The cost of information-flow labels")
        report.line()
        report.line("Guest calls in `batch` audit mode: the lowest of three medians per call (each over \(sampleCount) batches), the two configurations measured alternately. *unlabelled*: the benchmark grants; "
            + "*labelled*: the same `data/**` grant with `labels = [\"hr\"]` and `clearance = [\"hr\"]`, so each read adds `hr` to the run "
            + "(the outcome entry records it), and each write checks the run's labels against the grant's clearance and records them on the "
            + "written file (an extended attribute).")
        report.line()
        let plain = try Workspace(httpPort: server.port, name: "labels-plain")
        let labelled = try Workspace(httpPort: server.port, labelled: true, name: "labels-labelled")
        defer {
            try? FileManager.default.removeItem(atPath: plain.root)
            try? FileManager.default.removeItem(atPath: labelled.root)
        }
        let data4k = [UInt8]((0..<4096).map { UInt8($0 & 0x7f) })
        var rows: [[String]] = []
        for engine in engines {
            let module = try engine.compile(plain.moduleBytes)
            // Both configurations, alternately, three times: the lowest median of each, so drift in a shared
            // machine's speed does not land on one side.
            var best: [String: [Double]] = ["plain": [.infinity, .infinity], "labelled": [.infinity, .infinity]]
            for _ in 0..<(quick ? 1 : 3) {
                for (name, workspace) in [("plain", plain), ("labelled", labelled)] {
                    let (session, _) = try workspace.session(sync: .batch, name: "labels-\(engine.name)")
                    defer { session.finish(outcome: "ok", reason: "") }
                    let guest = try Guest(module: module, hostFunctions: session.hostFunctions)
                    var writer = ArgumentWriter()
                    let readPath = writer.string("data/small.txt")
                    let writePath = writer.string("data/out.bin")
                    let payload = writer.raw(data4k)
                    try guest.load(writer)
                    let batch = quick ? 100 : 300
                    var ok = 0
                    let read = try measure(count: sampleCount, batch: batch) {
                        ok += try guest.loop("fs_read", [readPath.0, readPath.1], count: batch)
                    }
                    let write = try measure(count: sampleCount, batch: batch) {
                        ok += try guest.loop("fs_write", [writePath.0, writePath.1, payload.0, payload.1], count: batch)
                    }
                    guard ok == 2 * (sampleCount + 3) * batch else { throw BenchFailure("label benchmark calls failed: \(ok) ok") }
                    let previous = best[name] ?? [.infinity, .infinity]
                    best[name] = [min(previous[0], read.median), min(previous[1], write.median)]
                }
            }
            let plainTimes = best["plain"] ?? [0, 0]
            let labelledTimes = best["labelled"] ?? [0, 0]
            for (index, name) in ["fs.read 16 B (source)", "fs.write 4 KiB (sink)"].enumerated() {
                let delta = labelledTimes[index] - plainTimes[index]
                progress("\(engine.name) labels \(name): \(formatNS(plainTimes[index])) -> \(formatNS(labelledTimes[index]))")
                rows.append([engine.name, name, formatNS(plainTimes[index]), formatNS(labelledTimes[index]), formatDelta(delta),
                             String(format: "%+.0f %%", (labelledTimes[index] / plainTimes[index] - 1) * 100)])
            }
        }
        report.table(["engine", "call", "unlabelled median", "labelled median", "labels add", "relative"], rows)
        report.line()
    }
}
