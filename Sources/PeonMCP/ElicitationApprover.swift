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
/// `approve: true`, an error, no answer within the timeout or the call's deadline, a cancelled call, and
/// the end of the client's input (on stdio the client's answers come on stdin: once it is closed no answer
/// can come, so waiting on would only hold the server's exit) all refuse. The audit entry names who
/// answered (`mcp-elicitation:CLIENT`) and what they said (`accept`, `decline`, `cancel`, `timeout`,
/// `client closed its input` ...). The question shows the request as the approvers of
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
    /// Whether the client's input has ended (stdio: stdin closed): the question is then not asked, and a wait for
    /// an answer stops. Never marked where a client can always answer later (HTTP: on another request).
    package let clientInput: ClientInputEnd?
    /// The labels of the client's session: the question shows the client the request, which may spell what
    /// the run read, so the run's labels join the session before it is sent.
    package let sessionLabels: ToolSessionLabels?
    /// The session's open approval questions: one given up is released there (the SDK's wait for its answer ends, and
    /// the client is sent `notifications/cancelled`) instead of being held until the session ends.
    package let pending: PendingElicitations?

    /// Creates an approver for one call.
    package init(server: Server, client: String, cancellation: RunCancellation, timeout: Duration,
                sessionLabels: ToolSessionLabels? = nil, clientInput: ClientInputEnd? = nil,
                pending: PendingElicitations? = nil) {
        self.server = server
        self.client = client
        self.cancellation = cancellation
        self.timeout = timeout
        self.sessionLabels = sessionLabels
        self.clientInput = clientInput
        self.pending = pending
    }

    /// The audit answer of an approval refused because the client's input ended before it answered.
    package static let inputClosedAnswer = "client closed its input"

    /// How long, in milliseconds, an answer the server read before the client's input ended may still take to reach
    /// the waiting call (the SDK hands it on through a few tasks after reading it): past it, the end of input refuses.
    static let answerInFlightGraceMilliseconds = 1000

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

    /// Sends the request and blocks the guest's thread until the answer, the timeout, the deadline, a
    /// cancellation or the end of the client's input. The answer carries the session's labels as they are
    /// then: the client chose it (or its silence) holding what the session's calls returned, which may be
    /// more than when the run started.
    package func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        var answer = waitForAnswer(request, deadline: deadline)
        answer.labels = sessionLabels.map { Array($0.current.keys).sorted() } ?? []
        return answer
    }

    private func waitForAnswer(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        // A client whose input has ended cannot answer: nothing is asked.
        if clientInput?.hasEnded == true { return ApprovalAnswer(approved: false, answer: Self.inputClosedAnswer) }
        let reply = ElicitationReply()
        let server = server
        let message = Self.message(for: request)
        // What the question shows reaches the client now, not when the call answers: the session's next calls
        // (the client may start one while this one waits) hold the labels the run holds as it asks.
        sessionLabels?.add(request.labels, from: request.run)
        let pending = pending
        // The question's token travels in `_meta`, so the transport can tell the SDK's id for it.
        let token = pending?.open()
        let meta = token.map { Metadata(additionalFields: [PendingElicitations.tokenKey: .string(String($0))]) }
        // At high priority, as the cancellation below: a question to a person (and its withdrawal) must not queue
        // behind the process's other work on Swift's shared executor, which keeps a queue per priority; a question
        // that waited there past the approval's timeout was given up without ever being asked.
        let task = Task(priority: .high) {
            defer { if let token { pending?.close(token) } }
            do {
                let result = try await server.requestElicitation(message: message, requestedSchema: Self.schema, _meta: meta)
                reply.set(Self.answer(result))
            } catch {
                reply.set(ApprovalAnswer(approved: false, answer: "elicitation failed: \(TerminalText.escaped("\(error)"))"))
            }
        }
        // Gives up on the question: the SDK stops waiting for its answer, and the client is told (MCP: a sender that
        // gives up on a request should send `notifications/cancelled`). A late answer reaches nobody.
        func giveUp(_ answer: String) -> ApprovalAnswer {
            task.cancel()
            if let token, let id = pending?.abandon(token, reason: answer) {
                Task(priority: .high) { try? await server.cancelRequest(id, reason: "peon-wasm gave up waiting for the approval (\(answer))") }
            }
            return ApprovalAnswer(approved: false, answer: answer)
        }
        let end = min(deadline, ContinuousClock.now.advanced(by: timeout))
        while true {
            if let answer = reply.wait(milliseconds: 50) { return answer }
            if cancellation.isCancelled { return giveUp("call cancelled") }
            if clientInput?.hasEnded == true {
                // An answer the server read before the end is already on its way here; none other can come.
                if let answer = reply.wait(milliseconds: Self.answerInFlightGraceMilliseconds) {
                    return answer
                }
                return giveUp(Self.inputClosedAnswer)
            }
            if ContinuousClock.now >= end { return giveUp("timeout") }
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

/// The end of one client's input, for the calls of its session that wait for its answer (``ElicitationApprover``): on
/// stdio the server marks it once it has read the last message on stdin, after which the client can answer nothing.
package final class ClientInputEnd: Sendable {
    private let ended = Atomic<Bool>(false)

    /// Input not ended yet.
    package init() {}

    /// Marks the client's input as ended (for good).
    package func end() { ended.store(true, ordering: .releasing) }

    /// Whether the client's input has ended.
    package var hasEnded: Bool { ended.load(ordering: .acquiring) }
}
