// Fuzzes the Casbin-compatible policy engine as `peon-wasm run --model M --policy P` feeds it: the model text
// (sections, request/policy definitions, role definitions, effect, matcher expression), the policy CSV, and
// requests decided against the result (so compiled matchers and patterns are evaluated too).
//
// Input: MODEL, then a line `%%`, then POLICY CSV, then a line `%%`, then one request per line (fields separated by
// `,`). A missing part takes a default: the built-in model, an empty policy, or a few requests made from the
// policy lines themselves.
import PeonMediator
import PeonPolicy
import FuzzReplay

/// libFuzzer's entry point: one model, policy and request list per call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicy(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let parts = text.split(separator: "\n%%\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
    let model = parts.count > 1 ? parts[0] : BuiltinModel.text
    let policy = parts.count > 1 ? parts[1] : parts[0]
    let snapshot: PolicySnapshot
    do {
        snapshot = try PolicySnapshot.build(model: model, modelSource: "fuzz.conf", policy: policy,
                                            policySource: "fuzz.csv", compiled: nil)
    } catch {
        _ = error.description
        return 0
    }
    var requests: [[String]] = []
    if parts.count > 2 {
        requests = parts[2].split(separator: "\n").prefix(16).map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingPrefixSpaces() }
        }
    }
    // Also each policy line's own fields as a request (the fields after the section name), so rules get matched.
    for line in policy.split(separator: "\n").prefix(8) {
        requests.append(Array(line.split(separator: ",", omittingEmptySubsequences: false).dropFirst()
            .map { $0.trimmingPrefixSpaces() }))
    }
    let enforcer = snapshot.enforcer
    for fields in requests {
        // Straight to the engine, with whatever number of fields the line had (a wrong count must be an error).
        _ = try? enforcer.enforce(fields.map { PolicyValue.string($0) })
        // And as the mediator asks, with the `ctx` object a model may read attributes of.
        let value = { (index: Int) in index < fields.count ? fields[index] : "" }
        let request = PolicyRequest(subject: value(0), object: value(1), action: value(2), arguments: value(3),
                                    context: ["hour": .number(9), "weekday": .number(2), "run": .string(value(4)),
                                              "sha256": .string(value(5))])
        _ = snapshot.decide(request)
    }
    return 0
}

extension Substring {
    /// The text without leading spaces, as the CSV reader treats a field after `, `.
    func trimmingPrefixSpaces() -> String { String(drop(while: { $0 == " " })) }
}

#if !PEON_LIBFUZZER
/// Without libFuzzer (the package's ordinary build): runs the files or folders named on the command line through
/// ``fuzzPolicy(_:_:)`` once each.
@main enum Replay {
    static func main() {
        replayInputs(through: fuzzPolicy)
    }
}
#endif
