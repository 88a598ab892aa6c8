package import Foundation
package import Logging
package import MCP
import Synchronization

/// The approval questions (`elicitation/create`) of one session that are open: asked, or about to be, with the SDK's
/// `Server` waiting for their answer. An approval that gives up (timeout, deadline, cancelled call, end of input)
/// releases its question here.
///
/// Why: the SDK keeps every request it sent the client (its continuation, and the task that awaits it) until an answer
/// with its id arrives or the session ends, and offers no way to drop one. A client that never answers could thus make
/// a long session (HTTP) hold one such entry per abandoned approval, without end. Releasing a question therefore
///
/// - tells the client, as MCP asks of a sender that gives up on a request: `notifications/cancelled` with the
///   request's id (``ElicitationApprover`` sends it with the SDK's `cancelRequest`);
/// - and hands the SDK, as if the client had sent it, an error answer under the request's id
///   (``ElicitationTransport/cancelledAnswer(_:reason:)``): the SDK's own answer path removes the entry and ends the
///   task that waited for it. The client's own answer, if it comes later, finds no request of that id and is dropped
///   by the SDK; it reached only the abandoned approval, never another (each question has an id of its own).
///
/// A question released before the SDK has sent it is never sent: the SDK is answered at once instead.
///
/// The question carries its token in `_meta` (``tokenKey``): the transport (``ElicitationTransport``) reads it from the
/// request the SDK writes, to learn the id the SDK gave it.
package final class PendingElicitations: Sendable {
    /// The `_meta` key under which an approval question carries its token (a decimal number).
    package static let tokenKey = "peon-wasm/approval"

    private struct Entry {
        /// The JSON-RPC id the SDK gave the request, once it has written it.
        var id: ID?
        /// Why the approval gave up on it, once it did.
        var abandoned: String?
    }

    private let state = Mutex<(next: Int, entries: [Int: Entry])>((0, [:]))
    /// Hands a message to the SDK's server as if the client had sent it (set by the session's transport).
    private let deliver = Mutex<(@Sendable (Data) -> Bool)?>(nil)
    /// The count of open questions across the server's sessions, kept beside this session's.
    private let total: OpenElicitationCount?

    /// An empty table; its questions are also counted in `total` while they are open.
    package init(total: OpenElicitationCount? = nil) {
        self.total = total
    }

    /// Sets how a message reaches the SDK as if the client had sent it (`nil`: it no longer can).
    func setDelivery(_ body: (@Sendable (Data) -> Bool)?) {
        deliver.withLock { $0 = body }
    }

    /// Opens a question; its token, to be sent in `_meta` under ``tokenKey``.
    package func open() -> Int {
        total?.value.add(1, ordering: .relaxed)
        return state.withLock { state in
            // One token per approval of this session: a session asks far fewer than Int.max questions.
            state.next &+= 1
            state.entries[state.next] = Entry()
            return state.next
        }
    }

    /// The question ended: the SDK's wait for its answer returned or threw.
    package func close(_ token: Int) {
        let removed = state.withLock { $0.entries.removeValue(forKey: token) != nil }
        if removed { total?.value.subtract(1, ordering: .relaxed) }
    }

    /// The approval of `token` gave up on its question (`reason`: the audit answer, `timeout` ...). Returns the request's
    /// id when the SDK had sent it (the client should then be told: `notifications/cancelled`); the SDK is answered
    /// under that id now, or, when it has not sent the request yet, as it sends it (``outgoing(_:)``).
    package func abandon(_ token: Int, reason: String) -> ID? {
        let id: ID? = state.withLock { state in
            guard var entry = state.entries[token], entry.abandoned == nil else { return nil }
            entry.abandoned = reason
            state.entries[token] = entry
            return entry.id
        }
        if let id { release(id, reason: reason) }
        return id
    }

    /// What the transport does with a message the SDK writes: `true` to send it. An approval question is noted under its
    /// token; one whose approval already gave up is not sent (`false`), and the SDK is answered for it at once.
    func outgoing(_ data: Data) -> Bool {
        guard let (token, id) = Self.question(data) else { return true }
        let abandoned: String? = state.withLock { state in
            guard var entry = state.entries[token], entry.id == nil else { return nil }
            entry.id = id
            state.entries[token] = entry
            return entry.abandoned
        }
        guard let abandoned else { return true }
        release(id, reason: abandoned)
        return false
    }

    /// The questions open now (asked or about to be, their answer awaited by the SDK).
    package var count: Int { state.withLock { $0.entries.count } }

    private func release(_ id: ID, reason: String) {
        guard let body = ElicitationTransport.cancelledAnswer(id, reason: reason) else { return }
        _ = deliver.withLock { $0 }?(body)
    }

    /// The token and id of an `elicitation/create` request the SDK writes; `nil` for any other message.
    static func question(_ data: Data) -> (token: Int, id: ID)? {
        // Most messages are not questions: a byte search spares them a parse.
        guard data.range(of: Data(#""elicitation/create""#.utf8)) != nil,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              object["method"] as? String == CreateElicitation.name,
              let params = object["params"] as? [String: Any],
              let meta = params["_meta"] as? [String: Any],
              let spelled = meta[tokenKey] as? String, let token = Int(spelled)
        else { return nil }
        if let text = object["id"] as? String { return (token, .string(text)) }
        if let number = object["id"] as? NSNumber, let integer = Int(exactly: number.doubleValue) {
            return (token, .number(integer))
        }
        return nil
    }
}

/// The approval questions open across a server's sessions (``PendingElicitations``).
package final class OpenElicitationCount: Sendable {
    /// The count.
    let value = Atomic<Int>(0)

    /// Zero.
    package init() {}
}

/// A session's transport as its SDK server sees it: `inner`, except that the approval questions it writes are noted in
/// `pending` (and one already given up is not written), and that `pending` can hand the server a message as if the
/// client had sent it, through `inner` (``InjectingTransport``). The messages read are `inner`'s, unchanged.
package actor ElicitationTransport: Transport {
    /// The wrapped transport.
    package let inner: any Transport
    private let pending: PendingElicitations
    /// `inner`'s messages, once connected.
    private var messages: AsyncThrowingStream<Data, any Error>?

    /// Unused: errors go to stderr as `peon-wasm:` lines; the protocol requires one.
    package nonisolated let logger = Logger(label: "peon-wasm.mcp.elicitation", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Wraps `inner` for the session whose questions are `pending`.
    package init(_ inner: any Transport, pending: PendingElicitations) {
        self.inner = inner
        self.pending = pending
        if let injecting = inner as? any InjectingTransport {
            pending.setDelivery { injecting.inject($0) }
        }
    }

    /// Connects `inner` and takes its messages.
    package func connect() async throws {
        try await inner.connect()
        messages = await inner.receive()
    }

    /// Disconnects `inner`; nothing more can be handed to the server.
    package func disconnect() async {
        pending.setDelivery(nil)
        await inner.disconnect()
    }

    /// Sends through `inner`, unless it is an approval question already given up.
    package func send(_ data: Data) async throws {
        guard pending.outgoing(data) else { return }
        try await inner.send(data)
    }

    /// `inner`'s messages, unchanged (the SDK asks for them after ``connect()``; before it, none).
    package func receive() -> AsyncThrowingStream<Data, any Error> {
        messages ?? AsyncThrowingStream { $0.finish(throwing: MCPError.connectionClosed) }
    }

    /// The JSON-RPC error answer under `id` that ends the SDK's wait for an approval question given up for `reason`.
    static func cancelledAnswer(_ id: ID, reason: String) -> Data? {
        let answer = CreateElicitation.response(
            id: id, error: .serverError(code: ToolServer.notStartedCode,
                                        message: "peon-wasm gave up waiting for this answer (\(reason))"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try? encoder.encode(answer)
    }
}

/// A transport that can hand its server a message as if the client had sent it (the answer that releases an approval
/// question given up, ``PendingElicitations``).
package protocol InjectingTransport: Transport {
    /// Adds `data` to the messages read, without waiting; `false` when no more are read.
    nonisolated func inject(_ data: Data) -> Bool
}
