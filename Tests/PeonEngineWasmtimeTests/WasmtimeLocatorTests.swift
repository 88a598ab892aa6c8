import Foundation
@testable import PeonEngineWasmtime
import PeonTestSupport
import Testing

/// How `--engine wasmtime` finds the library inside the `wasmtime` Python package when nothing names it.
@Suite struct WasmtimeLocatorTests {
    /// Runs `python3 -c script` (through ``runShell(_:environment:directory:timeout:)``, so it is stopped after 60 s)
    /// with `PYTHONPATH` set to `path`; its exit status and its stdout, trimmed.
    private func python(_ script: String, path: String) throws -> (status: Int32, output: String) {
        let result = try runShell(#"exec python3 -c "$PEON_LOCATOR_SCRIPT""#,
                                  environment: ["PYTHONPATH": path, "PEON_LOCATOR_SCRIPT": script])
        return (result.status, result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether `python3` runs here at all.
    private static let hasPython: Bool = (try? runShell("exec python3 -c pass").status) == 0

    @Test("the package's folder is found without running the package's code", .enabled(if: hasPython))
    func findsThePackageWithoutImportingIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peon-locator-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let package = folder.appendingPathComponent("peon_locator_probe")
        try FileManager.default.createDirectory(at: package, withIntermediateDirectories: true)
        let marker = folder.appendingPathComponent("imported")
        // Importing the package would leave the marker (as importing `wasmtime` loads its library through ctypes).
        try "open(\(String(reflecting: marker.path)), 'w').close()\n"
            .write(to: package.appendingPathComponent("__init__.py"), atomically: true, encoding: .utf8)
        let found = try python(WasmtimeRuntime.pythonPackageFolderScript("peon_locator_probe"), path: folder.path)
        #expect(found.status == 0)
        #expect(URL(fileURLWithPath: found.output).standardizedFileURL.path == package.standardizedFileURL.path)
        #expect(!FileManager.default.fileExists(atPath: marker.path), "the lookup ran the package's code")
    }

    @Test("a missing package, or a module that is no package, prints nothing and fails", .enabled(if: hasPython))
    func aMissingPackageIsNoFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peon-locator-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try "x = 1\n".write(to: folder.appendingPathComponent("peon_single_module.py"), atomically: true, encoding: .utf8)
        for name in ["peon_no_such_package", "peon_single_module"] {
            let found = try python(WasmtimeRuntime.pythonPackageFolderScript(name), path: folder.path)
            #expect(found.status == 1, "\(name)")
            #expect(found.output.isEmpty, "\(name)")
        }
    }
}
