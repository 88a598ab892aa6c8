import CSQLite
import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

/// Threat: two calls that are each allowed leak together. A run reads labelled data (HR files) and sends
/// it out through a sink it may use (a POST, a program, a database write, a file another agent reads).
@Suite struct LabelFlowTests {
    /// Grants reading the HR folder (labelled `hr`) and posting to a partner, with `clearance` on the POST.
    static func grants(hr: String, clearance: String = "", extra: String = "") -> String {
        """
        module = "summarizer"

        [[fs]]
        paths = ["\(hr)/**"]
        allow = ["read"]
        labels = ["hr", "confidential"]

        [[http]]
        urls = ["https://api.partner.com/**"]
        methods = ["POST", "GET"]
        \(clearance)
        \(extra)
        """
    }

    static func post(_ harness: Harness, _ body: String = "salary") -> HostError? {
        harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "POST", url: "https://api.partner.com/tickets",
                                                       headers: [], body: Array(body.utf8)))
        }
    }

    /// Grants of an agent that reads the HR folder `hr` (labelled `hr`) and may do `allow` in `shared`, with
    /// `clearance` on that grant (`clearance = ["hr"]`, or nothing).
    static func reader(hr: String, shared: String, allow: [String], clearance: String = "clearance = [\"hr\"]") -> String {
        """
        module = "reader"

        [[fs]]
        paths = ["\(hr)/**"]
        allow = ["read"]
        labels = ["hr"]

        [[fs]]
        paths = ["\(shared)/**"]
        allow = [\(allow.map { "\"\($0)\"" }.joined(separator: ", "))]
        \(clearance)
        """
    }

    /// Grants of an agent with no labels of its own that reads `shared` and posts to the partner (clearing nothing).
    static func poster(shared: String) -> String {
        """
        module = "poster"

        [[fs]]
        paths = ["\(shared)/**"]
        allow = ["read"]

        [[http]]
        urls = ["https://api.partner.com/**"]
        methods = ["POST"]
        """
    }

    /// The labels recorded on the file at `path`, comma-separated; `nil` when it cannot be opened or read.
    static func fileLabels(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return (try? FileLabels.read(fd, path))?.joined(separator: ",")
    }

    @Test func aPostAfterALabelledReadIsDeniedNamingTheLabelsTheirSeqAndTheGrant() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.grants(hr: hr.path), http: sender)
        #expect(Self.post(harness) == nil, "before any labelled read the POST is allowed")
        _ = try harness.mediator.read(path: hr.path + "/salaries.txt")
        let readSeq = try #require(try harness.entries().first { $0.record.call == "fs.read" && $0.record.decision == .allow }?.seq)
        let error = try #require(Self.post(harness))
        #expect(error.code == .denied)
        #expect(error.message.contains("confidential (read at audit seq \(readSeq))"), "\(error.message)")
        #expect(error.message.contains("hr (read at audit seq \(readSeq))"), "\(error.message)")
        #expect(error.message.contains("grants.toml:8 would need clearance = [\"confidential\", \"hr\"]"), "\(error.message)")
        #expect(sender.sent.count == 1, "the refused POST never reached the transport")
        let denial = try #require(harness.decisions("http.send").last)
        #expect(denial.decision == .deny)
        #expect(denial.details["missing_clearance"] == "confidential,hr")
        #expect(denial.details["run_labels"] == "confidential@\(readSeq),hr@\(readSeq)")
        let outcome = try #require(try harness.entries().map(\.record).first { $0.call == "fs.read" && $0.outcome == "ok" })
        #expect(outcome.details["labels_acquired"] == "confidential,hr")
        // A GET's URL carries data too.
        let get = harness.error { () throws(HostError) in
            try harness.mediator.send(HTTPRequestValue(method: "GET", url: "https://api.partner.com/q?salary=120000"))
        }
        #expect(get?.code == .denied)
    }

    @Test func aPostWhoseGrantClearsEveryLabelIsAllowed() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let sender = RecordingSender()
        let cleared = try Harness(grants: Self.grants(hr: hr.path, clearance: "clearance = [\"hr\", \"confidential\"]"),
                                  http: sender)
        _ = try cleared.mediator.read(path: hr.path + "/salaries.txt")
        #expect(Self.post(cleared) == nil)
        #expect(sender.sent.count == 1)
        let partly = try Harness(grants: Self.grants(hr: hr.path, clearance: "clearance = [\"hr\"]"), http: RecordingSender())
        _ = try partly.mediator.read(path: hr.path + "/salaries.txt")
        let error = try #require(Self.post(partly))
        #expect(error.message.contains("would need clearance = [\"confidential\"]"), "\(error.message)")
    }

    @Test func labelsRelayThroughAScratchFileToASecondAgent() throws {
        let hr = try Scratch()
        let shared = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        // Agent A: reads HR, may write the shared folder (its write grant clears the labels).
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write"]))
        let data = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        try agentA.mediator.write(path: shared.path + "/note.txt", data: data)
        #expect(Self.fileLabels(shared.path + "/note.txt") == "hr")
        // Agent B: its own grants put no label on the shared folder; the file's labels still reach it.
        let sender = RecordingSender()
        let agentB = try Harness(grants: Self.poster(shared: shared.path), http: sender)
        #expect(Self.post(agentB) == nil, "unlabelled, agent B may post")
        _ = try agentB.mediator.read(path: shared.path + "/note.txt")
        let error = try #require(Self.post(agentB))
        #expect(error.code == .denied)
        #expect(error.message.contains("hr (read at audit seq"), "\(error.message)")
        #expect(sender.sent.count == 1)
        let read = try #require(try agentB.entries().map(\.record).first { $0.call == "fs.read" && $0.outcome == "ok" })
        #expect(read.details["file_labels"] == "hr")
        // Without clearance on its write grant, agent A could not even write the scratch file.
        let noClearance = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write"], clearance: ""))
        _ = try noClearance.mediator.read(path: hr.path + "/salaries.txt")
        let write = noClearance.error { () throws(HostError) in
            try noClearance.mediator.write(path: shared.path + "/other.txt", data: data)
        }
        #expect(write?.code == .denied)
        #expect(!shared.exists("other.txt"))
    }

    @Test func aCopyCarriesTheLabelsSoAGuestCannotLaunderThroughANewFile() throws {
        let hr = try Scratch()
        let shared = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        _ = try shared.file("existing.txt", "old")
        let agent = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["read", "write", "append"]))
        let data = try agent.mediator.read(path: hr.path + "/salaries.txt")
        // There is no rename; a copy under another name, or appended to an unlabelled file, is labelled.
        try agent.mediator.write(path: shared.path + "/copy-of-copy.txt", data: data)
        try agent.mediator.append(path: shared.path + "/existing.txt", data: data)
        #expect(Self.fileLabels(shared.path + "/copy-of-copy.txt") == "hr")
        #expect(Self.fileLabels(shared.path + "/existing.txt") == "hr")
        // A rename outside peon-wasm keeps the attribute: it belongs to the inode.
        #expect(rename(shared.path + "/copy-of-copy.txt", shared.path + "/renamed.txt") == 0)
        #expect(Self.fileLabels(shared.path + "/renamed.txt") == "hr")
    }

    @Test func aFolderWhereALabelledRunCreatedOrRemovedANameCarriesItsLabels() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let shared = try Scratch()
        _ = try shared.file("existing.txt", "old")
        _ = try shared.file("old.txt", "old")
        try FileManager.default.createDirectory(atPath: shared.path + "/rewritten", withIntermediateDirectories: true)
        _ = try shared.file("rewritten/report.txt", "old")
        try FileManager.default.createDirectory(atPath: shared.path + "/removed", withIntermediateDirectories: true)
        _ = try shared.file("removed/x.txt", "old")
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write", "append", "remove"]))
        // Replacing a file that exists changes no name: its folder stays unlabelled.
        _ = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        try agentA.mediator.write(path: shared.path + "/rewritten/report.txt", data: Array("summary".utf8))
        #expect(Self.fileLabels(shared.path + "/rewritten") == "")
        #expect(Self.fileLabels(shared.path + "/rewritten/report.txt") == "hr")
        // A new name spells data (here a salary): its folder takes the run's labels; so does a removal.
        try agentA.mediator.write(path: shared.path + "/alice-120000.txt", data: [])
        #expect(Self.fileLabels(shared.path) == "hr")
        try agentA.mediator.remove(path: shared.path + "/removed/x.txt")
        #expect(Self.fileLabels(shared.path + "/removed") == "hr")

        let sender = RecordingSender()
        let agentB = try Harness(grants: """
            module = "poster"

            [[fs]]
            paths = ["\(shared.path)", "\(shared.path)/**"]
            allow = ["list"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, http: sender)
        #expect(try agentB.mediator.readDirectory(path: shared.path + "/rewritten") == ["report.txt"])
        #expect(Self.post(agentB) == nil, "an unlabelled folder's listing brings nothing")
        #expect(try agentB.mediator.readDirectory(path: shared.path).contains("alice-120000.txt"))
        let refused = Self.post(agentB, "alice-120000")
        #expect(refused?.code == .denied, "the listing brought hr")
        let listing = try #require(try agentB.entries().map(\.record).last { $0.call == "fs.read-dir" && $0.outcome == "ok" })
        #expect(listing.details["folder_labels"] == "hr")
        #expect(sender.sent.count == 1)
    }

    /// Threat: a call that fails says something too. `not-found` against `not a directory` tells whether a
    /// labelled run created or removed a name; `limit-exceeded` spells a labelled file's size. A failed call
    /// brought no labels, so an unlabelled grant could learn the bit and send it out.
    @Test func aFailedCallBringsTheLabelsOfWhereItStopped() throws {
        let hr = try Scratch()
        _ = try hr.file("fired/alice.txt", "fired")
        let shared = try Scratch()
        _ = try shared.file("b0", "x")
        _ = try shared.file("b1", "x")
        // (a) Under the labelled grant itself: probing names in the HR folder fails, and still brings hr.
        let prober = try Harness(grants: Self.grants(hr: hr.path))
        for probe in ["/fired/alice.txt/x", "/fired/bob.txt/x"] {
            _ = prober.error { () throws(HostError) in try prober.mediator.read(path: hr.path + probe) }
        }
        #expect(Self.post(prober)?.code == .denied, "a failed read under a labelled grant brings its labels")
        let failed = try prober.entries().map(\.record).filter { $0.call == "fs.read" && $0.decision == nil }
        #expect(failed.first?.details["labels_acquired"] == "confidential,hr", "\(failed.first?.details ?? [:])")

        // (b) A labelled run removes b1 (labelling the folder) and appends to a huge sparse file; an unlabelled
        // run then probes b1 and reads the big file: both fail, both bring hr.
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["remove", "append"]))
        _ = try agentA.mediator.read(path: hr.path + "/fired/alice.txt")
        try agentA.mediator.remove(path: shared.path + "/b1")
        let big = shared.path + "/big"
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        #expect(truncate(big, 70_000_000) == 0)
        try agentA.mediator.append(path: big, data: Array("x".utf8))
        for (probe, code) in [("/b1", HostErrorCode.notFound), ("/big", .limitExceeded)] {
            let sender = RecordingSender()
            let agentB = try Harness(grants: Self.poster(shared: shared.path), http: sender)
            #expect(try agentB.mediator.read(path: shared.path + "/b0") == Array("x".utf8))
            #expect(Self.post(agentB) == nil, "an unlabelled file in the folder brings nothing")
            #expect(agentB.error { () throws(HostError) in try agentB.mediator.read(path: shared.path + probe) }?.code == code)
            #expect(Self.post(agentB, "b1=removed")?.code == .denied, "\(probe): the failure brought hr")
            #expect(sender.sent.count == 1)
        }
    }

    /// The same, with names that begin with a combining mark: the path was split into characters, `/` + U+0301 is one,
    /// so the labelled folder before such a name was never looked at, and the failure brought nothing. Two unlabelled
    /// probes (`not-found` against `not a directory`) passed a bit out. Found by a red-team pass.
    @Test func aFailedCallUnderNamesStartingWithAMarkStillBringsLabels() throws {
        let hr = try Scratch()
        _ = try hr.file("fired/alice.txt", "fired")
        let shared = try Scratch()
        _ = try shared.file("b0", "x")
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write"]))
        _ = try agentA.mediator.read(path: hr.path + "/fired/alice.txt")
        try agentA.mediator.write(path: shared.path + "/\u{301}bit1", data: [])
        for probe in ["/\u{301}bit1/\u{301}x", "/\u{301}bit0/\u{301}x"] {
            let sender = RecordingSender()
            let agentB = try Harness(grants: Self.poster(shared: shared.path), http: sender)
            #expect(Self.post(agentB) == nil, "unlabelled, agent B may post")
            #expect(agentB.error { () throws(HostError) in try agentB.mediator.read(path: shared.path + probe) } != nil)
            #expect(Self.post(agentB, "bit")?.code == .denied, "\(probe): the failure brought no labels")
        }
    }

    /// A journal is known by its name's bytes: a database whose name ends in a character that joins with the `-` after
    /// it (U+0600 is prepended to what follows) had `NAME-wal` read as no journal of it, so it brought no labels.
    @Test func aJournalIsKnownByTheBytesOfItsName() {
        #expect(FileSystemCapability.databaseOfJournal("/d/hr\u{600}-wal") == "/d/hr\u{600}")
        #expect(FileSystemCapability.databaseOfJournal("/d/app.db-journal") == "/d/app.db")
        #expect(FileSystemCapability.databaseOfJournal("/d/-wal") == nil)
        #expect(FileSystemCapability.databaseOfJournal("/d/notes.txt") == nil)
    }

    /// Threat: a removal that succeeds says the name existed. A labelled run creates `carol-130000` (a name that
    /// spells a salary); an unlabelled run that may only remove there guesses it, succeeds, and posts the salary.
    /// Only a wrong guess (`not-found`) brought labels. Found by a red-team pass.
    @Test func aRemovalThatSucceedsBringsTheLabelsOfWhatItRemoved() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "carol 130000")
        let shared = try Scratch()
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write"]))
        _ = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        try agentA.mediator.write(path: shared.path + "/carol-130000", data: [])
        #expect(Self.fileLabels(shared.path + "/carol-130000") == "hr")

        let sender = RecordingSender()
        let agentB = try Harness(grants: """
            module = "remover"

            [[fs]]
            paths = ["\(shared.path)/**"]
            allow = ["remove"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, http: sender)
        #expect(Self.post(agentB) == nil, "unlabelled, agent B may post")
        try agentB.mediator.remove(path: shared.path + "/carol-130000")
        #expect(!FileManager.default.fileExists(atPath: shared.path + "/carol-130000"))
        #expect(Self.post(agentB, "carol earns 130000")?.code == .denied, "the removal brought hr")
        #expect(sender.sent.count == 1)
        let removal = try #require(try agentB.entries().map(\.record).last { $0.call == "fs.remove" && $0.outcome == "ok" })
        #expect(removal.details["file_labels"] == "hr", "\(removal.details)")
        #expect(removal.details["labels_acquired"] == "hr", "\(removal.details)")

        // Removing a link removes the link: the labels of what it points at (outside every grant) do not come.
        let other = try Scratch()
        #expect(symlink(hr.path + "/salaries.txt", other.path + "/link") == 0)
        try FileLabels.add(["payroll"], to: .path(hr.path + "/salaries.txt"), what: "the fixture")
        let agentC = try Harness(grants: """
            module = "remover"

            [[fs]]
            paths = ["\(other.path)/**"]
            allow = ["remove"]

            [[http]]
            urls = ["https://api.partner.com/**"]
            methods = ["POST"]
            """, http: sender)
        try agentC.mediator.remove(path: other.path + "/link")
        #expect(Self.post(agentC) == nil, "the link's target's labels did not come")
    }

    /// Threat: a run's audit log and its first-use index hold what a labelled run did (the names it created, a
    /// labelled database's error text), and they were unlabelled files: another run an operator let read them (per-agent
    /// logs in one folder) took `carol-130000` out unlabelled. Found by a red-team pass. Both files now carry the
    /// labels a run acquires, before the entry that records them.
    @Test func theAuditFilesOfALabelledRunCarryItsLabels() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "carol 130000")
        let shared = try Scratch()
        let agentA = try Harness(grants: Self.reader(hr: hr.path, shared: shared.path, allow: ["write"]))
        #expect(Self.fileLabels(agentA.auditPath) == "", "nothing labelled was done yet")
        _ = try agentA.mediator.read(path: hr.path + "/salaries.txt")
        try agentA.mediator.write(path: shared.path + "/carol-130000", data: [])
        #expect(Self.fileLabels(agentA.auditPath) == "hr")
        #expect(Self.fileLabels(agentA.auditPath + ".first-use") == "hr")
        let read = try #require(try agentA.entries().map(\.record).first { $0.call == "fs.read" && $0.outcome == "ok" })
        #expect(read.details["audit_labels_unrecorded"] == nil)

        // Agent B, on a log of its own, may read A's log folder and post.
        let sender = RecordingSender()
        let agentB = try Harness(grants: Self.poster(shared: agentA.scratch.path), http: sender)
        let index = try agentB.mediator.read(path: agentA.auditPath + ".first-use")
        #expect(String(decoding: index, as: UTF8.self).contains("carol-130000"))
        #expect(Self.post(agentB, "carol-130000")?.code == .denied, "the index brought hr")
        #expect(sender.sent.isEmpty)
    }

    @Test func runsAppendingToOneFileAtOnceLoseNoLabel() throws {
        // Each append adds its labels as attributes of their own: no run rewrites another's.
        let scratch = try Scratch()
        let capability = FileSystemCapability()
        let labels = (0..<8).map { "label\($0)" }
        var lost: [String] = []
        for file in 0..<100 {
            let path = try scratch.file("shared\(file).log", "")
            let guestPath = try GuestPath(parsing: path, relativeTo: nil)
            // Eight runs append once each, all at the same moment.
            DispatchQueue.concurrentPerform(iterations: labels.count) { index in
                _ = try? capability.append(guestPath, data: Array("\(index)\n".utf8), labels: [labels[index]],
                                           authorize: { _ in true })
            }
            let found = Self.fileLabels(path) ?? ""
            if found != labels.joined(separator: ",") { lost.append("shared\(file).log: \(found)") }
        }
        #expect(lost.isEmpty, "labels lost: \(lost.prefix(3))")
        let path = try scratch.file("shared.log", "")
        let guestPath = try GuestPath(parsing: path, relativeTo: nil)
        // A file written whole carries its list attribute; an append adds to it, and a read sees both.
        try capability.write(guestPath, data: Array("new".utf8), labels: ["hr"], authorize: { _ in true })
        try capability.append(guestPath, data: Array("more".utf8), labels: ["pii"], authorize: { _ in true })
        #expect(Self.fileLabels(path) == "hr,pii")
    }

    @Test func aDamagedLabelAttributeFailsTheReadClosed() throws {
        let shared = try Scratch()
        let path = try shared.file("note.txt", "x")
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        // Written raw, as damage (or another tool) would: one of the names is not a label.
        try FileLabels.write(["hr", "not a label"], to: fd, path, "test")
        close(fd)
        let harness = try Harness(grants: """
            module = "poster"

            [[fs]]
            paths = ["\(shared.path)/**"]
            allow = ["read"]
            """)
        let error = harness.error { () throws(HostError) in try harness.mediator.read(path: path) }
        #expect(error?.code == .io)
    }

    @Test func execAfterALabelledReadIsDenied() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let harness = try Harness(grants: Self.grants(hr: hr.path, extra: """

            [[exec]]
            program = "/bin/echo"
            args = ["*"]
            """))
        #expect(harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/echo", arguments: ["hi"], stdin: [])
        } == nil)
        _ = try harness.mediator.read(path: hr.path + "/salaries.txt")
        let error = harness.error { () throws(HostError) in
            try harness.mediator.run(program: "/bin/echo", arguments: ["alice 120000"], stdin: [])
        }
        #expect(error?.code == .denied)
        #expect(error?.message.contains("hr (read at audit seq") == true, "\(String(describing: error))")
        #expect(try harness.decisions("exec.run").last?.details["missing_clearance"] == "confidential,hr")
    }

    /// A run that cannot read the HR folder itself has a granted program (`cat`) read it: the program's output
    /// carries its grant's labels, so the guest cannot launder HR data through exec stdout.
    @Test func aProgramsOutputCarriesItsGrantsLabels() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.grants(hr: "/nonexistent", extra: """

            [[exec]]
            program = "/bin/cat"
            args = ["\(hr.path)/salaries.txt"]
            labels = ["hr"]
            """), http: sender)
        #expect(Self.post(harness) == nil)
        let output = try harness.mediator.run(program: "/bin/cat", arguments: [hr.path + "/salaries.txt"], stdin: [])
        #expect(output.stdout == Array("alice 120000".utf8))
        let outcome = try #require(try harness.entries().map(\.record).last { $0.call == "exec.run" && $0.outcome == "ok" })
        #expect(outcome.details["labels_acquired"] == "hr")
        let error = Self.post(harness, "alice 120000")
        #expect(error?.code == .denied)
        #expect(error?.message.contains("hr (read at audit seq") == true, "\(String(describing: error))")
        #expect(sender.sent.count == 1)
    }

    /// A reload changes what is cleared, never what the run holds: labels acquired before a reload stay, and
    /// a clearance added or revoked by the reload applies from the next call.
    @Test func labelsSurviveAHotReloadAndTheNewClearanceDecides() throws {
        let hr = try Scratch()
        _ = try hr.file("salaries.txt", "alice 120000")
        let sender = RecordingSender()
        let harness = try Harness(grants: Self.grants(hr: hr.path), http: sender)
        _ = try harness.mediator.read(path: hr.path + "/salaries.txt")
        #expect(Self.post(harness)?.code == .denied)
        func reload(_ clearance: String) throws {
            let path = try harness.scratch.file("grants.toml", Self.grants(hr: hr.path, clearance: clearance))
            harness.store.replace(with: try PolicySnapshot.load(PolicySources(grantsPath: path), defaultModule: "agent"))
        }
        try reload("clearance = [\"hr\", \"confidential\"]")
        #expect(Self.post(harness) == nil, "the reloaded grant clears the labels the run still holds")
        try reload("")
        #expect(Self.post(harness)?.code == .denied, "revoked again: the run's labels were never dropped")
        #expect(sender.sent.count == 1)
    }

    @Test func aDatabaseWriteAfterALabelledReadIsDeniedAlsoWithinOneStatement() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/hr.db"
        var handle: OpaquePointer?
        guard sqlite3_open(path, &handle) == SQLITE_OK, let handle else { throw HostError(.io, "fixture") }
        let schema = "CREATE TABLE salaries(name TEXT, pay INTEGER); INSERT INTO salaries VALUES ('alice', 120000); CREATE TABLE notes(text TEXT);"
        let created = sqlite3_exec(handle, schema, nil, nil, nil)
        sqlite3_close(handle)
        #expect(created == SQLITE_OK)
        let harness = try Harness(grants: """
            module = "analyst"

            [[db]]
            database = "hr"
            tables = ["salaries"]
            allow = ["read"]
            labels = ["hr"]

            [[db]]
            database = "hr"
            tables = ["notes"]
            allow = ["insert"]
            """, scratch: scratch, databases: ["hr": path])
        // One statement that reads the labelled table into an unlabelled one.
        let copy = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "hr", sql: "INSERT INTO notes SELECT name FROM salaries", parameters: [])
        }
        #expect(copy?.code == .denied, "\(String(describing: copy))")
        _ = try harness.mediator.query(database: "hr", sql: "SELECT pay FROM salaries", parameters: [])
        let insert = harness.error { () throws(HostError) in
            try harness.mediator.execute(database: "hr", sql: "INSERT INTO notes VALUES ('x')", parameters: [])
        }
        #expect(insert?.code == .denied)
        let denials = try harness.entries().map(\.record).filter { $0.decision == .deny && $0.details["missing_clearance"] == "hr" }
        #expect(denials.count == 2, "both refusals are audited with the missing clearance")
    }

    @Test func labelsAndClearanceAreValidatedInGrants() throws {
        func parse(_ body: String) -> GrantsError? {
            do {
                _ = try GrantsParser.parse("module = \"m\"\n" + body, file: "g.toml", baseDirectory: "/srv")
                return nil
            } catch {
                return error
            }
        }
        #expect(parse("[[fs]]\npaths = [\"/a/**\"]\nallow = [\"read\"]\nlabels = [\"hr\", \"pii.eu\"]\n") == nil)
        #expect(parse("[[fs]]\npaths = [\"/a/**\"]\nallow = [\"read\"]\nlabels = [\"h r\"]\n")?.message.contains("is not a label") == true)
        #expect(parse("[[fs]]\npaths = [\"/a/**\"]\nallow = [\"write\"]\nlabels = [\"hr\"]\n")?.message.contains("applies only to a grant that allows read or list") == true)
        #expect(parse("[[fs]]\npaths = [\"/a/**\"]\nallow = [\"read\"]\nclearance = [\"hr\"]\n")?.message.contains("applies only") == true)
        #expect(parse("[[db]]\ndatabase = \"d\"\ntables = [\"t\"]\nallow = [\"insert\"]\nlabels = [\"hr\"]\n")?.message.contains("applies only to a grant that allows read") == true)
        #expect(parse("[[exec]]\nprogram = \"/bin/echo\"\nclearance = [\"hr\", \"\"]\n")?.message.contains("is not a label") == true)
        let grants = try GrantsParser.parse(
            "module = \"m\"\n[[http]]\nurls = [\"https://a.example/**\"]\nmethods = [\"GET\"]\nlabels = [\"b\", \"a\", \"b\"]\n",
            file: "g.toml", baseDirectory: "/srv")
        #expect(grants.http.first?.labels == ["a", "b"])
    }
}
