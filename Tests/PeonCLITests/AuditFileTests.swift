import Foundation
import PeonAudit
@testable import PeonCLI
import PeonTestSupport
import Testing

/// Threat: someone who can change the files beside an audit log (but has not got the signing key) makes a run
/// sign a rewritten history, stall, write through a link, or print a forged checkpoint; and a run whose log
/// could not be completed reports success.
@Suite("audit files beside the log", .serialized)
struct AuditFileTests {
    /// Runs `modules/hello/hello.wat` with `--audit LOG` and the signing key under `folder/cfg`.
    static func hello(_ folder: URL, log: URL, extra: [String] = []) throws -> CommandResult {
        try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log.path] + extra,
                        environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
    }

    @Test("audit key --name names a new key; asked of a key already named otherwise it refuses (exit 64) rather than print that key")
    func keyNameIsHonouredOrRefused() throws {
        try withTemporaryDirectory { folder in
            let key = folder.appendingPathComponent("audit.key").path
            let created = try runPeonWasm(["audit", "key", "--audit-key", key, "--name", "host-a"])
            #expect(created.status == 0 && created.stdout.hasPrefix("host-a+"), "\(created.stdout)\(created.stderr)")
            let again = try runPeonWasm(["audit", "key", "--audit-key", key, "--name", "host-a"])
            #expect(again.status == 0 && again.stdout == created.stdout)
            let other = try runPeonWasm(["audit", "key", "--audit-key", key, "--name", "host-b"])
            #expect(other.status == 64 && other.stdout.isEmpty, "\(other.stdout)")
            #expect(other.stderr.hasPrefix("peon-wasm: error: ") && other.stderr.contains("'host-a', not 'host-b'")
                    && other.stderr.split(separator: "\n", omittingEmptySubsequences: false).count == 2, "\(other.stderr)")
            #expect(try runPeonWasm(["audit", "key", "--audit-key", key]).stdout == created.stdout)
            // A name no key can carry is the command line's fault (64), not a key problem (11), and creates nothing.
            let fresh = folder.appendingPathComponent("fresh.key").path
            for name in ["", "a b", "a+b", "x\u{1b}y"] {
                let refused = try runPeonWasm(["audit", "key", "--audit-key", fresh, "--name", name])
                #expect(refused.status == 64 && refused.stderr.split(separator: "\n").count == 1, "\(name): \(refused.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: fresh))
        }
    }

    /// A verifier key file saved by a Windows editor (a UTF-8 byte order mark, CRLF) is the key it shows; it was
    /// refused as a bad key (exit 11) because the mark was glued to the key's name.
    @Test("a verifier key file with a byte order mark and CRLF verifies")
    func aVerifierKeyFileWithAByteOrderMarkVerifies() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("bom-key.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let printed = try runPeonWasm(["audit", "key"], environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(printed.status == 0, "\(printed.stderr)")
            let keyFile = folder.appendingPathComponent("host.pub")
            try Data(("\u{FEFF}" + printed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "\r\n").utf8).write(to: keyFile)
            let verified = try runPeonWasm(["audit", "verify", log.path, "--key", keyFile.path])
            #expect(verified.status == 0, "\(verified.stderr)")
            try Data(("\u{FEFF}\u{FEFF}" + printed.stdout).utf8).write(to: keyFile)
            let twice = try runPeonWasm(["audit", "verify", log.path, "--key", keyFile.path])
            #expect(twice.status == 11 && twice.stderr.contains("two UTF-8 byte order marks"), "\(twice.stderr)")
        }
    }

    /// A newcomer's mistyped path: every `audit` command names the missing file and says to check the path, with
    /// exit 2 (cannot be read); `prove` and `consistency` used to answer "no checkpoint" (exit 7) and advise
    /// `--refresh`, which then failed on the same missing log, and `verify` quoted strerror with no advice.
    @Test("a mistyped log, checkpoint or key path is named as missing, with what to do")
    func aMistypedPathSaysCheckThePath() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let missing = folder.appendingPathComponent("audti.jsonl").path
            for command in [["verify", missing], ["show", missing], ["prove", missing, "0"], ["consistency", missing, "1"]] {
                let result = try runPeonWasm(["audit"] + command,
                                             environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
                #expect(result.status == 2, "audit \(command[0]): \(result.stderr)")
                #expect(result.stderr.hasPrefix("peon-wasm: error: \(missing): "), "audit \(command[0]): \(result.stderr)")
                #expect(result.stderr.contains("no such"), "audit \(command[0]): \(result.stderr)")
                #expect(result.stderr.contains("check the path"), "audit \(command[0]): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "audit \(command[0]): \(result.stderr)")
            }
            let keptCheckpoint = folder.appendingPathComponent("kept.checkpoint").path
            let checkpoint = try runPeonWasm(["audit", "verify", log.path, "--checkpoint", keptCheckpoint],
                                             environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(checkpoint.status == 7, "\(checkpoint.stderr)")
            #expect(checkpoint.stderr.contains("no such checkpoint file (given with --checkpoint); check the path"), "\(checkpoint.stderr)")
            let keyFile = folder.appendingPathComponent("host-a.pub").path
            let key = try runPeonWasm(["audit", "verify", log.path, "--key", keyFile])
            #expect(key.status == 11, "\(key.stderr)")
            #expect(key.stderr.hasPrefix("peon-wasm: error: \(keyFile): no such file"), "\(key.stderr)")
            // Sizes in the wrong order, or past the log, say what to give instead.
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            let swapped = try runPeonWasm(["audit", "consistency", log.path, "3", "1"], environment: environment)
            #expect(swapped.status == 13, "\(swapped.stderr)")
            #expect(swapped.stderr.contains("give the smaller size first"), "\(swapped.stderr)")
            let past = try runPeonWasm(["audit", "consistency", log.path, "1", "500"], environment: environment)
            #expect(past.status == 13, "\(past.stderr)")
            #expect(past.stderr.contains("give a new size of at most"), "\(past.stderr)")
        }
    }

    /// A checkpoint that is there but cannot be read (a folder, a FIFO) is exit 2, "cannot be read", as the table in
    /// docs/cli.md says; `verify` and `prove` answered 8, "not a well-formed signed note" (found by a red-team pass).
    @Test("a checkpoint that cannot be read is exit 2 for verify and prove")
    func anUnreadableCheckpointIsExit2() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let checkpoint = log.path + ".checkpoint"
            try FileManager.default.removeItem(atPath: checkpoint)
            try FileManager.default.createDirectory(atPath: checkpoint, withIntermediateDirectories: false)
            let fifo = folder.appendingPathComponent("fifo.checkpoint").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            for command in [["verify", log.path], ["prove", log.path, "0"], ["verify", log.path, "--checkpoint", fifo]] {
                let result = try runPeonWasm(["audit"] + command, environment: environment)
                #expect(result.status == 2, "audit \(command): \(result.stderr)")
                #expect(result.stderr.hasPrefix("peon-wasm: error: ") && result.stderr.split(separator: "\n").count == 1,
                        "audit \(command): \(result.stderr)")
            }
        }
    }

    /// Two mistakes at once, on a machine that never wrote a log (no local key) or with a mistyped `--key` file:
    /// the log is named first, as the one to fix first. `verify` used to answer "no verifier key" (exit 11), and
    /// `prove`/`consistency` with a missing `--key` file named the key, so the operator fixed the key and only
    /// then learned that the log path was wrong too.
    @Test("a missing log is reported before a missing key")
    func aMissingLogIsReportedBeforeAMissingKey() throws {
        try withTemporaryDirectory { folder in
            let missing = folder.appendingPathComponent("MISSING.jsonl").path
            let keyFile = folder.appendingPathComponent("host-a.pub").path
            // An empty configuration folder: no local signing key to fall back on.
            let noKey = ["XDG_CONFIG_HOME": folder.appendingPathComponent("empty-cfg").path]
            for command in [["verify", missing], ["verify", missing, "--key", keyFile],
                            ["prove", missing, "0", "--key", keyFile], ["consistency", missing, "1", "--key", keyFile]] {
                let result = try runPeonWasm(["audit"] + command, environment: noKey)
                #expect(result.status == 2, "audit \(command.joined(separator: " ")): \(result.stderr)")
                #expect(result.stderr == "peon-wasm: error: \(missing): no such audit log; check the path\n",
                        "audit \(command.joined(separator: " ")): \(result.stderr)")
            }
        }
    }

    @Test func aLogWhoseCheckpointWasDeletedIsNotSignedByTheNextRun() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            // Rewrite history (an entry's outcome) and delete the checkpoint that would show it.
            let text = try String(contentsOf: log, encoding: .utf8)
            try Data(text.replacingOccurrences(of: "\"outcome\":\"ok\"", with: "\"outcome\":\"no\"").utf8).write(to: log)
            try FileManager.default.removeItem(atPath: log.path + ".checkpoint")
            let refused = try Self.hello(folder, log: log)
            #expect(refused.status == 78, "\(refused.stderr)")
            #expect(refused.stderr.contains("no checkpoint"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: log.path + ".checkpoint"), "the rewritten log was not signed")
            // The operator decides: --refresh signs the log as it is, and runs go on.
            let refreshed = try runPeonWasm(["audit", "checkpoint", log.path, "--refresh"],
                                            environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(refreshed.status == 0, "\(refreshed.stderr)")
            #expect(try Self.hello(folder, log: log).status == 0)
        }
    }

    /// The refusal to append to a log without its checkpoint says to check the log against a kept copy
    /// (`audit verify LOG --checkpoint COPY`), then sign it. That check used to be impossible: `verify` stopped at the
    /// missing checkpoint before it looked at the copy. It now checks the log against the copy and reports both: what
    /// the copy covers matches (or which entry does not), and the checkpoint is still missing (exit 7).
    @Test func aLogWhoseCheckpointWasDeletedCanBeCheckedAgainstAKeptCopy() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            #expect(try Self.hello(folder, log: log).status == 0)
            let kept = folder.appendingPathComponent("kept.checkpoint").path
            try FileManager.default.copyItem(atPath: log.path + ".checkpoint", toPath: kept)
            let keptSize = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").count
            #expect(try Self.hello(folder, log: log).status == 0)
            try FileManager.default.removeItem(atPath: log.path + ".checkpoint")
            let checked = try runPeonWasm(["audit", "verify", log.path, "--checkpoint", kept], environment: environment)
            #expect(checked.status == 7, "\(checked.stderr)")
            #expect(checked.stderr.contains("first \(keptSize) entries match \(kept) (checked)")
                    && checked.stderr.contains("chained but signed by nothing")
                    && checked.stderr.split(separator: "\n").count == 1, "\(checked.stderr)")
            // An entry the copy covers, altered: the check finds it (exit 10), rather than only the missing checkpoint.
            let text = try String(contentsOf: log, encoding: .utf8)
            let altered = text.replacingOccurrences(of: "\"outcome\":\"ok\"", with: "\"outcome\":\"no\"")
            #expect(altered != text)
            try Data(altered.utf8).write(to: log)
            let mismatch = try runPeonWasm(["audit", "verify", log.path, "--checkpoint", kept], environment: environment)
            #expect(mismatch.status == 10, "\(mismatch.stderr)")
        }
    }

    /// Entries after the last checkpoint (a run killed before its checkpoint) are signed by the next writer that opens
    /// the log. Only the last of them was checked, so an entry altered among them was signed in its altered form by the
    /// next `run` or `audit checkpoint --refresh` (exit 0). Every one of them must now be chained to the one before.
    @Test func anEntryAlteredAfterTheLastCheckpointIsNeverSigned() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            #expect(try Self.hello(folder, log: log).status == 0)
            let signed = try Data(contentsOf: URL(fileURLWithPath: log.path + ".checkpoint"))
            #expect(try Self.hello(folder, log: log).status == 0)
            // As after a run killed before its checkpoint: the checkpoint covers the first run only.
            try signed.write(to: URL(fileURLWithPath: log.path + ".checkpoint"))
            try? FileManager.default.removeItem(atPath: log.path + ".frontier")
            let clean = try String(contentsOf: log, encoding: .utf8)
            var lines = clean.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let firstUnsigned = clean.split(separator: "\n").count / 2
            #expect(lines[firstUnsigned].contains("\"outcome\":null") || lines[firstUnsigned].contains("run.start"))
            lines[firstUnsigned] = lines[firstUnsigned].replacingOccurrences(of: "\"engine\":\"wasmkit\"", with: "\"engine\":\"wasmtime\"")
            #expect(lines.joined(separator: "\n") != clean)
            try Data(lines.joined(separator: "\n").utf8).write(to: log)
            let checkpointBefore = try Data(contentsOf: URL(fileURLWithPath: log.path + ".checkpoint"))
            let run = try Self.hello(folder, log: log)
            #expect(run.status == 78 && run.stderr.contains("is not chained to the entry before it"), "\(run.stderr)")
            let refresh = try runPeonWasm(["audit", "checkpoint", log.path, "--refresh"], environment: environment)
            #expect(refresh.status == 5, "\(refresh.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: log.path + ".checkpoint")) == checkpointBefore, "the altered log was signed")
            // Untouched, the same tail is signed by the next run.
            try Data(clean.utf8).write(to: log)
            #expect(try Self.hello(folder, log: log).status == 0)
            #expect(try runPeonWasm(["audit", "verify", log.path], environment: environment).status == 0)
        }
    }

    /// Threat: anyone who can open the log can lock it. A run stopped at its deadline then waited, to record its end,
    /// for as long as the lock was held (45 s past a 2 s `--timeout`). The wait is bounded (5 s) and the missing
    /// `run.end` is said.
    @Test func aLockedLogDoesNotHoldARunPastItsDeadline() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let fd = open(log.path, O_RDONLY | O_CLOEXEC)
            #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)
            defer { close(fd) }
            let started = ContinuousClock.now
            let run = try Self.hello(folder, log: log, extra: ["--timeout", "1s"])
            let took = ContinuousClock.now - started
            #expect(run.status == 124, "\(run.stderr)")
            #expect(run.stderr.contains("the run's end (timeout) was not recorded"), "\(run.stderr)")
            #expect(took < .seconds(25), "the run waited \(took) for the lock")
        }
    }

    /// A run stopped before its worker could write `run.start` (here the log's lock is held past the deadline, as a
    /// busy machine or another writer can) got only the supervisor's `run.end`: 50 runs started at once on one log
    /// left 24 `run.start` and 50 `run.end`. The supervisor now writes the missing `run.start` first, so every run in
    /// the log is bracketed, and says it wrote it. Found by a red-team pass.
    @Test func aRunStoppedBeforeItsStartIsStillBracketed() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let fd = open(log.path, O_RDONLY | O_CLOEXEC)
            #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)
            // Released after the deadline (1 s and the supervisor's grace) but within the supervisor's 5 s wait.
            let release = Thread {
                Thread.sleep(forTimeInterval: 3)
                close(fd)
            }
            release.start()
            let run = try Self.hello(folder, log: log, extra: ["--timeout", "1s"])
            #expect(run.status == 124, "\(run.stderr)")
            #expect(!run.stderr.contains("was not recorded"), "\(run.stderr)")
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
            let lifecycle = lines.filter { $0.contains(#""call":"run.start""#) || $0.contains(#""call":"run.end""#) }
            let starts = lifecycle.filter { $0.contains(#""call":"run.start""#) }
            let ends = lifecycle.filter { $0.contains(#""call":"run.end""#) }
            #expect(starts.count == 2 && ends.count == 2, "\(lifecycle)")
            #expect(starts.last?.contains(#""recorded_by":"supervisor""#) == true, "\(lifecycle)")
            #expect(ends.last?.contains(#""outcome":"timeout""#) == true, "\(lifecycle)")
            let verify = try runPeonWasm(["audit", "verify", log.path],
                                         environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        }
    }

    /// An unreachable `--audit-sink` was waited for (up to 5 s) after the run's end inside the run's time limit: a run
    /// that finished in a moment under `--timeout 2s` was stopped as timed out (exit 124), lost its output and got a
    /// second `run.end`. The wait now ends at the deadline; the run ends once, as it did.
    @Test func anUnreachableSinkDoesNotTurnAFinishedRunIntoATimeout() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl").path
            let result = try runPeonWasm(["run", "modules/hello/hello.wat", "--audit", log, "--audit-key", folder.path + "/k",
                                          "--audit-sink", "postgresql://postgres@127.0.0.1:1/x", "--timeout", "2s"], timeout: 30)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stdout.isEmpty, "the module's output was lost")
            let ends = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains(#""call":"run.end""#) }
            #expect(ends.count == 1 && ends.first?.contains(#""outcome":"ok""#) == true, "\(ends)")
        }
    }

    /// Arguments that cannot be right are said as such: `audit ship --to` an address that is not PostgreSQL's is a
    /// usage error (64, as `run --audit-sink` says; it was 13), and `prove` of an entry past the end of the log says
    /// the log does not hold it (it said to refresh the checkpoint, which would not help).
    @Test func argumentsThatCannotBeRightAreSaidSo() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            #expect(try Self.hello(folder, log: log).status == 0)
            let ship = try runPeonWasm(["audit", "ship", log.path, "--to", "http://example.com/"], environment: environment)
            #expect(ship.status == 64 && ship.stderr.contains("is not a postgresql://") && ship.stderr.split(separator: "\n").count == 1,
                    "\(ship.stderr)")
            let size = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").count
            let prove = try runPeonWasm(["audit", "prove", log.path, String(size)], environment: environment)
            #expect(prove.status == 13 && prove.stderr.contains("has no entry seq \(size): it holds \(size) entries")
                    && !prove.stderr.contains("--refresh"), "\(prove.stderr)")
        }
    }

    /// A file that is not a log at all (a grants file given to `--audit` by mistake) was told "the log holds 4 entries
    /// but no checkpoint: it was deleted", and `audit verify` and `audit checkpoint --refresh` sent the user to each
    /// other. It is named for what it is: not an audit log, judged by its first line (`run` 78, `verify` 4).
    @Test func aFileThatIsNoLogIsNotTakenForALogWithoutItsCheckpoint() throws {
        try withTemporaryDirectory { folder in
            let grants = folder.appendingPathComponent("g.toml")
            try Data("module = \"hello\"\n[env]\nA = \"1\"\n".utf8).write(to: grants)
            let run = try Self.hello(folder, log: grants)
            #expect(run.status == 78, "\(run.stderr)")
            #expect(run.stderr.contains("is not a peon-wasm audit log: its first line is not an audit entry")
                    && !run.stderr.contains("deleted") && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            #expect(try String(contentsOf: grants, encoding: .utf8) == "module = \"hello\"\n[env]\nA = \"1\"\n")
            let verify = try runPeonWasm(["audit", "verify", grants.path],
                                         environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(verify.status == 4, "\(verify.stderr)")
            #expect(verify.stderr.contains("not a peon-wasm audit log"), "\(verify.stderr)")
            // `audit show` listed its three lines as "not an entry", with made-up seqs, and exit 0.
            let show = try runPeonWasm(["audit", "show", grants.path])
            #expect(show.status == 4 && show.stdout.isEmpty, "\(show.stdout)\(show.stderr)")
            #expect(show.stderr.contains("not a peon-wasm audit log") && show.stderr.split(separator: "\n").count == 1, "\(show.stderr)")
        }
    }

    @Test func aNewLogIsSignedBeforeItsFirstEntry() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("new.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 7, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0)
            let checkpoint = try AuditVerifier.loadCheckpoint(path: path + ".checkpoint", key: try VerifierKey(signer.verifierKey))
            #expect(checkpoint.size == 0)
            try log.close()
        }
    }

    @Test func aFIFOAtTheFirstUseFileDoesNotStallARun() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(mkfifo(log.path + ".first-use", 0o600) == 0)
            let started = Date()
            // The quickstart: every report read (allowed, first uses), the summary's write to the folder refused.
            let run = try runPeonWasm(["run", "modules/c-summarizer/summarizer.wasm", "--grants", "policies/c-summarizer.toml",
                                       "--audit", log.path, "--timeout", "20s",
                                       "--input", "modules/c-summarizer/reports \(folder.path)/summary.md"],
                                      environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(run.status == 1, "\(run.stderr)")
            #expect(run.stderr.contains("denied"), "\(run.stderr)")
            #expect(Date().timeIntervalSince(started) < 15, "the run waited on the FIFO")
        }
    }

    @Test func aSigningKeyOfAnotherUserOrInAFolderOthersMayWriteIsRefused() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let keyFolder = folder.appendingPathComponent("cfg/peon-wasm").path
            let key = keyFolder + "/audit.key"
            #expect(chmod(keyFolder, 0o777) == 0)
            let open = try Self.hello(folder, log: log)
            #expect(open.status == 78, "\(open.stderr)")
            #expect(open.stderr.contains("may be written by group or others"), "\(open.stderr)")
            #expect(chmod(keyFolder, 0o700) == 0)
            if geteuid() == 0 {
                #expect(chown(key, 65534, 65534) == 0)
                let foreign = try Self.hello(folder, log: log)
                #expect(foreign.status == 78, "\(foreign.stderr)")
                #expect(foreign.stderr.contains("belongs to user 65534"), "\(foreign.stderr)")
                #expect(chown(key, 0, 0) == 0)
            }
            #expect(try Self.hello(folder, log: log).status == 0)
        }
    }

    /// A folder or FIFO given as the audit log is refused as what it is, with what to do (a folder said only "cannot
    /// open the audit log: Is a directory").
    @Test func anAuditLogThatIsNoFileIsNamedAsWhatItIs() throws {
        try withTemporaryDirectory { folder in
            let fifo = folder.appendingPathComponent("log.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            for (log, expected) in [(folder.path, "it is a directory; name the audit log file itself"),
                                    (fifo, "this is a FIFO, a socket or a device; name a file")] {
                let run = try Self.hello(folder, log: URL(fileURLWithPath: log))
                #expect(run.status == 78, "\(run.stderr)")
                #expect(run.stderr.contains(expected) && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            }
        }
    }

    /// An earlier checkpoint (`verify --checkpoint`) that is a folder is named once, as what it is (the message
    /// said the path twice: "DIR: DIR: not a regular file").
    @Test func aKeptCheckpointThatIsAFolderIsNamedOnce() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let verified = try runPeonWasm(["audit", "verify", log.path, "--checkpoint", folder.path],
                                           environment: ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path])
            #expect(verified.status == 2, "\(verified.stderr)")
            #expect(verified.stderr == "peon-wasm: error: \(folder.path): not a regular file (it is a directory); name the file itself\n",
                    "\(verified.stderr)")
        }
    }

    /// A folder or FIFO named as the signing key is refused as what it is: before, a folder was checked for its mode
    /// like a key file, and the advice was `chmod 600 FOLDER`.
    @Test func aSigningKeyThatIsNoFileIsNamedAsWhatItIs() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            let fifo = folder.appendingPathComponent("key.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let cases = [(folder.path, "this is a directory; name the key file itself"),
                         (fifo, "this is a FIFO, a socket or a device; name the key file itself")]
            for (key, expected) in cases {
                let run = try Self.hello(folder, log: log, extra: ["--audit-key", key])
                #expect(run.status == 78, "\(run.stderr)")
                #expect(run.stderr.contains(expected) && !run.stderr.contains("chmod"), "\(run.stderr)")
                let printed = try runPeonWasm(["audit", "key", "--audit-key", key], timeout: 20)
                #expect(printed.status != 0 && printed.stderr.contains(expected), "\(printed.stderr)")
            }
        }
    }

    @Test func aCheckpointThatCouldDriveATerminalIsRefusedNotPrinted() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let forged = "peon-wasm/x\n3\n\u{1B}]0;pwned\u{07}\u{1B}[2JALL GOOD\n\n\u{2014} peon-wasm/x AAAAAAAAAAAA\n"
            try Data(forged.utf8).write(to: URL(fileURLWithPath: log.path + ".checkpoint"))
            let shown = try runPeonWasm(["audit", "checkpoint", log.path])
            #expect(shown.status == 8, "\(shown.stderr)")
            #expect(!shown.stdout.contains("\u{1B}") && !shown.stderr.contains("\u{1B}"))
        }
    }

    /// The origin line of a checkpoint is whatever its signer chose: a log from a hostile host verifies with that
    /// host's key, and its origin must not reorder the verdict line on the auditor's terminal (U+202E).
    @Test func aSignedOriginIsEscapedWhenVerifyPrintsIt() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("audit.jsonl").path
            let signer = try CheckpointSigner(name: "peon-wasm/tests", seed: Array(repeating: 6, count: 32))
            let log = try AuditLog.open(path: path, signer: signer, checkpointEvery: 0, origin: "host\u{202E}KO")
            try log.append(AuditRecord(run: "r1", module: "m", moduleSHA256: "", call: "fs.read", resource: "fs:/a"), durable: true)
            try log.close()
            let verified = try runPeonWasm(["audit", "verify", path, "--key", signer.verifierKey])
            #expect(verified.status == 0, "\(verified.stderr)")
            #expect(!verified.stdout.unicodeScalars.contains("\u{202E}"), "\(verified.stdout)")
            #expect(verified.stdout.contains("origin host\\u{202e}KO"), "\(verified.stdout)")
        }
    }

    /// `audit checkpoint` prints the signed note unchanged into a pipe (it is kept and passed back with
    /// `--checkpoint`), and escaped on a terminal, where a bidi control in its origin would reorder the screen.
    @Test func aCheckpointIsEscapedOnATerminalAndUnchangedInAPipe() {
        let note = Array("host\u{202E}KO\n1\nabc=\n\n\u{2014} host AAAA\n".utf8)
        #expect(AuditCommand.Checkpoint.checkpointOutput(note, toTerminal: false) == note)
        let shown = String(decoding: AuditCommand.Checkpoint.checkpointOutput(note, toTerminal: true), as: UTF8.self)
        #expect(!shown.unicodeScalars.contains("\u{202E}"), "\(shown)")
        #expect(shown.hasPrefix("host\\u{202e}KO\n1\n"), "\(shown)")
    }

    /// `audit checkpoint` reads `LOG.checkpoint` as a regular file of at most a signed note's size: a FIFO put there
    /// is refused at once instead of hanging the command.
    @Test func aFIFOAtTheCheckpointIsRefusedNotWaitedOn() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let checkpoint = log.path + ".checkpoint"
            let note = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
            let shown = try runPeonWasm(["audit", "checkpoint", log.path])
            #expect(shown.status == 0 && shown.stdout == String(decoding: note, as: UTF8.self), "\(shown.stderr)")
            try FileManager.default.removeItem(atPath: checkpoint)
            #expect(mkfifo(checkpoint, 0o600) == 0)
            let refused = try runPeonWasm(["audit", "checkpoint", log.path], timeout: 20)
            #expect(refused.status != 0 && refused.status != 15, "\(refused.stderr)")
            #expect(refused.stderr.hasPrefix("peon-wasm: error:"), "\(refused.stderr)")
        }
    }

    /// `audit checkpoint` prints a note to be published or archived only once the log verifies against it, as `audit
    /// verify` checks it: an entry edited under the checkpoint, or the checkpoint's origin altered, printed with exit 0
    /// (found by a red-team pass).
    @Test func aCheckpointIsPrintedOnlyOnceTheLogVerifies() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let checkpoint = URL(fileURLWithPath: log.path + ".checkpoint")
            let note = try Data(contentsOf: checkpoint)
            let original = try Data(contentsOf: log)
            // With the key the run signed with (the local key `audit verify` uses too).
            let environment = ["XDG_CONFIG_HOME": folder.appendingPathComponent("cfg").path]
            #expect(try runPeonWasm(["audit", "checkpoint", log.path], environment: environment).status == 0)
            let text = String(decoding: original, as: UTF8.self)
            let edited = text.replacingOccurrences(of: #""call":"run.start""#, with: #""call":"run.xtart""#)
            #expect(edited != text)
            try Data(edited.utf8).write(to: log)
            let refused = try runPeonWasm(["audit", "checkpoint", log.path], environment: environment)
            #expect(refused.status != 0 && refused.stdout.isEmpty, "\(refused.status) \(refused.stdout)")
            #expect(refused.stderr.hasPrefix("peon-wasm: error:"), "\(refused.stderr)")
            try original.write(to: log)
            // The origin line alone changed; the signature line still names the key, whose signature no longer holds.
            var lines = String(decoding: note, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            lines[0] = "evil.example/log"
            try Data(lines.joined(separator: "\n").utf8).write(to: checkpoint)
            let forged = try runPeonWasm(["audit", "checkpoint", log.path], environment: environment)
            #expect(forged.status != 0 && forged.stdout.isEmpty, "\(forged.status) \(forged.stdout)")
        }
    }

    /// `--key FILE` reads at most 4 KiB: a path to a huge file is refused at once (exit 11), never read whole.
    @Test func aHugeKeyFileIsRefusedWithoutReadingIt() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            let huge = folder.appendingPathComponent("huge.key").path
            #expect(FileManager.default.createFile(atPath: huge, contents: Data()))
            #expect(truncate(huge, 64 << 30) == 0)  // 64 GiB, sparse: read whole, it would exhaust memory
            let verified = try runPeonWasm(["audit", "verify", log.path, "--key", huge], timeout: 30)
            #expect(verified.status == 11, "\(verified.stderr)")
            #expect(verified.stderr.contains("a regular file under 4 KiB"), "\(verified.stderr)")
        }
    }

    @Test func auditShowRefusesAFIFOInsteadOfWaiting() throws {
        try withTemporaryDirectory { folder in
            let fifo = folder.appendingPathComponent("fifo.jsonl").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let shown = try runPeonWasm(["audit", "show", fifo], timeout: 20)
            #expect(shown.status == 2, "\(shown.stderr)")
            #expect(shown.stderr.contains("not a regular file (it is a FIFO, a socket or a device); name the file itself"),
                    "\(shown.stderr)")
            // What it is and what to do, for a folder too, from every command that reads a log.
            for command in [["show"], ["verify"], ["prove", "0"], ["consistency", "1"], ["checkpoint"],
                            ["ship", "--to", "postgresql://peon@127.0.0.1:1/peon"]] {
                let folderRun = try runPeonWasm(["audit", command[0], folder.path] + command.dropFirst(), timeout: 20)
                #expect(folderRun.status == 2, "\(command): \(folderRun.stderr)")
                #expect(folderRun.stderr.split(separator: "\n").count == 1, "\(command): \(folderRun.stderr)")
                #expect(folderRun.stderr.contains("it is a directory); name the file itself"), "\(command): \(folderRun.stderr)")
            }
        }
    }

    @Test func aHardLinkAtTheCheckpointsOldTemporaryNameIsNotWrittenThrough() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("audit.jsonl")
            let victim = folder.appendingPathComponent("victim.txt")
            try Data("keep me".utf8).write(to: victim)
            #expect(link(victim.path, log.path + ".checkpoint.tmp") == 0)
            #expect(try Self.hello(folder, log: log).status == 0)
            #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me")
        }
    }

    /// Whether `chattr +i` works here (ext4 and root): the way to make the final checkpoint fail.
    static let immutableFoldersWork: Bool = {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/chattr") else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("peon-chattr-\(getpid())")
        try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
        defer { _ = chattr("-i", probe.path); try? FileManager.default.removeItem(at: probe) }
        return chattr("+i", probe.path)
    }()

    @Test(.enabled(if: immutableFoldersWork, "needs root and a file system with chattr +i"))
    func aRunWhoseFinalCheckpointCannotBeWrittenSaysSoAndExits74() throws {
        try withTemporaryDirectory { folder in
            let logs = folder.appendingPathComponent("logs")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            let log = logs.appendingPathComponent("audit.jsonl")
            #expect(try Self.hello(folder, log: log).status == 0)
            // Existing files can still be appended to; no new file (the checkpoint's temporary one) can be made.
            #expect(chattr("+i", logs.path))
            defer { _ = chattr("-i", logs.path) }
            let run = try Self.hello(folder, log: log)
            #expect(run.status == 74, "\(run.stderr)")
            #expect(run.stderr.contains("the run ended but its audit log was not completed"), "\(run.stderr)")
            #expect(run.stderr.split(separator: "\n").last?.hasPrefix("peon-wasm: error:") == true)
        }
    }
}

/// Runs `chattr FLAG PATH`; whether it succeeded.
private func chattr(_ flag: String, _ path: String) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    process.arguments = [flag, path]
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}
