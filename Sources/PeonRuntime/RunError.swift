/// Why a run could not start or did not finish normally. Each kind has its own documented exit code,
/// so scripts can tell a bad module from a trap from a timeout.
public struct RunError: Error, Sendable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Hashable, CaseIterable {
        /// The module file cannot be read (missing, a directory, unreadable). Exit 66.
        case unreadableModule
        /// The bytes are not a valid WebAssembly module (empty, not Wasm, truncated, invalid, bad WAT). Exit 65.
        case invalidModule
        /// An import the host does not provide, or provides with another signature. Exit 67.
        case link
        /// The module exports neither `_start` nor `run`, or a component's `run` has another type than
        /// `func(string) -> result<string, string>` (checked before the guest runs). Exit 68.
        case noEntryPoint
        /// The guest trapped (including in its start function). Exit 69.
        case trap
        /// A bug or failure on the host side (e.g. the worker process crashed). Exit 70.
        case internalError
        /// The instruction budget (`--fuel`) ran out. Exit 71.
        case outOfFuel
        /// The guest made more host calls than its limit. Exit 72.
        case hostCallLimit
        /// The guest wrote more to stdout/stderr than its limit. Exit 73.
        case outputLimit
        /// A grants, policy, model or audit configuration problem found before the run. Exit 78.
        case configuration
        /// The wall-clock timeout passed. Exit 124.
        case timeout
        /// The run was stopped on request before it finished (an MCP client cancelled the call), like an
        /// interrupt. Exit 130.
        case cancelled
        /// A service the run needs cannot be reached at the start: the policy store
        /// (`--policy postgresql://...`) gives no snapshot to decide on, so the run is refused. Exit 75
        /// (`EX_TEMPFAIL`: try again later).
        case unavailable

        /// The process exit code for this kind.
        public var exitCode: Int32 {
            switch self {
            case .unreadableModule: 66
            case .invalidModule: 65
            case .link: 67
            case .noEntryPoint: 68
            case .trap: 69
            case .internalError: 70
            case .outOfFuel: 71
            case .hostCallLimit: 72
            case .outputLimit: 73
            case .configuration: 78
            case .timeout: 124
            case .cancelled: 130
            case .unavailable: 75
            }
        }
    }

    /// The class of failure.
    public var kind: Kind
    /// One line: what happened, where, and what to do about it.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// The `run.end` outcome this error is recorded as: `timeout` and `cancelled` as such (one spelling
    /// each, whichever process noticed: the supervisor killing a worker at its deadline writes `timeout`
    /// too), every other kind as `error:KIND`.
    public var outcome: String {
        switch kind {
        case .timeout: "timeout"
        case .cancelled: "cancelled"
        default: "error:\(kind)"
        }
    }
}
