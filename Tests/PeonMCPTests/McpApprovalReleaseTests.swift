import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmKit
@testable import PeonMCP
import PeonRuntime
import PeonTestSupport
import Synchronization
import Testing

/// Threat: an MCP client that declares elicitation and never answers the approval questions (`elicitation/create`) it is
/// sent. Each approval gives up after `--approval-timeout`, but the SDK kept the question's pending request (its
/// continuation and the task awaiting it) until the session ended: a long session grew by one entry per abandoned
/// approval, without bound. A question given up is now released (the SDK's wait ends; the client is sent
/// `notifications/cancelled` for it), and a late answer to it is dropped without approving anything.
// Serialized: each test runs an in-process server on the shared pool and waits on pipes from threads of its own.
@Suite(.serialized) struct McpApprovalReleaseTests {
    /// How long an approval waits for the client here: short, so that each round gives up quickly, yet long enough that
    /// on a loaded machine the question is written before the approval gives up (one given up sooner is never sent; 2 s
    /// was too short once, in a full suite on a slow 2-core VM).
    static let approvalTimeout = Duration.seconds(6)
    /// The most seconds any one wait of the test lasts: generous, because the in-process server runs on the shared
    /// pool, which other tests of this process (waiting for their child processes) may hold for tens of seconds (a
    /// full suite once kept it from answering `initialize` for 60 s; `StdioBackpressureTests` waits 150 s too).
    static let bound: TimeInterval = 150
    /// The most seconds a question given up may still be held (the SDK forgets it as soon as it reads the answer the
    /// server hands it; generous, for a loaded machine).
    static let releaseBound: TimeInterval = 20

    /// A tool server with one tool, `guarded` (reads `data/*.txt`, each read approved by a person), whose approvals
    /// asked through the client wait ``approvalTimeout``, and the audit log it writes in `directory`.
    static func guarded(in directory: URL) throws -> (ToolServer, AuditLog) {
        try McpApprovalInputEndTests.setUp(directory)
        let (configuration, log) = try HTTPRequestRefusalTests.toolHost(in: directory)
        let tools = ToolServer(maxConcurrent: 4, version: "test", approvalTimeout: approvalTimeout)
        tools.add(try ToolService(grantsPath: directory.appendingPathComponent("guarded.toml").path, host: configuration))
        return (tools, log)
    }

    /// The client's end of an in-process stdio session: it writes lines to the server and reads the server's messages.
    final class Client: @unchecked Sendable {
        let toServer: Int32
        let fromServer: Int32
        private var buffer = Data()

        init(toServer: Int32, fromServer: Int32) {
            self.toServer = toServer
            self.fromServer = fromServer
        }

        func send(_ line: String) {
            let bytes = Array((line + "\n").utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(toServer, $0.baseAddress, $0.count) }
                guard written > 0 else { return }
                offset += written
            }
        }

