import Foundation
import PeonTestSupport
import Testing

/// Every example agent in `modules/` run end to end by the built `peon-wasm` (the real mediator:
/// policy, write-ahead audit, capabilities), each in a temporary copy of its folder:
///
/// 1. under its committed grants (`policies/NAME.toml`, used verbatim except that an HTTP grant's
///    host is replaced by the test's own loopback server) it gives the answer its README promises
///    and acts on the copy of its fixtures;
/// 2. its audit log verifies (`peon-wasm audit verify`) and holds an `allow` for each call it made;
/// 3. with one grant removed the same run is refused that capability with `denied`, the log records
///    the `deny`, nothing the removed grant guarded happens, and the log still verifies.
///
/// The malicious agent instead shows every escape attempt denied and audited, and nothing changed.
@Suite("example agents run end to end under the real host")
struct ExampleAgentTests {
    /// Extra run options. A debug build interprets Wasm ~160x slower than a release build, and the
    /// machines running the suite are shared, so the grants' wall-clock `timeout` (sized for release
    /// builds) is raised; every other limit of the grants (memory, calls) still applies.
    #if DEBUG
    static let slack = ["--timeout", "5m"]
    #else
    static let slack: [String] = []
    #endif

    // MARK: C

    @Test("c-summarizer lists and reads its reports, writes the summary, and every call is allowed and audited")
    func cSummarizer() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("c-summarizer", module: "summarizer.wasm", in: folder)
            let reports = agent.file("modules/c-summarizer/reports").path
            let summary = agent.file("modules/c-summarizer/out/summary.md")
            let run = try agent.run(grants: agent.grants,
                                    input: "modules/c-summarizer/reports modules/c-summarizer/out/summary.md", Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout.hasPrefix("# Summary of modules/c-summarizer/reports\n"))
            #expect(run.result.stdout.hasSuffix("Total: 3 reports, 3 actions.\n\n"))
            #expect(run.result.stdout.contains("- action: upgrade the TLS library on every edge proxy.\n"))
            #expect(run.result.stderr.contains("[c-summarizer] info: summary written"))
            let written = try String(contentsOf: summary, encoding: .utf8)
            #expect(written.hasSuffix("Total: 3 reports, 3 actions.\n"))
            #expect(try run.verdicts(call: "fs.read-dir") == [.allow("fs:\(reports)")])
            #expect(try run.verdicts(call: "fs.read") == ["2026-q1-ops.md", "2026-q1-security.md", "2026-q1-support.txt"]
                .map { .allow("fs:\(reports)/\($0)") })
            #expect(try run.verdicts(call: "fs.write") == [.allow("fs:\(summary.path)")])
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("c-summarizer without its write grant is denied the summary, which is never written")
    func cSummarizerNarrowed() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("c-summarizer", module: "summarizer.wasm", in: folder)
            let summary = agent.file("modules/c-summarizer/out/summary.md")
            let grants = try agent.narrowedGrants(removing: "[[fs]]", containing: "out/*.md")
            let run = try agent.run(grants: grants,
                                    input: "modules/c-summarizer/reports modules/c-summarizer/out/summary.md", Self.slack)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains(
                "cannot write modules/c-summarizer/out/summary.md: denied: fs.write on \(summary.path) is not granted to c-summarizer"))
            #expect(!FileManager.default.fileExists(atPath: summary.path))
            #expect(try run.verdicts(call: "fs.read").count == 3)
            #expect(try run.verdicts(call: "fs.read").allSatisfy { $0.decision == "allow" })
            #expect(try run.verdicts(call: "fs.write") == [.deny("fs:\(summary.path)")])
            #expect(try run.decisions(call: "fs.write").first?["reason"] as? String
                == "no policy line allows fs.write on fs:\(summary.path)")
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }

    // MARK: WAT

    @Test("wat-minimal reads its input file and appends to its ledger, both allowed and audited")
    func watMinimal() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("wat-minimal", module: "minimal.wasm", in: folder)
            let source = agent.file("modules/wat-minimal/minimal.wat")
            let ledger = agent.file("modules/wat-minimal/out/ledger.txt")
            let size = try Data(contentsOf: source).count
            let run = try agent.run(grants: agent.grants, input: "modules/wat-minimal/minimal.wat", Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout == "modules/wat-minimal/minimal.wat: \(size) bytes\n")
            #expect(try String(contentsOf: ledger, encoding: .utf8) == "modules/wat-minimal/minimal.wat: \(size) bytes\n")
            #expect(try run.verdicts(call: "fs.read") == [.allow("fs:\(source.path)")])
            #expect(try run.verdicts(call: "fs.append") == [.allow("fs:\(ledger.path)")])
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("wat-minimal without its append grant is denied the ledger, and a path outside its grant is denied too")
    func watMinimalNarrowed() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("wat-minimal", module: "minimal.wasm", in: folder)
            let ledger = agent.file("modules/wat-minimal/out/ledger.txt")
            let grants = try agent.narrowedGrants(removing: "[[fs]]", containing: "ledger.txt")
            let run = try agent.run(grants: grants, input: "modules/wat-minimal/minimal.wat", Self.slack)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains("fs.append on \(ledger.path) is not granted to wat-minimal"))
            #expect(!FileManager.default.fileExists(atPath: ledger.path))
            #expect(try run.verdicts(call: "fs.read").map(\.decision) == ["allow"])
            #expect(try run.verdicts(call: "fs.append") == [.deny("fs:\(ledger.path)")])
            try run.expectVerified()

            // The README's example of a refused input, under the full grants.
            let outside = try agent.run(grants: agent.grants, input: "/etc/passwd", Self.slack)
            #expect(outside.result.status == 1)
            #expect(outside.result.stderr.contains("fs.read on /etc/passwd is not granted to wat-minimal"))
            #expect(!outside.result.stderr.contains("no --grants"), "a run with grants was told it had none")
            #expect(try outside.verdicts(call: "fs.read") == [.deny("fs:/etc/passwd")])
            #expect(try outside.verdicts(call: "fs.append").isEmpty)
            try outside.expectVerified()
        }
    }

    // MARK: Rust

    /// The triager's committed grants with the endpoint's host replaced by the test server's.
    static func triagerGrants(_ agent: ExampleAgent, server: LoopbackHTTPServer) throws -> String {
        let committed = try agent.grantsText()
        let local = committed.replacingOccurrences(of: "https://tickets.example.com", with: server.baseURL)
        try #require(local != committed)
        return local
    }

    @Test("rust-triager reads its tickets and POSTs the JSON summary to the loopback endpoint its grant names")
    func rustTriager() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: ["/api/triage": .init(contentType: "application/json", "{\"ok\":true}")])
            defer { server.stop() }
            let agent = try ExampleAgent("rust-triager", module: "triager.wasm", in: folder)
            let grants = try agent.writeGrants(try Self.triagerGrants(agent, server: server), as: "rust-triager-local.toml")
            let database = agent.file("modules/rust-triager/tickets.db")
            let before = try Data(contentsOf: database)
            let endpoint = "\(server.baseURL)/api/triage"
            let run = try agent.run(grants: grants, input: "tickets \(endpoint)",
                                    ["--db", "tickets=\(database.path)"] + Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout.hasPrefix("{\"open\":6,\"urgent\":[{\"id\":101,"))
            #expect(run.result.stdout.hasSuffix("\nposted to \(endpoint): 200\n"))
            #expect(run.result.stderr.contains("[rust-triager] info: triaged 6 open tickets"))

            let requests = server.received
            #expect(requests.count == 1)
            let post = try #require(requests.first)
            #expect(post.method == "POST")
            #expect(post.path == "/api/triage")
            #expect(post.header("content-type") == "application/json")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any])
            #expect(summary["open"] as? Int == 6)
            let urgent = try #require(summary["urgent"] as? [[String: Any]])
            #expect(urgent.compactMap { $0["id"] as? Int } == [101, 104])
            #expect(run.result.stdout.hasPrefix(String(decoding: post.body, as: UTF8.self)))

            // The database is opened after its own decision; then each table the statement reads is decided.
            #expect(try run.verdicts(call: "db.query") == [.allow("db:tickets"), .allow("db:tickets/tickets")])
            #expect(try run.verdicts(call: "http.send") == [.allow("http:\(endpoint)")])
            #expect(try Data(contentsOf: database) == before)
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("rust-triager without its http grant is denied the POST, which never reaches the server")
    func rustTriagerNarrowed() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: ["/api/triage": .init(contentType: "application/json", "{\"ok\":true}")])
            defer { server.stop() }
            let agent = try ExampleAgent("rust-triager", module: "triager.wasm", in: folder)
            let grants = try agent.narrowedGrants(removing: "[[http]]", from: try Self.triagerGrants(agent, server: server))
            let database = agent.file("modules/rust-triager/tickets.db")
            let endpoint = "\(server.baseURL)/api/triage"
            let run = try agent.run(grants: grants, input: "tickets \(endpoint)",
                                    ["--db", "tickets=\(database.path)"] + Self.slack)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains(
                "posting the summary to \(endpoint) failed: denied: http.POST on \(endpoint) is not granted to rust-triager"))
            #expect(server.received.isEmpty)
            #expect(try run.verdicts(call: "db.query") == [.allow("db:tickets"), .allow("db:tickets/tickets")])
            #expect(try run.verdicts(call: "http.send") == [.deny("http:\(endpoint)")])
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }

    // MARK: Zig

    static let auditorAnswer = """
        audit of modules/zig-auditor/logs/auth.log
        lines: 10
        errors (ERROR|FATAL): 2
        failed logins: 4
          203.0.113.9: 3
          198.51.100.23: 1

        """

    @Test("zig-auditor reads its log and runs wc and grep through exec, each call allowed by its argument pattern")
    func zigAuditor() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("zig-auditor", module: "auditor.wasm", in: folder)
            let log = agent.file("modules/zig-auditor/logs/auth.log")
            let run = try agent.run(grants: agent.grants, input: "modules/zig-auditor/logs/auth.log sudo CRON --file=/etc/shadow",
                                    Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout == Self.auditorAnswer + """
                keyword "sudo": 1
                keyword "CRON": 1
                keyword "--file=/etc/shadow": 0


                """)
            #expect(try run.verdicts(call: "fs.read") == [.allow("fs:\(log.path)")])
            let exec = try run.decisions(call: "exec.run")
            #expect(exec.map { $0["decision"] as? String } == Array(repeating: "allow", count: 6))
            #expect(exec.map { $0["resource"] as? String }
                == ["exec:/usr/bin/wc"] + Array(repeating: "exec:/usr/bin/grep", count: 5))
            #expect(exec.map { ($0["details"] as? [String: Any])?["args"] as? String } == [
                "1:-l", "3:-c -E ERROR%7CFATAL", "2:-F Failed%20password",
                "4:-c -F -- sudo", "4:-c -F -- CRON", "4:-c -F -- --file=/etc/shadow",
            ])
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("zig-auditor without its keyword grant is denied exactly the keyword searches")
    func zigAuditorNarrowed() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("zig-auditor", module: "auditor.wasm", in: folder)
            let grants = try agent.narrowedGrants(removing: "[[exec]]", containing: "\"--\", \"*\"")
            let run = try agent.run(grants: grants, input: "modules/zig-auditor/logs/auth.log sudo", Self.slack)
            #expect(run.result.status == 1)
            // The agent's message is escaped on stderr (one line: it cannot forge `peon-wasm:` lines).
            #expect(run.result.stderr.contains(Self.auditorAnswer.replacingOccurrences(of: "\n", with: "\\u{a}")))
            #expect(run.result.stderr.contains("exec /usr/bin/grep refused: denied: exec.run on /usr/bin/grep is not granted to zig-auditor"))
            let exec = try run.decisions(call: "exec.run")
            #expect(exec.map { $0["decision"] as? String } == ["allow", "allow", "allow", "deny"])
            #expect((exec.last?["details"] as? [String: Any])?["args"] as? String == "4:-c -F -- sudo")
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }

    // MARK: Go

    static let fetcherPages: [String: LoopbackHTTPServer.Response] = {
        var pages: [String: LoopbackHTTPServer.Response] = [:]
        for (path, file) in [("/", "index.html"), ("/docs/", "docs.html")] {
            let url = repositoryRoot.appendingPathComponent("modules/go-fetcher/fixtures/\(file)")
            let bytes = (try? Data(contentsOf: url)).map { [UInt8]($0) } ?? []
            pages[path] = .init(contentType: "text/html", bytes: bytes)
        }
        return pages
    }()

    // The Go module is ~2.6 MB and WasmKit interprets the Go runtime's start-up: 20-40 s per run in a
    // debug build on a shared machine (about 2 s with `--engine wasmtime` once compiled). The two Go tests
    // therefore carry a `.timeLimit` well above that instead of being skipped.

    /// The fetcher's committed grants with the site replaced by the test server.
    static func fetcherGrants(_ agent: ExampleAgent, server: LoopbackHTTPServer) throws -> String {
        let committed = try agent.grantsText()
        let local = committed.replacingOccurrences(of: "https://example.com", with: server.baseURL)
        try #require(local != committed)
        return local
    }

    @Test("go-fetcher GETs two loopback pages and stores their extracts, every call allowed and audited",
          .timeLimit(.minutes(10)))
    func goFetcher() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: Self.fetcherPages)
            defer { server.stop() }
            let agent = try ExampleAgent("go-fetcher", module: "fetcher.wasm", in: folder)
            let grants = try agent.writeGrants(try Self.fetcherGrants(agent, server: server), as: "go-fetcher-local.toml")
            let database = agent.file("modules/go-fetcher/pages.db")
            let before = try Data(contentsOf: database)
            let site = server.baseURL
            let run = try agent.run(grants: grants, input: "pages \(site)/ \(site)/docs/",
                                    ["--db", "pages=\(database.path)"] + Self.slack, timeout: 600)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout == """
                \(site)/: 200 "Example Robotics", 3 links, 339 bytes
                \(site)/docs/: 200 "Docs: getting started", 1 links, 222 bytes
                stored 2 of 2 pages; pages now holds 2 pages


                """)
            #expect(server.received.map { "\($0.method) \($0.path)" } == ["GET /", "GET /docs/"])
            #expect(server.received.first?.header("accept") == "text/html")
            #expect(try run.verdicts(call: "http.send") == [.allow("http:\(site)/"), .allow("http:\(site)/docs/")])
            // Each insert: the database is opened after its own decision, then the table's insert is decided.
            #expect(try run.verdicts(call: "db.execute") == Array(repeating: [.allow("db:pages"), .allow("db:pages/pages")], count: 2).flatMap { $0 })
            #expect(try run.verdicts(call: "db.query").first == .allow("db:pages"))
            #expect(try Data(contentsOf: database) != before)
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("go-fetcher without its http grant is denied every page, none reaches the server, and nothing is stored",
          .timeLimit(.minutes(10)))
    func goFetcherNarrowed() throws {
        try withTemporaryDirectory { folder in
            let server = try LoopbackHTTPServer(routes: Self.fetcherPages)
            defer { server.stop() }
            let agent = try ExampleAgent("go-fetcher", module: "fetcher.wasm", in: folder)
            let grants = try agent.narrowedGrants(removing: "[[http]]", from: try Self.fetcherGrants(agent, server: server))
            let database = agent.file("modules/go-fetcher/pages.db")
            let before = try Data(contentsOf: database)
            let site = server.baseURL
            let run = try agent.run(grants: grants, input: "pages \(site)/ \(site)/docs/",
                                    ["--db", "pages=\(database.path)"] + Self.slack, timeout: 600)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains("\(site)/: not fetched: denied: http.GET on \(site)/ is not granted to go-fetcher"))
            #expect(run.result.stderr.contains("stored 0 of 2 pages; pages now holds 0 pages"))
            #expect(server.received.isEmpty)
            #expect(try run.verdicts(call: "http.send") == [.deny("http:\(site)/"), .deny("http:\(site)/docs/")])
            #expect(try run.decisions(call: "db.execute").isEmpty)
            #expect(try Data(contentsOf: database) == before)
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }

    // MARK: Embedded Swift

    @Test("swift-redactor lists and reads its inbox and writes redacted copies, every call allowed and audited")
    func swiftRedactor() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("swift-redactor", module: "redactor.wasm", in: folder)
            let inbox = agent.file("modules/swift-redactor/inbox").path
            let out = agent.file("modules/swift-redactor/out").path
            let run = try agent.run(grants: agent.grants, input: "modules/swift-redactor/inbox modules/swift-redactor/out",
                                    Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            #expect(run.result.stdout == """
                redacted copies of modules/swift-redactor/inbox in modules/swift-redactor/out
                incident-notes.md: 1 e-mail, 0 number, 1 address, 1 secret
                support-ticket-4411.txt: 1 e-mail, 2 number, 1 address, 1 secret
                2 files


                """)
            let ticket = try String(contentsOfFile: out + "/support-ticket-4411.txt", encoding: .utf8)
            for placeholder in ["From: Jane Roe <[email]>", "Phone: [number]", "the card [number]", "from [ip]", "API key [secret]"] {
                #expect(ticket.contains(placeholder))
            }
            #expect(!ticket.contains("@"))
            let names = ["incident-notes.md", "support-ticket-4411.txt"]
            #expect(try run.verdicts(call: "fs.read-dir") == [.allow("fs:\(inbox)")])
            #expect(try run.verdicts(call: "fs.read") == names.map { .allow("fs:\(inbox)/\($0)") })
            #expect(try run.verdicts(call: "fs.write") == names.map { .allow("fs:\(out)/\($0)") })
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("swift-redactor without its write grant is denied the first copy and writes nothing")
    func swiftRedactorNarrowed() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("swift-redactor", module: "redactor.wasm", in: folder)
            let out = agent.file("modules/swift-redactor/out")
            let before = try snapshot(of: out)
            let grants = try agent.narrowedGrants(removing: "[[fs]]", containing: "out/*")
            let run = try agent.run(grants: grants, input: "modules/swift-redactor/inbox modules/swift-redactor/out",
                                    Self.slack)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains("denied: fs.write on \(out.path)/incident-notes.md is not granted to swift-redactor"))
            #expect(try snapshot(of: out) == before)
            #expect(try run.verdicts(call: "fs.write") == [.deny("fs:\(out.path)/incident-notes.md")])
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }

    // MARK: Malicious

    @Test("the malicious agent's 18 escape attempts are all denied and audited, and nothing changes on disk")
    func maliciousAgent() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("malicious", module: "malicious.wasm", in: folder)
            let sandbox = agent.file("modules/malicious/sandbox")
            let database = agent.file("modules/malicious/notes.db")
            let planted = ["/tmp/peon-malicious-was-here", "/tmp/peon-malicious.db"]
            let plantedBefore = planted.filter { FileManager.default.fileExists(atPath: $0) }
            let before = try snapshot(of: agent.file("modules")).merging(try snapshot(of: agent.file("policies"))) { $1 }
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: sandbox.path + "/passwd-link") == "/etc/passwd")

            let run = try agent.run(grants: agent.grants, input: nil, ["--db", "notes=\(database.path)"] + Self.slack)
            #expect(run.result.status == 0, "\(run.result.stderr)")
            let lines = run.result.stdout.split(separator: "\n")
            #expect(lines.filter { $0.hasPrefix("refused  ") }.count == 18)
            #expect(!run.result.stdout.contains("ESCAPED"))
            #expect(run.result.stdout.contains("18 attempts refused, 0 escaped\n"))
            #expect(run.result.stdout.contains("allowed  fs.read sandbox/allowed.txt (34 bytes)\n"))
            #expect(run.result.stdout.contains("allowed  db.query SELECT count(*) FROM notes (2 rows)\n"))
            // Every refusal is the policy's (`denied`), except two statements in one call, which the
            // database capability refuses as malformed before any table is touched.
            let refusals = lines.filter { $0.hasPrefix("refused  ") }
            #expect(refusals.filter { $0.contains(" -> denied: ") }.count == 17)
            #expect(refusals.filter { $0.contains(" -> invalid-argument: exactly one SQL statement") }.count == 1)

            // Nothing changed: not the copied modules and grants, not the database, not /tmp.
            let after = try snapshot(of: agent.file("modules")).merging(try snapshot(of: agent.file("policies"))) { $1 }
            #expect(after == before)
            #expect(planted.filter { FileManager.default.fileExists(atPath: $0) } == plantedBefore)

            // The log: each attempt is a `deny`; the symlink is allowed as a name in the sandbox, and
            // its target is then decided (and denied) as a call of its own.
            let decisions = try run.entries().filter { $0["decision"] is String }
            let denied = decisions.filter { $0["decision"] as? String == "deny" }
            #expect(denied.count == 18)
            let deniedCalls = Dictionary(grouping: denied) { $0["call"] as? String ?? "" }.mapValues(\.count)
            #expect(deniedCalls == ["fs.read": 4, "fs.write": 1, "http.send": 5, "exec.run": 3, "db.execute": 5])
            let viaLink = try #require(denied.first { ($0["details"] as? [String: Any])?["via_link_from"] != nil })
            #expect(viaLink["resource"] as? String == "fs:/etc/passwd")
            #expect((viaLink["details"] as? [String: Any])?["via_link_from"] as? String == "fs:\(sandbox.path)/passwd-link")
            let allowed = try run.verdicts(call: "fs.read").filter { $0.decision == "allow" }
            #expect(allowed == [.allow("fs:\(sandbox.path)/passwd-link"), .allow("fs:\(sandbox.path)/allowed.txt")])
            #expect(try run.verdicts(call: "db.query") == [.allow("db:notes"), .allow("db:notes/notes")])
            let deniedResources = Set(denied.compactMap { $0["resource"] as? String })
            for resource in ["fs:/etc/passwd", "fs:/tmp/peon-malicious-was-here", "http:http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                             "http:http://127.0.0.1:8080/admin", "http:http://[::1]/", "http:http://localhost:2375/containers/json",
                             "http:https://example.com/api/users/1", "exec:/bin/sh", "exec:/usr/bin/wc", "db:notes"] {
                #expect(deniedResources.contains(resource), "\(resource) is not denied in the log")
            }
            #expect(try run.runOutcome() == "ok")
            try run.expectVerified()
        }
    }

    @Test("the malicious agent without its database grant is denied its one legitimate query too")
    func maliciousAgentNarrowed() throws {
        try withTemporaryDirectory { folder in
            let agent = try ExampleAgent("malicious", module: "malicious.wasm", in: folder)
            let database = agent.file("modules/malicious/notes.db")
            let before = try Data(contentsOf: database)
            let grants = try agent.narrowedGrants(removing: "[[db]]")
            let run = try agent.run(grants: grants, input: nil, ["--db", "notes=\(database.path)"] + Self.slack)
            #expect(run.result.status == 1)
            #expect(run.result.stderr.contains("18 attempts refused, 0 escaped"))
            #expect(run.result.stderr.contains("FAILED   db.query SELECT count(*) FROM notes -> denied: "))
            #expect(try run.verdicts(call: "db.query") == [.deny("db:notes")])
            #expect(try Data(contentsOf: database) == before)
            #expect(try run.runOutcome() == "agent-error")
            try run.expectVerified()
        }
    }
}
