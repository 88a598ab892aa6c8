import Foundation
@testable import PeonMediator

#if canImport(Glibc)
import Glibc
#endif
import PeonInterface
import PeonTestSupport
import Testing

/// The URL is the policy resource: every spelling of one resource must canonicalize to one string,
/// and every spelling that parsers read differently must be refused.
@Suite struct URLCanonicalizationTests {
    @Test(arguments: [
        ("http://example.com", "http://example.com/"),
        ("HTTPS://API.Example.COM:443/v1/x", "https://api.example.com/v1/x"),
        ("http://example.com:80/", "http://example.com/"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://h/v1/./a/../b", "http://h/v1/b"),
        ("http://h/v1/%2e%2E/admin", "http://h/admin"),
        ("http://h/../../x", "http://h/x"),
        ("http://h/a/", "http://h/a/"),
        ("http://h/%7euser/%41", "http://h/~user/A"),
        ("http://h/a%2fb?q=%2f", "URL refused"),
        ("http://h/p?q=%2f&r=%7e", "http://h/p?q=%2F&r=~"),
        ("http://h/p?", "http://h/p"),
        ("http://93.184.215.14/", "http://93.184.215.14/"),
        ("http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/"),
        ("http://[::FFFF:7F00:1]/", "http://[::ffff:127.0.0.1]/"),
    ])
    func aURLHasOneCanonicalSpelling(input: String, expected: String) {
        do {
            #expect(try CanonicalURL(parsing: input).description == expected)
        } catch {
            #expect(expected == "URL refused", "\(input): \(error)")
        }
    }

    @Test(arguments: [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/",
        "//example.com/",
        "http://user:pass@example.com/",
        "http://example.com@127.0.0.1/",
        "http://example.com/#frag",
        "http://exa mple.com/",
        "http://example.com/\r\nX: y",
        "http://ex\u{0}ample.com/",
        "http://exämple.com/",
        "http:\\\\example.com\\",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.0.1.1/",
        "http://1.2.3.256/",
        "http://[::1%25eth0]/",
        "http://[::1/",
        "http://[127.0.0.1]/",
        "http://h:0/",
        "http://h:65536/",
        "http://h:/",
        "http://h:+80/",
        "http://h:8o/",
        "http:///path",
        "http://a..b/",
        "http://%6c%6f%63%61%6c%68%6f%73%74/",
        "http://h/a%2Fb",
        "http://h/a%5cb",
        "http://h/a%00b",
        "http://h/%zz",
        "http://h/%4",
        "http://h/a b",
        "http://h/<script>",
    ])
    func anAmbiguousOrForeignURLIsRefused(input: String) {
        let error = hostError { () throws(HostError) in try CanonicalURL(parsing: input).description }
        #expect(error?.code == .invalidArgument, "\(input)")
    }

    /// Servers that strip RFC 2396 path parameters before removing dot segments (Tomcat, Jetty, Spring behind a
    /// proxy) read `/allowed/..;/secret` as `/secret`, while the grant `/allowed/**` matched it as a name
    /// inside `/allowed/`: decided and logged inside the grant, served outside it. A dot segment with
    /// parameters is refused like `%2F`. Found by a red-team pass.
    @Test(arguments: [
        "http://h/allowed/..;/secret.txt",
        "http://h/allowed/..;x=1/secret.txt",
        "http://h/allowed/%2e%2e;/secret.txt",
        "http://h/allowed/.%2E;jsessionid=1/secret.txt",
        "http://h/allowed/.;/x",
        "http://h/allowed/..;",
        // Encoded: a server that decodes the path before stripping parameters reads `..%3B` as `..` too.
        "http://h/allowed/..%3B/secret.txt",
        "http://h/allowed/%2E%2e%3b/secret.txt",
        "http://h/allowed/.%3bx=1/secret.txt",
    ])
    func aDotSegmentWithPathParametersIsRefused(input: String) {
        let error = hostError { () throws(HostError) in try CanonicalURL(parsing: input).description }
        #expect(error?.code == .invalidArgument, "\(input)")
    }

    /// Any `;` in the path: a server that strips path parameters serves `/files/secret.key;.txt` as `/files/secret.key`,
    /// which a grant on `/files/*.txt` admitted (found by a red-team pass). A query may hold one.
    @Test(arguments: ["http://h/a;b=c/file", "http://h/..a;/x", "http://h/a/...;/x", "http://h/a;..;/b",
                      "http://h/a%3Bb/file", "http://h/..a%3B/x", "http://h/files/secret.key;.txt", "http://h/files/secret.key%3b.txt",
                      "http://h/files/a.key;x"])
    func pathParametersAreRefused(input: String) {
        let error = hostError { () throws(HostError) in try CanonicalURL(parsing: input).description }
        #expect(error?.code == .invalidArgument, "\(input)")
        #expect(error?.message.contains(";") == true, "\(String(describing: error))")
    }

    /// A `?` or control character written encoded, an escape encoded twice: a server that decodes before it splits
    /// (`%3F`) or decodes twice (`%252E`) reads another path than the one decided, and `/files/*.txt` admitted
    /// `/files/secret.key%3F.txt` (found by a red-team pass).
    @Test(arguments: ["http://h/files/secret.key%3F.txt", "http://h/files/secret.key%3f.txt",
                      "http://h/files/a%0A.txt", "http://h/files/a%0d.txt", "http://h/files/a%09.txt", "http://h/files/a%7F.txt",
                      "http://h/api/v1/%252e%252e/admin", "http://h/api/v1/%252F", "http://h/a%2525"])
    func encodedDelimitersAreRefused(input: String) {
        let error = hostError { () throws(HostError) in try CanonicalURL(parsing: input).description }
        #expect(error?.code == .invalidArgument, "\(input)")
    }

    /// A dot, slash or delimiter in disguise: an overlong UTF-8 form (`%C0%AE` was '.' to IIS's decoder), a
    /// compatibility character NFKC turns into one (fullwidth '.', '/', '\', '?', ';'; the one- and two-dot
    /// leaders), or a control character encoded twice (`%250A`). A server that decodes or normalizes a path before it
    /// routes it serves another file than the one a grant on `/files/*.txt` decided.
    @Test(arguments: ["http://h/files/%C0%AE%C0%AE/secret.txt", "http://h/files/%c0%af..%c0%afsecret.txt", "http://h/a%C1%9Cb.txt",
                      "http://h/files/%E0%80%AE%E0%80%AE/x.txt", "http://h/f/%F0%80%80%AE.txt",
                      "http://h/files/%EF%BC%8E%EF%BC%8E/secret.txt", "http://h/files/secret.key%EF%BC%9F.txt",
                      "http://h/files/a%EF%BC%8Fb.txt", "http://h/files/a%ef%bc%bcb.txt", "http://h/files/a%EF%BC%9Bb.txt",
                      "http://h/files/%E2%80%A5/x.txt", "http://h/files/%E2%80%A4%E2%80%A4/x.txt", "http://h/files/a%EF%B9%92b.txt",
                      "http://h/files/a%250A.txt", "http://h/files/a%250d.txt", "http://h/files/a%257F.txt",
                      // Found by a second pass: every code point NFKC (or NFC: U+037E is ';') turns into a delimiter, the
                      // 5- and 6-byte forms, lead bytes past F4, and all of it encoded twice.
                      "https://h/public/%EF%B8%B0/secret", "https://h/public/%CD%BE.txt", "https://h/f/secret.key%EF%B8%96.txt",
                      "https://h/f/%E2%84%80", "https://h/f/%E2%80%A6", "https://h/f/%F0%9F%84%80", "https://h/f/%E2%92%88",
                      "https://h/public/%F8%80%80%80%AE%F8%80%80%80%AE/secret", "https://h/p/%FC%80%80%80%80%AE",
                      "https://h/p/%F5%80%80%80", "https://h/public/%25C0%25AE%25C0%25AE/secret", "https://h/p/%25EF%25BC%258E"])
    func disguisedDelimitersAreRefused(input: String) {
        let error = hostError { () throws(HostError) in try CanonicalURL(parsing: input).description }
        #expect(error?.code == .invalidArgument, "\(input)")
    }

    /// Real URLs agents use: a page named `C#`, a reader proxy's URL inside a path (an empty segment).
    @Test(arguments: ["http://h/a%20b", "http://h/files/a.txt/", "http://h/%25", "http://h/a%2541", "http://h/x?a=%3F&b=%23",
                      "https://en.wikipedia.org/wiki/C%23_(programming_language)", "https://r.jina.ai/https://example.com/page",
                      "https://web.archive.org/web/2020/https://example.com/",
                      "https://de.wikipedia.org/wiki/M%C3%BCnchen", "https://ja.wikipedia.org/wiki/%E6%9D%B1%E4%BA%AC",
                      "http://h/caf%E9", "http://h/%E2%82%AC%F0%9F%98%80", "http://h/%C1lvaro", "http://h/%C0%CC",
                      "https://h/%ED%95%9C%EA%B8%80", "http://h/%FF%FE"])
    func ordinaryEscapesStayAllowed(input: String) throws {
        _ = try CanonicalURL(parsing: input)
    }

    @Test(arguments: ["http://h/x?..;/y", "http://h/search?q=a;b", "http://h/x?a=%3B"])
    func aQueryMayHoldASemicolon(input: String) throws {
        #expect(try CanonicalURL(parsing: input).description == input)
    }
}

/// Which addresses count as non-public: the SSRF table.
@Suite struct IPAddressPolicyTests {
    @Test(arguments: [
        "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "100.100.100.200",
        "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.168.1.1", "192.0.0.8", "198.18.0.1",
        "224.0.0.1", "240.0.0.1", "255.255.255.255",
        "::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1", "::8.8.8.8", "2002:808:808::1",
        "::ffff:0:127.0.0.1", "::ffff:0:8.8.8.8", "::ffff:0:a9fe:a9fe",
        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "fd00::1", "fd00:ec2::254", "fc00::1", "fe80::1",
        "fec0::1", "ff02::1", "2001:db8::1", "2002:7f00:1::1", "2001::1", "100::1",
    ])
    func aNonPublicAddressIsRecognized(address: String) throws {
        let parsed = try #require(IPAddress(address))
        #expect(parsed.nonPublicReason != nil, "\(address)")
    }

