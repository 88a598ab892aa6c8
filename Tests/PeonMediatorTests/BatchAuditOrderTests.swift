import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// In `batch` mode the log may keep entries of reads in the process for a moment; it must never let anything leave
/// the process before they are in the file. An HTTP transport that reads the log when a request leaves sees every
/// entry before it, the request's own decision included.
@Suite struct BatchAuditOrderTests {
    /// Reads the audit file (without the lock, as any reader would) each time a request leaves.
    final class LogReadingSender: HTTPSender, @unchecked Sendable {
        let auditPath: String
        private let lock = NSLock()
        private var seen: [[AuditRecord]] = []
        var observed: [[AuditRecord]] { lock.lock(); defer { lock.unlock() }; return seen }

        init(auditPath: String) { self.auditPath = auditPath }

        func send(
            _ request: OutgoingRequest, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
            maxResponseBytes: Int, deadline: ContinuousClock.Instant
        ) throws(HostError) -> HTTPResponseValue {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: auditPath))) ?? Data()
            let records = data.split(separator: 0x0A).compactMap { try? AuditEntry.parse(Array($0)).get().record }
            lock.lock()
            seen.append(records)
            lock.unlock()
            return HTTPResponseValue(status: 200, headers: [], body: Array("ok".utf8))
        }
    }

    @Test func everyReadBeforeARequestIsInTheFileWhenTheRequestLeaves() throws {
        let scratch = try Scratch()
        for i in 0..<5 { _ = try scratch.file("data/\(i).txt", "secret \(i)") }
        let sender = LogReadingSender(auditPath: scratch.path + "/audit.log")
        let harness = try Harness(grants: """
            module = "agent"
            [[fs]]
            paths = ["data/**"]
            allow = ["read"]
            [[http]]
            urls = ["https://api.example.com/**"]
            methods = ["GET"]
            """, scratch: scratch, http: sender, sync: .batch)
        for round in 0..<3 {
            for i in 0..<5 { _ = try harness.mediator.read(path: "data/\(i).txt") }
            _ = try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.example.com/r\(round)",
                                                           headers: [], body: []))
        }
        let observed = sender.observed
        #expect(observed.count == 3)
        for (round, records) in observed.enumerated() {
            // Each read's decision and outcome, and the GET's own decision, are in the file as the request leaves.
            #expect(records.filter { $0.call == "fs.read" && $0.decision == .allow }.count == 5 * (round + 1))
            #expect(records.filter { $0.call == "fs.read" && $0.outcome == "ok" }.count == 5 * (round + 1))
            #expect(records.last?.call == "http.send")
            #expect(records.last?.resource == "http:https://api.example.com/r\(round)")
            #expect(records.last?.decision == .allow)
        }
        try harness.audit.close()
    }
}
