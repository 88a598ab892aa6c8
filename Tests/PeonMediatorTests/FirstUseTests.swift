import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// An approver that answers from a script and counts the questions it was asked.
final class ScriptedApprover: Approver, @unchecked Sendable {
    private let lock = NSLock()
    private var asked: [String] = []
    private let answer: Bool
    private let refused: String?
    /// Answers `approves`, except `no` for a resource ending in `refusing`.
    init(approves: Bool, refusing: String? = nil) { answer = approves; refused = refusing }
    var identity: String { "test:scripted" }
    var questions: [String] { lock.lock(); defer { lock.unlock() }; return asked }
    func approve(_ request: ApprovalRequest, deadline: ContinuousClock.Instant) -> ApprovalAnswer {
        lock.lock()
        asked.append(request.resource)
        lock.unlock()
        let approved = answer && !(refused.map { request.resource.hasSuffix($0) } ?? false)
        return ApprovalAnswer(approved: approved, answer: approved ? "yes" : "no")
    }
}

/// Threat: an agent quietly reaches something new (a host, a file, a program). Reviewers need that moment
/// flagged, and a grant can ask a human exactly then (`approval = "first-use"`).
@Suite struct FirstUseTests {
    static func grants(_ folder: String, approval: String = "false") -> String {
        """
        module = "reader"

        [[fs]]
        paths = ["\(folder)/**"]
        allow = ["read", "write"]
        approval = \(approval)
        """
    }

    @Test func theFirstAllowedCallOfAPairIsFlaggedAndLaterRunsAreNot() throws {
        let scratch = try Scratch()
        let data = try scratch.file("data/a.txt", "a")
        _ = try scratch.file("data/b.txt", "b")
        let first = try Harness(grants: Self.grants(scratch.path + "/data"), scratch: scratch)
        _ = try first.mediator.read(path: data)
        _ = try first.mediator.read(path: data)
        let reads = try first.decisions("fs.read")
        #expect(reads.count == 2)
        #expect(reads[0].details["first_use"] == "true")
        #expect(reads[1].details["first_use"] == nil, "the same run's second read is not a first use")
        // A later run on the same log: the pair is known; another file and another action are new.
        let second = try Harness(grants: Self.grants(scratch.path + "/data"), scratch: scratch, configure: { $0.runID = "run-2" })
        _ = try second.mediator.read(path: data)
        _ = try second.mediator.read(path: scratch.path + "/data/b.txt")
        try second.mediator.write(path: data, data: Array("x".utf8))
        let later = try second.entries().map(\.record).filter { $0.run == "run-2" && $0.decision != nil }
        #expect(later.map { $0.details["first_use"] } == [nil, "true", "true"])
    }

    @Test func aDeniedCallIsFlaggedButDoesNotCountAsUse() throws {
        let scratch = try Scratch()
        let harness = try Harness(grants: Self.grants(scratch.path + "/data"), scratch: scratch)
        _ = harness.error { () throws(HostError) in try harness.mediator.read(path: "/etc/hostname") }
        _ = harness.error { () throws(HostError) in try harness.mediator.read(path: "/etc/hostname") }
        let denials = try harness.decisions("fs.read")
        #expect(denials.allSatisfy { $0.decision == .deny })
        #expect(denials.map { $0.details["first_use"] } == ["true", "true"])
    }

    @Test func firstUseApprovalAsksOnlyTheFirstTimeAndAgainAfterARefusal() throws {
        let scratch = try Scratch()
        let data = try scratch.file("data/a.txt", "a")
        let no = ScriptedApprover(approves: false)
        let refusing = try Harness(grants: Self.grants(scratch.path + "/data", approval: "\"first-use\""),
                                   scratch: scratch, approver: no)
        #expect(refusing.error { () throws(HostError) in try refusing.mediator.read(path: data) }?.code == .denied)
        #expect(no.questions.count == 1)
        let yes = ScriptedApprover(approves: true)
        let approving = try Harness(grants: Self.grants(scratch.path + "/data", approval: "\"first-use\""),
                                    scratch: scratch, approver: yes)
        _ = try approving.mediator.read(path: data)
        _ = try approving.mediator.read(path: data)
        #expect(yes.questions == ["fs:" + data], "a refused first use is asked again, then never")
        let allowed = try approving.decisions("fs.read").filter { $0.decision == .allow }
        #expect(allowed.first?.details["approval"] == "yes")
        #expect(allowed.first?.details["approver"] == "test:scripted")
        // `approval = true` still asks every time.
        let always = ScriptedApprover(approves: true)
        let every = try Harness(grants: Self.grants(scratch.path + "/data", approval: "true"), scratch: scratch, approver: always)
        _ = try every.mediator.read(path: data)
        _ = try every.mediator.read(path: data)
        #expect(always.questions.count == 2)
    }

