import Foundation
import PeonPolicy
import Synchronization

/// Section 4: PeonPolicy decisions per second against pycasbin on the same model, policy and requests.
struct PolicyBench {
    let report: Report
    let scriptPath: String
    let quick: Bool

    struct Case {
        var model: String
        var name: String
        var modelText: String
        var policy: String
        var requests: [[String]]
    }

    static let actions = ["read", "write", "delete", "list"]

    static func makeCase(_ model: String, lines: Int, requestCount: Int) -> Case {
        var random = SplitMix(state: UInt64(lines) &* 31 &+ UInt64(model.utf8.count))
        var rules: [String] = []
        var requests: [[String]] = []
        let actions = Self.actions
        let definitions = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n"
        let effect = "[policy_effect]\ne = some(where (p.eft == allow))\n"
        switch model {
        case "ACL":
            let users = max(1, lines / 10)
            for i in 0..<lines { rules.append("p, user\(i % users), data\(i), \(actions[i % 4])") }
            for _ in 0..<requestCount {
                let i = random.next(lines)
                // Half the requests name a rule's own (user, object); a quarter of those also its action.
                let user = random.next(2) == 0 ? i % users : random.next(users)
                requests.append(["user\(user)", "data\(i)", actions[random.next(4)]])
            }
            return Case(model: model, name: "ACL", modelText: definitions + effect + "[matchers]\nm = r.sub == p.sub && r.obj == p.obj && r.act == p.act\n",
                        policy: rules.joined(separator: "\n") + "\n", requests: requests)
        case "RBAC":
            let permissions = max(1, lines / 2)
            let roles = max(2, lines / 20)
            for i in 0..<permissions { rules.append("p, role\(i % roles), data\(i), \(actions[i % 4])") }
            // A role tree: role k inherits role (k-1)/2, so depth grows with log2(roles).
            for k in 1..<roles where rules.count < lines { rules.append("g, role\(k), role\((k - 1) / 2)") }
            var users = 0
            while rules.count < lines {
                rules.append("g, user\(users), role\(random.next(roles))")
                users += 1
            }
            users = max(users, 1)
            for _ in 0..<requestCount {
                requests.append(["user\(random.next(users))", "data\(random.next(permissions))", actions[random.next(4)]])
            }
            return Case(model: model, name: "RBAC, role hierarchy", modelText: definitions + "[role_definition]\ng = _, _\n" + effect
                            + "[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n",
                        policy: rules.joined(separator: "\n") + "\n", requests: requests)
        case "RBAC-domains":
            let permissions = max(1, lines / 2)
            let roles = max(1, lines / 50)
            let domains = max(1, lines / 100)
            for i in 0..<permissions { rules.append("p, role\(i % roles), dom\(i % domains), data\(i), \(actions[i % 4])") }
            var users = 0
            while rules.count < lines {
                rules.append("g, user\(users), role\(random.next(roles)), dom\(random.next(domains))")
                users += 1
            }
            users = max(users, 1)
            for _ in 0..<requestCount {
                let i = random.next(permissions)
                requests.append(["user\(random.next(users))", "dom\(i % domains)", "data\(i)", actions[random.next(4)]])
            }
            return Case(model: model, name: "RBAC with domains",
                        modelText: "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n"
                            + "[role_definition]\ng = _, _, _\n" + effect
                            + "[matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n",
                        policy: rules.joined(separator: "\n") + "\n", requests: requests)
        default:  // keyMatch2
            let users = max(1, lines / 10)
            for i in 0..<lines { rules.append("p, user\(i % users), /api/res\(i)/:id, \(actions[i % 4])") }
            for _ in 0..<requestCount {
                let i = random.next(lines)
                let user = random.next(2) == 0 ? i % users : random.next(users)
                requests.append(["user\(user)", "/api/res\(i)/\(random.next(1000))", actions[random.next(4)]])
            }
            return Case(model: model, name: "keyMatch2", modelText: definitions + effect
                            + "[matchers]\nm = r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
                        policy: rules.joined(separator: "\n") + "\n", requests: requests)
        }
    }

