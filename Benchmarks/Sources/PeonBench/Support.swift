import CMallocInfo
import Foundation

/// Per-operation timings: each sample is one batch of `batch` operations divided by `batch`.
struct Stats {
    var samples: [Double]  // nanoseconds per operation, sorted
    var median: Double { samples[samples.count / 2] }
    var p99: Double { samples[min(samples.count - 1, Int((Double(samples.count) * 0.99).rounded(.down)))] }
    var mean: Double { samples.reduce(0, +) / Double(samples.count) }
}

func nanoseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
}

/// Runs `warmup` batches untimed, then `count` timed batches of `batch` operations each.
func measure(count: Int, batch: Int, warmup: Int = 3, _ body: () throws -> Void) rethrows -> Stats {
    for _ in 0..<warmup { try body() }
    var samples: [Double] = []
    samples.reserveCapacity(count)
    let clock = ContinuousClock()
    for _ in 0..<count {
        let start = clock.now
        try body()
        samples.append(nanoseconds(clock.now - start) / Double(batch))
    }
    return Stats(samples: samples.sorted())
}

/// Two operations measured in turn, one batch of each per sample (the order swapped every sample), so the drift of a
/// shared machine lands on both: the ratio of their medians compares samples taken moments apart, not two blocks of
/// samples taken seconds apart.
func measureAlternately(
    count: Int, batch: Int, warmup: Int = 3, _ first: () throws -> Void, _ second: () throws -> Void
) rethrows -> (first: Stats, second: Stats) {
    for _ in 0..<warmup {
        try first()
        try second()
    }
    var firstSamples: [Double] = []
    var secondSamples: [Double] = []
    firstSamples.reserveCapacity(count)
    secondSamples.reserveCapacity(count)
    let clock = ContinuousClock()
    func sample(_ body: () throws -> Void, into samples: inout [Double]) rethrows {
        let start = clock.now
        try body()
        samples.append(nanoseconds(clock.now - start) / Double(batch))
    }
    for index in 0..<count {
        if index % 2 == 0 {
            try sample(first, into: &firstSamples)
            try sample(second, into: &secondSamples)
        } else {
            try sample(second, into: &secondSamples)
            try sample(first, into: &firstSamples)
        }
    }
    return (Stats(samples: firstSamples.sorted()), Stats(samples: secondSamples.sorted()))
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return nanoseconds(ContinuousClock.now - start) / 1e9
}

func formatNS(_ ns: Double) -> String {
    if ns < 0 { return "−" + formatNS(-ns) }
    if ns >= 1e9 { return String(format: "%.2f s", ns / 1e9) }
    if ns >= 1e6 { return String(format: "%.2f ms", ns / 1e6) }
    if ns >= 1e4 { return String(format: "%.1f µs", ns / 1e3) }
    if ns >= 1e3 { return String(format: "%.2f µs", ns / 1e3) }
    return String(format: "%.0f ns", ns)
}

/// A signed difference: "+1.2 µs" or "−300 ns".
func formatDelta(_ ns: Double) -> String {
    ns < 0 ? formatNS(ns) : "+" + formatNS(ns)
}

func formatRate(_ perSecond: Double) -> String {
    if perSecond >= 1e6 { return String(format: "%.2f M/s", perSecond / 1e6) }
    if perSecond >= 1e3 { return String(format: "%.1f k/s", perSecond / 1e3) }
    return String(format: "%.1f /s", perSecond)
}

func formatCount(_ value: Int) -> String {
    let digits = Array(String(value))
    var out = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(digit)
    }
    return out
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The Markdown report, built section by section and flushed after each so a crash keeps what was measured.
final class Report {
    private(set) var text = ""
    let path: String
    init(path: String) { self.path = path }
    func line(_ s: String = "") {
        text += s + "\n"
        let bytes = Array((s + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    func table(_ header: [String], _ rows: [[String]]) {
        line("| " + header.joined(separator: " | ") + " |")
        line("|" + header.map { _ in "---" }.joined(separator: "|") + "|")
        for row in rows { line("| " + row.joined(separator: " | ") + " |") }
        line()
    }
}

/// Bytes the C heap has handed out and not taken back (glibc `mallinfo2`), including large mmap'd blocks.
func heapBytesInUse() -> Int {
    let info = mallinfo2()
    return Int(info.uordblks) + Int(info.hblkhd)
}

/// Resident set size of this process in bytes (Linux /proc/self/statm).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func makeTemporaryDirectory(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "peon-bench-\(getpid())-\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A deterministic generator so every run (and pycasbin) sees the same policies and requests.
struct SplitMix {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: (z ^ (z >> 31)) % UInt64(bound))
    }
}

/// A progress line on standard error when it is a terminal (the report goes to standard output and the file);
/// piped or redirected, nothing.
func progress(_ text: String) {
    guard isatty(2) == 1 else { return }
    let bytes = Array(("  … " + text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