        /// The server's next message, or `nil` when none came within `seconds` (or the server's end closed).
        func next(seconds: TimeInterval) -> [String: Any]? {
            let started = Date()
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer = Data(buffer[(newline + 1)...])
                    if let message = try? JSONSerialization.jsonObject(with: line) as? [String: Any] { return message }
                    continue
                }
                let left = seconds - Date().timeIntervalSince(started)
                guard left > 0 else { return nil }
                var descriptor = pollfd(fd: fromServer, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, Int32(left * 1000)) > 0 else { continue }
                let count = read(fromServer, &chunk, chunk.count)
                guard count > 0 else { return nil }
                buffer += chunk[0..<count]
            }
        }

        /// Reads the server's messages until one satisfies `wanted` (returned) or ``bound`` seconds passed (`nil`);
        /// every message read is added to `seen`.
        func until(_ seen: inout [[String: Any]], _ wanted: ([String: Any]) -> Bool) -> [String: Any]? {
            let started = Date()
            while Date().timeIntervalSince(started) < McpApprovalReleaseTests.bound {
                guard let message = next(seconds: McpApprovalReleaseTests.bound - Date().timeIntervalSince(started)) else {
                    return nil
                }
                seen.append(message)
                if wanted(message) { return message }
            }
            return nil
        }
    }

    /// The JSON text of a message's `id` (a string with its quotes, or a number), or `nil`.
    static func idJSON(_ value: Any?) -> String? {
        if let string = value as? String { return RequestID.quoted(string) }
        if let number = value as? Int { return String(number) }
        return nil
    }

    /// The answer of a client that approves: `accept` with `approve: true`, under the question id spelled `id`.
    static func approve(_ id: String) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"result":{"action":"accept","content":{"approve":true}}}"#
    }

    /// What one session did, for the test's checks.
    struct Session: Sendable {
        var failure: String?
        /// The open questions counted after each round gave up (polled until 0, or ``bound``).
        var openAfterRounds: [Int] = []
        /// The question ids the server asked, in order (JSON text).
        var questions: [String] = []
        /// Those of the rounds the client left unanswered (all but the last).
        var abandoned: [String] = []
        /// The question ids the server sent `notifications/cancelled` for (JSON text).
        var cancelled: [String] = []
        /// The text of each call's answer.
        var answers: [String] = []
    }

    /// Runs rounds of a call whose approval the client leaves unanswered until it gives up; then, for the last call,
    /// the client answers an earlier, abandoned question with `accept` while the call waits for its own.
    static func unansweredRounds(_ client: Client, tools: ToolServer, rounds: Int) -> Session {
        var session = Session()
        var seen: [[String: Any]] = []
        client.send(McpApprovalInputEndTests.initialize)
        guard client.until(&seen, { $0["id"] as? Int == 1 }) != nil else {
            session.failure = "no answer to initialize"
            return session
        }
        client.send(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        for round in 0...rounds {
            let callID = 100 + round
            client.send(#"{"jsonrpc":"2.0","id":\#(callID),"method":"tools/call","params":{"name":"guarded","arguments":{"input":"data/hello.txt"}}}"#)
            let isAnswer = { (message: [String: Any]) -> Bool in message["id"] as? Int == callID }
            // The question, or (on a machine so loaded that the approval gave up before the question was written, which
            // is then never sent) the call's answer.
            guard let first = client.until(&seen, { $0["method"] as? String == "elicitation/create" || isAnswer($0) }) else {
                session.failure = "round \(round): neither an approval question nor the call's answer"
                return session
            }
            let questionID = isAnswer(first) ? nil : idJSON(first["id"])
            if let questionID {
                session.questions.append(questionID)
                if round < rounds { session.abandoned.append(questionID) }
            }
            if round == rounds, let earlier = session.abandoned.first {
                // A late answer to an abandoned question, while another waits: it must approve nothing.
                client.send(approve(earlier))
            }
            guard let answer = isAnswer(first) ? first : client.until(&seen, isAnswer) else {
                session.failure = "round \(round): the call was not answered"
                return session
            }
            let result = answer["result"] as? [String: Any]
            session.answers.append(((result?["content"] as? [[String: Any]])?.first?["text"] as? String) ?? "\(answer)")
            if round < rounds {
                // The server has given up on the question: it no longer holds it.
                let started = Date()
                while tools.openElicitations > 0 && Date().timeIntervalSince(started) < releaseBound { usleep(10_000) }
                session.openAfterRounds.append(tools.openElicitations)
                // The client is told of each question given up (MCP cancellation), before or after the call's answer.
                let told = { (message: [String: Any]) -> Bool in
                    let params = message["params"] as? [String: Any]
                    return message["method"] as? String == "notifications/cancelled" && idJSON(params?["requestId"]) == questionID
                }
                if questionID != nil && !seen.contains(where: told) { _ = client.until(&seen, told) }
            }
        }
        session.cancelled = seen.compactMap { message in
            guard message["method"] as? String == "notifications/cancelled" else { return nil }
            return idJSON((message["params"] as? [String: Any])?["requestId"])
        }
        return session
    }

    /// Runs `body` on a thread of its own (it blocks on pipes; the in-process server needs the shared pool).
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.start()
        }
    }

    @Test func anApprovalThatGivesUpReleasesItsQuestionAndALateAnswerApprovesNothing() async throws {
        try await withTemporaryDirectory { directory in
            let (tools, log) = try Self.guarded(in: directory)
            defer { try? log.close() }
            let toServer = try StdioBackpressureTests.Pipe(), fromServer = try StdioBackpressureTests.Pipe()
            defer { toServer.close(); fromServer.close() }
            let transport = StdioLineTransport(input: toServer.read, output: fromServer.write, maxMessageBytes: 1 << 20)
            // At high priority: Swift's global executor keeps a queue per priority, so the server's jobs (and the tasks
            // the SDK starts from them, which inherit the priority) do not wait behind the hundreds of other tests'
            // jobs queued at the default priority; in a full suite on a slow 2-core VM they once waited past `bound`.
            let serving = Task(priority: .high) { try await tools.serve(transport: transport, answerGrace: .seconds(1)) }
            let client = Client(toServer: toServer.write, fromServer: fromServer.read)
            let rounds = 3
            let session = await Self.offPool { Self.unansweredRounds(client, tools: tools, rounds: rounds) }
            toServer.closeWrite()
            _ = try? await serving.value

            #expect(session.failure == nil, "\(session.failure ?? "")")
            // Each abandoned question was released: none is held after its approval gave up.
            #expect(session.openAfterRounds == Array(repeating: 0, count: rounds),
                    "questions still held after each round: \(session.openAfterRounds)")
            // And the client was told of each, under the question's own id.
            #expect(!session.abandoned.isEmpty, "no approval question was asked")
            #expect(Set(session.abandoned).isSubset(of: Set(session.cancelled)),
                    "asked \(session.abandoned), cancelled \(session.cancelled)")
            #expect(Set(session.questions).count == session.questions.count, "question ids repeat: \(session.questions)")
            // The late `accept` of an abandoned question approved nothing: every read was refused for want of an answer.
            let entries = (try? String(contentsOf: directory.appendingPathComponent("audit.jsonl"), encoding: .utf8))?
                .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? []
            let decisions = entries.filter { $0["call"] as? String == "fs.read" && $0["decision"] != nil }
            #expect(decisions.count == rounds + 1, "fs.read decisions: \(decisions)")
            for decision in decisions {
                let details = decision["details"] as? [String: Any]
                #expect(decision["decision"] as? String == "deny" && details?["approval"] as? String == "timeout", "\(decision)")
            }
            #expect(!session.answers.contains { $0.contains("hello from a granted file") }, "\(session.answers)")
        }
    }

    /// The JSON-RPC messages in the `data:` lines of an event stream's bytes so far.
    static func events(_ bytes: Data) -> [[String: Any]] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard line.hasPrefix("data:") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.dropFirst(5).utf8)) as? [String: Any]
        }
    }

    /// Reads `fd` (a socket with a receive timeout) into `bytes` until its events hold one satisfying `wanted`, the
    /// connection ends, or ``bound`` seconds passed; that event, or `nil`.
    static func readEvents(_ fd: Int32, into bytes: inout Data, until wanted: ([String: Any]) -> Bool) -> [String: Any]? {
        let started = Date()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let event = events(bytes).first(where: wanted) { return event }
            guard Date().timeIntervalSince(started) < bound else { return nil }
            let count = read(fd, &chunk, chunk.count)
            if count == 0 { return nil }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return nil
            }
            bytes += chunk[0..<count]
        }
    }

    /// What one HTTP session did, for the test's checks.
    struct HTTPSession: Sendable {
        var failure: String?
        var openAfter = -1
        var question: String?
        var cancelled = false
        var answer = ""
    }

    /// Over HTTP (where a session lasts as long as its client keeps it): a call whose approval question the client
    /// leaves unanswered gives up, and the server no longer holds the question; the client, which reads the session's
    /// event stream (GET), is sent `notifications/cancelled` for it.
    @Test func overHTTPAnApprovalThatGivesUpReleasesItsQuestion() async throws {
        try await withTemporaryDirectory { directory in
            let (tools, log) = try Self.guarded(in: directory)
            defer { try? log.close() }
            let (listener, port) = try await HTTPRequestRefusalTests.listener(tools)
            defer { Task { await listener.close() } }
            let run = await Self.offPool { () -> HTTPSession in
                var run = HTTPSession()
                let opened = HTTPRequestRefusalTests.roundTrip(port, HTTPRequestRefusalTests.post(port, session: nil, McpApprovalInputEndTests.initialize))
                guard let line = opened.head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("mcp-session-id:") }) else {
                    run.failure = "no session: \(opened.head)"
                    return run
                }
                let session = line.dropFirst("mcp-session-id:".count).trimmingCharacters(in: .whitespaces)
                _ = HTTPRequestRefusalTests.roundTrip(port, HTTPRequestRefusalTests.post(
                    port, session: session, #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#))
                // The session's own event stream, where the server's questions come.
                let stream = HTTPListenerLimitTests.connect(port, timeout: 1)
                let caller = HTTPListenerLimitTests.connect(port, timeout: 1)
                guard stream >= 0, caller >= 0 else {
                    run.failure = "no connection"
                    return run
                }
                defer { close(stream); close(caller) }
                let get = "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
                    + "Mcp-Session-Id: \(session)\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
                _ = get.withCString { write(stream, $0, strlen($0)) }
                let call = #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"guarded","arguments":{"input":"data/hello.txt"}}}"#
                _ = HTTPRequestRefusalTests.post(port, session: session, call).withCString { write(caller, $0, strlen($0)) }
                var streamed = Data(), answered = Data()
                guard let question = Self.readEvents(stream, into: &streamed, until: { $0["method"] as? String == "elicitation/create" }) else {
                    run.failure = "no approval question: \(String(decoding: streamed, as: UTF8.self))"
                    return run
                }
                run.question = Self.idJSON(question["id"])
                let answer = Self.readEvents(caller, into: &answered) { $0["id"] as? Int == 7 }
                let result = answer?["result"] as? [String: Any]
                run.answer = ((result?["content"] as? [[String: Any]])?.first?["text"] as? String) ?? "\(String(describing: answer))"
                let started = Date()
                while tools.openElicitations > 0 && Date().timeIntervalSince(started) < Self.releaseBound { usleep(10_000) }
                run.openAfter = tools.openElicitations
                run.cancelled = Self.readEvents(stream, into: &streamed) { event in
                    event["method"] as? String == "notifications/cancelled"
                        && Self.idJSON((event["params"] as? [String: Any])?["requestId"]) == run.question
                } != nil
                return run
            }
            #expect(run.failure == nil, "\(run.failure ?? "")")
            #expect(run.question != nil)
            #expect(run.openAfter == 0, "questions still held after the approval gave up: \(run.openAfter)")
            #expect(run.cancelled, "no notifications/cancelled for question \(run.question ?? "none")")
            #expect(!run.answer.contains("hello from a granted file"), "\(run.answer)")
        }
    }

    /// An approval that gives up before the SDK has written its question: the question is never sent, and the SDK is
    /// answered for it (an error under its id) as it tries to send it; the question is then forgotten when the SDK's
    /// wait ends. Other messages pass.
    @Test func aQuestionGivenUpBeforeItIsWrittenIsNotSentAndItsWaitIsAnswered() throws {
        let total = OpenElicitationCount()
        let pending = PendingElicitations(total: total)
        let delivered = Mutex<[Data]>([])
        pending.setDelivery { data in
            delivered.withLock { $0.append(data) }
            return true
        }
        let token = pending.open()
        #expect(pending.abandon(token, reason: "call cancelled") == nil)
        let question = Data(#"{"id":"q-1","jsonrpc":"2.0","method":"elicitation/create","params":{"_meta":{"peon-wasm/approval":"\#(token)"},"message":"m","requestedSchema":{}}}"#.utf8)
        #expect(!pending.outgoing(question))
        let answers = delivered.withLock { $0 }
        #expect(answers.count == 1)
        let answer = try answers.first.map { try JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? nil
        #expect(answer?["id"] as? String == "q-1" && answer?["error"] != nil, "\(String(describing: answer))")
        // Every other message is sent.
        #expect(pending.outgoing(Data(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"q-1"}}"#.utf8)))
        pending.close(token)
        #expect(pending.count == 0 && total.value.load(ordering: .relaxed) == 0)
    }
}
