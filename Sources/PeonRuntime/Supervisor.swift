import CPeonSupport
import Foundation
import PeonSystem
import Synchronization
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
/// **Containment.** Nothing a run starts outlives it, whatever ends `peon-wasm`:
/// - The worker is the init of a new PID namespace (``Containment/pidNamespace``, needs
///   `CAP_SYS_ADMIN`; else ``Containment/userNamespace``, needs unprivileged user namespaces). When the
///   init of a PID namespace dies, the kernel kills every process in it, so no program the guest ran
///   through `exec` survives, however often it forked or called `setsid`.
/// - Without either, ``Containment/subreaper``: the worker and the supervisor are child subreapers and
///   kill every descendant (re-scanning until none is left) when the worker ends or dies. One stderr
///   line says so. A program escapes only if both processes are killed with SIGKILL at once.
/// - `PEON_WASM_CONTAINMENT` (``containmentVariable``) forces one mode, for tests and diagnosis.
///
/// **Signals.** `SIGHUP` to the supervisor is forwarded to the worker, which reloads its policy.
/// `SIGTERM` or `SIGINT` is forwarded too: the worker kills its programs, writes `run.end` with outcome
/// `signal:TERM` or `signal:INT` and exits 128 + the signal; if it has not done so after ``stopGrace``
/// the supervisor kills it and writes that `run.end` itself. The worker watches a pipe whose only write
/// end the supervisor holds: if the supervisor dies (even by SIGKILL), the worker kills its programs,
/// writes `run.end` with outcome `supervisor-killed`, and exits.
package enum Supervisor {
    /// How a supervised worker ended.
    package enum Exit: Sendable, Hashable {
        /// The worker exited with this code.
        case exited(Int32)
        /// The worker was killed by this signal (a crash, or an outside kill).
        case signaled(Int32)
        /// The deadline passed and the supervisor killed the worker.
        case timedOut
        /// The supervisor got `signal` (`SIGTERM` or `SIGINT`) and stopped the worker. `recorded` says
        /// whether the worker wrote `run.end` itself; if not, the caller must.
        case stopped(signal: Int32, recorded: Bool)
    }

    /// How the worker's descendants are kept from outliving the run (see the type's documentation).
    package enum Containment: String, Sendable, Hashable, CaseIterable {
        /// A new PID namespace whose init is the worker; needs `CAP_SYS_ADMIN` (root).
        case pidNamespace = "pid-namespace"
        /// A new user namespace (mapping only our own uid and gid) with a new PID namespace inside;
        /// needs no privilege where the kernel allows unprivileged user namespaces.
        case userNamespace = "user-namespace"
        /// No namespace: subreapers that kill every descendant. Weaker (see the type's documentation).
        case subreaper

        var native: peon_containment {
            switch self {
            case .pidNamespace: PEON_CONTAINMENT_PID_NAMESPACE
            case .userNamespace: PEON_CONTAINMENT_USER_NAMESPACE
            case .subreaper: PEON_CONTAINMENT_SUBREAPER
            }
        }
    }

    /// The environment variable that forces a ``Containment`` by its raw value (no fallback then).
    package static let containmentVariable = "PEON_WASM_CONTAINMENT"

    /// How long after the run's own timeout the supervisor kills the worker, so that the worker's
    /// in-process timeout (clean message, audit entry) gets to act first when it can.
    package static let grace: Duration = .milliseconds(500)

    /// How long a worker asked to stop (`SIGTERM`/`SIGINT`) has to write `run.end` and exit before the
    /// supervisor kills it.
    package static let stopGrace: Duration = .seconds(3)

    /// Nanoseconds on this machine's monotonic clock (`CLOCK_MONOTONIC`), which every process shares: how the
    /// supervisor tells its worker when the run's wall clock ends (``workerDeadline(monotonicNanoseconds:timeout:)``).
    package static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) &* 1_000_000_000 &+ Int64(now.tv_nsec)
    }

    /// The worker's deadline: `timeout` from now, but never later than `monotonicNanoseconds`, the moment the
    /// supervisor's clock for this run ends (it kills the worker ``grace`` after). Without it the worker counted its
    /// timeout from its own start, later than the supervisor's, and a slow start could leave it running when the
    /// supervisor killed it, with an approval or a call then pending and never recorded. `nil`, or a value from
    /// outside `0...`now + timeout, leaves `timeout` from now.
    package static func workerDeadline(monotonicNanoseconds end: Int64?, timeout: Duration) -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        let own = now + timeout
        guard let end, end >= 0 else { return own }
        let remaining = end.subtractingReportingOverflow(monotonicNanoseconds())
        guard !remaining.overflow else { return own }
        return min(own, now + .nanoseconds(max(remaining.partialValue, 0)))
    }

    /// `--supervisor-deadline NANOSECONDS` for a worker whose run ends `timeout` from now on the monotonic clock, the
    /// whole duration counted (`500ms` is half a second, not zero); nothing when it does not fit 64 bits.
    package static func deadlineArgument(after timeout: Duration) -> [String] {
        let (seconds, attoseconds) = timeout.components
        let whole = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = whole.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        let end = monotonicNanoseconds().addingReportingOverflow(total.partialValue)
        guard !whole.overflow, !total.overflow, !end.overflow else { return [] }
        return ["--supervisor-deadline", String(end.partialValue)]
    }

    /// The descriptor number at which the worker finds the read end of the supervisor's liveness pipe.
    package static let livenessDescriptor: Int32 = 3

    /// Starts `executable` with `arguments` (stdio and environment inherited) as a contained worker,
    /// waits at most `timeout`, and kills it after that. Forwards `SIGHUP`, `SIGTERM` and `SIGINT`.
    package static func run(executable: String, arguments: [String], timeout: Duration) throws(RunError) -> Exit {
        _ = peon_become_child_subreaper()
        let handled = [SIGHUP, SIGTERM, SIGINT, SIGQUIT]
        let signals = handled.withUnsafeBufferPointer { peon_signal_pipe($0.baseAddress, Int32($0.count)) }
        guard signals >= 0 else {
            throw RunError(.internalError, "cannot install the signal handlers: \(String(cString: strerror(errno)))")
        }
        var liveness: [Int32] = [-1, -1]
        guard peon_pipe_cloexec(&liveness) == 0 else {
            throw RunError(.internalError, "cannot create the worker's liveness pipe: \(String(cString: strerror(errno)))")
        }
        // The write end stays open, here only, until this function returns (or the process dies).
        defer { close(liveness[1]) }
        let pid: pid_t
        do throws(RunError) {
            pid = try spawn(executable: executable, arguments: arguments, liveness: liveness[0])
        } catch {
            close(liveness[0])
            throw error
        }
        close(liveness[0])

        let deadline = ContinuousClock.now + timeout
        var stopping: (signal: Int32, deadline: ContinuousClock.Instant)?
        var pause: Duration = .microseconds(200)
        while true {
            var status: Int32 = 0
            let reaped = retryingInterrupts { waitpid(pid, &status, WNOHANG) }
            if reaped == pid {
                killDescendants(of: getpid())
                let ended = exit(from: status)
                guard let stopping else { return ended }
                switch ended {
                case .exited(let code) where code == 128 + stopping.signal:
                    return .stopped(signal: stopping.signal, recorded: true)
                case .signaled:
                    return .stopped(signal: stopping.signal, recorded: false)
                default:
                    return ended  // it finished on its own meanwhile, and recorded that
                }
            }
            if reaped < 0 {
                return .exited(RunError.Kind.internalError.exitCode)
            }
            let now = ContinuousClock.now
            if let stopping, now >= stopping.deadline {
                kill(pid, SIGKILL)
                _ = retryingInterrupts { waitpid(pid, &status, 0) }
                killDescendants(of: getpid())
                return .stopped(signal: stopping.signal, recorded: false)
            }
            if now >= deadline {
                kill(pid, SIGKILL)
                _ = retryingInterrupts { waitpid(pid, &status, 0) }
                killDescendants(of: getpid())
                return .timedOut
            }
            let next = min(deadline, stopping?.deadline ?? deadline)
            for (signal, sender) in waitForSignals(signals, timeout: min(pause, max(.zero, next - now))) {
                // Without a PID namespace (subreaper containment) a program the guest ran can see and
                // signal this process: a signal from one of our own descendants is not the operator's.
                if sender > 0, isDescendant(sender, of: getpid()) {
                    warnIgnored(signal, from: sender)
                    continue
                }
                if signal == SIGHUP {
                    kill(pid, SIGHUP)
                } else if Self.stopSignals.contains(signal) {
                    if stopping == nil { stopping = (signal, ContinuousClock.now + stopGrace) }
                    kill(pid, signal)
                }
            }
            pause = min(pause * 2, .milliseconds(5))
        }
    }

    /// Spawns the worker under the strongest containment available (or the one forced by
    /// ``containmentVariable``), saying so on stderr when it has to fall back to ``Containment/subreaper``.
    private static func spawn(executable: String, arguments: [String], liveness: Int32) throws(RunError) -> pid_t {
        var candidates = Containment.allCases
        var forced = false
        if let value = getenv(containmentVariable).map({ String(cString: $0) }), !value.isEmpty {
            guard let mode = Containment(rawValue: value) else {
                let known = Containment.allCases.map(\.rawValue).joined(separator: ", ")
                throw RunError(.configuration, "\(containmentVariable)='\(value)' is not a containment mode; use one of \(known)")
            }
            candidates = [mode]
            forced = true
        }
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        guard !argv.contains(where: { $0 == nil }) else {
            throw RunError(.internalError, "out of memory starting the worker process")
        }
        var failures: [String] = []
        for mode in candidates {
            var pid: pid_t = 0
            let result = (argv + [nil]).withUnsafeBufferPointer { buffer in
                peon_spawn_worker(executable, buffer.baseAddress, environ, mode.native, liveness, livenessDescriptor, &pid)
            }
            if result == 0 {
                if mode == .subreaper {
                    let why = forced ? "\(containmentVariable)=subreaper" : failures.joined(separator: "; ")
                    printLine("peon-wasm: warning: no PID namespace for this run (\(why)); programs it runs are contained by subreapers only, so one could outlive the run if peon-wasm and its worker were both killed at once", to: 2)
                }
                return pid
            }
            let reason = String(cString: strerror(result))
            let unavailable = [EPERM, EINVAL, ENOSPC, EUSERS, EACCES, ENOSYS].contains(result)
            if !unavailable || forced {
                if forced && unavailable {
                    throw RunError(.configuration, "\(containmentVariable)=\(mode.rawValue): this system refuses it: \(reason)")
                }
                throw RunError(.internalError, "cannot start the worker process '\(executable)': \(reason)")
            }
            failures.append("\(mode.rawValue): \(reason)")
        }
        throw RunError(.internalError, "cannot start the worker process '\(executable)': \(failures.joined(separator: "; "))")
    }

    /// Waits up to `timeout` for records on the signal pipe and returns the signals and their senders.
    private static func waitForSignals(_ fd: Int32, timeout: Duration) -> [(signal: Int32, sender: pid_t)] {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        guard poll(&entry, 1, milliseconds) > 0 else { return [] }
        return readSignals(fd)
    }

    /// The records waiting on the signal pipe (``peon_signal_pipe``): a signal and its sender's pid each.
    private static func readSignals(_ fd: Int32) -> [(signal: Int32, sender: pid_t)] {
        // A multiple of the 8-byte record: the handler writes each record whole (below PIPE_BUF).
        var words = [Int32](repeating: 0, count: 32)
        let count = words.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return [] }
        return stride(from: 0, to: count / 8, by: 1).map { (signal: words[2 * $0], sender: pid_t(words[2 * $0 + 1])) }
    }

    /// Whether `pid` is a descendant of `ancestor`, by the parent links in `/proc` (at most 64 of them); `false`
    /// when it cannot be told (the process is gone).
    static func isDescendant(_ pid: pid_t, of ancestor: pid_t) -> Bool {
        var current = pid
        for _ in 0..<64 {
            guard current > 1, let parent = parentProcess(of: current) else { return false }
            if parent == ancestor { return true }
            current = parent
        }
        return false
    }

    /// The parent pid of `pid` (``procStat(of:)``).
    private static func parentProcess(of pid: pid_t) -> pid_t? {
        procStat(of: pid)?.parent
    }

    /// Says on stderr that a signal from inside the run was ignored.
    private static func warnIgnored(_ signal: Int32, from sender: pid_t) {
        let line = "peon-wasm: warning: ignored SIG\(signalName(signal)) from process \(sender), which the run started; signal peon-wasm itself to stop or reload the run\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }

    /// The signals that stop a run: `SIGTERM`, `SIGINT` (Ctrl-C) and `SIGQUIT` (Ctrl-\). `SIGQUIT` used to be
    /// left to the Swift runtime, which printed a crash backtrace while the run went on to its timeout.
    package static let stopSignals: Set<Int32> = [SIGTERM, SIGINT, SIGQUIT]

    /// The short name of a signal as outcomes spell it: `TERM`, `INT`, `HUP`, `QUIT`, `KILL`, else the number.
    package static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "TERM"
        case SIGINT: "INT"
        case SIGHUP: "HUP"
        case SIGQUIT: "QUIT"
        case SIGKILL: "KILL"
        default: String(signal)
        }
    }

    // MARK: - The worker's side

    /// The session the worker's monitor ends when a signal or the supervisor's death stops the run.
    private static let worker = Mutex(WorkerState())

    /// The worker's session once attached, and a stop that came before it was.
    private struct WorkerState {
        var session: AgentSession?
        var pending: PendingStop?
    }

    /// A stop (signal or the supervisor's death) the monitor got before the session was attached.
    private struct PendingStop {
        var outcome: String
        var reason: String
        var exitCode: Int32
    }

    /// Called first thing in a worker. Makes it a child subreaper (so programs that re-parent stay its
    /// descendants), exits at once if the supervisor is already gone, and starts the monitor thread
    /// that handles `SIGHUP` (reload), `SIGTERM`/`SIGINT` (stop) and the supervisor's death (stop).
    package static func becomeWorker(livenessDescriptor liveness: Int32) {
        _ = peon_become_child_subreaper()
        let handled = [SIGHUP, SIGTERM, SIGINT, SIGQUIT]
        let signals = handled.withUnsafeBufferPointer { peon_signal_pipe($0.baseAddress, Int32($0.count)) }
        var probe = pollfd(fd: liveness, events: Int16(POLLIN), revents: 0)
        if fcntl(liveness, F_GETFD) < 0 || (poll(&probe, 1, 0) > 0 && probe.revents & Int16(POLLHUP | POLLIN) != 0) {
            _exit(RunError.Kind.internalError.exitCode)
        }
        let thread = Thread { monitor(signals: signals, liveness: liveness) }
        thread.name = "peon-wasm worker monitor"
        thread.start()
    }

    /// Hands the worker's session (after its `run.start` is written) to the monitor, so a stop writes
    /// the session's `run.end`. A stop that came before (while `run.start` was being written) is carried out
    /// now: it used to exit at once, with neither process writing the `run.end` of the run just started.
    package static func attach(_ session: AgentSession) {
        let pending = worker.withLock { state -> PendingStop? in
            state.session = session
            return state.pending
        }
        if let pending { endWorker(outcome: pending.outcome, reason: pending.reason, exitCode: pending.exitCode) }
    }

    /// Stops the worker from its monitor: at once when the session is attached; otherwise when it is
    /// (``attach(_:)``), since the run may be writing its `run.start` right now. A worker that never gets
    /// that far (it fails first, or waits on the log) exits on its own, or after ``stopGrace`` here.
    private static func stopWorker(outcome: String, reason: String, exitCode: Int32) {
        let (attached, first) = worker.withLock { state -> (Bool, Bool) in
            if state.session != nil { return (true, false) }
            guard state.pending == nil else { return (false, false) }
            state.pending = PendingStop(outcome: outcome, reason: reason, exitCode: exitCode)
            return (false, true)
        }
        if attached { endWorker(outcome: outcome, reason: reason, exitCode: exitCode) }
        guard first else { return }
        let watchdog = Thread {
            sleep(for: stopGrace)
            if worker.withLock({ $0.session == nil }) { _exit(exitCode) }
        }
        watchdog.start()
    }

    private static func monitor(signals: Int32, liveness: Int32) {
        var supervisorGone = false
        while true {
            // Once the supervisor is gone (a stop now pending until the session is attached), its pipe is not watched:
            // it would report end of file at every poll.
            var fds = [pollfd(fd: supervisorGone ? -1 : liveness, events: Int16(POLLIN), revents: 0)]
            if signals >= 0 { fds.append(pollfd(fd: signals, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), -1) > 0 else { continue }
            if fds[0].revents != 0 {
                var byte: UInt8 = 0
                if read(liveness, &byte, 1) <= 0 {
                    supervisorGone = true
                    stopWorker(outcome: "supervisor-killed",
                              reason: "the supervising peon-wasm process died; the worker stopped the run",
                              exitCode: RunError.Kind.internalError.exitCode)
                }
            }
            if fds.count > 1 && fds[1].revents != 0 {
                for (signal, sender) in readSignals(signals) {
                    // The operator's signals come through the supervisor (our parent; pid 0 when it is outside
                    // our PID namespace) or from the kernel (a terminal's ^C). A program the guest ran shares our
                    // namespace and could signal us: that is not a stop, and must not end the run as one.
                    if sender != 0 && sender != getppid() {
                        warnIgnored(signal, from: sender)
                        continue
                    }
                    if signal == SIGHUP {
                        let session = worker.withLock { $0.session }
                        session?.reloadPolicy()
                    } else if Self.stopSignals.contains(signal) {
                        let name = signalName(signal)
                        stopWorker(outcome: "signal:\(name)", reason: "peon-wasm received SIG\(name); the run was stopped",
                                   exitCode: 128 + signal)
                    }
                }
            }
        }
    }

    /// Ends the worker from its monitor thread: kills every program it started, writes `run.end`
    /// (if `run.start` was written), and exits with `exitCode`. A watchdog exits anyway after a few
    /// seconds, should writing the log hang.
    private static func endWorker(outcome: String, reason: String, exitCode: Int32) -> Never {
        // Claim the end before killing anything: a guest whose program dies under it must not end the
        // run as if nothing happened (its thread parks in `finish` until this exits the process).
        let session = worker.withLock { $0.session }
        let claimed = session?.claimEndForStop() ?? false
        if session != nil && !claimed {
            // The run ended on its own and is writing its `run.end` (perhaps waiting for the log's lock): exiting now
            // cut that entry off, and the supervisor, seeing the stop's exit code, took it as written. The run's own
            // ending exits the process; if it never does, the supervisor stops this worker after its grace, finds no
            // `run.end`, and writes one.
            while true { sleep(for: .seconds(60)) }
        }
        let watchdog = Thread {
            sleep(for: .seconds(5))
            _exit(exitCode)
        }
        watchdog.start()
        // No call is decided or begun from here on: a program started after the kill below would outlive it.
        if claimed { session?.endCalls() }
        if getpid() == 1 {
            _ = peon_kill_namespace()
        } else {
            killDescendants(of: getpid())
        }
        if claimed { session?.writeEnd(outcome: outcome, reason: reason) }
        _exit(exitCode)
    }

    /// The path of the running executable, for starting a worker of the same build.
    package static var currentExecutable: String {
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

    /// Kills every descendant of `root` with SIGKILL and reaps those that are `root`'s own children
    /// (when `root` is this process), scanning `/proc` again until none is alive: killing a parent
    /// re-parents its children to the nearest subreaper (`root`), so each pass finds what the last one
    /// made orphans, and a killed process cannot fork any more.
    static func killDescendants(of root: pid_t) {
        #if os(Linux)
        for _ in 0..<1000 {
            let table = processTable()
            var children: [pid_t: [pid_t]] = [:]
            for (pid, entry) in table { children[entry.parent, default: []].append(pid) }
            var descendants: [pid_t] = []
            var frontier = children[root] ?? []
            while let pid = frontier.popLast() {
                descendants.append(pid)
                frontier += children[pid] ?? []
            }
            let alive = descendants.filter { table[$0]?.zombie == false }
            for pid in alive { kill(pid, SIGKILL) }
            if root == getpid() {
                for pid in children[root] ?? [] {
                    var status: Int32 = 0
                    _ = retryingInterrupts { waitpid(pid, &status, alive.contains(pid) ? 0 : WNOHANG) }
                }
            }
            if alive.isEmpty { return }
        }
        #endif
    }

    /// Every process's parent and whether it is a zombie, from `/proc/PID/stat`.
    private static func processTable() -> [pid_t: (parent: pid_t, zombie: Bool)] {
        var table: [pid_t: (parent: pid_t, zombie: Bool)] = [:]
        guard let directory = opendir("/proc") else { return table }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let pid = pid_t(name), let stat = procStat(of: pid) else { continue }
            table[pid] = stat
        }
        return table
    }

    /// A process's parent and whether it is a zombie, from `/proc/PID/stat`; `nil` when it is gone.
    private static func procStat(of pid: pid_t) -> (parent: pid_t, zombie: Bool)? {
        guard let stat = try? String(contentsOfProcStat: "/proc/\(pid)/stat") else { return nil }
        // The state and the parent pid are the 1st and 2nd fields after the parenthesised command name.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let parent = pid_t(fields[1]) else { return nil }
        return (parent, fields[0] == "Z" || fields[0] == "X")
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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
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
