package import Foundation
package import Logging
import MCP
import PeonSystem
import Synchronization

/// The MCP stdio transport with what the SDK's `StdioTransport` lacks, and nothing else: a cap on one
/// message's size, no batches, and the JSON-RPC request id of each `tools/call` handed to the tool handler.
///
/// - A message (one line) longer than `maxMessageBytes` is dropped without being held in memory: the
///   rest of the line is skipped, a one-line error goes to stderr, and the client gets an
///   `invalid request` error response (built with the SDK's types).
/// - A line the SDK cannot read as one JSON-RPC 2.0 message is answered at once with one error line, as the HTTP
///   transport answers such a POST (``JSONRPCScreen/refusal(_:)``): text that is not JSON with a parse error; a
///   JSON-RPC batch (an array: the SDK would run its calls one by one while reading nothing else), JSON that is not an
///   object, a `jsonrpc` missing or not `"2.0"`, a `method` beside a `result` or an `error`, and any other object the
///   SDK would misread with `invalid request`, under the line's string or integer id (else `null`).
/// - A last line the end of input cuts short (no newline after it, as `printf '{...}' | peon-wasm mcp` sends) is a
///   message like any other.
/// - A `tools/call` request is decoded with the SDK's `Request<CallTool>` and re-encoded with the
///   request id's JSON spelling (`7`, `"7"`) in `params._meta["peon-wasm/request-id"]` (overwriting whatever a
///   client put there), so the run's `run.start`/`run.end` can name it. Every other message passes through unchanged.
///
/// Every request the server will answer is counted from the moment it is handed to the server until its answer is
/// queued to be written (``answersOwed``), so that at the end of input the server can wait for those answers before
/// it ends instead of losing the last ones (``ToolServer/serve(transport:answerGrace:)``); a request its client
/// cancels is no longer counted (it may get no answer).
///
/// Reading is a blocking loop on its own thread, and so is writing (``StdioWriter``): a client that does not read
/// stdout blocks the writing thread, never a thread of the shared pool. Reading waits for the server: it takes the
/// next message in only while fewer than `maxPendingMessages` messages holding fewer than `maxPendingBytes` bytes wait
/// to be written, and while the server has taken the messages read before (``LineInbox``). A client that sends
/// requests and never reads the answers thus stops being read (its own pipe fills) instead of making the server
/// hold every answer.
package actor StdioLineTransport: Transport, AnswerOwingTransport, InjectingTransport {
    /// The key under which a `tools/call`'s request id reaches the handler.
    package static let requestIDKey = "peon-wasm/request-id"
    /// The `_meta` key of a `tools/call`'s number in the order this transport read it (``CallLimiter/enter(bytes:arrival:)``).
    package static let arrivalKey = "peon-wasm/arrival"

    /// The most messages that wait to be written before reading pauses, by default.
    package static let defaultMaxPendingMessages = 256
    /// The most bytes the messages waiting to be written hold before reading pauses, by default (one larger message
    /// is still written: reading pauses until it is).
    package static let defaultMaxPendingBytes = 16 << 20

    /// Unused by this transport (errors go to stderr as `peon-wasm:` lines); the protocol requires one.
    package nonisolated let logger = Logger(label: "peon-wasm.mcp.stdio", factory: { _ in SwiftLogNoOpLogHandler() })
    private let input: Int32
    private let maxMessageBytes: Int
    private let stream: AsyncThrowingStream<Data, any Error>
    private let inbox: LineInbox
    /// The messages waiting to be written, and the thread that writes them.
    private nonisolated let writer: StdioWriter
    /// The requests handed to the server whose answer is not queued yet.
    private nonisolated let owed = OwedAnswers()
    /// MCP's lifecycle on this connection (``LifecycleGate``).
    private nonisolated let lifecycle = LifecycleGate()
    private var connected = false

    /// A transport on `input` and `output` (default: this process's stdin and stdout) that stops reading while
    /// `maxPendingMessages` messages or `maxPendingBytes` bytes wait to be written (defaults: 256 messages, 16 MiB).
    package init(input: Int32 = 0, output: Int32 = 1, maxMessageBytes: Int,
                 maxPendingMessages: Int = StdioLineTransport.defaultMaxPendingMessages,
                 maxPendingBytes: Int = StdioLineTransport.defaultMaxPendingBytes) {
        self.input = input
        self.maxMessageBytes = maxMessageBytes
        let inbox = LineInbox()
        self.inbox = inbox
        stream = AsyncThrowingStream(unfolding: { await inbox.next() })
        writer = StdioWriter(fd: output, maxMessages: maxPendingMessages, maxBytes: maxPendingBytes)
    }

    /// Starts the reader thread.
    package func connect() async throws {
        guard !connected else { return }
        connected = true
        let reader = LineReader(fd: input, maxMessageBytes: maxMessageBytes)
        let inbox = inbox
        let writer = writer
        let owed = owed
        let maxMessageBytes = maxMessageBytes
        let lifecycle = lifecycle
        let arrivals = ArrivalCounter()
        let thread = Thread {
            reader.run(deliver: { data in
                           // Nothing more is taken in while the answers to what was read wait to be written.
                           writer.waitForRoom()
                           if JSONRPCScreen.hasInvalidRequestID(data) {
                               try? writer.enqueue(JSONRPCScreen.errorWithoutID(code: JSONRPCScreen.invalidRequestCode,
                                                                                message: JSONRPCScreen.invalidIDMessage))
                           } else if let refusal = JSONRPCScreen.refusal(data) {
                               Self.refuse(refusal, writer)
                           } else if let early = lifecycle.refusal(data) {
                               FileHandle.standardError.write(Data("peon-wasm: a request before initialize, or a second initialize, was refused\n".utf8))
                               try? writer.enqueue(early)
                           } else {
                               // Counted before the server can see it, so that its answer never comes first.
                               let receipt = owed.receive(data)
                               if case .reused(let spelling) = receipt, let id = JSONRPCScreen.messageID(data) {
                                   FileHandle.standardError.write(Data("peon-wasm: a request reusing the id of one still in flight was refused\n".utf8))
                                   try? writer.enqueue(JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidRequestCode,
                                                                               message: Self.reusedIDMessage(spelling)))
                                   return true
                               }
                               let taken = inbox.put(Self.annotate(data, arrival: arrivals.next))
                               if !taken, case .owed(let spelling) = receipt { owed.answered(spelling) }
                               return taken
                           }
                           return true
                       },
                       oversized: { size in
                           writer.waitForRoom()
                           Self.refuseOversized(size, limit: maxMessageBytes, writer)
                       })
            inbox.finish()
        }
        thread.name = "peon-wasm mcp stdin"
        thread.start()
    }

    /// What a request reusing the id of a request still in flight is told.
    static func reusedIDMessage(_ spelling: String) -> String {
        "Invalid Request: id \(spelling.prefix(64)) is the id of a request still waiting for its answer; send it again with an id not used before in this session"
    }

    /// Ends the message stream (what is queued to be written still is).
    package func disconnect() async {
        connected = false
        inbox.finish()
    }

    /// Queues one message and its newline to be written (by the writing thread, after those queued before it);
    /// throws when the client's end is closed.
    package func send(_ data: Data) async throws {
        let data = lifecycle.sending(data)
        // An answer is no longer owed once it is queued (or can never be written).
        defer { owed.sent(data) }
        do {
            try writer.enqueue(data)
        } catch {
            throw MCPError.transportError(POSIXError(POSIXErrorCode(rawValue: error.code ?? EPIPE) ?? .EIO))
        }
    }

    /// How many requests handed to the server have no answer queued yet (a cancelled request is not counted).
    package nonisolated var answersOwed: Int { owed.count }

    /// The messages read.
    package func receive() -> AsyncThrowingStream<Data, any Error> { stream }

    /// Adds `data` to the messages read, ahead of the client's still to come (``InjectingTransport``).
    package nonisolated func inject(_ data: Data) -> Bool { inbox.inject(data) }

    /// Waits until every message queued is written (`true`), the client's end is closed, or `timeout` passed
    /// (`false`): the server's last answers reach a client that reads them before the process ends.
    package nonisolated func drain(timeout: Duration) -> Bool {
        writer.drain(timeout: timeout)
    }

    /// The messages waiting to be written now and the most that ever waited at once (for tests).
    nonisolated var pendingOutput: (messages: Int, bytes: Int, most: Int) { writer.pending }

    private static func refuseOversized(_ size: Int, limit: Int, _ writer: StdioWriter) {
        let message = "a message of \(size) bytes was refused: the limit is \(limit) bytes (--max-message)"
        FileHandle.standardError.write(Data("peon-wasm: \(message)\n".utf8))
        try? writer.enqueue(JSONRPCScreen.errorWithoutID(code: JSONRPCScreen.invalidRequestCode, message: message))
    }

    /// Answers a line the SDK cannot read as one JSON-RPC 2.0 message (``JSONRPCScreen/refusal(_:)``) with its one
    /// error line, as the HTTP transport answers such a POST, and says so on stderr. A batch is refused whole, never
    /// handed to the SDK, which would run its calls one after another while reading no other message (cancellations and
    /// elicitation answers would wait behind them); MCP 2025-06-18 removed batches.
    private static func refuse(_ refusal: JSONRPCScreen.Refusal, _ writer: StdioWriter) {
        let what = switch refusal.kind {
        case .notJSON: "a message that is not JSON was refused"
        case .batch: "a batch was refused: \(JSONRPCScreen.batchMessage)"
        case .unreadable: "a message that is not a JSON-RPC 2.0 request, notification or answer was refused (Invalid Request)"
        case .tooDeep: "a message nesting arrays and objects more than \(JSONRPCScreen.maxNesting) levels deep was refused (Invalid Request)"
        case .duplicateMember: "a message naming a member twice in one object was refused (Invalid Request)"
        case .longName: "a message with a member name longer than \(JSONRPCScreen.maxNameBytes) bytes was refused (Invalid Request)"
        case .invalidParams: "a request was refused: \(refusal.message)"
        }
        FileHandle.standardError.write(Data("peon-wasm: \(what)\n".utf8))
        try? writer.enqueue(refusal.body)
    }

    /// A `tools/call` with its request id added to `_meta`; anything else unchanged.
    static func annotate(_ data: Data, arrival: (() -> Int)? = nil) -> Data {
        guard let request = try? JSONDecoder().decode(Request<CallTool>.self, from: data),
              request.method == CallTool.name
        else { return data }
        var meta = request.params._meta ?? Metadata()
        // The id's JSON spelling, as a string: `7` and `"7"` stay apart, and no id string is ever read back as
        // something else (the SDK decodes a string beginning with `data:` as binary data).
        meta.fields[requestIDKey] = .string(RequestID(request.id).spelling)
        // Written over whatever the client put there, as the id is (and removed where the transport numbers nothing:
        // over HTTP a call takes its place when its POST arrives).
        meta.fields[arrivalKey] = arrival.map { .int($0()) }
        let annotated = CallTool.request(
            id: request.id, CallTool.Parameters(name: request.params.name, arguments: request.params.arguments, meta: meta))
        return (try? JSONEncoder().encode(annotated)) ?? data
    }
}

