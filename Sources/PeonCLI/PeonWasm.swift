import ArgumentParser

/// The `peon-wasm` command: runs WebAssembly agent modules under grants, with every host call decided
/// by policy and recorded in a tamper-evident audit log.
@main
struct PeonWasm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peon-wasm",
        abstract: "Run WebAssembly agent modules that can touch the world only through audited, policy-checked host calls.",
        version: "0.1.0",
        subcommands: [PolicyCommand.self, AuditCommand.self, GrantsCommand.self])
}
