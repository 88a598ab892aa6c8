import Foundation
@testable import PeonMCP
import PeonRuntime
import Testing

/// Threat: an MCP client that sends calls faster than they run makes the server hold every waiting call (its input,
/// its task) without bound, and a call whose client went away or cancelled it still starts when its turn comes.
@Suite struct CallLimiterTests {
    /// The place `result` holds; fails the test when it is a refusal.
    func place(_ result: Result<CallLimiter.Place, CallLimiter.Refusal>, sourceLocation: SourceLocation = #_sourceLocation) throws -> CallLimiter.Place {
        switch result {
        case .success(let place): return place
        case .failure(let refusal):
            Issue.record("refused: \(refusal.message)", sourceLocation: sourceLocation)
            throw refusal
        }
    }

    /// `task`'s value, or `nil` when it has none within `seconds` (a wait that never ends fails the test instead of
    /// hanging it; the task is left behind).
    func within(_ task: Task<Bool, Never>, seconds: Int = 10) async -> Bool? {
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool?, Never>) in
            let once = FirstResult(continuation)
            Task { once.resume(await task.value) }
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                once.resume(nil)
            }
        }
    }

    @Test func callsPastTheWaitingLimitAreRefusedAtOnce() throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 2, maxWaitingBytes: 1 << 20)
        _ = try place(limiter.enter(bytes: 10))
        let first = try place(limiter.enter(bytes: 10))
        _ = try place(limiter.enter(bytes: 10))
        #expect(limiter.waiting.count == 2)
        let refused = limiter.enter(bytes: 10)
        #expect(refused == .failure(.tooManyWaiting(limit: 2)))
        if case .failure(let refusal) = refused { #expect(refusal.message.contains("--max-waiting")) }
        // A place given up makes room for one more.
        limiter.withdraw(first)
        #expect(limiter.waiting.count == 1)
        _ = try place(limiter.enter(bytes: 10))
        #expect(limiter.enter(bytes: 10) == .failure(.tooManyWaiting(limit: 2)))
    }

    /// The SDK starts each request's handler in a task of its own, so on stdio calls entered the line in the order their
    /// tasks ran (`1, 2, 3, 5, …, 11, 4, 12` with forty sent at once). Numbered as they were read, they wait in that order.
    @Test func waitingCallsAreGrantedInTheOrderTheyArrivedNotTheOrderTheyEntered() async throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 10, maxWaitingBytes: 1 << 20)
        let running = try place(limiter.enter(bytes: 1, arrival: 1))
        #expect(await limiter.wait(running))
        var places: [Int: CallLimiter.Place] = [:]
        for arrival in [2, 3, 5, 6, 4, 8, 7] { places[arrival] = try place(limiter.enter(bytes: 1, arrival: arrival)) }
        var granted: [Int] = []
        for _ in 0..<7 {
            limiter.release()
            // Exactly one waiting place holds the slot now: the oldest arrival.
            let holders = places.filter { limiter.isGranted($0.value) }
            #expect(holders.count == 1)
            let holder = holders.first
            guard let (arrival, place) = holder else { Issue.record("no place was granted"); return }
            #expect(await limiter.wait(place))
            places[arrival] = nil
            granted.append(arrival)
        }
        #expect(granted == [2, 3, 4, 5, 6, 7, 8])
    }

    @Test func noCallWaitsWhenTheWaitingLimitIsZero() throws {
        let limiter = CallLimiter(slots: 2, maxWaiting: 0, maxWaitingBytes: 1 << 20)
        _ = try place(limiter.enter(bytes: 1))
        _ = try place(limiter.enter(bytes: 1))
        #expect(limiter.enter(bytes: 1) == .failure(.tooManyWaiting(limit: 0)))
    }

    @Test func waitingInputsPastTheByteBudgetAreRefused() throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 100, maxWaitingBytes: 100)
        _ = try place(limiter.enter(bytes: 1_000))  // runs: its input is not the waiting calls'
        // One call alone may wait whatever its size (the message limit bounds it).
        let big = try place(limiter.enter(bytes: 500))
        #expect(limiter.enter(bytes: 1) == .failure(.tooManyBytes(limit: 100)))
        limiter.withdraw(big)
        _ = try place(limiter.enter(bytes: 60))
        #expect(limiter.enter(bytes: 50) == .failure(.tooManyBytes(limit: 100)))
        _ = try place(limiter.enter(bytes: 40))
        #expect(limiter.waiting.count == 2)
        #expect(limiter.waiting.bytes == 100)
    }

    @Test func aWithdrawnWaitingCallNeverGetsItsSlot() async throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 4, maxWaitingBytes: 1 << 20)
        let running = try place(limiter.enter(bytes: 1))
        #expect(await limiter.wait(running))
        let waiting = try place(limiter.enter(bytes: 1))
        let waiter = Task { await limiter.wait(waiting) }
        // The waiter registers (or finds itself withdrawn): either way it must answer `false`.
        try await Task.sleep(for: .milliseconds(50))
        limiter.withdraw(waiting)
        #expect(await within(waiter) == false)
        #expect(limiter.waiting.count == 0)
        // The slot went back to the pool when the running call ended, not to the withdrawn one.
        limiter.release()
        let next = try place(limiter.enter(bytes: 1))
        #expect(await within(Task { await limiter.wait(next) }) == true)
    }

    @Test func aCancelledWaitingCallLeavesTheLine() async throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 1, maxWaitingBytes: 1 << 20)
        let running = try place(limiter.enter(bytes: 1))
        #expect(await limiter.wait(running))
        let waiting = try place(limiter.enter(bytes: 1))
        let waiter = Task { await limiter.wait(waiting) }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(await within(waiter) == false)
        #expect(limiter.waiting.count == 0)
        _ = try place(limiter.enter(bytes: 1))  // its place is free again
    }

    @Test func aSlotGrantedToAPlaceWithdrawnBeforeItsCallTookItPassesOn() async throws {
        let limiter = CallLimiter(slots: 1, maxWaiting: 4, maxWaitingBytes: 1 << 20)
        let running = try place(limiter.enter(bytes: 1))
        #expect(await limiter.wait(running))
        let second = try place(limiter.enter(bytes: 1))
        let third = try place(limiter.enter(bytes: 1))
        let waiter = Task { await limiter.wait(third) }
        limiter.release()  // granted to `second`, whose call has not asked for it yet
        limiter.withdraw(second)  // its client went away: the slot passes to `third`
        #expect(await within(waiter) == true)
        #expect(await limiter.wait(second) == false)
    }

    /// A call's answer is given once, by whichever comes first (the call's thread or a stop that cuts it off), and the
    /// waiting handler resumes exactly once, whether the answer comes before or after it waits.
    @Test func aPendingAnswerIsGivenOnceWhicheverComesFirst() async {
        let early = PendingAnswer()
        early.give(ToolAnswer(text: "first", isError: false, runID: "r", outcome: "ok"))
        early.give(ToolAnswer(text: "second", isError: true, runID: "r", outcome: "signal:TERM"))
        let before = await withCheckedContinuation { early.wait($0) }
        #expect(before.text == "first")

        let late = PendingAnswer()
        let task = Task { await withCheckedContinuation { late.wait($0) } }
        try? await Task.sleep(for: .milliseconds(50))
        late.give(ToolAnswer(text: "stop", isError: true, runID: "", outcome: "signal:TERM"))
        late.give(ToolAnswer(text: "thread", isError: false, runID: "r", outcome: "ok"))
        #expect(await task.value.text == "stop")
    }
}
