import ArgumentParser
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

    /// Parses and runs the command. A usage error (exit 64: an unknown option, a malformed or
    /// out-of-range value) is printed as one `peon-wasm: error:` line like every other failure, not as
    /// ArgumentParser's multi-line block; help, version and other exits go through ArgumentParser.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
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
                let text = Self.message(for: error).split(whereSeparator: \.isWhitespace).joined(separator: " ")
                let hint = Self.dashValueHint(for: text, arguments: Array(CommandLine.arguments.dropFirst())).map { "; \($0)" } ?? ""
                printError("peon-wasm: error: \(text)\(hint) (see --help)")
                Self.exit(withError: code)
            }
            exit(withError: error)
        }
    }
}
