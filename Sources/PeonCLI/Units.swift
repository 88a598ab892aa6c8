import ArgumentParser

/// A byte size written as a number with an optional binary or decimal unit: `4096`, `64KiB`, `256MiB`,
/// `1GiB`, `2MB`.
struct ByteSize: ExpressibleByArgument, Sendable {
    let bytes: Int

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: " ")
        let digits = text.prefix(while: { $0.isNumber })
        guard !digits.isEmpty, let value = Int(digits) else { return nil }
        let unit = text.dropFirst(digits.count).lowercased()
        let multipliers: [String: Int] = [
            "": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
            "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
        ]
        guard let multiplier = multipliers[unit] else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        bytes = product
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// A duration written as a number with a unit: `500ms`, `30s`, `2m`, `1h` (a bare number is seconds).
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: " ")
        let number = text.prefix(while: { $0.isNumber || $0 == "." })
        guard !number.isEmpty, let value = Double(number), value.isFinite, value > 0 else { return nil }
        let scale: Double
        switch text.dropFirst(number.count) {
        case "", "s": scale = 1
        case "ms": scale = 0.001
        case "m", "min": scale = 60
        case "h": scale = 3600
        default: return nil
        }
        guard value * scale <= 86_400 * 7 else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        String(drop(while: { $0 == character }).reversed().drop(while: { $0 == character }).reversed())
    }
}
