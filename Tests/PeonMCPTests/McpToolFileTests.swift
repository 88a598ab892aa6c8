import Foundation
import PeonTestSupport
import Testing

/// Threat: `peon-wasm mcp` serves several tools from one process, and a tool's grants may cover a folder that holds
/// another tool's grants (or its own). Grants reload while the server runs, so a tool that could write them would
/// widen its own or another tool's rights. No call of any tool reaches any served tool's grants or module.
@Suite struct McpToolFileTests {
    @Test func noToolReachesAnyToolsGrantsOrModule() async throws {
        try await withTemporaryDirectory { directory in
            try writeEchoGrants(in: directory)
            let reader = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/reader.wat").path
            try Data("""
                module = "reader"
                [tool]
                wasm = "\(reader)"
                description = "Reads a file."
                [[fs]]
                paths = ["./**", "\(reader)"]
                allow = ["read"]
                """.utf8).write(to: directory.appendingPathComponent("reader.toml"))
            try Data("mine".utf8).write(to: directory.appendingPathComponent("notes.txt"))
            let targets = ["notes.txt", "echo.toml", "reader.toml", reader,
                           repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/echo.wat").path]
            var lines = [McpStdioEndTests.script(requests: 0).trimmingCharacters(in: .newlines)]
            for (index, target) in targets.enumerated() {
                lines.append(#"{"jsonrpc":"2.0","id":\#(index + 10),"method":"tools/call","params":{"name":"reader","arguments":{"input":"\#(target)"}}}"#)
            }
            let input = lines.joined(separator: "\n") + "\n"
            let result: CommandResult = try await withCheckedThrowingContinuation { continuation in
                Thread {
                    continuation.resume(with: Result {
                        try runPeonWasm(["mcp", "reader.toml", "echo.toml"], stdin: input, directory: directory, timeout: 60)
                    })
                }.start()
            }
            #expect(result.status == 0, "\(result.stderr)")
            var answers: [Int: (text: String, isError: Bool)] = [:]
            for line in result.stdout.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let id = object["id"] as? Int, let answer = object["result"] as? [String: Any],
                      let text = (answer["content"] as? [[String: Any]])?.first?["text"] as? String
                else { continue }
                answers[id] = (text, answer["isError"] as? Bool ?? false)
            }
            #expect(answers[10]?.text == "mine" && answers[10]?.isError == false, "\(answers[10] as Any)")
            for index in 1..<targets.count {
                let answer = answers[index + 10]
                #expect(answer?.isError == true && answer?.text.contains("the host's own files") == true,
                        "\(targets[index]): \(answer as Any)")
            }
        }
    }
}
