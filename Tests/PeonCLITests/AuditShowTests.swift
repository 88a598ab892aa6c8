import Foundation
import PeonAudit
@testable import PeonCLI
import PeonTestSupport
import Testing

/// `audit show` reads a log of any size line by line: an over-long or broken line is one "not an entry" row
/// (never a crash, never the whole file in memory), and the entries around it are still shown.
@Suite struct AuditShowTests {
    /// A filter that matches nothing said nothing (an empty table, exit 0): `--call fs.list` is an action, the log names
    /// the call `fs.read-dir`. The note says which calls (or modules) the log holds.
    @Test func aFilterMatchingNothingSaysWhatTheLogHolds() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("audit.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 5, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
            try log.append(AuditRecord(run: "r1", module: "lister", moduleSHA256: "", call: "fs.read-dir", resource: "file:/a",
                                       decision: .allow), durable: true)
            try log.close()
            let none = try runPeonWasm(["audit", "show", path, "--call", "fs.list"])
            #expect(none.status == 0)
            #expect(none.stderr.contains("no entry matches; its calls are fs.read-dir"), "\(none.stderr)")
            let module = try runPeonWasm(["audit", "show", path, "--module", "listr"])
            #expect(module.stderr.contains("its modules are lister"), "\(module.stderr)")
            let some = try runPeonWasm(["audit", "show", path, "--call", "fs.read-dir"])
            #expect(some.stderr.isEmpty && some.stdout.contains("lister"), "\(some.stderr)")
        }
    }

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
            // The blank line is no entry either (it was skipped without a word; `verify` refuses it, exit 4).
            #expect(rows.count == 5, "\(rows.count) rows")
            #expect(rows.contains { $0.contains("before") && $0.contains("fs.read") })
            #expect(rows.contains { $0.contains("(line 2 is not an entry)") })
            #expect(rows.contains { $0.contains("(line 3 is not an entry)") })
            #expect(rows.contains { $0.contains("after") })
            #expect(shown.stderr.contains("2 lines are not entries"))
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
            #expect(shown.stderr.contains("1 line is not an entry"), "\(shown.stderr)")
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

    /// A log of five entries 2 ms apart (so their times differ), with the given resource on the last.
    private func fiveEntries(in folder: URL, lastResource: String = "fs:/e") throws -> (path: String, lines: [String]) {
        let path = folder.appendingPathComponent("audit.jsonl").path
        let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 5, count: 32))
        let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
        let entries = [("fs.read", "fs:/a"), ("fs.write", "fs:/b"), ("fs.read", "fs:/c"), ("http.send", "http://h/d"),
                       ("fs.read", lastResource)]
        for (call, resource) in entries {
            try log.append(AuditRecord(run: "r1", module: "m", moduleSHA256: "", call: call, resource: resource,
                                       decision: .allow), durable: true)
            usleep(2_000)
        }
        try log.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        return (path, lines)
    }

    /// `--call`, `--until` and `--limit` filter a local log as they filter the central tables: before, `--call` and
    /// `--until` were refused without `--from`, and `--limit` was accepted and ignored (every entry was printed).
    @Test func callUntilAndLimitFilterALocalLog() throws {
        try withTemporaryDirectory { folder in
            let (path, lines) = try fiveEntries(in: folder)
            let reads = try runPeonWasm(["audit", "show", path, "--call", "fs.read"])
            #expect(reads.status == 0, "\(reads.stderr)")
            let readRows = reads.stdout.split(separator: "\n").dropFirst()
            #expect(readRows.map { $0.contains("fs:/a") || $0.contains("fs:/c") || $0.contains("fs:/e") } == [true, true, true],
                    "\(reads.stdout)")

            // Until the third entry's own time: the two before it, not it.
            try #require(lines.count == 5, "\(lines)")
            let third = try AuditEntry.parse(Array(lines[2].utf8)).get()
            let until = try runPeonWasm(["audit", "show", path, "--until", third.time])
            #expect(until.status == 0, "\(until.stderr)")
            #expect(until.stdout.contains("fs:/a") && until.stdout.contains("fs:/b"), "\(until.stdout)")
            #expect(!until.stdout.contains("fs:/c") && !until.stdout.contains("fs:/e"), "\(until.stdout)")
            let since = try runPeonWasm(["audit", "show", path, "--since", third.time, "--until", "2999-01-01"])
            #expect(!since.stdout.contains("fs:/b") && since.stdout.contains("fs:/c") && since.stdout.contains("fs:/e"),
                    "\(since.stdout)")

            let limited = try runPeonWasm(["audit", "show", path, "--call", "fs.read", "--limit", "2"])
            #expect(limited.status == 0, "\(limited.stderr)")
            #expect(limited.stdout.split(separator: "\n").count == 3, "a header and two rows:\n\(limited.stdout)")
            #expect(limited.stdout.contains("fs:/a") && limited.stdout.contains("fs:/c") && !limited.stdout.contains("fs:/e"))
            #expect(limited.stderr.contains("showing the first 2 matching entries; more match"), "\(limited.stderr)")
            let exact = try runPeonWasm(["audit", "show", path, "--call", "fs.read", "--limit", "3"])
            #expect(exact.stdout.split(separator: "\n").count == 4 && exact.stderr.isEmpty, "\(exact.stdout)\(exact.stderr)")

            let origin = try runPeonWasm(["audit", "show", path, "--origin", "host-a"])
            #expect(origin.status == 64 && origin.stdout.isEmpty, "\(origin.status) \(origin.stdout)")
            #expect(origin.stderr.contains("--origin needs --from"), "\(origin.stderr)")
        }
    }

    /// `--since` and `--until` compare with the entries' times as text, so a time that does not exist (a 13th month,
    /// February 29th of a common year, 24:00) passed the shape check and quietly selected the wrong entries, or none.
    @Test func aTimeThatDoesNotExistIsRefused() throws {
        try withTemporaryDirectory { folder in
            let (path, _) = try fiveEntries(in: folder)
            for bad in ["2026-13-01", "2026-00-10", "2026-02-29", "2026-04-31", "2026-11-21T24:00", "2026-11-21T20:60",
                        "2026-11-21T20:05:60Z"] {
                for option in ["--since", "--until"] {
                    let result = try runPeonWasm(["audit", "show", path, option, bad])
                    #expect(result.status == 64 && result.stdout.isEmpty, "\(option) \(bad): \(result.status) \(result.stdout)")
                    #expect(result.stderr.contains("\(option) must be a UTC time that exists") && result.stderr.contains(bad),
                            "\(result.stderr)")
                }
            }
            for good in ["2028-02-29", "2000-02-29", "2026-12-31T23:59:59.999999Z", "1970-01-01T00:00"] {
                let result = try runPeonWasm(["audit", "show", path, "--since", good])
                #expect(result.status == 0, "\(good): \(result.stderr)")
            }
            #expect(!AuditCommand.Show.isUTCTime("1900-02-29") && AuditCommand.Show.isUTCTime("1600-02-29"))
        }
    }

    /// `--json` prints every field in full (the table cuts long values with `…`): each line is the entry's line
    /// as the log holds it, except that a character a terminal would act on is written as a JSON escape of itself,
    /// so the line still parses to the same entry.
    @Test func jsonPrintsEachEntryInFullAndNothingATerminalWouldActOn() throws {
        try withTemporaryDirectory { folder in
            let long = "fs:/data/reports/" + String(repeating: "quarterly-", count: 12) + "summary.md"
            // Invisible characters too (zero-width space, soft hyphen, byte order mark, a tag character past the BMP), and
            // spaces that print like U+0020 but are not (no-break, ideographic, thin):
            // `pass\u{200B}wd` looked exactly like `passwd` (found by a red-team pass).
            let invisible: [Character] = ["\u{200B}", "\u{AD}", "\u{FEFF}", "\u{E0041}", "\u{2060}", "\u{FE0F}", "\u{34F}", "\u{17B4}",
                                          "\u{180B}", "\u{2065}", "\u{E0080}", "\u{2800}", "\u{E000}", "\u{A0}", "\u{3000}", "\u{2009}"]
            let hostile = "fs:/x\u{9B}31m\u{202E}gnp.exe" + String(invisible)
            let (path, lines) = try fiveEntries(in: folder, lastResource: hostile)
            let table = try runPeonWasm(["audit", "show", path])
            #expect(!table.stdout.contains("\u{9B}") && !table.stdout.contains("\u{202E}"))
            #expect(!table.stdout.unicodeScalars.contains { [0x200B, 0xAD, 0xFEFF, 0xE0041, 0x2060, 0xFE0F, 0x34F, 0x17B4, 0x180B, 0x2065,
                                                             0xE0080, 0x2800, 0xE000, 0xA0, 0x3000, 0x2009].contains($0.value) },
                    "\(table.stdout)")

            let shown = try runPeonWasm(["audit", "show", path, "--json"])
            #expect(shown.status == 0, "\(shown.stderr)")
            let printed = shown.stdout.split(separator: "\n").map(String.init)
            #expect(printed.count == 5, "\(shown.stdout)")
            #expect(Array(printed.prefix(4)) == Array(lines.prefix(4)), "a line with nothing to escape is the log's own")
            #expect(!shown.stdout.contains("\u{9B}") && !shown.stdout.contains("\u{202E}"), "\(shown.stdout)")
            #expect(printed.last?.contains("\\u009B31m\\u202Egnp.exe\\u200B\\u00AD\\uFEFF\\uDB40\\uDC41\\u2060\\uFE0F\\u034F\\u17B4\\u180B\\u2065\\uDB40\\uDC80\\u2800\\uE000\\u00A0\\u3000\\u2009") == true,
                    "\(printed.last ?? "")")
            try #require(lines.count == 5, "\(lines)")
            let reparsed = try AuditEntry.parse(Array((printed.last ?? "").utf8)).get()
            let original = try AuditEntry.parse(Array(lines[4].utf8)).get()
            #expect(reparsed == original, "the escaped line is the same entry")

            // A value the table cuts is whole in JSON.
            let longFolder = folder.appendingPathComponent("long", isDirectory: true)
            try FileManager.default.createDirectory(at: longFolder, withIntermediateDirectories: false)
            let (longPath, _) = try fiveEntries(in: longFolder, lastResource: long)
            let cut = try runPeonWasm(["audit", "show", longPath, "--call", "fs.read"])
            #expect(!cut.stdout.contains(long))
            let whole = try runPeonWasm(["audit", "show", longPath, "--call", "fs.read", "--json", "--limit", "5"])
            #expect(whole.stdout.contains(long), "\(whole.stdout)")
            #expect(whole.stdout.split(separator: "\n").allSatisfy { (try? AuditEntry.parse(Array($0.utf8)).get()) != nil })
        }
    }

    @Test func aMissingLogIsOneErrorLine() throws {
        let shown = try runPeonWasm(["audit", "show", "/nonexistent/audit.jsonl"])
        #expect(shown.status != 0)
        #expect(shown.stderr.hasPrefix("peon-wasm: error: /nonexistent/audit.jsonl: cannot read the audit log"))
        #expect(shown.stderr.split(separator: "\n").count == 1)
    }
}
