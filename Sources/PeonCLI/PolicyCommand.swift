import ArgumentParser
import Foundation
import PeonPolicy
import PeonInterface
import PeonMediator
import PeonPostgres
import PeonSystem

/// `peon-wasm policy`: tools for Casbin models and policies.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check and evaluate Casbin-compatible authorization policies.",
        subcommands: [PolicyEvalCommand.self, PolicyExplainCommand.self])
}

/// `peon-wasm policy eval`: decides JSON Lines requests against a model and a policy, so a policy
/// can be tested in CI with the exact engine the runtime uses.
struct PolicyEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Decide requests (JSON Lines, one JSON array per line) against a model and a policy.",
        discussion: """
            Each input line is a JSON array of the request's values in request_definition order: strings, \
            numbers, booleans, or objects for attribute access (r.sub.Age). Each output line is `true` or \
            `false`; with --explain, a tab, the deciding rule's location and the rule follow. Blank input \
            lines are skipped. A model or policy error, a malformed request line or a request with the \
            wrong number of values prints FILE:LINE[:COLUMN]: message and exits with status 2; the \
            answers to the lines before a failing request line are printed first.
            """)

    @Option(name: .long, help: "The Casbin model (.conf).")
    var model: String

    @Option(name: .long, help: "The Casbin policy (.csv), or a policy store postgresql://USER@HOST:PORT/DB (Casbin's casbin_rule table).")
    var policy: String

    @Flag(name: .long, help: "Append the deciding rule to each answer: true<TAB>policy.csv:3<TAB>p, alice, data1, read.")
    var explain = false

    @Option(name: .customLong("role-pattern"), help: ArgumentHelp(
        "Match a role type's names with a pattern function, as Go Casbin's AddNamedMatchingFunc: g2=keyMatch2 (repeatable).",
        valueName: "ROLE=FUNCTION"))
    var rolePatterns: [String] = []

    @Option(name: .customLong("domain-pattern"), help: ArgumentHelp(
        "Match a role type's domains with a pattern function, as Go Casbin's AddNamedDomainMatchingFunc: g=keyMatch2 (repeatable).",
        valueName: "ROLE=FUNCTION"))
    var domainPatterns: [String] = []

    @Argument(help: "A JSON Lines file of requests, or - for standard input.")
    var requests: String = "-"

    func validate() throws {
        // One standard input feeds one text: `--model -` with the requests' default `-` read the model and left no
        // requests (exit 0, nothing printed).
        let fromStandardInput = [("--model", model), ("--policy", policy), ("REQUESTS", requests)].filter { $0.1 == "-" }.map(\.0)
        if fromStandardInput.count > 1 {
            throw ValidationError("\(fromStandardInput.joined(separator: " and ")) are each - (standard input), which can feed only one of them (REQUESTS is - unless given); name the others as files")
        }
        do throws(CommandFailure) {
            _ = try declaredPatterns()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        do {
            try evaluate()
        } catch {
            throw failure(error.message, code: error.isUsage ? 64 : 2)
        }
    }

    private struct CommandFailure: Error {
        var message: String
        /// A mistake on the command line (exit 64) rather than in a file it names (exit 2).
        var isUsage = false
    }

    /// The largest request input (`REQUESTS`, a file, a pipe or standard input) read: 64 MiB.
    static let maxRequestBytes = 64 << 20

    /// The text of a model, policy or request file (`-`: standard input), at most `limit` bytes, read with
    /// ``BoundedRead``: a model or policy must be a regular file (a FIFO is refused, not waited on); requests
    /// may also come through a pipe. One leading byte order mark is dropped (``OperatorText``). `what` names the
    /// text in an error about standard input, which has no path to check: `the requests`.
    private func read(_ path: String, _ what: String, limit: Int, streams: BoundedRead.Streams = .refused) throws(CommandFailure) -> String {
        let standardInput = path == "-"
        let label = standardInput ? "<stdin>" : path
        let bytes: [UInt8]
        do throws(BoundedReadError) {
            if standardInput {
                bytes = try BoundedRead.contents(ofStream: 0, limit: limit)
            } else {
                bytes = try BoundedRead.contents(ofPath: path, limit: limit, streams: streams)
            }
        } catch {
            let advice = switch (standardInput, error.kind) {
            case (false, _): "check the path"
            case (true, .tooLarge): "give \(what) in a smaller input"
            case (true, _): "give \(what) on standard input from a file or a pipe, or name a file"
            }
            throw CommandFailure(message: "\(label): cannot read: \(error.reason); \(advice)")
        }
        do throws(OperatorTextError) {
            return try OperatorText.decode(bytes)
        } catch {
            let reason = standardInput ? error.message(readFromStandardInput: "\(what) read from standard input") : error.message
            throw CommandFailure(message: "\(label): cannot read: \(reason)")
        }
    }

    /// The `--role-pattern` and `--domain-pattern` declarations, by role type.
    private func declaredPatterns() throws(CommandFailure) -> [String: RolePatterns] {
        var result: [String: RolePatterns] = [:]
        for (flag, values) in [("--role-pattern", rolePatterns), ("--domain-pattern", domainPatterns)] {
            for value in values {
                let parts = value.split(separator: "=", maxSplits: 1).map(String.init)
                let names = BuiltinPatternFunction.allCases.map(\.rawValue).joined(separator: ", ")
                guard parts.count == 2, !parts[0].isEmpty, let function = BuiltinPatternFunction(rawValue: parts[1]) else {
                    throw CommandFailure(message: "\(flag) \(value): expected ROLE=FUNCTION, such as g2=keyMatch2, with FUNCTION one of \(names)")
                }
                if flag == "--role-pattern" {
                    result[parts[0], default: RolePatterns()].names = function
                } else {
                    result[parts[0], default: RolePatterns()].domains = function
                }
            }
        }
        return result
    }

    private func evaluate() throws(CommandFailure) {
        var policyText = ""
        var policySource = policy
        var storeRules: [PolicyRule] = []
        if PostgresAddress.isAddress(policy) {
            do {
                let store = PostgresPolicyStore(try PostgresAddress(policy))
                defer { store.stopWatching() }
                storeRules = try store.loadRules()
                policySource = store.name
            } catch let error as PostgresStoreError {
                throw CommandFailure(message: error.description)
            } catch let error as PolicyLoadError {
                throw CommandFailure(message: error.description)
            } catch {
                throw CommandFailure(message: "\(error)")
            }
        } else {
            policyText = try read(policy, "the Casbin policy", limit: PolicySnapshot.maxPolicyBytes)
        }
        let enforcer: Enforcer
        let modelText = try read(model, "the Casbin model", limit: PolicySnapshot.maxModelBytes)
        let modelSource = model == "-" ? "<stdin>" : model
        // A pattern declared for a role type the model lacks is the command line's mistake, not the model's.
        if let types = try? Enforcer.roleTypes(inModel: modelText, source: modelSource) {
            for (flag, values) in [("--role-pattern", rolePatterns), ("--domain-pattern", domainPatterns)] {
                for value in values {
                    let role = String(value.split(separator: "=", maxSplits: 1).first ?? "")
                    guard let arity = types[role] else {
                        let defined = types.isEmpty ? "none" : types.keys.sorted().joined(separator: ", ")
                        throw CommandFailure(message: "\(flag) \(value): \(modelSource) defines no role type '\(role)' in [role_definition] (it defines \(defined)); name one of those", isUsage: true)
                    }
                    if flag == "--domain-pattern", arity != 3 {
                        throw CommandFailure(message: "\(flag) \(value): '\(role)' in \(modelSource) has no domain (it is '_, _'), so its domains cannot be patterns; drop --domain-pattern or give the role a domain ('_, _, _')", isUsage: true)
                    }
                }
            }
        }
        do {
            enforcer = try Enforcer(model: modelText,
                                    modelSource: modelSource, policy: policyText,
                                    policySource: policySource == "-" ? "<stdin>" : policySource,
                                    additionalRules: storeRules,
                                    // The functions `run` registers, so the model grants compile to (and a model built
                                    // on it, with roles layered on) can be tested here as it decides there.
                                    functions: PeonMatchers.registry,
                                    rolePatterns: try declaredPatterns())
        } catch let error as PolicyError {
            throw CommandFailure(message: error.description)
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure(message: "\(error)")
        }
        let label = requests == "-" ? "<stdin>" : requests
        let input = try read(requests, "the requests", limit: Self.maxRequestBytes, streams: .pipes)
        let decoder = JSONDecoder()
        var output = ""
        // Every answer decided before a failing line is printed before the error, so a long run
        // shows how far it got.
        defer { FileHandle.standardOutput.write(Data(output.utf8)) }
        for (index, line) in input.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            // JSON's own white space only (space, tab, CR): a no-break or ideographic space around a request is not
            // JSON to Casbin's Go and Python readers, so it is not trimmed away here either.
            let trimmed = String(String.UnicodeScalarView(line.unicodeScalars.drop { " \t\r".unicodeScalars.contains($0) }
                .reversed().drop { " \t\r".unicodeScalars.contains($0) }.reversed()))
            if trimmed.isEmpty { continue }
            let request: [PolicyValue]
            // Strict JSON first: Foundation's reader takes a trailing comma (`["alice", "data1", "read",]`) that
            // Casbin's Go and Python readers refuse.
            if let problem = JSONSyntax.firstProblem(in: trimmed.utf8) {
                throw CommandFailure(message: "\(label):\(index + 1): malformed request: not JSON at byte \(problem.offset + 1) of the request: \(problem.reason); expected a JSON array such as [\"alice\", \"data1\", \"read\"]")
            }
            // JSON readers disagree on an object naming a member twice (this one kept the first value, Casbin's Go and
            // Python readers the last), so the answer would not be the one a real request gets elsewhere.
            if let name = JSONDuplicateMembers.first(in: trimmed.utf8) {
                throw CommandFailure(message: "\(label):\(index + 1): malformed request: the member '\(name)' appears twice in one object; name each attribute once")
            }
            do {
                request = try decoder.decode([PolicyValue].self, from: Data(trimmed.utf8))
            } catch {
                throw CommandFailure(message: "\(label):\(index + 1): malformed request; expected a JSON array of strings, numbers, booleans or objects, such as [\"alice\", \"data1\", \"read\"]")
            }
            let decision: PolicyDecision
            do {
                decision = try enforcer.enforce(request)
            } catch {
                throw CommandFailure(message: error.source == "request" ? "\(label):\(index + 1): \(error.message)" : "\(label):\(index + 1): \(error.description)")
            }
            output += decision.isAllowed ? "true" : "false"
            if explain, let rule = decision.rule { output += "\t\(TerminalText.escaped(rule.location))\t\(TerminalText.escaped(rule.csvLine))" }
            output += "\n"
            if output.utf8.count > 1 << 16 {
                FileHandle.standardOutput.write(Data(output.utf8))
                output = ""
            }
        }
    }
}
