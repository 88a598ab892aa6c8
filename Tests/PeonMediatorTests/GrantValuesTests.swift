import Testing
@testable import PeonMediator

/// Sizes, durations and rates are small languages a user writes by hand: every malformed value must
/// be refused, never read as something else.
@Suite struct GrantValuesTests {
    @Test(arguments: [
        ("64MiB", 64 << 20), ("2MiB", 2 << 20), ("1 KiB", 1024), ("512", 512), ("512B", 512),
        ("1GiB", 1 << 30), ("3MB", 3_000_000), ("1kB", 1000), ("1_000", 1000),
    ])
    func sizesParseToBytes(text: String, bytes: Int) {
        #expect(ByteSize(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "MiB", "-1MiB", "1.5MiB", "64mib", "64 MiB ", "64  MiB", "1_", "_1", "1__0",
                      "99999999999999999999", "9223372036854775807KiB", "64XB", "0x10"])
    func malformedSizesAreRefused(text: String) {
        #expect(ByteSize(parsing: text) == nil)
    }

    @Test(arguments: [("30s", Duration.seconds(30)), ("500ms", .milliseconds(500)), ("2m", .seconds(120)),
                      ("1h", .seconds(3600)), ("168h", .seconds(604_800)), ("604800000ms", .seconds(604_800)),
                      ("10080m", .seconds(604_800))])
    func durationsParse(text: String, value: Duration) {
        #expect(parseGrantDuration(text) == value)
    }

    @Test(arguments: ["30", "0s", "-1s", "1.5s", "s", "30 seconds", "1d", "9223372036854775807h",
                      // Fit in Int but lie past the one-week bound (the first two once crashed a run).
                      "9223372036854775807s", "2562047788015215h", "9223372036854775807ms", "169h", "10081m",
                      "604800001ms", "99999999999999999999s"])
    func malformedDurationsAreRefused(text: String) {
        #expect(parseGrantDuration(text) == nil)
    }

    @Test(arguments: [("60/minute", 60, 60), ("1/second", 1, 1), ("10/hour", 10, 3600), ("5/day", 5, 86400),
                      ("3/s", 3, 1)])
    func ratesParse(text: String, count: Int, seconds: Int64) {
        #expect(Rate(parsing: text) == Rate(count: count, period: .seconds(seconds)))
    }

    @Test(arguments: ["60", "0/minute", "-1/minute", "60/fortnight", "60/", "/minute", "60/minute/2", "1.5/s",
                      "100/0s", "100/0", "99999999999999999999/s"])
    func malformedRatesAreRefused(text: String) {
        #expect(Rate(parsing: text) == nil)
    }
}

/// The rate limiter is a token bucket per key; time comes from an injected clock, never a sleep.
@Suite struct RateLimiterTests {
    @Test func aBucketEmptiesAtItsCapacityAndRefillsWithTime() {
        let clock = ManualClock()
        let limiter = RateLimiter(now: { clock.now() })
        let rate = Rate(count: 3, period: .seconds(60))
        #expect((0..<3).allSatisfy { _ in limiter.take("a", rate: rate) })
        #expect(!limiter.take("a", rate: rate))
        #expect(limiter.take("b", rate: rate), "buckets are per key")
        clock.advance(.seconds(19))
        #expect(!limiter.take("a", rate: rate), "one token takes 20 seconds to come back")
        clock.advance(.seconds(1))
        #expect(limiter.take("a", rate: rate))
        #expect(!limiter.take("a", rate: rate))
    }
}
