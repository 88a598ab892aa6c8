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

/// One folder under the system's temporary folder for what every `peon-wasm` this test process starts leaves
/// behind by default (its signing key, its default audit logs), removed when the test process exits: a test run
/// leaves nothing in `/tmp`.
public let testScratchRoot: String = {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("peon-test-run-\(ProcessInfo.processInfo.processIdentifier)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: testScratchRoot) }
    return path
}()

/// A configuration folder shared by every `peon-wasm` this test process starts, so the audit signing
/// key they create (and verify with) lives in the temporary folder, never in the user's home.
public var testConfigHome: String { testScratchRoot + "/config" }

/// A path for a default audit log no other invocation uses, in ``testScratchRoot``.
public func freshDefaultAuditLog() -> String {
    testScratchRoot + "/audit-\(UUID().uuidString).jsonl"
}

/// Runs `peon-wasm` with `arguments` in `directory` (default: the repository root), feeding `stdin`,
/// and waits for it (killing it after `timeout`).
///
/// Unless `environment` says otherwise, each invocation gets its own default audit log in the temporary
/// folder, so tests running side by side never contend for one log's lock, and the default signing key
/// lives in ``testConfigHome``.
public func runPeonWasm(_ arguments: [String], stdin: String = "", environment: [String: String] = [:],
                        directory: URL? = nil, timeout: TimeInterval = 60) throws -> CommandResult {
    try runProgram(peonWasmExecutable, arguments, stdin: stdin, environment: environment, directory: directory, timeout: timeout)
}

/// Runs `script` with `/bin/bash -c`, as ``runPeonWasm(_:stdin:environment:directory:timeout:)`` runs
/// `peon-wasm`, with `$PEON_WASM` naming the built executable: for what only a shell sets up, such as
/// `--input-file <(printf ...)` or a pipe into `--stdin`. A script that starts `peon-wasm` should `exec` it,
/// so that a timeout stops `peon-wasm` itself, not only the shell.
public func runShell(_ script: String, environment: [String: String] = [:], directory: URL? = nil,
                     timeout: TimeInterval = 60) throws -> CommandResult {
    var env = environment
    env["PEON_WASM"] = peonWasmExecutable.path
    return try runProgram(URL(fileURLWithPath: "/bin/bash"), ["-c", script], stdin: "", environment: env,
                          directory: directory, timeout: timeout)
}

/// Runs `executable` with `arguments` under the environment and timeout rules of ``runPeonWasm(_:stdin:environment:directory:timeout:)``.
private func runProgram(_ executable: URL, _ arguments: [String], stdin: String, environment: [String: String],
                        directory: URL?, timeout: TimeInterval) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory ?? repositoryRoot
    var env = ProcessInfo.processInfo.environment
    env["PEON_WASM_AUDIT_LOG"] = freshDefaultAuditLog()
    env["XDG_CONFIG_HOME"] = testConfigHome
    env.merge(environment) { _, new in new }
    process.environment = env
    let input = Pipe(), output = Pipe(), error = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    // Each pipe gets a thread of its own, never a task on the shared dispatch pool: with the machine busy with other
    // tests, a pooled reader could start seconds late, and a server that waits at most so long for its client to read
    // (`peon-wasm mcp` drains its answers for 5 s) would end with its last answer unread. Writing stdin on its own
    // thread too means a child that answers before it has read all its input never blocks this one.
    let outData = Box(), errData = Box()
    let group = DispatchGroup()
    var jobs: [(String, @Sendable () -> Void)] = [
        ("stdout", { outData.data = output.fileHandleForReading.readDataToEndOfFile() }),
        ("stderr", { errData.data = error.fileHandleForReading.readDataToEndOfFile() }),
    ]
    let bytes = Data(stdin.utf8)
    // A child that exits before reading its input makes the write fail with EPIPE, not kill this process.
    _ = ignoringBrokenPipes
    jobs.append(("stdin", {
        if !bytes.isEmpty { try? input.fileHandleForWriting.write(contentsOf: bytes) }
        try? input.fileHandleForWriting.close()
    }))
    for (name, job) in jobs {
        group.enter()
        let thread = Thread {
            job()
            group.leave()
        }
        thread.name = "runProgram \(name)"
        thread.start()
    }
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    group.wait()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData.data, as: UTF8.self),
                         stderr: String(decoding: errData.data, as: UTF8.self))
}

/// Set once, the first time a program is run: a write to a pipe whose reader is gone fails instead of raising SIGPIPE.
private let ignoringBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

private final class Box: @unchecked Sendable {
    // Written by one reader thread, read after the dispatch group's wait: the group orders the two.
    var data = Data()
}
