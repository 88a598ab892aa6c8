import Foundation
@testable import PeonRuntime
import Testing

/// The worker's deadline is the supervisor's (``Supervisor/workerDeadline(monotonicNanoseconds:timeout:)``): never
/// later than `--timeout` from now, and never later than the moment the supervisor's clock ends.
@Suite struct WorkerDeadlineTests {
    /// How far `instant` is from now, in whole milliseconds.
    static func millisecondsAhead(_ instant: ContinuousClock.Instant) -> Int64 {
        let left = instant - .now
        return left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
    }

    @Test func theSupervisorsEarlierEndWins() {
        let end = Supervisor.monotonicNanoseconds() + 1_000_000_000
        let ahead = Self.millisecondsAhead(Supervisor.workerDeadline(monotonicNanoseconds: end, timeout: .seconds(30)))
        #expect((900...1000).contains(ahead), "\(ahead) ms")
    }

    /// The whole timeout is passed on, fractions of a second included: `500ms` was cut to 0 s, and every run under one
    /// second stopped at once (found reviewing this change).
    @Test func theDeadlineArgumentCountsFractionsOfASecond() throws {
        let before = Supervisor.monotonicNanoseconds()
        let argument = Supervisor.deadlineArgument(after: .milliseconds(1500))
        #expect(argument.first == "--supervisor-deadline")
        let end = try #require(argument.last.flatMap { Int64($0) })
        #expect((1_500_000_000...1_600_000_000).contains(end - before), "\(end - before) ns")
        #expect(Supervisor.deadlineArgument(after: .seconds(Int64.max)).isEmpty)
    }

    @Test func anEndAlreadyPassedIsNow() {
        let end = Supervisor.monotonicNanoseconds() - 5_000_000_000
        #expect(Self.millisecondsAhead(Supervisor.workerDeadline(monotonicNanoseconds: end, timeout: .seconds(30))) <= 0)
    }

    /// Absent, negative, or later than the timeout (a value from outside): the timeout from now.
    @Test(arguments: [nil, -1, Int64.min, Int64.max])
    func otherwiseTheTimeoutFromNow(end: Int64?) {
        let ahead = Self.millisecondsAhead(Supervisor.workerDeadline(monotonicNanoseconds: end, timeout: .seconds(3)))
        #expect((2900...3000).contains(ahead), "\(ahead) ms")
    }
}
