import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host's own files (the audit log and the files named after it, the signing key) are refused to every `fs`
/// call before policy, whatever the grants say, and the refusal is on record. Threat: a grant that covers the log's
/// folder let a guest replace its own audit log (the run exited 0; only `audit verify` saw the file was no log).
@Suite struct HostFileTests {
    /// The code of the error `body` throws, or `nil`.
    static func code<T>(_ harness: Harness, _ body: () throws(HostError) -> T) -> HostErrorCode? {
        harness.error(body)?.code
    }

    /// Grants that cover the whole scratch folder, where the harness keeps its audit log (`audit.log`).
    static let everything = """
        module = "agent"
        [[fs]]
        paths = ["**"]
        allow = ["read", "write", "append", "list", "remove"]
        """

    @Test func noGrantReachesTheAuditLogOrTheFilesBesideIt() throws {
        let harness = try Harness(grants: Self.everything)
        let scratch = harness.scratch.path
        let before = try Data(contentsOf: URL(fileURLWithPath: harness.auditPath))
        for name in ["audit.log", "audit.log.checkpoint", "audit.log.frontier", "audit.log.first-use", "audit.log.checkpoint.tmp.1.2"] {
            let path = scratch + "/" + name
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: path, data: Array("forged\n".utf8)) } == .denied, "\(name)")
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.append(path: path, data: Array("forged\n".utf8)) } == .denied, "\(name)")
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.read(path: path) } == .denied, "\(name)")
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.remove(path: path) } == .denied, "\(name)")
        }
        // Spelled another way (relative, with `..`), it is the same file.
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: "sub/../audit.log", data: [0x41]) } == .denied)
        // Names that only begin like it are other files.
        try harness.mediator.write(path: scratch + "/audit.logbook", data: Array("mine".utf8))
        try harness.mediator.write(path: scratch + "/audit-log.txt", data: Array("mine".utf8))
        #expect(harness.scratch.contents("audit.logbook") == "mine")

        let after = try Data(contentsOf: URL(fileURLWithPath: harness.auditPath))
        #expect(after.starts(with: before), "the log was rewritten")
        let refused = try harness.entries().map(\.record).filter { $0.decision == .deny }
        #expect(refused.count == 21)
        #expect(refused.allSatisfy { $0.reason == Mediator.hostFileReason })
        try harness.audit.close()
        #expect(try AuditVerifier.verify(logPath: harness.auditPath, verifierKey: testSigner?.verifierKey).size > 0)
    }

    /// A bound database's rollback journal, write-ahead log and shared-memory index are the host's: a guest that could
    /// write into the database's folder created `app.db-journal` holding a forged first page, and SQLite replayed it
    /// when `db.query` opened the file, so a query on the granted table returned an ungranted one's rows (found by a
    /// red-team pass). Through a link to the folder, and beside the file a linked database leads to, too.
    @Test func aBoundDatabasesJournalsAreTheHosts() throws {
        let scratch = try Scratch()
        _ = try scratch.file("data/real.db", "")
        try FileManager.default.createSymbolicLink(atPath: scratch.path + "/data/app.db", withDestinationPath: "real.db")
        try FileManager.default.createSymbolicLink(atPath: scratch.path + "/alias", withDestinationPath: "data")
        let harness = try Harness(grants: Self.everything, scratch: scratch, databases: ["app": scratch.path + "/data/app.db"])
        for name in ["data/app.db-journal", "data/app.db-wal", "data/app.db-shm", "data/real.db-journal", "alias/app.db-journal",
                     "data/real.db-wal"] {
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: name, data: [0xD9, 0xD5]) } == .denied, "\(name)")
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.append(path: name, data: [0xD9]) } == .denied, "\(name)")
            #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.remove(path: name) } == .denied, "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/data/app.db-journal"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/data/real.db-journal"))
        // Other files in the folder stay the grants' to decide.
        try harness.mediator.write(path: "data/notes-journal", data: Array("mine".utf8))
    }

    /// Host files are matched by their bytes, as the file system names them: a name Swift calls equal (`é` against
    /// `e` + U+0301) is another file, neither refused nor allowed in the log's place.
    @Test func hostFilesAreMatchedByteForByte() {
        var files = HostFiles()
        files.add("/d/e\u{301}")
        #expect(files.contains("/d/e\u{301}") && files.contains("/d/e\u{301}.checkpoint"))
        #expect(!files.contains("/d/\u{E9}x"), "another file, of the log's length in bytes")
        #expect(!files.contains("/d/\u{E9}.."), "another file, whose bytes after the log's length begin with a dot")
        #expect(!files.contains("/d/\u{E9}") && !files.contains("/d/e"))
    }

    /// Reached through a symbolic link, the log is still refused: the link's target is decided on as its own path.
    @Test func aLinkToTheAuditLogDoesNotReachIt() throws {
        let harness = try Harness(grants: Self.everything)
        let link = harness.scratch.path + "/innocent.txt"
        #expect(symlink(harness.auditPath, link) == 0)
        let folderLink = harness.scratch.path + "/elsewhere"
        #expect(symlink(harness.scratch.path, folderLink) == 0)
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: link, data: Array("forged\n".utf8)) } == .denied)
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.read(path: folderLink + "/audit.log") } == .denied)
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: folderLink + "/audit.log", data: [0x41]) } == .denied)
        try harness.audit.close()
        #expect(try AuditVerifier.verify(logPath: harness.auditPath, verifierKey: testSigner?.verifierKey).size > 0)
    }

    /// The signing key a session is given is a host file too; paths are compared with their folder's links resolved.
    @Test func theSigningKeyIsAHostFile() throws {
        let scratch = try Scratch()
        let key = try scratch.file("keys/audit.key", "secret")
        #expect(symlink(scratch.path + "/keys", scratch.path + "/keylink") == 0)
        let harness = try Harness(grants: Self.everything, scratch: scratch, configure: { configuration in
            configuration.hostFiles.add(scratch.path + "/keylink/audit.key")
        })
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.read(path: key) } == .denied)
        #expect(Self.code(harness) { () throws(HostError) in try harness.mediator.write(path: key + ".tmp.9", data: [0x41]) } == .denied)
        #expect(scratch.contents("keys/audit.key") == "secret")
    }
}
