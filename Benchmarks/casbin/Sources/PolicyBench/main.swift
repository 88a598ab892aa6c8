// Enforce throughput of PeonPolicy on generated RBAC and ACL policies; `bench.py` runs pycasbin on
// the same files. Run: swift run -c release PolicyBench [OUTPUT_DIR]
import Foundation
import PeonPolicy

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

let output = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : FileManager.default.temporaryDirectory.path
var random = SplitMix(state: 42)

let rbacModel = """
    [request_definition]
    r = sub, obj, act
    [policy_definition]
    p = sub, obj, act
    [role_definition]
    g = _, _
    [policy_effect]
    e = some(where (p.eft == allow))
    [matchers]
    m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act
    """
let actions = ["read", "write", "delete", "list"]
var lines: [String] = []
for rule in 0..<10_000 {
    lines.append("p, role\(rule % 1000), /api/r\(rule)/:id, \(actions[rule % 4])")
}
for user in 0..<5000 {
    lines.append("g, user\(user), role\(random.next(1000))")
    lines.append("g, user\(user), role\(random.next(1000))")
}
let rbacPolicy = lines.joined(separator: "\n") + "\n"
var requests: [[String]] = []
for _ in 0..<20_000 {
    requests.append(["user\(random.next(5000))", "/api/r\(random.next(10_000))/\(random.next(100))", actions[random.next(4)]])
}
try rbacModel.write(toFile: output + "/rbac.conf", atomically: true, encoding: .utf8)
try rbacPolicy.write(toFile: output + "/rbac.csv", atomically: true, encoding: .utf8)
let requestText = requests.map { "[\"\($0[0])\", \"\($0[1])\", \"\($0[2])\"]" }.joined(separator: "\n") + "\n"
try requestText.write(toFile: output + "/requests.jsonl", atomically: true, encoding: .utf8)

@MainActor func measure(_ label: String, model: String, count: Int) throws {
    let loadStart = ContinuousClock.now
    let enforcer = try Enforcer(model: model, modelSource: "model.conf", policy: rbacPolicy, policySource: "policy.csv")
    let load = ContinuousClock.now - loadStart
    var allowed = 0
    let start = ContinuousClock.now
    for request in requests.prefix(count) where try enforcer.enforce(request.map(PolicyValue.string)).isAllowed { allowed += 1 }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("\(label): load \(load), \(count) requests in \(elapsed) (\(Int(Double(count) / seconds)) req/s, \(String(format: "%.2f", seconds / Double(count) * 1e6)) µs/req), \(allowed) allowed")
}

try measure("rbac, indexed (g(r.sub, p.sub) && keyMatch2 && r.act == p.act)", model: rbacModel, count: 20_000)
let scanModel = rbacModel.replacingOccurrences(of: "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act",
                                               with: "m = (g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act) || false")
try measure("rbac, full scan (same matcher, index defeated)", model: scanModel, count: Int(ProcessInfo.processInfo.environment["SCAN_COUNT"] ?? "") ?? 200)
// Per-construct costs on the same rules (set PEON_BENCH_VARIANTS=1).
if ProcessInfo.processInfo.environment["PEON_BENCH_VARIANTS"] != nil {
    let base = "keyMatch2(r.obj, p.obj) && r.act == p.act"
    for (label, replacement) in [("g() only", "true"), ("g() && r.obj == p.obj", "r.obj == p.obj"), ("g() && keyMatch", "keyMatch(r.obj, p.obj)"),
                                 ("g() && keyMatch2", "keyMatch2(r.obj, p.obj)"), ("g() && regexMatch", "regexMatch(r.obj, p.obj)")] {
        try measure(label, model: rbacModel.replacingOccurrences(of: base, with: replacement), count: 20_000)
    }
}
