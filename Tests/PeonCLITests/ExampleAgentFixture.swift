import Foundation
import PeonTestSupport
import Testing

/// One example agent copied into a temporary folder laid out like the repository, which is also the
/// working folder of every run:
///
///     modules/NAME/          a copy of the example's folder (module, fixtures, out/)
///     policies/NAME.toml     a copy of its committed grants; their relative paths
///                            (`../modules/NAME/...`) resolve against this copy, not the repository
///     policies/*.toml        grants a test derives from them (narrowed, or naming the test server)
///     audit-*.jsonl          one audit log per run
///     audit.key              the key that signs their checkpoints (not the user's own)
///
/// Runs pass relative paths as the README does (`modules/NAME/...`), so they resolve inside the
/// temporary folder, and nothing outside it is changed.
struct ExampleAgent {
    let name: String
    let folder: URL
    let module: URL

    /// Copies `modules/NAME` and `policies/NAME.toml` into `folder`; `module` is the `.wasm` file's name.
    init(_ name: String, module file: String, in folder: URL) throws {
        self.name = name
        self.folder = folder
        let manager = FileManager.default
        let modules = folder.appendingPathComponent("modules", isDirectory: true)
        let policies = folder.appendingPathComponent("policies", isDirectory: true)
        try manager.createDirectory(at: modules, withIntermediateDirectories: true)
        try manager.createDirectory(at: policies, withIntermediateDirectories: true)
        try manager.copyItem(at: repositoryRoot.appendingPathComponent("modules/\(name)"),
                             to: modules.appendingPathComponent(name))
        // Start from an empty out/: a manual run in the working tree may have left outputs there
        // (it is ignored by git), and a test must see only what its own run writes.
        let outputs = modules.appendingPathComponent("\(name)/out", isDirectory: true)
        if manager.fileExists(atPath: outputs.path) {
            try manager.removeItem(at: outputs)
            try manager.createDirectory(at: outputs, withIntermediateDirectories: true)
        }
        try manager.copyItem(at: repositoryRoot.appendingPathComponent("policies/\(name).toml"),
                             to: policies.appendingPathComponent("\(name).toml"))
        module = modules.appendingPathComponent("\(name)/\(file)")
    }

    /// A path inside the temporary folder, e.g. `file("modules/NAME/out/summary.md")`.
    func file(_ relative: String) -> URL { folder.appendingPathComponent(relative) }

    /// The committed grants file's copy.
    var grants: URL { folder.appendingPathComponent("policies/\(name).toml") }

    /// The committed grants' text.
    func grantsText() throws -> String { try String(contentsOf: grants, encoding: .utf8) }

    /// Writes `text` as `policies/FILE` beside the committed grants, so relative paths resolve the same way.
    func writeGrants(_ text: String, as file: String) throws -> URL {
        let url = folder.appendingPathComponent("policies/\(file)")
        try Data(text.utf8).write(to: url)
        return url
    }

    /// The committed grants with the table `header` (e.g. `[[http]]`) whose text contains `marker`
    /// removed, written beside them. Fails the test unless exactly one table matches.
    func narrowedGrants(removing header: String, containing marker: String = "",
                        from text: String? = nil) throws -> URL {
        let source = try text ?? grantsText()
        var blocks: [[Substring]] = [[]]
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("[") { blocks.append([]) }
            blocks[blocks.count - 1].append(line)
        }
        let matching = blocks.indices.filter { index in
            blocks[index].first.map { $0.trimmingCharacters(in: .whitespaces) == header } == true
                && (marker.isEmpty || blocks[index].joined(separator: "\n").contains(marker))
        }
        try #require(matching.count == 1, "\(header) containing \(marker) is in \(matching.count) tables of \(name)'s grants")
        blocks.remove(at: matching[0])
        let narrowed = blocks.map { $0.joined(separator: "\n") }.filter { !$0.isEmpty }.joined(separator: "\n")
        try #require(narrowed != source)
        return try writeGrants(narrowed, as: "\(name)-narrowed.toml")
    }

    /// The checkpoint signing key of this folder's runs, so no run touches the user's own key.
    var auditKey: URL { folder.appendingPathComponent("audit.key") }

    /// Runs the agent with `grants` and `input` (plus `extra` options), logging to a fresh audit log.
    func run(grants: URL, input: String? = nil, _ extra: [String] = [], timeout: TimeInterval = 120) throws -> AgentRun {
        let audit = folder.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
        var arguments = ["run", module.path, "--grants", grants.path, "--audit", audit.path, "--audit-key", auditKey.path]
        if let input { arguments += ["--input", input] }
        let result = try runPeonWasm(arguments + extra, directory: folder, timeout: timeout)
        return AgentRun(result: result, audit: audit, auditKey: auditKey)
    }
}