/// A transport that reads messages ahead of the server's answers and counts the requests it handed the server whose
/// answer is not queued yet: at the end of its input ``ToolServer/serve(transport:answerGrace:)`` waits for those
/// answers (the SDK sends an answer after its handler returns) instead of ending without them.
protocol AnswerOwingTransport: Transport {
    /// How many requests handed to the server have no answer queued yet (a request its client cancelled is not counted).
    nonisolated var answersOwed: Int { get }
}

/// The requests a stdio session's server owes an answer to, by the JSON spelling of their id (one request per id:
/// a request reusing the id of one still owed is refused, ``receive(_:)``). A request is owed from when it is handed to
/// the server until a message with its id and a `result` or an `error` is sent; a `notifications/cancelled` for it
/// ends the debt (the server sends no answer to a cancelled request, or one the client ignores).
///
/// What counts as a request mirrors how the SDK's server reads a message: `jsonrpc` is `2.0`, `method` a string, `id`
/// a string or an integer, and neither `result` nor `error` (else it is read as an answer). A message the server
/// would not read as the request it looks like is refused before it reaches the server (``JSONRPCScreen``), and is
/// never owed.
final class OwedAnswers: Sendable {
    private let owed = Mutex<Set<String>>([])

    /// An empty account.
    init() {}

