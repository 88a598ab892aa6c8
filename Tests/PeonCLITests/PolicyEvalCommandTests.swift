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

    /// A policy row someone else wrote (a file, a PostgreSQL store) cannot drive the terminal through `--explain`.
    @Test func explainedRulesAreEscaped() throws {
        let result = try withTemporaryDirectory { folder in
            let model = folder.appendingPathComponent("model.conf"), policy = folder.appendingPathComponent("policy.csv")
            try Data(Self.model.utf8).write(to: model)
            try Data("p, alice, data\u{1b}]0;pwned\u{07}, read\n".utf8).write(to: policy)
            return try runPeonWasm(["policy", "eval", "--model", model.path, "--policy", policy.path, "--explain"],
                                   stdin: "[\"alice\", \"data\\u001b]0;pwned\\u0007\", \"read\"]\n")
        }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("true\t"), "\(result.stdout)")
        #expect(!result.stdout.contains("\u{1b}") && result.stdout.contains("\\u{1b}]0;pwned\\u{7}"), "\(result.stdout)")
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
                    try runPeonWasm(arguments + ["--role-pattern", "g2=nope"], stdin: request)]
        }
        #expect(results[0].stdout == "false\n")
        #expect(results[1].stdout == "true\n", "\(results[1].stderr)")
        #expect(results[2].status == 2 && results[2].stderr.hasPrefix("peon-wasm: error: --role-pattern g2=nope: expected ROLE=FUNCTION"), "\(results[2].stderr)")
    }
}
