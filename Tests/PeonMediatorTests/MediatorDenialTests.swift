import Foundation
import PeonAudit
import PeonInterface
import Testing
@testable import PeonMediator

/// Every refusal path of the mediator: the guest gets the right code, the refusal is in the audit log
/// (written before anything could happen) and the world is untouched.
///
/// Fixture (inside a fresh scratch folder `S`):
/// ```
/// S/granted/report.txt    readable and writable under the grants
/// S/outside/secret.txt    not granted
/// S/granted/link -> S/outside/secret.txt
/// ```
@Suite struct MediatorDenialTests {
    static let grants = """
        module = "reporter"

        [[fs]]
        paths = ["granted/**"]
        allow = ["read", "write", "list"]
        """

    func fixture(grants: String? = MediatorDenialTests.grants, callQuota: Int? = nil) throws -> Harness {
        let scratch = try Scratch()
        _ = try scratch.file("granted/report.txt", "q1")
        _ = try scratch.file("outside/secret.txt", "secret")
        try FileManager.default.createSymbolicLink(
            atPath: scratch.path + "/granted/link", withDestinationPath: scratch.path + "/outside/secret.txt")
        return try Harness(grants: grants, scratch: scratch, callQuota: callQuota)
    }

    /// Threat: a run stopped by a signal keeps deciding and acting on its guest thread until the process exits,
    /// and its entries land after `run.end` (seen with a SIGTERM while an agent looped on `db.execute`).
    @Test func afterTheRunEndsNoCallIsMadeAndNoEntryFollowsRunEnd() throws {
        let harness = try fixture()
        let m = harness.mediator
        #expect(try m.read(path: "granted/report.txt") == Array("q1".utf8))
        m.shutdown()
        try harness.audit.append(
            AuditRecord(run: "run-1", module: "reporter", moduleSHA256: String(repeating: "ab", count: 32), call: "run.end",
                        resource: "module:reporter", outcome: "signal:TERM"), durable: true)
        let write = harness.error { () throws(HostError) in try m.write(path: "granted/new.txt", data: [1]) }
        #expect(write?.code == .io, "\(String(describing: write))")
        #expect(harness.error { () throws(HostError) in try m.read(path: "granted/report.txt") }?.code == .io)
        #expect(harness.error { () throws(HostError) in try m.read(path: "outside/secret.txt") }?.code == .io)
        #expect(!FileManager.default.fileExists(atPath: harness.scratch.path + "/granted/new.txt"))
        #expect(try harness.entries().last?.record.call == "run.end", "no entry follows run.end")
    }