    /// ``receive(_:)``'s answer as the spelling of the id now owed an answer, or `nil` (not a request, or a reused id).
    func received(_ message: Data) -> String? {
        if case .owed(let spelling) = receive(message) { return spelling }
        return nil
    }

    /// What ``receive(_:)`` found.
    enum Receipt: Equatable {
        /// Not a request the server answers (or a cancellation, accounted for).
        case notOwed
        /// A request now owed an answer, by its id's spelling.
        case owed(String)
        /// A request whose id is that of one still owed its answer: not accounted for, to be refused.
        case reused(String)
    }

    /// Accounts for `message`, about to be handed to the server, as ``received(_:)`` does, except that a request whose id
    /// is that of one still owed its answer is reported and not counted: MCP says a request id "MUST NOT" be reused in
    /// a session, and the SDK took both, after which a cancellation of that id stopped one of them or neither. Over HTTP
    /// such a request is refused as well (``HTTPSessionRouter``).
    func receive(_ message: Data) -> Receipt {
        guard let probe = try? JSONDecoder().decode(MessageProbe.self, from: message), probe.jsonrpc == "2.0",
              let method = probe.method
        else { return .notOwed }
        if method == CancelledNotification.name, probe.id == nil, let cancelled = probe.cancelledRequest {
            owed.withLock { _ = $0.remove(RequestID(cancelled).spelling) }
            return .notOwed
        }
        guard let id = probe.id, !probe.hasAnswer else { return .notOwed }
        let spelling = RequestID(id).spelling
        return owed.withLock { $0.insert(spelling).inserted ? .owed(spelling) : .reused(spelling) }
    }

