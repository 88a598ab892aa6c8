import Foundation
@testable import PeonMCP
import PeonTestSupport
import Testing

/// Threat: a client that skips MCP's lifecycle or sends params a method cannot take. The SDK ran a `tools/call` sent
/// before `initialize` (its `run.start` named the client `unknown`, which the log could not tell from a client of that
/// name), took an `initialize` without `clientInfo`, answered params it could not decode with its own "Internal
/// error" (-32603) where JSON-RPC 2.0 says "Invalid params" (-32602), and ignored a `tools/list` cursor it never gave.
@Suite struct McpLifecycleTests {
    /// Runs `peon-wasm mcp echo.toml` over stdio with `lines`, then closes its input; the messages it wrote and the
    /// log's entries.
    static func serve(_ lines: [String]) throws -> (messages: [[String: Any]], entries: [[String: Any]], result: CommandResult) {
        try withTemporaryDirectory { directory in
            try writeEchoGrants(in: directory, textSchema: false)
            let log = directory.appendingPathComponent("audit.jsonl").path
            let result = try runPeonWasm(["mcp", "--audit", log, "--audit-key", directory.appendingPathComponent("k").path, "echo.toml"],
                                         stdin: lines.joined(separator: "\n") + "\n", directory: directory, timeout: 60)
            let messages = result.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let entries = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return (messages, entries, result)
        }
    }

    static let initialize = #"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tester","version":"1"}}}"#
    static let initialized = #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#

    static func answer(_ messages: [[String: Any]], _ id: String) -> [String: Any]? {
        messages.first { HTTPRequestRefusalTests.idSpelling($0) == id }
    }

    static func errorCode(_ message: [String: Any]?) -> Int? {
        (message?["error"] as? [String: Any])?["code"] as? Int
    }

