import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: grants that are harmless one by one become code execution or a file reader together (an
/// exec grant fed an option, a script the guest may also write), or a secret the host injects comes
/// back to the guest in a response, or a guest's text drives the operator's terminal.
@Suite struct CombinedGrantTests {
    static let wcGrants = """
        module = "counter"

        [[exec]]
        program = "/usr/bin/wc"
        args = ["-l", "*"]
        """

    /// `args = ["-l", "*"]`: a bare `*` never matches an option, so `--files0-from=/etc/passwd` (which made
    /// `wc` print the file's lines in its error messages) is denied; a file name still matches.
    @Test(arguments: ["--files0-from=/etc/passwd", "-", "--help", "-c"])
    func aBareWildcardDoesNotMatchAnOption(argument: String) throws {
        let harness = try Harness(grants: Self.wcGrants)
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: "/usr/bin/wc", arguments: ["-l", argument], stdin: []) }
        #expect(error?.code == .denied)
        #expect(try harness.decisions("exec.run").map(\.decision) == [.deny])
    }

    @Test func aWrittenDashAllowsOptionsAndGrantsCheckSaysSo() throws {
        let scratch = try Scratch()
        _ = try scratch.file("in.txt", "a\nb\n")
        let harness = try Harness(grants: Self.wcGrants, scratch: scratch)
        let output = try harness.mediator.run(program: "/usr/bin/wc", arguments: ["-l", scratch.path + "/in.txt"], stdin: [])
        #expect(String(decoding: output.stdout, as: UTF8.self).hasPrefix("2 "))
        #expect(ArgumentVector.matches(ArgumentVector.encode(["--format=x"]), patterns: ArgumentVector.encodePatterns(["--format=*"])))
        #expect(ArgumentVector.matches(ArgumentVector.encode(["-x"]), patterns: ArgumentVector.encodePatterns(["-*"])))
        #expect(!ArgumentVector.matches(ArgumentVector.encode(["-x"]), patterns: ArgumentVector.encodePatterns(["?x"])))
        let grants = try GrantsParser.parse("""
            module = "m"

            [[exec]]
            program = "/usr/bin/wc"
            args = ["-*", "*"]
            """, file: "g.toml", baseDirectory: "/")
        let warnings = riskyCombinations(in: grants)
        #expect(warnings.count == 1 && warnings[0].contains("`-*` admits options"))
    }

    /// A guest with `fs.write` on a script an exec grant runs rewrote it and ran its own code. Now every
    /// file a guest writes or appends to loses its execute bits, so the program no longer runs at all.
    @Test(arguments: ["write", "append"])
    func aGuestCannotRunBytesItWrote(operation: String) throws {
        let scratch = try Scratch()
        let script = try scratch.file("tool.sh", "#!/bin/sh\necho original\n")
        #expect(chmod(script, 0o4755) == 0)
        let harness = try Harness(grants: """
            module = "writer"

            [[fs]]
            paths = ["\(scratch.path)/**"]
            allow = ["write", "append"]

            [[exec]]
            program = "\(script)"
            """, scratch: scratch)
        #expect(String(decoding: try harness.mediator.run(program: script, arguments: [], stdin: []).stdout, as: UTF8.self) == "original\n")
        let payload = Array("#!/bin/sh\necho pwned\n".utf8)
        if operation == "write" {
            try harness.mediator.write(path: script, data: payload)
        } else {
            try harness.mediator.append(path: script, data: Array("echo pwned\n".utf8))
        }
        var status = stat()
        #expect(stat(script, &status) == 0)
        #expect(status.st_mode & 0o7111 == 0, "no execute, setuid or setgid bit survives a guest's \(operation)")
        let error = harness.error { () throws(HostError) in try harness.mediator.run(program: script, arguments: [], stdin: []) }
        #expect(error?.code == .denied, "the rewritten script does not run: \(String(describing: error))")
        let grants = try GrantsParser.parse("""
            module = "writer"

            [[fs]]
            paths = ["\(scratch.path)/**"]
            allow = ["write"]

            [[exec]]
            program = "\(script)"
            """, file: "g.toml", baseDirectory: "/")
        #expect(riskyCombinations(in: grants).contains { $0.contains("lets the module write \(script)") })
    }

    /// Clearing execute bits does not stop an interpreter: `/bin/sh job.sh`, with `job.sh` writable, ran what the guest
    /// wrote (found by a red-team pass). `grants check` warns when an exec argument names, or a pattern can name, a
    /// file an fs grant lets the module write.
    @Test func anInterpreterArgumentTheModuleMayWriteIsWarnedAbout() throws {
        let grants = try GrantsParser.parse("""
            module = "writer"

            [[fs]]
            paths = ["/srv/work/**"]
            allow = ["read", "write"]

            [[exec]]
            program = "/bin/sh"
            args = ["/srv/work/job.sh"]

            [[exec]]
            program = "/usr/bin/python3"
            args = ["/srv/work/*.py"]

            [[exec]]
            program = "/usr/bin/wc"
            args = ["-l", "/srv/reports/*"]

            [[fs]]
            paths = ["/srv/jobs/job-*.sh", "/srv/rc/**"]
            allow = ["write"]

            [[exec]]
            program = "/bin/sh"
            args = ["/srv/jobs/*"]

            [[exec]]
            program = "/bin/bash"
            args = ["--rcfile=/srv/rc/bashrc", "-i"]

            [[exec]]
            program = "/usr/bin/perl"
            args = ["/srv/jobs/../work/./y.pl"]

            [[exec]]
            program = "/bin/sh"
            args = ["-c", "echo *"]

            [[exec]]
            program = "/bin/bash"
            args = ["-lc", "*"]
            """, file: "g.toml", baseDirectory: "/")
        let warnings = riskyCombinations(in: grants)
        #expect(warnings.contains { $0.contains("exec[0] args[0] `/srv/work/job.sh`") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("exec[1] args[0] `/srv/work/*.py`") }, "\(warnings)")
        #expect(!warnings.contains { $0.contains("exec[2]") }, "\(warnings)")
        // A pattern wider than the writable one, and a path inside an option (found by a red-team pass).
        #expect(warnings.contains { $0.contains("exec[3] args[0] `/srv/jobs/*`") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("exec[4] args[0] `--rcfile=/srv/rc/bashrc`") }, "\(warnings)")
        // Another spelling of a writable path, and code chosen by the module (found by a newcomer and a red-team pass).
        #expect(warnings.contains { $0.contains("exec[5] args[0]") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("exec[6] (g.toml") && $0.contains("args[1] `echo *` after `-c`") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("exec[7] (g.toml") && $0.contains("after `-lc`") }, "\(warnings)")
    }

    /// Every occurrence of an injected value is cut out of what the server sends back: a cookie, an echo
    /// in another header, the body of a server that reflects the request.
    @Test func injectedSecretsAreRedactedFromHeadersAndBody() throws {
        let sender = RecordingSender()
        sender.responseHeaders = [HTTPHeader(name: "Set-Cookie", value: "k=SECRET-TOKEN-1; Path=/"),
                                  HTTPHeader(name: "X-Echo", value: "got=SECRET-TOKEN-1"),
                                  HTTPHeader(name: "X-Ok", value: "fine")]
        sender.responseBody = Array("X-Key: SECRET-TOKEN-1\r\nagain SECRET-TOKEN-1, Bearer t0k".utf8)
        let harness = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["https://api.example.com/**"]
            methods = ["GET"]
            headers = { X-Key = "SECRET-TOKEN-1", Authorization = "env:TOKEN" }
            """, http: sender, environment: ["TOKEN": "Bearer t0k"])
        let response = try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.example.com/echo"))
        let everything = response.headers.map { $0.name + ":" + $0.value }.joined() + String(decoding: response.body, as: UTF8.self)
        #expect(!everything.contains("SECRET-TOKEN-1") && !everything.contains("Bearer t0k"))
        #expect(response.headers.contains(HTTPHeader(name: "X-Ok", value: "fine")))
        #expect(response.headers.contains(HTTPHeader(name: "X-Echo", value: "got=[redacted]")))
        #expect(String(decoding: response.body, as: UTF8.self) == "X-Key: [redacted]\r\nagain [redacted], [redacted]")
        let outcome = try #require(try harness.entries().last?.record)
        #expect(outcome.outcome == "ok" && outcome.details["redacted"] == "5")
    }

    /// What a guest is told about a resource: its kind prefixes cut off in their order, escaped, at most 200 characters.
    @Test func guestVisibleResourcesLoseTheirKindAndAreEscaped() {
        #expect(guestVisible("fs:/data/x") == "/data/x")
        #expect(guestVisible("http:GET https://example.com/") == "GET https://example.com/")
        #expect(guestVisible("db:bench") == "bench")
        #expect(guestVisible("exec:/bin/true") == "/bin/true")
        #expect(guestVisible("fs:http:db:exec:x") == "x", "each kind in turn, as the resource's own text")
        #expect(guestVisible("http:fs:x") == "fs:x", "a kind after a later one stays")
        #expect(guestVisible("fs") == "fs" && guestVisible("fs:") == "" && guestVisible("") == "")
        #expect(guestVisible("file:/x") == "file:/x")
        #expect(guestVisible("fs:/caf\u{E9}\n") == "/caf\u{E9}\\u{a}")
        let long = guestVisible("fs:/" + String(repeating: "\u{E9}", count: 300))
        #expect(long == "/" + String(repeating: "\u{E9}", count: 199) + "…")
    }

    /// The approval prompt shows what a guest sent escaped, so `\r` and ANSI sequences cannot erase the
    /// real request and show a forged one; so does every line printed about a guest.
    @Test func terminalTextIsEscaped() {
        let request = ApprovalRequest(
            run: "r", module: "m", moduleSHA256: "", call: "fs.write", resource: "fs:/tmp/x\r\u{1b}[2Kfs.read /tmp/harmless",
            arguments: ["a\u{9b}31m"], details: ["k": "\u{7}\u{202e}"], grant: "g.toml:3")
        let summary = request.summary
        #expect(!summary.unicodeScalars.contains { TerminalText.needsEscape($0) })
        #expect(summary.contains("\\u{d}\\u{1b}[2K"))
        #expect(TerminalText.escaped("peon-wasm: error: fine") == "peon-wasm: error: fine")
        #expect(TerminalText.escaped("x\npeon-wasm: error: forged") == "x\\u{a}peon-wasm: error: forged")
        // Line and paragraph separators and bidi marks, which some terminals and viewers act on.
        #expect(TerminalText.escaped("a\u{2028}b\u{2029}c\u{200e}d\u{200f}e\u{61c}f") == "a\\u{2028}b\\u{2029}c\\u{200e}d\\u{200f}e\\u{61c}f")
        #expect(TerminalText.escaped("café ünïcödé 日本") == "café ünïcödé 日本")
        // Every escaped ASCII byte, wherever it falls in a long printable run (and in a bridged, non-native string).
        for byte in (0..<0x20).map({ UInt8($0) }) + [0x7F] {
            for offset in [0, 1, 7, 8, 15, 16, 40] {
                let text = String(repeating: "p", count: offset) + String(decoding: [byte], as: UTF8.self) + "q"
                let escaped = "\\u{\(String(byte, radix: 16))}"
                #expect(TerminalText.escaped(text) == String(repeating: "p", count: offset) + escaped + "q")
                #expect(TerminalText.escaped(NSString(string: text) as String) == String(repeating: "p", count: offset) + escaped + "q")
            }
        }
    }
}
