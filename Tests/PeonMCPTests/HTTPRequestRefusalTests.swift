import Foundation
import PeonAudit
import PeonEngine
import PeonEngineWasmKit
@testable import PeonMCP
import PeonRuntime
import PeonTestSupport
import Testing

/// Threat: an HTTP client (hostile, or just buggy) that POSTs what the MCP SDK cannot read as a JSON-RPC message, or
/// reuses the id of a request still running. A JSON object the SDK's transport took for a request (a string `method`
/// and an id) but its server could not decode was answered by nobody when the server read it as an answer (a `result`
/// or `error` beside the `method`) or could not read its id back (a `data:` string, answered under a random id): its
/// event stream stayed open until the 120 s idle close and its id stayed taken, so a client could hold streams and ids
/// without end (seen: 30 s without an answer, then the id refused as in flight). The others (no `"jsonrpc":"2.0"`)
/// got a `200` event stream with a parse error, and an answer without `jsonrpc` got `202` and an error the server
/// sent under its id, to whichever request of the session had it. Each such message is now refused at once (400, a
/// JSON-RPC error under its id when it has a valid one), before the SDK sees it.
// Serialized, with every blocking socket wait on a thread of its own (as in `HTTPListenerLimitTests`).
@Suite(.serialized) struct HTTPRequestRefusalTests {
    /// A whole HTTP response, read until the server closed the connection or the socket's receive timeout passed.
    struct Reply: Sendable {
        /// The status line and the headers.
        var head = ""
        /// What followed the headers (chunk sizes included, for an event stream).
        var body = ""
        /// How long the exchange took.
        var seconds = 0.0
        /// Whether the server closed the connection (`false`: the read timed out with the response unfinished).
        var complete = false

        /// The status code, or 0 when no status line came.
        var status: Int {
            Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        }

        /// The body as one JSON object (a plain JSON-RPC error response).
        var json: [String: Any]? {
            try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        }

        /// The JSON-RPC messages of an event stream (its `data:` lines, the empty priming event left out).
        var events: [[String: Any]] {
            body.split(separator: "\n").compactMap { line in
                guard line.hasPrefix("data:") else { return nil }
                return try? JSONSerialization.jsonObject(with: Data(line.dropFirst(5).utf8)) as? [String: Any]
            }
        }
    }

    /// The JSON spelling of a message's `id`: `7`, `"7"`, `null`, or `absent`.
    static func idSpelling(_ message: [String: Any]?) -> String {
        guard let message, let id = message["id"] else { return "absent" }
        if id is NSNull { return "null" }
        if let string = id as? String { return RequestID.quoted(string) }
        if let number = id as? Int { return String(number) }
        return "unexpected \(id)"
    }

    /// The JSON-RPC error code of a message, or `nil`.
    static func errorCode(_ message: [String: Any]?) -> Int? {
        (message?["error"] as? [String: Any])?["code"] as? Int
    }

    /// A POST of `body` (to session `session` when given), closing the connection after the answer.
    static func post(_ port: Int, session: String?, _ body: String) -> String {
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
            + "Accept: application/json, text/event-stream\r\n"
            + (session.map { "Mcp-Session-Id: \($0)\r\nMCP-Protocol-Version: 2025-06-18\r\n" } ?? "")
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }

    /// Reads from `fd` into `reply` until the server closes the connection (`complete`) or a read times out; with
    /// `untilHead`, only until the headers have arrived.
    static func read(_ fd: Int32, into reply: inout Reply, untilHead: Bool = false) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var bytes = Array((reply.head.isEmpty ? "" : reply.head + "\r\n\r\n" + reply.body).utf8)
        while true {
            if untilHead, String(decoding: bytes, as: UTF8.self).contains("\r\n\r\n") { break }
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count == 0 { reply.complete = true }
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if let end = text.range(of: "\r\n\r\n") {
            reply.head = String(text[..<end.lowerBound])
            reply.body = String(text[end.upperBound...])
        } else {
            reply.head = text
        }
    }

    /// Sends `request` on a new connection and reads the whole answer (the server closes the connection after it).
    static func roundTrip(_ port: Int, _ request: String) -> Reply {
        let started = Date()
        var reply = Reply()
        let fd = HTTPListenerLimitTests.connect(port, timeout: 60)
        guard fd >= 0 else { return reply }
        defer { close(fd) }
        _ = request.withCString { write(fd, $0, strlen($0)) }
        read(fd, into: &reply)
        reply.seconds = Date().timeIntervalSince(started)
        return reply
    }

