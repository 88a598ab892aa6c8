import ArgumentParser
import Foundation
import PeonEngine
import PeonEngineWasmKit
import PeonRuntime

/// `peon-wasm run`: runs a module in a supervised worker process under hard limits.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a module: a WASI command (_start) or a peon agent (run).",
        discussion: """
            The module runs in a sandbox: no files, no network, no environment, empty stdin, unless \
            granted. Every run has a wall-clock timeout, a memory cap, a host-call cap and an output \
            cap. Arguments after -- are passed to the module.

            Example: peon-wasm run modules/hello/hello.wat -- world
            """)

    @Argument(help: "The module: a .wasm binary or a .wat text file.")
    var module: String

    @Option(help: "Wall-clock limit for the whole run (e.g. 500ms, 30s, 2m).")
    var timeout: DurationArgument = DurationArgument(argument: "30s")!

    @Option(help: "Linear memory cap (e.g. 64MiB, 1GiB).")
    var memory: ByteSize = ByteSize(argument: "256MiB")!

    @Option(help: "Instruction budget; enables fuel metering (about 15% slower on WasmKit).")
    var fuel: UInt64?

    @Option(name: .customLong("max-host-calls"), help: "Most host calls (WASI and peon:host) one run may make.")
    var maxHostCalls: Int = 1_000_000

    @Option(name: .customLong("max-output"), help: "Most bytes the module may write to stdout and stderr together.")
    var maxOutput: ByteSize = ByteSize(argument: "16MiB")!

    @Flag(help: "Give the module this process's standard input (default: the module's stdin is empty).")
    var stdin = false

    @Option(name: .customLong("env"), help: ArgumentHelp("Add NAME=VALUE to the module's environment (repeatable; default: empty).", valueName: "NAME=VALUE"))
    var environment: [String] = []

    @Option(help: "The engine: wasmkit (default, pure Swift) or wasmtime (JIT, needs libwasmtime).")
    var engine: String = "wasmkit"

    @Option(name: .customLong("supervised-by"), help: .private)
    var supervisor: Int32?

    @Flag(name: .customLong("in-process"), help: .private)
    var inProcess = false

    @Argument(parsing: .postTerminator, help: "Arguments for the module, after --.")
    var arguments: [String] = []

    func validate() throws {
        guard maxHostCalls > 0 else { throw ValidationError("--max-host-calls must be at least 1") }
        guard memory.bytes >= 65_536 else { throw ValidationError("--memory must be at least 64KiB (one page)") }
        for entry in environment where !entry.contains("=") || entry.hasPrefix("=") {
            throw ValidationError("--env takes NAME=VALUE, got '\(entry)'")
        }
        guard ["wasmkit", "wasmtime"].contains(engine) else {
            throw ValidationError("--engine must be wasmkit or wasmtime, got '\(engine)'")
        }
    }

    func run() throws {
        if let supervisor {
            Supervisor.becomeWorker(supervisor: supervisor)
        } else if !inProcess {
            try superviseWorker()
            return
        }
        try runInProcess()
    }

    /// Starts this same command in a worker process and enforces the wall clock from here.
    private func superviseWorker() throws {
        let all = CommandLine.arguments
        let tail = all.firstIndex(of: "run").map { Array(all[($0 + 1)...]) } ?? []
        let exit: Supervisor.Exit
        do {
            exit = try Supervisor.run(
                executable: Supervisor.currentExecutable,
                arguments: ["run", "--supervised-by", String(getpid())] + tail,
                timeout: timeout.duration + Supervisor.grace)
        } catch {
            throw fail(error)
        }
        switch exit {
        case .exited(let code):
            if code != 0 { throw ExitCode(code) }
        case .timedOut:
            throw fail(RunError(.timeout,
                "'\(module)' did not finish within its wall-clock timeout of \(timeoutText); it was stopped. Raise the limit with --timeout"))
        case .signaled(let signal):
            throw fail(RunError(.internalError,
                "the worker running '\(module)' was killed by signal \(signal); if nothing outside killed it, this is a bug in peon-wasm or its engine — please report it"))
        }
    }

    private var timeoutText: String {
        let (seconds, attoseconds) = timeout.duration.components
        return attoseconds == 0 ? "\(seconds)s" : "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }

    private func runInProcess() throws {
        do {
            let file = try ModuleFile(path: module)
            var request = RunRequest(module: file, engine: try makeEngine())
            request.limits.memoryBytes = memory.bytes
            request.limits.timeout = timeout.duration
            request.limits.fuel = fuel
            request.limits.hostCalls = maxHostCalls
            request.limits.outputBytes = maxOutput.bytes
            request.arguments = arguments
            request.environment = environment.map { entry in
                let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
            if stdin { request.stdin = [UInt8](FileHandle.standardInput.readDataToEndOfFile()) }
            request.stdout = { writeAll(1, $0) }
            request.stderr = { writeAll(2, $0) }
            switch try Runner.run(request) {
            case .exited(let code):
                if code != 0 { throw ExitCode(Int32(truncatingIfNeeded: code & 0xff)) }
            case .agent(.success(let answer)):
                print(answer)
            case .agent(.failure(let message)):
                printError("peon-wasm: the agent returned an error: \(message)")
                throw ExitCode(1)
            }
        } catch let error as RunError {
            throw fail(error)
        }
    }

    private func makeEngine() throws(RunError) -> any WasmEngine {
        switch engine {
        case "wasmkit":
            return WasmKitEngine(fuelMetering: fuel != nil)
        default:
            throw RunError(.configuration, "the wasmtime engine is not part of this build yet; use --engine wasmkit")
        }
    }
}
