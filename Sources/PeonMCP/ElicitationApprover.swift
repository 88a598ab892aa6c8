import Dispatch
import Foundation
import PeonInterface
package import MCP
package import PeonMediator
package import PeonRuntime
import Synchronization

/// Asks the human at the MCP client whether a call may proceed: an `elicitation/create` request (a form
/// with one yes/no field, `approve`) sent through the client that made the tool call, which shows it to
/// its user. Used for grants with `approval = true` when the client declared the elicitation capability.
///
/// Only an `accept` whose `approve` field is `true` approves. `decline`, `cancel`, an `accept` without
/// `approve: true`, an error, no answer within the timeout or the call's deadline, and a cancelled call
/// all refuse. The audit entry names who answered (`mcp-elicitation:CLIENT`) and what they said
/// (`accept`, `decline`, `cancel`, `timeout` ...). The question shows the request as the approvers of
/// `run` show it (``ApprovalRequest/summary``: guest-controlled parts escaped, payloads by hash only).
package struct ElicitationApprover: Approver {
    /// The session's SDK server, through which the request goes.
    package let server: Server
    /// The client's name from `initialize`.
    package let client: String
    /// The call's cancellation: a cancelled call stops waiting (and refuses).
    package let cancellation: RunCancellation
    /// How long to wait for the human (also bounded by the call's deadline).
    package let timeout: Duration
    /// The labels of the client's session: the question shows the client the request, which may spell what
    /// the run read, so the run's labels join the session before it is sent.
    package let sessionLabels: ToolSessionLabels?

    /// Creates an approver for one call.
    package init(server: Server, client: String, cancellation: RunCancellation, timeout: Duration,
                sessionLabels: ToolSessionLabels? = nil) {
        self.server = server
        self.client = client
        self.cancellation = cancellation
        self.timeout = timeout
        self.sessionLabels = sessionLabels
    }

    /// `mcp-elicitation:` + the client's name (escaped: the client chose it).
    package var identity: String { "mcp-elicitation:" + TerminalText.escaped(client) }

    /// The form: one required boolean, `approve`.
    static let schema = Elicitation.RequestSchema(
        title: "peon-wasm approval",
        properties: ["approve": .object([
            "type": .string("boolean"),
            "title": .string("Allow this call"),
            "description": .string("true lets the call go ahead once; false refuses it"),
        ])],
        required: ["approve"])

    /// The question shown to the user.
    static func message(for request: ApprovalRequest) -> String {
        "peon-wasm: approve? \(request.summary) (grant \(TerminalText.escaped(request.grant)))"
    }

    /// Maps the client's answer to an approval.
    static func answer(_ result: CreateElicitation.Result) -> ApprovalAnswer {
        switch result.action {
        case .accept:
            if case .bool(true)? = result.content?["approve"] {
                return ApprovalAnswer(approved: true, answer: "accept")
            }
            return ApprovalAnswer(approved: false, answer: "accept without approve: true")
        case .decline:
            return ApprovalAnswer(approved: false, answer: "decline")
        case .cancel:
            return ApprovalAnswer(approved: false, answer: "cancel")
        }
    }

    /// Sends the request and blocks the guest's thread until the answer, the timeout, the deadline or
    /// a cancellation. The answer carries the session's labels as they are then: the client chose it (or
    /// its silence) holding what the session's calls returned, which may be more than when the run started.
    package func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        var answer = waitForAnswer(request, deadline: deadline)
        answer.labels = sessionLabels.map { Array($0.current.keys).sorted() } ?? []
        return answer
    }

    private func waitForAnswer(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        let reply = ElicitationReply()
        let server = server
        let message = Self.message(for: request)
        // What the question shows reaches the client now, not when the call answers: the session's next calls
        // (the client may start one while this one waits) hold the labels the run holds as it asks.
        sessionLabels?.add(request.labels, from: request.run)
        let task = Task {
            do {
                let result = try await server.requestElicitation(message: message, requestedSchema: Self.schema)
                reply.set(Self.answer(result))
            } catch {
                reply.set(ApprovalAnswer(approved: false, answer: "elicitation failed: \(TerminalText.escaped("\(error)"))"))
            }
        }
        let end = min(deadline, ContinuousClock.now.advanced(by: timeout))
        while true {
            if let answer = reply.wait(milliseconds: 50) { return answer }
            if cancellation.isCancelled {
                task.cancel()
                return ApprovalAnswer(approved: false, answer: "call cancelled")
            }
            if ContinuousClock.now >= end {
                task.cancel()
                return ApprovalAnswer(approved: false, answer: "timeout")
            }
        }
    }
}

/// The answer of one elicitation, handed from the SDK's task to the waiting guest thread.
private final class ElicitationReply: Sendable {
    private let value = Mutex<ApprovalAnswer?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func set(_ answer: ApprovalAnswer) {
        value.withLock { $0 = answer }
        ready.signal()
    }

    /// The answer, or `nil` if none came within `milliseconds`.
    func wait(milliseconds: Int) -> ApprovalAnswer? {
        _ = ready.wait(timeout: .now() + .milliseconds(milliseconds))
        return value.withLock { $0 }
    }
}