    /// The most seconds a refusal may take: well under the 120 s idle close that ended the streams nobody answered
    /// (a read gives up after 60 s), and generous, for a machine loaded many times past its cores (a suite run beside
    /// other builds took over 10 s to answer one request).
    static let prompt = 30.0

    /// A listener with no tools on a free loopback port, and its port.
    static func listener(_ tools: ToolServer = ToolServer(maxConcurrent: 4, version: "test")) async throws -> (HTTPToolListener, Int) {
        let listener = HTTPToolListener(tools: tools, host: "127.0.0.1", port: 0, maxMessageBytes: 1 << 20)
        let bound = try await listener.start()
        return (listener, bound.port)
    }

    /// Opens a session (initialize, then `notifications/initialized`); its id, or `nil`.
    static func openSession(_ port: Int) -> String? {
        guard let session = HTTPListenerLimitTests.initialize(port) else { return nil }
        _ = roundTrip(port, post(port, session: session, #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#))
        return session
    }

    /// JSON objects the SDK's transport reads as a request (a string `method` and an id), a notification or an
    /// answer, that its server cannot decode as that (or decodes as another kind), each with the id its refusal must
    /// carry.
    static let undecodable: [(body: String, id: String)] = [
        (#"{"id":5,"method":"ping"}"#, "5"),                                    // no jsonrpc
        (#"{"jsonrpc":"1.0","id":"five","method":"ping"}"#, #""five""#),        // another version
        (#"{"jsonrpc":2.0,"id":51,"method":"ping"}"#, "51"),                     // the version as a number
        // An id the SDK's server reads back as binary data: it answered under a random id, and the stream hung.
        (#"{"jsonrpc":"1.0","id":"data:text/plain,hi","method":"ping"}"#, #""data:text/plain,hi""#),
        (#"{"jsonrpc":"2.0","id":6,"method":7}"#, "6"),                          // a method that is a number
        (#"{"jsonrpc":"2.0","id":8,"method":"ping","result":{}}"#, "8"),        // a request and an answer at once
        (#"{"jsonrpc":"2.0","id":9,"method":"ping","error":{"code":1,"message":"x"}}"#, "9"),
        (#"{"id":10,"result":{}}"#, "10"),                                      // an answer without jsonrpc
        (#"{"jsonrpc":"3","method":"notifications/x","params":{}}"#, "null"),   // a notification of another version
        (#"{"jsonrpc":"2.0","result":{}}"#, "null"),                             // an answer without an id
        (#"{"jsonrpc":"2.0"}"#, "null"),                                         // nothing to do
        (#"{"jsonrpc":"2.0","id":"x"}"#, #""x""#),                               // an id and nothing else
        ("42", "null"),                                                          // JSON, not an object
        (#""ping""#, "null"),
        // Nested past JSONRPCScreen.maxNesting (and, at 513 levels, past what the SDK's decoding takes, which it
        // answered as its own "Internal error" -32603): refused before any JSON reader, under no id.
        (#"{"jsonrpc":"2.0","id":12,"method":"ping","params":{"x":"# + String(repeating: "[", count: 511)
            + String(repeating: "]", count: 511) + "}}", "null"),
        // A member named twice: Foundation and the SDK keep the first, Python and JavaScript the last, so a gateway
        // checking the tool's name saw another tool than the one that ran. Refused under the id (if that is not it).
        (#"{"jsonrpc":"2.0","id":93,"method":"tools/call","params":{"name":"echo","name":"other","arguments":{}}}"#, "93"),
        (#"{"jsonrpc":"2.0","id":91,"id":92,"method":"ping"}"#, "null"),
        (#"{"jsonrpc":"2.0","id":94,"method":"ping","params":{"_meta":{"a":1,"\u0061":2}}}"#, "94"),
        // A second initialize of a session: the SDK's HTTP transport refused it under `id: null`, its id readable.
        (#"{"jsonrpc":"2.0","id":95,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"again","version":"1"}}}"#, "95"),
    ]

    @Test func aMessageTheSDKCannotDecodeIsRefusedAtOnceAndItsIDStaysFree() async throws {
        let (listener, port) = try await Self.listener()
        defer { Task { await listener.close() } }
        let results: [(String, String, Reply, Reply?)] = await HTTPListenerLimitTests.offPool {
            guard let session = Self.openSession(port) else { return [] }
            return Self.undecodable.map { body, id in
                let refused = Self.roundTrip(port, Self.post(port, session: session, body))
                // The id the refusal names is free: a valid request with it is answered.
                let again = id == "null" ? nil
                    : Self.roundTrip(port, Self.post(port, session: session, #"{"jsonrpc":"2.0","id":\#(id),"method":"ping"}"#))
                return (body, id, refused, again)
            }
        }
        try #require(results.count == Self.undecodable.count, "no session")
        for (body, id, refused, again) in results {
            #expect(refused.complete && refused.seconds < Self.prompt,
                    "\(body): answered after \(refused.seconds) s, complete: \(refused.complete): \(refused.head)")
            #expect(refused.status == 400, "\(body): \(refused.head)")
            #expect(Self.errorCode(refused.json) == JSONRPCScreen.invalidRequestCode, "\(body): \(refused.body)")
            #expect(Self.idSpelling(refused.json) == id, "\(body): \(refused.body)")
            #expect(refused.json?["jsonrpc"] as? String == "2.0", "\(body): \(refused.body)")
            if let again {
                #expect(again.status == 200 && again.complete, "\(body): the id \(id) afterwards: \(again.head)")
                let answer = again.events.first { Self.idSpelling($0) == id }
                #expect(answer?["result"] != nil, "\(body): no answer to a ping with the id \(id) afterwards: \(again.body)")
            }
        }
    }

    @Test func textThatIsNotJSONIsAParseErrorAndABatchIsRefused() async throws {
        let (listener, port) = try await Self.listener()
        defer { Task { await listener.close() } }
        let cases: [(body: String, code: Int)] = [
            (#"{"jsonrpc":"2.0","id":1,"method":"ping""#, -32700),
            ("not json", -32700),
            (#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, JSONRPCScreen.invalidRequestCode),
            ("[]", JSONRPCScreen.invalidRequestCode),
        ]
        let replies: [(String, Int, Reply, Reply)] = await HTTPListenerLimitTests.offPool {
            guard let session = Self.openSession(port) else { return [] }
            return cases.map { body, code in
                // Inside a session, and without one.
                (body, code, Self.roundTrip(port, Self.post(port, session: session, body)),
                 Self.roundTrip(port, Self.post(port, session: nil, body)))
            }
        }
        try #require(replies.count == cases.count, "no session")
        for (body, code, inSession, sessionless) in replies {
            for reply in [inSession, sessionless] {
                #expect(reply.complete && reply.seconds < Self.prompt, "\(body): answered after \(reply.seconds) s: \(reply.head)")
                #expect(reply.status == 400, "\(body): \(reply.head)")
                #expect(Self.errorCode(reply.json) == code, "\(body): \(reply.body)")
                #expect(Self.idSpelling(reply.json) == "null", "\(body): \(reply.body)")
            }
            if code == JSONRPCScreen.invalidRequestCode {
                #expect(inSession.body.contains("batches are not supported"), "\(body): \(inSession.body)")
            }
        }
        #expect(await listener.openSessions() == 1)
    }

    /// A tool server with one tool, `dozer` (sleeps until its timeout of `timeout`, or until it is stopped), the tool,
    /// and the audit log it writes in `directory`.
    /// What an in-process tool server's tools run with: WasmKit, and an audit log and key of their own in `directory`
    /// (which is also the working directory).
    static func toolHost(in directory: URL) throws -> (ToolHostConfiguration, AuditLog) {
        var options = SessionOptions()
        options.auditPath = directory.appendingPathComponent("audit.jsonl").path
        options.auditKeyPath = directory.appendingPathComponent("audit.key").path
        options.workingDirectory = directory.path
        let log = try AgentSession.openAudit(options)
        let configuration = ToolHostConfiguration(
            audit: log, options: options, overrides: LimitOverrides(),
            engine: { (fuel: Bool) throws(RunError) -> any WasmEngine in WasmKitEngine(fuelMetering: fuel) })
        return (configuration, log)
    }

    static func dozer(in directory: URL, timeout: String) throws -> (ToolServer, ToolService, AuditLog) {
        let fixture = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/sleeper.wat").path
        let grants = directory.appendingPathComponent("dozer.toml")
        try Data("""
            module = "dozer"
            [limits]
            timeout = "\(timeout)"
            [tool]
            wasm = "\(fixture)"
            description = "Sleeps until its timeout."

            """.utf8).write(to: grants)
        let (configuration, log) = try Self.toolHost(in: directory)
        let tools = ToolServer(maxConcurrent: 4, version: "test")
        let service = try ToolService(grantsPath: grants.path, host: configuration)
        tools.add(service)
        return (tools, service, log)
    }

    /// A request with exactly the id of one still running in its session (the same spelling, not only the same text)
    /// is refused at once, under its id, and never runs; the running call still gets its own answer under that id, and
    /// the id is free once it has.
    @Test func anExactDuplicateOfARunningCallsIDIsRefusedAndTheFirstStillGetsItsAnswer() async throws {
        try await withTemporaryDirectory { directory in
            // The first call runs until the test stops it, however slow the machine: the duplicate must meet it running.
            let (tools, dozer, log) = try Self.dozer(in: directory, timeout: "120s")
            defer { try? log.close() }
            let (listener, port) = try await Self.listener(tools)
            defer { Task { await listener.close() } }
            let call = #"{"jsonrpc":"2.0","id":"job-1","method":"tools/call","params":{"name":"dozer","arguments":{"input":""}}}"#
            let (first, duplicate, reuse) = await HTTPListenerLimitTests.offPool { () -> (Reply, Reply, Reply) in
                guard let session = Self.openSession(port) else { return (Reply(), Reply(), Reply()) }
                var first = Reply()
                let fd = HTTPListenerLimitTests.connect(port, timeout: 60)
                guard fd >= 0 else { return (first, Reply(), Reply()) }
                defer { close(fd) }
                _ = Self.post(port, session: session, call).withCString { write(fd, $0, strlen($0)) }
                // The event stream's head: the router took the id before the SDK answered with it.
                Self.read(fd, into: &first, untilHead: true)
                // And the call runs.
                let deadline = ContinuousClock.now + .seconds(60)
                while dozer.runningCalls == 0 && ContinuousClock.now < deadline { usleep(10_000) }
                let duplicate = Self.roundTrip(port, Self.post(port, session: session, call))
                // Stopped (as on SIGTERM), the first call answers.
                dozer.stopCalls(signal: "TERM")
                Self.read(fd, into: &first)
                let reuse = Self.roundTrip(port, Self.post(port, session: session, #"{"jsonrpc":"2.0","id":"job-1","method":"ping"}"#))
                return (first, duplicate, reuse)
            }
            #expect(duplicate.complete && duplicate.seconds < Self.prompt, "the duplicate was answered after \(duplicate.seconds) s")
            #expect(duplicate.status == 400, "the duplicate: \(duplicate.head)")
            #expect(Self.errorCode(duplicate.json) == JSONRPCScreen.invalidRequestCode, "the duplicate: \(duplicate.body)")
            #expect(Self.idSpelling(duplicate.json) == #""job-1""#, "the duplicate: \(duplicate.body)")
            let message = (duplicate.json?["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("not used before"), "the duplicate: \(message)")
            // The first call's own answer, under its id: stopped.
            #expect(first.status == 200 && first.complete, "the first call: \(first.head)")
            let answers = first.events.filter { $0["result"] != nil || $0["error"] != nil }
            #expect(answers.count == 1 && Self.idSpelling(answers.first) == #""job-1""#, "the first call's answers: \(first.body)")
            let result = answers.first?["result"] as? [String: Any]
            let text = ((result?["content"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
            #expect(result?["isError"] as? Bool == true && text.contains("the call was stopped"), "the first call's answer: \(first.body)")
            // Answered: the id is free again.
            #expect(reuse.status == 200 && reuse.events.contains { Self.idSpelling($0) == #""job-1""# && $0["result"] != nil },
                    "job-1 after its answer: \(reuse.head) \(reuse.body)")
            // The duplicate never ran: one run.start in the log.
            let entries = (try? String(contentsOf: directory.appendingPathComponent("audit.jsonl"), encoding: .utf8)) ?? ""
            #expect(entries.components(separatedBy: #""call":"run.start""#).count - 1 == 1, "\(entries)")
        }
    }
}
