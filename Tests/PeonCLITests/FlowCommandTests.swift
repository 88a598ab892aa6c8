import Foundation
import PeonTestSupport
import Testing

/// Information flow and first use on the command line: `grants check` reports where labelled data can go,
/// `policy explain --labels` explains a flow denial, `audit show --first-use` lists what was new.
@Suite("peon-wasm labels and first use")
struct FlowCommandTests {
    static func grants(_ folder: URL, clearance: String = "") -> String {
        """
        module = "c-summarizer"
        [[fs]]
        paths = ["\(folder.path)/reports", "\(folder.path)/reports/**"]
        allow = ["read", "list"]
        labels = ["hr"]
        [[fs]]
        paths = ["\(folder.path)/out/*.md"]
        allow = ["write"]
        \(clearance)
        """
    }

    @Test func grantsCheckShowsWhereEachLabelCanGo() throws {
        let (closed, open) = try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data(Self.grants(folder).utf8).write(to: grants)
            let closed = try runPeonWasm(["grants", "check", "modules/c-summarizer/summarizer.wasm", "--grants", grants.path])
            try Data(Self.grants(folder, clearance: "clearance = [\"hr\"]").utf8).write(to: grants)
            let open = try runPeonWasm(["grants", "check", "modules/c-summarizer/summarizer.wasm", "--grants", grants.path])
            return (closed, open)
        }
        #expect(closed.status == 0, "\(closed.stderr)")
        #expect(closed.stdout.contains(#/label hr: acquired through fs\[0\] \(\S+/g\.toml:2\); may leave through no sink/#), "\(closed.stdout)")
        #expect(open.stdout.contains(#/label hr: acquired through fs\[0\] \(\S+/g\.toml:2\); may leave through fs\[1\] \(\S+/g\.toml:6\) \(every other sink refuses it\)/#),
                "\(open.stdout)")
    }

    @Test func policyExplainExplainsAFlowDenial() throws {
        let (denied, cleared, unlabelled) = try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data(Self.grants(folder).utf8).write(to: grants)
            let target = folder.path + "/out/summary.md"
            let denied = try runPeonWasm(["policy", "explain", "--grants", grants.path, "--labels", "hr", "fs.write", target])
            let unlabelled = try runPeonWasm(["policy", "explain", "--grants", grants.path, "fs.write", target])
            try Data(Self.grants(folder, clearance: "clearance = [\"hr\"]").utf8).write(to: grants)
            let cleared = try runPeonWasm(["policy", "explain", "--grants", grants.path, "--labels", "hr", "fs.write", target])
            return (denied, cleared, unlabelled)
        }
        #expect(denied.status == 1)
        #expect(denied.stdout.contains("would send data labelled hr (given with --labels)"), "\(denied.stdout)")
        #expect(denied.stdout.contains("would need clearance = [\"hr\"]"), "\(denied.stdout)")
        #expect(cleared.status == 0, "\(cleared.stdout)")
        #expect(unlabelled.status == 0, "\(unlabelled.stdout)")
    }

    /// `policy explain` explains only requests that can occur: an empty or control-character module name, or a label
    /// no grant could name (`hr,,x` dropped its empty one silently), is the command line's fault (64).
    @Test func policyExplainRefusesModulesAndLabelsNoRunCouldHave() throws {
        let results = try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data(Self.grants(folder).utf8).write(to: grants)
            let target = folder.path + "/out/summary.md"
            return try [["--module", ""], ["--module", "a\nb"], ["--labels", "hr,,x"], ["--labels", "\u{202E}"], ["--labels", ""]].map {
                try runPeonWasm(["policy", "explain", "--grants", grants.path] + $0 + ["fs.write", target])
            } + [try runPeonWasm(["policy", "explain", "--grants", grants.path, "--labels", "hr, pii", "fs.write", target])]
        }
        for result in results.dropLast() {
            #expect(result.status == 64, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("peon-wasm: error:") && !result.stderr.contains("\u{202E}"), "\(result.stderr)")
        }
        #expect(results.last?.status == 1, "\(results.last?.stderr ?? "")")
    }

    @Test func auditShowListsOnlyFirstUses() throws {
        let (first, second, shown) = try withTemporaryDirectory { folder in
            let fm = FileManager.default
            try fm.createDirectory(at: folder.appendingPathComponent("reports"), withIntermediateDirectories: true)
            try fm.createDirectory(at: folder.appendingPathComponent("out"), withIntermediateDirectories: true)
            try Data("# Q1\nrevenue up\n".utf8).write(to: folder.appendingPathComponent("reports/q1.md"))
            let grants = folder.appendingPathComponent("g.toml")
            try Data(Self.grants(folder, clearance: "clearance = [\"hr\"]").utf8).write(to: grants)
            let log = folder.appendingPathComponent("audit.jsonl").path
            let run = ["run", "modules/c-summarizer/summarizer.wasm", "--grants", grants.path, "--audit", log,
                       "--input", "\(folder.path)/reports \(folder.path)/out/summary.md"]
            let first = try runPeonWasm(run)
            let second = try runPeonWasm(run)
            let shown = try runPeonWasm(["audit", "show", log, "--first-use"])
            return (first, second, shown)
        }
        #expect(first.status == 0, "\(first.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        let rows = shown.stdout.split(separator: "\n").dropFirst()
        // Only the first run's decisions, one per (action, resource): the folder listed, the report read, the
        // summary written; the second run did the same things and added nothing.
        let calls = rows.map { $0.split(separator: " ", omittingEmptySubsequences: true)[4] }
        #expect(calls == ["fs.read-dir", "fs.read", "fs.write"], "\(shown.stdout)")
        #expect(!rows.contains { $0.contains("run.start") })
    }
}
