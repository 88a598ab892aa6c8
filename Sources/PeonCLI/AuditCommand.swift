import ArgumentParser
import Foundation
import PeonAudit
import PeonInterface
import PeonPostgres
import PeonRuntime
import PeonSystem
#if canImport(Glibc)
import Glibc
#endif

/// `peon-wasm audit ...`: check, prove and read tamper-evident audit logs.
///
/// Every failure prints one line on stderr and exits with the status of its ``AuditError/Code`` (docs/cli.md, "Exit codes"):
/// 2 I/O, 3 empty log, 4 malformed entry, 5 broken chain, 6 torn tail, 7 checkpoint missing, 8 checkpoint
/// malformed, 9 bad signature, 10 checkpoint mismatch, 11 bad or missing key, 12 locked, 13 invalid argument.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify, prove and read the tamper-evident audit log (RFC 6962 Merkle tree, signed C2SP checkpoints).",
        subcommands: [Verify.self, Checkpoint.self, Key.self, Prove.self, Consistency.self, Show.self, Ship.self])

    /// Options naming the local signing key.
    struct KeyOptions: ParsableArguments {
        @Option(name: .customLong("audit-key"),
                help: "The checkpoint signing key (default: $XDG_CONFIG_HOME/peon-wasm/audit.key or ~/.config/peon-wasm/audit.key).")
        var auditKey: String?

        func path() throws(AuditError) -> String {
            if let auditKey { return auditKey }
            guard let path = CheckpointSigner.defaultKeyPath() else {
                throw AuditError(.badKey, "no default key location: set HOME or XDG_CONFIG_HOME, or pass --audit-key PATH")
            }
            return path
        }
    }

    /// Runs `body`, turning an ``AuditError`` into one stderr line and its exit status.
    static func run(_ body: () throws(AuditError) -> Void) throws(ExitCode) {
        do {
            try body()
        } catch {
            throw failure(error.message, code: error.exitCode)
        }
    }

    /// The verifier key text from `--key` (the text itself, or a file holding it).
    static func verifierKeyText(_ option: String?) throws(AuditError) -> String? {
        guard let option else { return nil }
        if !option.contains("+"), FileManager.default.fileExists(atPath: option) {
            // A key is ~100 bytes: a file of 4 KiB or more is refused after one read of at most 64 KiB, and a FIFO or
            // device is refused unread (`FileIO.readAll`), so a path to a huge file never makes the verifier read it whole.
            guard let data = try? FileIO.readAll(path: option, limit: 4095) else {
                throw AuditError(.badKey, "\(option): cannot read a verifier key from this file (a regular file under 4 KiB holding NAME+HASH+KEY)")
            }
            // Saved by a Windows editor, the file may start with a byte order mark (``OperatorText``).
            do throws(OperatorTextError) {
                return try OperatorText.decode(data).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw AuditError(.badKey, "\(option): cannot read a verifier key from this file: \(error.message)")
            }
        }
        // Key text always holds `+`; without one it was meant as a file, and that file is not there.
        if !option.contains("+") {
            throw AuditError(.badKey, "\(option): no such file, and not a verifier key NAME+HASH+KEY either; give the key "
                             + "`peon-wasm audit key` printed on the writing machine, or the path of a file holding it")
        }
        return option
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Recompute every leaf, the prev chain and the Merkle root, and check the signed checkpoints.",
            discussion: """
                Without --key the checkpoint signature is checked against the local signing key, which proves \
                nothing to an auditor who does not trust this machine: pass the verifier key you were given.
                """)

        @Argument(help: "The audit log (JSON Lines); omit it with --from.") var log: String?
        @Option(help: ArgumentHelp("The verifier key NAME+HASH+KEY (or a file holding it). With --from: ORIGIN=KEY for each host (repeatable; a bare KEY is for the origin named in it).", valueName: "KEY"))
        var key: [String] = []
        @Option(name: .customLong("checkpoint"), help: "An earlier checkpoint you kept; it must be a prefix of the log (repeatable).")
        var checkpoints: [String] = []
        @Option(help: ArgumentHelp("Verify every host's copy in the central tables of this PostgreSQL database (what a run with an audit sink ships) instead of a local log.", valueName: "postgresql://..."))
        var from: String?
        @OptionGroup var keyOptions: KeyOptions

        func validate() throws {
            if log == nil && from == nil { throw ValidationError(AuditCommand.noLogMessage) }
            if log != nil && from != nil { throw ValidationError("give a LOG or --from postgresql://..., not both") }
            if from != nil, key.isEmpty { throw ValidationError("--from needs --key ORIGIN=KEY for each host whose entries it should check") }
            if from != nil, !checkpoints.isEmpty { throw ValidationError("--checkpoint is for a local LOG; the central tables hold every shipped checkpoint") }
            if log != nil, key.count > 1 { throw ValidationError("a local LOG takes one --key") }
        }

        func run() throws {
            if let from {
                try verifyCentral(from)
                return
            }
            let log = log ?? ""
            try AuditCommand.run { () throws(AuditError) in
                // The log before the key: `audit verify MISSING.jsonl` on a machine without a key names the log.
                try AuditProofs.requireLog(log)
                var keyText = try AuditCommand.verifierKeyText(key.first)
                var source = "the given key"
                if keyText == nil {
                    let path = try keyOptions.path()
                    guard FileManager.default.fileExists(atPath: path) else {
                        throw AuditError(.badKey, "no verifier key: pass --key NAME+HASH+KEY (from `peon-wasm audit key` on the machine that wrote the log)")
                    }
                    keyText = try CheckpointSigner.load(keyPath: path).verifierKey
                    source = "the local key \(path) (pass --key to check against a key you trust)"
                }
                let meter = ProgressLine(label: "verifying \(log)")
                let summary: VerificationSummary
                do throws(AuditError) {
                    summary = try AuditVerifier.verify(logPath: log, verifierKey: keyText, extraCheckpoints: checkpoints,
                                                       progress: meter.map { meter in { meter.show(done: $1, total: $2, count: $0) } })
                } catch {
                    meter?.clear()
                    throw error
                }
                meter?.clear()
                print("ok: \(summary.size) entries, root \(hex(summary.rootHash))")
                // The origin is the signer's text: signed, but a hostile host's key signs what it likes (bidi controls).
                print("checkpoint: size \(summary.checkpoint.size), origin \(TerminalText.escaped(summary.checkpoint.origin)), signature checked with \(TerminalText.escaped(source))")
                if summary.uncheckpointed > 0 {
                    print("note: \(summary.uncheckpointed) \(summary.uncheckpointed == 1 ? "entry" : "entries") after the checkpoint \(summary.uncheckpointed == 1 ? "is" : "are") chained but not yet signed")
                }
                if summary.skippedLiveTail {
                    print("note: a writer holds the log; its last, incomplete line was not checked")
                }
            }
        }

        /// Every origin in the database must verify with its key, and every key must find its origin.
        private func verifyCentral(_ url: String) throws {
            try AuditCommand.run { () throws(AuditError) in
                let address: PostgresAddress
                do throws(PostgresStoreError) { address = try PostgresAddress(url) } catch { throw AuditError(.invalidArgument, error.description) }
                var keys: [String: String] = [:]
                for option in key {
                    let (origin, text) = originKey(option)
                    guard let keyText = try AuditCommand.verifierKeyText(text) else { continue }
                    if let origin {
                        keys[origin] = keyText
                    } else {
                        keys[try VerifierKey(keyText).name] = keyText
                    }
                }
                let archive = try PostgresAuditArchive(address)
                let origins = try archive.origins()
                var failure: AuditError?
                var failures = 0
                let all = Set(origins).union(keys.keys).sorted()
                let checked = all.count
                for origin in all {
                    do throws(AuditError) {
                        guard let keyText = keys[origin] else {
                            throw AuditError(.badKey, "postgresql:\(origin): no --key \(origin)=KEY was given for this host's entries")
                        }
                        guard origins.contains(origin) else {
                            throw AuditError(.emptyLog, "postgresql:\(origin): the central tables hold nothing of this origin")
                        }
                        let summary = try archive.verify(origin: origin, verifierKey: keyText)
                        print("ok: \(TerminalText.escaped(origin)): \(summary.size) entries, root \(hex(summary.rootHash)), checkpoint size \(summary.checkpoint.size) signature checked")
                        if summary.uncheckpointed > 0 {
                            print("note: \(TerminalText.escaped(origin)): \(summary.uncheckpointed) \(summary.uncheckpointed == 1 ? "entry" : "entries") after the checkpoint \(summary.uncheckpointed == 1 ? "is" : "are") chained but not yet signed")
                        }
                    } catch {
                        // One line per origin on stdout, as for one that verifies; the command's one error line follows.
                        print("failed: \(TerminalText.escaped(error.message))")
                        failures += 1
                        if failure == nil { failure = error }
                    }
                }
                if let failure {
                    throw AuditError(failure.code, "\(address): the central audit trail does not verify (\(failures) of \(checked) origins failed; the first: \(failure.message))")
                }
            }
        }
    }

    struct Checkpoint: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint",
            abstract: "Print the log's latest signed checkpoint (a C2SP signed note), once the log verifies against it.")

        @Argument(help: "The audit log.") var log: String
        @Flag(help: "Sign a fresh checkpoint of the whole log first (takes the log's lock; needs the signing key).")
        var refresh = false
        @OptionGroup var keyOptions: KeyOptions

        func run() throws {
            try AuditCommand.run { () throws(AuditError) in
                try AuditProofs.requireLog(log)
                if refresh {
                    let signer = try CheckpointSigner.load(keyPath: try keyOptions.path())
                    // The operator asks for the log to be signed as it is: one without a checkpoint is adopted.
                    let opened = try AuditLog.open(path: log, signer: signer, checkpointEvery: 0, adoptingUnsigned: true)
                    try opened.close()
                }
                // Checked before it is printed to be published or archived, as `audit verify LOG` checks it: a checkpoint
                // whose origin was altered, or a log edited under it, printed with exit 0. The signature is checked with
                // the local key when the note names it; a log another host signed is checked for its chain and root.
                let keyPath = try keyOptions.path()
                let checked = try? FileIO.readAll(path: log + ".checkpoint", limit: SignedNote.maxBytes)
                var verifierKey: String?
                if FileManager.default.fileExists(atPath: keyPath) {
                    let local = try CheckpointSigner.load(keyPath: keyPath).verifierKey
                    // The same name and key hash: key names repeat across hosts (`peon-wasm/HOSTNAME`), the hash does not.
                    let signatures = checked.flatMap { try? SignedNote.parse(String(decoding: $0, as: UTF8.self)) }?.signatures ?? []
                    if let key = try? VerifierKey(local), signatures.contains(where: { $0.name == key.name && $0.keyHash == key.keyHash }) {
                        verifierKey = local
                    }
                }
                _ = try AuditVerifier.verify(logPath: log, verifierKey: verifierKey)
                // A regular file of at most a signed note's size: a FIFO or a huge file put there is refused.
                guard let data = try? FileIO.readAll(path: log + ".checkpoint", limit: SignedNote.maxBytes) else {
                    throw AuditError(.checkpointMissing, "\(log).checkpoint: cannot read the checkpoint")
                }
                // The note printed is the note checked: one put in its place meanwhile is not printed unchecked.
                guard data == checked else {
                    throw AuditError(.checkpointMismatch, "\(log).checkpoint: the checkpoint changed while it was checked (a writer signed a new one); run the command again")
                }
                FileHandle.standardOutput.write(Data(Self.checkpointOutput(data, toTerminal: isatty(1) == 1)))
            }
        }

        /// The checkpoint note as printed: its bytes unchanged into a pipe or file (it is a signed note, kept and
        /// passed back with `--checkpoint`), each line escaped on a terminal. The note is signed, but by whatever
        /// key came with the log, and its origin may hold a bidi control that reorders the auditor's screen.
        static func checkpointOutput(_ note: [UInt8], toTerminal: Bool) -> [UInt8] {
            guard toTerminal else { return note }
            let text = String(decoding: note, as: UTF8.self)
            let escaped = text.split(separator: "\n", omittingEmptySubsequences: false)
                .map { TerminalText.escaped(String($0)) }.joined(separator: "\n")
            return Array(escaped.utf8)
        }
    }

    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key",
            abstract: "Print the verifier key (NAME+HASH+KEY) of the signing key, creating the key (0600) if needed.")

        @OptionGroup var keyOptions: KeyOptions
        @Option(help: "The key name when a key is created (default: peon-wasm/HOSTNAME).") var name: String?

        func validate() throws {
            guard let name else { return }
            do throws(AuditError) {
                try CheckpointSigner.checkName(name)
            } catch {
                throw ValidationError("--name: \(error.message)")
            }
        }

        func run() throws {
            var misnamed: (path: String, held: String, asked: String)?
            try AuditCommand.run { () throws(AuditError) in
                let path = try keyOptions.path()
                let signer = try CheckpointSigner.loadOrCreate(keyPath: path, name: name ?? CheckpointSigner.defaultName())
                // A name asked for is a promise about the origin entries will be shipped under: an existing key
                // under another name must not be printed as if it were that key.
                if let name, signer.name != name {
                    misnamed = (path, signer.name, name)
                    return
                }
                print(signer.verifierKey)
            }
            if let misnamed {
                throw failure("\(misnamed.path) already holds a key named '\(misnamed.held)', not '\(misnamed.asked)'; "
                    + "--name only names a key being created: drop --name to use that key, or pass --audit-key NEWFILE for a new one",
                    code: 64)
            }
        }
    }

    struct Prove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prove",
            abstract: "Print the RFC 6962 inclusion proof of entry SEQ against the latest checkpoint, as JSON.")

        @Argument(help: "The audit log.") var log: String
        @Argument(help: "The entry's seq (its leaf index).") var seq: UInt64
        @Option(help: "Check the checkpoint's signature with this verifier key first.") var key: String?

        func run() throws {
            try AuditCommand.run { () throws(AuditError) in
                try AuditProofs.requireLog(log)
                print(try AuditProofs.inclusion(logPath: log, seq: seq, verifierKey: try AuditCommand.verifierKeyText(key)).json)
            }
        }
    }

    struct Consistency: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "consistency",
            abstract: "Print the RFC 6962 consistency proof from the first OLD_SIZE entries to NEW_SIZE (default: the checkpoint's size).")

        @Argument(help: "The audit log.") var log: String
        @Argument(help: "The smaller tree size.") var oldSize: UInt64
        @Argument(help: "The larger tree size.") var newSize: UInt64?
        @Option(help: "Check the checkpoint's signature with this verifier key first.") var key: String?

        func run() throws {
            try AuditCommand.run { () throws(AuditError) in
                try AuditProofs.requireLog(log)
                print(try AuditProofs.consistency(logPath: log, oldSize: oldSize, newSize: newSize,
                                                  verifierKey: try AuditCommand.verifierKeyText(key)).json)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print the log's entries as a table, or as JSON Lines with --json (this reads; `audit verify` checks).")

        @Argument(help: "The audit log; omit it with --from.") var log: String?
        @Option(help: "Only entries of this module.") var module: String?
        @Option(help: "Only entries with this decision (allow or deny).") var decision: String?
        @Option(name: .customLong("run"), help: "Only entries of this run (its id, or the start of it as the RUN column shows it).") var runID: String?
        @Option(help: "Only entries at or after this UTC time (2026-11-21, 2026-11-21T20:05, ...Z).") var since: String?
        @Flag(name: .customLong("first-use"),
              help: "Only decisions on something the module had never been allowed before (flagged first_use).")
        var firstUse = false
        @Option(help: ArgumentHelp("Read every host's entries from the central tables of this PostgreSQL database instead of a local log.", valueName: "postgresql://..."))
        var from: String?
        @Option(help: "Only entries before this UTC time.") var until: String?
        @Option(help: "With --from: only entries of this origin (host key name).") var origin: String?
        @Option(help: "Only entries of this call (fs.read, run.start, policy.store, ...).") var call: String?
        @Option(help: "At most this many entries, oldest first; a note on stderr says when more match (default: all of a LOG; 1000 with --from).")
        var limit: Int?
        @Flag(help: "Print each entry as its JSON line (JSON Lines), every field in full, instead of a table (with --from: {\"origin\": ..., \"entry\": LINE}).")
        var json = false

        /// The most entries shown: `--limit`, else every entry of a local log and 1,000 from the central tables.
        var entryLimit: Int? { limit ?? (from == nil ? nil : 1000) }

        func validate() throws {
            if log == nil && from == nil { throw ValidationError(AuditCommand.noLogMessage) }
            if log != nil && from != nil { throw ValidationError("give a LOG or --from postgresql://..., not both") }
            if from == nil, origin != nil { throw ValidationError("--origin needs --from (a local log is one host's)") }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
            if let until, !Self.isUTCTime(until) {
                throw ValidationError("--until must be a UTC time that exists, like 2026-11-21 or 2026-11-21T20:05:00Z, not \(until)")
            }
            if let decision, AuditDecision(exactly: decision) == nil {
                throw ValidationError("--decision must be allow or deny, not \(decision)")
            }
            if let since, !Self.isUTCTime(since) {
                throw ValidationError("--since must be a UTC time that exists, like 2026-11-21 or 2026-11-21T20:05:00Z, not \(since)")
            }
        }

        /// Whether `text` is a UTC time `--since` and `--until` take: `YYYY-MM-DD`, optionally `THH:MM`, `:SS` and up to
        /// six digits of fraction, optionally `Z`, naming a time that exists (a 13th month, February 30th or 24:00 would
        /// compare as text with the entries' times and quietly select the wrong ones, or none).
        static func isUTCTime(_ text: String) -> Bool {
            guard let match = text.wholeMatch(of: /(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?)?Z?/),
                  let year = Int(match.1), let month = Int(match.2), let day = Int(match.3), (1...12).contains(month)
            else { return false }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            guard (1...days).contains(day) else { return false }
            if let hour = match.4.flatMap({ Int($0) }), hour > 23 { return false }
            if let minute = match.5.flatMap({ Int($0) }), minute > 59 { return false }
            if let second = match.6.flatMap({ Int($0) }), second > 59 { return false }
            return true
        }

        func run() throws {
            if let from {
                try showCentral(from)
                return
            }
            let log = log ?? ""
            try AuditCommand.run { () throws(AuditError) in
                // Streamed: one line in memory at a time (at most AuditLog.maxLineBytes), printed as it is read, so a
                // log of any size is shown in bounded memory.
                guard FileManager.default.fileExists(atPath: log) else {
                    throw AuditError(.io, "\(log): cannot read the audit log (no such file); check the path")
                }
                // A regular file only: a FIFO or device at LOG would block forever or never end.
                let fd = try FileIO.openRegularForReading(path: log)
                defer { _ = close(fd) }
                // A file that is no log at all (a grants file given by mistake) is named for what it is, as `verify` does,
                // not listed as lines that are not entries with exit 0. A log with its checkpoint whose first line was
                // damaged is still listed: that is what an auditor wants to see.
                if access(log + ".checkpoint", F_OK) != 0, let reason = FileIO.notALogReason(fd: fd, path: log) {
                    throw AuditError(.malformedEntry, "\(log):1: not a peon-wasm audit log: \(reason); give a log peon-wasm wrote")
                }
                var reader = LineReader(fd: fd, path: log, maxLine: AuditLog.maxLineBytes)
                // Times compare as text: every entry's time is `YYYY-MM-DDTHH:MM:SS.ffffffZ`, and a shorter bound is a
                // prefix of one (2026-11-21 sorts before every time of that day, after every time of the day before).
                let sinceKey = since.map { $0.hasSuffix("Z") ? String($0.dropLast()) : $0 }
                let untilKey = until.map { $0.hasSuffix("Z") ? String($0.dropLast()) : $0 }
                let widths = [8, 27, 14, 18, 14, 40, 8, 10, 50]
                func printRow(_ row: [String]) {
                    guard !json else { return }
                    let cells = zip(row, widths).map { cell, width in AuditCommand.pad(AuditCommand.terminalSafe(cell), width) }
                    print(cells.joined(separator: " ").trimmingCharacters(in: .whitespaces))
                }
                let runPrefix = runID.map { $0.hasSuffix("…") ? String($0.dropLast()) : $0 }
                printRow(["SEQ", "TIME", "RUN", "MODULE", "CALL", "RESOURCE", "DECISION", "OUTCOME", "REASON"])
                var bad = 0
                var index = -1
                var shown = 0
                // As bytes: a `String` set hashes and compares canonically, quadratic in a run of combining marks.
                var seenCalls: Set<[UInt8]> = []
                var seenModules: Set<[UInt8]> = []
                var moreMatch = false
                defer {
                    if moreMatch, let limit = entryLimit {
                        printError("peon-wasm: note: showing the first \(limit == 1 ? "matching entry" : "\(limit) matching entries"); more match (raise --limit, or narrow with --since/--until)")
                    }
                }
                while let item = try reader.next() {
                    index += 1
                    let line: [UInt8]
                    switch item {
                    case .line(let bytes):
                        // An empty line is no entry either (a writer never leaves one; `verify` refuses it): reported
                        // as one, not skipped.
                        line = bytes
                    case .partial, .tooLong:
                        // A last line without its newline is a torn tail, not an entry, even when it parses: it is in
                        // no checkpoint, and the next write cuts it (`log.recovered`).
                        line = []
                    }
                    guard !line.isEmpty, case .success(let e) = AuditEntry.parse(line) else {
                        bad += 1
                        printRow([String(index), "-", "-", "-", "-", "-", "-", "-", "(line \(index + 1) is not an entry)"])
                        continue
                    }
                    // What the log holds, to say so when a filter matches nothing (a few dozen names at most).
                    if seenCalls.count < 64 { seenCalls.insert(Array(e.record.call.utf8)) }
                    if seenModules.count < 64 { seenModules.insert(Array(e.record.module.utf8)) }
                    // Byte for byte: `==` would take `café` spelled with U+0301 for another module's `café`.
                    if let module, !e.record.module.utf8.elementsEqual(module.utf8) { continue }
                    if let decision, e.record.decision?.rawValue != decision { continue }
                    // The RUN column shows a prefix and `…`: either the whole id or a prefix of it picks the run.
                    if let runPrefix, !e.record.run.utf8.starts(with: runPrefix.utf8) { continue }
                    if let sinceKey, e.time < sinceKey { continue }
                    if let untilKey, e.time >= untilKey { continue }
                    if let call, !e.record.call.utf8.elementsEqual(call.utf8) { continue }
                    if firstUse, e.record.details["first_use"]?.utf8.elementsEqual("true".utf8) != true { continue }
                    if let limit = entryLimit, shown >= limit {
                        moreMatch = true
                        break
                    }
                    shown += 1
                    if json {
                        print(AuditCommand.terminalSafeJSON(line))
                    } else {
                        printRow([String(e.seq), e.time, e.record.run, e.record.module, e.record.call, e.record.resource,
                                  e.record.decision?.rawValue ?? "-", e.record.outcome ?? "-", e.record.reason])
                    }
                }
                if bad > 0 {
                    printWarning("\(bad) \(bad == 1 ? "line is not an entry" : "lines are not entries"); run `peon-wasm audit verify \(log)`")
                }
                // A filter that matches nothing is not "nothing happened": say what the log holds (`--call fs.list` is
                // an action; the CALL column names host calls such as fs.read-dir).
                if shown == 0, call != nil || module != nil, !seenCalls.isEmpty {
                    func listed(_ names: Set<[UInt8]>) -> String {
                        names.sorted { $0.lexicographicallyPrecedes($1) }
                            .map { name -> String in
                                // A name is the log's, as long as a line: at most 64 scalars of it.
                                let text = String(decoding: name, as: UTF8.self)
                                let shown = String(String.UnicodeScalarView(text.unicodeScalars.prefix(64)))
                                return AuditCommand.terminalSafe(shown) + (shown.unicodeScalars.count < text.unicodeScalars.count ? "…" : "")
                            }.joined(separator: ", ")
                    }
                    var parts: [String] = []
                    if call != nil { parts.append("its calls are \(listed(seenCalls))") }
                    if module != nil { parts.append("its modules are \(listed(seenModules))") }
                    printError("peon-wasm: note: no entry matches; \(parts.joined(separator: "; ")) (names compare exactly)")
                }
            }
        }

        private func showCentral(_ url: String) throws {
            try AuditCommand.run { () throws(AuditError) in
                let address: PostgresAddress
                do throws(PostgresStoreError) { address = try PostgresAddress(url) } catch { throw AuditError(.invalidArgument, error.description) }
                var filter = PostgresAuditArchive.Filter()
                filter.origin = origin
                filter.module = module
                filter.decision = decision.flatMap(AuditDecision.init(rawValue:))
                filter.run = runID
                filter.call = call
                filter.since = since
                filter.until = until
                filter.firstUse = firstUse
                // One row more than asked says whether the answer was cut, which is then said on stderr: a reader
                // must not take the first N matches for all of them.
                let limit = entryLimit ?? 1000
                filter.limit = limit < Int.max ? limit + 1 : limit
                var rows = try PostgresAuditArchive(address).entries(filter)
                let cut = rows.count > limit
                if cut { rows.removeLast(rows.count - limit) }
                defer {
                    if cut {
                        printError("peon-wasm: note: showing the first \(limit == 1 ? "matching entry" : "\(limit) matching entries"); more match (raise --limit, or narrow with --since/--until)")
                    }
                }
                if json {
                    for row in rows {
                        if firstUse, let e = row.entry, e.record.details["first_use"] != "true" { continue }
                        print(AuditCommand.centralJSON(origin: row.origin, seq: row.seq, entry: row.entry))
                    }
                    return
                }
                var table: [[String]] = [["ORIGIN", "SEQ", "TIME", "RUN", "MODULE", "CALL", "RESOURCE", "DECISION", "OUTCOME", "REASON"]]
                for row in rows {
                    if firstUse, let e = row.entry, e.record.details["first_use"] != "true" { continue }
                    guard let e = row.entry else {
                        table.append([row.origin, String(row.seq), "-", "-", "-", "(not an entry; run audit verify --from)", "", "", "", ""])
                        continue
                    }
                    table.append([row.origin, String(e.seq), e.time, e.record.run, e.record.module, e.record.call, e.record.resource,
                                  e.record.decision?.rawValue ?? "-", e.record.outcome ?? "-", e.record.reason])
                }
                let widths = [20, 8, 27, 14, 18, 14, 40, 8, 11, 50]
                for row in table {
                    let cells = zip(row, widths).map { cell, width in AuditCommand.pad(AuditCommand.terminalSafe(cell), width) }
                    print(cells.joined(separator: " ").trimmingCharacters(in: .whitespaces))
                }
            }
        }
    }

    struct Ship: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ship",
            abstract: "Ship a local log's entries and latest checkpoint to the central PostgreSQL tables now (what a run with an audit sink does in the background).",
            discussion: """
                Shipping starts where the central copy of the log's origin ends, so it can be repeated (from cron, \
                or after an outage) without losing or duplicating an entry.
                """)

        @Argument(help: "The audit log.") var log: String
        @Option(help: ArgumentHelp("The PostgreSQL database.", valueName: "postgresql://...")) var to: String
        @Option(help: "The log's origin (default: the origin line of LOG.checkpoint).") var origin: String?

        /// An address that is not PostgreSQL's is the command line's fault (64), as for `run --audit-sink`; so is an
        /// `--origin` no key could be named (empty, white space, `+` or a control or format character): it shipped, and
        /// that copy could never verify against any key, or disguised itself on an auditor's terminal.
        func validate() throws {
            do throws(PostgresStoreError) { _ = try PostgresAddress(to) } catch { throw ValidationError(error.description) }
            if let origin, origin.isEmpty || origin.unicodeScalars.contains(where: {
                $0 == "+" || $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
                    || $0.properties.generalCategory == .control || $0.properties.generalCategory == .format
            }) {
                throw ValidationError("--origin '\(TerminalText.escaped(origin))' cannot be a key's name: give the name of the key the log is signed with (no spaces, '+', control or format characters)")
            }
        }

        func run() throws {
            try AuditCommand.run { () throws(AuditError) in
                let address: PostgresAddress
                try AuditProofs.requireLog(log)
                do throws(PostgresStoreError) { address = try PostgresAddress(to) } catch { throw AuditError(.invalidArgument, error.description) }
                var name = origin
                if name == nil {
                    name = try AuditVerifier.loadCheckpoint(path: log + ".checkpoint", key: nil).origin
                }
                let shipper = PostgresAuditShipper(address, report: { _ in })
                var total = PostgresAuditShipper.Progress()
                while true {
                    let progress: PostgresAuditShipper.Progress
                    do throws(PostgresStoreError) {
                        progress = try shipper.ship(logPath: log, origin: name ?? "")
                    } catch {
                        throw AuditError(.io, error.description)
                    }
                    total.entries += progress.entries
                    total.checkpoints += progress.checkpoints
                    if !progress.more { break }
                }
                // The origin is a key's name or `--origin`, which anyone who ships may choose: escaped, as every line is.
                print("shipped: \(total.entries) entries, \(total.checkpoints) checkpoints of \(TerminalText.escaped(name ?? "")) to \(TerminalText.escaped("\(address)"))")
            }
        }
    }
}