    /// A program's first use counts with its arguments: approving `/bin/echo harmless` once approved `/bin/echo` with
    /// any arguments in every later run, without asking (found by a red-team pass).
    @Test func aProgramsFirstUseCountsWithItsArguments() throws {
        let grants = """
            module = "runner"

            [[exec]]
            program = "/bin/echo"
            args = ["*"]
            approval = "first-use"
            """
        let scratch = try Scratch()
        let approver = ScriptedApprover(approves: true)
        let harness = try Harness(grants: grants, scratch: scratch, approver: approver)
        _ = try harness.mediator.run(program: "/bin/echo", arguments: ["harmless"], stdin: [])
        _ = try harness.mediator.run(program: "/bin/echo", arguments: ["harmless"], stdin: [])
        #expect(approver.questions.count == 1, "the same command line is asked about once")
        let later = try Harness(grants: grants, scratch: scratch, approver: approver, configure: { $0.runID = "run-2" })
        _ = try later.mediator.run(program: "/bin/echo", arguments: ["totally-different"], stdin: [])
        #expect(approver.questions.count == 2, "other arguments are asked about")
        let decisions = try later.decisions("exec.run").filter { $0.run == "run-2" }
        #expect(decisions.map { $0.details["first_use"] } == ["true"])
    }

    /// A program path holding a space and what looks like an argument count (`/opt/a 2:x`) shared its first-use key
    /// with another granted program's argument list (`/opt/a` with `x 0:`): approving one approved the other.
    @Test func aProgramsPathCannotPassForAnotherProgramsArguments() throws {
        let grants = """
            module = "runner"

            [[exec]]
            program = "/opt/peon-no-such/a"
            args = ["*", "*"]
            approval = "first-use"

            [[exec]]
            program = "/opt/peon-no-such/a 2:x"
            approval = "first-use"
            """
        let scratch = try Scratch()
        let approver = ScriptedApprover(approves: true)
        let harness = try Harness(grants: grants, scratch: scratch, approver: approver)
        _ = try? harness.mediator.run(program: "/opt/peon-no-such/a", arguments: ["x", "0:"], stdin: [])
        #expect(approver.questions.count == 1)
        _ = try? harness.mediator.run(program: "/opt/peon-no-such/a 2:x", arguments: [], stdin: [])
        #expect(approver.questions.count == 2, "the second program was never asked about")
    }

    /// Threat: the approver approves `notes` and the guest reads the file `notes` links to, which nobody
    /// was asked about; the nested decision then marks that file used, so no later run asks either.
    @Test(arguments: ["\"first-use\"", "true"])
    func theApproverIsAskedAboutALinksTargetToo(approval: String) throws {
        let scratch = try Scratch()
        let secret = try scratch.file("data/secret.txt", "TOPSECRET")
        let notes = scratch.path + "/data/notes"
        try FileManager.default.createSymbolicLink(atPath: notes, withDestinationPath: "secret.txt")
        let careful = ScriptedApprover(approves: true, refusing: "/secret.txt")
        let harness = try Harness(grants: Self.grants(scratch.path + "/data", approval: approval), scratch: scratch, approver: careful)
        #expect(harness.error { () throws(HostError) in try harness.mediator.read(path: notes) }?.code == .denied)
        #expect(careful.questions == ["fs:" + notes, "fs:" + secret])
        // Approved, the target is read; and a later run asks about the target itself when it is first used.
        let yes = ScriptedApprover(approves: true)
        let approving = try Harness(grants: Self.grants(scratch.path + "/data", approval: approval), scratch: scratch, approver: yes)
        #expect(try approving.mediator.read(path: notes) == Array("TOPSECRET".utf8))
        // (With "first-use", `notes` was approved in the first run and is not asked again; its target was refused, so it is.)
        #expect(yes.questions == (approval == "true" ? ["fs:" + notes, "fs:" + secret] : ["fs:" + secret]))
    }