    /// Accounts for `message`, sent by the server: an answer pays the debt of its id.
    func sent(_ message: Data) {
        guard let probe = try? JSONDecoder().decode(MessageProbe.self, from: message), probe.method == nil,
              probe.hasAnswer, let id = probe.id
        else { return }
        answered(RequestID(id).spelling)
    }

    /// Ends the debt of the request id spelled `spelling` (none when nothing is owed to it).
    func answered(_ spelling: String) {
        owed.withLock { _ = $0.remove(spelling) }
    }

    /// The answers owed.
    var count: Int { owed.withLock { $0.count } }

    /// The members of a JSON-RPC message that say whether it is a request, an answer or a cancellation.
    private struct MessageProbe: Decodable {
        var jsonrpc: String?
        var method: String?
        var id: ID?
        var hasAnswer: Bool
        var cancelledRequest: ID?

        private enum Keys: String, CodingKey { case jsonrpc, method, id, result, error, params }
        private struct Cancellation: Decodable { var requestId: ID? }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            jsonrpc = try? container.decode(String.self, forKey: .jsonrpc)
            method = try? container.decode(String.self, forKey: .method)
            id = (try? container.decodeNil(forKey: .id)) == false ? try? container.decode(ID.self, forKey: .id) : nil
            hasAnswer = container.contains(.result) || container.contains(.error)
            cancelledRequest = method == CancelledNotification.name
                ? (try? container.decode(Cancellation.self, forKey: .params))?.requestId : nil
        }
    }
}

/// Splits a descriptor's bytes into lines, never holding more than `maxMessageBytes` of one line.
private struct LineReader: Sendable {
    let fd: Int32
    let maxMessageBytes: Int

    /// Reads until the end of input, a read error, or `deliver` returning `false` (nothing takes messages any more). A
    /// last line the end of input cuts short, without a newline, is still a message (bounded by `maxMessageBytes`
    /// like any other); one cut short by a read error is not.
    func run(deliver: (Data) -> Bool, oversized: (Int) -> Void) {
        var pending: [UInt8] = []
        var skipping = false
        var skipped = 0
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        /// Ends the line read so far: an oversized one is reported, another one that is not empty delivered; `false`
        /// when nothing takes messages any more.
        func endLine() -> Bool {
            defer {
                pending = []
                skipping = false
                skipped = 0
            }
            if skipping {
                oversized(skipped)
                return true
            }
            if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
            return pending.isEmpty || deliver(Data(pending))
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in retryingInterrupts { read(fd, raw.baseAddress, raw.count) } }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // A parent may leave stdin non-blocking: wait for input instead of spinning on read.
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = retryingInterrupts { poll(&descriptor, 1, 1000) }
                continue
            }
            if count == 0 {
                // The end of input ends the last line too: `printf '{...}' | peon-wasm mcp` sends no newline after it.
                _ = endLine()
                return
            }
            if count < 0 { return }
            var start = 0
            while start < count {
                let newline = chunk[start..<count].firstIndex(of: UInt8(ascii: "\n"))
                let end = newline ?? count
                let piece = chunk[start..<end]
                if skipping {
                    skipped += piece.count
                } else if pending.count + piece.count > maxMessageBytes {
                    skipping = true
                    skipped = pending.count + piece.count
                    pending = []
                } else {
                    pending += piece
                }
                if newline != nil && !endLine() { return }
                start = end + 1
            }
        }
    }
}

