import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import PeonTestSupport
import Testing

/// Threat: policy, log and capability read a resource differently (the bug this suite exists for: a
/// grant for `/allowed/**` let `GET /allowed/%2e%2e/secret.txt` through, the capability fetched
/// `/secret.txt` and the log said `/allowed/%2e%2e/secret.txt`). Every resource is parsed once; these
/// tests drive hostile spellings through the real mediator and the real HTTP capability against a
/// server that records the raw request line, and require decided = done = logged for each.
@Suite(.serialized) struct DecidedDoneLoggedTests {
    /// Every hostile spelling of "outside /allowed/" we could think of: percent-encoded dots in every
    /// case and mix, dot segments at the end, doubled slashes, escapes of unreserved characters,
    /// upper/lower hex, query tricks. Each is either refused (invalid-argument) or resolved before the
    /// decision; either way what the server receives is exactly what was decided and logged.
    static let hostileTargets = [
        "/allowed/%2e%2e/secret.txt", "/allowed/%2E%2E/secret.txt", "/allowed/.%2E/secret.txt",
        "/allowed/%2e./secret.txt", "/allowed/%2E./secret.txt", "/allowed/.%2e/secret.txt",
        "/allowed/../secret.txt", "/allowed/./../secret.txt", "/allowed/%2e/%2e%2e/secret.txt",
        "/allowed/x/%2e%2e/%2e%2e/secret.txt", "/allowed/%2e%2e", "/allowed/%2e%2e/", "/allowed/..",
        "/allowed/%2e", "/allowed/%252e%252e/secret.txt", "/allowed//../secret.txt", "/allowed/%2f../secret.txt",
        "/allowed/%5c../secret.txt", "/allowed/..%2fsecret.txt", "/allowed/..%5csecret.txt",
        "/allowed/%00/../secret.txt", "/allowed/%61llowed/../../secret.txt", "/%61llowed/file.txt",
        "/ALLOWED/file.txt", "/allowed/file.txt?x=/../../secret.txt", "/allowed/file.txt?%2e%2e",
        "/allowed/%7Euser/file", "/allowed/%7euser/file", "/allowed/a;b=c/file", "/allowed/file.txt#frag",
        "/allowed/file.txt?", "/allowed/%e2%80%ae/file", "/allowed/\u{2e}\u{2e}/secret.txt",
        "/allowed/%2e%2E%2e/secret.txt", "/allowed/...", "/allowed/.../secret.txt",
        "/allowed/file.txt?q=%2F%2e%2e", "/allowed/file.txt?q=a b", "/allowed/file%20name",
        "/allowed/'quote'", "/allowed/(paren)!*$,;=:@&+", "/allowed/%41%42", "/allowed/%zz",
        "/allowed/%", "/allowed/%2", "/allowed/\\..\\secret.txt", "/allowed/\t../secret.txt",
    ]

    static func grants(port: UInt16) -> String {
        """
        module = "fetcher"

        [[http]]
        urls = ["http://127.0.0.1:\(port)/allowed/**"]
        methods = ["GET"]
        headers = { Authorization = "Bearer the-grant-secret" }
        """
    }

    /// Two spellings Swift's `==` calls equal are two files to the kernel: as paths (and resources, and set
    /// members) they stay apart.
    @Test func exactTextComparesBytes() {
        let long = String(repeating: "policy/", count: 40)
        #expect(ExactText("") == ExactText(""))
        #expect(ExactText("a") != ExactText(""))
        #expect(ExactText("a") != ExactText("b"))
        #expect(ExactText(long) == ExactText(String(long.dropFirst(0))))
        #expect(ExactText(long + "x") != ExactText(long + "y"))
        #expect(ExactText(long) != ExactText(String(long.dropLast())))
        #expect(ExactText("caf\u{E9}") != ExactText("cafe\u{301}"))
        #expect(Set([ExactText("caf\u{E9}"), ExactText("cafe\u{301}"), ExactText("caf\u{E9}")]).count == 2)
    }

