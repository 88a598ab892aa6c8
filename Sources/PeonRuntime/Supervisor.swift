import CPeonSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a guest in a worker process and enforces the wall-clock limit from outside it.
///
/// WasmKit cannot interrupt running guest code, and writing its fuel counter from another thread would
/// be a data race under Swift's memory model. So the hard limit is a process boundary: the supervisor
/// starts the worker (this same executable, asked to run in-process), waits for it with a deadline,
/// and at the deadline kills it with SIGKILL — which stops anything, a `(loop br 0)` included. The
/// worker enforces the same deadline itself at every host call and sleep, so a guest that makes host
/// calls ends with a clean in-process timeout; the kill is for guests that never return to the host.
/// A crash of the engine or host code in the worker is reported by the supervisor, which stays healthy.
///
/// The supervisor is the reaper of the worker's orphans, so programs the worker started through
/// `exec` are killed with it.
public enum Supervisor {
    /// How a supervised worker ended.
    public enum Exit: Sendable, Hashable {
        /// The worker exited with this code.
        case exited(Int32)
        /// The worker was killed by this signal (a crash, or an outside kill).
        case signaled(Int32)
        /// The deadline passed and the supervisor killed the worker.
        case timedOut
    }

    /// How long after the run's own timeout the supervisor kills the worker, so that the worker's
    /// in-process timeout (clean message, audit entry) gets to act first when it can.
    public static let grace: Duration = .milliseconds(500)

    /// Starts `executable` with `arguments` (stdio and environment inherited), waits at most `timeout`,
    /// and kills it after that.
    public static func run(executable: String, arguments: [String], timeout: Duration) throws(RunError) -> Exit {
        _ = peon_become_child_subreaper()
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        var arguments = argv + [nil]
        let spawned = arguments.withUnsafeMutableBufferPointer { buffer in
            posix_spawn(&pid, executable, nil, nil, buffer.baseAddress!, environ)
        }
        guard spawned == 0 else {
            throw RunError(.internalError, "cannot start the worker process '\(executable)': \(String(cString: strerror(spawned)))")
        }
        let deadline = ContinuousClock.now + timeout
        var pause: Duration = .microseconds(200)
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                reapOrphans()
                return exit(from: status)
            }
            if reaped < 0 && errno != EINTR {
                return .exited(RunError.Kind.internalError.exitCode)
            }
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                reapOrphans()
                return .timedOut
            }
            sleep(for: min(pause, max(.zero, deadline - .now)))
            pause = min(pause * 2, .milliseconds(5))
        }
    }

    /// Called first thing in a worker: the kernel kills the worker if its supervisor dies, so no guest
    /// outlives a killed `peon-wasm`. Exits at once if the supervisor is already gone.
    public static func becomeWorker(supervisor: Int32) {
        _ = peon_set_parent_death_signal(SIGKILL)
        if getppid() != pid_t(supervisor) { _exit(RunError.Kind.internalError.exitCode) }
    }

    /// The path of the running executable, for starting a worker of the same build.
    public static var currentExecutable: String {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 {
            return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        #endif
        return CommandLine.arguments[0]
    }

    private static func exit(from status: Int32) -> Exit {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// Kills and reaps every process that was re-parented to this one (programs a dead worker started).
    private static func reapOrphans() {
        #if os(Linux)
        let me = getpid()
        guard let directory = opendir("/proc") else { return }
        defer { closedir(directory) }
        var orphans: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let pid = pid_t(name), let stat = try? String(contentsOfProcStat: "/proc/\(name)/stat") else { continue }
            // The parent pid is the 2nd field after the parenthesised command name.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == me { orphans.append(pid) }
        }
        let ownGroup = getpgrp()
        for pid in orphans {
            // Kill the orphan's own process group (exec children lead one), but never a group id of -1
            // (the orphan already exited: kill(1, ...) would signal init) and never our own group.
            let group = getpgid(pid)
            if group > 1 && group != ownGroup { kill(-group, SIGKILL) }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        #endif
    }

    private static func sleep(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        _ = nanosleep(&request, nil)
    }
}

extension String {
    /// Reads a small `/proc` file (their sizes read as 0, so they are read in chunks).
    init(contentsOfProcStat path: String) throws(RunError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RunError(.internalError, "cannot read \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
