import Foundation
import Testing
import PeonMediator

/// The `[tool]` table of a grants file (served by `peon-wasm mcp`): parsed strictly, errors in the
/// grants parser's `FILE:LINE: KEY: MESSAGE` style, schemas checked to be JSON objects of type object.
@Suite struct ToolTableTests {
    @Test func aToolTableWithAnInlineSchemaParses() throws {
        let grants = try GrantsParser.parse("""
            module = "summarizer"
            [tool]
            wasm = "../modules/s/s.wasm"
            description = "Summarizes a folder."
            input-schema = { type = "object", properties = { folder = { type = "string" } }, required = ["folder"] }
            """, file: "policies/s.toml", baseDirectory: "/repo/policies")
        let tool = try #require(grants.tool)
        #expect(tool.wasm == "/repo/modules/s/s.wasm")
        #expect(tool.description == "Summarizes a folder.")
        #expect(tool.source == GrantSource(file: "policies/s.toml", line: 2))
        let schema = try #require(tool.inputSchema)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(schema.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "object")
        #expect(object["required"] as? [String] == ["folder"])
    }

    @Test func aSchemaFileIsReadRelativeToTheGrantsFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peon-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"type": "object", "properties": {"q": {"type": "string"}}}"#.utf8)
            .write(to: folder.appendingPathComponent("schema.json"))
        let grants = try GrantsParser.parse("""
            module = "m"
            [tool]
            wasm = "/abs/m.wasm"
            description = "d"
            input-schema = "schema.json"
            """, file: "m.toml", baseDirectory: folder.path)
        #expect(grants.tool?.wasm == "/abs/m.wasm")
        #expect(grants.tool?.inputSchema == #"{"properties":{"q":{"type":"string"}},"type":"object"}"#)
    }

    @Test func grantsWithoutAToolTableHaveNoTool() throws {
        #expect(try GrantsParser.parse("module = \"m\"\n", file: "m.toml", baseDirectory: "/").tool == nil)
    }

    /// Each case: the `[tool]` lines after `module = "m"`, the expected line, key and a phrase of the message.
    @Test(arguments: [
        ("[tool]\ndescription = \"d\"\n", 2, "tool", "missing key `wasm`"),
        ("[tool]\nwasm = \"m.wasm\"\n", 2, "tool", "missing key `description`"),
        ("[tool]\nwasm = \"m.wasm\"\ndescription = \"  \"\n", 4, "tool.description", "is empty"),
        ("[tool]\nwasm = \"\"\ndescription = \"d\"\n", 3, "tool.wasm", "empty path"),
        ("[tool]\nwasm = 3\ndescription = \"d\"\n", 3, "tool.wasm", "expected a string"),
        ("[tool]\nwasm = \"m.wasm\"\ndescription = \"d\"\nname = \"x\"\n", 5, "tool.name", "unknown key"),
        ("[tool]\nwasm = \"m.wasm\"\ndescription = \"d\"\ninput-schema = { type = \"string\" }\n", 5, "tool.input-schema", "type = \"object\""),
        ("[tool]\nwasm = \"m.wasm\"\ndescription = \"d\"\ninput-schema = 7\n", 5, "tool.input-schema", "inline table or the path"),
        ("[tool]\nwasm = \"m.wasm\"\ndescription = \"d\"\ninput-schema = \"missing.json\"\n", 5, "tool.input-schema", "cannot read the schema file"),
        ("tool = \"x\"\n", 2, "tool", "expected a table"),
    ])
    func mistakesInTheToolTableNameFileLineAndKey(lines: String, line: Int, key: String, phrase: String) {
        do {
            _ = try GrantsParser.parse("module = \"m\"\n" + lines, file: "policies/m.toml", baseDirectory: "/nonexistent")
            Issue.record("expected an error for \(lines)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.key == key, "\(error)")
            #expect(error.message.contains(phrase), "\(error)")
            #expect(error.description.hasPrefix("policies/m.toml:\(line): "))
        }
    }
}
