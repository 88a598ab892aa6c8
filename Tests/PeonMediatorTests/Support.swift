import Foundation
import PeonAudit
import PeonInterface
@testable import PeonMediator

/// A temporary folder (symlinks resolved) removed when the test's fixture is released.
final class Scratch {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("peon-mediator-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.resolvingSymlinksInPath().path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String, _ text: String) throws -> String {
        let full = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        return full
    }

    func contents(_ name: String) -> String? {
        try? String(contentsOfFile: path + "/" + name, encoding: .utf8)
    }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + name) }
}

/// A mediator over grants written as TOML, with its own audit log, for one test.
final class Harness {
    let scratch: Scratch
    let store: MediatorPolicyStore
    let audit: AuditLog
    let auditPath: String
    let mediator: Mediator
    var logLines: [String] { lines.withLock { $0 } }
    private let lines = LockedLines()

    init(
        grants: String? = nil, scratch: Scratch? = nil, approver: (any Approver)? = nil,
        databases: [String: String] = [:], callQuota: Int? = nil, http: (any HTTPSender)? = nil,
        environment: [String: String] = [:], now: (@Sendable () -> ContinuousClock.Instant)? = nil,
        deadline: Duration = .seconds(60), sync: AuditSyncMode = .always,
        configure: (inout MediatorConfiguration) -> Void = { _ in }
    ) throws {
        let scratch = try scratch ?? Scratch()
        self.scratch = scratch
        let snapshot: PolicySnapshot
        if let grants {
            let path = try scratch.file("grants.toml", grants)
            snapshot = try PolicySnapshot.load(PolicySources(grantsPath: path), defaultModule: "agent")
        } else {
            snapshot = try PolicySnapshot.load(PolicySources(), defaultModule: "agent")
        }
        store = MediatorPolicyStore(snapshot)
        auditPath = scratch.path + "/audit.log"
        // One key for every harness, as one host has one key: two harnesses on one log (two runs) must both be
        // able to vouch for its checkpoint, which is written when the log is created.
        guard let signer = testSigner else { throw HostError(.io, "no test signing key") }
        audit = try AuditLog.open(path: auditPath, signer: signer, sync: sync)
        var configuration = MediatorConfiguration(
            module: snapshot.compiled?.grants.module ?? "agent", moduleSHA256: String(repeating: "ab", count: 32),
            runID: "run-1", policy: store, audit: audit, workingDirectory: scratch.path,
            deadline: ContinuousClock.now.advanced(by: deadline))
        if let approver { configuration.approver = approver }
        configuration.databases = databases
        configuration.callQuota = callQuota
        configuration.http = http
        configuration.environment = environment
        if let now { configuration.now = now }
        let sink = lines
        configuration.logSink = { line in sink.append(line) }
        configure(&configuration)
        mediator = Mediator(configuration)
    }

    /// Every entry in the audit log so far.
    func entries() throws -> [AuditEntry] {
        let data = try Data(contentsOf: URL(fileURLWithPath: auditPath))
        return try data.split(separator: 0x0A).map { line in try AuditEntry.parse(Array(line)).get() }
    }

    /// The decision entries (allow or deny) for `call`.
    func decisions(_ call: String) throws -> [AuditRecord] {
        try entries().map(\.record).filter { $0.call == call && $0.decision != nil }
    }

    /// Calls `body` and returns the host error it throws, or `nil`.
    func error<T>(_ body: () throws(HostError) -> T) -> HostError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    func withLock<T>(_ body: ([String]) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(lines) }
}

/// Values appended from any thread (a reloader's events).
final class LockedList<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Element] = []
    func append(_ item: Element) { lock.lock(); items.append(item); lock.unlock() }
    var all: [Element] { lock.lock(); defer { lock.unlock() }; return items }
}

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = ContinuousClock.now
    func now() -> ContinuousClock.Instant { lock.lock(); defer { lock.unlock() }; return current }
    func advance(_ duration: Duration) { lock.lock(); current = current.advanced(by: duration); lock.unlock() }
}

/// An HTTP transport that records what it was asked and answers 200.
final class RecordingSender: HTTPSender, @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [(OutgoingRequest, [HTTPHeader], Set<String>, Int)] = []
    var sent: [(OutgoingRequest, [HTTPHeader], Set<String>, Int)] { lock.lock(); defer { lock.unlock() }; return requests }
    var responseHeaders: [HTTPHeader] = []
    var responseBody: [UInt8] = Array("ok".utf8)
    var responseStatus: UInt16 = 200

    func send(
        _ request: OutgoingRequest, injectedHeaders: [HTTPHeader], allowedAddresses: Set<String>,
        maxResponseBytes: Int, deadline: ContinuousClock.Instant
    ) throws(HostError) -> HTTPResponseValue {
        lock.lock()
        requests.append((request, injectedHeaders, allowedAddresses, maxResponseBytes))
        lock.unlock()
        return HTTPResponseValue(status: responseStatus, headers: responseHeaders, body: responseBody)
    }
}

/// The signing key of every ``Harness`` in this test process.
let testSigner: CheckpointSigner? = try? CheckpointSigner.generate(name: "peon-test")