/// MCP's lifecycle on stdio: "the initialization phase MUST be the first interaction". Until an `initialize` request
/// has been read, every other request but `ping` is refused (`Invalid Request`, under its id): the SDK ran a
/// `tools/call` sent first, whose `run.start` then named the client `unknown`. (Over HTTP a session exists only after
/// its `initialize`.) Notifications are passed on: they get no answer either way.
///
/// Requests read after the `initialize` and before its answer was sent wait for that answer (at most
/// ``answerWait``): the SDK handles each request in a task of its own, and a call sent right behind `initialize` ran
/// before the SDK had taken the client's name. If the answer is an error, they are refused as before an `initialize`.
/// An `initialize` whose params the SDK cannot decode (a capability of the wrong type) was answered "Internal error";
/// that answer is rewritten as `Invalid params` (`-32602`).
final class LifecycleGate: Sendable {
    private enum Phase: Sendable {
        /// No `initialize` read yet.
        case waiting
        /// An `initialize` was handed to the server; its answer is not sent yet (the id's JSON spelling).
        case initializing(String)
        /// The `initialize` was answered: accepted (`true`) or refused.
        case answered(Bool)
    }

    private let phase = Mutex(Phase.waiting)
    /// Signalled when the `initialize` answer is sent.
    private let answer = DispatchSemaphore(value: 0)

    /// The longest a request read behind `initialize` waits for its answer.
    static let answerWait: DispatchTimeInterval = .seconds(10)

    /// The error answering `data`, or `nil` when it may go to the server (and an `initialize` opens the gate). Called on
    /// the reading thread, which it may hold until the `initialize` answer is sent.
    func refusal(_ data: Data) -> Data? {
        // Once the session is initialized only a second `initialize` is refused: a message without that word in it
        // (nor any `\u` escape, which could spell it) is not one, and is not decoded again (every message would
        // otherwise pay for two more decodes).
        let settled = phase.withLock { phase -> Bool in
            if case .answered(true) = phase { return true }
            return false
        }
        if settled && data.range(of: Self.initializeWord) == nil && data.range(of: Self.unicodeEscape) == nil { return nil }
        guard let probe = try? JSONDecoder().decode(RequestIDProbe.self, from: data), let method = probe.method,
              probe.id == .valid, let id = JSONRPCScreen.messageID(data) else { return nil }
        let current = phase.withLock { phase -> Phase in
            let before = phase
            if method == "initialize", case .waiting = phase { phase = .initializing(id.spelling) }
            return before
        }
        if method == "initialize" {
            // A second one is refused at once, as over HTTP (the SDK refused it too, but later, from its own task).
            if case .waiting = current { return nil }
            return JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidRequestCode, message: Self.againMessage)
        }
        if method == "ping" { return nil }
        switch current {
        case .waiting:
            return JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidRequestCode, message: Self.message)
        case .answered(let accepted):
            return accepted ? nil : JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidRequestCode, message: Self.message)
        case .initializing:
            if answer.wait(timeout: .now() + Self.answerWait) == .success { answer.signal() }
            let accepted = phase.withLock { phase -> Bool in
                if case .answered(true) = phase { return true }
                return false
            }
            return accepted ? nil : JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidRequestCode, message: Self.message)
        }
    }

    /// `data`, about to be sent, as it should be sent: the answer to the pending `initialize` ends the wait (and an
    /// "Internal error" answering it becomes `Invalid params`); anything else unchanged.
    func sending(_ data: Data) -> Data {
        let pending = phase.withLock { phase -> String? in
            if case .initializing(let spelling) = phase { return spelling }
            return nil
        }
        guard let pending, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["method"] == nil,
              let id = JSONRPCScreen.messageID(data), id.spelling == pending else { return data }
        let accepted = object["result"] != nil
        phase.withLock { $0 = .answered(accepted) }
        answer.signal()
        guard let error = object["error"] as? [String: Any], error["code"] as? Int == -32603 else { return data }
        let detail = (error["message"] as? String).map { " (\($0))" } ?? ""
        return JSONRPCScreen.errorBody(id: id, code: JSONRPCScreen.invalidParamsCode,
                                       message: "Invalid params: initialize's params could not be read\(detail); check each capability's type against the MCP schema")
    }

    /// The bytes every `initialize` request holds (its method's name, whatever the escapes around it).
    static let initializeWord = Data("initiali".utf8)
    /// The start of a `\uXXXX` escape.
    static let unicodeEscape = Data("\\u".utf8)

    /// What a second `initialize` is told.
    static let againMessage = "Invalid Request: this session is already initialized; a new session starts with a new connection"

    /// What a request before an accepted `initialize` is told.
    static let message = "Invalid Request: the session is not initialized; send initialize first (MCP lifecycle), then notifications/initialized"
}

/// Numbers the `tools/call`s a stdio transport reads, in the order it reads them.
final class ArrivalCounter: Sendable {
    private let count = Mutex(0)

    /// The next number (1, 2, ...).
    func next() -> Int {
        count.withLock { count in
            count += 1
            return count
        }
    }
}