    @Test(arguments: ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "169.253.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
    func aPublicAddressIsAllowed(address: String) throws {
        let parsed = try #require(IPAddress(address))
        #expect(parsed.nonPublicReason == nil, "\(address)")
    }

    @Test(arguments: ["2130706433", "0x7f.0.0.1", "127.1", "0177.0.0.1", "1.2.3.4 ", "::1%lo", "", "localhost"])
    func onlyStrictAddressTextParses(text: String) {
        #expect(IPAddress(text) == nil)
    }
}

/// Threat: a guest uses `http.send` for server-side request forgery (loopback, metadata, private
/// ranges, via a literal, an alternative IP notation, a DNS name or a redirect), smuggles headers or
/// a second request, reads the host's injected secrets, or exhausts the host with a huge or slow
/// response. A local server (`LoopbackHTTPServer`, on 127.0.0.1) proves refused calls never arrive.
@Suite(.serialized) struct HTTPTests {
    let capability = HTTPCapability(maxResponseBytes: 1 << 20, timeout: .seconds(10))

    func send(
        _ url: String, method: String = "GET", headers: [HTTPHeader] = [], body: [UInt8] = [],
        injected: [HTTPHeader] = [], allowed: Set<String> = [], maxResponseBytes: Int? = nil, within: Duration = .seconds(10)
    ) throws(HostError) -> HTTPResponseValue {
        try capability.send(
            OutgoingRequest(method: method, url: CanonicalURL(parsing: url), headers: headers, body: body), injectedHeaders: injected,
            allowedAddresses: allowed, maxResponseBytes: maxResponseBytes, deadline: ContinuousClock.now + within)
    }

