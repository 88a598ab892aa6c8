package import PeonInterface
import Synchronization

// `log`: needs no grant and is not audited; it reaches nothing but the host's stderr.
extension Mediator {
    /// `log.log`: one line on stderr, `[module] level: message`, control characters escaped, cut at
    /// the cap, rate-limited (dropped lines are counted and reported with the next line that passes).
    package func log(level: LogLevel, message: String) {
        guard logLimiter.take("log", rate: configuration.caps.logRate) else {
            droppedLogLines.add(1, ordering: .relaxed)
            return
        }
        var text = sanitize(message)
        if text.utf8.count > configuration.caps.maxLogBytes {
            text = String(decoding: text.utf8.prefix(configuration.caps.maxLogBytes), as: UTF8.self) + "…"
        }
        let dropped = droppedLogLines.exchange(0, ordering: .relaxed)
        if dropped > 0 {
            configuration.logSink("[\(sanitize(configuration.module))] warn: \(dropped) log lines dropped (rate limit)")
        }
        configuration.logSink("[\(sanitize(configuration.module))] \(level): \(text)")
    }
}
