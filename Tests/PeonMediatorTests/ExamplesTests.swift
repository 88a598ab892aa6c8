import Foundation
import Testing
@testable import PeonMediator

/// `policies/examples/` holds scenario-named grants, each with a decision table
/// (`MODULE ACTION RESOURCE [ARGS...] => allow|deny`). Every row is decided by the real policy engine
/// on the compiled grants, and an example without a table (or a table without grants) fails.
@Suite struct ExamplesTests {
    static let folder = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("policies/examples").path

    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return Set(files.map { ($0 as NSString).deletingPathExtension }).sorted()
    }

    @Test func everyExampleHasGrantsAndADecisionTable() {
        #expect(Self.names.count >= 5)
        for name in Self.names {
            #expect(FileManager.default.fileExists(atPath: "\(Self.folder)/\(name).toml"), "\(name) has no .toml")
            #expect(FileManager.default.fileExists(atPath: "\(Self.folder)/\(name).decisions"), "\(name) has no decision table")
        }
    }

    @Test(arguments: ExamplesTests.names)
    func everyRowOfTheDecisionTableHolds(name: String) throws {
        let snapshot = try PolicySnapshot.load(PolicySources(grantsPath: "\(Self.folder)/\(name).toml"), defaultModule: "agent")
        let table = try String(contentsOfFile: "\(Self.folder)/\(name).decisions", encoding: .utf8)
        var rows = 0
        for (number, line) in table.split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            let sides = line.components(separatedBy: "=>")
            let words = sides[0].split(separator: " ").map(String.init)
            try #require(sides.count == 2 && words.count >= 3, "\(name).decisions:\(number + 1): malformed row")
            let expected = sides[1].trimmingCharacters(in: .whitespaces)
            let object = try #require(policyObject(action: words[1], resource: words[2], workingDirectory: Self.folder))
            let explanation = explainPolicy(snapshot: snapshot, module: words[0], action: words[1], object: object,
                                            arguments: Array(words.dropFirst(3)))
            #expect((explanation.isAllowed ? "allow" : "deny") == expected,
                    "\(name).decisions:\(number + 1): \(line)\n\(explanation.lines.joined(separator: "\n"))")
            rows += 1
        }
        #expect(rows >= 5, "a table decides at least five requests, denials included")
    }
}
