import Foundation
import Testing
@testable import PeonMediator

/// `grants check` must tell a user which imports their grants can never satisfy and which grants a
/// module cannot use; `policy explain` must say why a request is refused.
@Suite struct GrantsToolsTests {
    static let grants = """
        module = "m"

        [[fs]]
        paths = ["/srv/**"]
        allow = ["read"]

        [[exec]]
        program = "/usr/bin/wc"
        args = ["-l", "*"]
        """

    @Test func checkListsEachHostImportAndWarnsAboutUnusableGrants() throws {
        let grants = try GrantsParser.parse(Self.grants, file: "g.toml", baseDirectory: "/")
        let report = checkGrants(imports: [
            (module: "wasi_snapshot_preview1", name: "fd_write"),
            (module: "peon:host/fs@0.1.0", name: "read"),
            (module: "peon:host/fs@0.1.0", name: "write"),
            (module: "peon:host/log@0.1.0", name: "log"),
        ], grants: grants)
        #expect(report.imports.map(\.importName) == ["peon:host/fs@0.1.0#read", "peon:host/fs@0.1.0#write", "peon:host/log@0.1.0#log"])
        #expect(report.imports.map(\.status) == ["granted", "not granted (every call will be denied)", "no grant needed"])
        #expect(report.imports[0].grants == ["fs[0] (g.toml:3)"])
        #expect(report.warnings == ["grant exec[0] (g.toml:7) allows exec.run, which the module never calls"])
        #expect(!report.hasUnknownImports)
    }

    @Test func checkFlagsUnknownHostImports() throws {
        let grants = try GrantsParser.parse(Self.grants, file: "g.toml", baseDirectory: "/")
        let report = checkGrants(imports: [(module: "peon:host/fs@0.1.0", name: "chmod")], grants: grants)
        #expect(report.hasUnknownImports)
        #expect(report.imports.first?.status == "unknown import")
    }

    /// A model of another shape than grants compile to (`p = sub, obj, act` beside grants) is named as the problem; the
    /// error blamed a grants line ("g.toml:3: 'p' rule has 4 values"), where the user wrote no rule.
    @Test func aModelOfAnotherShapeThanGrantsIsNamed() throws {
        let grants = try GrantsParser.parse(Self.grants, file: "g.toml", baseDirectory: "/")
        let model = """
            [request_definition]
            r = sub, obj, act
            [policy_definition]
            p = sub, obj, act
            [policy_effect]
            e = some(where (p.eft == allow))
            [matchers]
            m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
            """
        do {
            _ = try PolicySnapshot.build(model: model, modelSource: "rbac.conf", policy: "", policySource: "p.csv",
                                         compiled: CompiledGrants(grants))
            Issue.record("a model of three fields loaded with grants")
        } catch {
            #expect(error.description.hasPrefix("rbac.conf: policy_definition p = sub, obj, act has 3 fields"), "\(error)")
            #expect(error.description.contains("docs/grants.md#your-own-model"))
        }
        // The built-in shape with `eft` (a model with deny rules) still loads.
        let withEffect = BuiltinModel.text.replacingOccurrences(of: "p = sub, obj, act, args", with: "p = sub, obj, act, args, eft")
        #expect(withEffect != BuiltinModel.text)
        _ = try PolicySnapshot.build(model: withEffect, modelSource: "deny.conf", policy: "", policySource: "p.csv",
                                     compiled: CompiledGrants(grants))
    }

    /// The audit log names host calls (`fs.read-dir`); policy decides actions (`fs.list`). A call name given to explain is
    /// answered with the action it asks about, not "not an action" alone.
    @Test func aCallNameIsAnsweredWithItsAction() {
        guard case .failure(let problem) = policyObjectOrReason(action: "fs.read-dir", resource: "/srv", workingDirectory: "/") else {
            Issue.record("fs.read-dir was taken for an action")
            return
        }
        #expect(problem.message.contains("is a host call") && problem.message.contains("fs.list"), "\(problem.message)")
    }

