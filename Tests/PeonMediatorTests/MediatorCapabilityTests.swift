import Foundation
import PeonAudit
import PeonInterface
import Testing
@testable import PeonMediator

/// exec, db and http through the mediator: what the grant names runs, everything else is refused
/// before the capability is reached, and secrets a grant injects never leak.
@Suite struct MediatorCapabilityTests {
    // MARK: exec

    static let execGrants = """
        module = "counter"

        [[exec]]
        program = "/bin/echo"
        args = ["-n", "*"]
        env = { GREETING = "hi" }

        [[exec]]
        program = "/usr/bin/env"
        """

    @Test func aGrantedProgramRunsWithMatchingArguments() throws {
        let harness = try Harness(grants: Self.execGrants)
        let output = try harness.mediator.run(program: "/bin/echo", arguments: ["-n", "a b;c"], stdin: [])
        #expect(output.code == 0)
        #expect(output.stdout == Array("a b;c".utf8), "arguments reach the program as one argv entry each, no shell")
        let decision = try #require(try harness.decisions("exec.run").first)
        #expect(decision.decision == .allow && decision.resource == "exec:/bin/echo")
        #expect(decision.details["args"] == "2:-n a%20b%3Bc")
    }

    @Test func theProgramSeesOnlyTheGrantsEnvironment() throws {
        let harness = try Harness(grants: Self.execGrants)
        let output = try harness.mediator.run(program: "/usr/bin/env", arguments: [], stdin: [])
        #expect(String(decoding: output.stdout, as: UTF8.self) == "")
    }

    @Test(arguments: [
        ("/bin/sh", ["-c", "echo pwned"]),
        ("/bin/echo", ["-n"]),
        ("/bin/echo", ["-e", "x"]),
        ("/bin/echo", ["-n", "x", "y"]),
        ("/bin/echo", ["-n", "x; touch /tmp/pwned"]) as (String, [String]),
    ])
    func ungrantedProgramsOrArgumentsAreDenied(program: String, arguments: [String]) throws {
        var grants = Self.execGrants
        if arguments.count == 2, arguments[1].contains(";") {
            grants = grants.replacingOccurrences(of: "args = [\"-n\", \"*\"]", with: "args = [\"-n\", \"x\"]")
        }
        let harness = try Harness(grants: grants)
        let error = harness.error { () throws(HostError) in
            try harness.mediator.run(program: program, arguments: arguments, stdin: [])
        }
        #expect(error?.code == .denied)
        #expect(try harness.decisions("exec.run").map(\.decision) == [.deny])
        #expect(try !harness.entries().contains { $0.record.outcome == "ok" })
    }

