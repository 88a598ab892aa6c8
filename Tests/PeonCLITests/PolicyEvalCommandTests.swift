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
        #expect(result.stderr.hasPrefix("<stdin>:3: the request has 2 values"), "\(result.stderr)")
    }
}
