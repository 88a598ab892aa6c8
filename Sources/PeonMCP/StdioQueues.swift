import Foundation
import PeonSystem

/// The messages a stdio session has to write, and the thread of its own that writes them.
///
/// ``enqueue(_:)`` never blocks: an answer is queued and the caller (a task on the shared cooperative pool) goes
/// on. A dedicated thread writes the queue, oldest first, with blocking writes: a client that does not read its
/// stdout stops that thread only. The reading side calls ``waitForRoom()`` before it takes in each message: while
/// `maxMessages` messages or `maxBytes` bytes wait to be written (the one being written counts until it is), it
/// blocks, so a client that sends requests but never reads the answers fills its own pipe to the server instead of
/// the server's memory.
///
/// When a write fails (the client closed its end: `EPIPE`), everything queued is dropped, later messages are refused,
/// and nothing waits for room any more: there is nobody to answer.
///
/// `@unchecked Sendable`: every stored property that changes is touched only under `condition`'s lock.
final class StdioWriter: @unchecked Sendable {
    /// Why a message could not be queued.
    struct Closed: Error, Sendable {
        /// The `errno` of the write that failed, or `nil` when the writer was closed.
        let code: Int32?
    }

    /// Reading pauses while this many messages wait to be written.
    let maxMessages: Int
    /// Reading pauses while the messages waiting to be written hold this many bytes.
    let maxBytes: Int
    private let fd: Int32
    private let condition = NSCondition()
    private var queue: [Data] = []
    private var head = 0
    private var queuedBytes = 0
    private var failure: Int32?
    private var closed = false
    private var started = false
    private var mostQueued = 0

    /// A writer of `fd` that pauses reading at `maxMessages` messages or `maxBytes` bytes waiting (each at least 1).
    init(fd: Int32, maxMessages: Int, maxBytes: Int) {
        self.fd = fd
        self.maxMessages = max(1, maxMessages)
        self.maxBytes = max(1, maxBytes)
    }

    /// Queues `data` and a newline to be written after everything queued before it; throws ``Closed`` once a write
    /// failed or the writer was closed. Starts the writing thread the first time.
    func enqueue(_ data: Data) throws(Closed) {
        var line = data
        line.append(UInt8(ascii: "\n"))
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw Closed(code: failure) }
        if closed { throw Closed(code: nil) }
        if !started {
            started = true
            let thread = Thread { [self] in run() }
            thread.name = "peon-wasm mcp stdout"
            thread.start()
        }
        queue.append(line)
        // A message is at most the size of an array in memory: this sum cannot overflow.
        queuedBytes += line.count
        mostQueued = max(mostQueued, queue.count - head)
        condition.broadcast()
    }

    /// Blocks the calling thread (the reader's, never a pool thread) while the messages waiting to be written reach
    /// `maxMessages` or `maxBytes`; returns at once when the writer failed or was closed.
    func waitForRoom() {
        condition.lock()
        while failure == nil && !closed && (queue.count - head >= maxMessages || queuedBytes >= maxBytes) {
            condition.wait()
        }
        condition.unlock()
    }

    /// Waits until everything queued is written (`true`), a write failed, or `timeout` passed (`false`).
    func drain(timeout: Duration) -> Bool {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: max(0, seconds))
        condition.lock()
        defer { condition.unlock() }
        while failure == nil && queue.count > head {
            if !condition.wait(until: deadline) { break }
        }
        return failure == nil && queue.count == head
    }

    /// Ends the writer once what is queued is written (its thread then ends); later messages are refused.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// The messages and bytes waiting to be written now, and the most messages that ever waited at once.
    var pending: (messages: Int, bytes: Int, most: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count - head, queuedBytes, mostQueued)
    }

    private func run() {
        while true {
            condition.lock()
            while queue.count == head && !closed && failure == nil { condition.wait() }
            guard queue.count > head, failure == nil else {
                condition.unlock()
                return
            }
            let next = queue[head]
            condition.unlock()
            let error = writeAll(next)
            condition.lock()
            if let error {
                failure = error
                queue = []
                head = 0
                queuedBytes = 0
            } else {
                queue[head] = Data()
                head += 1
                queuedBytes -= next.count
                // Drop the written messages' slots now and then, so the array does not grow for as long as the session.
                if head >= 64 && head * 2 >= queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Writes all of `bytes` (waiting for room on a descriptor a parent left non-blocking); the `errno` of a failure.
    private func writeAll(_ bytes: Data) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[(bytes.startIndex + offset)...].withUnsafeBytes { raw in
                retryingInterrupts { write(fd, raw.baseAddress, raw.count) }
            }
            if written < 0 {
                let code = errno
                guard code == EAGAIN || code == EWOULDBLOCK else { return code }
                var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = retryingInterrupts { poll(&descriptor, 1, 1000) }
                continue
            }
            offset += written
        }
        return nil
    }
}

/// The messages read from stdin that the MCP server has not taken yet: at most `capacity`. The reading thread blocks
/// in ``put(_:)`` while it is full, so the server takes messages in as it handles them, not as fast as a client
/// writes them.
///
/// `@unchecked Sendable`: every stored property that changes is touched only under `condition`'s lock.
final class LineInbox: @unchecked Sendable {
    /// The most messages held for the server, by default.
    static let defaultCapacity = 4

    private let capacity: Int
    private let condition = NSCondition()
    private var buffer: [Data] = []
    private var finished = false
    private var consumer: CheckedContinuation<Data?, Never>?

    /// An inbox that holds at most `capacity` messages (at least one).
    init(capacity: Int = LineInbox.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    /// Hands `data` to the server, blocking the calling thread while `capacity` messages wait; `false` when the
    /// inbox was finished (the server takes nothing more).
    func put(_ data: Data) -> Bool {
        condition.lock()
        while buffer.count >= capacity && !finished { condition.wait() }
        return handOver(data)
    }

    /// Hands `data` to the server at once, whatever the inbox holds (never blocks: the caller is not the reading
    /// thread); `false` when the inbox was finished. Used for the few messages the server gives itself (the answer that
    /// releases an approval question given up, ``PendingElicitations``), at most one per approval.
    func inject(_ data: Data) -> Bool {
        condition.lock()
        return handOver(data)
    }

    /// With `condition` locked: gives `data` to a waiting server or queues it, then unlocks; `false` when finished.
    private func handOver(_ data: Data) -> Bool {
        if finished {
            condition.unlock()
            return false
        }
        if let waiting = consumer {
            consumer = nil
            condition.unlock()
            waiting.resume(returning: data)
            return true
        }
        buffer.append(data)
        condition.unlock()
        return true
    }

    /// Ends the messages: the server takes those held, then sees the end.
    func finish() {
        condition.lock()
        finished = true
        let waiting = consumer
        consumer = nil
        condition.broadcast()
        condition.unlock()
        waiting?.resume(returning: nil)
    }

    /// The next message, or `nil` at the end (or when the waiting task is cancelled: the server stopped).
    func next() async -> Data? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Data?, Never>) in
                condition.lock()
                if !buffer.isEmpty {
                    let data = buffer.removeFirst()
                    condition.broadcast()
                    condition.unlock()
                    continuation.resume(returning: data)
                } else if finished || Task.isCancelled {
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else {
                    consumer = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            finish()
        }
    }
}