    @Test(arguments: ["echo", "/bin/../bin/echo", "/bin//echo", "bin/echo"])
    func relativeOrUnnormalizedProgramsAreInvalidArguments(program: String) throws {
        let harness = try Harness(grants: Self.execGrants)
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: program, arguments: [], stdin: []) }
        #expect(error?.code == .invalidArgument)
        #expect(try harness.decisions("exec.run").first?.decision == .deny)
    }

    // MARK: approval

    static let approvalGrants = """
        module = "counter"

        [[exec]]
        program = "/bin/echo"
        args = ["*"]
        approval = true
        """

    @Test func withoutAnApproverACallNeedingApprovalIsRefused() throws {
        let harness = try Harness(grants: Self.approvalGrants)
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: "/bin/echo", arguments: ["x"], stdin: []) }
        #expect(error?.code == .denied)
        #expect(error?.message.contains("approval required") == true)
        let decision = try #require(try harness.decisions("exec.run").first)
        #expect(decision.decision == .deny && decision.reason == "approval required")
        #expect(decision.details["approver"] == "none")
    }

    @Test func aCommandApproverSeesTheCallAsJSONAndItsExitStatusDecides() throws {
        let scratch = try Scratch()
        let seen = scratch.path + "/seen.json"
        // Approves only calls whose JSON mentions the argument "yes".
        let script = try scratch.file("approve.sh", "#!/bin/sh\ncat > \(seen)\ngrep -q '\"yes\"' \(seen)\n")
        chmod(script, 0o755)
        let approver = try #require(CommandApprover(commandLine: script, timeout: .seconds(20)))
        let harness = try Harness(grants: Self.approvalGrants, scratch: scratch, approver: approver)
        let output = try harness.mediator.run(program: "/bin/echo", arguments: ["yes"], stdin: [])
        #expect(output.stdout == Array("yes\n".utf8))
        let json = try #require(scratch.contents("seen.json"))
        #expect(json.contains("\"call\":\"exec.run\"") && json.contains("\"resource\":\"exec:\\/bin\\/echo\""))
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: "/bin/echo", arguments: ["no"], stdin: []) }
        #expect(error?.code == .denied)
        let decisions = try harness.decisions("exec.run")
        #expect(decisions.map(\.decision) == [.allow, .deny])
        #expect(decisions.allSatisfy { $0.details["approver"] == "command:\(script)" })
        #expect(decisions.map { $0.details["approval"] } == ["exit 0", "exit 1"])
    }

    @Test func aSlowApproverIsATimeoutRefusal() throws {
        let approver = try #require(CommandApprover(commandLine: "/bin/sleep 30", timeout: .milliseconds(200)))
        let harness = try Harness(grants: Self.approvalGrants, approver: approver)
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: "/bin/echo", arguments: ["x"], stdin: []) }
        #expect(error?.code == .denied)
        #expect(try harness.decisions("exec.run").first?.details["approval"] == "timeout")
    }

    /// An approver's answer is its own exit: a process it leaves in the background neither delays the answer (a
    /// `sleep 12 &` held it 12 s) nor, past the timeout, keeps the call waiting (a timed-out shell's `sleep` held it
    /// until the run's deadline, with no answer recorded); the timeout kills what the approver started as well.
    /// Found by a red-team pass.
    @Test func anApproversBackgroundChildrenNeitherDelayNorOutliveIt() throws {
        let scratch = try Scratch()
        let quick = try scratch.file("quick.sh", "#!/bin/sh\nsleep 30 &\nexit 0\n")
        chmod(quick, 0o755)
        let started = ContinuousClock.now
        let answer = try #require(CommandApprover(commandLine: quick, timeout: .seconds(20)))
            .approve(Self.request, deadline: .now + .seconds(60))
        #expect(answer.approved && answer.answer == "exit 0")
        #expect(ContinuousClock.now - started < .seconds(10), "answered when the approver exited")

        let child = scratch.path + "/child.pid"
        let slow = try scratch.file("slow.sh", "#!/bin/sh\nsleep 30 &\necho $! > \(child)\nsleep 30\n")
        chmod(slow, 0o755)
        let timedOut = try #require(CommandApprover(commandLine: slow, timeout: .milliseconds(500)))
            .approve(Self.request, deadline: .now + .seconds(60))
        #expect(!timedOut.approved && timedOut.answer == "timeout")
        #expect(ContinuousClock.now - started < .seconds(15))
        let pid = try #require(Int32(scratch.contents("child.pid")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        // Killed with the approver: gone, or a zombie waiting to be reaped.
        var gone = false
        for _ in 0..<200 where !gone {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
            gone = state == nil || state == "Z"
            if !gone { usleep(10_000) }
        }
        #expect(gone, "the approver's background child outlived its timeout")
    }

    static let request = ApprovalRequest(
        run: "r", module: "m", moduleSHA256: "", call: "exec.run", resource: "exec:/bin/echo", arguments: ["x"],
        details: [:], grant: "g.toml:2")

    // MARK: db

    static func database(_ scratch: Scratch) throws -> String {
        let path = scratch.path + "/analytics.db"
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sqlite.arguments = ["python3", "-c", """
            import sqlite3; c = sqlite3.connect('\(path)')
            c.executescript('create table orders(id integer, total real); insert into orders values (1, 9.5); create table secrets(v text); insert into secrets values (\\'x\\');')
            c.commit()
            """]
        try sqlite.run()
        sqlite.waitUntilExit()
        return path
    }

    static let dbGrants = """
        module = "analyst"

        [[db]]
        database = "analytics"
        tables = ["orders"]
        allow = ["read"]
        """

    @Test func aReadGrantAllowsQueriesOnItsTable() throws {
        let scratch = try Scratch()
        let path = try Self.database(scratch)
        let harness = try Harness(grants: Self.dbGrants, scratch: scratch, databases: ["analytics": path])
        let rows = try harness.mediator.query(database: "analytics", sql: "select id, total from orders where id = ?",
                                              parameters: [.integer(1)])
        #expect(rows.rows == [[.integer(1), .real(9.5)]])
        let decisions = try harness.decisions("db.query")
        #expect(decisions.map(\.resource) == ["db:analytics", "db:analytics/orders"])
        #expect(decisions.map(\.decision) == [.allow, .allow])
        let outcome = try #require(try harness.entries().last?.record)
        #expect(outcome.outcome == "ok" && outcome.details["accesses"] == "db.read orders")
    }

    @Test(arguments: [
        "insert into orders values (2, 1.0)",
        "update orders set total = 0",
        "delete from orders",
        "drop table orders",
        "create table t(x)",
        "attach database '/tmp/other.db' as o",
        "pragma writable_schema = 1",
        "select * from secrets",
        "select 1; delete from orders",
    ])
    func writesAndEscapesOnAReadOnlyTableGrantAreRefused(sql: String) throws {
        let scratch = try Scratch()
        let path = try Self.database(scratch)
        let harness = try Harness(grants: Self.dbGrants, scratch: scratch, databases: ["analytics": path])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "analytics", sql: sql, parameters: [])
        }
        #expect(error?.code == .denied || error?.code == .invalidArgument, "\(String(describing: error))")
        let decisions = try harness.decisions("db.execute")
        #expect(decisions.first?.resource == "db:analytics" && decisions.first?.decision == .allow, "the open is granted")
        let outcome = try harness.entries().map(\.record).last { $0.call == "db.execute" && $0.decision == nil }
        #expect(outcome?.outcome == error?.code.description, "the refusal is the call's logged outcome")
        #expect(!decisions.contains { $0.resource == "db:analytics/secrets" && $0.decision == .allow })
        let rows = try harness.mediator.query(database: "analytics", sql: "select count(*) from orders", parameters: [])
        #expect(rows.rows == [[.integer(1)]], "the table is unchanged")
    }

    @Test func aWriteThroughQueryIsRefusedEvenWithAWriteGrant() throws {
        let scratch = try Scratch()
        let path = try Self.database(scratch)
        let grants = Self.dbGrants.replacingOccurrences(of: "allow = [\"read\"]", with: "allow = [\"read\", \"insert\"]")
        let harness = try Harness(grants: grants, scratch: scratch, databases: ["analytics": path])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.query(database: "analytics", sql: "insert into orders values (5, 5)", parameters: [])
        }
        #expect(error?.code == .denied)
        #expect(try harness.mediator.execute(database: "analytics", sql: "insert into orders values (5, 5)", parameters: []) == 1)
    }

    // MARK: http

    static let httpGrants = """
        module = "fetcher"

        [[http]]
        urls = ["https://api.example.com/v1/**", "http://127.0.0.1:8080/**"]
        methods = ["GET"]
        rate = "2/minute"
        max-response = "1KiB"
        headers = { Authorization = "env:TEST_TOKEN" }
        """

    @Test func injectedSecretsReachTheTransportButNeitherTheGuestNorTheAuditLog() throws {
        let sender = RecordingSender()
        sender.responseHeaders = [HTTPHeader(name: "X-Echo", value: "Bearer s3cret"), HTTPHeader(name: "X-Ok", value: "1")]
        let harness = try Harness(grants: Self.httpGrants, http: sender, environment: ["TEST_TOKEN": "Bearer s3cret"])
        let response = try harness.mediator.send(HTTPRequestValue(
            method: "get", url: "HTTPS://API.example.com:443/v1/items?q=1",
            headers: [HTTPHeader(name: "authorization", value: "guest-forged")]))
        #expect(response.status == 200)
        #expect(response.headers == [HTTPHeader(name: "X-Echo", value: "[redacted]"), HTTPHeader(name: "X-Ok", value: "1")],
                "a header echoing the secret has it redacted")
        let (request, injected, allowed, cap) = try #require(sender.sent.first)
        #expect(request.url.description == "https://api.example.com/v1/items?q=1")
        #expect(request.headers == [HTTPHeader(name: "Accept-Encoding", value: "identity")],
                "the guest's Authorization is replaced, not doubled, and the host asks for a plain response")
        #expect(injected == [HTTPHeader(name: "Authorization", value: "Bearer s3cret")])
        #expect(allowed.isEmpty, "the grant's 127.0.0.1 pattern does not match this URL, so it exempts nothing")
        #expect(cap == 1024)
        let log = try String(contentsOfFile: harness.auditPath, encoding: .utf8)
        #expect(!log.contains("s3cret"))
        #expect(try harness.decisions("http.send").first?.resource == "http:https://api.example.com/v1/items?q=1")
    }

    @Test func aLiteralAddressIsExemptOnlyForTheURLPatternThatNamesIt() throws {
        let grants = """
            module = "fetcher"

            [[http]]
            urls = ["http://*/**", "http://127.0.0.1:8080/status"]
            methods = ["GET"]
            """
        let sender = RecordingSender()
        let harness = try Harness(grants: grants, http: sender)
        for url in ["http://127.0.0.1:8080/status", "http://127.0.0.1:8081/admin", "http://127.0.0.1:8080/other",
                    "http://localhost:8080/status"] {
            _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: url))
        }
        #expect(sender.sent.map(\.2) == [["127.0.0.1"], [], [], []],
                "only the pattern naming 127.0.0.1:8080/status exempts 127.0.0.1, and only for the URLs it matches")

        // With the real capability: another port of the named address is refused before any connection.
        let real = try Harness(grants: grants)
        let error = real.error { () throws(HostError) in
            try real.mediator.send(HTTPRequestValue(method: "GET", url: "http://127.0.0.1:9/admin"))
        }
        #expect(error?.code == .denied, "\(String(describing: error))")
    }

    /// What a guest's headers carried is on record by digest and length, as its body is: their names alone were, so up
    /// to 64 KiB of values went out with nothing to show for them.
    @Test func theGuestsHeaderValuesAreOnRecordByDigest() throws {
        let harness = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["https://api.example.com/**"]
            methods = ["GET"]
            """, http: RecordingSender())
        _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.example.com/a",
                                                       headers: [HTTPHeader(name: "X-A", value: "1"), HTTPHeader(name: "X-B", value: "two")]))
        _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.example.com/b"))
        let decisions = try harness.entries().map(\.record).filter { $0.call == "http.send" && $0.decision == .allow }
        let expected = AuditRecord.payloadDetails(of: Array("X-A: 1\r\nX-B: two\r\n".utf8), prefix: "guest_headers")
        #expect(decisions.first?.details["guest_headers"] == "X-A,X-B")
        #expect(decisions.first?.details["guest_headers_sha256"] == expected["guest_headers_sha256"])
        #expect(decisions.first?.details["guest_headers_len"] == "18")
        #expect(decisions.last?.details["guest_headers_sha256"] == nil, "no headers, no digest")
    }

    @Test func aGuestCannotAskForAnEncodedOrPartialResponseWhenTheGrantInjectsASecret() throws {
        let secret = "Bearer s3cret-9f8e7d"
        let sender = RecordingSender()
        let harness = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["https://api.example.com/v1/**"]
            methods = ["GET"]
            headers = { Authorization = "env:TEST_TOKEN" }
            """, http: sender, environment: ["TEST_TOKEN": secret])
        let url = "https://api.example.com/v1/echo"

        // The host asks for the identity encoding; the guest's Accept-Encoding does not reach the server.
        _ = try harness.mediator.send(HTTPRequestValue(
            method: "GET", url: url, headers: [HTTPHeader(name: "accept-encoding", value: "gzip")]))
        let headers = try #require(sender.sent.last).0.headers
        #expect(headers == [HTTPHeader(name: "Accept-Encoding", value: "identity")])

        // A part of the response is refused before anything is sent.
        for name in ["Range", "if-range"] {
            let before = sender.sent.count
            let error = harness.error { () throws(HostError) in
                try harness.mediator.send(HTTPRequestValue(method: "GET", url: url, headers: [HTTPHeader(name: name, value: "bytes=5-9")]))
            }
            #expect(error?.code == .invalidArgument)
            #expect(sender.sent.count == before, "nothing is sent for a \(name) request")
        }

        // A server that compresses or cuts the response anyway: the guest gets nothing, the log says io.
        let gzipped: [UInt8] = [0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03]
        for (status, header) in [(UInt16(200), HTTPHeader(name: "Content-Encoding", value: "gzip")),
                                 (200, HTTPHeader(name: "content-encoding", value: "identity, br")),
                                 (206, HTTPHeader(name: "X-Other", value: "1")),
                                 (200, HTTPHeader(name: "Content-Range", value: "bytes 0-3/40"))] {
            sender.responseStatus = status
            sender.responseHeaders = [header]
            sender.responseBody = gzipped
            var response: HTTPResponseValue?
            let error = harness.error { () throws(HostError) in
                response = try harness.mediator.send(HTTPRequestValue(method: "GET", url: url))
            }
            #expect(error?.code == .io, "\(status) \(header.name): \(header.value)")
            #expect(response == nil)
            #expect(error.map { !$0.message.contains("s3cret") } ?? false)
        }
        let outcomes = try harness.entries().map(\.record).filter { $0.call == "http.send" && $0.decision == nil }
        #expect(outcomes.suffix(4).allSatisfy { $0.outcome == "io" })

        // Without a secret to protect, the guest's encoding and ranges pass as they are.
        let plainSender = RecordingSender()
        plainSender.responseHeaders = [HTTPHeader(name: "Content-Encoding", value: "gzip")]
        let plain = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["https://api.example.com/v1/**"]
            methods = ["GET"]
            """, http: plainSender)
        let guestHeaders = [HTTPHeader(name: "Accept-Encoding", value: "gzip"), HTTPHeader(name: "Range", value: "bytes=0-1")]
        let response = try plain.mediator.send(HTTPRequestValue(method: "GET", url: url, headers: guestHeaders))
        #expect(response.headers == [HTTPHeader(name: "Content-Encoding", value: "gzip")])
        #expect(try #require(plainSender.sent.first).0.headers == guestHeaders)
    }

    @Test(arguments: [
        ("POST", "https://api.example.com/v1/x", HostErrorCode.denied),
        ("GET", "https://api.example.com/v2/x", .denied),
        ("GET", "https://api.example.com.evil.net/v1/x", .denied),
        ("GET", "https://api.example.com@169.254.169.254/v1/x", .invalidArgument),
        ("GET", "http://169.254.169.254/latest/meta-data", .denied),
        ("GET", "http://[::1]/v1/x", .denied),
        ("GET", "http://127.0.0.1/v1/x", .denied),
        ("GET", "file:///etc/passwd", .invalidArgument),
        ("GE T", "https://api.example.com/v1/x", .invalidArgument),
        ("GET", "https://api.example.com/v1/../../admin", .denied),
    ])
    func ungrantedMethodsHostsAndAddressesAreRefusedBeforeTheTransport(method: String, url: String, code: HostErrorCode) throws {
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.httpGrants, http: sender, environment: ["TEST_TOKEN": "t"])
        let error = harness.error { () throws(HostError) in try harness.mediator.send(HTTPRequestValue(method: method, url: url)) }
        #expect(error?.code == code)
        #expect(sender.sent.isEmpty)
        #expect(try harness.decisions("http.send").map(\.decision) == [.deny])
    }

    @Test func exhaustingAGrantsRateLimitIsLimitExceededAndAudited() throws {
        let clock = ManualClock()
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.httpGrants, http: sender, environment: ["TEST_TOKEN": "t"],
                                  now: { clock.now() })
        let request = HTTPRequestValue(method: "GET", url: "https://api.example.com/v1/x")
        _ = try harness.mediator.send(request)
        _ = try harness.mediator.send(request)
        let error = harness.error { () throws(HostError) in try harness.mediator.send(request) }
        #expect(error?.code == .limitExceeded)
        #expect(sender.sent.count == 2)
        let last = try #require(try harness.decisions("http.send").last)
        #expect(last.decision == .deny && last.outcome == "limit-exceeded")
        clock.advance(.seconds(30))
        _ = try harness.mediator.send(request)
        #expect(sender.sent.count == 3, "the bucket refills with time")
    }

    @Test func aMissingSecretFailsTheCallWithoutSendingIt() throws {
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.httpGrants, http: sender, environment: [:])
        let error = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.example.com/v1/x"))
        }
        #expect(error?.code == .io)
        #expect(sender.sent.isEmpty)
        #expect(error?.message.contains("TEST_TOKEN") == false)
    }
}