    /// The `db.open` line every `[[db]]` grant implies has no grant of its own: it is named as implied, not as "not :".
    @Test func theImpliedDatabaseOpenLineIsNamed() throws {
        let grants = "module = \"m\"\n[[db]]\ndatabase = \"tickets\"\ntables = [\"tickets\"]\nallow = [\"read\"]\n"
        let snapshot = try PolicySnapshot.build(grants: try GrantsParser.parse(grants, file: "g.toml", baseDirectory: "/"))
        let denied = explainPolicy(snapshot: snapshot, module: "m", action: "db.read", object: "db:tickets", arguments: [])
        #expect(!denied.lines.contains { $0.hasPrefix("  not :") }, "\(denied.lines)")
        #expect(denied.lines.contains { $0.hasPrefix("  not the implied db.open line for db:tickets") }, "\(denied.lines)")
        // A decision by it cites the grant that implies it, not `grants:0` (found by a newcomer).
        let opened = explainPolicy(snapshot: snapshot, module: "m", action: "db.open", object: "db:tickets", arguments: [])
        #expect(opened.lines.contains("allow: allowed by p, m, db:tickets, db.open, * (g.toml:2)"), "\(opened.lines)")
    }

    /// A grant that matches but is overruled by a deny line of the operator's policy is said to be overruled by it, not
    /// "refused by the model's matcher" (found by a newcomer).
    @Test func aGrantOverruledByADenyLineIsSaidToBe() throws {
        let model = """
            [request_definition]
            r = sub, obj, act, args

            [policy_definition]
            p = sub, obj, act, args, eft

            [policy_effect]
            e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

            [matchers]
            m = r.sub == p.sub && peonGlob(r.obj, p.obj) && r.act == p.act && peonArgs(r.args, p.args)
            """
        let grants = try GrantsParser.parse("module = \"m\"\n[[http]]\nurls = [\"https://h.com/**\"]\nmethods = [\"GET\"]\n",
                                            file: "g.toml", baseDirectory: "/")
        let snapshot = try PolicySnapshot.build(model: model, modelSource: "m.conf", policy: "p, m, http:https://h.com/admin, http.GET, *, deny\n",
                                                policySource: "p.csv", compiled: CompiledGrants(grants))
        let denied = explainPolicy(snapshot: snapshot, module: "m", action: "http.GET", object: "http:https://h.com/admin", arguments: [])
        #expect(!denied.isAllowed)
        #expect(denied.lines.contains { $0.contains("matches, but the deny line above overrules it") }, "\(denied.lines)")
        #expect(!denied.lines.contains { $0.contains("model's matcher") }, "\(denied.lines)")
    }

    @Test func explainNamesTheDecidingGrantOrWhyEachGrantMisses() throws {
        let snapshot = try PolicySnapshot.build(grants: try GrantsParser.parse(Self.grants, file: "g.toml", baseDirectory: "/"))
        let allowed = explainPolicy(snapshot: snapshot, module: "m", action: "fs.read", object: "fs:/srv/a.txt", arguments: [])
        #expect(allowed.isAllowed)
        #expect(allowed.lines.contains("allow: allowed by p, m, fs:/srv/**, fs.read, * (g.toml:3)"))
        let denied = explainPolicy(snapshot: snapshot, module: "m", action: "fs.write", object: "fs:/etc/x", arguments: [])
        #expect(!denied.isAllowed)
        #expect(denied.lines.contains("  not fs[0] (g.toml:3): it allows fs.read, not fs.write; fs:/etc/x does not match fs:/srv/**"))
        let wrongArgs = explainPolicy(snapshot: snapshot, module: "m", action: "exec.run", object: "exec:/usr/bin/wc", arguments: ["-c", "x"])
        #expect(wrongArgs.lines.last == "  not exec[0] (g.toml:7): the arguments 2:-c x do not match 2:-l *")
        let none = explainPolicy(snapshot: snapshot, module: "m", action: "http.GET", object: "http:https://x/", arguments: [])
        #expect(none.lines.last == "  no grant mentions http at all (default deny)")
    }

    /// A grant allowing two actions compiles to a policy line per action, and a denial listed it once per line
    /// ("not fs[0]: it allows fs.read ...", "not fs[0]: it allows fs.list ..."): one line per grant and path now.
    @Test func aGrantWithSeveralActionsIsExplainedOnce() throws {
        let grants = "module = \"m\"\n[[fs]]\npaths = [\"/data/**\", \"/srv/x\"]\nallow = [\"read\", \"list\"]\n"
        let snapshot = try PolicySnapshot.build(grants: try GrantsParser.parse(grants, file: "g.toml", baseDirectory: "/"))
        let denied = explainPolicy(snapshot: snapshot, module: "m", action: "fs.write", object: "fs:/data/x", arguments: [])
        #expect(denied.lines.filter { $0.hasPrefix("  not ") } == [
            "  not fs[0] (g.toml:2): it allows fs.read and fs.list, not fs.write",
            "  not fs[0] (g.toml:2): it allows fs.read and fs.list, not fs.write; fs:/data/x does not match fs:/srv/x",
        ], "\(denied.lines)")
    }
}