    func run() throws {
        report.line("## 4. Policy engine throughput against pycasbin")
        report.line()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        report.line("Decisions per second on generated policies (a deterministic generator; the files are written under $TMPDIR/peon-bench-PID-policy). Single thread: one loop over the requests. "
            + "All cores: \(cores) threads sharing one `Enforcer`. pycasbin runs the same model, policy and requests in a child process of this same run "
            + "(for up to \(quick ? 1 : 2) s per case); *agree* says whether both engines allowed exactly the same requests among those pycasbin decided.")
        report.line()
        let directory = try makeTemporaryDirectory("policy")
        var rows: [[String]] = []
        var notes: [String] = []
        for model in ["ACL", "RBAC", "RBAC-domains", "keyMatch2"] {
            for lines in [10, 1000, 100_000] {
                let benchCase = Self.makeCase(model, lines: lines, requestCount: 10_000)
                let base = "\(directory)/\(model)-\(lines)"
                try benchCase.modelText.write(toFile: base + ".conf", atomically: true, encoding: .utf8)
                try benchCase.policy.write(toFile: base + ".csv", atomically: true, encoding: .utf8)
                let requestText = benchCase.requests.map { "[" + $0.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }.joined(separator: "\n") + "\n"
                try requestText.write(toFile: base + ".requests.jsonl", atomically: true, encoding: .utf8)

                var enforcer: Enforcer?
                let load = try seconds {
                    enforcer = try Enforcer(model: benchCase.modelText, modelSource: base + ".conf", policy: benchCase.policy, policySource: base + ".csv")
                }
                guard let enforcer else { throw BenchFailure("no enforcer") }
                let requests = benchCase.requests.map { $0.map(PolicyValue.string) }
                let single = try throughput(enforcer, requests, threads: 1)
                let parallel = try throughput(enforcer, requests, threads: cores)
                let python = try runPycasbin(base: base)
                var agree = "—"
                var ratio = "—"
                var pythonRate = "not measured"
                if let python {
                    var allowed = 0
                    for request in requests.prefix(python.count) where try enforcer.enforce(request).isAllowed { allowed += 1 }
                    agree = allowed == python.allowed ? "yes (\(python.allowed)/\(python.count))" : "**NO** (ours \(allowed), pycasbin \(python.allowed) of \(python.count))"
                    let rate = Double(python.count) / python.seconds
                    pythonRate = formatRate(rate)
                    ratio = String(format: "%.0f×", single.rate / rate)
                    if single.rate / rate < 50 { notes.append("\(benchCase.name) at \(formatCount(lines)) lines: \(ratio) pycasbin (target ≥ 50×)") }
                }
                progress("\(benchCase.name), \(lines) lines: \(formatRate(single.rate)) vs pycasbin \(pythonRate), agree \(agree)")
                rows.append([benchCase.name, formatCount(lines), String(format: "%.2f s", load), formatRate(single.rate), formatNS(single.stats.median), formatNS(single.stats.p99),
                             formatRate(parallel.rate), pythonRate, python.map { String(format: "%.2f s", $0.load) } ?? "—", ratio, agree])
                if model == "RBAC" && lines == 1000 {
                    notes.append("RBAC (role hierarchy) at 1,000 lines, single thread: \(formatRate(single.rate)) (target ≥ 1 M/s)")
                }
            }
        }
        report.table(["model", "policy lines", "load", "decisions/s, 1 thread", "median", "p99", "decisions/s, \(cores) threads", "pycasbin decisions/s", "pycasbin load", "ratio (1 thread)", "agree"], rows)
        for note in notes { report.line("- " + note) }
        report.line("- Targets: ≥ 50× pycasbin on every model; ≥ 1 M decisions/s single-thread on RBAC with 1,000 lines.")
        report.line()
    }

    struct Throughput {
        var rate: Double
        var stats: Stats
    }

    /// Decisions per second: batches of 100 requests until the time budget is spent (single thread), or
    /// `threads` workers each deciding the whole request list once (all cores).
    private func throughput(_ enforcer: Enforcer, _ requests: [[PolicyValue]], threads: Int) throws -> Throughput {
        let budget = quick ? 0.3 : 0.8
        if threads == 1 {
            var index = 0
            var samples: [Double] = []
            var total = 0
            let start = ContinuousClock.now
            while samples.count < 5 || nanoseconds(ContinuousClock.now - start) < budget * 1e9 {
                let batchStart = ContinuousClock.now
                for _ in 0..<100 {
                    _ = try enforcer.enforce(requests[index])
                    index = (index + 1) % requests.count
                }
                samples.append(nanoseconds(ContinuousClock.now - batchStart) / 100)
                total += 100
                if samples.count >= 200_000 { break }
            }
            let stats = Stats(samples: samples.sorted())
            return Throughput(rate: 1e9 / stats.mean, stats: stats)
        }
        // Calibrate how many requests each thread decides from the single-thread speed.
        let probe = try seconds { for request in requests.prefix(200) { _ = try enforcer.enforce(request) } } / 200
        let perThread = max(200, min(requests.count * 20, Int(budget / max(probe, 1e-9))))
        let failures = Mutex(0)
        let wall = seconds {
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                var index = (worker * 997) % requests.count
                for _ in 0..<perThread {
                    if (try? enforcer.enforce(requests[index])) == nil { failures.withLock { $0 += 1 } }
                    index = (index + 1) % requests.count
                }
            }
        }
        guard failures.withLock({ $0 }) == 0 else { throw BenchFailure("policy evaluation failed under concurrency") }
        return Throughput(rate: Double(perThread * threads) / wall, stats: Stats(samples: [wall]))
    }

    struct PythonResult {
        var count: Int
        var allowed: Int
        var seconds: Double
        var load: Double
    }

    private func runPycasbin(base: String) throws -> PythonResult? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath, base + ".conf", base + ".csv", base + ".requests.jsonl", quick ? "1" : "2"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: output) as? [String: Any],
              let count = object["count"] as? Int, let allowed = object["allowed"] as? Int,
              let elapsed = object["seconds"] as? Double, let load = object["load"] as? Double
        else { return nil }
        return PythonResult(count: count, allowed: allowed, seconds: elapsed, load: load)
    }
}
