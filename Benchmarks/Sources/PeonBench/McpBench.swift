import Foundation

/// Section 7: `peon-wasm mcp` measured from a real MCP client. The client is the official Python SDK
/// (`mcp_bench.py`, a child process of this run) driving the release `peon-wasm` that `run.sh` builds:
/// tool-call latency for a no-op tool and for c-summarizer, calls per second with 16 clients, and the same
/// tools run as one `peon-wasm run` process per call.
struct McpBench {
    let report: Report
    /// The release `peon-wasm` (`--peon-wasm`), or nil when the run was started without one.
    let peonWasm: String?
    let script: String
    let repositoryRoot: String
    let quick: Bool

    func run() throws {
        report.line("## 7. MCP tool calls")
        report.line()
        report.line("A client made with the official Python MCP SDK (`mcp_bench.py`) starts `peon-wasm mcp` over stdio (batch audit) and calls "
            + "a tool that answers at once (*noop*, no host call) and `c-summarizer` (lists the folder, reads its three reports, writes a summary); "
            + "each call is a fresh instance under its grants with its `run.start`/`run.end` and every host call audited. "
            + "*16 clients*: 16 client sessions, each its own server process (stdio), calling *noop* in a loop once all are connected. "
            + "*`peon-wasm run` per call*: the same module run as one process per call, what a client without a server would do. "
            + "Latency includes the Python client's own JSON-RPC handling.")
        report.line()
        guard let peonWasm, FileManager.default.isExecutableFile(atPath: peonWasm) else {
            report.line("Not measured: this run was started without `--peon-wasm PATH` (`Benchmarks/run.sh` builds and passes it).")
            report.line()
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, peonWasm, repositoryRoot] + (quick ? ["--quick"] : [])
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let table = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problems = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, table.hasPrefix("| engine") else {
            let why = problems.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            report.line("Not measured: `mcp_bench.py` failed (\(why)); it needs `pip install mcp==2.3.0`.")
            report.line()
            return
        }
        progress("mcp: measured")
        for line in table.split(separator: "\n") { report.line(String(line)) }
        report.line()
    }
}