    @Test func aRequestBeforeInitializeIsRefusedAndRunsNothingButPingIsAnswered() throws {
        let (messages, entries, result) = try Self.serve([
            #"{"jsonrpc":"2.0","id":"early","method":"tools/call","params":{"name":"echo","arguments":{"input":"x"}}}"#,
            #"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#,
            #"{"jsonrpc":"2.0","id":"ping","method":"ping"}"#,
            Self.initialize, Self.initialized,
            #"{"jsonrpc":"2.0","id":"late","method":"tools/call","params":{"name":"echo","arguments":{"input":"y"}}}"#,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        for id in [#""early""#, #""list""#] {
            let refused = Self.answer(messages, id)
            #expect(Self.errorCode(refused) == JSONRPCScreen.invalidRequestCode, "\(id): \(result.stdout)")
            #expect(((refused?["error"] as? [String: Any])?["message"] as? String)?.contains("send initialize first") == true)
        }
        #expect(Self.answer(messages, #""ping""#)?["result"] != nil, "\(result.stdout)")
        #expect(Self.answer(messages, #""init""#)?["result"] != nil, "\(result.stdout)")
        let late = Self.answer(messages, #""late""#)?["result"] as? [String: Any]
        #expect(late?["isError"] as? Bool == false, "\(result.stdout)")
        // One run: the call after initialize, under the client's name.
        let starts = entries.filter { $0["call"] as? String == "run.start" }
        #expect(starts.count == 1, "\(starts)")
        #expect((starts.first?["details"] as? [String: Any])?["mcp_client"] as? String == "tester", "\(starts)")
    }

    @Test("params a method cannot take are Invalid params (-32602) under the request's id", arguments: [
        #"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5,"capabilities":{},"clientInfo":{"name":"a","version":"1"}}}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":[],"clientInfo":{"name":"a","version":"1"}}}"#,
    ])
    func aBadInitializeIsInvalidParams(_ line: String) throws {
        let (messages, _, result) = try Self.serve([line])
        #expect(Self.errorCode(Self.answer(messages, "1")) == JSONRPCScreen.invalidParamsCode, "\(result.stdout)")
    }

    @Test("tools/call and tools/list params that do not fit are Invalid params", arguments: [
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call"}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{}}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":5}}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"echo","arguments":"str"}}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"echo","arguments":[1]}}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":"echo"}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/list","params":{"cursor":"bogus"}}"#,
        #"{"jsonrpc":"2.0","id":31,"method":"tools/list","params":{"cursor":5}}"#,
    ])
    func badToolParamsAreInvalidParams(_ line: String) throws {
        let (messages, entries, result) = try Self.serve([Self.initialize, Self.initialized, line,
                                                          #"{"jsonrpc":"2.0","id":32,"method":"tools/list","params":{}}"#])
        #expect(Self.errorCode(Self.answer(messages, "31")) == JSONRPCScreen.invalidParamsCode, "\(result.stdout)")
        #expect(Self.answer(messages, "32")?["result"] != nil, "the server reads on: \(result.stdout)")
        #expect(!entries.contains { $0["call"] as? String == "run.start" })
    }

    /// A request reusing the id of one still in flight is refused under that id (MCP: ids "MUST NOT" be reused); the
    /// first keeps running and a cancellation of the id stops it. The SDK took both, and a cancellation then stopped
    /// one of them, or neither.
    @Test func aRequestReusingAnInFlightIDIsRefused() throws {
        try withTemporaryDirectory { directory in
            let fixture = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/sleeper.wat").path
            try Data("module = \"sleeper\"\n[limits]\ntimeout = \"20s\"\n[tool]\nwasm = \"\(fixture)\"\ndescription = \"sleeps\"\n".utf8)
                .write(to: directory.appendingPathComponent("sleeper.toml"))
            let call = #"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sleeper","arguments":{"input":"a"}}}"#
            let lines = [Self.initialize, Self.initialized, call, call, #"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
                         #"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#]
            let log = directory.appendingPathComponent("audit.jsonl").path
            let started = ContinuousClock.now
            let result = try runPeonWasm(["mcp", "--audit", log, "--audit-key", directory.appendingPathComponent("k").path, "sleeper.toml"],
                                         stdin: lines.joined(separator: "\n") + "\n", directory: directory, timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            let messages = result.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let answers = messages.filter { HTTPRequestRefusalTests.idSpelling($0) == "5" }
            // The second call and the ping are refused; the first, cancelled, gets no answer (as MCP says).
            #expect(answers.count == 2, "\(result.stdout)")
            #expect(answers.allSatisfy { Self.errorCode($0) == JSONRPCScreen.invalidRequestCode }, "\(result.stdout)")
            let entries = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let ends = entries.filter { $0["call"] as? String == "run.end" }.map { $0["outcome"] as? String ?? "" }
            // Cancelled before or after its run started (the cancellation may overtake it): either way it did not
            // run on to its 20 s deadline, and it has at most one run.end, `cancelled`.
            #expect(ends.count <= 1 && ends.allSatisfy { $0 == "cancelled" }, "\(ends)")
            #expect(ContinuousClock.now - started < .seconds(15), "the cancellation did not stop the call")
        }
    }

    /// A call sent right behind `initialize`, before its answer, ran (1 in 4) before the SDK had taken the client's name,
    /// and its run recorded `mcp_client: unknown`: it now waits for the `initialize` answer.
    @Test func aCallPipelinedBehindInitializeRunsUnderTheClientsName() throws {
        for round in 0..<30 {
            let (_, entries, result) = try Self.serve([
                Self.initialize, Self.initialized,
                #"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"echo","arguments":{"input":"y"}}}"#,
            ])
            let clients = entries.filter { $0["call"] as? String == "run.start" }.map { ($0["details"] as? [String: Any])?["mcp_client"] as? String }
            #expect(clients == ["tester"], "round \(round): \(clients) \(result.stderr)")
        }
    }

    /// An `initialize` the SDK cannot decode (a capability of the wrong type) was answered "Internal error", and the
    /// calls after it ran as client `unknown`. It is `Invalid params`, and no call runs on the session.
    @Test func anInitializeTheSDKRefusesOpensNothing() throws {
        let (messages, entries, result) = try Self.serve([
            #"{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":"yes"}},"clientInfo":{"name":"evil","version":"1"}}}"#,
            #"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"echo","arguments":{"input":"x"}}}"#,
        ])
        #expect(Self.errorCode(Self.answer(messages, #""i""#)) == JSONRPCScreen.invalidParamsCode, "\(result.stdout)")
        #expect(Self.errorCode(Self.answer(messages, #""c1""#)) == JSONRPCScreen.invalidRequestCode, "\(result.stdout)")
        #expect(!entries.contains { $0["call"] as? String == "run.start" }, "a call ran")
    }
}
