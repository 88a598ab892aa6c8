/// A failure of the audit log: one line saying what went wrong, where, and what to do.
///
/// Errors compare equal by ``code`` only, so tests can match the kind of failure without pinning the text,
/// and every code maps to a distinct process exit status (``exitCode``) for `peon-wasm audit verify`.
public struct AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure. New kinds may be added; switch with a `default`.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        /// The log or a file beside it could not be read or written (missing file, permissions, disk full).
        case io
        /// The log holds no entries, so there is nothing to verify or prove.
        case emptyLog
        /// A line is not a well-formed entry (not UTF-8, not JSON, a field missing or of the wrong type, too long).
        case malformedEntry
        /// Entries are out of order, missing, inserted or altered: `seq` or the `prev` chain does not hold.
        case brokenChain
        /// The last line has no newline: a writer died mid-line and the log has not been reopened since.
        case tornTail
        /// There is no `LOG.checkpoint` beside the log (or the checkpoint file named does not exist).
        case checkpointMissing
        /// The checkpoint is not a well-formed C2SP signed note holding a tlog checkpoint.
        case checkpointMalformed
        /// The checkpoint carries no valid signature by the verifier key (wrong key, or forged or altered).
        case badSignature
        /// The signed checkpoint does not describe a prefix of the log (its root or size differs).
        case checkpointMismatch
        /// A verifier key or signing key text is malformed or does not match its key hash.
        case badKey
        /// Another process holds the log's lock. No longer raised by ``AuditLog/open(path:signer:sync:checkpointEvery:checkpointWithin:checkpointSpacing:origin:adoptingUnsigned:)``,
        /// since any number of processes share a log; kept so that exit status 12 keeps its meaning.
        case locked
        /// The request does not fit the log (an index beyond the tree, an old size larger than the new one).
        case invalidArgument
        /// The log refused an append after an earlier write failure (it fails closed).
        case failed
    }

    /// The kind of failure.
    public var code: Code
    /// The one-line message: what, where, what to do.
    public var message: String
    /// The 1-based line of the log the failure concerns, when there is one.
    public var line: Int?
    /// The `seq` the failing entry should have had (its 0-based index), when the failure concerns an entry.
    public var seq: UInt64?

    /// Creates an error; `message` should already name the place and the remedy.
    public init(_ code: Code, _ message: String, line: Int? = nil, seq: UInt64? = nil) {
        self.code = code
        self.message = message
        self.line = line
        self.seq = seq
    }

    /// The message, as printed by the CLI.
    public var description: String { message }

    /// The process exit status `peon-wasm audit` uses for this kind of failure (documented in docs/cli.md).
    public var exitCode: Int32 {
        switch code {
        case .io: 2
        case .emptyLog: 3
        case .malformedEntry: 4
        case .brokenChain: 5
        case .tornTail: 6
        case .checkpointMissing: 7
        case .checkpointMalformed: 8
        case .badSignature: 9
        case .checkpointMismatch: 10
        case .badKey: 11
        case .locked: 12
        case .invalidArgument: 13
        case .failed: 14
        }
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: AuditError, rhs: AuditError) -> Bool { lhs.code == rhs.code }
}
