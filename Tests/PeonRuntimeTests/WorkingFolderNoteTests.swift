import PeonMediator
@testable import PeonRuntime
import Testing

/// The note a run prints once when a denied relative path would have been granted had `peon-wasm` run in another
/// folder: a module's relative paths resolve against the working folder, a grants file's against its own folder.
@Suite struct WorkingFolderNoteTests {
    static let grants = """
        module = "summarizer"
        [[fs]]
        paths = ["/srv/app/modules/summarizer/reports/**"]
        allow = ["read", "list"]
        [[fs]]
        paths = ["/srv/sandbox/**"]
        allow = ["write"]
        """

    @Test func aPathGrantedFromAnotherFolderIsNamed() throws {
        let grants = try GrantsParser.parse(Self.grants, file: "/srv/app/policies/g.toml", baseDirectory: "/srv/app/policies")
        let note = AgentSession.workingFolderNote(object: "fs:/tmp/nc/modules/summarizer/reports/q3.md", working: "/tmp/nc",
                                                  grantsFolder: "/srv/app/policies", grants: grants)
        #expect(note?.contains("the same relative path from /srv/app would be granted") == true, "\(note ?? "nil")")
    }

    /// A path that only falls into a `**` (a module probing `policies/x.toml` under a sandbox grant) is no mix-up; a
    /// path outside the working folder or one that no folder would grant get no note either.
    @Test(arguments: ["fs:/tmp/nc/policies/g.toml", "fs:/etc/passwd", "fs:/tmp/nc/modules/other/x", "http:https://h/x"])
    func otherDenialsGetNoNote(object: String) throws {
        let grants = try GrantsParser.parse(Self.grants, file: "/srv/app/policies/g.toml", baseDirectory: "/srv/app/policies")
        #expect(AgentSession.workingFolderNote(object: object, working: "/tmp/nc", grantsFolder: "/srv/app/policies",
                                               grants: grants) == nil)
    }
}
