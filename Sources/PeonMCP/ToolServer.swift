import Foundation
package import MCP
package import PeonRuntime
import PeonInterface
import Synchronization
import PeonMediator

/// `peon-wasm mcp`: serves ``ToolService``s to MCP clients with the official MCP Swift SDK.
///
/// One process, one audit log: every `tools/call` is a fresh instance of its tool's module with its own
/// run id, bracketed in the log by `run.start`/`run.end` that name the request id and the client. Calls
/// run concurrently on their own threads, at most `maxConcurrent` at once across all clients; behind them at
/// most `maxWaiting` calls wait their turn, holding at most `maxWaitingBytes` of input together, and a call past
/// that is refused at once with a JSON-RPC error (``CallLimiter``). A `notifications/cancelled` stops its call at
/// the call's next host call (a call still waiting leaves the line and never starts). When a
/// tool's grants file is reloaded, `notifications/tools/list_changed` is sent to every client. The server
/// offers no tool that changes grants: they change only when a person edits the files.
///
/// Each client connection is a session with an SDK `Server` of its own (stdio has one; the streamable
/// HTTP transport one per `Mcp-Session-Id`). A call whose grant needs approval asks the human through
/// the session's client (MCP elicitation, ``ElicitationApprover``) when the client declared that
/// capability, else the host's `--approver`.
package final class ToolServer: Sendable {
    private let tools: Mutex<[String: ToolService]> = Mutex([:])
    private let order: Mutex<[String]> = Mutex([])
    /// The calls running and waiting, across all clients (the HTTP listener takes a call's place at its POST).
    let limiter: CallLimiter
    private let version: String
    /// Every live session's server, for `tools/list_changed`.
    private let sessions: Mutex<[ObjectIdentifier: ToolSession]> = Mutex([:])
    /// How long an elicitation may wait for the human (also bounded by the call's deadline).
    private let approvalTimeout: Duration
    /// The approval questions open across all sessions (``PendingElicitations``).
    private let openQuestions = OpenElicitationCount()

    /// The most calls waiting for a slot, by default.
    package static let defaultMaxWaiting = 64
    /// The most input bytes the waiting calls hold together, by default (a call that would wait alone may always
    /// wait, whatever its size: `--max-message` bounds it).
    package static let defaultMaxWaitingBytes = 64 << 20

    /// A server that runs at most `maxConcurrent` calls at once, with at most `maxWaiting` more waiting for a slot
    /// and their inputs at most `maxWaitingBytes` together; an approval asked through the client waits at most
    /// `approvalTimeout` (and never past the call's deadline).
    package init(maxConcurrent: Int, version: String, approvalTimeout: Duration = .seconds(120),
                 maxWaiting: Int = ToolServer.defaultMaxWaiting, maxWaitingBytes: Int = ToolServer.defaultMaxWaitingBytes) {
        limiter = CallLimiter(slots: max(1, maxConcurrent), maxWaiting: maxWaiting, maxWaitingBytes: maxWaitingBytes)
        self.version = version
        self.approvalTimeout = approvalTimeout
    }

    /// The approval questions open now across all sessions: asked through a client (or about to be) and awaited by the
    /// SDK. One given up is released at once, so this counts only approvals still waiting.
    package var openElicitations: Int { openQuestions.value.load(ordering: .relaxed) }

    /// Adds a tool (before serving).
    package func add(_ service: ToolService) {
        tools.withLock { $0[service.name] = service }
        order.withLock { $0.append(service.name) }
    }

    /// Tells every client that the tool list changed (a grants file was reloaded). Errors (no client
    /// yet, a client gone) are ignored: the next `tools/list` shows the change anyway.
    package func toolsChanged() {
        // Only to sessions whose client initialized: before that, no `listChanged` capability was offered to it.
        for session in sessions.withLock({ Array($0.values) }) where session.isInitialized {
            let server = session.server
            Task { try? await server.notify(ToolListChangedNotification.message()) }
        }
    }

    /// The MCP description of a tool: name, description and input schema.
    package static func describe(_ service: ToolService) -> Tool {
        let schema = (try? JSONDecoder().decode(Value.self, from: Data(service.inputSchema.utf8))) ?? .object(["type": "object"])
        return Tool(name: service.name, description: service.tool.description, inputSchema: schema)
    }

    /// A new session: an SDK server with this server's tools, not yet started.
    func makeSession() async -> ToolSession {
        let server = Server(name: "peon-wasm", version: version,
                            instructions: "Each tool is a WebAssembly module running under a grants file; every file, network, database and program access it makes is decided by policy and written to an audit log first.",
                            capabilities: Server.Capabilities(tools: .init(listChanged: true)))
        let session = ToolSession(server: server, limiter: limiter, pending: PendingElicitations(total: openQuestions))
        await server.withMethodHandler(ListTools.self) { [self] _ in
            let names = order.withLock { $0 }
            let services = tools.withLock { table in names.compactMap { table[$0] } }
            return ListTools.Result(tools: services.map(Self.describe))
        }
        await server.withMethodHandler(CallTool.self) { [self] parameters in
            try await call(parameters, session: session)
        }
        sessions.withLock { $0[ObjectIdentifier(server)] = session }
        return session
    }

    /// Starts `session` on `transport` (the request ids of `tools/call`s must reach the handler in
    /// `_meta`, as ``StdioLineTransport`` and ``RequestIDTransport`` put them). The server sees it through an
    /// ``ElicitationTransport``, so that an approval question given up is released (``PendingElicitations``).
    func start(_ session: ToolSession, transport: any Transport) async throws {
        let transport = ElicitationTransport(transport, pending: session.pending)
        try await session.server.start(transport: transport) { info, capabilities in
            session.initialized(client: info.name, capabilities: capabilities)
        }
    }

    /// Ends `session`: it gets no more `tools/list_changed`, and its SDK server stops.
    func end(_ session: ToolSession) async {
        sessions.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(session.server)) }
        // A session that ends (DELETE, or closed to make room) takes its calls with it: a running one stops at its
        // next host call and records `cancelled`, instead of running on to its deadline for nobody; a waiting one
        // leaves the line and never starts.
        session.cancelRunningCalls()
        await session.server.stop()
    }

    /// Serves one client on `transport` (stdio) until it closes the connection, then waits for the calls
    /// still running (each bounded by its deadline; an approval waiting for this client's answer refuses at once,
    /// since the answer would have come on the input that ended) so that each writes its `run.end`, and, on an
    /// ``AnswerOwingTransport`` (``StdioLineTransport``), for the answer to every request it took in to be queued
    /// (``AnswerOwingTransport/answersOwed``): the SDK sends an answer after its handler returns, so the server must
    /// not end before it. That wait gives up once no call has run for `answerGrace` (an answer the SDK never sends must not
    /// hold the process).
    package func serve(transport: any Transport, answerGrace: Duration = .seconds(5)) async throws {
        let session = await makeSession()
        try await start(session, transport: transport)
        await session.server.waitUntilCompleted()
        // The server has read the client's last message: an approval still waiting for its answer (which would come
        // on this input) waits no more, but refuses, and its call ends.
        session.input.end()
        sessions.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(session.server)) }
        let owing = transport as? any AnswerOwingTransport
        var deadline = ContinuousClock.now + answerGrace
        while true {
            let running = session.inFlight.load(ordering: .acquiring) > 0
            let owed = owing?.answersOwed ?? 0
            if !running && owed == 0 { break }
            if running {
                deadline = .now + answerGrace
            } else if ContinuousClock.now >= deadline {
                break
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The JSON-RPC error code of a call refused or withdrawn before it started (a server error, JSON-RPC 2.0).
    static let notStartedCode = -32000

    /// One `tools/call`.
    func call(_ parameters: CallTool.Parameters, session: ToolSession) async throws -> CallTool.Result {
        let requestID = RequestID(spelling: parameters._meta?[StdioLineTransport.requestIDKey]?.stringValue)
        // Over HTTP the call took its place in line when its POST arrived; on stdio it takes one here.
        let ticket = requestID.map { session.claimTicket($0.spelling) } ?? nil
        // No call runs for a client the SDK has not accepted (an `initialize` it refused, or none): its run could not
        // say who asked (`mcp_client` would read `unknown`) nor ask that client's user for approval.
        guard session.isInitialized else {
            ticket?.finish()
            throw MCPError.invalidRequest("the session is not initialized: its initialize was not accepted; send a valid initialize first")
        }
        guard let service = tools.withLock({ $0[parameters.name] }) else {
            ticket?.finish()
            let known = order.withLock { $0 }.joined(separator: ", ")
            throw MCPError.invalidParams("no tool named '\(TerminalText.escaped(parameters.name))'; the tools are \(known)")
        }
        let input: String
        switch Self.input(for: service, arguments: parameters.arguments) {
        case .success(let text): input = text
        case .failure(let problem):
            ticket?.finish()
            return Self.result(problem.message, isError: true)
        }
        let place: CallLimiter.Place
        if let ticket {
            place = ticket.place
        } else {
            let arrival = parameters._meta?[StdioLineTransport.arrivalKey]?.intValue
            switch limiter.enter(bytes: input.utf8.count, arrival: arrival) {
            case .success(let entered): place = entered
            case .failure(let refusal): throw MCPError.serverError(code: Self.notStartedCode, message: refusal.message)
            }
        }
        session.inFlight.add(1, ordering: .acquiringAndReleasing)
        defer { session.inFlight.subtract(1, ordering: .acquiringAndReleasing) }
        let cancellation = RunCancellation()
        let token = session.track(cancellation, place: place)
        defer { session.untrack(token) }
        let client = session.clientName
        let approver: (any Approver)? = session.supportsElicitation
            ? ElicitationApprover(server: session.server, client: client, cancellation: cancellation, timeout: approvalTimeout,
                                  sessionLabels: session.labels, clientInput: session.input, pending: session.pending)
            : nil
        let call = ToolCall(input: input, requestID: requestID?.text ?? "unknown", client: client, cancellation: cancellation,
                            approver: approver, sessionLabels: session.labels, requestIDJSON: requestID?.spelling)
        guard await limiter.wait(place) else {
            // Withdrawn before it started: cancelled by its client (no answer, as for a running call), its client
            // gone (HTTP), or its session ended. It never ran, so the log has nothing of it.
            if Task.isCancelled { throw CancellationError() }
            let why = ticket?.isAbandoned == true ? "its client closed the connection" : "its session ended"
            throw MCPError.serverError(code: Self.notStartedCode,
                                       message: "the call was not started: \(why) while it waited for a slot; send it again")
        }
        let pending = PendingAnswer()
        let waiter = stragglers.withLock { list in
            defer { list.next += 1 }
            list.waiting[list.next] = pending
            return list.next
        }
        let answer = await withTaskCancellationHandler {
            await Self.onThread(answering: pending) { service.call(call) }
        } onCancel: {
            cancellation.cancel()
        }
        stragglers.withLock { _ = $0.waiting.removeValue(forKey: waiter) }
        limiter.release()
        // A request its client cancelled gets no answer (the SDK sends none when the handler throws
        // CancellationError); its run has ended and recorded `cancelled`. A call the server stopped (SIGTERM)
        // is answered: its client did not ask for the end.
        if Task.isCancelled { throw CancellationError() }
        return Self.result(answer.text, isError: answer.isError)
    }

    struct InputProblem: Error { var message: String }

    /// Whether `value` holds, at any depth, a value the SDK decoded as binary data.
    static func containsData(_ value: Value) -> Bool {
        switch value {
        case .data: return true
        case .array(let items): return items.contains(where: containsData)
        case .object(let members): return members.values.contains(where: containsData)
        default: return false
        }
    }

    /// The module's input: the `input` string (default schema), or the arguments object as JSON text.
    static func input(for service: ToolService, arguments: [String: Value]?) -> Result<String, InputProblem> {
        // The MCP SDK decodes every string that looks like a data URL (`data:text/plain,hi`) as binary data, and
        // writes it back differently (`data:text/plain;base64,aGk=`): such an argument cannot reach the module as
        // the client sent it, so it is refused rather than changed.
        if (arguments ?? [:]).values.contains(where: containsData) {
            return .failure(InputProblem(message:
                "an argument is a string that begins with `data:`, which this server cannot pass on unchanged; send it another way (for example without the `data:` prefix)"))
        }
        if service.hasDeclaredSchema {
            // MCP: servers "MUST validate all tool inputs". The schema's keywords this server checks (``ToolInputSchema``)
            // are checked before the module runs; a call that does not fit never starts a run.
            // Fails closed: a schema that cannot be read checks nothing, so nothing runs.
            guard let schema = try? JSONDecoder().decode(Value.self, from: Data(service.inputSchema.utf8)) else {
                return .failure(InputProblem(message: "\(service.name)'s input schema cannot be read, so its arguments cannot be checked; the operator must fix the tool's input-schema"))
            }
            if let problem = ToolInputSchema.problem(.object(arguments ?? [:]), schema) {
                return .failure(InputProblem(message: "the arguments do not fit \(service.name)'s input schema: \(problem)"))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(arguments ?? [:]), let text = String(data: data, encoding: .utf8) else {
                return .failure(InputProblem(message: "the arguments cannot be written as JSON"))
            }
            return .success(text)
        }
        let arguments = arguments ?? [:]
        if arguments.count == 1, let input = arguments["input"] {
            guard case .string(let text) = input else {
                return .failure(InputProblem(message: "arguments.input must be a string; got \(ToolInputSchema.kind(of: input))"))
            }
            return .success(text)
        }
        do {
            let got = arguments.keys.sorted().map { TerminalText.escaped($0) }.joined(separator: ", ")
            return .failure(InputProblem(message:
                "\(service.name) takes exactly one argument, `input` (a string); got \(got.isEmpty ? "none" : got)"))
        }
    }

    static func result(_ text: String, isError: Bool) -> CallTool.Result {
        CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)], isError: isError)
    }

    /// Runs a blocking call on a thread of its own (guests block; the async pool must not), with a
    /// stack large enough for deep guest recursion in the interpreter. The answer is the thread's, unless
    /// ``answerStragglers(signal:)`` gave `pending` one first (the thread then runs on, unheard, until the process ends).
    static func onThread(answering pending: PendingAnswer, _ body: @escaping @Sendable () -> ToolAnswer) async -> ToolAnswer {
        await withCheckedContinuation { continuation in
            pending.wait(continuation)
            let thread = Thread { pending.give(body()) }
            thread.stackSize = 16 << 20
            thread.name = "peon-wasm tool call"
            thread.start()
        }
    }

    /// The answers of the calls running now, each given at most once (``PendingAnswer``), by number.
    private let stragglers = Mutex<(next: Int, waiting: [Int: PendingAnswer])>((0, [:]))

    /// Answers every call still running, as a stop's grace period ends: a guest that makes no host call (a loop
    /// without fuel) never sees the stop, and its client would otherwise get no answer, while the process waited for
    /// one before exiting. The calls' `run.end` entries are written by ``ToolService/endStragglers(signal:)``.
    package func answerStragglers(signal: String) {
        let waiting = stragglers.withLock { Array($0.waiting.values) }
        for pending in waiting {
            pending.give(ToolAnswer(text: "peon-wasm received SIG\(signal) and is stopping; the call did not stop in time and was cut off",
                                    isError: true, runID: "", outcome: "signal:\(signal)"))
        }
    }
}

