import Foundation
@testable import PeonMCP
import PeonSystem
import PeonTestSupport
import Testing

/// Threat: a client on stdio (hostile, or just buggy) that writes lines the MCP SDK cannot read as a JSON-RPC 2.0
/// message. The SDK's server answered a missing or wrong `jsonrpc` with a parse error (-32700) where JSON-RPC 2.0 says
/// `Invalid Request` (-32600), answered an id it reads back as binary data (`"data:text/plain,hi"`) under a made-up
/// id, and took a `method` beside a `result` or an `error` for an answer to nothing, answering it never. Each such
/// line now gets one error line at once, with the code and id the HTTP transport answers the same message with
/// (``JSONRPCScreen``), and the server reads on.
@Suite struct McpStdioRefusalTests {
    /// The lines refused, each with the code and the id spelling (`null` when it has no string or integer id) of the
    /// one error line that must answer it: the messages the HTTP transport refuses (``HTTPRequestRefusalTests``),
    /// text that is not JSON, and batches.
    static let refused: [(line: String, code: Int, id: String)] =
        HTTPRequestRefusalTests.undecodable.map { ($0.body, JSONRPCScreen.invalidRequestCode, $0.id) } + [
            (#"{"jsonrpc":"2.0","id":1,"method":"ping""#, JSONRPCScreen.parseErrorCode, "null"),   // cut short
            ("not json", JSONRPCScreen.parseErrorCode, "null"),
            // Not JSON to Python, JavaScript or Go, JSON to Foundation (which answered the first as a ping) or with an
            // id this server checks (the second was "id must be an integer", -32600): parse errors.
            (#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#, JSONRPCScreen.parseErrorCode, "null"),
            (#"{"jsonrpc":"2.0","id":1.,"method":"ping"}"#, JSONRPCScreen.parseErrorCode, "null"),
            (#"{"jsonrpc":"2.0","id":01,"method":"ping"}"#, JSONRPCScreen.parseErrorCode, "null"),
            (#"{"jsonrpc":"2.0","id":1,"method":"ping"} {}"#, JSONRPCScreen.parseErrorCode, "null"),
            (#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":[1,]}}"#, JSONRPCScreen.parseErrorCode, "null"),
            (#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, JSONRPCScreen.invalidRequestCode, "null"),
            ("[]", JSONRPCScreen.invalidRequestCode, "null"),
            // Past every JSON reader's depth: it was "not JSON" (-32700); it is JSON, nested too deeply.
            (String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000), JSONRPCScreen.invalidRequestCode, "null"),
            // A member name past the bound, of combining marks out of canonical order: every Swift JSON reader hashes it
            // in quadratic time (80,000 marks held the server 23 s). Refused before any reader, under a `null` id.
            (#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a"# + String(repeating: "\u{301}\u{316}", count: 2_000) + #"":1}}"#,
             JSONRPCScreen.invalidRequestCode, "null"),
        ]

    /// A `tools/call` number the SDK would hand the tool as another number is refused (Invalid params, under the id):
    /// `18446744073709551617` reached the tool as `1.8446744073709552e+19` (found by a red-team pass). Numbers a 64-bit
    /// integer or a `Double` keeps pass, and so do digits inside strings and other methods' numbers.
    @Test func aToolCallNumberThatWouldChangeIsRefused() {
        func call(_ arguments: String, method: String = "tools/call") -> Data {
            Data(#"{"jsonrpc":"2.0","id":9,"method":"\#(method)","params":{"name":"e","arguments":\#(arguments)}}"#.utf8)
        }
        for lossy in [#"{"n":18446744073709551617}"#, #"{"n":-9223372036854775809}"#, #"{"n":[1,{"m":123456789012345678901234567890}]}"#,
                      #"{"n":0.123456789012345678}"#, #"{"n":1.00000000000000000001e5}"#,
                      // 17 significant digits, rounded all the same (a schema's maximum of 2^53 was passed); underflow.
                      #"{"n":9007199254740992.9}"#, #"{"n":1e-400}"#, #"{"n":0.30000000000000001}"#,
                      #"{"n":1e-9223372036854775808}"#] {
            let refusal = JSONRPCScreen.refusal(call(lossy))
            #expect(refusal?.kind == .invalidParams && refusal?.code == JSONRPCScreen.invalidParamsCode, "\(lossy)")
            #expect(refusal.map { String(decoding: $0.body, as: UTF8.self).contains(#""id":9"#) } == true, "\(lossy)")
        }
        for kept in [#"{"n":9223372036854775807}"#, #"{"n":-9223372036854775808}"#, #"{"n":0.1,"m":3.141592653589793,"k":1e300}"#,
                     #"{"n":1.50000000000000000000,"s":"18446744073709551617"}"#, #"{"n":-0,"m":12345678901234567}"#,
                     #"{"n":1.5e0,"m":100.0,"k":1E2,"j":-0.0,"i":2.5E-3,"h":5e-324}"#] {
            #expect(JSONRPCScreen.refusal(call(kept)) == nil, "\(kept)")
        }
        #expect(JSONRPCScreen.lossyNumber(in: call(#"{"n":18446744073709551617}"#)) != nil)
        // Exponents at and past Int's ends are refused, never a trap (`abs(Int.min)` would have trapped); a float
        // overflow is already no JSON to Foundation's reader.
        for exponent in ["-9223372036854775808", "9223372036854775807", "99999999999999999999"] {
            #expect(JSONRPCScreen.lossyNumber(in: call(#"{"n":1e\#(exponent)}"#)) != nil, "\(exponent)")
            #expect(JSONRPCScreen.refusal(call(#"{"n":1e\#(exponent)}"#)) != nil, "\(exponent)")
        }
    }

    /// A member name is bounded at ``JSONRPCScreen/maxNameBytes`` as written, wherever it is; a value is not.
    @Test func aLongMemberNameIsRefusedBeforeAnyJSONReader() {
        func message(name: String, value: String = "1") -> Data {
            Data(#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"e","arguments":{""#.utf8)
                + Data(name.utf8) + Data(#"":"#.utf8) + Data(value.utf8) + Data("}}}".utf8)
        }
        let limit = JSONRPCScreen.maxNameBytes
        #expect(JSONDuplicateMembers.longestName(in: Array(message(name: String(repeating: "n", count: limit)))) == limit)
        #expect(JSONRPCScreen.refusal(message(name: String(repeating: "n", count: limit)))?.kind != .longName)
        let refused = JSONRPCScreen.refusal(message(name: String(repeating: "n", count: limit + 1)))
        #expect(refused?.kind == .longName)
        #expect(refused.map { String(decoding: $0.body, as: UTF8.self).contains(#""id":null"#) } == true)
        #expect(JSONRPCScreen.refusal(message(name: "v", value: "\"" + String(repeating: "\u{301}", count: 3_000) + "\""))?.kind != .longName)
        #expect(!JSONRPCScreen.hasInvalidRequestID(message(name: String(repeating: "\u{301}\u{316}", count: 3_000))))
        // Short names of many marks each: every name under the length bound, each sorted in quadratic time (200 such
        // names took 11 s). A run of combining marks is bounded too, written or escaped; accents as text use has pass.
        let marks = String(repeating: "\u{316}\u{301}", count: 17)
        #expect(JSONRPCScreen.refusal(message(name: "a" + marks))?.kind == .longName)
        #expect(JSONRPCScreen.refusal(message(name: "a" + String(repeating: #"\u0316\u0301"#, count: 17)))?.kind == .longName)
        #expect(JSONRPCScreen.refusal(message(name: "a" + String(repeating: "\u{316}\u{301}", count: 16)))?.kind != .longName)
        #expect(JSONRPCScreen.refusal(message(name: "Ca\u{301}fe\u{301} nai\u{308}ve Tie\u{323}\u{302}ng Vie\u{323}\u{302}t"))?.kind != .longName)
        #expect(JSONRPCScreen.refusal(message(name: "v", value: "\"a" + marks + "\""))?.kind != .longName)
    }

    /// The depth count: brackets and braces inside strings (escaped quotes included) do not count, and exactly
    /// ``JSONRPCScreen/maxNesting`` levels pass.
    @Test func nestingIsCountedOutsideStringsUpToTheLimit() {
        let limit = JSONRPCScreen.maxNesting
        func nested(_ levels: Int) -> Data {
            Data((String(repeating: "[", count: levels - 1) + #"{"a":"[[{\"[","b":1}"# + String(repeating: "]", count: levels - 1)).utf8)
        }
        #expect(!JSONRPCScreen.nestsTooDeeply(nested(limit)))
        #expect(JSONRPCScreen.nestsTooDeeply(nested(limit + 1)))
        #expect(!JSONRPCScreen.nestsTooDeeply(Data(#"{"x":""#.utf8) + Data(String(repeating: "[", count: 10_000).utf8) + Data(#""}"#.utf8)))
        #expect(JSONRPCScreen.refusal(nested(limit + 1))?.kind == .tooDeep)
        #expect(JSONRPCScreen.refusal(nested(limit + 1))?.code == JSONRPCScreen.invalidRequestCode)
    }

    /// The strict JSON check agrees with RFC 8259 (and Python's, JavaScript's and Go's readers) on what is one JSON
    /// text, where Foundation's readers take a trailing comma.
    @Test func strictJSONIsExactlyRFC8259() {
        let valid = [
            "{}", "[]", "0", "-0", "1.5e-3", "-12E+2", "3.0", "\"\"", "true", "false", "null", " [1 , 2 ]\n",
            #"{"a":[{"b":null}],"c":"\u00e9\n\/\\\"","d":-0.5}"#, "[\"\u{E9}\"]", #"{"":{}}"#,
        ]
        let invalid = [
            "", " ", "[1,]", #"{"a":1,}"#, "[,1]", "{,}", "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "NaN",
            "Infinity", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{1:2}", "[tru]", "nul", "'a'", #"["\x41"]"#, #"["\u12"]"#,
            "[\"a\tb\"]", "[\"open", "[1]]", "{}{}", "[1] x", "{\"a\":1]", "[1}",
        ]
        for text in valid { #expect(JSONSyntax.firstProblem(in: Array(text.utf8)) == nil, "\(text)") }
        for text in invalid { #expect(JSONSyntax.firstProblem(in: Array(text.utf8)) != nil, "\(text)") }
        // Foundation takes these, which is why the check exists.
        #expect((try? JSONSerialization.jsonObject(with: Data(#"{"a":1,}"#.utf8))) != nil)
    }

    /// A member named twice in one object is found however it is spelled, and only then: the same name in two objects,
    /// in a string, or as a value is no repetition, and names are compared by their exact scalars.
    @Test func aMemberNamedTwiceInOneObjectIsFound() {
        let found: [(String, String?)] = [
            (#"{"a":1,"a":2}"#, "a"),
            (#"{"a":1,"b":{"c":1},"\u0061":2}"#, "a"),
            (#"[{"x":[{"y":1,"y":1}]}]"#, "y"),
            (#"{"a\"b":1,"a\u0022b":2}"#, #"a"b"#),
            (#"{"a":1,"b":{"a":1}}"#, nil),
            (#"[{"a":1},{"a":2}]"#, nil),
            (#"{"a":"a","b":["a","a"],"c":"{\"a\":1,\"a\":2}"}"#, nil),
            // Canonically equivalent names are one member to the Swift readers (Foundation, the SDK), two to Python's:
            // refused, as the readers would disagree.
            ("{\"\u{E9}\":1,\"e\u{301}\":2}", "\u{E9}"),
            ("{\"K\":\"safe\",\"\u{212A}\":\"evil\"}", "\u{212A}"),
            (#"{"\u00c5":"safe","\u212b":"evil"}"#, "\u{212B}"),
            ("not json {", nil),
        ]
        for (text, name) in found {
            #expect(JSONDuplicateMembers.first(in: Array(text.utf8)) == name, "\(text)")
        }
        #expect(JSONRPCScreen.refusal(Data(#"{"jsonrpc":"2.0","id":1,"method":"ping","id":2}"#.utf8))?.kind == .duplicateMember)
        // An `id` named twice inside the arguments is not the message's id: the refusal goes under the real one.
        let nested = JSONRPCScreen.refusal(Data(#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"e","arguments":{"id":1,"id":2}}}"#.utf8))
        #expect(nested.map { String(decoding: $0.body, as: UTF8.self).contains(#""id":7"#) } == true, "\(String(describing: nested))")
        // Linear in the members: a copy of the name set per member made 100,000 members take two minutes.
        let many = "{" + (0..<200_000).map { #""k\#($0)":1"# }.joined(separator: ",") + #","k0":2}"#
        let started = ContinuousClock.now
        #expect(JSONDuplicateMembers.first(in: Array(many.utf8)) == "k0")
        #expect(ContinuousClock.now - started < .seconds(20), "200,000 members took \(ContinuousClock.now - started)")
    }

    /// The id of the valid ping sent after the `index`th refused line: the refused line's own id when it has one (it
    /// was not taken), else one of its own.
    static func followingID(_ index: Int) -> String {
        refused[index].id == "null" ? #""after-\#(index)""# : refused[index].id
    }

    @Test func eachLineTheSDKCannotReadGetsOneErrorAtOnceAndTheServerReadsOn() async throws {
        try await withTemporaryDirectory { directory in
            try writeEchoGrants(in: directory, textSchema: false)
            var lines = [
                #"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"odd","version":"1"}}}"#,
                #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            ]
            for (index, shape) in Self.refused.enumerated() {
                lines.append(shape.line)
                lines.append(#"{"jsonrpc":"2.0","id":\#(Self.followingID(index)),"method":"ping"}"#)
            }
            let input = lines.joined(separator: "\n") + "\n"
            let result: CommandResult = try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    continuation.resume(with: Result { try runPeonWasm(["mcp", "echo.toml"], stdin: input, directory: directory, timeout: 60) })
                }
                thread.start()
            }
            #expect(result.status == 0, "exit \(result.status): \(result.stderr.suffix(2000))")
            let messages = result.stdout.split(separator: "\n").compactMap { line in
                try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            }
            // The refusals, in the order of the lines they answer (the reader writes them as it reads): one per line,
            // and no other error (the SDK answered none of these lines itself).
            let errors = messages.filter { $0["error"] != nil }
            #expect(errors.count == Self.refused.count, "\(errors.count) errors for \(Self.refused.count) lines: \(result.stdout)")
            for (shape, error) in zip(Self.refused, errors) {
                #expect(HTTPRequestRefusalTests.errorCode(error) == shape.code, "\(shape.line): \(error)")
                #expect(HTTPRequestRefusalTests.idSpelling(error) == shape.id, "\(shape.line): \(error)")
                #expect(error["jsonrpc"] as? String == "2.0", "\(shape.line): \(error)")
            }
            // Every ping after a refused line is answered.
            let answered = Set(messages.filter { $0["result"] != nil }.map(HTTPRequestRefusalTests.idSpelling))
            for index in Self.refused.indices {
                #expect(answered.contains(Self.followingID(index)),
                        "no answer to the ping \(Self.followingID(index)) after \(Self.refused[index].line): \(result.stdout)")
            }
            #expect(answered.contains(#""init""#), "no initialize answer: \(result.stdout)")
        }
    }
}
