import ArgumentParser
import Foundation
import PeonRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `peon-wasm` command: runs WebAssembly agent modules under grants, with every host call decided
/// by policy and recorded in a tamper-evident audit log.
@main
struct PeonWasm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peon-wasm",
        abstract: "Run WebAssembly agent modules that can touch the world only through audited, policy-checked host calls.",
        discussion: """
            Start with: peon-wasm run modules/hello/hello.wat
            Every command has --help. Exit codes are listed in docs/cli.md.
            """,
        version: "0.1.0",
        subcommands: [
            RunCommand.self,
            InspectCommand.self,
            PolicyCommand.self,
            AuditCommand.self,
            GrantsCommand.self,
            McpCommand.self,
        ])

    /// What to say when ArgumentParser reports "Missing value for '--NAME ...'" because the value given after
    /// `--NAME` is a negative number (`--timeout -1`): a token that begins with `-` is read as an option, so the
    /// value looked missing, and the range check that would name it never ran; likewise "Missing expected argument" for
    /// a positional number given negative (`audit prove LOG -1`). `nil` otherwise.
    static func dashValueHint(for message: String, arguments: [String]) -> String? {
        func isNegativeNumber(_ token: String) -> Bool {
            let bytes = Array(token.utf8.prefix(2))
            return bytes.count == 2 && bytes[0] == UInt8(ascii: "-") && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[1])
        }
        // A positional argument given as a negative number (`audit prove LOG -1`) was read as an option too.
        if message.hasPrefix("Missing expected argument '<"), let token = arguments.first(where: isNegativeNumber) {
            let name = message.dropFirst("Missing expected argument '".count).prefix { $0 != "'" }
            return "'\(token)' was read as an option, not as \(name), which is never negative"
        }
        guard message.hasPrefix("Missing value for '--") else { return nil }
        let name = message.dropFirst("Missing value for '".count).prefix { $0 != " " && $0 != "'" }
        guard let index = arguments.firstIndex(of: String(name)), index + 1 < arguments.count else { return nil }
        let value = arguments[index + 1]
        guard isNegativeNumber(value) else { return nil }
        return "a value that begins with '-' is written \(name)=VALUE (e.g. \(name)=\(value))"
    }

    /// "unknown command 'runn'; did you mean 'run'? ..." when the first word after `peon-wasm` (or after a command that
    /// only groups others, such as `audit`) names no command: ArgumentParser said only "Unexpected argument 'runn'"
    /// (or "2 unexpected arguments: 'runn', 'loop.wat'"). `nil` when the words name commands.
    static func unknownCommand(in arguments: [String]) -> String? {
        var command: any ParsableCommand.Type = PeonWasm.self
        var path = "peon-wasm"
        for word in arguments {
            let children = command.configuration.subcommands
            // A word that is an option, or a command that takes arguments of its own: nothing more to check.
            if word.hasPrefix("-") || children.isEmpty { return nil }
            if let child = children.first(where: { $0._commandName == word }) {
                command = child
                path += " " + word
                continue
            }
            if command == PeonWasm.self && word == "help" { return nil }
            let names = children.map { $0._commandName }
            let near = names.filter { editDistance($0, word) <= 2 }.sorted { editDistance($0, word) < editDistance($1, word) }
            let suggestion = near.first.map { "did you mean '\($0)'? " } ?? ""
            return "unknown command '\(word)' for \(path); \(suggestion)the commands are \(names.joined(separator: ", "))"
        }
        return nil
    }

    /// The Levenshtein distance between two short words.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// ArgumentParser's "The value 'x' is invalid for '--fuel <fuel>'", which it says of a number option given
    /// something that is not a number (its own types' messages say what they take), said with what is expected:
    /// "--fuel takes a whole number, such as 1000000; got 'x'". `nil` for any other message.
    static func numberHint(for message: String) -> String? {
        let prefix = "The value '"
        guard message.hasPrefix(prefix), let middle = message.range(of: "' is invalid for '") else { return nil }
        let value = message[message.index(message.startIndex, offsetBy: prefix.count)..<middle.lowerBound]
        let name = message[middle.upperBound...].prefix { $0 != " " && $0 != "'" }
        let example = name == "<seq>" ? "0 or 41" : name == "--fuel" ? "1000000" : "100"
        return "\(name) takes a whole number\(value.hasPrefix("-") ? " that is not negative" : ""), such as \(example); got '\(value)'"
    }

    /// Parses and runs the command. A usage error (exit 64: an unknown option, a malformed or
    /// out-of-range value) is printed as one `peon-wasm: error:` line like every other failure, not as
    /// ArgumentParser's multi-line block; help, version and other exits go through ArgumentParser.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        // The Swift runtime's crash reporter handles SIGQUIT (Ctrl-\) until `run` or `mcp` installs its own stop handler:
        // one arriving in those first milliseconds printed a 90-line "Program crashed" backtrace and was then lost (the
        // run went on to its timeout). Until then it ends the process by its default action, as SIGTERM and SIGINT do,
        // before any run has started.
        signal(SIGQUIT, SIG_DFL)
        // Before anything is loaded: a program a run execs must not read this process's memory (secrets, keys).
        ProcessHardening.forbidInspection()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = Self.exitCode(for: error)
            // An `ExitCode` is thrown after its message was printed: a usage error's exit code (64) alone must not
            // print a second, empty line.
            if code == .validationFailure, !(error is ExitCode) {
                let arguments = Array(CommandLine.arguments.dropFirst())
                if let unknown = Self.unknownCommand(in: arguments) {
                    printError("peon-wasm: error: \(unknown) (see --help)")
                    Self.exit(withError: code)
                }
                var text = Self.message(for: error).split(whereSeparator: \.isWhitespace).joined(separator: " ")
                if let number = Self.numberHint(for: text) { text = number }
                let hint = Self.dashValueHint(for: text, arguments: arguments).map { "; \($0)" } ?? ""
                printError("peon-wasm: error: \(text)\(hint) (see --help)")
                Self.exit(withError: code)
            }
            exit(withError: error)
        }
    }
}