/// A call's answer, handed to its waiting handler once: by whichever comes first, the call's thread or a stop.
final class PendingAnswer: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<ToolAnswer, Never>)
        case answered(ToolAnswer)
        case done
    }

    private let state = Mutex<State>(.empty)

    /// Keeps the continuation to resume; at once if the answer came first.
    func wait(_ continuation: CheckedContinuation<ToolAnswer, Never>) {
        let ready: ToolAnswer? = state.withLock { state in
            if case .answered(let answer) = state {
                state = .done
                return answer
            }
            state = .waiting(continuation)
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    /// Gives the answer, if none was given yet; later answers are dropped.
    func give(_ answer: ToolAnswer) {
        let waiting: CheckedContinuation<ToolAnswer, Never>? = state.withLock { state in
            switch state {
            case .empty:
                state = .answered(answer)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .answered, .done:
                return nil
            }
        }
        waiting?.resume(returning: answer)
    }
}

/// One client connection: its SDK server, what the client said about itself in `initialize`, and
/// its calls in flight.
final class ToolSession: Sendable {
    /// The SDK server of this connection.
    let server: Server
    /// The calls of this session running or waiting for a slot.
    let inFlight = Atomic<Int>(0)
    /// The labels of what this session's calls returned to its client; each later call starts holding them.
    let labels = ToolSessionLabels()
    /// The end of the client's input (marked on stdio only: over HTTP a client can answer on a later request).
    let input = ClientInputEnd()
    /// The approval questions asked through this session's client and still awaited.
    let pending: PendingElicitations
    private let client = Mutex<(name: String, elicitation: Bool)>(("unknown", false))
    /// The cancellations and places in line of the calls running or waiting now, by a token of their own.
    private let running = Mutex<(next: Int, calls: [Int: (cancellation: RunCancellation, place: CallLimiter.Place)])>((0, [:]))
    /// The HTTP `tools/call`s of this session whose POST is open (``CallTicket``).
    private let tickets = Mutex<[CallTicket]>([])
    /// The server's call limiter, where the session's waiting calls leave the line when it ends.
    private let limiter: CallLimiter

    init(server: Server, limiter: CallLimiter, pending: PendingElicitations = PendingElicitations()) {
        self.server = server
        self.limiter = limiter
        self.pending = pending
    }

    /// Remembers a call's cancellation and place in line until ``untrack(_:)``; returns its token.
    func track(_ cancellation: RunCancellation, place: CallLimiter.Place) -> Int {
        running.withLock { state in
            state.next += 1
            state.calls[state.next] = (cancellation, place)
            return state.next
        }
    }

    /// Forgets a call that ended.
    func untrack(_ token: Int) {
        running.withLock { _ = $0.calls.removeValue(forKey: token) }
    }

    /// Cancels every call of the session that is running, and takes every one that waits out of line.
    func cancelRunningCalls() {
        for call in running.withLock({ Array($0.calls.values) }) {
            call.cancellation.cancel()
            limiter.withdraw(call.place)
        }
        for ticket in tickets.withLock({ $0 }) { limiter.withdraw(ticket.place) }
    }

    /// Opens a ticket for a `tools/call` POSTed with request id `requestID` (its JSON spelling), holding `place`.
    func openTicket(requestID: String, place: CallLimiter.Place) -> CallTicket {
        let ticket = CallTicket(requestID: requestID, place: place, limiter: limiter, session: self)
        tickets.withLock { $0.append(ticket) }
        return ticket
    }

    /// The open ticket of request id `requestID` (its JSON spelling) no call has claimed yet, now claimed; `nil` on
    /// stdio, or when none is open.
    func claimTicket(_ requestID: String) -> CallTicket? {
        tickets.withLock { tickets in tickets.first { $0.requestID == requestID && $0.claim() } }
    }

    /// Forgets a ticket whose POST was answered or whose connection closed.
    func forget(_ ticket: CallTicket) {
        tickets.withLock { $0.removeAll { $0 === ticket } }
    }

    /// Records the client's `initialize`: its name, and whether it can show a form to its user (form
    /// elicitation; an empty `elicitation` capability means form, as the specification says).
    func initialized(client info: String, capabilities: Client.Capabilities) {
        let form = capabilities.elicitation.map { $0.form != nil || $0.url == nil } ?? false
        client.withLock { $0 = (info, form) }
        initializedFlag.store(true, ordering: .releasing)
    }

    /// Whether the SDK accepted the client's `initialize` (its hook ran): until then no call runs, and no
    /// `tools/list_changed` is sent.
    var isInitialized: Bool { initializedFlag.load(ordering: .acquiring) }
    private let initializedFlag = Atomic<Bool>(false)

    /// The name the client gave in `initialize` (`unknown` before it).
    var clientName: String { client.withLock { $0.name } }

    /// Whether approvals can be asked through this client.
    var supportsElicitation: Bool { client.withLock { $0.elicitation } }
}

/// A `tools/call` that arrived over HTTP, from its POST to the end of its answer (or of its connection): the place
/// in line the listener took for it before the SDK saw it (so a call past the limit is answered 503 at once), and
/// whether its client closed the connection. A call waiting for a slot whose client went away leaves the line and
/// never starts; one that runs goes on (MCP: a disconnection is not a cancellation; the answer is kept for a client
/// that resumes with `Last-Event-ID`).
final class CallTicket: Sendable {
    /// The JSON spelling of the call's request id (`7`, `"7"`).
    let requestID: String
    /// The call's place in line.
    let place: CallLimiter.Place
    private let limiter: CallLimiter
    private let session: ToolSession
    private let state = Mutex<(claimed: Bool, abandoned: Bool)>((false, false))

    init(requestID: String, place: CallLimiter.Place, limiter: CallLimiter, session: ToolSession) {
        self.requestID = requestID
        self.place = place
        self.limiter = limiter
        self.session = session
    }

    /// Marks the ticket as its call's; `false` if a call claimed it already.
    func claim() -> Bool {
        state.withLock { state in
            guard !state.claimed else { return false }
            state.claimed = true
            return true
        }
    }

    /// Whether the call's client closed the connection before its answer.
    var isAbandoned: Bool { state.withLock { $0.abandoned } }

    /// The client closed the connection before the answer (``finish()`` follows, and takes the place out of line:
    /// a call still waiting, or not yet arrived, never starts).
    func abandon() {
        state.withLock { $0.abandoned = true }
    }

    /// The POST is over (answered, refused, or its connection closed): a place no call took is given back.
    func finish() {
        limiter.withdraw(place)
        session.forget(self)
    }
}

/// A JSON-RPC request id as the client spelled it: `spelling` is its JSON text (`7` and `"7"` differ), `text` the
/// id without JSON quoting (as `mcp_request` has always recorded it, so `7` and `"7"` read alike).
struct RequestID: Sendable, Hashable {
    /// The JSON text: an integer, or a JSON string with its quotes.
    let spelling: String
    /// The integer's digits, or the string's characters.
    let text: String

    /// The id of the SDK's request.
    init(_ id: ID) {
        switch id {
        case .number(let number):
            spelling = String(number)
            text = String(number)
        case .string(let string):
            spelling = Self.quoted(string)
            text = string
        }
    }

    /// The id whose JSON spelling is `spelling`; `nil` unless that is an integer or a JSON string.
    init?(spelling: String?) {
        guard let spelling, let data = spelling.data(using: .utf8) else { return nil }
        if let number = Int(spelling) {
            self.spelling = String(number)
            text = String(number)
        } else if spelling.hasPrefix("\""), let string = try? JSONDecoder().decode(String.self, from: data) {
            self.spelling = spelling
            text = string
        } else {
            return nil
        }
    }

    /// `string` as a JSON string (quotes, escapes, `/` unescaped).
    static func quoted(_ string: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        guard let data = try? encoder.encode(string) else { return "\"\"" }
        return String(decoding: data, as: UTF8.self)
    }
}