    @Test func canonicallyEquivalentPathsAreDifferentPaths() throws {
        let composed = try GuestPath(parsing: "/data/caf\u{E9}", relativeTo: nil)
        let decomposed = try GuestPath(parsing: "/data/cafe\u{301}", relativeTo: nil)
        #expect(composed.description == decomposed.description, "Swift calls the texts equal")
        #expect(composed != decomposed)
        #expect(Resource.file(composed) != Resource.file(decomposed))
        #expect(Set([composed, decomposed]).count == 2)
        #expect(composed == (try GuestPath(parsing: "/data/./caf\u{E9}", relativeTo: nil)))
        let database = try DatabaseName(parsing: "sales")
        #expect(Resource.table(database, "caf\u{E9}") != Resource.table(database, "cafe\u{301}"))
        #expect(Set([Resource.table(database, "caf\u{E9}"), .table(database, "cafe\u{301}")]).count == 2)
        #expect(Resource.table(database, "caf\u{E9}") == Resource.table(database, "caf\u{E9}"))
        #expect(Resource.table(database, "t") != Resource.database(database))
    }

    @Test func theURLDecidedIsTheURLLoggedIsTheRequestTargetSent() throws {
        let server = try LoopbackHTTPServer(routes: [:])
        defer { server.stop() }
        let harness = try Harness(grants: Self.grants(port: server.port))
        var outcomes: [String] = []
        for target in Self.hostileTargets {
            let url = "http://127.0.0.1:\(server.port)" + target
            let before = server.received.count
            let entriesBefore = try harness.entries().count
            let error = harness.error { () throws(HostError) in try harness.mediator.send(HTTPRequestValue(method: "GET", url: url)) }
            let entries = try harness.entries().dropFirst(entriesBefore).map(\.record)
            let decision = try #require(entries.first { $0.decision != nil }, "\(target): no decision was logged")
            let arrived = server.received.dropFirst(before)
            if decision.decision == .allow {
                // Allowed: exactly one request arrived, and its request line is what was decided and logged.
                let request = try #require(arrived.first, "\(target): allowed but nothing arrived (\(String(describing: error)))")
                #expect(arrived.count == 1)
                #expect(decision.resource == "http:http://127.0.0.1:\(server.port)" + request.path,
                        "\(target): logged \(decision.resource), the server received \(request.path)")
                #expect(request.path.hasPrefix("/allowed/"), "\(target): an allowed request left /allowed/: \(request.path)")
                #expect(request.header("authorization") == "Bearer the-grant-secret")
                outcomes.append("allow \(target) -> \(request.path)")
            } else {
                // Refused (malformed, or outside the grant): nothing reached the server, and the secret was never sent.
                #expect(arrived.isEmpty, "\(target): refused but a request arrived: \(arrived.map(\.path))")
                #expect(error != nil)
                let canonical = try? CanonicalURL(parsing: url)
                if let canonical {
                    #expect(decision.resource == Resource.url(canonical).description)
                    #expect(!canonical.target.hasPrefix("/allowed/"), "\(target): inside the grant but denied")
                } else {
                    #expect(decision.resource == "http:?" && error?.code == .invalidArgument)
                }
                outcomes.append("deny  \(target)")
            }
        }
        // The attack from the report in particular: denied, never sent.
        #expect(outcomes.contains("deny  /allowed/%2e%2e/secret.txt"))
        #expect(!server.received.contains { $0.path.contains("secret") && !$0.path.hasPrefix("/allowed/") })
    }

    /// A grant for one path shape (`/users/*/profile`) must not reach another path because the literal part
    /// of the pattern was found in the query: `/users/?/profile` is a request for `/users/`. Before the fix
    /// the glob split the query on `/`, the call was allowed and the server received `GET /users/?/profile`
    /// with the grant's secret. Found by a red-team pass.
    @Test func aQueryCannotSupplyThePathSegmentsAGrantNames() throws {
        let server = try LoopbackHTTPServer(routes: [:])
        defer { server.stop() }
        let harness = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["http://127.0.0.1:\(server.port)/users/*/profile", "http://127.0.0.1:\(server.port)/**/public"]
            methods = ["GET"]
            headers = { Authorization = "Bearer the-grant-secret" }
            """)
        let base = "http://127.0.0.1:\(server.port)"
        for target in ["/users/?/profile", "/users/?x=/profile", "/admin?/public", "/admin?q=a/public"] {
            let error = harness.error { () throws(HostError) in try harness.mediator.send(HTTPRequestValue(method: "GET", url: base + target)) }
            #expect(error?.code == .denied, "\(target) reached \(server.received.map(\.path))")
        }
        #expect(server.received.isEmpty, "sent: \(server.received.map(\.path))")
        // The shapes the grant names still go through.
        _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: base + "/users/7/profile"))
        _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: base + "/a/b/public"))
        #expect(server.received.map(\.path) == ["/users/7/profile", "/a/b/public"])
    }

    @Test(arguments: [
        ("HTTPS://API.Example.COM:443/v1/x?q=1", "https://api.example.com/v1/x?q=1"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("http://h/allowed/%2e%2e/secret.txt", "http://h/secret.txt"),
        ("http://h/allowed/.%2E/x", "http://h/x"),
        ("http://h/allowed/%2e./x", "http://h/x"),
        ("http://h/allowed/%2E%2e", "http://h/"),
        ("http://h/a/%7Eb/%41", "http://h/a/~b/A"),
        ("http://h/a?q=%2f", "http://h/a?q=%2F"),
    ])
    func aURLHasOneCanonicalSpellingAndParsingItAgainChangesNothing(url: String, canonical: String) throws {
        let parsed = try CanonicalURL(parsing: url)
        #expect(parsed.description == canonical)
        #expect(try CanonicalURL(parsing: parsed.description) == parsed)
    }

    @Test(arguments: ["ftp://example.com/", "https://user:pw@example.com/", "https:///path", "https://exa mple.com/",
                      "https://example.com\\@evil.com/", "/relative", "https://example.com:99999/",
                      "https://example.com/a#frag", "http://2130706433/", "http://0x7f.1/", "http://h/a%2fb",
                      "http://h/%00", "http://h/\u{202e}"])
    func ambiguousURLsAreRefused(url: String) {
        #expect(hostError { () throws(HostError) in try CanonicalURL(parsing: url) }?.code == .invalidArgument)
    }

    /// A grant's URL pattern is normalized by the same rules, so a pattern written with escapes or in
    /// another case matches the URLs it names, and never more.
    @Test func grantPatternsAndRequestsAreSpelledAlike() throws {
        #expect(try CanonicalURL.normalizedPattern("HTTP://127.0.0.1:80/%7Eu/**") == "http://127.0.0.1/~u/**")
        #expect(try CanonicalURL.normalizedPattern("https://*.Example.com/v1/**") == "https://*.example.com/v1/**")
        #expect(try CanonicalURL.normalizedPattern("https://h/a/%2e%2e/b/**") == "https://h/b/**")
        let harness = try Harness(grants: """
            module = "fetcher"

            [[http]]
            urls = ["http://127.0.0.1:9/%7Euser/**"]
            methods = ["GET"]
            """, http: RecordingSender())
        _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: "http://127.0.0.1:9/~user/x"))
        #expect(harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "GET", url: "http://127.0.0.1:9/%7Euser/%2e%2e/other"))
        }?.code == .denied)
    }

    /// What the mediator decided on for a file is what the capability opened and what was logged: a path
    /// that climbs out with `..` (or a relative path) is resolved once, and the denial names the resolved path.
    @Test func aFilePathIsResolvedOnceForPolicyLogAndCapability() throws {
        let scratch = try Scratch()
        _ = try scratch.file("ws/allowed/in.txt", "in")
        _ = try scratch.file("ws/secret.txt", "secret")
        let harness = try Harness(grants: """
            module = "reader"

            [[fs]]
            paths = ["\(scratch.path)/ws/allowed/**"]
            allow = ["read"]
            """, scratch: scratch)
        #expect(try harness.mediator.read(path: "ws/allowed/./x/../in.txt") == Array("in".utf8))
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: "ws/allowed/../secret.txt") }
        #expect(error?.code == .denied)
        let decisions = try harness.decisions("fs.read")
        #expect(decisions.map(\.resource) == ["fs:\(scratch.path)/ws/allowed/in.txt", "fs:\(scratch.path)/ws/secret.txt"])
        #expect(decisions.map(\.decision) == [.allow, .deny])
    }

    @Test(arguments: [("a/../b/./c//", "/ws/a", "/ws/a/b/c"), ("../b/./c//", "/ws/a", "/ws/b/c"), ("/../../x", "/ws", "/x"), ("/", "/ws", "/"),
                      ("..", "/", "/"), ("/a/\u{301}/b", "/", "/a/\u{301}/b")])
    func guestPathsNormalizeLexically(text: String, base: String, expected: String) throws {
        let path = try GuestPath(parsing: text, relativeTo: try GuestPath(parsing: base, relativeTo: nil))
        #expect(path.description == expected)
        #expect(try GuestPath(parsing: path.description, relativeTo: nil) == path)
    }

    /// The one-pass parser against a model written the obvious way (split on the byte `/`, then a stack
    /// of names), on generated paths made of the pieces that matter: `.`, `..`, empty names, names that
    /// look like dots but are not, a `/` inside a grapheme cluster (a combining mark after it, an Arabic
    /// prepend mark before it), and relative paths on several bases. Name, parent and components must
    /// agree with the text too.
    @Test func theOnePassParserAgreesWithTheStackModelOnGeneratedPaths() throws {
        func model(_ text: String, base: [[UInt8]]) -> String {
            var names = text.utf8.first == UInt8(ascii: "/") ? [] : base
            for name in text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map(Array.init) {
                if name == [0x2E] { continue }
                if name == [0x2E, 0x2E] { _ = names.popLast(); continue }
                names.append(name)
            }
            return String(decoding: [0x2F] + Array(names.joined(separator: [0x2F])), as: UTF8.self)
        }
        let pieces = [".", "..", "", "a", "bc", "...", ".a", "a.", "\u{301}", "\u{0600}", "é", "x\u{301}", " ", "..."]
        var random = SystemRandomNumberGenerator()
        let bases = ["/", "/ws", "/ws/a/b", "/\u{0600}/x"]
        for round in 0..<4000 {
            var text = round % 2 == 0 ? "/" : ""
            for index in 0..<Int.random(in: 0...7, using: &random) {
                if index > 0 || round % 3 == 0 { text += "/" }
                text += pieces.randomElement(using: &random) ?? ""
            }
            if text.isEmpty { text = "." }
            let baseText = bases[round % bases.count]
            let base = try GuestPath(parsing: baseText, relativeTo: nil)
            let baseNames = baseText.utf8.split(separator: UInt8(ascii: "/")).map(Array.init)
            let path = try GuestPath(parsing: text, relativeTo: base)
            let expected = model(text, base: baseNames)
            #expect(path.description == expected, "\(text.debugDescription) on \(baseText)")
            #expect(path.components.map { Array($0.utf8) } == expected.utf8.split(separator: UInt8(ascii: "/")).map(Array.init))
            #expect(path.lastName.map { Array($0.utf8) } == path.components.last.map { Array($0.utf8) })
            #expect(path.isBelowTopLevel == (path.components.count > 1))
            let parentNames = Array(path.components.dropLast())
            #expect(Array(path.parent.description.utf8) == Array(("/" + parentNames.joined(separator: "/")).utf8))
        }
    }

    @Test(arguments: ["", "a\0b", String(repeating: "x", count: 256), String(repeating: "/x", count: 2100)])
    func malformedGuestPathsAreRefused(text: String) {
        #expect(hostError { () throws(HostError) in try GuestPath(parsing: text, relativeTo: GuestPath.root) }?.code == .invalidArgument)
    }

    @Test(arguments: ["bin/sh", "/bin/../bin/sh", "/bin//sh", "/bin/./sh", "/bin/sh/", "/", "", "/bin/s\0h"])
    func aProgramHasExactlyOneSpelling(text: String) {
        #expect(hostError { () throws(HostError) in try ProgramPath(parsing: text) }?.code == .invalidArgument)
    }
}
