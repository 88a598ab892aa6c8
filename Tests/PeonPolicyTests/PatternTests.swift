import PeonPolicy
import Testing

/// The pattern functions, checked against Go Casbin's semantics with the pattern taken from the
/// request (so each case compiles its pattern at enforce time).
@Suite struct PatternTests {
    static func check(_ function: String, _ subject: String, _ pattern: String) throws -> Bool {
        let enforcer = try Enforcer(model: model(matcher: "\(function)(r.sub, r.obj)"), modelSource: "m.conf", policy: "", policySource: "p.csv")
        return try enforcer.enforce(subject, pattern, "").isAllowed
    }

    @Test(arguments: [
        ("abc", "b", true),  // unanchored search, as Go's regexp.MatchString
        ("abc", "^b", false),
        ("abc", "^a.c$", true),
        ("a\nc", "^a.c$", false),
        ("/topic/create/123", "/topic/(create|delete)/\\d+", true),
        ("/topic/edit/123", "/topic/(create|delete)/\\d+$", false),
        ("aaa", "^a{2,3}$", true),
        ("aaaa", "^a{2,3}$", false),
        ("a{2", "^a{2$", true),
        ("x-y_z", "^[\\w-]+$", true),
        ("ab", "^a*?b$", true),
        ("", "^$", true),
        ("héllo", "^h.llo$", true),
        ("]", "[]a]", true),
        ("GET", "(GET)|(POST)", true),
        ("DELETE", "^(GET)|(POST)$", false),
        ("xyz", "^abc|x", true),  // the anchored-prefix shortcut must not apply across '|'
        ("b", "(?:^a)b", false),
        ("ab", "(?:^a)b", true),
        ("ad", "^ab?d", true),
        ("abd", "^ab?d", true),
        ("bd", "^ab?d", false),
    ])
    func regexMatchFollowsGoSemantics(_ subject: String, _ pattern: String, _ expected: Bool) throws {
        #expect(try Self.check("regexMatch", subject, pattern) == expected)
    }

    @Test func pathologicalRegexesFinishWithTheRightAnswer() throws {
        let text = String(repeating: "a", count: 5000) + "!"
        #expect(try !Self.check("regexMatch", text, "^(a+)+$"))
        #expect(try !Self.check("regexMatch", text, "^(a|a)*$"))
        #expect(try !Self.check("regexMatch", text, "(x+x+)+y"))
        #expect(try Self.check("regexMatch", text, "^(a*)*!$"))
        let huge = String(repeating: "a", count: 2_000_000)
        #expect(throws: PolicyError.self) { try Self.check("regexMatch", huge, "^(a|b|c|d|e)+(a|b|c|d|e)+$") }
    }

