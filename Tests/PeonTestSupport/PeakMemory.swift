public import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `peon-wasm` run together with the most memory its process held at once.
public struct MeasuredRun: Sendable {
    /// Exit status and output, as ``runPeonWasm(_:stdin:environment:directory:timeout:)`` gives them.
    public var result: CommandResult
    /// The process's peak resident set size in bytes (`ru_maxrss` of its own `wait4`), or `nil` where
    /// the system does not report it.
    public var peakBytes: Int?
}

/// Runs `peon-wasm` with `arguments` in `directory` (empty stdin; environment as for
/// ``runPeonWasm(_:stdin:environment:directory:timeout:)``) and measures its peak resident memory.
///
/// The process is started with `posix_spawn` and reaped with `wait4`, so the peak is that one
/// process's, whatever else the test run starts meanwhile (`getrusage(RUSAGE_CHILDREN)` would give the
/// largest of all the children ever reaped). It starts as `sh -c 'cd "$0" && exec "$@"'`, which is
/// the same process once `exec` runs; the shell's own footprint is far below anything a test bounds.
/// Killed after `timeout`.
public func runPeonWasmMeasuringMemory(_ arguments: [String], environment: [String: String] = [:], directory: URL,
                                       timeout: TimeInterval = 120) throws -> MeasuredRun {
    #if os(Linux)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("peon-measured-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outPath = scratch.appendingPathComponent("stdout").path
    let errPath = scratch.appendingPathComponent("stderr").path

    var env = ProcessInfo.processInfo.environment
    env["PEON_WASM_AUDIT_LOG"] = FileManager.default.temporaryDirectory
        .appendingPathComponent("peon-test-audit-\(UUID().uuidString).jsonl").path
    env["XDG_CONFIG_HOME"] = testConfigHome
    env.merge(environment) { _, new in new }

    let argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory.path, peonWasmExecutable.path] + arguments
    let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cEnvironment: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (cArguments + cEnvironment).forEach { free($0) } }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/sh", &actions, nil, cArguments, cEnvironment)
    guard spawned == 0 else {
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn failed: \(String(cString: strerror(spawned)))"])
    }

    var status: Int32 = 0
    var usage = rusage()
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let reaped = wait4(pid, &status, WNOHANG, &usage)
        if reaped == pid { break }
        if reaped == -1 && errno != EINTR {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "wait4 failed: \(String(cString: strerror(errno)))"])
        }
        if Date() >= deadline {
            kill(pid, SIGKILL)
            while wait4(pid, &status, 0, &usage) == -1 && errno == EINTR {}
            break
        }
        Thread.sleep(forTimeInterval: 0.02)
    }
    // The status word: the exit code in bits 8-15 when the low 7 bits (the signal) are zero.
    let signal = status & 0x7f
    let exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
    let output = FileManager.default.contents(atPath: outPath) ?? Data()
    let errors = FileManager.default.contents(atPath: errPath) ?? Data()
    return MeasuredRun(
        result: CommandResult(status: exitStatus, stdout: String(decoding: output, as: UTF8.self),
                              stderr: String(decoding: errors, as: UTF8.self)),
        // Linux reports ru_maxrss in KiB.
        peakBytes: Int(usage.ru_maxrss) * 1024)
    #else
    let result = try runPeonWasm(arguments, environment: environment, directory: directory, timeout: timeout)
    return MeasuredRun(result: result, peakBytes: nil)
    #endif
}
