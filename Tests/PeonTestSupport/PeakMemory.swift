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
    /// The peak resident set size of `peon-wasm` and its worker in bytes (`ru_maxrss`), or `nil` where
    /// the system does not report it.
    public var peakBytes: Int?
}

/// Runs `peon-wasm` with `arguments` in `directory` (empty stdin; environment as for
/// ``runPeonWasm(_:stdin:environment:directory:timeout:)``) and measures its peak resident memory.
///
/// `peon-wasm` runs as the only child of a small `python3` parent, which waits for it and reports
/// `getrusage(RUSAGE_CHILDREN).ru_maxrss`: the high-water mark of `peon-wasm` (and of its worker),
/// nothing else. Measuring the process this test starts directly would not do: `posix_spawn` shares the
/// test runner's memory until `exec`, and Linux then counts the runner's own high-water mark (hundreds of
/// MB in a full test run) as the child's. Killed, with its process group, after `timeout`.
public func runPeonWasmMeasuringMemory(_ arguments: [String], environment: [String: String] = [:], directory: URL,
                                       timeout: TimeInterval = 120) throws -> MeasuredRun {
    #if os(Linux)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("peon-measured-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outPath = scratch.appendingPathComponent("stdout").path
    let errPath = scratch.appendingPathComponent("stderr").path

    var env = ProcessInfo.processInfo.environment
    env["PEON_WASM_AUDIT_LOG"] = freshDefaultAuditLog()
    env["XDG_CONFIG_HOME"] = testConfigHome
    env.merge(environment) { _, new in new }

    let peakPath = scratch.appendingPathComponent("peak").path
    let script = """
        import os, resource, subprocess, sys
        os.chdir(sys.argv[2])
        code = subprocess.call(sys.argv[3:])
        with open(sys.argv[1], "w") as f:
            f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        sys.exit(code if code >= 0 else 128 - code)
        """
    let argv = ["/usr/bin/env", "python3", "-c", script, peakPath, directory.path, peonWasmExecutable.path] + arguments
    let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cEnvironment: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (cArguments + cEnvironment).forEach { free($0) } }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

    // Its own process group, so that a timeout kills peon-wasm with its python3 parent.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)

    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, &attributes, cArguments, cEnvironment)
    guard spawned == 0 else {
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn failed: \(String(cString: strerror(spawned)))"])
    }

    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { break }
        if reaped == -1 && errno != EINTR {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "waitpid failed: \(String(cString: strerror(errno)))"])
        }
        if Date() >= deadline {
            kill(-pid, SIGKILL)
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
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
        peakBytes: (FileManager.default.contents(atPath: peakPath).flatMap { Int(String(decoding: $0, as: UTF8.self)) }).map { $0 * 1024 })
    #else
    let result = try runPeonWasm(arguments, environment: environment, directory: directory, timeout: timeout)
    return MeasuredRun(result: result, peakBytes: nil)
    #endif
}
