import Foundation
@testable import PeonMCP
import Synchronization
import Testing

/// Threat: an MCP client on stdio that sends requests but never reads the server's stdout. Before, the server kept
/// reading while its writes blocked: every answer (refusals too) waited in memory, and each blocked write held a
/// thread of the shared pool. Now the answers wait in a bounded queue written by a thread of its own, and reading
/// stops while the queue is full, so the client's own pipe fills instead.
@Suite struct StdioBackpressureTests {
    /// A pipe's two ends, each closed once.
    final class Pipe {
        let read: Int32
        let write: Int32
        private var open = (read: true, write: true)

        init() throws {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            read = ends[0]
            write = ends[1]
        }

        func closeRead() {
            if open.read { _ = Glibc.close(read) }
            open.read = false
        }

        func closeWrite() {
            if open.write { _ = Glibc.close(write) }
            open.write = false
        }

        func close() {
            closeRead()
            closeWrite()
        }
    }

    /// `body`'s value, run on a thread of its own, or `nil` when it has none within `seconds` (a wait that never ends
    /// fails the test instead of hanging it; the thread is left behind). The limits are generous: the in-process
    /// server runs on the shared pool, which other tests of this process (waiting for their child processes) may hold
    /// for tens of seconds.
    func onThread<T: Sendable>(seconds: Int = 150, _ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let once = FirstResult(continuation)
            let thread = Thread { once.resume(body()) }
            thread.start()
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                once.resume(nil)
            }
        }
    }

    /// `true` once `task` has ended (with a value or an error), waited for on a thread of its own; `nil` when it has
    /// not ended within `seconds`.
    func ends<Success: Sendable>(_ task: Task<Success, any Error>, seconds: Int = 60) async -> Bool? {
        await onThread(seconds: seconds) {
            let done = DispatchSemaphore(value: 0)
            Task {
                _ = try? await task.value
                done.signal()
            }
            done.wait()
            return true
        }
    }

    /// A ping request line with id `number`.
    static func ping(_ number: Int) -> [UInt8] {
        Array("{\"jsonrpc\":\"2.0\",\"id\":\(number),\"method\":\"ping\"}\n".utf8)
    }

    /// Writes pings to `fd` (non-blocking) until the pipe is full and `stopped()` says the server stopped reading, or
    /// `budget` were written, or 120 s passed: how many were written, and whether the pipe stayed full with the server
    /// stopped. (A full pipe alone may be a server slow to read, on a loaded machine: it is retried.)
    static func flood(_ fd: Int32, budget: Int, stopped: () -> Bool) -> (written: Int, stalled: Bool) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var written = 0
        var fullSince: ContinuousClock.Instant?
        // Generous: on a machine loaded ~10x past its cores (helpers building beside the suite) the server took over
        // 120 s to fill its queue, and the test failed although the server behaved.
        let deadline = ContinuousClock.now + .seconds(300)
        while written < budget && ContinuousClock.now < deadline {
            let line = ping(written + 1)
            let count = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count == line.count {
                written += 1
                fullSince = nil
                continue
            }
            // A line is shorter than PIPE_BUF: a write takes all of it or none.
            guard count < 0 && errno == EAGAIN else { return (written, false) }
            let since = fullSince ?? ContinuousClock.now
            fullSince = since
            if stopped() && ContinuousClock.now - since >= .milliseconds(500) { return (written, true) }
            usleep(50_000)
        }
        return (written, false)
    }

    /// Reads answers from `fd` until every id in 1...`count` has one (`true`), or 120 s pass or the pipe ends (`false`).
    static func readAnswers(_ fd: Int32, count: Int) -> (complete: Bool, duplicates: Int) {
        var answered = Set<Int>()
        var duplicates = 0
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = ContinuousClock.now + .seconds(120)
        while answered.count < count && ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 200) > 0 else { continue }
            let read = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard read > 0 else { return (false, duplicates) }
            pending += chunk[0..<read]
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[..<newline])
                pending.removeSubrange(...newline)
                if let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any], object["result"] != nil,
                   let id = object["id"] as? Int {
                    if !answered.insert(id).inserted { duplicates += 1 }
                }
            }
        }
        return (answered.count == count, duplicates)
    }

    @Test func aClientThatDoesNotReadStopsBeingReadThenEveryRequestIsAnswered() async throws {
        signal(SIGPIPE, SIG_IGN)
        let input = try Pipe()
        let output = try Pipe()
        defer {
            input.close()
            output.close()
        }
        let bound = 32
        let transport = StdioLineTransport(input: input.read, output: output.write, maxMessageBytes: 1 << 20,
                                           maxPendingMessages: bound, maxPendingBytes: 1 << 20)
        let server = ToolServer(maxConcurrent: 1, version: "test")
        // At high priority, so the server's jobs do not queue behind other tests' (see McpApprovalReleaseTests).
        let serving = Task(priority: .high) { try await server.serve(transport: transport) }

        // Nobody reads the answers: the server must stop reading long before the budget (its answers fill the output
        // pipe, then `bound` wait, then the input pipe fills).
        let budget = 40_000
        let writeEnd = input.write
        let flooded = await onThread(seconds: 330) { Self.flood(writeEnd, budget: budget, stopped: { transport.pendingOutput.messages >= bound }) }
        let (written, stalled) = try #require(flooded)
        #expect(stalled, "the server read \(written) pings while nobody read its answers")
        let pending = transport.pendingOutput
        // The queue holds `bound` answers, plus those of the few requests already taken in when it filled (the four the
        // server may hold unread, and the ones it was answering): never anything like every request read.
        #expect(pending.most <= bound + 200, "\(pending.most) answers waited to be written at once (bound \(bound))")
        #expect(pending.messages >= bound, "reading stopped with \(pending.messages) answers waiting")

        // The client reads now: every ping is answered, once.
        let readEnd = output.read
        let read = await onThread { Self.readAnswers(readEnd, count: written) }
        let answers = try #require(read)
        #expect(answers.complete, "not every one of \(written) pings was answered")
        #expect(answers.duplicates == 0)

        // Closing the input ends the session; nothing is left to write.
        input.closeWrite()
        let ended = await ends(serving)
        #expect(ended == true, "the server did not end when its input closed")
        #expect(transport.drain(timeout: .seconds(5)))
    }

    @Test func sendingDoesNotWaitForTheClientToRead() async throws {
        signal(SIGPIPE, SIG_IGN)
        let input = try Pipe()
        let output = try Pipe()
        defer {
            input.close()
            output.close()
        }
        let transport = StdioLineTransport(input: input.read, output: output.write, maxMessageBytes: 1 << 20)
        // 1 MiB of answers into a pipe that holds 64 KiB and that nobody reads: each send returns at once (the
        // writing thread waits, not the task; before, the send blocked a thread of the shared pool until the client read).
        let message = Data(repeating: UInt8(ascii: "x"), count: 4096)
        let sent = Task {
            for _ in 0..<256 { try await transport.send(message) }
            return true
        }
        let finished = await ends(sent)
        #expect(finished == true, "sending 1 MiB waited for a client that does not read")
        // Nobody reads: the answers cannot all be written, and waiting for them gives up.
        #expect(!transport.drain(timeout: .milliseconds(200)))
        #expect(transport.pendingOutput.messages > 200)
        let readEnd = output.read
        let drained = await onThread {
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            var total = 0
            while total < 256 * 4097 {
                let read = chunk.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress, $0.count) }
                guard read > 0 else { break }
                total += read
            }
            return total
        }
        #expect(drained == 256 * 4097)
        #expect(transport.drain(timeout: .seconds(5)))
    }

    @Test func aClientGoneDropsTheQueueAndNoLongerHoldsTheReader() async throws {
        signal(SIGPIPE, SIG_IGN)
        let output = try Pipe()
        defer { output.close() }
        let writer = StdioWriter(fd: output.write, maxMessages: 1, maxBytes: 1 << 20)
        output.closeRead()
        try writer.enqueue(Data("{}".utf8))
        // The write fails (EPIPE): the queue is dropped, so the reader is not held, and later messages are refused.
        let released = await onThread(seconds: 60) {
            writer.waitForRoom()
            return true
        }
        #expect(released == true, "the reader waited for room behind a client that is gone")
        #expect(writer.pending.messages == 0)
        #expect(throws: StdioWriter.Closed.self) { try writer.enqueue(Data("{}".utf8)) }
        #expect(!writer.drain(timeout: .seconds(1)))
    }
}

/// A continuation resumed by whichever of its resumers comes first (a result, or a timeout's `nil`).
final class FirstResult<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T?, Never>?>

    init(_ continuation: CheckedContinuation<T?, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: T?) {
        let waiting = continuation.withLock { stored in
            defer { stored = nil }
            return stored
        }
        waiting?.resume(returning: value)
    }
}
