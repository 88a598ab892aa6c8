import Foundation
import MCP
import PeonInterface
import PeonSystem

/// What a message must look like for the MCP SDK to read it as one JSON-RPC 2.0 message, and the error a message that
/// does not is refused with: shared by the stdio transport (``StdioLineTransport``, one line) and the HTTP router
/// (``HTTPSessionRouter``, one POST body), so that both refuse the same messages with the same codes and ids, before
/// the SDK sees them.
///
/// The SDK's server decodes a message as an answer, then a request, then a notification (`"jsonrpc": "2.0"` first); its
/// streamable HTTP transport files one by its members. A message the two read differently, or that the server cannot
/// decode at all, is answered by nobody (a `method` with a `result` is taken for an answer to nothing), under a made-up
/// id (an id the SDK reads back as binary data, `"data:..."`), or with a parse error where JSON-RPC 2.0 says
/// `Invalid Request`. ``refusal(_:)`` names each such message and the one error line that answers it.
enum JSONRPCScreen {
    /// JSON-RPC 2.0's `Invalid Request`.
    static let invalidRequestCode = -32600

    /// JSON-RPC 2.0's `Parse error`.
    static let parseErrorCode = -32700

    /// A message refused before the SDK sees it: why, and the JSON-RPC error response that answers it.
    struct Refusal: Sendable, Equatable {
        /// What kind of message was refused.
        enum Kind: Sendable, Equatable {
            /// Text that is not JSON (`Parse error`).
            case notJSON
            /// A JSON array: a batch (or an empty one).
            case batch
            /// JSON the SDK cannot read as a JSON-RPC 2.0 message, or reads as another kind than its members say.
            case unreadable
            /// Arrays and objects nested deeper than ``maxNesting`` (`Invalid Request`).
            case tooDeep
            /// An object naming one member twice (`Invalid Request`), which JSON readers resolve differently.
            case duplicateMember
            /// A member name longer than ``maxNameBytes`` (`Invalid Request`).
            case longName
            /// A request whose `params` do not fit its method (`Invalid params`).
            case invalidParams
        }

        /// What kind of message it was.
        var kind: Kind
        /// The JSON-RPC error code (``parseErrorCode`` or ``invalidRequestCode``).
        var code: Int
        /// The error's message, which says what to send instead.
        var message: String
        /// The whole JSON-RPC error response: under the message's id when it has a string or integer one, else `null`.
        var body: Data
    }

