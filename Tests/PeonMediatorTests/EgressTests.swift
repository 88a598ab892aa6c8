import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import PeonPolicy
import Testing

/// Threat: an allowed sink carries a secret out (a private key in a POST, a cloud key in an exec argument,
/// the host's own injected token in a file). `[egress]` patterns refuse such data wherever it leaves, and
/// the log names the pattern, never the match.
@Suite struct EgressTests {
    static let privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
    static let awsKey = "AKIAIOSFODNN7EXAMPLE"

    static func grants(_ folder: String, egress: String = "[egress]\nrefuse = [\"private-key\", \"aws-access-key\"]\npatterns = [{ name = \"employee-id\", regex = \"EMP-[0-9]{6}\" }]") -> String {
        """
        module = "courier"

        [[fs]]
        paths = ["\(folder)/**"]
        allow = ["read", "write", "append"]

        [[exec]]
        program = "/bin/echo"
        args = ["*"]

        [[http]]
        urls = ["https://api.partner.com/**"]
        methods = ["POST"]
        headers = { Authorization = "env:PARTNER_TOKEN" }

        \(egress)
        """
    }

    static func auditText(_ harness: Harness) throws -> String {
        try String(contentsOfFile: harness.auditPath, encoding: .utf8)
    }

    @Test func aPrivateKeyInAWrittenFileIsRefusedAndNeverLogged() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants(scratch.path), scratch: scratch)
        try FileManager.default.createDirectory(atPath: scratch.path + "/out", withIntermediateDirectories: true)
        let target = scratch.path + "/out/notes.txt"
        let error = harness.error { () throws(HostError) in
            try harness.mediator.write(path: target, data: Array(("notes\n" + Self.privateKey).utf8))
        }
        #expect(error?.code == .denied)
        #expect(error?.message.contains("egress pattern 'private-key'") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: target))
        let denial = try #require(harness.decisions("fs.write").last)
        #expect(denial.decision == .deny)
        #expect(denial.details["egress_pattern"] == "private-key")
        #expect(denial.details["egress_part"] == "data")
        #expect(try !Self.auditText(harness).contains("b3BlbnNzaC1rZXkt"), "the match never reaches the log")
        // Appends are checked the same way, and clean data still goes through.
        #expect(harness.error { () throws(HostError) in
            try harness.mediator.append(path: target, data: Array("employee EMP-004211 moved".utf8))
        }?.message.contains("'employee-id'") == true)
        try harness.mediator.write(path: target, data: Array("EMP-12 is not an id; AKIA alone is not a key".utf8))
        // A file name can spell a secret too.
        let named = harness.error { () throws(HostError) in
            try harness.mediator.write(path: scratch.path + "/" + Self.awsKey, data: [0x61])
        }
        #expect(named?.code == .denied)
        #expect(try harness.decisions("fs.write").last?.details["egress_part"] == "path")
    }

    @Test func execArgumentsAndStdinAreChecked() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants(scratch.path), scratch: scratch)
        let argument = harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/echo", arguments: ["key=" + Self.awsKey], stdin: [])
        }
        #expect(argument?.code == .denied)
        #expect(try harness.decisions("exec.run").last?.details["egress_part"] == "argument 1")
        let stdin = harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/echo", arguments: ["ok"], stdin: Array(Self.privateKey.utf8))
        }
        #expect(stdin?.code == .denied)
        #expect(try harness.decisions("exec.run").last?.details["egress_part"] == "stdin")
        let output = try harness.mediator.run(program: "/bin/echo", arguments: ["clean"], stdin: [])
        #expect(output.stdout == Array("clean\n".utf8))
    }

    @Test func theHostsInjectedSecretCannotLeaveByAnotherDoorEvenWithoutEgressRules() throws {
        let scratch = try Scratch()
        let secret = "tok_7f3a9c1e55d04b2a"
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.grants(scratch.path, egress: ""), scratch: scratch, http: sender,
                                  environment: ["PARTNER_TOKEN": secret])
        // The POST itself carries the injected header: fine, the host adds it after the check.
        _ = try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.partner.com/t", headers: [],
                                                       body: Array("hello".utf8)))
        #expect(sender.sent.count == 1)
        // The same value in the guest's own body, header or URL, a file, or an exec argument is refused.
        let body = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.partner.com/t", headers: [],
                                                       body: Array("leak \(secret)".utf8)))
        }
        #expect(body?.message.contains("'injected-secret'") == true, "\(String(describing: body))")
        let header = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.partner.com/t",
                                                       headers: [HTTPHeader(name: "X-Note", value: secret)], body: []))
        }
        #expect(header?.code == .denied)
        #expect(try harness.decisions("http.send").last?.details["egress_part"] == "header X-Note")
        #expect(try !Self.auditText(harness).contains(secret), "a refused body or header is logged by name and hash only")
        // In the URL itself it is refused too; the entry records the URL as sent, like every resource.
        let url = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.partner.com/t?k=\(secret)", headers: [], body: []))
        }
        #expect(url?.code == .denied)
        #expect(sender.sent.count == 1, "no refused request reached the transport")
        #expect(harness.error { () throws(HostError) in
            try harness.mediator.write(path: scratch.path + "/x", data: Array(secret.utf8))
        }?.code == .denied)
        // Other data passes.
        try harness.mediator.write(path: scratch.path + "/y", data: Array("tok_ alone".utf8))
    }

    @Test func databaseStatementsAndParametersAreChecked() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/notes.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        sqlite3_exec(handle, "CREATE TABLE notes (body TEXT)", nil, nil, nil)
        sqlite3_close(handle)
        let grants = Self.grants(scratch.path) + "\n[[db]]\ndatabase = \"notes\"\ntables = [\"notes\"]\nallow = [\"read\", \"insert\"]\n"
        let harness = try Harness(grants: grants, scratch: scratch, databases: ["notes": path])
        let parameter = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "notes", sql: "INSERT INTO notes VALUES (?)", parameters: [.text("id EMP-123456")])
        }
        #expect(parameter?.code == .denied)
        #expect(try harness.decisions("db.execute").last?.details["egress_part"] == "parameter 1")
        let literal = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "notes", sql: "INSERT INTO notes VALUES ('\(Self.awsKey)')", parameters: [])
        }
        #expect(literal?.code == .denied)
        _ = try harness.mediator.execute(database: "notes", sql: "INSERT INTO notes VALUES (?)", parameters: [.text("fine")])
        let rows = try harness.mediator.query(database: "notes", sql: "SELECT body FROM notes", parameters: [])
        #expect(rows.rows == [[.text("fine")]], "only the clean row was stored")
    }

    @Test func patternsAreValidatedWhenGrantsLoad() throws {
        func error(_ egress: String) -> String? {
            do {
                _ = try GrantsParser.parse("module = \"m\"\n" + egress, file: "g.toml", baseDirectory: "/")
                return nil
            } catch {
                return error.description
            }
        }
        #expect(error("[egress]\nrefuse = [\"nope\"]\n")?.contains("unknown detector \"nope\"") == true)
        #expect(error("[egress]\npatterns = [{ name = \"x\", regex = \"[0-9]{6}\" }]\n")?.contains("at least 4 literal characters") == true)
        #expect(error("[egress]\npatterns = [{ name = \"x\", regex = \"abcd|e\" }]\n")?.contains("at least 4 literal characters") == true,
                "a top-level alternation has no common start to search for")
        #expect(error("[egress]\npatterns = [{ name = \"x\", regex = \"abcdé\" }]\n")?.contains("ASCII") == true)
        #expect(error("[egress]\npatterns = [{ name = \"x\", regex = \"abcd(\" }]\n")?.contains("invalid pattern") == true)
        #expect(error("[egress]\npatterns = [{ regex = \"abcdef\" }]\n")?.contains("name the pattern") == true)
        #expect(error("[egress]\nblock = []\n") != nil)
        #expect(error("[egress]\nrefuse = [\"github-token\"]\npatterns = [{ name = \"ticket\", regex = \"TICKET-[A-Z]{3}\" }]\n") == nil)
    }

    @Test("each built-in detector finds the secret it names, inside other text, and not its near miss",
          arguments: [
              ("private-key", "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl", "-----BEGIN PUBLIC KEY-----"),
              ("private-key", "-----BEGIN RSA PRIVATE KEY-----", "BEGIN RSA PRIVATE KEY"),
              ("aws-access-key", "id=AKIAIOSFODNN7EXAMPLE;", "AKIAIOSFODNN7EXAMP"),
              ("aws-access-key", "ASIAY34FZKBOKMUTVV7A", "ASIAy34fzkbokmutvv7a"),
              ("github-token", "token ghp_" + String(repeating: "a1B2", count: 9), "ghp_" + String(repeating: "a1B2", count: 8)),
              ("github-token", "gho_" + String(repeating: "Z", count: 36), "gh_" + String(repeating: "Z", count: 36)),
              ("github-token", "ghs_" + String(repeating: "0", count: 36), "ghx_" + String(repeating: "0", count: 36)),
              ("github-token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_short"),
              ("slack-token", "xoxb-1234567890-abcdef", "xoxb-123"),
              ("slack-token", "Bearer xoxp-0000000000-1111", "xoxz-0000000000-1111"),
              ("google-api-key", "key=AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA-123"),
              ("openai-key", "sk-proj-abcdefghij0123456789XYZ", "sk-proj-abc"),
          ])
    func eachBuiltInDetectorFindsItsSecret(detector: String, secret: String, nearMiss: String) throws {
        let sources = try #require(ContentPattern.builtIn[detector])
        let patterns = try sources.map { try ContentPattern(name: detector, regex: $0) }
        #expect(patterns.contains { $0.occurs(in: Array(secret.utf8)) }, "\(detector) misses \(secret)")
        #expect(!patterns.contains { $0.occurs(in: Array(nearMiss.utf8)) }, "\(detector) takes \(nearMiss) for a secret")
    }

    @Test func aMatchIsFoundAnywhereInLargeDataAndNotWhereThereIsNone() throws {
        let pattern = try ContentPattern(name: "employee-id", regex: "EMP-[0-9]{6}")
        var data = [UInt8](repeating: UInt8(ascii: "E"), count: 8 << 20)
        #expect(!pattern.occurs(in: data))
        data.replaceSubrange((data.count - 10)..<data.count, with: Array("EMP-123456".utf8))
        #expect(pattern.occurs(in: data), "a match in the last bytes of 8 MiB")
        #expect(!pattern.occurs(in: Array("EMP-12345".utf8)), "one digit short")
        #expect(throws: ContentPatternError.self, "the d* may be empty, so only abc is a fixed start") {
            try ContentPattern(name: "x", regex: "abcd*")
        }
        #expect(throws: ContentPatternError.self, "an escaped | is a literal, the other one an alternation") {
            try ContentPattern(name: "x", regex: "abcd\\|ef|x")
        }
        let classBar = try ContentPattern(name: "x", regex: "abcd[|]x")
        #expect(classBar.occurs(in: Array("..abcd|x..".utf8)))
        #expect(!classBar.occurs(in: Array("..x..".utf8)), "a | inside a class is no alternation")
        // Data that repeats a literal start everywhere is refused once the scan's budget is spent, fast,
        // instead of running the pattern at every one of its 4 million places.
        let flood = [UInt8](repeating: 0, count: 16 << 20).enumerated().map { Array("EMP-".utf8)[$0.offset % 4] }
        let started = ContinuousClock.now
        #expect(pattern.occurs(in: flood), "past the budget a scan fails closed")
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(!pattern.occurs(in: [UInt8](repeating: UInt8(ascii: "E"), count: 1 << 20)), "no literal start, no budget spent")
        let secret = ContentPattern(name: "s", literal: Array("secret-value".utf8))
        #expect(secret.occurs(in: Array("xx secret-value yy".utf8)))
        #expect(!secret.occurs(in: Array("secret-valu".utf8)))
    }
}
