// PeonBench: the cost of mediation, measured side by side with native operations and with pycasbin.
// Run everything with Benchmarks/run.sh, which builds this in release mode and writes Benchmarks/RESULTS.md.
//
//   PeonBench [--quick] [--only floor,labels,compute,policy,audit,agents,mcp,components] [--peon-wasm PATH] [--out PATH] [--pycasbin SCRIPT]
//   PeonBench --profile denied|allowed|noop|query|insert|get|native-get|exec|native-exec [--calls N]
//   PeonBench --help
import Foundation
import PeonAudit
import PeonEngineWasmKit
import PeonInterface
import PeonMediator
import PeonRuntime

let arguments = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
let allSections = ["floor", "labels", "compute", "policy", "audit", "agents", "mcp", "components"]
let profiles = ["denied", "allowed", "append", "noop", "query", "insert", "get", "native-get", "exec", "native-exec"]
let usage = """
    usage: PeonBench [--quick] [--only SECTIONS] [--out PATH] [--pycasbin SCRIPT] [--peon-wasm PATH]
           PeonBench --profile PROFILE [--calls N]
    SECTIONS: a comma-separated subset of \(allSections.joined(separator: ",")) (default: all).
    PROFILE: one of \(profiles.joined(separator: ", ")): N calls of one kind, for perf.
    Benchmarks/run.sh builds this in release mode and writes Benchmarks/RESULTS.md; run that instead.
    """

/// One line on stderr and exit status 2: a flag this program does not know must not start a ten-minute run.
func refuseArguments(_ message: String) -> Never {
    FileHandle.standardError.write(Data("PeonBench: error: \(TerminalText.escaped(message)); run PeonBench --help\n".utf8))
    exit(2)
}

if arguments.contains("--help") || arguments.contains("-h") {
    print(usage)
    exit(0)
}
if !arguments.contains("--append-child") {
    let takesValue: Set = ["--out", "--only", "--pycasbin", "--peon-wasm", "--profile", "--calls"]
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--quick" {
            index += 1
        } else if takesValue.contains(argument) {
            guard index + 1 < arguments.count else { refuseArguments("\(argument) needs a value") }
            index += 2
        } else {
            refuseArguments("unknown argument '\(argument)'")
        }
    }
}
let quick = arguments.contains("--quick")
let out = option("--out") ?? "RESULTS.md"
let sections = Set((option("--only") ?? allSections.joined(separator: ",")).split(separator: ",").map(String.init))
if let unknown = sections.subtracting(allSections).sorted().first { refuseArguments("unknown section '\(unknown)' in --only") }
if let profile = option("--profile"), !profiles.contains(profile) { refuseArguments("unknown profile '\(profile)'") }
if let calls = option("--calls"), (Int(calls) ?? 0) <= 0 { refuseArguments("--calls needs a positive whole number, not '\(calls)'") }
let pycasbinScript = option("--pycasbin") ?? "pycasbin_bench.py"

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "unknown"
}

func machineDescription() -> [String] {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last?
        .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    var name = utsname()
    uname(&name)
    let kernel = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let memory = ProcessInfo.processInfo.physicalMemory
    let environment = ProcessInfo.processInfo.environment
    return [
        "- CPU: \(model), \(ProcessInfo.processInfo.activeProcessorCount) cores available to this process",
        "- Memory: \(memory >> 30) GiB; Linux \(kernel)",
        "- Toolchain: \(environment["BENCH_TOOLCHAIN"] ?? "unknown"); release build (`swift build -c release`)",
        "- Python: \(environment["BENCH_PYTHON"] ?? "unknown"); pycasbin \(environment["BENCH_PYCASBIN"] ?? "unknown"); wasmtime (C API via the wasmtime Python wheel) \(environment["BENCH_WASMTIME"] ?? "unknown")",
        "- Load average (1, 5, 15 min) at the start: \(loadAverage()) — the machine is shared; numbers under load are pessimistic, ratios within one run less so",
    ]
}

// `--append-child LOG KEY SECONDS SYNC DURABILITY`: one appending process of the multi-process audit benchmark (section 5).
if let log = option("--append-child") {
    exit(AuditBench.appendChild(log: log, arguments: Array(arguments.drop { $0 != "--append-child" }.dropFirst(2))))
}

// `--profile append --calls COUNT`: COUNT appends of section 5's typical entry (1,000 records built first, so the
// profile is the log's own work) from one thread, `batch` sync, buffered: the audit log alone, for perf.
if option("--profile") == "append" {
    do {
        let count = Int(option("--calls") ?? "") ?? 100_000
        let directory = try makeTemporaryDirectory("append")
        let log = try AuditLog.open(path: directory + "/log.jsonl", signer: try CheckpointSigner.generate(name: "bench.peon-wasm"),
                                    sync: .batch)
        let records = (0..<1000).map(AuditBench.record)
        let elapsed = try seconds {
            for index in 0..<count { _ = try log.append(records[index % records.count], durability: .buffered) }
        }
        try log.close()
        print("\(count) appends: \(formatNS(elapsed * 1e9 / Double(count))) per append")
        try? FileManager.default.removeItem(atPath: directory)
    } catch {
        print("profile failed: \(error)")
        exit(1)
    }
    exit(0)
}