    @Test(arguments: [
        ("/a/b", "/a/*", true), ("/a/b/c", "/a/*", false), ("/a/", "/a/*", true), ("abc", "a?c", true),
        ("a/c", "a?c", false), ("abc", "a[a-c]c", true), ("adc", "a[^a-c]c", true), ("abc", "a[^a-c]c", false),
        ("a*c", "a\\*c", true), ("abc", "a\\*c", false), ("abc", "*c", true), ("/x/y.go", "/*/*.go", true),
        ("", "*", true), ("ab", "a*b*", true),
        // `[!...]` negates, as in doublestar and pycasbin (Go's old path.Match read a literal '!').
        ("/bob_data/1", "/bob_data/[!1-9]", false), ("/bob_data/a", "/bob_data/[!1-9]", true),
        ("/bob_data/!", "/bob_data/[!1-9]", true), ("adc", "a[!a-c]c", true), ("a/c", "a[!x]c", false),
        // `**` as a whole component crosses `/`; anywhere else it is a `*`.
        ("/a/b/c", "/a/**", true), ("/a", "/a/**", true), ("/a/", "/a/**", true), ("/ab", "/a/**", false),
        ("/a/b", "/a/**/b", true), ("/a/x/y/b", "/a/**/b", true), ("/a/xb", "/a/**/b", false), ("/a/x/b/c", "/a/**/b", false),
        ("b", "**/b", true), ("x/y/b", "**/b", true), ("xb", "**/b", false), ("/x/y", "**", true), ("", "**", true),
        ("/ab/c", "/a**/c", true), ("/a/b/c", "/a**/c", false), ("/a/b", "/a/**/**", true), ("/", "/**", true),
        // `{a,b}` alternatives, nested, and escaped braces.
        ("/img/a.png", "/img/*.{png,jpg}", true), ("/img/a.jpg", "/img/*.{png,jpg}", true), ("/img/a.gif", "/img/*.{png,jpg}", false),
        ("/lib/bd/x", "/lib/{a,b{c,d}}/x", true), ("/lib/a/x", "/lib/{a,b{c,d}}/x", true), ("/lib/b/x", "/lib/{a,b{c,d}}/x", false),
        ("/x", "/{x,}", true), ("/", "/{x,}", true), ("a{b", "a\\{b", true), ("a[b]", "a\\[b\\]", true),
        ("/a/b/c", "/{a/**,z}", true), ("a,b", "a,b", true),
        // A `-` first in a class or just before its `]` is itself, as in doublestar (it was a load error).
        ("/repo/my-repo", "/repo/[a-z0-9-]*", true), ("/repo/My-repo", "/repo/[a-z0-9-]*", false),
        ("-", "[-a]", true), ("a", "[-a]", true), ("b", "[-a]", false), ("-", "[a-z-]", true), ("-", "[!a-]", false),
        ("b", "[!a-]", true),
    ])
    func globMatchFollowsCurrentCasbinDoublestar(_ subject: String, _ pattern: String, _ expected: Bool) throws {
        #expect(try Self.check("globMatch", subject, pattern) == expected)
    }

    @Test func aMalformedGlobFromTheRequestIsAnErrorLikeGoErrBadPattern() {
        #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", "[") }
        #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", "[]") }
        #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", "[!]") }
        #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", "{a,b") }
        #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", "a\\") }
    }

    @Test func braceExpansionIsBounded() throws {
        // 2^8 = 256 alternatives are allowed; 2^9 are refused rather than matched slowly.
        let allowed = String(repeating: "{a,b}", count: 8)
        #expect(try Self.check("globMatch", String(repeating: "b", count: 8), allowed))
        let error = #expect(throws: PolicyError.self) { try Self.check("globMatch", "a", String(repeating: "{a,b}", count: 9)) }
        #expect(error?.message.contains("more than 256 alternatives") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("192.168.2.123", "192.168.2.0/24", true), ("192.168.3.1", "192.168.2.0/24", false),
        ("192.168.2.123", "192.168.2.123", true), ("10.1.2.3", "10.0.0.0/8", true), ("10.1.2.3", "0.0.0.0/0", true),
        ("2001:db8::1", "2001:db8::/32", true), ("2001:db9::1", "2001:db8::/32", false), ("::1", "::1", true),
        ("2001:db8::10.0.0.1", "2001:db8::/96", true), ("10.0.0.1", "::/0", false), ("fe80::1", "fe80::/10", true),
        ("192.168.2.5", "192.168.2.123/24", true),
    ])
    func ipMatchHandlesIPv4IPv6AndCIDR(_ address: String, _ pattern: String, _ expected: Bool) throws {
        #expect(try Self.check("ipMatch", address, pattern) == expected)
    }

    @Test(arguments: [
        ("keyMatch", "/foo/bar", "/foo/*", true), ("keyMatch", "/foo", "/foo/*", false), ("keyMatch", "/foo/", "/foo/*", true),
        ("keyMatch2", "/resource1", "/:resource", true), ("keyMatch2", "/a/b", "/:resource", false), ("keyMatch2", "/x/y/z", "*", true),
        ("keyMatch3", "/proxy/myid/res", "/proxy/{id}/*", true), ("keyMatch3", "/proxy/myid", "/proxy/{id}/*", false),
        ("keyMatch4", "/parent/123/child/123", "/parent/{id}/child/{id}", true),
        ("keyMatch4", "/parent/123/child/456", "/parent/{id}/child/{id}", false),
        ("keyMatch5", "/foo/bar?status=1&type=2", "/foo/bar", true), ("keyMatch5", "/parent/child1?x", "/parent/*", true),
        ("keyMatch5", "/foo/bar", "/foo/{id}", true),
        // Go and pycasbin: from a `{` to the last `}` of the segment is one placeholder.
        ("keyMatch5", "/api/project1/info", "/api/{group}_{name}/info", true),
        ("keyMatch5", "/api/project1/info?x=1", "/api/{group}_{name}/info", true),
        ("keyMatch5", "/api/a/b/info", "/api/{group}_{name}/info", false),
        ("keyMatch3", "/api/project1/info", "/api/{group}_{name}/info", false),
    ])
    func keyMatchFunctionsFollowCasbin(_ function: String, _ key: String, _ pattern: String, _ expected: Bool) throws {
        #expect(try Self.check(function, key, pattern) == expected)
    }
}

