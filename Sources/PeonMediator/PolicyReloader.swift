import Dispatch
import Foundation
import Synchronization

/// Reloads a run's policy without a restart: when the grants, model or policy file changes (its
/// modification time, size or inode), or when the process gets `SIGHUP`, the files are loaded again
/// and the new snapshot is swapped into the ``MediatorPolicyStore`` atomically. Running mediators pick
/// it up on their next call; a call already past its decision finishes under the policy that decided it.
///
/// A broken edit (a TOML or CSV error, an unknown key, a model the engine refuses) is rejected: the
/// error goes to `report` (`peon-wasm: ...` on stderr when `nil`) as one line and the old policy stays in force.
///
/// A reload is judged exactly like a fresh start: grants that pin a `sha256` other than the running
/// module's (which refuse a fresh start) are swapped in as a snapshot that denies every further call,
/// each denial audited with a reason naming the mismatch (``PolicySnapshot/judged(forModuleSHA256:)``).
/// A later reload with a matching pin (or none) lifts it, as a restart with those grants would.
public final class PolicyReloader: Sendable {
    /// What a reload attempt did.
    public enum Outcome: Sendable, Hashable {
        /// Nothing changed on disk.
        case unchanged
        /// A new snapshot is in force; its version.
        case reloaded(version: String)
        /// The files changed but do not load; the old policy stays. The error line.
        case rejected(String)
    }

    private struct Stamp: Hashable {
        var modified: Double
        var size: UInt64
        var inode: UInt64
    }

    private let sources: PolicySources
    private let defaultModule: String
    private let moduleSHA256: String?
    private let store: MediatorPolicyStore
    private let report: @Sendable (String) -> Void
    private let changed: (@Sendable (Outcome) -> Void)?
    private let stamps: Mutex<[String: Stamp?]>
    private let sources_: Mutex<[WatchSource]> = Mutex([])
    private let queue = DispatchQueue(label: "peon-wasm.policy-reloader")

    /// Creates a reloader for `store`, remembering the files' current state.
    ///
    /// `moduleSHA256` is the running module's SHA-256 (lowercase hex), against which a reloaded grants
    /// `sha256` pin is checked; when it is `nil`, any pinned grants deny every call (the pin cannot be
    /// confirmed).
    public init(sources: PolicySources, defaultModule: String, store: MediatorPolicyStore,
                moduleSHA256: String? = nil, report: (@Sendable (String) -> Void)? = nil,
                changed: (@Sendable (Outcome) -> Void)? = nil) {
        self.changed = changed
        self.sources = sources
        self.defaultModule = defaultModule
        self.moduleSHA256 = moduleSHA256
        self.store = store
        self.report = report ?? { line in FileHandle.standardError.write(Data(("peon-wasm: " + line + "\n").utf8)) }
        var initial: [String: Stamp?] = [:]
        for file in sources.files { initial[file] = Self.stamp(file) }
        stamps = Mutex(initial)
    }

    /// Reloads if any watched file changed since the last look (or unconditionally when `force`).
    @discardableResult
    public func reloadIfChanged(force: Bool = false) -> Outcome {
        let changed = stamps.withLock { stamps -> Bool in
            var changed = force
            for file in sources.files {
                let now = Self.stamp(file)
                if stamps[file] != .some(now) { changed = true }
                stamps[file] = now
            }
            return changed
        }
        guard changed else { return .unchanged }
        do {
            let snapshot = try PolicySnapshot.load(sources, defaultModule: defaultModule)
                .judged(forModuleSHA256: moduleSHA256)
            let old = store.current
            store.replace(with: snapshot)
            if let refusal = snapshot.refusal {
                report("policy reloaded: \(refusal)")
            } else if snapshot.version != old.version || old.refusal != nil {
                report("policy reloaded: version \(snapshot.version.prefix(12)) (was \(old.version.prefix(12)))")
            }
            self.changed?(.reloaded(version: snapshot.version))
            return .reloaded(version: snapshot.version)
        } catch {
            report("policy reload rejected, the previous policy stays in force: \(error.description)")
            self.changed?(.rejected(error.description))
            return .rejected(error.description)
        }
    }

    /// Starts watching: polls the files every `interval` and reloads on `SIGHUP`. Idempotent per call
    /// of ``stop()``. `SIGHUP`'s default action (terminate) is turned off while watching.
    public func start(interval: Duration = .seconds(1), handleHangup: Bool = true) {
        let milliseconds = Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(max(10, milliseconds)))
        timer.setEventHandler { [weak self] in self?.reloadIfChanged() }
        timer.resume()
        var started = [WatchSource(timer)]
        if handleHangup {
            signal(SIGHUP, SIG_IGN)
            let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
            hangup.setEventHandler { [weak self] in self?.reloadIfChanged(force: true) }
            hangup.resume()
            started.append(WatchSource(hangup))
        }
        sources_.withLock { $0 += started }
    }

    /// Stops watching.
    public func stop() {
        let running = sources_.withLock { sources in
            defer { sources.removeAll() }
            return sources
        }
        for watch in running { watch.source.cancel() }
    }

    deinit { stop() }

    private static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return Stamp(modified: modified, size: UInt64(info.st_size), inode: UInt64(info.st_ino))
    }
}

/// A dispatch source held by the reloader. Dispatch sources are thread-safe objects (their `cancel()`
/// may be called from any thread), which is the invariant behind the unchecked conformance.
private final class WatchSource: @unchecked Sendable {
    let source: any DispatchSourceProtocol
    init(_ source: any DispatchSourceProtocol) { self.source = source }
}
