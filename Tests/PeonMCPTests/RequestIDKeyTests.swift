import Foundation
@testable import PeonMCP
import Testing

/// How the HTTP router reads a POSTed request's id against the SDK's routing key, and how the stdio transport counts
/// the answers it owes (the end-to-end checks are `McpServerTests` scenario `request-ids` and `McpStdioEndTests`).
@Suite struct RequestIDKeyTests {
    static func request(_ id: String) -> Data {
        Data(#"{"jsonrpc":"2.0","id":\#(id),"method":"ping"}"#.utf8)
    }

    /// An id written as a fraction or with an exponent decodes as an integer (`1e3` as 1000, `1.0` as 1), and was
    /// answered and audited as that integer, not as the client spelled it: such an id is refused (`-32600`, id null),
    /// as `1.5` was. `-0` is an integer as JSON writes it.
    @Test("an id written as a fraction or with an exponent is an invalid id", arguments: [
        ("1e3", true), ("1.0", true), ("1E3", true), ("-2.5e1", true), ("1.5", true),
        ("7", false), ("-0", false), ("0", false), (#""1e3""#, false), ("-9223372036854775808", false),
    ])
    func idsMustBeWrittenAsIntegers(_ id: String, _ refused: Bool) {
        #expect(JSONRPCScreen.hasInvalidRequestID(Self.request(id)) == refused, "\(id)")
        // Only the message's own id counts, wherever it stands; a number called `id` deeper in is not it.
        let later = Data(#"{"jsonrpc":"2.0","method":"ping","params":{"id":1.5,"x":[{"id":2e1}]},"id":\#(id)}"#.utf8)
        #expect(JSONRPCScreen.hasInvalidRequestID(later) == refused, "\(id) after params")
    }

    @Test func aNumberAndAStringThatReadAlikeShareTheSDKsKeyButNotTheirSpelling() {
        let number = HTTPSessionRouter.postedID(Self.request("7"))
        let string = HTTPSessionRouter.postedID(Self.request(#""7""#))
        guard case .request(let numberKey, let numberID) = number, case .request(let stringKey, let stringID) = string else {
            Issue.record("not read as requests: \(number) \(string)")
            return
        }
        #expect(numberKey == "7" && stringKey == "7")
        #expect(numberID.spelling == "7" && stringID.spelling == #""7""#)
        let held = InFlightRequestIDs()
        #expect(held.take(key: numberKey, spelling: numberID.spelling) == nil)
        #expect(held.take(key: stringKey, spelling: stringID.spelling) == "7", "\"7\" was let in beside 7")
        #expect(held.take(key: numberKey, spelling: numberID.spelling) == "7", "a second 7 was let in")
        held.release(key: "7")
        #expect(held.take(key: stringKey, spelling: stringID.spelling) == nil, "the id stayed taken after its answer")
    }

    @Test func stringsThatSwiftReadsAsEqualShareAKey() {
        // The SDK's key is a Swift String: "é" whole and "e" with a combining accent are one key to its dictionary.
        let whole = HTTPSessionRouter.postedID(Self.request(#""\u00e9""#))
        let combined = HTTPSessionRouter.postedID(Self.request(#""e\u0301""#))
        guard case .request(let first, let firstID) = whole, case .request(let second, let secondID) = combined else {
            Issue.record("not read as requests: \(whole) \(combined)")
            return
        }
        let held = InFlightRequestIDs()
        #expect(held.take(key: first, spelling: firstID.spelling) == nil)
        #expect(held.take(key: second, spelling: secondID.spelling) != nil)
    }

    @Test func notificationsAndAnswersHaveNoKeyToTake() {
        #expect(HTTPSessionRouter.postedID(Data(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8)) == .other)
        #expect(HTTPSessionRouter.postedID(Data(#"{"jsonrpc":"2.0","id":3,"result":{}}"#.utf8)) == .other)
        #expect(RequestIDTransport.answerKey(Data(#"{"jsonrpc":"2.0","id":"7","result":{}}"#.utf8)) == "7")
        #expect(RequestIDTransport.answerKey(Data(#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"x"}}"#.utf8)) == "7")
        #expect(RequestIDTransport.answerKey(Data(#"{"jsonrpc":"2.0","id":7,"method":"elicitation/create"}"#.utf8)) == nil)
    }

    @Test func theStdioAccountOwesAnAnswerPerRequestUntilItIsSentOrCancelled() {
        let owed = OwedAnswers()
        #expect(owed.received(Self.request("7")) == "7")
        #expect(owed.received(Self.request(#""7""#)) == #""7""#)
        #expect(owed.received(Data(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8)) == nil)
        // Not requests the server answers under their id: an answer, and a message without `jsonrpc: "2.0"`.
        #expect(owed.received(Data(#"{"jsonrpc":"2.0","id":9,"result":{}}"#.utf8)) == nil)
        #expect(owed.received(Data(#"{"id":10,"method":"ping"}"#.utf8)) == nil)
        #expect(owed.count == 2)
        owed.sent(Data(#"{"jsonrpc":"2.0","id":"7","result":{}}"#.utf8))
        #expect(owed.count == 1, "the answer to \"7\" did not pay its debt, or paid 7's")
        owed.sent(Data(#"{"jsonrpc":"2.0","id":"7","result":{}}"#.utf8))
        #expect(owed.count == 1, "an answer nothing was owed to paid another's debt")
        owed.sent(Data(#"{"jsonrpc":"2.0","id":7,"method":"elicitation/create","params":{}}"#.utf8))
        #expect(owed.count == 1, "a request of the server's own paid a debt")
        _ = owed.received(Data(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#.utf8))
        #expect(owed.count == 0, "a cancelled request is still waited for")
    }
}
