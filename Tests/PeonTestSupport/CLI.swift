public import Foundation

/// The result of running the `peon-wasm` executable.
public struct CommandResult: Sendable {
    /// The exit status.
    public var status: Int32
    /// Everything written to stdout.
    public var stdout: String
    /// Everything written to stderr.
    public var stderr: String
}

/// The built `peon-wasm` executable, beside the test bundle in the build products folder.
public var peonWasmExecutable: URL {
    var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if folder.lastPathComponent == "MacOS" { folder = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    return folder.appendingPathComponent("peon-wasm")
}

/// The repository's root folder, for fixtures such as `modules/` and `policies/`.
public var repositoryRoot: URL {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}

/// A configuration folder shared by every `peon-wasm` this test process starts, so the audit signing
/// key they create (and verify with) lives in the temporary folder, never in the user's home.
public let testConfigHome: String = FileManager.default.temporaryDirectory
    .appendingPathComponent("peon-test-config-\(ProcessInfo.processInfo.processIdentifier)").path

/// Runs `peon-wasm` with `arguments` in `directory` (default: the repository root), feeding `stdin`,
/// and waits for it (killing it after `timeout`).
///
/// Unless `environment` says otherwise, each invocation gets its own default audit log in the temporary
/// folder, so tests running side by side never contend for one log's lock, and the default signing key
/// lives in ``testConfigHome``.
public func runPeonWasm(_ arguments: [String], stdin: String = "", environment: [String: String] = [:],
                        directory: URL? = nil, timeout: TimeInterval = 60) throws -> CommandResult {
    let process = Process()
    process.executableURL = peonWasmExecutable
    process.arguments = arguments
    process.currentDirectoryURL = directory ?? repositoryRoot
    var env = ProcessInfo.processInfo.environment
    env["PEON_WASM_AUDIT_LOG"] = FileManager.default.temporaryDirectory
        .appendingPathComponent("peon-test-audit-\(UUID().uuidString).jsonl").path
    env["XDG_CONFIG_HOME"] = testConfigHome
    env.merge(environment) { _, new in new }
    process.environment = env
    let input = Pipe(), output = Pipe(), error = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = error
    try process.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try? input.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    let outData = Box(), errData = Box()
    let group = DispatchGroup()
    for (pipe, box) in [(output, outData), (error, errData)] {
        group.enter()
        DispatchQueue.global().async {
            box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
    }
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    group.wait()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData.data, as: UTF8.self),
                         stderr: String(decoding: errData.data, as: UTF8.self))
}

private final class Box: @unchecked Sendable {
    // Written by one reader thread, read after the dispatch group's wait: the group orders the two.
    var data = Data()
}
