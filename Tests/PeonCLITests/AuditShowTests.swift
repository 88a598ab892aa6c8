import Foundation
import PeonAudit
import PeonTestSupport
import Testing

/// `audit show` reads a log of any size line by line: an over-long or broken line is one "not an entry" row
/// (never a crash, never the whole file in memory), and the entries around it are still shown.
@Suite struct AuditShowTests {
    @Test func anOverLongLineIsOneBadRowAndTheEntriesAroundItAreShown() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("audit.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 5, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
            try log.append(AuditRecord(run: "r1", module: "before", moduleSHA256: "", call: "fs.read", resource: "file:/a",
                                       decision: .allow), durable: true)
            try log.close()
            // Then 3 MiB without a newline's relief (past the 1 MiB line limit), a blank line, and an entry of
            // another log pasted after it.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(repeating: 0x41, count: 3 << 20) + Data("\n\n".utf8))
            let first = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first ?? ""
            try handle.write(contentsOf: Data(first.replacingOccurrences(of: "\"before\"", with: "\"after\"").utf8) + Data("\n".utf8))
            try handle.close()

            let shown = try runPeonWasm(["audit", "show", path])
            #expect(shown.status == 0, "\(shown.stderr)")
            let rows = shown.stdout.split(separator: "\n")
            #expect(rows.count == 4, "\(rows.count) rows")
            #expect(rows.contains { $0.contains("before") && $0.contains("fs.read") })
            #expect(rows.contains { $0.contains("(line 2 is not an entry)") })
            #expect(rows.contains { $0.contains("after") })
            #expect(shown.stderr.contains("1 lines are not entries"))
            #expect(shown.stdout.utf8.count < 10_000, "the over-long line was printed")
        }
    }

    /// A last line without its newline is a torn tail (no checkpoint covers it, and the next write cuts it), not an
    /// entry, even when it parses: before, a forged entry appended without a newline was shown like any other, with
    /// no warning.
    @Test func aTornLastLineIsNotShownAsAnEntryEvenWhenItParses() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("audit.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 5, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
            try log.append(AuditRecord(run: "r1", module: "honest", moduleSHA256: "", call: "fs.read", resource: "fs:/a",
                                       decision: .allow), durable: true)
            try log.close()
            let first = try #require(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first)
            let forged = first.replacingOccurrences(of: "{\"seq\":0,", with: "{\"seq\":1,")
                .replacingOccurrences(of: "\"honest\"", with: "\"forged\"")
            #expect(AuditEntry.parse(Array(forged.utf8)).map(\.record.module) == .success("forged"))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(forged.utf8))
            try handle.close()

            let shown = try runPeonWasm(["audit", "show", path])
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("honest"))
            #expect(!shown.stdout.contains("forged"), "\(shown.stdout)")
            #expect(shown.stdout.contains("(line 2 is not an entry)"), "\(shown.stdout)")
            #expect(shown.stderr.contains("1 lines are not entries"), "\(shown.stderr)")
        }
    }

    /// `--module` picks a module by its exact bytes, as every name is compared: `café` with a precomposed `é` and
    /// `café` spelled `e` + U+0301 are two modules (two files), which Swift's `==` takes for one.
    @Test func moduleFilterComparesNamesByteForByte() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("audit.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 5, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
            for (module, resource) in [("caf\u{E9}", "fs:/precomposed"), ("cafe\u{301}", "fs:/decomposed")] {
                try log.append(AuditRecord(run: "r1", module: module, moduleSHA256: "", call: "fs.read", resource: resource,
                                           decision: .allow), durable: true)
            }
            try log.close()
            let shown = try runPeonWasm(["audit", "show", path, "--module", "caf\u{E9}"])
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("fs:/precomposed"))
            #expect(!shown.stdout.contains("fs:/decomposed"), "\(shown.stdout)")
        }
    }

    @Test func aMissingLogIsOneErrorLine() throws {
        let shown = try runPeonWasm(["audit", "show", "/nonexistent/audit.jsonl"])
        #expect(shown.status != 0)
        #expect(shown.stderr.hasPrefix("peon-wasm: error: /nonexistent/audit.jsonl: cannot read the audit log"))
        #expect(shown.stderr.split(separator: "\n").count == 1)
    }
}
