import Crypto
import PeonAudit
import PeonInterface
import PeonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// First use. An agent that suddenly touches a resource it has never touched before (a new file, a new
// host, a new program, a new table) is the moment a reviewer most wants to see, and often the moment a
// human should be asked. The store remembers, per audit log, every (module, action, resource) pair that
// was ever allowed; the decision entry of a call whose pair is not in it carries `first_use: "true"`, and
// a grant with `approval = "first-use"` asks its approver only then.
//
// The store is the file `LOG.first-use` beside the audit log: one line `MODULE<TAB>ACTION<TAB>RESOURCE<TAB>TAG`
// per pair, appended with O_APPEND (each line one write, so concurrent processes interleave whole
// lines). It is an index, not evidence — the audit log is the evidence — so it fails towards asking: a
// missing, unreadable or damaged store (or a damaged line) makes the pairs it would have held count as
// first use again, which flags more entries and asks more often, never less. TAG is an HMAC-SHA256 of the
// store's path and the pair under a key derived from the log's signing key: a line someone added without that key (to skip an
// `approval = "first-use"`) does not check and is a damaged line, so the pair is still a first use.

/// The pairs a module has used, for one audit log; shared by every mediator of the process on that log.
final class FirstUseStore: Sendable {
    /// Lines longer than this are never written (their pair stays "first use": more asking, never less).
    static let maxLineBytes = 8192
    /// At most this much of the file is read (a larger store counts the rest as unseen).
    static let maxFileBytes = 64 << 20

    private struct State {
        var seen: Set<ExactText> = []
        /// How far the file has been read.
        var offset: Int = 0
        var damagedLines = 0
        /// When the file was last looked at; `nil` before the first look.
        var lastLook: ContinuousClock.Instant?
    }

    /// How long a look at the file stays fresh: within it, a pair another process used counts as first use
    /// (more asking, never less), and a call refused again and again costs no `lstat` each time.
    static let freshness: Duration = .milliseconds(50)

    /// Where the pairs are kept.
    let path: String
    private let state = SleepingLock(State())
    /// The key each line's tag is made with (derived from the log's signing key).
    private let tagKey: [UInt8]

    private static let stores = Mutex<[String: FirstUseStore]>([:])

    /// What the tag key is derived for (``AuditLog/derivedKey(_:)``).
    static let tagPurpose = "first-use index"

    /// The process-wide store for `log` (so concurrent calls of one server share it).
    static func shared(for log: AuditLog) -> FirstUseStore {
        stores.withLock { stores in
            if let store = stores[log.path] { return store }
            let store = FirstUseStore(path: log.path + ".first-use", tagKey: log.derivedKey(tagPurpose))
            stores[log.path] = store
            return store
        }
    }

    /// What each tag binds its pair to besides the key: this store's own absolute path. Every log of a host shares its
    /// signing key, so a tag over the pair alone would let a line copied from another log's store (or a rotated log's)
    /// skip this log's first-use approval.
    private let scope: [UInt8]

    /// A store kept at `path` whose lines are tagged with `tagKey`.
    init(path: String, tagKey: [UInt8]) {
        self.path = path
        self.tagKey = tagKey
        scope = Array(HostFiles.canonical(path).utf8) + [0x0A]
    }