    /// The routes every test's server answers.
    static let routes: [String: LoopbackHTTPServer.Response] = [
        "/hello": .init("hello"),
        "/echo": .echo,
        "/redirect": .init(status: 302, headers: [("Location", "http://169.254.169.254/latest/meta-data/")], ""),
        "/big": .init(contentType: "application/octet-stream", bytes: [UInt8](repeating: 0x61, count: 100_000)),
        "/slow": .init(delay: .seconds(3), "late"),
    ]

    func withServer(_ body: (LoopbackHTTPServer) throws -> Void) throws {
        let server = try LoopbackHTTPServer(routes: Self.routes)
        defer { server.stop() }
        try body(server)
    }

    @Test func aGrantNamingTheExactAddressReachesTheLocalServer() throws {
        try withServer { server in
            let response = try send("http://127.0.0.1:\(server.port)/hello", allowed: ["127.0.0.1"])
            #expect(response.status == 200)
            #expect(response.body == Array("hello".utf8))
            #expect(server.received.count == 1)
        }
    }

    /// Whether `localhost` resolves to 127.0.0.1 first here (the test server listens on IPv4 only).
    static let localhostIsIPv4First: Bool = {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo("localhost", nil, &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(list) }
        return first.pointee.ai_family == AF_INET
    }()

    @Test(.enabled(if: localhostIsIPv4First, "localhost must resolve to 127.0.0.1 first"))
    func aNameIsResolvedOnceAndTheConnectionGoesToTheCheckedAddress() throws {
        try withServer { server in
            let response = try send("http://LocalHost.:\(server.port)/echo", allowed: ["127.0.0.1", "::1"])
            #expect(response.status == 200)
            // The request names the host, while the socket went to the checked 127.0.0.1.
            #expect(String(decoding: response.body, as: UTF8.self).lowercased().contains("host: localhost:\(server.port)"))
        }
    }

