import Foundation
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: two grants cover the same request, a broad one (`data/**`) and a narrower one (`data/hr/**`) that
/// adds `labels`, `approval` or `rate`. The policy engine names only the first line that matches, and the
/// mediator applied only the conditions of the grants behind that line: with the broad grant written first, a
/// read of `data/hr/salaries.csv` brought no `hr` label (so the run could POST it anywhere its grants allow),
/// asked no approver and took no token of the narrower grant's rate. Found by a red-team pass: the grants'
/// text says reads under `data/hr` carry `hr`, and the order of two `[[fs]]` tables decided whether they did.
@Suite struct OverlappingGrantTests {
    static func grants(_ scratch: Scratch, narrow: String, broadFirst: Bool) -> String {
        let broad = """
            [[fs]]
            paths = ["\(scratch.path)/data/**"]
            allow = ["read"]

            """
        let narrower = """
            [[fs]]
            paths = ["\(scratch.path)/data/hr/**"]
            allow = ["read"]
            \(narrow)

            """
        return """
            module = "overlap"

            \(broadFirst ? broad + narrower : narrower + broad)
            [[http]]
            urls = ["https://api.example.com/**"]
            methods = ["POST"]
            """
    }

    func fixture(narrow: String, broadFirst: Bool, approver: (any Approver)? = nil) throws -> Harness {
        let scratch = try Scratch()
        _ = try scratch.file("data/hr/salaries.csv", "alice,120000\n")
        _ = try scratch.file("data/public.txt", "hello\n")
        return try Harness(grants: Self.grants(scratch, narrow: narrow, broadFirst: broadFirst), scratch: scratch,
                           approver: approver, http: RecordingSender())
    }

    @Test(arguments: [true, false])
    func aNarrowerGrantsLabelsApplyWhateverTheOrder(broadFirst: Bool) throws {
        let harness = try fixture(narrow: "labels = [\"hr\"]", broadFirst: broadFirst)
        let data = try harness.mediator.read(path: harness.scratch.path + "/data/hr/salaries.csv")
        let error = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.example.com/upload", body: data))
        }
        #expect(error?.code == .denied, "the salaries were read under data/hr/** (labels = [\"hr\"]) and must not leave")
        // A file only the broad grant covers brings no label.
        let clean = try fixture(narrow: "labels = [\"hr\"]", broadFirst: broadFirst)
        let text = try clean.mediator.read(path: clean.scratch.path + "/data/public.txt")
        _ = try clean.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.example.com/upload", body: text))
    }

    @Test(arguments: [true, false])
    func aNarrowerGrantsApprovalApplies(broadFirst: Bool) throws {
        let harness = try fixture(narrow: "approval = true", broadFirst: broadFirst)
        let error = harness.error { () throws(HostError) in
            try harness.mediator.read(path: harness.scratch.path + "/data/hr/salaries.csv")
        }
        #expect(error?.code == .denied, "data/hr/** asks for approval and there is no approver")
        _ = try harness.mediator.read(path: harness.scratch.path + "/data/public.txt")
    }

    @Test(arguments: [true, false])
    func aNarrowerGrantsRateApplies(broadFirst: Bool) throws {
        let harness = try fixture(narrow: "rate = \"1/hour\"", broadFirst: broadFirst)
        let path = harness.scratch.path + "/data/hr/salaries.csv"
        _ = try harness.mediator.read(path: path)
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: path) }
        #expect(error?.code == .limitExceeded)
    }

    /// Two `[[exec]]` grants for one command line: the program ran under the first grant's limits and environment
    /// only, so a loose grant written above a careful one lifted the careful one's `max-output` and `timeout`.
    @Test(arguments: [true, false])
    func everyExecGrantBehindACallBoundsIt(looseFirst: Bool) throws {
        let loose = """
            [[exec]]
            program = "/bin/sh"
            args = ["-c", "*"]
            env = { SHARED = "same", ONLY_LOOSE = "x" }

            """
        let careful = """
            [[exec]]
            program = "/bin/sh"
            args = ["-c", "*"]
            max-output = "16B"
            timeout = "1s"
            env = { SHARED = "same" }

            """
        let harness = try Harness(grants: "module = \"runner\"\n\n" + (looseFirst ? loose + careful : careful + loose))
        let big = harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/sh", arguments: ["-c", "printf '%040d' 0"], stdin: [])
        }
        #expect(big?.code == .limitExceeded, "40 bytes passed a 16-byte cap")
        let slow = harness.error { () throws(HostError) in try harness.mediator.run(program: "/bin/sh", arguments: ["-c", "sleep 5"], stdin: []) }
        #expect(slow?.code == .timeout, "a 1 s timeout let the program run 5 s")
        let environment = try harness.mediator.run(program: "/bin/sh", arguments: ["-c", "echo ${SHARED:-}${ONLY_LOOSE:-}"], stdin: [])
        #expect(environment.stdout == Array("same\n".utf8))
    }

    /// A grant that sets no cap has the default one; another grant's larger cap does not lift it.
    @Test(arguments: [true, false])
    func aGrantWithoutACapKeepsTheDefaultAgainstALargerOne(largerFirst: Bool) throws {
        let larger = "[[exec]]\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"*\"]\nmax-output = \"10MiB\"\n\n"
        let plain = "[[exec]]\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"*\"]\n\n"
        let harness = try Harness(grants: "module = \"runner\"\n\n" + (largerFirst ? larger + plain : plain + larger))
        let past = CapabilityDefaults().maxOutputBytes + 1000
        let error = harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/sh", arguments: ["-c", "head -c \(past) /dev/zero"], stdin: [])
        }
        #expect(error?.code == .limitExceeded, "the default cap was lifted by the other grant")
    }

    @Test func policyExplainListsTheCoveringGrantsConditions() throws {
        let scratch = try Scratch()
        let path = try scratch.file("g.toml", Self.grants(scratch, narrow: "labels = [\"hr\"]\napproval = true", broadFirst: true))
        let snapshot = try PolicySnapshot.load(PolicySources(grantsPath: path), defaultModule: "agent")
        let explanation = explainPolicy(snapshot: snapshot, module: "overlap", action: "fs.read",
                                        object: "fs:" + scratch.path + "/data/hr/salaries.csv", arguments: [])
        #expect(explanation.isAllowed)
        #expect(explanation.lines.contains { $0.contains("grant fs[1]") && $0.contains("approval") && $0.contains("labels hr") },
                "\(explanation.lines)")
    }
}