    /// The tag of `key`'s line: the first 16 bytes of the HMAC-SHA256 of this store's path, a newline and the pair,
    /// under the tag key, in lowercase hex.
    private func tag(_ key: some Collection<UInt8>) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: scope + Array(key), using: SymmetricKey(data: tagKey))
        return hex(Array(code).prefix(16))
    }

    /// The store's key of one pair: the three fields, each with tab, newline and backslash escaped.
    static func key(module: String, action: String, resource: String) -> String {
        var key: [UInt8] = []
        key.reserveCapacity(module.utf8.count + action.utf8.count + resource.utf8.count + 2)
        appendEscaped(module, to: &key)
        key.append(0x09)
        appendEscaped(action, to: &key)
        key.append(0x09)
        appendEscaped(resource, to: &key)
        return String(decoding: key, as: UTF8.self)
    }

    /// `field` with tab, newline, carriage return and backslash escaped, appended to `key`: copied in one step when it
    /// has none (the common case). By bytes: each is ASCII, so no multi-byte scalar of valid UTF-8 contains one.
    private static func appendEscaped(_ field: String, to key: inout [UInt8]) {
        var field = field
        field.withUTF8 { bytes in
            var special = false
            for byte in bytes { special = special || byte == 0x09 || byte == 0x0A || byte == 0x5C || byte == 0x0D }
            guard special else {
                key.append(contentsOf: bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case 0x5C: key.append(0x5C); key.append(0x5C)
                case 0x09: key.append(0x5C); key.append(UInt8(ascii: "t"))
                case 0x0A: key.append(0x5C); key.append(UInt8(ascii: "n"))
                case 0x0D: key.append(0x5C); key.append(UInt8(ascii: "r"))
                default: key.append(byte)
                }
            }
        }
    }

    /// Whether `key` was never used before (in any run on this log, in this process or another).
    func isFirstUse(_ key: String) -> Bool {
        state.withLock { state in
            if state.seen.contains(ExactText(key)) { return false }
            // Another process may have used it since: read what was appended (unless the file was looked at a
            // moment ago), then look again.
            let now = ContinuousClock.now
            if let last = state.lastLook, now - last < Self.freshness { return true }
            state.lastLook = now
            catchUp(&state)
            return !state.seen.contains(ExactText(key))
        }
    }

    /// Records `key` as used; appends it to the file the first time.
    func markUsed(_ key: String) {
        state.withLock { state in
            guard state.seen.insert(ExactText(key)).inserted else { return }
            let line = key + "\t" + tag(Array(key.utf8)) + "\n"
            guard line.utf8.count <= Self.maxLineBytes else { return }
            // Non-blocking and checked, as the reading side is: a FIFO put at this path must not stall every call.
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return }
            // A failed write leaves a damaged line, which reads back as unseen: fail towards asking.
            _ = writeFully(fd, Array(line.utf8))
        }
    }

    /// Reads the lines appended since the last read (complete lines only).
    private func catchUp(_ state: inout State) {
        // One stat when nothing was appended (the common case for a call that is denied again and again).
        var quick = stat()
        guard lstat(path, &quick) == 0, (quick.st_mode & S_IFMT) == S_IFREG,
              min(Int(quick.st_size), Self.maxFileBytes) > state.offset else { return }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return }
        let size = min(Int(info.st_size), Self.maxFileBytes)
        guard size > state.offset else { return }
        var buffer = [UInt8](repeating: 0, count: size - state.offset)
        let wanted = buffer.count
        var got = 0
        while got < wanted {
            let n = buffer.withUnsafeMutableBytes { raw in
                retryingInterrupts { pread(fd, raw.baseAddress.map { $0 + got }, wanted - got, off_t(state.offset + got)) }
            }
            guard n > 0 else { break }
            got += n
        }
        // Only whole lines count; a partial last line (a writer mid-append) is read next time.
        guard let lastNewline = buffer[..<got].lastIndex(of: 0x0A) else { return }
        for line in buffer[..<lastNewline].split(separator: 0x0A, omittingEmptySubsequences: true) {
            // The pair, a tab, and its tag: a line whose tag does not check was not written by a holder of the key.
            guard let tab = line.lastIndex(of: 0x09),
                  let text = String(validating: line[line.startIndex..<tab], as: UTF8.self),
                  text.utf8.reduce(0, { $0 + ($1 == 0x09 ? 1 : 0) }) == 2,
                  line[(tab + 1)...].elementsEqual(tag(line[line.startIndex..<tab]).utf8)
            else {
                state.damagedLines += 1
                continue
            }
            state.seen.insert(ExactText(text))
        }
        state.offset += lastNewline + 1
    }
}

extension Resource {
    /// What "first use" is counted on: the resource itself, except a URL, which counts by origin
    /// (`https://api.example.com:8443`: a new host is the event worth flagging, not each new path on it); the mediator
    /// adds a program's arguments to it.
    var firstUseName: String {
        switch self {
        case .url(let url): "http:\(url.scheme)://\(url.hostText)\(url.isDefaultPort ? "" : ":\(url.port)")"
        default: description
        }
    }
}
