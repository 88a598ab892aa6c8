// The Python MCP client scenarios, shared by the MCP suites and the PostgreSQL suite (which runs one against a
// server following the policy store).
import Foundation
import Testing

/// Whether `python3` can import the official MCP client (PyPI `mcp`; `.ci/run` installs 2.3.0).
package let pythonMCPAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import mcp.client.stdio"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
    } catch {
        return false
    }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// Runs one scenario of `Tests/PeonMCPTests/MCP/mcp_client_test.py` against the built `peon-wasm` and expects it to pass
/// (McpServerTests runs each; the PostgreSQL suite runs `policy-store`).
package func runMCPClientScenario(_ name: String) throws {
    let (status, text) = try mcpClientScenarioOutput(name)
    #expect(status == 0, "scenario \(name):\n\(text)")
    #expect(text.hasSuffix("ok\n"), "scenario \(name) did not finish:\n\(text)")
}

/// Runs one scenario as ``runMCPClientScenario(_:)`` does, on a thread of its own, and returns the script's exit
/// status and output: waiting for the script does not hold a thread of the shared pool, which the in-process servers
/// of other tests (StdioBackpressureTests) need while the scenarios run.
package func runMCPClientScenarioOffPool(_ name: String) async throws {
    let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<(Int32, String), any Error>, Never>) in
        let thread = Thread { continuation.resume(returning: Result { try mcpClientScenarioOutput(name) }) }
        thread.start()
    }
    let (status, text) = try outcome.get()
    #expect(status == 0, "scenario \(name):\n\(text)")
    #expect(text.hasSuffix("ok\n"), "scenario \(name) did not finish:\n\(text)")
}

/// The exit status and output of one scenario of `Tests/PeonMCPTests/MCP/mcp_client_test.py`.
func mcpClientScenarioOutput(_ name: String) throws -> (Int32, String) {
    try withTemporaryDirectory { directory in
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let fixtures = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP")
        process.arguments = ["python3", fixtures.appendingPathComponent("mcp_client_test.py").path,
                             peonWasmExecutable.path, fixtures.path, directory.path, name]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
