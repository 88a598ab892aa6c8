import Foundation
import PeonMCP
import PeonTestSupport
import Synchronization
import Testing

/// Threat: a client on stdio that declared elicitation, made a call whose grant needs approval, and closed its input
/// without answering (it crashed, or a script ended). Its answer could only come on stdin, yet the call waited up to
/// `--approval-timeout` (and its deadline) before it was refused, holding the server's exit, the call's decision and
/// its `run.end`. The end of input now refuses such an approval at once, with the audit answer
/// `client closed its input`.
@Suite struct McpApprovalInputEndTests {
    /// Far past the bound the server must exit within, for the approval and the call's deadline alike: without the
    /// end of input ending the wait, the test's bound passes first.
    static let longWait = "600s"
    /// How long the server may take to exit once its input ended: generous, for a loaded machine, and a tenth of the
    /// waits above.
    static let bound: TimeInterval = 60

    /// The `initialize` of a client that declares elicitation (answered before it sends anything else: a call sent
    /// before the server has read the client's capabilities is not asked through it).
    static let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"gone","version":"1"}}}"#

    /// What the client sends once initialized: a call of `guarded` (a read that needs approval).
    static let call = [
        #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"guarded","arguments":{"input":"data/hello.txt"}}}"#,
    ]

    /// A folder with `data/hello.txt` and `guarded.toml`: `reader.wat` may read `data/*.txt`, each read approved by a
    /// person, within a deadline of ``longWait``.
    static func setUp(_ directory: URL) throws {
        let fixture = repositoryRoot.appendingPathComponent("Tests/PeonMCPTests/MCP/reader.wat").path
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        try Data("hello from a granted file".utf8).write(to: directory.appendingPathComponent("data/hello.txt"))
        try Data("""
            module = "guarded"
            [limits]
            timeout = "\(longWait)"
            [tool]
            wasm = "\(fixture)"
            description = "Reads a text file under data/, each read approved by a person."
            [[fs]]
            paths = ["data/*.txt"]
            allow = ["read"]
            approval = true

            """.utf8).write(to: directory.appendingPathComponent("guarded.toml"))
    }

    /// What one server did: its exit status, how long it ran after its input ended, its stdout, stderr and log.
    struct Run: Sendable {
        var status: Int32 = -1
        var seconds = 0.0
        var asked = false
        var stdout = ""
        var stderr = ""
        var failure: String?
    }

    /// Reads `fd` into `received` until it holds `needle`, `fd` ends, or ``bound`` seconds passed; whether it holds it.
    static func read(_ fd: Int32, into received: inout Data, until needle: String) -> Bool {
        let started = Date()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while received.range(of: Data(needle.utf8)) == nil {
            let left = bound - Date().timeIntervalSince(started)
            guard left > 0 else { return false }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(left * 1000)) > 0 else { continue }
            let count = Glibc.read(fd, &buffer, buffer.count)
            guard count > 0 else { return false }
            received += buffer[0..<count]
        }
        return true
    }

    /// Runs `peon-wasm mcp` in `directory`: initializes it, sends ``call``, then, with `waitForQuestion`, waits until it
    /// has asked for approval (an `elicitation/create` on stdout) before it closes the server's input, else closes it
    /// at once. Stops it past ``bound``.
    static func serve(_ directory: URL, log: String, waitForQuestion: Bool) -> Run {
        var run = Run()
        let process = Process()
        process.executableURL = peonWasmExecutable
        process.arguments = ["mcp", "--audit", log, "--approval-timeout", longWait, "guarded.toml"]
        process.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = testConfigHome
        process.environment = environment
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            run.failure = "peon-wasm did not start: \(error)"
            return run
        }
        let errorText = Collected()
        let errorReader = Thread { errorText.append(errors.fileHandleForReading.readDataToEndOfFile()) }
        errorReader.start()
        let stdout = output.fileHandleForReading.fileDescriptor
        var received = Data()
        input.fileHandleForWriting.write(Data((initialize + "\n").utf8))
        if !read(stdout, into: &received, until: #""id":1,"#) {
            run.failure = "no answer to initialize"
        }
        input.fileHandleForWriting.write(Data((call.joined(separator: "\n") + "\n").utf8))
        if waitForQuestion {
            run.asked = read(stdout, into: &received, until: #""method":"elicitation/create""#)
        }
        try? input.fileHandleForWriting.close()
        let closed = Date()
        let done = DispatchSemaphore(value: 0)
        let outputText = Collected()
        let outputReader = Thread {
            outputText.append(output.fileHandleForReading.readDataToEndOfFile())
            done.signal()
        }
        outputReader.start()
        while process.isRunning && Date().timeIntervalSince(closed) < bound { Thread.sleep(forTimeInterval: 0.05) }
        run.seconds = Date().timeIntervalSince(closed)
        if process.isRunning {
            run.failure = "the server still ran \(Int(bound)) s after its input ended"
            process.terminate()
        }
        process.waitUntilExit()
        _ = done.wait(timeout: .now() + 10)
        run.status = process.terminationStatus
        run.stdout = String(decoding: received + outputText.data, as: UTF8.self)
        run.stderr = String(decoding: errorText.data, as: UTF8.self)
        return run
    }

    @Test(arguments: [true, false])
    func anApprovalWaitingForAClientWhoseInputEndedIsRefusedAtOnce(waitForQuestion: Bool) async throws {
        try await withTemporaryDirectory { directory in
            try Self.setUp(directory)
            let log = directory.appendingPathComponent("audit.jsonl").path
            let run: Run = await withCheckedContinuation { continuation in
                let thread = Thread { continuation.resume(returning: Self.serve(directory, log: log, waitForQuestion: waitForQuestion)) }
                thread.start()
            }
            #expect(run.failure == nil, "\(run.failure ?? ""): \(run.stderr.suffix(2000))")
            if waitForQuestion { #expect(run.asked, "no approval question before the input ended: \(run.stdout)") }
            #expect(run.status == 0 && run.seconds < Self.bound,
                    "exit \(run.status) \(run.seconds) s after the input ended: \(run.stderr.suffix(2000))")
            let entries = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").compactMap { line in
                try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            } ?? []
            let decisions = entries.filter { $0["call"] as? String == "fs.read" && $0["decision"] != nil }
            #expect(decisions.count == 1, "fs.read decisions: \(decisions)")
            let decision = decisions.first
            let details = decision?["details"] as? [String: Any]
            #expect(decision?["decision"] as? String == "deny", "\(String(describing: decision))")
            #expect(details?["approval"] as? String == ElicitationApprover.inputClosedAnswer, "\(String(describing: decision))")
            #expect(details?["approver"] as? String == "mcp-elicitation:gone", "\(String(describing: decision))")
            #expect(entries.filter { $0["call"] as? String == "run.end" }.count == 1, "run.end entries: \(entries)")
            // The call is answered (its client may still read stdout): an error naming why.
            #expect(run.stdout.contains(#""id":2"#) && run.stdout.contains(ElicitationApprover.inputClosedAnswer),
                    "the call's answer: \(run.stdout)")
        }
    }
}

/// Bytes one reading thread collects, read by the test once the thread is done.
private final class Collected: Sendable {
    private let bytes = Mutex<Data>(Data())
    func append(_ data: Data) { bytes.withLock { $0 += data } }
    var data: Data { bytes.withLock { $0 } }
}