/// The Go Casbin dialect docs/policy.md documents where pycasbin reads the same text differently (found comparing the
/// two on generated requests): each row of that table holds here.
@Suite struct GoDialectTests {
    static func allows(_ matcher: String, policy: String, _ request: [PolicyValue], definition: String = "sub, obj, act",
                       policyDefinition: String = "sub, obj, act") throws -> Bool {
        let enforcer = try Enforcer(model: model(matcher: matcher, policy: policyDefinition, request: definition),
                                    modelSource: "m.conf", policy: policy, policySource: "p.csv")
        return try enforcer.enforce(request).isAllowed
    }

    @Test func keyMatchPatternsAreGoRegexesSearchedAsGoDoes() throws {
        let matcher = "r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act"
        #expect(try Self.allows(matcher, policy: "p, alice, /api/public|/health, GET", [.string("alice"), .string("/evil/health"), .string("GET")]))
        let star = "r.sub == p.sub && keyMatch3(r.obj, p.obj) && r.act == p.act"
        #expect(try Self.allows(star, policy: "p, alice, *, GET", [.string("alice"), .string("/etc/passwd"), .string("GET")]))
        #expect(try !Self.allows(star, policy: "p, alice, /api/*, GET", [.string("alice"), .string("/etc/passwd"), .string("GET")]))
    }

    @Test func numbersAreGoFloats() throws {
        let definition = "sub, n"
        func allows(_ condition: String, _ n: PolicyValue) throws -> Bool {
            try Self.allows("r.sub == p.sub && \(condition)", policy: "p, alice", [.string("alice"), n],
                            definition: definition, policyDefinition: "sub")
        }
        #expect(try allows("r.n % 3 == -1", .number(-7)))
        #expect(try allows("r.n == 9007199254740993", .number(9_007_199_254_740_992)))
        #expect(try allows("r.n != 1", .bool(true)))
        let numeric = { (n: Double) throws -> Bool in
            try Self.allows("r.n", policy: "p, alice", [.string("alice"), .number(n)], definition: definition, policyDefinition: "sub")
        }
        #expect(try numeric(2) && !numeric(0))
    }

    @Test func globsAreGoGlobs() throws {
        let matcher = "r.sub == p.sub && globMatch(r.obj, p.obj) && r.act == p.act"
        #expect(try Self.allows(matcher, policy: "p, alice, *, read", [.string("alice"), .string(""), .string("read")]))
        #expect(try Self.allows(matcher, policy: #"p, alice, "/f/{a,b}", read"#, [.string("alice"), .string("/f/b"), .string("read")]))
        #expect(try Self.allows(matcher, policy: "p, alice, */a, read", [.string("alice"), .string("x/a"), .string("read")]))
        #expect(try Self.allows(matcher, policy: "p, alice, /srv/data/**, read", [.string("alice"), .string("/srv/data/../etc"), .string("read")]))
    }
}