    @Test func urlsCountByOrigin() throws {
        let url = try CanonicalURL(parsing: "https://API.example.com:443/a/b?q=1")
        #expect(Resource.url(url).firstUseName == "http:https://api.example.com")
        let other = try CanonicalURL(parsing: "http://example.com:8080/x")
        #expect(Resource.url(other).firstUseName == "http:http://example.com:8080")
    }

    /// A store looks at the file at most once per ``FirstUseStore/freshness``: a pair another process used a moment
    /// ago still counts as first use (more asking, never less), and is seen once the look is stale.
    @Test func anotherProcesssUseIsSeenOnceTheLookIsStale() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/log.first-use"
        let key = FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/x")
        let reader = FirstUseStore(path: path, tagKey: Self.tagKey)
        let looked = ContinuousClock.now
        #expect(reader.isFirstUse(key))
        FirstUseStore(path: path, tagKey: Self.tagKey).markUsed(key)
        let stillFresh = reader.isFirstUse(key)
        // Only when this machine was quick enough for the look to still be fresh (a loaded machine may not be).
        if ContinuousClock.now - looked < FirstUseStore.freshness {
            #expect(stillFresh, "within the freshness window the file is not read again: first use")
        }
        usleep(UInt32(FirstUseStore.freshness.components.attoseconds / 1_000_000_000_000) + 20_000)
        #expect(reader.isFirstUse(key) == false, "after it, the other process's use is read")
        reader.markUsed("m\tfs.read\tfs:/y")
        #expect(reader.isFirstUse("m\tfs.read\tfs:/y") == false, "this process's own uses count at once")
    }

    /// Two names Swift calls equal (precomposed `é`, and `e` + U+0301) are two files: using one is not using the other,
    /// in this process or read back from the store.
    @Test func canonicallyEquivalentNamesAreDifferentUses() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/log.first-use"
        let composed = FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/caf\u{E9}")
        let decomposed = FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/cafe\u{301}")
        #expect(composed == decomposed, "Swift calls them equal")
        let store = FirstUseStore(path: path, tagKey: Self.tagKey)
        store.markUsed(composed)
        #expect(!store.isFirstUse(composed))
        #expect(store.isFirstUse(decomposed), "the other name is still a first use")
        #expect(FirstUseStore(path: path, tagKey: Self.tagKey).isFirstUse(decomposed), "also when read back from the file")
        #expect(!FirstUseStore(path: path, tagKey: Self.tagKey).isFirstUse(composed))
    }

    /// The key's exact text: the fields joined by tabs, each backslash, tab, newline and carriage return in a field
    /// escaped, every other byte (non-ASCII too) copied; the same text whichever path built it.
    @Test func keysEscapeTheFourSeparatorBytesAndCopyEveryOtherByte() {
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        #expect(bytes(FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/x")) == bytes("m\tfs.read\tfs:/x"))
        #expect(bytes(FirstUseStore.key(module: "", action: "", resource: "")) == bytes("\t\t"))
        #expect(bytes(FirstUseStore.key(module: "m\\", action: "a\r", resource: "fs:/caf\u{E9}\t\n"))
                == bytes("m\\\\\ta\\r\tfs:/caf\u{E9}\\t\\n"))
        #expect(bytes(FirstUseStore.key(module: "mod\u{1F600}", action: "fs.read", resource: "fs:/\u{0}\u{7F}"))
                == bytes("mod\u{1F600}\tfs.read\tfs:/\u{0}\u{7F}"))
        for (byte, escaped) in [("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")] {
            #expect(bytes(FirstUseStore.key(module: "m", action: "a", resource: "x\(byte)y")) == bytes("m\ta\tx\(escaped)y"),
                    "a field whose only special byte is \(escaped)")
        }
        let long = String(repeating: "a/", count: 5_000)
        #expect(bytes(FirstUseStore.key(module: "m", action: "fs.read", resource: long)) == bytes("m\tfs.read\t" + long))
    }

    /// The key the store tests tag their lines with.
    static let tagKey = Array(repeating: UInt8(3), count: 32)

    /// Threat: someone who can write beside the log (not a guest: no grant reaches it) adds a line for a pair to skip
    /// an `approval = "first-use"` prompt. A line's tag is an HMAC under a key derived from the signing key: a line
    /// without a valid one is damaged, and the pair is still a first use. So is a line of an older store (no tag).
    @Test func aPairAddedWithoutTheKeyIsStillAFirstUse() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/log.first-use"
        let honest = FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/honest")
        FirstUseStore(path: path, tagKey: Self.tagKey).markUsed(honest)
        let written = try #require(scratch.contents("log.first-use"))
        #expect(written.hasPrefix(honest + "\t") && written.hasSuffix("\n") && written.split(separator: "\t").count == 4, "\(written)")
        let forged = FirstUseStore.key(module: "m", action: "fs.append", resource: "fs:/ledger")
        // Untagged (an older store's form), tagged with another key's tag, and the honest line's tag on another pair.
        let honestTag = String(written.dropLast().split(separator: "\t").last ?? "")
        let otherKeyLine = try { () throws -> String in
            let other = scratch.path + "/other.first-use"
            FirstUseStore(path: other, tagKey: Array(repeating: 9, count: 32)).markUsed(forged)
            return try String(contentsOfFile: other, encoding: .utf8)
        }()
        // Every log of a host shares the signing key: a line of another log's store, made with the same key, is
        // not this store's either.
        let otherLogLine = try { () throws -> String in
            let other = scratch.path + "/other-log.first-use"
            FirstUseStore(path: other, tagKey: Self.tagKey).markUsed(forged)
            return try String(contentsOfFile: other, encoding: .utf8)
        }()
        let appended = forged + "\n" + otherKeyLine + otherLogLine + forged + "\t" + honestTag + "\n"
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(appended.utf8))
        try handle.close()
        let reader = FirstUseStore(path: path, tagKey: Self.tagKey)
        #expect(reader.isFirstUse(forged), "a line added without the key counted as a use")
        #expect(!reader.isFirstUse(honest), "the tagged line still counts")
    }

    @Test func aMissingOrDamagedStoreFailsTowardsAsking() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/log.first-use"
        let key = FirstUseStore.key(module: "m", action: "fs.read", resource: "fs:/a\tb\nc")
        #expect(!key.contains("\n") && key.split(separator: "\t").count == 3, "fields cannot forge a line or a field")
        let writer = FirstUseStore(path: path, tagKey: Self.tagKey)
        #expect(writer.isFirstUse(key))
        writer.markUsed(key)
        #expect(FirstUseStore(path: path, tagKey: Self.tagKey).isFirstUse(key) == false, "another process reads the pair back")
        // Damaged: garbage bytes, a line with the wrong number of fields, a torn last line.
        try Data([0xFF, 0xFE, 0x0A] + Array("only\tone\n".utf8) + Array(key.utf8)).write(to: URL(fileURLWithPath: path))
        #expect(FirstUseStore(path: path, tagKey: Self.tagKey).isFirstUse(key), "a torn line is not a use")
        try FileManager.default.removeItem(atPath: path)
        #expect(FirstUseStore(path: path, tagKey: Self.tagKey).isFirstUse(key), "a missing store makes everything new again")
        // A symbolic link in its place is not followed (neither read nor written through).
        let target = try scratch.file("elsewhere", key + "\n")
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        let linked = FirstUseStore(path: path, tagKey: Self.tagKey)
        #expect(linked.isFirstUse(key))
        linked.markUsed("m\tfs.read\tfs:/other")
        #expect(scratch.contents("elsewhere") == key + "\n")
    }

    @Test func theRunsLabelsAreARequestAttributeTheModelCanDecideOn() throws {
        let scratch = try Scratch()
        _ = try scratch.file("hr/pay.txt", "120000")
        try FileManager.default.createDirectory(atPath: scratch.path + "/out", withIntermediateDirectories: true)
        // The organization's own flow rule, in the model: nothing goes to /out once the run holds `hr`, although
        // the grant's clearance would let it.
        let model = try scratch.file("model.conf", """
            [request_definition]
            r = sub, obj, act, args, ctx

            [policy_definition]
            p = sub, obj, act, args

            [policy_effect]
            e = some(where (p.eft == allow))

            [matchers]
            m = r.sub == p.sub && r.act == p.act && peonGlob(r.obj, p.obj) && peonArgs(r.args, p.args) && !(r.act == "fs.write" && regexMatch(r.ctx.labels, "(^|,)hr(,|$)"))
            """)
        let policy = try scratch.file("policy.csv", "")
        let grants = try scratch.file("labels.toml", """
            module = "agent"
            [[fs]]
            paths = ["\(scratch.path)/hr/**"]
            allow = ["read"]
            labels = ["hr"]
            [[fs]]
            paths = ["\(scratch.path)/out/**"]
            allow = ["write"]
            clearance = ["hr"]
            """)
        let snapshot = try PolicySnapshot.load(PolicySources(grantsPath: grants, modelPath: model, policyPath: policy),
                                               defaultModule: "agent")
        let harness = try Harness(scratch: scratch, configure: { $0.policy = MediatorPolicyStore(snapshot); $0.module = "agent" })
        try harness.mediator.write(path: scratch.path + "/out/before", data: [1])
        _ = try harness.mediator.read(path: scratch.path + "/hr/pay.txt")
        let after = harness.error { () throws(HostError) in
            try harness.mediator.write(path: scratch.path + "/out/after", data: [1])
        }
        #expect(after?.code == .denied)
        #expect(after?.message.contains("is not granted") == true, "the model's rule on r.ctx.labels refused it: \(String(describing: after))")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/out/after"))
    }

    /// docs/grants.md: an organisation adds deny rules to the grants with `p = sub, obj, act, args, eft`.
    /// The grants' lines (four values) are allows there, and keep their conditions (labels, clearance).
    @Test func grantsWorkUnderAModelWithDenyRules() throws {
        let scratch = try Scratch()
        _ = try scratch.file("hr/pay.txt", "alice 120000")
        _ = try scratch.file("hr/secret.txt", "do not read")
        let model = try scratch.file("deny.conf", """
            [request_definition]
            r = sub, obj, act, args

            [policy_definition]
            p = sub, obj, act, args, eft

            [policy_effect]
            e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

            [matchers]
            m = r.sub == p.sub && r.act == p.act && peonGlob(r.obj, p.obj) && peonArgs(r.args, p.args)
            """)
        let policy = try scratch.file("deny.csv", "p, agent, fs:\(scratch.path)/hr/secret.txt, fs.read, *, deny\n")
        let grants = try scratch.file("grants.toml", """
            module = "agent"
            [[fs]]
            paths = ["\(scratch.path)/hr/**"]
            allow = ["read"]
            labels = ["hr"]
            [[fs]]
            paths = ["\(scratch.path)/out/**"]
            allow = ["write"]
            """)
        let snapshot = try PolicySnapshot.load(PolicySources(grantsPath: grants, modelPath: model, policyPath: policy),
                                               defaultModule: "agent")
        let harness = try Harness(scratch: scratch, configure: { $0.policy = MediatorPolicyStore(snapshot); $0.module = "agent" })
        let denied = harness.error { () throws(HostError) in try harness.mediator.read(path: scratch.path + "/hr/secret.txt") }
        #expect(denied?.code == .denied, "the deny rule wins over the grant")
        #expect(try harness.mediator.read(path: scratch.path + "/hr/pay.txt") == Array("alice 120000".utf8))
        let leak = harness.error { () throws(HostError) in try harness.mediator.write(path: scratch.path + "/out/x", data: [1]) }
        #expect(leak?.code == .denied, "the grant's labels still apply: \(String(describing: leak))")
    }
}