// `--profile denied|allowed|noop|query|insert|get|native-get|exec|native-exec --calls COUNT`: only make COUNT mediated calls on WasmKit (batch
// audit): a denied or allowed fs.read, the floor, a db.query point select, a db.execute insert, a loopback
// http.send GET or its native twin, an exec.run of /bin/true or its native twin; for perf/callgrind.
if let what = option("--profile") {
    do {
        let count = Int(option("--calls") ?? "") ?? 100_000
        let server = try LoopbackServer()
        let workspace = try Workspace(httpPort: server.port)
        let (session, _) = try workspace.session(sync: .batch, name: "profile")
        let guest = try Guest(module: try WasmKitEngine().compile(workspace.moduleBytes), hostFunctions: session.hostFunctions)
        var writer = ArgumentWriter()
        let path = writer.string(what == "allowed" ? "data/small.txt" : "secret.txt")
        let database = writer.string("bench")
        let selectSQL = writer.string(NativeSQLite.selectSQL)
        let selectParams = writer.integers([42])
        let program = writer.string("/bin/true")
        let noArgs = writer.strings([])
        let noStdin = writer.raw([])
        let insertSQL = writer.string(NativeSQLite.insertSQL)
        let insertParams = writer.integers([7])
        let url = "http://127.0.0.1:\(server.port)/ping"
        let method = writer.string("GET")
        let target = writer.string(url)
        let http = HTTPCapability()
        defer { http.shutdown() }
        try guest.load(writer)
        let elapsed = try seconds {
            switch what {
            case "exec":
                _ = try guest.loop("exec_run", [program.0, program.1, noArgs.0, noArgs.1, noStdin.0, noStdin.1], count: count)
            case "insert":
                _ = try guest.loop("db_execute", [database.0, database.1, insertSQL.0, insertSQL.1, insertParams.0, insertParams.1], count: count)
            case "get":
                _ = try guest.loop("http_send", [method.0, method.1, target.0, target.1, 0, 0, 0, 0], count: count)
            case "native-get":
                for _ in 0..<count {
                    _ = try http.send(OutgoingRequest(method: "GET", url: CanonicalURL(parsing: url)), injectedHeaders: [],
                                      allowedAddresses: ["127.0.0.1"], maxResponseBytes: 1 << 20,
                                      deadline: ContinuousClock.now + .seconds(30))
                }
            case "native-exec":
                for _ in 0..<count { _ = try NativeExec.run("/bin/true") }
            case "query":
                _ = try guest.loop("db_query", [database.0, database.1, selectSQL.0, selectSQL.1, selectParams.0, selectParams.1], count: count)
            case "noop": _ = try guest.loop("noop", [path.0, path.1], count: count)
            default: _ = try guest.loop("fs_read", [path.0, path.1], count: count)
            }
        }
        session.finish(outcome: "ok", reason: "")
        print("\(count) \(what) calls: \(formatNS(elapsed * 1e9 / Double(count))) per call")
        try? FileManager.default.removeItem(atPath: workspace.root)
    } catch {
        print("profile failed: \(error)")
        exit(1)
    }
    exit(0)
}

let report = Report(path: out)
report.line("# peon-wasm benchmarks")
report.line()
report.line("Generated by `Benchmarks/run.sh`\(quick ? " --quick" : "") on \(ISO8601DateFormatter().string(from: Date())). Every number below was measured in this one run; ratios compare numbers from the same run.")
report.line()
for line in machineDescription() { report.line(line) }
report.line()

do {
    let engines = availableEngines(report: report)
    let server = try LoopbackServer()
    let workspace = try Workspace(httpPort: server.port)
    if sections.contains("floor") {
        try GuestBench(report: report, workspace: workspace, engines: engines, server: server, quick: quick).run()
    }
    if sections.contains("labels") {
        try LabelBench(report: report, engines: engines, server: server, quick: quick).run()
    }
    if sections.contains("compute") {
        try ComputeBench(report: report, engines: engines, quick: quick).run()
    }
    if sections.contains("policy") {
        try PolicyBench(report: report, scriptPath: pycasbinScript, quick: quick).run()
    }
    if sections.contains("audit") {
        try AuditBench(report: report, quick: quick).run()
    }
    if sections.contains("mcp") {
        let script = URL(fileURLWithPath: pycasbinScript).deletingLastPathComponent().appendingPathComponent("mcp_bench.py").path
        let root = URL(fileURLWithPath: script).deletingLastPathComponent().deletingLastPathComponent().path
        try McpBench(report: report, peonWasm: option("--peon-wasm"), script: script, repositoryRoot: root, quick: quick).run()
    }
    if sections.contains("agents") {
        try AgentBench(report: report, workspace: workspace, engines: engines, quick: quick).run()
    }
    if sections.contains("components") {
        try ComponentBench(report: report, workspace: workspace, quick: quick).run()
    }
    report.line("Load average at the end: \(loadAverage()).")
    try? FileManager.default.removeItem(atPath: workspace.root)
} catch {
    report.line()
    report.line("**The run stopped with an error:** \(error)")
    report.line("Load average at the end: \(loadAverage()).")
    exit(1)
}
