import CPeonSupport
import Foundation
import PeonTestSupport
import Testing

/// A stop signal that reaches the worker before it has installed its handlers is kept, not lost.
///
/// The worker starts with `SIGHUP`, `SIGTERM`, `SIGINT` and `SIGQUIT` ignored, so that none kills it by
/// its default action. Ignored alone, a signal sent in its first moments was dropped (and as the init of
/// a PID namespace it drops any signal it has no handler for), so a stop forwarded then was lost and the
/// run went on for the whole stop grace. They are blocked as well now: sent early, they stay pending
/// until ``peon_signal_pipe`` installs the handlers and unblocks them.
@Suite("worker start-up signals")
struct WorkerSignalTests {
    /// `(containment, label)`; a namespace this machine refuses is skipped.
    static let containments: [(UInt32, String)] = [
        (PEON_CONTAINMENT_SUBREAPER.rawValue, "subreaper"),
        (PEON_CONTAINMENT_USER_NAMESPACE.rawValue, "user-namespace"),
    ]

    @Test("a SIGTERM sent to a worker before its handlers exist stays pending", arguments: containments)
    func earlyStopSignalIsKept(containment: UInt32, label: String) throws {
        try withTemporaryDirectory { folder in
            let report = folder.appendingPathComponent("status").path
            // The worker signals itself at once (as the supervisor would forward a stop), then shows its
            // own signal state: the same process, through exec, which keeps pending signals and the mask.
            let script = "kill -TERM $$; kill -QUIT $$; exec grep -E '^(ShdPnd|SigBlk|SigIgn):' /proc/self/status > '\(report)'"
            let words: [String] = ["/bin/sh", "-c", script]
            let argv = words.map { strdup($0) }
            defer { argv.forEach { free($0) } }
            var liveness: [Int32] = [-1, -1]
            #expect(peon_pipe_cloexec(&liveness) == 0)
            defer { close(liveness[0]); close(liveness[1]) }
            var pid: pid_t = 0
            let started = (argv + [nil]).withUnsafeBufferPointer { buffer in
                peon_spawn_worker("/bin/sh", buffer.baseAddress, environ, peon_containment(rawValue: containment),
                                  liveness[0], 3, &pid)
            }
            guard started == 0 else {
                #expect([EPERM, EINVAL, ENOSPC, EUSERS, EACCES, ENOSYS].contains(started), "\(label): errno \(started)")
                return
            }
            var status: Int32 = 0
            #expect(waitpid(pid, &status, 0) == pid)
            #expect(status == 0, "\(label): the worker ended with wait status \(status)")
            let text = try String(contentsOfFile: report, encoding: .utf8)
            let masks = Dictionary(uniqueKeysWithValues: text.split(separator: "\n").compactMap { line -> (String, UInt64)? in
                let parts = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, let value = UInt64(parts[1], radix: 16) else { return nil }
                return (parts[0], value)
            })
            func bit(_ signal: Int32) -> UInt64 { 1 << UInt64(signal - 1) }
            let held = bit(SIGHUP) | bit(SIGTERM) | bit(SIGINT) | bit(SIGQUIT)
            #expect(masks["SigBlk"].map { $0 & held } == held, "\(label): \(text)")
            #expect(masks["SigIgn"].map { $0 & held } == held, "\(label): \(text)")
            #expect(masks["ShdPnd"].map { $0 & (bit(SIGTERM) | bit(SIGQUIT)) } == bit(SIGTERM) | bit(SIGQUIT),
                    "\(label): the early signals were dropped: \(text)")
        }
    }
}
