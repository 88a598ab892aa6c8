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
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "scenario \(name):\n\(text)")
        #expect(text.hasSuffix("ok\n"), "scenario \(name) did not finish:\n\(text)")
    }
}