    @Test func loopbackWithoutAnExactGrantIsDeniedAndNothingArrives() throws {
        try withServer { server in
            let port = server.port
            for (url, allowed) in [
                ("http://127.0.0.1:\(port)/hello", Set<String>()),
                ("http://127.0.0.1:\(port)/hello", ["127.0.0.2"]),
                ("http://localhost:\(port)/hello", ["::1"]),
                ("http://localhost:\(port)/hello", []),
                ("http://[::ffff:127.0.0.1]:\(port)/hello", ["127.0.0.1"]),
            ] as [(String, Set<String>)] {
                let error = hostError { () throws(HostError) in try send(url, allowed: allowed) }
                #expect(error?.code == .denied, "\(url)")
            }
            #expect(server.received.isEmpty)
        }
    }

    @Test(arguments: [
        "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
        "http://10.0.0.1/", "http://192.168.0.1/", "http://100.100.100.200/", "http://[fd00:ec2::254]/",
        "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
    ])
    func aNonPublicLiteralIsDenied(url: String) {
        let error = hostError { () throws(HostError) in try send(url, within: .seconds(2)) }
        #expect(error?.code == .denied, "\(url)")
    }

    @Test(arguments: ["http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://017700000001/"])
    func anAlternativeIPNotationIsRefusedBeforeAnyConnection(url: String) {
        #expect(hostError { () throws(HostError) in try send(url, allowed: ["127.0.0.1"]) }?.code == .invalidArgument)
    }

    @Test func aRedirectToAPrivateAddressComesBackToTheGuestUnfollowed() throws {
        try withServer { server in
            let response = try send("http://127.0.0.1:\(server.port)/redirect", allowed: ["127.0.0.1"])
            #expect(response.status == 302)
            #expect(response.headers.contains { $0.name.lowercased() == "location" && $0.value == "http://169.254.169.254/latest/meta-data/" })
            #expect(server.received.count == 1)
        }
    }

    @Test func anInjectedHeaderReplacesTheGuestsHeaderOfTheSameName() throws {
        try withServer { server in
            let response = try send(
                "http://127.0.0.1:\(server.port)/echo",
                headers: [HTTPHeader(name: "authorization", value: "guest-forged"), HTTPHeader(name: "X-Guest", value: "1")],
                injected: [HTTPHeader(name: "Authorization", value: "Bearer s3cret")], allowed: ["127.0.0.1"])
            let head = String(decoding: response.body, as: UTF8.self).lowercased()
            #expect(head.contains("authorization: bearer s3cret"))
            #expect(!head.contains("guest-forged"))
            #expect(head.contains("x-guest: 1"))
            #expect(head.components(separatedBy: "authorization:").count == 2)
        }
    }

    @Test func theBodyIsSentAndTheHostHeaderNamesTheURLHost() throws {
        try withServer { server in
            let response = try send("http://127.0.0.1:\(server.port)/echo", method: "POST", body: Array("payload".utf8), allowed: ["127.0.0.1"])
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(text.hasPrefix("POST /echo HTTP/1.1"))
            #expect(text.hasSuffix("payload"))
            #expect(text.lowercased().contains("host: 127.0.0.1:\(server.port)"))
        }
    }

    @Test(arguments: [
        HTTPHeader(name: "Host", value: "internal.example"),
        HTTPHeader(name: "transfer-encoding", value: "chunked"),
        HTTPHeader(name: "Content-Length", value: "0"),
        HTTPHeader(name: "Connection", value: "upgrade"),
        HTTPHeader(name: "Upgrade", value: "websocket"),
        HTTPHeader(name: "TE", value: "trailers"),
        HTTPHeader(name: "Trailer", value: "X-After"),
        HTTPHeader(name: "Keep-Alive", value: "timeout=5"),
        HTTPHeader(name: "Expect", value: "100-continue"),
        HTTPHeader(name: "Proxy-Authorization", value: "Basic Zm9vOmJhcg=="),
        HTTPHeader(name: "proxy-status", value: "x"),
        HTTPHeader(name: "Proxy-Anything", value: "x"),
        HTTPHeader(name: "X-Split", value: "a\r\nInjected: yes"),
        HTTPHeader(name: "X-Nul", value: "a\u{0}b"),
        HTTPHeader(name: "Bad Name", value: "x"),
        HTTPHeader(name: "", value: "x"),
    ])
    func aSmuggledOrHostOnlyHeaderIsRefusedBeforeAnythingIsSent(header: HTTPHeader) throws {
        try withServer { server in
            let error = hostError { () throws(HostError) in
                try send("http://127.0.0.1:\(server.port)/echo", headers: [header], allowed: ["127.0.0.1"])
            }
            #expect(error?.code == .invalidArgument)
            #expect(server.received.isEmpty)
        }
    }

