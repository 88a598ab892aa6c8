import Foundation
import PeonTestSupport
import Testing

/// The relay attack of `modules/relay-demo`: agent A (C) reads HR data and writes a scratch file it may
/// write; agent B (Zig) reads the scratch file and pipes it to a program. Run with the committed grants
/// (their relative paths pointed at a copy of the demo folder).
@Suite("modules/relay-demo")
struct RelayDemoTests {
    struct Outcome {
        var a: CommandResult
        var b: CommandResult
        var log: [[String: Any]]
    }

    static func run(labelled: Bool) throws -> Outcome {
        try withTemporaryDirectory { folder in
            let fm = FileManager.default
            let demo = folder.appendingPathComponent("relay-demo")
            try fm.createDirectory(at: demo.appendingPathComponent("hr"), withIntermediateDirectories: true)
            try fm.createDirectory(at: demo.appendingPathComponent("scratch"), withIntermediateDirectories: true)
            try fm.copyItem(at: repositoryRoot.appendingPathComponent("modules/relay-demo/hr/2026-salaries.md"),
                            to: demo.appendingPathComponent("hr/2026-salaries.md"))
            func grants(_ name: String) throws -> String {
                var text = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/relay/\(name).toml"), encoding: .utf8)
                text = text.replacingOccurrences(of: "../../modules/relay-demo", with: demo.path)
                if !labelled { text = text.replacingOccurrences(of: "labels = [\"hr\"]\n", with: "") }
                let path = folder.appendingPathComponent("\(name).toml")
                try Data(text.utf8).write(to: path)
                return path.path
            }
            let log = folder.appendingPathComponent("relay.jsonl").path
            let a = try runPeonWasm(["run", "modules/c-summarizer/summarizer.wasm", "--grants", try grants("summarizer"),
                                     "--audit", log, "--input", "\(demo.path)/hr \(demo.path)/scratch/summary.md"])
            let b = try runPeonWasm(["run", "modules/zig-auditor/auditor.wasm", "--grants", try grants("auditor"),
                                     "--audit", log, "--input", "\(demo.path)/scratch/summary.md"])
            let entries = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return Outcome(a: a, b: b, log: entries)
        }
    }

    static func details(_ entry: [String: Any]) -> [String: String] { entry["details"] as? [String: String] ?? [:] }

    @Test func withLabelsTheSecondAgentsPipeIsRefusedAndTheLogShowsTheLabelsPath() throws {
        let outcome = try Self.run(labelled: true)
        #expect(outcome.a.status == 0, "\(outcome.a.stderr)")
        #expect(outcome.b.stderr.contains("exec /usr/bin/wc refused: denied: exec.run on /usr/bin/wc would send data labelled hr"),
                "\(outcome.b.stderr)")
        #expect(outcome.b.stderr.contains("auditor.toml:10 would need clearance = [\"hr\"]"), "\(outcome.b.stderr)")
        let log = outcome.log
        // A's listing of hr/ already brings the label (a folder's names are data too).
        #expect(log.contains { $0["module"] as? String == "relay-summarizer" && $0["call"] as? String == "fs.read-dir"
            && Self.details($0)["labels_acquired"] == "hr" })
        #expect(log.contains { $0["module"] as? String == "relay-summarizer" && $0["call"] as? String == "fs.write"
            && $0["outcome"] as? String == "ok" && Self.details($0)["run_labels"]?.hasPrefix("hr@") == true })
        #expect(log.contains { $0["module"] as? String == "relay-auditor" && $0["call"] as? String == "fs.read"
            && Self.details($0)["file_labels"] == "hr" })
        let refused = log.filter { $0["call"] as? String == "exec.run" && $0["resource"] as? String == "exec:/usr/bin/wc" }
        #expect(refused.count == 1)
        #expect(refused.first?["decision"] as? String == "deny")
        #expect(refused.first.map(Self.details)?["missing_clearance"] == "hr")
    }

    @Test func withoutLabelsBothAgentsSucceedAndTheSalaryDataReachesTheProgram() throws {
        let outcome = try Self.run(labelled: false)
        #expect(outcome.a.status == 0, "\(outcome.a.stderr)")
        let pipe = outcome.log.filter { $0["call"] as? String == "exec.run" && $0["resource"] as? String == "exec:/usr/bin/wc" }
        #expect(pipe.first?["decision"] as? String == "allow", "without labels the relay goes through: \(outcome.b.stderr)")
        #expect(pipe.contains { $0["outcome"] as? String == "ok" })
    }
}