    /// Why `data` is refused before the SDK sees it, with the JSON-RPC error to answer it with; `nil` when the SDK's
    /// HTTP transport and its server read it as the same kind of message.
    ///
    /// The transport files a message by its members (a string `method` and a string or integer `id` make a request,
    /// for which it opens an answer stream), its server by decoding it (`"jsonrpc": "2.0"` first). A message they read
    /// differently is answered by nobody: a "request" the server cannot decode (no or another `jsonrpc`, a `method` with a
    /// `result`) kept its stream open until the idle close and its id taken, and one the server answers with an error
    /// under the id it names could end the stream of another request with that id; on stdio the server answered such
    /// messages with a parse error, under a random id when it could not read the id back, or not at all. So: text that
    /// is not JSON is a parse error; a batch, JSON that is not an object, and an object the two read differently are
    /// `Invalid Request`, under the message's id when it has a string or integer one, else `null`.
    static func refusal(_ data: Data) -> Refusal? {
        // First, before any JSON reader: Foundation's readers give up at 512 levels, and the SDK's decoding of a
        // request nested just under that failed as the server's own "Internal error" (-32603).
        if nestsTooDeeply(data) {
            return Refusal(kind: .tooDeep, code: invalidRequestCode, message: tooDeepMessage,
                           body: errorWithoutID(code: invalidRequestCode, message: tooDeepMessage))
        }
        // And a member name longer than any MCP message needs: the JSON readers below hash each name in canonical order,
        // which is quadratic in a run of combining marks out of order (an 80,000-mark name held the server for 23 s).
        // Answered under a `null` id: reading the id is a JSON read too.
        if hasLongName(data) {
            return Refusal(kind: .longName, code: invalidRequestCode, message: longNameMessage,
                           body: errorWithoutID(code: invalidRequestCode, message: longNameMessage))
        }
        // Strict RFC 8259 first: Foundation takes `{"id":1,}` (a trailing comma) that Python, JavaScript and Go refuse,
        // so a gateway in front of us would read an error, or nothing, where the server ran the request.
        guard JSONSyntax.firstProblem(in: data) == nil,
              let json = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return Refusal(kind: .notJSON, code: parseErrorCode, message: notJSONMessage,
                           body: errorWithoutID(code: parseErrorCode, message: notJSONMessage))
        }
        if json is [Any] {
            return Refusal(kind: .batch, code: invalidRequestCode, message: batchMessage,
                           body: errorWithoutID(code: invalidRequestCode, message: batchMessage))
        }
        // Foundation keeps a repeated member's first value, the SDK's decoder too; Python's and JavaScript's readers
        // keep the last. A gateway that checks `params.name` in one of those would pass a call that runs another tool.
        if let duplicate = JSONDuplicateMembers.firstDuplicate(in: data) {
            let message = duplicateMemberMessage(duplicate.name)
            // Under the message's id, unless the id itself is what is named twice (an `id` inside the arguments is not).
            let idIsDuplicated = duplicate.name == "id" && duplicate.depth == 1
            let body = (idIsDuplicated ? nil : messageID(data)).map { errorBody(id: $0, code: invalidRequestCode, message: message) }
                ?? errorWithoutID(code: invalidRequestCode, message: message)
            return Refusal(kind: .duplicateMember, code: invalidRequestCode, message: message, body: body)
        }
        if let object = json as? [String: Any], let kind = transportKind(object), kind == serverKind(data) {
            guard kind == .request, let method = object["method"] as? String,
                  let problem = paramsProblem(method, object["params"]) ?? (method == "tools/call" ? lossyNumber(in: data) : nil),
                  let id = messageID(data) else { return nil }
            let message = "Invalid params: \(problem)"
            return Refusal(kind: .invalidParams, code: invalidParamsCode, message: message,
                           body: errorBody(id: id, code: invalidParamsCode, message: message))
        }
        let body = messageID(data).map { errorBody(id: $0, code: invalidRequestCode, message: unreadableMessage) }
            ?? errorWithoutID(code: invalidRequestCode, message: unreadableMessage)
        return Refusal(kind: .unreadable, code: invalidRequestCode, message: unreadableMessage, body: body)
    }

    /// The longest member name a message may hold, in bytes as written (tool arguments' own names included).
    static let maxNameBytes = 4096

    /// The most combining marks a member name may hold in a row: names are hashed in canonical order, which sorts each
    /// such run in quadratic time (a message of 200 names of 4 KB of marks took 11 s with only the length bounded).
    static let maxMarksInARow = 32

    /// Whether `data` holds a member name longer than ``maxNameBytes``, or with more than ``maxMarksInARow`` combining
    /// marks in a row (passes over the bytes, no JSON reader).
    static func hasLongName(_ data: Data) -> Bool {
        JSONDuplicateMembers.longestName(in: data) > maxNameBytes || JSONDuplicateMembers.longestMarkRun(in: data) > maxMarksInARow
    }

    /// What a message with a longer member name is told.
    static let longNameMessage = "Invalid Request: a member name is longer than \(maxNameBytes) bytes, or holds more than \(maxMarksInARow) combining marks in a row"

    /// The most arrays and objects a message may nest, one inside another (the message's own object is the first).
    /// No MCP message needs a tenth of it; Foundation's JSON readers stop at 512.
    static let maxNesting = 256

    /// What a message nested deeper than ``maxNesting`` is told.
    static let tooDeepMessage = "Invalid Request: the message nests arrays and objects more than \(maxNesting) levels deep"

    /// Whether `data` opens more than ``maxNesting`` arrays and objects one inside another, counting only brackets
    /// and braces outside strings (one pass over the bytes; text that is not JSON at all is left to the JSON reader).
    static func nestsTooDeeply(_ data: Data) -> Bool {
        data.withUnsafeBytes { bytes in
            var depth = 0
            var inString = false
            var escaped = false
            for byte in bytes {
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > maxNesting { return true }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            return false
        }
    }

    /// JSON-RPC 2.0's `Invalid params`.
    static let invalidParamsCode = -32602

    /// Why a number of a `tools/call` would not reach the tool as the client wrote it, or `nil`. The SDK reads a number
    /// into a 64-bit integer or a `Double`, and the tool gets it written again from that: `18446744073709551617` arrived
    /// as `1.8446744073709552e+19`, and a schema's `maximum` was checked against the rounded value. So an integer outside
    /// 64 bits, or another number whose `Double` is not the same decimal (`9007199254740992.9`, `1e-400`), is refused
    /// (found by red-team passes); docs/mcp.md promises arguments pass unchanged or not at all. One pass over the bytes
    /// outside strings.
    static func lossyNumber(in data: Data) -> String? {
        let bytes = Array(data)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                index += 1
                continue
            }
            guard byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte) else { index += 1; continue }
            let start = index
            while index < bytes.count, "+-.eE0123456789".utf8.contains(bytes[index]) { index += 1 }
            let token = bytes[start..<index]
            let mantissa = token.prefix { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") }
            let isInteger = mantissa.count == token.count && !mantissa.contains(UInt8(ascii: "."))
            let text = String(decoding: token, as: UTF8.self)
            if isInteger {
                if Int64(text) == nil { return "the number \(text.prefix(40)) is outside 64-bit integers and would reach the tool as another number; send it as a string" }
                continue
            }
            // A fraction or an exponent: the tool gets the `Double` the SDK reads, written in its shortest form. Refused
            // unless that is the same decimal (`1.50` and `1.5e0` are; `9007199254740992.9` and `1e-400` are not).
            guard let double = Double(text), double.isFinite,
                  let written = decimal(text), let read = decimal(String(double)), written == read else {
                return "the number \(text.prefix(40)) is not one a 64-bit float holds exactly and would reach the tool as another number; send it as a string"
            }
        }
        return nil
    }

    /// A decimal number's value as digits without leading or trailing zeros and a power of ten (zero: no digits), so
    /// that two spellings of one number compare equal; `nil` for an exponent too large to count.
    static func decimal(_ text: String) -> (negative: Bool, digits: [UInt8], exponent: Int)? {
        var bytes = Array(text.utf8)
        let negative = bytes.first == UInt8(ascii: "-")
        if negative || bytes.first == UInt8(ascii: "+") { bytes.removeFirst() }
        var exponent = 0
        if let mark = bytes.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            guard let value = Int(String(decoding: bytes[(mark + 1)...], as: UTF8.self)), value.magnitude < 1 << 40 else { return nil }  // `magnitude`: `abs(Int.min)` traps
            exponent = value
            bytes = Array(bytes[..<mark])
        }
        var digits: [UInt8] = []
        var seenPoint = false
        for byte in bytes {
            if byte == UInt8(ascii: ".") { seenPoint = true; continue }
            digits.append(byte)
            if seenPoint { exponent -= 1 }
        }
        let leading = digits.prefix { $0 == UInt8(ascii: "0") }.count
        digits.removeFirst(leading)
        while digits.last == UInt8(ascii: "0") {
            digits.removeLast()
            exponent += 1
        }
        return digits.isEmpty ? (false, [], 0) : (negative, digits, exponent)
    }

    /// What is wrong with the `params` of a request for `method`, for the methods this server answers; `nil` when they
    /// fit (or the method is another's, answered as the SDK answers it). The SDK answered such params with its own
    /// "Internal error" (-32603: it could not decode them), and took an `initialize` without a `clientInfo` for a
    /// client named `unknown`, which the audit log then could not tell from one that calls itself so.
    static func paramsProblem(_ method: String, _ params: Any?) -> String? {
        let object = params as? [String: Any]
        if params != nil && !(params is NSNull) && object == nil { return "\(method) takes its params as an object" }
        switch method {
        case "initialize":
            let client = object?["clientInfo"] as? [String: Any]
            guard object?["protocolVersion"] is String, client?["name"] is String, client?["version"] is String,
                  object?["capabilities"].map({ $0 is [String: Any] }) ?? true else {
                return #"initialize needs params.protocolVersion (a string such as "2025-06-18"), params.capabilities (an object) and params.clientInfo ({"name": "...", "version": "..."})"#
            }
        case "tools/call":
            guard object?["name"] is String, object?["arguments"].map({ $0 is [String: Any] || $0 is NSNull }) ?? true else {
                return "tools/call needs params.name (a tool's name, a string) and, if any, params.arguments (an object)"
            }
        case "tools/list":
            if let cursor = object?["cursor"], !(cursor is NSNull) {
                return "tools/list was given a cursor it never issued (every tool comes in one page, without a nextCursor); send tools/list without one"
            }
        default:
            break
        }
        return nil
    }

    /// What a message naming a member twice in one object is told.
    static func duplicateMemberMessage(_ name: String) -> String {
        "Invalid Request: the member '\(TerminalText.escaped(name))' appears twice in one object, which JSON readers resolve differently; send each member once"
    }

    /// What text that is not JSON is told.
    static let notJSONMessage = "Parse error: the message is not JSON"

    /// What a JSON-RPC batch is told, on stdio and over HTTP.
    static let batchMessage = "JSON-RPC batches are not supported: send each request as its own message"

    /// What a message the SDK cannot read is told.
    static let unreadableMessage = #"Invalid Request: the message is not a JSON-RPC 2.0 request, notification or answer: "#
        + #"send a JSON object with "jsonrpc": "2.0" and either a string "method" (and, for a request, a string or "#
        + #"integer "id") or, answering the server, its request's "id" and a "result" or an "error""#

    /// The kind of JSON-RPC message the SDK's HTTP transport or its server takes a message for.
    enum MessageKind: Equatable {
        case request, notification, answer
    }

    /// How the SDK's streamable HTTP transport classifies a JSON object (as its `JSONRPCMessageKind` does): a string
    /// `method` makes a request when it has a string or integer `id` (``routingKey(_:)``), else a notification; without
    /// one, a `result` or an `error` and such an id make an answer; anything else is no message (`nil`).
    static func transportKind(_ object: [String: Any]) -> MessageKind? {
        let id = routingKey(object)
        if object["method"] is String { return id == nil ? .notification : .request }
        if object["result"] != nil || object["error"] != nil { return id == nil ? nil : .answer }
        return nil
    }

    /// How the SDK's server decodes a message (as its receive loop does, with its own decoders): first as an answer,
    /// then as a request, then as a notification; `nil` when none fits (it would answer with an error under an id of
    /// the message's, or a random one).
    static func serverKind(_ data: Data) -> MessageKind? {
        let decoder = JSONDecoder()
        if (try? decoder.decode(MCP.Response<ProbeMethod>.self, from: data)) != nil { return .answer }
        if (try? decoder.decode(MCP.Request<ProbeMethod>.self, from: data)) != nil { return .request }
        if (try? decoder.decode(MCP.Message<ProbeNotification>.self, from: data)) != nil { return .notification }
        return nil
    }

    /// A method that takes and returns any JSON, as the SDK's server decodes every request and answer (its own such
    /// type is internal to it).
    struct ProbeMethod: MCP.Method {
        static let name = ""
        typealias Parameters = Value
        typealias Result = Value
    }

    /// A notification with any parameters, as the SDK's server decodes every notification.
    struct ProbeNotification: MCP.Notification {
        static let name = ""
        typealias Parameters = Value
    }

    /// The `id` of a JSON object when it is a string or an integer; `nil` for any other id, or none.
    static func messageID(_ data: Data) -> RequestID? {
        struct Probe: Decodable {
            var id: RequestID?
            private enum Keys: String, CodingKey { case id }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: Keys.self)
                if let string = try? container.decode(String.self, forKey: .id) {
                    id = RequestID(.string(string))
                } else if let number = try? container.decode(Int.self, forKey: .id) {
                    id = RequestID(.number(number))
                }
            }
        }
        return (try? JSONDecoder().decode(Probe.self, from: data))?.id
    }

    /// The key the SDK's streamable HTTP transport files a request's answer stream under, and routes an answer by: the
    /// id's text (a string as it is, an integer's digits), so that `7` and `"7"` share one. `nil` without such an id.
    static func routingKey(_ object: [String: Any]) -> String? {
        if let string = object["id"] as? String { return string }
        if let number = object["id"] as? Int { return String(number) }
        return nil
    }

    /// What a request with an id of the wrong type is told.
    static let invalidIDMessage = "Invalid Request: a request's id must be a string or an integer (written as one, within 64 bits)"

    /// Whether `data` is a request (it has a `method`) whose `id` is there but neither a string nor an integer
    /// (`null`, `true`, `1.5`, an object), or an integer not written as one (`1.0`, `1e3`): MCP allows only strings and
    /// integers, and the SDK would drop such a request without an answer, take `null` for `""`, or answer `1e3` as `1000`.
    static func hasInvalidRequestID(_ data: Data) -> Bool {
        // A long member name is refused by ``refusal(_:)`` before any JSON reader, this one included, sees it.
        guard !hasLongName(data), let probe = try? JSONDecoder().decode(RequestIDProbe.self, from: data) else { return false }
        guard probe.method != nil else { return false }
        let invalid = probe.id == .invalid || (probe.id == .valid && !idIsSpelledAsAnInteger(data))
        // Text that is not strict JSON is a parse error (``refusal(_:)``), whatever its id looks like; checked only here,
        // where it changes the answer, so a well-formed message is scanned once, by ``refusal(_:)``.
        return invalid && JSONSyntax.firstProblem(in: data) == nil
    }

    /// Whether the top-level `id` of `data`, when it is a number, is written as an integer (`7`, `-3`): `1e3` and `1.0`
    /// decode as integers too, and were answered (and audited) as `1000` and `1`, not as the client spelled them.
    static func idIsSpelledAsAnInteger(_ data: Data) -> Bool {
        guard let token = topLevelIDNumber(Array(data)) else { return true }
        return !token.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }

    /// The bytes of the top-level member `id`'s value when it is a number (not a string, object, array or literal).
    static func topLevelIDNumber(_ bytes: [UInt8]) -> ArraySlice<UInt8>? {
        var depth = 0
        var expectingName = false
        var name: [UInt8]?
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                var end = index + 1
                var escaped = false
                while end < bytes.count {
                    if escaped { escaped = false } else if bytes[end] == UInt8(ascii: "\\") { escaped = true } else if bytes[end] == UInt8(ascii: "\"") { break }
                    end += 1
                }
                if depth == 1 && expectingName {
                    name = JSONDuplicateMembers.unescaped(bytes[(index + 1)..<min(end, bytes.count)])
                    expectingName = false
                }
                index = end + 1
                continue
            }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectingName = depth == 1 && byte == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectingName = depth == 1
            case UInt8(ascii: ":") where depth == 1:
                defer { name = nil }
                guard name == Array("id".utf8) else { break }
                var start = index + 1
                while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
                var end = start
                while end < bytes.count, bytes[end] == UInt8(ascii: "-") || bytes[end] == UInt8(ascii: "+")
                        || bytes[end] == UInt8(ascii: ".") || bytes[end] == UInt8(ascii: "e") || bytes[end] == UInt8(ascii: "E")
                        || (0x30...0x39).contains(bytes[end]) {
                    end += 1
                }
                return end > start ? bytes[start..<end] : nil
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// A JSON-RPC error response to request `id` with `code` (by default server error ``ToolServer/notStartedCode``),
    /// saying `message`.
    static func errorBody(id: RequestID, code: Int = ToolServer.notStartedCode, message: String) -> Data {
        // Written out, so that the id goes back spelled as the client sent it (`7` or `"7"`).
        let text = #"{"error":{"code":"# + String(code) + #","message":"# + RequestID.quoted(message)
            + #"},"id":"# + id.spelling + #","jsonrpc":"2.0"}"#
        return Data(text.utf8)
    }

    /// A JSON-RPC error response to a message whose id cannot be known: JSON-RPC 2.0 says its `id` is `null`.
    static func errorWithoutID(code: Int, message: String) -> Data {
        let object: [String: Any] = ["jsonrpc": "2.0", "id": NSNull(), "error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }
}

/// The `method` and the kind of `id` of a JSON-RPC message (``JSONRPCScreen/hasInvalidRequestID(_:)``).
struct RequestIDProbe: Decodable {
    enum IDKind { case absent, valid, invalid }
    var method: String?
    var id: IDKind

    private enum Keys: String, CodingKey { case method, id }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        method = try? container.decode(String.self, forKey: .method)
        guard container.contains(.id) else {
            id = .absent
            return
        }
        if (try? container.decode(String.self, forKey: .id)) != nil || (try? container.decode(Int64.self, forKey: .id)) != nil,
           (try? container.decodeNil(forKey: .id)) != true {
            id = .valid
        } else {
            id = .invalid
        }
    }
}