/// One run's result and its audit log.
struct AgentRun {
    let result: CommandResult
    let audit: URL
    let auditKey: URL

    /// The audit log's entries, in order, as JSON objects.
    func entries() throws -> [[String: Any]] {
        let text = try String(contentsOf: audit, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    /// The decision entries (those with a `decision`) for `call`, in order.
    func decisions(call: String) throws -> [[String: Any]] {
        try entries().filter { $0["call"] as? String == call && $0["decision"] is String }
    }

    /// `(decision, resource)` of every decision entry for `call`, in order.
    func verdicts(call: String) throws -> [Verdict] {
        try decisions(call: call).map { Verdict($0["decision"] as? String ?? "", $0["resource"] as? String ?? "") }
    }

    /// The outcome of the run (`run.end` entry's `outcome`).
    func runOutcome() throws -> String? {
        try entries().first { $0["call"] as? String == "run.end" }?["outcome"] as? String
    }

    /// `peon-wasm audit verify` on this run's log, checking its checkpoint against the run's key.
    func verify() throws -> CommandResult {
        try runPeonWasm(["audit", "verify", audit.path, "--audit-key", auditKey.path])
    }

    /// Expects the log to verify, every entry of it, its checkpoint signed by the run's key.
    func expectVerified(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let verification = try verify()
        let count = try entries().count
        #expect(verification.status == 0, "\(verification.stderr)", sourceLocation: sourceLocation)
        #expect(verification.stdout.hasPrefix("ok: \(count) entries, root "), "\(verification.stdout)",
                sourceLocation: sourceLocation)
        #expect(verification.stdout.contains("checkpoint: size \(count),"), "\(verification.stdout)",
                sourceLocation: sourceLocation)
    }
}

/// A decision and the resource it was about, comparable in `#expect`.
struct Verdict: Equatable, CustomStringConvertible {
    let decision: String
    let resource: String
    init(_ decision: String, _ resource: String) {
        self.decision = decision
        self.resource = resource
    }
    static func allow(_ resource: String) -> Verdict { Verdict("allow", resource) }
    static func deny(_ resource: String) -> Verdict { Verdict("deny", resource) }
    var description: String { "\(decision) \(resource)" }
}

/// Every entry under `folder` with its bytes (`/` for a folder, `-> TARGET` for a symbolic link), for
/// "nothing changed on disk" checks.
func snapshot(of folder: URL) throws -> [String: Data] {
    var result: [String: Data] = [:]
    let manager = FileManager.default
    guard let walker = manager.enumerator(atPath: folder.path) else { return result }
    while let relative = walker.nextObject() as? String {
        let path = folder.appendingPathComponent(relative).path
        if let target = try? manager.destinationOfSymbolicLink(atPath: path) {
            result[relative] = Data(("-> " + target).utf8)
        } else {
            var isFolder: ObjCBool = false
            _ = manager.fileExists(atPath: path, isDirectory: &isFolder)
            result[relative] = isFolder.boolValue ? Data("/".utf8) : try Data(contentsOf: URL(fileURLWithPath: path))
        }
    }
    return result
}
