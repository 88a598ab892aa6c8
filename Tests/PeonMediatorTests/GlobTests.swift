import Testing
@testable import PeonMediator

/// The resource glob decides what a grant covers: `*` must never cross a `/`, `**` must stay a whole
/// segment, and no look-alike path may slip into a granted tree.
@Suite struct GlobTests {
    @Test(arguments: [
        ("fs:/srv/reports/q1.txt", "fs:/srv/reports/**", true),
        ("fs:/srv/reports/2024/q1.txt", "fs:/srv/reports/**", true),
        ("fs:/srv/reports", "fs:/srv/reports/**", true),
        ("fs:/srv/reports-old/x", "fs:/srv/reports/**", false),
        ("fs:/srv/reportsx", "fs:/srv/reports/**", false),
        ("fs:/srv/a.txt", "fs:/srv/*.txt", true),
        ("fs:/srv/a/b.txt", "fs:/srv/*.txt", false),
        ("fs:/srv/a/b/c.txt", "fs:/srv/**/c.txt", true),
        ("fs:/srv/c.txt", "fs:/srv/**/c.txt", true),
        ("fs:/srv/a/b/d.txt", "fs:/srv/**/c.txt", false),
        ("fs:/etc/passwd", "fs:/srv/**", false),
        ("exec:/srv/x", "fs:/srv/**", false),
        ("http:https://api.example.com/v1/x", "http:https://api.example.com/v1/**", true),
        ("http:https://api.example.com.evil.net/v1/x", "http:https://api.example.com/v1/**", false),
        ("http:https://api.example.com:8443/v1/x", "http:https://api.example.com/v1/**", false),
        ("http:https://a.example.com/", "http:https://*.example.com/**", true),
        ("db:analytics/orders", "db:analytics/*", true),
        ("db:analytics/orders", "db:analytics/customers", false),
        // A slash that shares a grapheme cluster with its neighbour is still a separator (the kernel reads bytes).
        ("fs:/srv/a/\u{301}b", "fs:/srv/*", false),
        ("fs:/srv/a\u{600}/b", "fs:/srv/*", false),
        ("fs:/srv/a\u{600}/b", "fs:/srv/*/b", true),
        ("fs:/srv/caf\u{E9}.txt", "fs:/srv/cafe\u{301}.txt", false),
        ("fs:/srv/\u{E9}\u{E9}", "fs:/srv/*\u{E9}", true),
    ])
    func resourceGlobs(text: String, pattern: String, expected: Bool) {
        #expect(globMatches(text, pattern: pattern) == expected)
    }

    @Test func aHostilePatternDoesNotTakeExponentialTime() {
        let text = "fs:/" + String(repeating: "a/", count: 200) + "b"
        let pattern = "fs:/" + String(repeating: "**/a/", count: 50) + "c"
        #expect(!globMatches(text, pattern: pattern))
        #expect(!globMatches(String(repeating: "a", count: 5000), pattern: String(repeating: "*a", count: 100) + "b"))
    }

    @Test(arguments: [
        (["-l", "/tmp/x"], ["-l", "*"], true),
        (["-l", "/tmp/a b"], ["-l", "*"], true),
        (["-l"], ["-l", "*"], false),
        (["-l", "x", "y"], ["-l", "*"], false),
        (["-c", "x"], ["-l", "*"], false),
        (["ab"], ["a?"], true),
        (["a"], ["a?"], false),
        (["x;rm -rf /"], ["x"], false),
        (["*"], ["\\*"], false),
        ([], [], true),
        ([""], [], false),
        ([""], ["*"], true),
        (["a,b\"c"], ["a*c"], true),
    ])
    func argumentPatterns(arguments: [String], patterns: [String], expected: Bool) {
        let field = ArgumentVector.encode(arguments)
        #expect(ArgumentVector.matches(field, patterns: ArgumentVector.encodePatterns(patterns)) == expected)
        #expect(ArgumentVector.decode(field) == arguments, "the encoding round-trips")
        #expect(!field.contains(","), "the field is one CSV cell")
    }

    @Test func aLiteralStarInAnArgumentIsNeverAWildcard() {
        // The guest sends "*" as an argument; the grant allows only "-l" then one argument matching "a*".
        #expect(!ArgumentVector.matches(ArgumentVector.encode(["-l", "*"]), patterns: ArgumentVector.encodePatterns(["-l", "a*"])))
        #expect(ArgumentVector.matches(ArgumentVector.encode(["-l", "*"]), patterns: ArgumentVector.encodePatterns(["-l", "*"])))
    }

    /// The empty vector (every call but exec) has a shortcut; it must answer as the general matcher does.
    @Test(arguments: [("*", true), ("0:", true), ("00:", true), ("+0:", true), ("1:*", false), ("0:x", false),
                      ("", false), ("0", false), ("1:", false)])
    func theEmptyVectorMatchesAsTheGeneralMatcherDoes(patterns: String, expected: Bool) {
        #expect(ArgumentVector.matches("0:", patterns: patterns) == expected)
    }

    @Test(arguments: ["", "2:a", "1:a b", "x:a", "-1:", "1:%zz", "0:a"])
    func malformedArgumentFieldsNeverMatch(field: String) {
        #expect(!ArgumentVector.matches(field, patterns: "1:*"))
        #expect(!ArgumentVector.matches(field, patterns: "*"))
    }
}
