import Foundation
import MCP
import Synchronization

/// What the SDK's HTTP transport keeps of the messages it sends, for clients that resume a stream with
/// `Last-Event-ID`: every message of a session, until the session ends. Unchecked, one long session (or many)
/// grows the server's memory without end, so each session's share and all sessions' sum are counted here
/// (``HTTPToolListener/ConnectionLimits/replayBytesPerSession`` and ``HTTPToolListener/ConnectionLimits/replayBytes``)
/// and the router ends sessions past them (``HTTPSessionRouter``).
final class ReplayBudget: Sendable {
    /// What one kept message costs besides its bytes: the SDK's event record and id. A stream's opening is kept
    /// as an event of no bytes.
    static let eventCost = 128

    private let total = Atomic<Int>(0)
    private let perSession: Int
    private let limit: Int

    init(perSession: Int, total: Int) {
        self.perSession = max(1, perSession)
        limit = max(1, total)
    }

    /// A new session's count.
    func session() -> Session { Session(budget: self) }

    /// Whether all sessions together keep more than the shared budget.
    var isOver: Bool { total.load(ordering: .relaxed) > limit }

    /// The part of the budget one session has used.
    final class Session: Sendable {
        private let budget: ReplayBudget
        private let kept = Atomic<Int>(0)
        private let released = Atomic<Bool>(false)

        fileprivate init(budget: ReplayBudget) { self.budget = budget }

        /// Counts one message of `count` bytes the SDK keeps (0 for a stream's opening).
        func add(_ count: Int) {
            guard !released.load(ordering: .acquiring) else { return }
            let cost = count.addingReportingOverflow(ReplayBudget.eventCost)
            let amount = cost.overflow ? Int.max / 4 : cost.partialValue
            kept.wrappingAdd(amount, ordering: .relaxed)
            budget.total.wrappingAdd(amount, ordering: .relaxed)
        }

        /// The bytes this session keeps.
        var bytes: Int { kept.load(ordering: .relaxed) }

        /// Whether this session keeps more than its share.
        var isOver: Bool { bytes > budget.perSession }

        /// The session ended and the SDK dropped what it kept: gives it back to the shared budget, once.
        func release() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            budget.total.wrappingSubtract(kept.exchange(0, ordering: .relaxed), ordering: .relaxed)
        }
    }

    /// Why a request is not taken.
    enum Refusal: Equatable {
        /// The session kept more than its share and had no call running: it was ended (`404`: its client starts
        /// a new session, as MCP says).
        case sessionEnded
        /// All sessions together kept more than the shared budget and this idle session kept the most: it was
        /// ended (`404`).
        case sessionEndedForRoom
        /// The session keeps more than its share but calls of it run: it takes no new request (`503`) and ends
        /// at its first request once they have ended.
        case sessionFull
        /// All sessions together keep more than the shared budget and no idle session is left to end (`503`).
        case serverFull

        /// The HTTP answer, with a JSON-RPC error under the request's own id (none for a stream's opening, `GET`).
        func response(sessionID: String, requestID: RequestID?) -> RoutedResponse {
            let session = "session \(sessionID.prefix(64))"
            let message: String
            switch self {
            case .sessionEnded:
                message = "Not Found: \(session) was ended: it kept more messages for resumption than one session may; initialize a new session"
            case .sessionEndedForRoom:
                message = "Not Found: \(session) was ended: the sessions kept more messages for resumption than the server holds and it kept the most; initialize a new session"
            case .sessionFull:
                message = "Service Unavailable: \(session) keeps more messages for resumption than one session may; it takes no new request and ends once its running calls do; then initialize a new session"
            case .serverFull:
                message = ReplayBudget.fullMessage
            }
            switch self {
            case .sessionEnded, .sessionEndedForRoom:
                return RoutedResponse(.error(statusCode: 404, .invalidRequest(message)),
                                      body: requestID.map { JSONRPCScreen.errorBody(id: $0, code: JSONRPCScreen.invalidRequestCode, message: message) })
            case .sessionFull, .serverFull:
                return RoutedResponse(.error(statusCode: 503, .serverError(code: ToolServer.notStartedCode, message: message),
                                             sessionID: sessionID, extraHeaders: ["Retry-After": "1"]),
                                      body: requestID.map { JSONRPCScreen.errorBody(id: $0, message: message) })
            }
        }
    }

    /// The answer when every session's kept messages together fill the budget.
    static let fullMessage = "Service Unavailable: the sessions keep as many messages for resumption as the server holds; end idle sessions (DELETE) or try again when running calls end"
}
