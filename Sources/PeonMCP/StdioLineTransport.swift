package import Foundation
package import Logging
import MCP
import PeonSystem

/// The MCP stdio transport with what the SDK's `StdioTransport` lacks, and nothing else: a cap on one
/// message's size, no batches, and the JSON-RPC request id of each `tools/call` handed to the tool handler.
///
/// - A message (one line) longer than `maxMessageBytes` is dropped without being held in memory: the
///   rest of the line is skipped, a one-line error goes to stderr, and the client gets an
///   `invalid request` error response (built with the SDK's types).
/// - A JSON-RPC batch (an array) is refused with an `invalid request` error: the SDK would run its
///   calls one by one while reading nothing else.
/// - A `tools/call` request is decoded with the SDK's `Request<CallTool>` and re-encoded with the
///   request id's JSON spelling (`7`, `"7"`) in `params._meta["peon-wasm/request-id"]` (overwriting whatever a
///   client put there), so the run's `run.start`/`run.end` can name it. Every other message passes through unchanged.
///
/// Reading is a blocking loop on its own thread; writes are serialized by the actor.
package actor StdioLineTransport: Transport {
    /// The key under which a `tools/call`'s request id reaches the handler.
    package static let requestIDKey = "peon-wasm/request-id"

    /// Unused by this transport (errors go to stderr as `peon-wasm:` lines); the protocol requires one.
    package nonisolated let logger = Logger(label: "peon-wasm.mcp.stdio", factory: { _ in SwiftLogNoOpLogHandler() })
    private let input: Int32
    private let output: Int32
    private let maxMessageBytes: Int
    private let stream: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var connected = false

    /// A transport on `input` and `output` (default: this process's stdin and stdout).
    package init(input: Int32 = 0, output: Int32 = 1, maxMessageBytes: Int) {
        self.input = input
        self.output = output
        self.maxMessageBytes = maxMessageBytes
        let pair = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self)
        stream = pair.stream
        continuation = pair.continuation
    }

    /// Starts the reader thread.
    package func connect() async throws {
        guard !connected else { return }
        connected = true
        let reader = LineReader(fd: input, maxMessageBytes: maxMessageBytes)
        let continuation = continuation
        let thread = Thread { [weak self] in
            reader.run(deliver: { data in
                           if Self.isBatch(data) {
                               guard let self else { return }
                               Task { await self.refuseBatch() }
                           } else if (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) == nil {
                               guard let self else { return }
                               Task { await self.refuseUnparsable() }
                           } else if Self.hasInvalidRequestID(data) {
                               guard let self else { return }
                               Task { try? await self.send(Self.errorWithoutID(code: -32600, message: Self.invalidIDMessage)) }
                           } else {
                               continuation.yield(Self.annotate(data))
                           }
                       },
                       oversized: { size in
                           guard let self else { return }
                           Task { await self.refuseOversized(size) }
                       })
            continuation.finish()
        }
        thread.name = "peon-wasm mcp stdin"
        thread.start()
    }

    /// Ends the message stream.
    package func disconnect() async {
        connected = false
        continuation.finish()
    }

    /// Writes one message and its newline.
    package func send(_ data: Data) async throws {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in retryingInterrupts { write(output, raw.baseAddress, raw.count) } }
            if written < 0 {
                if errno == EAGAIN { continue }
                throw MCPError.transportError(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO))
            }
            offset += written
        }
    }

    /// The messages read.
    package func receive() -> AsyncThrowingStream<Data, any Error> { stream }

    private func refuseOversized(_ size: Int) async {
        let message = "a message of \(size) bytes was refused: the limit is \(maxMessageBytes) bytes (--max-message)"
        FileHandle.standardError.write(Data("peon-wasm: \(message)\n".utf8))
        try? await send(Self.errorWithoutID(code: -32600, message: message))
    }

    /// Answers a line that is not JSON with a parse error (-32700).
    private func refuseUnparsable() async {
        let message = "Parse error: the message is not JSON"
        FileHandle.standardError.write(Data("peon-wasm: a message that is not JSON was refused\n".utf8))
        try? await send(Self.errorWithoutID(code: -32700, message: message))
    }

    /// What a request with an id of the wrong type is told.
    static let invalidIDMessage = "Invalid Request: a request's id must be a string or an integer"

    /// Whether `data` is a request (it has a `method`) whose `id` is there but neither a string nor an integer
    /// (`null`, `true`, `1.5`, an object): MCP allows only those two, and the SDK would drop such a request
    /// without an answer, or take `null` for `""`.
    static func hasInvalidRequestID(_ data: Data) -> Bool {
        guard let probe = try? JSONDecoder().decode(RequestIDProbe.self, from: data) else { return false }
        return probe.method != nil && probe.id == .invalid
    }

    /// A JSON-RPC error response to a message whose id cannot be known: JSON-RPC 2.0 says its `id` is `null`.
    static func errorWithoutID(code: Int, message: String) -> Data {
        let object: [String: Any] = ["jsonrpc": "2.0", "id": NSNull(), "error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    /// Whether `data` is a JSON-RPC batch (a JSON array).
    static func isBatch(_ data: Data) -> Bool {
        data.first(where: { ![0x20, 0x09, 0x0D, 0x0A].contains($0) }) == UInt8(ascii: "[")
    }

    /// Answers a batch with an error instead of handing it to the SDK, which would run its calls one
    /// after another while reading no other message (cancellations and elicitation answers would wait
    /// behind them). MCP 2025-06-18 removed batches; the HTTP transport refuses them too.
    private func refuseBatch() async {
        let message = "JSON-RPC batches are not supported: send each request as its own message"
        FileHandle.standardError.write(Data("peon-wasm: a batch was refused: \(message)\n".utf8))
        try? await send(Self.errorWithoutID(code: -32600, message: message))
    }

    /// A `tools/call` with its request id added to `_meta`; anything else unchanged.
    static func annotate(_ data: Data) -> Data {
        guard let request = try? JSONDecoder().decode(Request<CallTool>.self, from: data),
              request.method == CallTool.name
        else { return data }
        var meta = request.params._meta ?? Metadata()
        // The id's JSON spelling, as a string: `7` and `"7"` stay apart, and no id string is ever read back as
        // something else (the SDK decodes a string beginning with `data:` as binary data).
        meta.fields[requestIDKey] = .string(RequestID(request.id).spelling)
        let annotated = CallTool.request(
            id: request.id, CallTool.Parameters(name: request.params.name, arguments: request.params.arguments, meta: meta))
        return (try? JSONEncoder().encode(annotated)) ?? data
    }
}

/// Splits a descriptor's bytes into lines, never holding more than `maxMessageBytes` of one line.
private struct LineReader: Sendable {
    let fd: Int32
    let maxMessageBytes: Int

    func run(deliver: (Data) -> Void, oversized: (Int) -> Void) {
        var pending: [UInt8] = []
        var skipping = false
        var skipped = 0
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in retryingInterrupts { read(fd, raw.baseAddress, raw.count) } }
            if count < 0 && errno == EAGAIN { continue }
            if count <= 0 { return }
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
                if newline != nil {
                    if skipping {
                        oversized(skipped)
                        skipping = false
                        skipped = 0
                    } else {
                        if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                        if !pending.isEmpty { deliver(Data(pending)) }
                        pending = []
                    }
                }
                start = end + 1
            }
        }
    }
}

/// The `method` and the kind of `id` of a JSON-RPC message (``StdioLineTransport/hasInvalidRequestID(_:)``).
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