    @Test(arguments: ["TRACE", "CONNECT", "track", "GET /x HTTP/1.1\r\n", "", "G(T"])
    func aRefusedOrMalformedMethodIsInvalidArgument(method: String) throws {
        try withServer { server in
            let error = hostError { () throws(HostError) in
                try send("http://127.0.0.1:\(server.port)/echo", method: method, allowed: ["127.0.0.1"])
            }
            #expect(error?.code == .invalidArgument)
            #expect(server.received.isEmpty)
        }
    }

    @Test func anInjectedSecretNeverAppearsInAnErrorMessage() {
        let error = hostError { () throws(HostError) in
            try send("http://127.0.0.1:1/", injected: [HTTPHeader(name: "Authorization", value: "Bearer s3cret\r\n")], allowed: ["127.0.0.1"])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error.map { !$0.message.contains("s3cret") } == true)
    }

    @Test func aResponseOverTheCapIsLimitExceeded() throws {
        try withServer { server in
            let url = "http://127.0.0.1:\(server.port)/big"
            let full = try send(url, allowed: ["127.0.0.1"])
            #expect(full.body.count == 100_000)
            #expect(hostError { () throws(HostError) in try send(url, allowed: ["127.0.0.1"], maxResponseBytes: 1000) }?.code == .limitExceeded)
            let small = HTTPCapability(maxResponseBytes: 1000)
            let error = hostError { () throws(HostError) in
                // A grant cannot raise the capability's own ceiling.
                try small.send(OutgoingRequest(method: "GET", url: CanonicalURL(parsing: url)), injectedHeaders: [], allowedAddresses: ["127.0.0.1"],
                               maxResponseBytes: 1 << 30, deadline: .now + .seconds(10))
            }
            #expect(error?.code == .limitExceeded)
        }
    }

    @Test func aSlowServerIsCutOffAtTheDeadline() throws {
        try withServer { server in
            let error = hostError { () throws(HostError) in
                try send("http://127.0.0.1:\(server.port)/slow", allowed: ["127.0.0.1"], within: .milliseconds(500))
            }
            // The server answers 200 after 3 s; `timeout` proves the call ended before that answer.
            #expect(error?.code == .timeout)
        }
    }

    /// A refused connection is answered at once, not retried until the deadline (the client's default).
    @Test func aConnectionRefusedIsIOWithoutWaitingForTheDeadline() {
        // Port 1 on loopback: nothing listens there.
        let started = ContinuousClock.now
        let error = hostError { () throws(HostError) in try send("http://127.0.0.1:1/", allowed: ["127.0.0.1"], within: .seconds(30)) }
        #expect(error?.code == .io)
        #expect(ContinuousClock.now - started < .seconds(15), "a refused connection was retried until the deadline")
    }

    /// A path escape of bytes that form no UTF-8 (Latin-1 `%C1lvaro`) is policy-valid, but the HTTP client would put
    /// another target on the request line: refused before anything is sent, as docs/security.md says. In a query such
    /// bytes go out as written.
    @Test func aPathEscapeTheClientWouldRewriteIsRefusedAndAQueryOneIsSent() throws {
        try withServer { server in
            let error = hostError { () throws(HostError) in
                try send("http://127.0.0.1:\(server.port)/hello/%C1lvaro", allowed: ["127.0.0.1"])
            }
            #expect(error?.code == .invalidArgument)
            #expect(server.received.isEmpty)
            _ = try send("http://127.0.0.1:\(server.port)/hello?name=%C1lvaro", allowed: ["127.0.0.1"])
            #expect(server.received.map(\.path) == ["/hello?name=%C1lvaro"])
        }
    }

    @Test func afterShutdownNothingIsSent() throws {
        try withServer { server in
            let capability = HTTPCapability()
            capability.shutdown()
            let error = hostError { () throws(HostError) in
                try capability.send(OutgoingRequest(method: "GET", url: CanonicalURL(parsing: "http://127.0.0.1:\(server.port)/hello")), injectedHeaders: [],
                                    allowedAddresses: ["127.0.0.1"], maxResponseBytes: nil, deadline: .now + .seconds(5))
            }
            #expect(error?.code == .io)
            #expect(server.received.isEmpty)
        }
    }
}
