import Synchronization

/// The calls of one ``ToolServer``: at most `slots` run at once, and behind them at most `maxWaiting` wait, their
/// inputs at most `maxWaitingBytes` together. A client that sends calls faster than they run is answered with an
/// error for each call past that, at once, instead of making the host hold every one of them (its input, its task)
/// for as long as the line is.
///
/// A call takes a place in line with ``enter(bytes:)`` (a slot at once when one is free), waits for its slot with
/// ``wait(_:)``, and gives the slot back with ``release()`` when it has run. A place can be withdrawn
/// (``withdraw(_:)``: the call's client went away, its session ended, its task was cancelled) until the call
/// starts; a slot granted to a place that is withdrawn before the call took it passes to the next in line.
///
/// Waiting is a suspended task, not a thread: a call gets its thread only when it runs.
final class CallLimiter: Sendable {
    /// A call's place in line (or its slot, once granted).
    struct Place: Sendable, Hashable {
        fileprivate let id: Int
    }

    /// Why a call was not let into the line.
    enum Refusal: Error, Equatable, Sendable {
        /// `maxWaiting` calls wait already.
        case tooManyWaiting(limit: Int)
        /// The calls waiting hold `maxWaitingBytes` of input (with this one's, more).
        case tooManyBytes(limit: Int)

        /// What the client is told: which limit, and what to do.
        var message: String {
            switch self {
            case .tooManyWaiting(let limit):
                return "the server is busy: every call slot is taken (--max-concurrent) and the line of calls waiting for one is full (\(limit), --max-waiting); send the call again when one of yours has answered"
            case .tooManyBytes(let limit):
                return "the server is busy: every call slot is taken (--max-concurrent) and the calls waiting for one hold \(limit) bytes of input together, the most they may; send the call again when one of yours has answered"
            }
        }
    }

    private struct Entry {
        let id: Int
        /// Where the call stands in line: the order its request arrived in when the transport numbered it (stdio), else
        /// the order it entered (``enter(bytes:arrival:)``).
        let order: Int
        let bytes: Int
        /// A slot is this entry's, not yet taken by its call.
        var granted: Bool
        /// The call's wait, once it waits.
        var continuation: CheckedContinuation<Bool, Never>?
    }

    private struct State {
        var free: Int
        var nextID = 0
        /// Places in line, oldest first: waiting ones, and granted ones whose call has not taken its slot yet.
        var line: [Entry] = []
        var waitingCount = 0
        var waitingBytes = 0
    }

    private let state: Mutex<State>
    /// The most calls that wait at once.
    let maxWaiting: Int
    /// The most input bytes the waiting calls hold together.
    let maxWaitingBytes: Int

    /// A limiter with `slots` (at least one) and room for `maxWaiting` calls holding `maxWaitingBytes` of input.
    init(slots: Int, maxWaiting: Int, maxWaitingBytes: Int) {
        state = Mutex(State(free: max(1, slots)))
        self.maxWaiting = max(0, maxWaiting)
        self.maxWaitingBytes = max(0, maxWaitingBytes)
    }

    /// A place for a call whose input is `bytes` long: a slot at once when one is free, else a place among the
    /// waiting, else a refusal (`maxWaiting` calls wait, or their inputs and this one would pass `maxWaitingBytes`;
    /// a call that would wait alone is never refused for its size). `arrival` is the request's number in the order
    /// its transport read it, when it numbers them: a waiting place goes behind those that came before it.
    func enter(bytes: Int, arrival: Int? = nil) -> Result<Place, Refusal> {
        state.withLock { state in
            state.nextID += 1
            let id = state.nextID
            let order = arrival ?? id
            if state.free > 0 {
                state.free -= 1
                state.line.append(Entry(id: id, order: order, bytes: bytes, granted: true))
                return .success(Place(id: id))
            }
            if state.waitingCount >= maxWaiting { return .failure(.tooManyWaiting(limit: maxWaiting)) }
            let size = max(0, bytes)
            // With no call waiting the sum is 0 and cannot overflow; with one, an overflow is past the limit too.
            let (total, overflow) = state.waitingBytes.addingReportingOverflow(size)
            if state.waitingCount > 0 && (overflow || total > maxWaitingBytes) {
                return .failure(.tooManyBytes(limit: maxWaitingBytes))
            }
            // In the order the requests came, not the order their handlers ran in: the SDK starts each request's
            // handler in a task of its own, and forty calls sent at once entered out of order (`…, 11, 4, 12`).
            let position = state.line.firstIndex { !$0.granted && $0.order > order } ?? state.line.endIndex
            state.line.insert(Entry(id: id, order: order, bytes: size, granted: false), at: position)
            state.waitingCount += 1
            state.waitingBytes = total
            return .success(Place(id: id))
        }
    }

    /// Waits until `place` holds a slot: `true` (the caller holds it now and must ``release()`` it), or `false` when
    /// the place was withdrawn or the waiting task cancelled (the place is gone; nothing to release).
    func wait(_ place: Place) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer: Bool? = state.withLock { state in
                    guard let index = state.line.firstIndex(where: { $0.id == place.id }) else { return false }
                    if state.line[index].granted {
                        state.line.remove(at: index)
                        return true
                    }
                    // A cancellation that came before this registration: its handler found nothing to resume.
                    if Task.isCancelled {
                        let entry = state.line.remove(at: index)
                        state.waitingCount -= 1
                        state.waitingBytes -= entry.bytes
                        return false
                    }
                    state.line[index].continuation = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            withdraw(place)
        }
    }

    /// Takes `place` out of line unless its call has started: a waiting call's ``wait(_:)`` returns `false`, and a
    /// slot granted to it passes to the next in line. Does nothing for a place whose call runs or ran.
    func withdraw(_ place: Place) {
        var resumes: [(CheckedContinuation<Bool, Never>, Bool)] = []
        state.withLock { state in
            guard let index = state.line.firstIndex(where: { $0.id == place.id }) else { return }
            let entry = state.line.remove(at: index)
            if entry.granted {
                if let next = Self.grantNext(&state) { resumes.append((next, true)) }
            } else {
                state.waitingCount -= 1
                state.waitingBytes -= entry.bytes
                if let continuation = entry.continuation { resumes.append((continuation, false)) }
            }
        }
        for (continuation, answer) in resumes { continuation.resume(returning: answer) }
    }

    /// Gives back the slot of a call that has run: it goes to the oldest waiting call.
    func release() {
        let next = state.withLock { Self.grantNext(&$0) }
        next?.resume(returning: true)
    }

    /// Gives a free slot to the oldest waiting place (or back to the pool); returns the wait to resume, if that call
    /// waits already (its entry is then gone: the call holds the slot).
    private static func grantNext(_ state: inout State) -> CheckedContinuation<Bool, Never>? {
        guard let index = state.line.firstIndex(where: { !$0.granted }) else {
            state.free += 1
            return nil
        }
        state.waitingCount -= 1
        state.waitingBytes -= state.line[index].bytes
        if let continuation = state.line[index].continuation {
            state.line.remove(at: index)
            return continuation
        }
        state.line[index].granted = true
        return nil
    }

    /// Whether `place` holds a slot its call has not taken yet (for tests).
    func isGranted(_ place: Place) -> Bool {
        state.withLock { $0.line.first { $0.id == place.id }?.granted ?? false }
    }

    /// The calls waiting now, and the input bytes they hold (for tests).
    var waiting: (count: Int, bytes: Int) {
        state.withLock { ($0.waitingCount, $0.waitingBytes) }
    }
}
