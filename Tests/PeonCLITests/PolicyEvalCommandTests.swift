import Foundation
import PeonTestSupport
import Testing

/// `peon-wasm policy eval` through the built executable.
@Suite("peon-wasm policy eval")
struct PolicyEvalCommandTests {
    static let model = """
        [request_definition]
        r = sub, obj, act
        [policy_definition]
        p = sub, obj, act
        [policy_effect]
        e = some(where (p.eft == allow))
        [matchers]
        m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
        """

    @Test func answersBeforeAFailingLineArePrintedThenTheError() throws {
        let result = try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(Self.model.utf8).write(to: model)
            try Data("p, alice, data1, read\n".utf8).write(to: policy)
            let requests = "[\"alice\", \"data1\", \"read\"]\n[\"bob\", \"data1\", \"read\"]\n[\"alice\", \"data1\"]\n[\"alice\", \"data1\", \"read\"]\n"
            return try runPeonWasm(["policy", "eval", "--model", model.path, "--policy", policy.path], stdin: requests)
        }
        #expect(result.status == 2)
        #expect(result.stdout == "true\nfalse\n")
        #expect(result.stderr.hasPrefix("peon-wasm: error: <stdin>:3: the request has 2 values"), "\(result.stderr)")
    }

    /// A request object naming an attribute twice is refused: this reader kept the first value (`{"Age": 30, "Age": 12}`
    /// was 30, allowed), Casbin's Go and Python readers the last (12, denied).
    @Test func aRequestObjectNamingAnAttributeTwiceIsRefused() throws {
        let model = Self.model.replacingOccurrences(of: "m = r.sub == p.sub && r.obj == p.obj && r.act == p.act",
                                                    with: "m = r.sub.Age >= 18 && r.obj == p.obj && r.act == p.act")
        let result = try withTemporaryDirectory { folder in
            let modelFile = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(model.utf8).write(to: modelFile)
            try Data("p, anyone, wine, buy\n".utf8).write(to: policy)
            let requests = #"[{"Age": 30}, "wine", "buy"]"# + "\n" + #"[{"Age": 30, "\u0041ge": 12}, "wine", "buy"]"# + "\n"
            return try runPeonWasm(["policy", "eval", "--model", modelFile.path, "--policy", policy.path], stdin: requests)
        }
        #expect(result.status == 2)
        #expect(result.stdout == "true\n")
        #expect(result.stderr == "peon-wasm: error: <stdin>:2: malformed request: the member 'Age' appears twice in one object; name each attribute once\n",
                "\(result.stderr)")
    }

    /// The model grants compile to (`policies/model.conf`, with `peonGlob` and `peonArgs`) is what a team layering roles
    /// on it tests in CI: `policy eval` loads it and decides as `run` does. It said "unknown function 'peonGlob'".
    @Test func theBuiltInModelLoadsWithItsFunctions() throws {
        let model = repositoryRoot.appendingPathComponent("policies/model.conf").path
        let result = try withTemporaryDirectory { folder in
            let policy = folder.appendingPathComponent("policy.csv")
            try Data("p, reporter, fs:/srv/reports/**, fs.read, *\n".utf8).write(to: policy)
            let requests = #"["reporter", "fs:/srv/reports/q3/a.md", "fs.read", "0:"]"# + "\n"
                + #"["reporter", "fs:/srv/other.md", "fs.read", "0:"]"# + "\n"
            return try runPeonWasm(["policy", "eval", "--model", model, "--policy", policy.path], stdin: requests)
        }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "true\nfalse\n")
    }

    /// A request that is not strict JSON is refused with its line: Foundation took a trailing comma (and answered),
    /// where Casbin's Go and Python readers refuse the request.
    @Test func aRequestThatIsNotStrictJSONIsRefused() throws {
        let result = try withTemporaryDirectory { folder in
            let modelFile = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(Self.model.utf8).write(to: modelFile)
            try Data("p, alice, data1, read\n".utf8).write(to: policy)
            let requests = #"["alice", "data1", "read"]"# + "\n" + #"["alice", "data1", "read",]"# + "\n"
            return try runPeonWasm(["policy", "eval", "--model", modelFile.path, "--policy", policy.path], stdin: requests)
        }
        #expect(result.status == 2)
        #expect(result.stdout == "true\n")
        #expect(result.stderr.hasPrefix("peon-wasm: error: <stdin>:2: malformed request: not JSON at byte 27"), "\(result.stderr)")
        // White space that is not JSON's around a request (a no-break space, an ideographic space) was trimmed away and
        // the request decided; JSON's own (space, tab, CR) still is.
        for spaced in ["\u{A0}[\"alice\", \"data1\", \"read\"]", "[\"alice\", \"data1\", \"read\"]\u{3000}", "\u{3000}"] {
            let odd = try withTemporaryDirectory { folder in
                let modelFile = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
                try Data(Self.model.utf8).write(to: modelFile)
                try Data("p, alice, data1, read\n".utf8).write(to: policy)
                return try runPeonWasm(["policy", "eval", "--model", modelFile.path, "--policy", policy.path],
                                       stdin: " \t[\"alice\", \"data1\", \"read\"] \r\n" + spaced + "\n")
            }
            #expect(odd.status == 2 && odd.stdout == "true\n", "\(spaced.unicodeScalars.map(\.value)): \(odd.stdout) \(odd.stderr)")
        }
    }

    /// `policy eval --explain` under the test model and `policy` (CSV text), with `requests` on stdin.
    static func explain(policy text: String, requests: String) throws -> CommandResult {
        try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(Self.model.utf8).write(to: model)
            try Data(text.utf8).write(to: policy)
            return try runPeonWasm(["policy", "eval", "--model", model.path, "--policy", policy.path, "--explain"], stdin: requests)
        }
    }

    /// A policy row someone else wrote (a file, a PostgreSQL store) cannot drive the terminal through `--explain`.
    @Test func explainedRulesAreEscaped() throws {
        let result = try Self.explain(policy: "p, alice, data\u{1b}]0;pwned\u{07}, read\n",
                                      requests: "[\"alice\", \"data\\u001b]0;pwned\\u0007\", \"read\"]\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("true\t"), "\(result.stdout)")
        #expect(!result.stdout.contains("\u{1b}") && result.stdout.contains("\\u{1b}]0;pwned\\u{7}"), "\(result.stdout)")
    }

    /// The rule `--explain` prints is a policy line that reads back as the same rule: `p, "alice, bob", data1, read`
    /// was printed as `p, alice, bob, data1, read`, five fields (found by a red-team pass).
    @Test func anExplainedRuleKeepsItsQuotes() throws {
        let result = try Self.explain(policy: "p, \"alice, bob\", \"say \"\"hi\"\"\", read\n",
                                      requests: #"["alice, bob", "say \"hi\"", "read"]"# + "\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasSuffix("\tp, \"alice, bob\", \"say \"\"hi\"\"\", read\n"), "\(result.stdout)")
    }

    @Test func rolePatternsAreDeclaredOnTheCommandLine() throws {
        let model = Self.model.replacingOccurrences(of: "r.sub == p.sub && r.obj == p.obj", with: "r.sub == p.sub && g2(r.obj, p.obj)")
            .replacingOccurrences(of: "[policy_effect]", with: "[role_definition]\ng2 = _, _\n[policy_effect]")
        let results = try withTemporaryDirectory { folder in
            let modelFile = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(model.utf8).write(to: modelFile)
            try Data("p, alice, docs, read\ng2, /doc/:id, docs\n".utf8).write(to: policy)
            let arguments = ["policy", "eval", "--model", modelFile.path, "--policy", policy.path]
            let request = "[\"alice\", \"/doc/1\", \"read\"]\n"
            return [try runPeonWasm(arguments, stdin: request),
                    try runPeonWasm(arguments + ["--role-pattern", "g2=keyMatch2"], stdin: request),
                    try runPeonWasm(arguments + ["--role-pattern", "g2=nope"], stdin: request),
                    try runPeonWasm(arguments + ["--role-pattern", "g3=keyMatch2"], stdin: request),
                    try runPeonWasm(arguments + ["--domain-pattern", "g=keyMatch"], stdin: request),
                    try runPeonWasm(arguments + ["--domain-pattern", "g2=keyMatch"], stdin: request)]
        }
        #expect(results[0].stdout == "false\n")
        #expect(results[1].stdout == "true\n", "\(results[1].stderr)")
        // A malformed declaration is the command line's fault: a usage error (64), as for any other option.
        #expect(results[2].status == 64 && results[2].stderr.hasPrefix("peon-wasm: error: --role-pattern g2=nope: expected ROLE=FUNCTION"), "\(results[2].stderr)")
        // So is a declaration for a role type the model does not define: it named the model as the file at fault (2).
        #expect(results[3].status == 64 && results[3].stderr.contains("--role-pattern g3=keyMatch2: ") && results[3].stderr.contains("defines no role type 'g3'")
                && results[3].stderr.contains("(it defines g2)"), "\(results[3].stderr)")
        #expect(results[4].status == 64 && results[4].stderr.contains("--domain-pattern g=keyMatch: "), "\(results[4].stderr)")
        #expect(results[5].status == 64 && results[5].stderr.contains("--domain-pattern g2=keyMatch: 'g2'") && results[5].stderr.contains("has no domain"),
                "\(results[5].stderr)")
    }

    /// Standard input feeds one text. `--model -` with the requests' default `-` read the model from it and then found
    /// no requests: exit 0, nothing printed, as if every request had been answered. Two `-` are a usage error; one
    /// text read from standard input is named `<stdin>` in its errors (a policy's said `-:1:4`).
    @Test func standardInputFeedsOneTextAndIsNamedSo() throws {
        try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            let requests = folder.appendingPathComponent("requests.jsonl")
            try Data(Self.model.utf8).write(to: model)
            try Data("p, alice, data1, read\n".utf8).write(to: policy)
            try Data("[\"alice\", \"data1\", \"read\"]\n".utf8).write(to: requests)
            for arguments in [["--model", "-", "--policy", policy.path], ["--model", model.path, "--policy", "-"],
                              ["--model", "-", "--policy", "-", requests.path]] {
                let result = try runPeonWasm(["policy", "eval"] + arguments, stdin: Self.model)
                #expect(result.status == 64 && result.stdout.isEmpty && result.stderr.contains("(standard input)")
                        && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            }
            let fromStdin = try runPeonWasm(["policy", "eval", "--model", "-", "--policy", policy.path, requests.path], stdin: Self.model)
            #expect(fromStdin.status == 0 && fromStdin.stdout == "true\n", "\(fromStdin.stderr)")
            let badPolicy = try runPeonWasm(["policy", "eval", "--model", model.path, "--policy", "-", requests.path], stdin: "p, \"a\n")
            #expect(badPolicy.status == 2 && badPolicy.stderr.hasPrefix("peon-wasm: error: <stdin>:1:"), "\(badPolicy.stderr)")
        }
    }

    /// `policy explain` answered an action the host never asks about (`fs.raed`) with "deny", and a resource that
    /// cannot be one (`exec.run wc`) with exit 2, which means a file did not load. Both are usage errors naming what is
    /// expected.
    @Test func explainRefusesActionsAndResourcesNoCallCouldMake() throws {
        let cases: [([String], String)] = [
            (["fs.raed", "/etc/passwd"], "fs.read|write|append|list|remove"),
            (["nonsense", "x"], "is not an action the host asks about"),
            (["http.get", "http://example.com/"], "http.GET"),
            (["exec.run", "wc"], "absolute program path"),
            (["http.GET", "not-a-url"], "http or https URL"),
            (["http.GET", "https://example.com/a;b"], "would be refused before any decision for http.GET"),
            (["fs.read", ""], "the path is empty"),
        ]
        for (request, words) in cases {
            let result = try runPeonWasm(["policy", "explain", "--grants", "policies/c-summarizer.toml"] + request)
            #expect(result.status == 64 && result.stderr.contains(words) && result.stderr.split(separator: "\n").count == 1,
                    "\(request): \(result.stderr)")
        }
        for request in [["fs.read", "/etc/passwd"], ["db.open", "notes"], ["http.GET", "https://example.com/"]] {
            let result = try runPeonWasm(["policy", "explain", "--grants", "policies/c-summarizer.toml"] + request)
            #expect(result.status == 1, "\(request): \(result.stderr)")
        }
    }
}
