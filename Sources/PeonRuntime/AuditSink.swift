public import PeonAudit

/// A central place a run's audit log is copied to (`--audit-sink`), such as a PostgreSQL table
/// shared by a fleet of hosts. The local log stays authoritative: a sink only reads it and ships its
/// entries and signed checkpoints, in order, in the background, and catches up after an outage from
/// where the central copy ends. A sink never slows or blocks a decision.
///
/// The protocol keeps the runtime free of any database client; the store's target implements it.
public protocol AuditSink: AnyObject, Sendable {
    /// Names the sink in messages; never holds a secret.
    var name: String { get }
    /// Starts shipping `log` (its file and its `.checkpoint`) in the background.
    func start(log: AuditLog)
    /// Ships what the log holds now (the run's end and last checkpoint), waiting at most `timeout`,
    /// then stops. What is left is shipped by the next run or `peon-wasm audit ship`.
    func finish(timeout: Duration)
}
