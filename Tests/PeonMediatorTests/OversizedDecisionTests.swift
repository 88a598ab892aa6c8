import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: a guest makes its own denial unlogged by making the entry too large for the log's 1 MiB line
/// cap (a 1.2 MB exec argument, 60 header names of 20 kB, a method or path of megabytes). Every decision,
/// allow or deny, must get its entry whatever the size: oversized fields are recorded by prefix,
/// SHA-256 and length, and the log still verifies.
@Suite struct OversizedDecisionTests {
    /// Near the ABI's per-call budget (64 MiB) would be slow; 8 MiB is 8 times the line cap.
    static let huge = String(repeating: "A", count: 8 << 20)

    @Test func everyDecisionOnEveryInterfaceIsLoggedWhateverItsSize() throws {
        let harness = try Harness(grants: """
            module = "big"

            [[exec]]
            program = "/bin/echo"
            args = ["*"]
            """, http: RecordingSender())
        let mediator = harness.mediator
        var calls = 0
        func expectRefused(_ body: () throws(HostError) -> Void) {
            calls += 1
            #expect(harness.error(body) != nil)
        }
        // exec: a 1.2 MB argument (the report's case) and an 8 MiB one, a huge program path, many arguments.
        expectRefused { () throws(HostError) in _ = try mediator.run(program: "/bin/cat", arguments: [String(repeating: "x", count: 1_200_000)], stdin: []) }
        expectRefused { () throws(HostError) in _ = try mediator.run(program: "/bin/cat", arguments: [Self.huge], stdin: []) }
        expectRefused { () throws(HostError) in _ = try mediator.run(program: "/" + Self.huge, arguments: [], stdin: []) }
        expectRefused { () throws(HostError) in _ = try mediator.run(program: "/bin/cat", arguments: Array(repeating: String(repeating: "y", count: 20_000), count: 60), stdin: []) }
        // http: 60 header names of 20 kB (the report's case), a huge method, a huge URL.
        let headers = (0..<60).map { HTTPHeader(name: String(repeating: "h\($0 % 10)", count: 10_000), value: "v") }
        expectRefused { () throws(HostError) in _ = try mediator.send(HTTPRequestValue(method: "GET", url: "https://denied.example/", headers: headers)) }
        expectRefused { () throws(HostError) in _ = try mediator.send(HTTPRequestValue(method: Self.huge, url: "https://denied.example/")) }
        expectRefused { () throws(HostError) in _ = try mediator.send(HTTPRequestValue(method: "GET", url: "https://denied.example/" + Self.huge)) }
        // fs and db: huge paths, names and SQL.
        expectRefused { () throws(HostError) in _ = try mediator.read(path: Self.huge) }
        expectRefused { () throws(HostError) in try mediator.write(path: "/tmp/x", data: Array(Self.huge.utf8)) }
        expectRefused { () throws(HostError) in _ = try mediator.query(database: Self.huge, sql: "select 1", parameters: []) }
        expectRefused { () throws(HostError) in _ = try mediator.query(database: "db", sql: Self.huge, parameters: []) }
        // An allowed call with a large argument is logged too, before it runs.
        let output = try mediator.run(program: "/bin/echo", arguments: [String(repeating: "z", count: 100_000)], stdin: [])
        #expect(output.stdout.count == 100_001)

        let entries = try harness.entries()
        let decisions = entries.filter { $0.record.decision != nil }
        #expect(decisions.count == calls + 1, "one decision entry per call, none lost to the line cap")
        #expect(decisions.filter { $0.record.decision == .deny }.count == calls)
        for entry in entries {
            for value in [entry.record.resource, entry.record.reason] + Array(entry.record.details.values) {
                #expect(value.utf8.count <= AuditRecord.maxFieldBytes + 200)
            }
        }
        let bigArgument = try #require(decisions.first { $0.record.call == "exec.run" }?.record.details["args"])
        let expected = AuditRecord.boundedValue(ArgumentVector.encode([String(repeating: "x", count: 1_200_000)]))
        #expect(bigArgument == expected && bigArgument.contains("sha256:") && bigArgument.contains("len:"))
        try harness.audit.writeCheckpoint()
        let summary = try AuditVerifier.verify(logPath: harness.auditPath, verifierKey: nil)
        #expect(summary.size == UInt64(entries.count))
    }

    @Test func anOversizedValueKeepsAPrefixItsHashAndItsLength() {
        let value = String(repeating: "é", count: 3000)  // 6000 bytes of two-byte characters
        let bounded = AuditRecord.boundedValue(value)
        #expect(bounded.hasPrefix(String(repeating: "é", count: 128)))
        #expect(bounded.hasSuffix("len:6000]"))
        #expect(bounded.utf8.count < 400)
        #expect(AuditRecord.boundedValue("short") == "short")
    }
}
