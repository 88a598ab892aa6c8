import PeonSystem
import Synchronization

/// Token buckets keyed by a string (the mediator uses module + grant), refilled continuously.
///
/// A bucket for `60/minute` holds at most 60 tokens and gains one every second; a call takes one
/// token or is refused. The clock is injectable so tests decide time instead of sleeping.
package final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = SleepingLock<[String: Bucket]>([:])
    private let now: @Sendable () -> ContinuousClock.Instant

    /// Creates a limiter reading time from `now` (default: the continuous clock).
    package init(now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.now = now
    }

    /// Takes one token from the bucket `key` with rate `rate`; `false` when the bucket is empty.
    package func take(_ key: String, rate: Rate) -> Bool {
        let instant = now()
        return buckets.withLock { buckets in
            let capacity = Double(rate.count)
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: instant)
            let elapsed = instant - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let periodSeconds = Double(rate.period.components.seconds)
                + Double(rate.period.components.attoseconds) / 1e18
            if seconds > 0, periodSeconds > 0 {
                bucket.tokens = min(capacity, bucket.tokens + seconds * capacity / periodSeconds)
                bucket.updated = instant
            }
            guard bucket.tokens >= 1 else {
                buckets[key] = bucket
                return false
            }
            bucket.tokens -= 1
            buckets[key] = bucket
            return true
        }
    }
}