extension AuditCommand {
    /// Lowercase hex.

    /// `s` escaped for a terminal (``TerminalText``): no escape sequence or invisible character from a hostile log.
    fileprivate static func terminalSafe(_ s: String) -> String {
        TerminalText.escaped(s, spaces: true)
    }

    /// An entry's JSON line made safe for a terminal and still the same JSON: every character ``TerminalText``
    /// escapes (C1 controls, format and other invisible characters; the log's writer already escapes C0, `DEL`,
    /// U+2028 and U+2029) as a JSON `\uXXXX` escape. They can stand only inside the line's strings, where the escape means the
    /// same character; so a line without them is printed byte for byte as the log holds it.
    static func terminalSafeJSON(_ line: [UInt8]) -> String {
        let text = String(decoding: line, as: UTF8.self)
        guard text.unicodeScalars.contains(where: { TerminalText.needsEscape($0, spaces: true) }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if TerminalText.needsEscape(scalar, spaces: true) {
                // Four hex digits per UTF-16 unit: a character past the Basic Multilingual Plane (a tag character)
                // is its surrogate pair, as JSON spells it.
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16, uppercase: true)
                    out.append(contentsOf: ("\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex).unicodeScalars)
                }
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// What `audit verify` or `audit show` without a log says: where a run without `--audit` writes.
    static var noLogMessage: String {
        let place = SessionOptions.defaultAuditPath().map { "; a run without --audit writes to \(TerminalText.escaped($0))" } ?? ""
        return "give a LOG file or --from postgresql://...\(place)"
    }

    /// One row of the central tables as a JSON line: `{"origin":ORIGIN,"entry":LINE}` with the entry's exact line, or
    /// `{"origin":ORIGIN,"seq":N,"entry":null}` for a stored line that is not an entry.
    static func centralJSON(origin: String, seq: Int64, entry: AuditEntry?) -> String {
        let originText = terminalSafeJSON(Array(jsonString(origin).utf8))
        guard let entry else { return "{\"origin\":\(originText),\"seq\":\(seq),\"entry\":null}" }
        return "{\"origin\":\(originText),\"entry\":\(terminalSafeJSON(entry.serialized()))}"
    }

    /// `text` as a JSON string literal (quotes, backslashes and controls escaped).
    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Pads or cuts (with an ellipsis) to exactly `width` characters.
    fileprivate static func pad(_ s: String, _ width: Int) -> String {
        // Cut by Unicode scalars, not characters: one character may carry thousands of combining marks.
        let scalars = s.unicodeScalars
        if scalars.count > width {
            var cut = String.UnicodeScalarView()
            cut.append(contentsOf: scalars.prefix(width - 1))
            return String(cut) + "…"
        }
        return s + String(repeating: " ", count: max(0, width - s.count))
    }
}
