import Foundation
import MCP
@testable import PeonMCP
import PeonTestSupport
import Testing

/// Threat: a client (or the model behind it) sends a tool arguments its declared schema does not allow, and the module
/// gets them anyway: MCP says servers "MUST validate all tool inputs", and the server passed `{}` for a schema with
/// `required: ["text"]` and `{"text": 5}` for a string straight to the module.
@Suite struct ToolInputSchemaTests {
    static func schema(_ json: String) throws -> Value {
        try JSONDecoder().decode(Value.self, from: Data(json.utf8))
    }

    static func value(_ json: String) throws -> Value {
        try JSONDecoder().decode(Value.self, from: Data(json.utf8))
    }

    static let textSchema = #"{"type":"object","properties":{"text":{"type":"string","maxLength":5},"n":{"type":"integer","minimum":1,"maximum":3},"mode":{"enum":["a","b"]},"tags":{"type":"array","items":{"type":"string"},"maxItems":2}},"required":["text"],"additionalProperties":false}"#

    @Test("arguments that do not fit are refused with where and why", arguments: [
        (#"{}"#, "arguments lacks the required member 'text'"),
        (#"{"text":5}"#, "arguments.text must be a string; got an integer"),
        (#"{"text":"toolong"}"#, "arguments.text must be at most 5 characters long"),
        (#"{"text":"a","n":0}"#, "arguments.n must be at least 1"),
        (#"{"text":"a","n":2.5}"#, "arguments.n must be an integer; got a number"),
        (#"{"text":"a","mode":"c"}"#, #"arguments.mode must be one of "a", "b"; got "c""#),
        (#"{"text":"a","tags":["x",1]}"#, "arguments.tags[1] must be a string; got an integer"),
        (#"{"text":"a","tags":["x","y","z"]}"#, "arguments.tags must have at most 2 items"),
        (#"{"text":"a","extra":true}"#, "arguments has no member 'extra' (it takes mode, n, tags, text)"),
    ])
    func refused(_ arguments: String, _ reason: String) throws {
        #expect(ToolInputSchema.problem(try Self.value(arguments), try Self.schema(Self.textSchema)) == reason)
    }

    @Test("arguments that fit pass", arguments: [
        #"{"text":"hi"}"#, #"{"text":"hi","n":3,"mode":"b","tags":["x"]}"#, #"{"text":"héllo","n":2.0}"#,
    ])
    func accepted(_ arguments: String) throws {
        #expect(ToolInputSchema.problem(try Self.value(arguments), try Self.schema(Self.textSchema)) == nil)
    }

    @Test func combinatorsAndOpenSchemas() throws {
        let either = try Self.schema(#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#)
        #expect(ToolInputSchema.problem(.string("x"), either) == nil)
        #expect(ToolInputSchema.problem(.bool(true), either) == "arguments fits none of the schemas anyOf lists")
        let one = try Self.schema(#"{"oneOf":[{"type":"number"},{"type":"integer"}]}"#)
        #expect(ToolInputSchema.problem(.int(1), one) == "arguments fits 2 of the schemas oneOf lists, not exactly one")
        // Keywords not checked here (`pattern`, `format`) leave the value to the module.
        #expect(ToolInputSchema.problem(.string("x"), try Self.schema(#"{"type":"string","pattern":"^y$","format":"email"}"#)) == nil)
        #expect(ToolInputSchema.problem(.object(["a": .int(1)]), .bool(true)) == nil)
        #expect(ToolInputSchema.problem(.int(1), .bool(false)) == "arguments is not allowed")
        // A schema and a value nested past the bound are followed no deeper (the recursion stays bounded).
        var deep: Value = .int(0)
        var nested: Value = .object(["type": .string("integer")])
        for _ in 0..<200 {
            deep = .array([deep])
            nested = .object(["type": .string("array"), "items": nested])
        }
        #expect(ToolInputSchema.problem(deep, nested) == "arguments" + String(repeating: "[0]", count: ToolInputSchema.maxDepth) + " nests deeper than \(ToolInputSchema.maxDepth) levels")
    }

    /// Integers compare exactly (as `Double`, 2^53 + 1 passed a maximum of 2^53 and an enum of 2^53), an integer past
    /// what a `Double` holds exactly is not taken for one, and `patternProperties`/`prefixItems`, which change what
    /// `additionalProperties` and `items` mean, leave those unchecked rather than refusing what the schema allows.
    @Test func integersCompareExactlyAndUncheckedKeywordsDoNotMisleadOthers() throws {
        let bounded = try Self.schema(#"{"type":"object","properties":{"n":{"type":"integer","maximum":9007199254740992},"m":{"enum":[9007199254740992]}}}"#)
        #expect(ToolInputSchema.problem(try Self.value(#"{"n":9007199254740993}"#), bounded) == "arguments.n must be at most 9007199254740992")
        #expect(ToolInputSchema.problem(try Self.value(#"{"m":9007199254740993}"#), bounded) != nil)
        #expect(ToolInputSchema.problem(try Self.value(#"{"n":9007199254740992,"m":9007199254740992}"#), bounded) == nil)
        #expect(ToolInputSchema.problem(.double(1.2345678901234567e19), try Self.schema(#"{"type":"integer"}"#)) != nil)
        let patterned = try Self.schema(#"{"type":"object","patternProperties":{"^x-":{"type":"string"}},"additionalProperties":false}"#)
        #expect(ToolInputSchema.problem(try Self.value(#"{"x-a":"ok"}"#), patterned) == nil)
        let tuple = try Self.schema(#"{"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"}}"#)
        #expect(ToolInputSchema.problem(try Self.value(#"["a", 1]"#), tuple) == nil)
    }

    /// Through `peon-wasm mcp`: the call that does not fit is answered `isError` and no run starts; one that fits runs.
    @Test func aCallThatDoesNotFitTheSchemaRunsNothing() throws {
        try withTemporaryDirectory { directory in
            try writeEchoGrants(in: directory, textSchema: true)
            let log = directory.appendingPathComponent("audit.jsonl").path
            let lines = [
                #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
                #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
                #"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":5}}}"#,
                #"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"ok"}}}"#,
            ]
            let result = try runPeonWasm(["mcp", "--audit", log, "--audit-key", directory.appendingPathComponent("k").path, "echo.toml"],
                                         stdin: lines.joined(separator: "\n") + "\n", directory: directory, timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            let messages = result.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            func answer(_ id: Int) -> (isError: Bool, text: String)? {
                guard let result = messages.first(where: { $0["id"] as? Int == id })?["result"] as? [String: Any] else { return nil }
                let text = ((result["content"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
                return (result["isError"] as? Bool ?? false, text)
            }
            #expect(answer(2)?.isError == true && answer(2)?.text.contains("lacks the required member 'text'") == true, "\(result.stdout)")
            #expect(answer(3)?.isError == true && answer(3)?.text.contains("arguments.text must be a string") == true, "\(result.stdout)")
            #expect(answer(4)?.isError == false, "\(result.stdout)")
            let entries = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            #expect(entries.filter { $0["call"] as? String == "run.start" }.count == 1, "only the call that fits runs")
        }
    }
}