    @Test func withoutGrantsEveryCallIsDeniedAndAudited() throws {
        let harness = try fixture(grants: nil)
        let m = harness.mediator
        #expect(harness.error { () throws(HostError) in try m.read(path: "granted/report.txt") }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try m.write(path: "granted/new.txt", data: [1]) }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try m.readDirectory(path: "granted") }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try m.remove(path: "granted/report.txt") }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try m.append(path: "granted/report.txt", data: [1]) }?.code == .denied)
        #expect(harness.error { () throws(HostError) in try m.run(program: "/bin/true", arguments: [], stdin: []) }?.code == .denied)
        #expect(harness.error { () throws(HostError) in
            try m.send(HTTPRequestValue(method: "GET", url: "https://example.com/"))
        }?.code == .denied)
        let records = try harness.entries().map(\.record)
        #expect(records.count == 7)
        #expect(records.allSatisfy { $0.decision == .deny && $0.module == "agent" && $0.run == "run-1" })
        #expect(records.allSatisfy { $0.policy == harness.store.current.version && !$0.policy.isEmpty })
        #expect(harness.scratch.contents("granted/report.txt") == "q1")
        #expect(!harness.scratch.exists("granted/new.txt"))
    }

    /// A program path of megabytes (the ABI allows 64 MiB) is refused before it is split or written to the log.
    @Test func aHugeProgramPathIsRefusedBeforeItIsSplitOrLogged() throws {
        let harness = try fixture()
        let program = String(repeating: "/a", count: 1 << 20)
        #expect(harness.error { () throws(HostError) in try harness.mediator.run(program: program, arguments: [], stdin: []) }?.code == .invalidArgument)
        let records = try harness.entries().map(\.record)
        #expect(records.map(\.resource) == ["exec:?"])
        #expect(records.first?.decision == .deny)
    }

    /// Arguments over the ABI's limits never reach a mediator method, but the refusal is still a logged denial.
    @Test func aCallRefusedBeforeDecodingIsAuditedAsADenial() throws {
        let harness = try fixture()
        harness.mediator.refused(call: "fs.write", error: HostError(.limitExceeded, "a list of 200 bytes is over the 100-byte limit"))
        let records = try harness.entries().map(\.record)
        #expect(records.count == 1)
        #expect(records.first?.call == "fs.write")
        #expect(records.first?.resource == "fs:?")
        #expect(records.first?.decision == .deny)
        #expect(records.first?.outcome == HostErrorCode.limitExceeded.description)
        #expect(records.first?.reason.contains("100-byte limit") == true)
    }

    @Test func aGrantedReadIsAuditedBeforeAndAfter() throws {
        let harness = try fixture()
        #expect(try harness.mediator.read(path: "granted/report.txt") == Array("q1".utf8))
        let records = try harness.entries().map(\.record)
        #expect(records.count == 2)
        #expect(records[0].decision == .allow)
        #expect(records[0].resource == "fs:\(harness.scratch.path)/granted/report.txt")
        #expect(records[0].reason.contains("grants.toml:3"), "the reason names the grant's file and line")
        #expect(records[1].decision == nil && records[1].outcome == "ok")
        #expect(records[1].details["result_len"] == "2")
        #expect(records[1].details["decision_seq"] == "0")
    }

    @Test(arguments: ["outside/secret.txt", "granted/../outside/secret.txt", "/etc/passwd", "granted/./../../etc/passwd"])
    func pathsOutsideTheGrantAreDenied(path: String) throws {
        let harness = try fixture()
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: path) }
        #expect(error?.code == .denied)
        let decisions = try harness.decisions("fs.read")
        #expect(decisions.count == 1 && decisions[0].decision == .deny)
        #expect(!decisions[0].resource.contains("/granted/"), "the lexically normalized path is what policy saw")
    }

    @Test func aSymlinkOutOfTheGrantIsRefusedAndTheTargetDecisionIsAudited() throws {
        let harness = try fixture()
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: "granted/link") }
        #expect(error?.code == .denied)
        let records = try harness.entries().map(\.record)
        #expect(records.contains { $0.decision == .deny && $0.resource == "fs:\(harness.scratch.path)/outside/secret.txt" })
        #expect(!records.contains { $0.outcome == "ok" })
    }

    @Test func aWriteOutsideTheGrantLeavesTheWorldUntouched() throws {
        let harness = try fixture()
        let error = harness.error { () throws(HostError) in
            try harness.mediator.write(path: "outside/secret.txt", data: Array("pwned".utf8))
        }
        #expect(error?.code == .denied)
        #expect(harness.scratch.contents("outside/secret.txt") == "secret")
        let error2 = harness.error { () throws(HostError) in try harness.mediator.remove(path: "granted/report.txt") }
        #expect(error2?.code == .denied, "remove is not in the allow list")
        #expect(harness.scratch.exists("granted/report.txt"))
    }

    @Test func auditEntriesRecordPayloadsByHashAndLengthNeverContent() throws {
        let harness = try fixture()
        try harness.mediator.write(path: "granted/out.txt", data: Array("top secret payload".utf8))
        let text = try String(contentsOfFile: harness.auditPath, encoding: .utf8)
        #expect(!text.contains("top secret payload"))
        let decision = try #require(try harness.decisions("fs.write").first)
        #expect(decision.details["payload_len"] == "18")
        #expect(decision.details["payload_sha256"]?.count == 64)
        #expect(harness.scratch.contents("granted/out.txt") == "top secret payload")
    }

    @Test func theCallQuotaRefusesWithLimitExceededAndIsAudited() throws {
        let harness = try fixture(callQuota: 2)
        _ = try harness.mediator.read(path: "granted/report.txt")
        _ = try harness.mediator.read(path: "granted/report.txt")
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: "granted/report.txt") }
        #expect(error?.code == .limitExceeded)
        let last = try #require(try harness.decisions("fs.read").last)
        #expect(last.decision == .deny && last.outcome == "limit-exceeded")
    }

    @Test func theGrantsCallLimitIsTheDefaultQuota() throws {
        let harness = try fixture(grants: Self.grants.replacingOccurrences(
            of: "module = \"reporter\"", with: "module = \"reporter\"\n[limits]\ncalls = 1"))
        _ = try harness.mediator.read(path: "granted/report.txt")
        #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: "granted/report.txt") }?.code == .limitExceeded)
    }

    /// Threat: `[limits] calls = 9223372036854775807` (a valid TOML integer) made `quota + 100` overflow in
    /// `stopReason`, which every host binding reads after each call: the worker trapped (exit 70 and a Swift
    /// backtrace) on the module's first host call. Found by a red-team pass.
    @Test(arguments: [Int.max, Int.max - 50])
    func aHugeCallsLimitNeverOverflows(calls: Int) throws {
        let harness = try fixture(grants: Self.grants.replacingOccurrences(
            of: "module = \"reporter\"", with: "module = \"reporter\"\n[limits]\ncalls = \(calls)"))
        _ = try harness.mediator.read(path: "granted/report.txt")
        #expect(harness.mediator.stopReason == nil)
    }

    @Test func aPassedDeadlineRefusesWithTimeout() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants, scratch: scratch, deadline: .zero)
        #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: "granted/x") }?.code == .timeout)
        #expect(try harness.decisions("fs.read").first?.outcome == "timeout")
    }

    @Test func aClosedAuditLogRefusesTheCallInsteadOfActingUnaudited() throws {
        let harness = try fixture()
        try harness.audit.close()
        let error = harness.error { () throws(HostError) in
            try harness.mediator.write(path: "granted/report.txt", data: Array("changed".utf8))
        }
        #expect(error?.code == .io)
        #expect(harness.scratch.contents("granted/report.txt") == "q1")
    }

    @Test func badGuestPathsAreInvalidArgumentsNotCrashes() throws {
        let harness = try fixture()
        for path in ["", "a\0b", String(repeating: "a", count: 5000)] {
            #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: path) }?.code == .invalidArgument)
        }
        let decisions = try harness.decisions("fs.read")
        #expect(decisions.count == 3 && decisions.allSatisfy { $0.decision == .deny && $0.outcome == "invalid-argument" })
    }

    @Test func logLinesArePrefixedEscapedAndRateLimited() throws {
        let clock = ManualClock()
        let harness = try Harness(grants: nil, now: { clock.now() })
        harness.mediator.log(level: .info, message: "hello\n[other] error: forged")
        #expect(harness.logLines == ["[agent] info: hello\\u{a}[other] error: forged"])
        for _ in 0..<200 { harness.mediator.log(level: .debug, message: "spam") }
        #expect(harness.logLines.count == 100, "the burst is 100 lines")
        clock.advance(.seconds(1))
        harness.mediator.log(level: .warn, message: "after")
        #expect(harness.logLines.suffix(2) == ["[agent] warn: 101 log lines dropped (rate limit)", "[agent] warn: after"])
        #expect(try harness.entries().isEmpty, "log is not audited and needs no grant")
    }
}
