import Dispatch
import Foundation
import PeonPolicy
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
///
/// With a policy store (``PolicySources/policyStore``), its change announcements and a periodic
/// re-read (every ``PolicyLineStore/pollInterval``) reload it as well. When the store cannot be
/// reached, the last snapshot loaded keeps deciding (never an empty one): the reloader says so once
/// through `report` and ``Event/storeUnreachable(_:)``, and once more when the store answers again.
package final class PolicyReloader: Sendable {
    /// What the audit log records about the policy itself: the store's reachability, and a reload that was
    /// refused (an operator's edit, perhaps a revocation, that is not in force).
    package enum Event: Sendable, Hashable {
        /// The store cannot be read; the last snapshot keeps deciding. The reason.
        case storeUnreachable(String)
        /// The store answers again after being unreachable.
        case storeRestored
        /// Changed grants, model or policy lines did not load; the previous policy keeps deciding. The error
        /// line. Sent once per distinct error: a store polled every few seconds that keeps the same bad
        /// lines is not recorded (or reported) again until a reload succeeds or the error changes.
        case reloadRejected(String)

        /// The audit entry's `call`, `resource`, `outcome` and `reason` for this event, under a policy store named
        /// `storeName` (empty: files only).
        package func auditFields(storeName: String) -> (call: String, resource: String, outcome: String, reason: String) {
            let resource = storeName.isEmpty ? "policy" : "policy:\(storeName)"
            return switch self {
            case .storeUnreachable(let why): ("policy.store", resource, "unreachable", "deciding on the last policy loaded: \(why)")
            case .storeRestored: ("policy.store", resource, "reachable", "the policy store answers again")
            case .reloadRejected(let why): ("policy.reload", resource, "rejected", "the previous policy stays in force: \(why)")
            }
        }
    }

    /// What a reload attempt did.
    package enum Outcome: Sendable, Hashable {
        /// Nothing changed on disk.
        case unchanged
        /// A new snapshot is in force; its version.
        case reloaded(version: String)
        /// The files changed but do not load; the old policy stays. The error line.
        case rejected(String)
    }

    /// What a file's change is seen by. The status-change time too: a copy that keeps the old modification time
    /// (`cp -p`, `install -p`, `tar x`, or `touch -d` after an edit) left a revoking edit of the same size unseen.
    private struct Stamp: Hashable {
        var modified: Double
        var changed: Double
        var size: UInt64
        var inode: UInt64
        var device: UInt64
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
    private let event: @Sendable (Event) -> Void
    /// The store's lines as last read successfully (`nil` before the reloader first reads them).
    private let storeRules: Mutex<[PolicyRule]?> = Mutex(nil)
    /// Whether the last attempt to read the store failed.
    private let storeDown = Atomic<Bool>(false)
    /// The error of the last rejected reload, until a reload succeeds: the same rejection is said once.
    private let lastRejection: Mutex<String?> = Mutex(nil)

    /// Creates a reloader for `store`, remembering the files' current state.
    ///
    /// `moduleSHA256` is the running module's SHA-256 (lowercase hex), against which a reloaded grants
    /// `sha256` pin is checked; when it is `nil`, any pinned grants deny every call (the pin cannot be
    /// confirmed).
    package init(sources: PolicySources, defaultModule: String, store: MediatorPolicyStore,
                moduleSHA256: String? = nil, report: (@Sendable (String) -> Void)? = nil,
                changed: (@Sendable (Outcome) -> Void)? = nil,
                event: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.changed = changed
        self.event = event
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
    package func reloadIfChanged(force: Bool = false) -> Outcome {
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
        var rules = storeRules.withLock { $0 }
        // A forced reload (SIGHUP) reads the store again; a file change reuses the last good read, so
        // a grants edit still applies while the store is unreachable.
        if sources.policyStore != nil, force || rules == nil {
            switch readStore() {
            case .success(let read): rules = read
            case .failure(let error): if rules == nil { return .rejected(error.description) }
            }
        }
        return apply(storeRules: rules, alwaysReport: true)
    }

    /// Reads the policy store now and swaps in a new snapshot if its lines changed (what a store's
    /// change announcement and the periodic version check call). Unreachable: the old snapshot stays.
    @discardableResult
    package func reloadFromStore() -> Outcome {
        guard sources.policyStore != nil else { return .unchanged }
        switch readStore() {
        case .success(let rules): return apply(storeRules: rules, alwaysReport: false)
        case .failure(let error): return .rejected(error.description)
        }
    }

    /// Reads the store, tracking (and reporting) whether it is reachable.
    private func readStore() -> Result<[PolicyRule], PolicyLoadError> {
        guard let lineStore = sources.policyStore else { return .success([]) }
        do {
            let rules = try lineStore.loadRules()
            storeRules.withLock { $0 = rules }
            if storeDown.exchange(false, ordering: .acquiringAndReleasing) {
                report("policy store \(lineStore.name) is reachable again")
                event(.storeRestored)
            }
            return .success(rules)
        } catch {
            guard error.storeUnavailable else {
                // The store answered, with rows that do not load (a NULL ptype, a wrong column): an edit to reject, said
                // and recorded as one (`policy.reload rejected`), not as an outage of a store that is up.
                if storeDown.exchange(false, ordering: .acquiringAndReleasing) {
                    report("policy store \(lineStore.name) is reachable again")
                    event(.storeRestored)
                }
                _ = reject(error.description)
                return .failure(error)
            }
            if !storeDown.exchange(true, ordering: .acquiringAndReleasing) {
                let version = store.current.version
                report("\(error.description); deciding on the last policy loaded (version \(version.prefix(12))) until the store answers")
                event(.storeUnreachable(error.description))
            }
            return .failure(error)
        }
    }

    /// Builds a snapshot from the files and `storeRules`, swapping it in when it differs from the
    /// current one (or always, for a file change: the grants' conditions may have changed).
    private func apply(storeRules: [PolicyRule]?, alwaysReport: Bool) -> Outcome {
        do {
            let snapshot = try PolicySnapshot.load(sources, defaultModule: defaultModule, storeRules: storeRules)
                .judged(forModuleSHA256: moduleSHA256)
            if !alwaysReport, snapshot.version == store.current.version, snapshot.refusal == store.current.refusal {
                return .unchanged
            }
            let old = store.current
            store.replace(with: snapshot)
            lastRejection.withLock { $0 = nil }
            if let refusal = snapshot.refusal {
                report("policy reloaded: \(refusal)")
            } else if snapshot.version != old.version || old.refusal != nil {
                report("policy reloaded: version \(snapshot.version.prefix(12)) (was \(old.version.prefix(12)))")
            }
            self.changed?(.reloaded(version: snapshot.version))
            return .reloaded(version: snapshot.version)
        } catch {
            return reject(error.description)
        }
    }

    /// Says and records a rejected reload once per distinct `reason` (the previous policy stays in force).
    private func reject(_ reason: String) -> Outcome {
        let repeated = lastRejection.withLock { last in
            defer { last = reason }
            return last == reason
        }
        if !repeated {
            report("policy reload rejected, the previous policy stays in force: \(reason)")
            event(.reloadRejected(reason))
        }
        self.changed?(.rejected(reason))
        return .rejected(reason)
    }

    /// Starts watching: polls the files every `interval` and reloads on `SIGHUP`. Idempotent per call
    /// of ``stop()``. `SIGHUP`'s default action (terminate) is turned off while watching.
    package func start(interval: Duration = .seconds(1), handleHangup: Bool = true) {
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
        if let policyStore = sources.policyStore {
            let storeTimer = DispatchSource.makeTimerSource(queue: queue)
            let poll = max(10, Int(policyStore.pollInterval.components.seconds * 1000
                + policyStore.pollInterval.components.attoseconds / 1_000_000_000_000_000))
            storeTimer.schedule(deadline: .now() + .milliseconds(poll), repeating: .milliseconds(poll))
            storeTimer.setEventHandler { [weak self] in self?.reloadFromStore() }
            storeTimer.resume()
            started.append(WatchSource(storeTimer))
            policyStore.startWatching { [weak self] in
                guard let self else { return }
                self.queue.async { self.reloadFromStore() }
            }
        }
        sources_.withLock { $0 += started }
    }

    /// Stops watching.
    package func stop() {
        let running = sources_.withLock { sources in
            defer { sources.removeAll() }
            return sources
        }
        for watch in running { watch.source.cancel() }
        sources.policyStore?.stopWatching()
    }

    deinit { stop() }

    private static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        let changed = Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9
        return Stamp(modified: modified, changed: changed, size: UInt64(info.st_size), inode: UInt64(info.st_ino),
                     device: UInt64(info.st_dev))
    }
}

/// A dispatch source held by the reloader. Dispatch sources are thread-safe objects (their `cancel()`
/// may be called from any thread), which is the invariant behind the unchecked conformance.
private final class WatchSource: @unchecked Sendable {
    let source: any DispatchSourceProtocol
    init(_ source: any DispatchSourceProtocol) { self.source = source }
}
