// The `fs` capability: file access that cannot leave the paths the mediator authorized.
//
// Two steps. ``GuestPath`` (PeonInterface) turns the guest's path into a canonical absolute path by
// lexical rules only; that value is what policy decides on and what this capability walks. Each operation
// first opens the path's parent folder with one `openat2(2)` call that refuses every symbolic link (a read
// opens an `O_PATH` handle on the file itself that way); a path with no link is thereby resolved in one system call. If that call meets a link it walks the path
// from `/` one component at a time with `openat(2)` and `O_NOFOLLOW`, holding a descriptor for every directory it passes, so no
// component can be swapped between a check and its use. When the walk meets a symbolic link it reads
// the link, builds the absolute path the link leads to, asks `authorize` about that path and, only if
// allowed, starts over from `/` on the new path. What is accessed is therefore always exactly a path
// that was authorized. An existing file is never opened for I/O by its name: it is opened `O_PATH` (which
// runs no driver's or FIFO's open), checked with `fstat`, and only a regular file is then reopened for
// reading or appending through `/proc/self/fd/N`, the very inode that was checked (``reopen``).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CPeonSupport
import PeonInterface
import Synchronization
import PeonSystem

/// Reads, writes, lists and removes files on behalf of a guest, refusing every path that leaves what
/// the mediator authorized.
///
/// The capability decides nothing about policy. The mediator parses a guest path into a ``GuestPath``
/// once, asks policy about it, and calls an operation with that same value and
/// an `authorize` closure that answers the same question for any *other* path the operation would
/// reach through a symbolic link.
///
/// Rules (each enforced here, tested in `FileSystemEscapeTests`):
/// - Paths arrive as ``GuestPath`` values: absolute, lexically normal, bounded (see ``GuestPath``).
/// - A symbolic link anywhere on the path (in the middle or last) is followed only after
///   `authorize(target)` says yes; at most 32 links are followed per call (`invalid-argument` after).
/// - Only regular files are read or appended to; FIFOs, devices and sockets are `invalid-argument`, and are
///   never opened for I/O: opening has effects of its own (a FIFO's blocked writer is released, a tape
///   rewinds, a watchdog arms). An existing file is opened `O_PATH`, checked, and reopened through
///   `/proc/self/fd` (``reopen(_:flags:_:_:)``); without a procfs at `/proc` such a read or append fails
///   with `io` instead.
/// - A regular file with more than one hard link is refused (`denied`) for read and append, since its
///   other names may lie outside the grant.
/// - `write` writes a temporary file in the same directory and renames it over the target: readers
///   see the old or the new content, never a torn file, and the write never goes through a hard link
///   or a symbolic link swapped in at the last moment. The new file keeps an existing file's mode bits.
/// - `remove` removes the named entry itself (a file, a symbolic link, or an empty directory); it never
///   follows a final symbolic link.
/// - Labels: a write or append by a run holding information-flow labels records them in the extended
///   attributes (``FileLabels``) of the very descriptor it writes (the temporary file before its rename,
///   the appended file itself); a read returns the labels of the descriptor it read. A labelled run that
///   creates or removes a name labels the folder first, and a folder's listing returns its labels. A file system that
///   cannot store the attribute makes a labelled write fail with `io` (never an unlabelled copy), and an
///   attribute that does not parse makes the read fail with `io`.
/// - Sizes: a read above ``maxReadBytes`` and a write or append above ``maxWriteBytes`` are
///   `limit-exceeded`, checked before anything is written.
struct FileSystemCapability: Sendable {
    /// The largest file ``read(_:authorize:)`` returns, in bytes (default 64 MiB).
    let maxReadBytes: Int
    /// The largest `data` that ``write(_:data:authorize:)`` and ``append(_:data:authorize:)`` accept (default 64 MiB).
    let maxWriteBytes: Int

    /// The most symbolic links followed while resolving one path (the Linux kernel's limit is 40).
    static let maxSymbolicLinkHops = 32
    /// The longest path accepted, in UTF-8 bytes.
    static let maxPathBytes = GuestPath.maxBytes

    /// How the folders on a path are resolved.
    enum PathResolution: Sendable, CaseIterable {
        /// One `openat2` call that refuses symbolic links, and the component walk only when that call
        /// meets a link or cannot be used. The default.
        case singleCallFirst
        /// Always the component walk (tests use it to run the safety suites on the fallback too).
        case componentWalk
    }

    /// How this capability resolves paths (``PathResolution/singleCallFirst`` unless a test forces the walk).
    let resolution: PathResolution

    /// Whether a checked file may be reopened for I/O through `/proc/self/fd` (``reopen(_:flags:_:_:)``).
    /// Always `true` but in tests, which turn it off to see what happens where /proc is not mounted.
    let reopensThroughProc: Bool

    /// `/`, opened once (`O_PATH`) for the process as the folder `openat2` resolves beneath; -1 if it
    /// could not be opened, and then every path is walked.
    private static let sharedRoot: Int32 = open("/", openPath | O_DIRECTORY | O_CLOEXEC)
    /// `/proc/self/fd`, opened once (`O_PATH`) for the process and checked to be procfs: the folder whose magic
    /// links reopen a checked `O_PATH` descriptor for I/O (``reopen(_:flags:_:_:)``); -1 where there is none
    /// (/proc not mounted, or not procfs), and then no existing file is opened for I/O at all.
    private static let sharedProcDescriptors: Int32 = peon_open_proc_fds()
    /// Set once `openat2` answered `ENOSYS` (an old kernel or a seccomp filter): walk from then on.
    private static let singleCallUnavailable = Atomic<Bool>(false)

    /// Creates the capability.
    ///
    /// - Parameters:
    ///   - maxReadBytes: the largest file a read returns.
    ///   - maxWriteBytes: the largest write or append accepted.
    ///   - resolution: how paths are resolved (tests force ``PathResolution/componentWalk``).
    ///   - reopensThroughProc: `false` only in tests, to act as if /proc were not mounted.
    init(maxReadBytes: Int = 64 << 20, maxWriteBytes: Int = 64 << 20, resolution: PathResolution = .singleCallFirst,
         reopensThroughProc: Bool = true) {
        self.maxReadBytes = max(0, maxReadBytes)
        self.maxWriteBytes = max(0, maxWriteBytes)
        self.resolution = resolution
        self.reopensThroughProc = reopensThroughProc
    }

    // MARK: Operations

    /// Reads a whole regular file.
    ///
    /// - Parameters:
    ///   - path: the path the mediator parsed and authorized.
    ///   - authorize: asked about every other absolute path a symbolic link leads to; `false` refuses.
    /// - Throws: `denied` (a link leads to an unauthorized path, a hard-linked file, or the OS refused),
    ///   `not-found`, `invalid-argument` (a directory, not a regular file, too many links),
    ///   `limit-exceeded` (larger than ``maxReadBytes``), `io`.
    func read(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> [UInt8] {
        try readLabelled(path, authorize: authorize).bytes
    }

    /// Reads a whole regular file and the information-flow labels recorded on it (``FileLabels``), both
    /// from the one descriptor opened on the authorized path. Throws as ``read(_:authorize:)``, and `io`
    /// when the label attribute is damaged.
    func readLabelled(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> LabelledBytes {
        // A path without any symbolic link on the way is opened (`O_PATH`) in one call; a link on the way, or
        // a last name that is one (the call then hands back the link itself), goes to the resolution below,
        // which authorizes the link.
        if let fd = try openFileWithoutLinks(path, flags: Self.handleFlags, operation: "read") {
            if let file = try readThroughHandle(Descriptor(fd), path.description) { return file }
        }
        return try resolve(path, operation: "read", authorize: authorize) { (directory, name, current) throws(HostError) in
            guard let name else { throw HostError(.invalidArgument, "read '\(current)': is a directory") }
            let fd = openat(directory, name, Self.handleFlags)
            if fd < 0 { throw hostError(errno: currentErrno, "read '\(current)'") }
            let handle = Descriptor(fd)
            if let file = try readThroughHandle(handle, current) { return .done(file) }
            return .follow(try Self.readLink(handle.raw, "", current, "read"))
        }
    }

    /// Reads the file the `O_PATH` descriptor `handle` names, once `fstat` on that descriptor shows a regular
    /// file with one name: reopened for reading (``reopen(_:flags:_:_:)``), the same inode, never another
    /// file put at its name meanwhile. `nil` when `handle` is a symbolic link (the caller follows it).
    private func readThroughHandle(_ handle: borrowing Descriptor, _ path: String) throws(HostError) -> LabelledBytes? {
        var status = stat()
        if fstat(handle.raw, &status) != 0 { throw hostError(errno: currentErrno, "read '\(path)'") }
        if status.st_mode & S_IFMT == S_IFLNK { return nil }
        let size = try Self.requireRegularSingleLink(status, path, "read")
        let file = try reopen(handle, flags: Self.readFlags, path, "read")
        return try readOpened(file, path, size: size)
    }

    /// The bytes and labels of a regular file with one name (`size` bytes when it was checked), opened for
    /// reading, read to its end.
    private func readOpened(_ file: borrowing Descriptor, _ path: String, size: Int) throws(HostError) -> LabelledBytes {
        let bytes = try readAll(file.raw, path, expectedSize: size)
        // The labels are read after the bytes, never before: an append labels the file before its bytes go in,
        // so every byte read here was written under labels this read sees. Read first, a labelled append
        // landing while a large file is read (the read goes on to the new end) would come back unlabelled.
        var labels = try FileLabels.read(file.raw, path)
        // SQLite's write-ahead log and rollback journal beside a database hold its pages (in WAL mode its newest
        // rows, until a checkpoint), and only the database file carries its labels (``DatabaseLabels``): such a
        // file brings the labels of the database it belongs to.
        if let database = Self.databaseOfJournal(path) {
            var status = stat()
            let found = stat(database, &status) == 0
            let code = currentErrno
            if found {
                labels = Set(labels).union(try FileLabels.read(.path(database), what: "read '\(path)': its database")).sorted()
            } else if !bytes.isEmpty {
                // The database is gone (removed or renamed by someone else: `fs` refuses to take a database away
                // from under its journal): whose labels the journal's pages carry cannot be known, so nothing of it
                // is handed over. An empty file holds nothing.
                throw HostError(.io, "read '\(path)': it is named as SQLite's journal of '\(database)', which cannot be examined (\(errnoText(code).lowercased())), so the labels of what it holds cannot be known; restore the database or remove the journal")
            }
        }
        return LabelledBytes(bytes: bytes, labels: labels)
    }

    /// The SQLite journal (`NAME-wal` or `NAME-journal`) beside the entry `name` of `directory`, if one is there:
    /// it holds pages of the database `name` and takes that file's labels (``readOpened(_:_:size:)``), so `name`
    /// is neither replaced nor removed while it is there. Anything there counts (a link, a folder), and so does
    /// an entry that cannot be examined.
    static func journalBeside(_ directory: Int32, _ name: String) -> String? {
        for suffix in journalSuffixes where suffix != "-shm" {  // the shared-memory index holds no pages
            var status = stat()
            if fstatat(directory, name + suffix, &status, AT_SYMLINK_NOFOLLOW) == 0 { return name + suffix }
            let code = currentErrno
            if code != ENOENT && code != ENAMETOOLONG { return name + suffix }
        }
        return nil
    }

    /// The refusal of replacing or removing a database under its journal.
    static func journalRefusal(_ operation: String, _ path: String, journal: String) -> HostError {
        HostError(.denied, "\(operation) '\(path)': a SQLite journal ('\(journal)') lies beside it; replacing or removing a database under its journal corrupts the database and would leave the journal's pages without the database's labels. Close the database (or checkpoint it) first")
    }

    /// The suffixes SQLite gives the files it keeps beside a database `NAME`.
    static let journalSuffixes = ["-wal", "-journal", "-shm"]

    /// `/d/app.db` for `/d/app.db-wal`, `/d/app.db-journal` or `/d/app.db-shm`; `nil` for any other path.
    /// Compared as bytes, as the file system names files: `String.hasSuffix` compares characters, and a name whose
    /// last character joins with `-` (a prepended mark, U+0600) made `hr\u{600}-wal` no journal of `hr\u{600}`.
    static func databaseOfJournal(_ path: String) -> String? {
        let bytes = Array(path.utf8)
        for suffix in journalSuffixes {
            let tail = Array(suffix.utf8)
            guard bytes.count > tail.count, bytes.suffix(tail.count).elementsEqual(tail) else { continue }
            let database = bytes.dropLast(tail.count)
            if database.last != UInt8(ascii: "/") { return String(decoding: database, as: UTF8.self) }
        }
        return nil
    }

    /// Creates or replaces a regular file with `data`, atomically (temporary file + rename).
    ///
    /// A final symbolic link is followed (after `authorize`), so writing through a link inside the grant
    /// to another granted file works; the link itself stays.
    ///
    /// - Throws: `limit-exceeded` (more than ``maxWriteBytes``), `denied`, `not-found` (a missing
    ///   parent folder), `invalid-argument` (the target is a directory or not a regular file), `io`.
    /// `labels` (the writing run's) are recorded on the new file before it replaces the old one.
    func write(_ path: GuestPath, data: [UInt8], labels: [String] = [], authorize: (GuestPath) -> Bool) throws(HostError) {
        if data.count > maxWriteBytes {
            throw HostError(.limitExceeded, "write '\(path)': \(data.count) bytes is more than the limit of \(maxWriteBytes)")
        }
        try resolve(path, operation: "write", authorize: authorize) { (directory, name, current) throws(HostError) -> FinalStep<Void> in
            guard let name else { throw HostError(.invalidArgument, "write '\(current)': is a directory") }
            var existingMode: mode_t?
            switch try Self.entryKind(directory, name, current, "write") {
            case .symbolicLink(let target):
                return .follow(target)
            case .missing:
                existingMode = nil
                try Self.labelFolder(directory, labels, current, "write")
            case .directory:
                throw HostError(.invalidArgument, "write '\(current)': is a directory")
            case .other:
                throw HostError(.invalidArgument, "write '\(current)': not a regular file")
            case .regular(let status):
                existingMode = status.st_mode & Self.nonExecutableBits
            }
            if let journal = Self.journalBeside(directory, name) { throw Self.journalRefusal("write", current, journal: journal) }
            try Self.replace(directory, name, current, data: data, mode: existingMode, labels: labels,
                             unnamed: reopensThroughProc)
            return .done(())
        }
    }

    /// Appends `data` to a regular file, creating it if missing.
    ///
    /// A final symbolic link, even a dangling one, is followed only after `authorize`; `O_NOFOLLOW`
    /// makes sure `O_CREAT` never creates a file at a link's target behind the check.
    ///
    /// - Throws: `limit-exceeded` (more than ``maxWriteBytes``), `denied` (also for a hard-linked
    ///   file), `not-found`, `invalid-argument`, `io`.
    /// `labels` (the writing run's) are added to those the file already carries, before the bytes go in.
    func append(_ path: GuestPath, data: [UInt8], labels: [String] = [], authorize: (GuestPath) -> Bool) throws(HostError) {
        if data.count > maxWriteBytes {
            throw HostError(.limitExceeded, "append '\(path)': \(data.count) bytes is more than the limit of \(maxWriteBytes)")
        }
        try resolve(path, operation: "append", authorize: authorize) { (directory, name, current) throws(HostError) -> FinalStep<Void> in
            guard let name else { throw HostError(.invalidArgument, "append '\(current)': is a directory") }
            // An existing name is opened `O_PATH` and checked before anything is opened for writing; a missing
            // one is created with `O_EXCL`, which opens only the new file it creates. A name created by someone
            // else in between (`EEXIST`) is looked at again, a few times at most.
            for _ in 0..<Self.maxAppendAttempts {
                let handleFD = openat(directory, name, Self.handleFlags)
                if handleFD >= 0 {
                    let handle = Descriptor(handleFD)
                    var status = stat()
                    if fstat(handle.raw, &status) != 0 { throw hostError(errno: currentErrno, "append '\(current)'") }
                    if status.st_mode & S_IFMT == S_IFLNK { return .follow(try Self.readLink(handle.raw, "", current, "append")) }
                    try Self.requireRegularSingleLink(status, current, "append")
                    try Self.appendTo(try reopen(handle, flags: Self.appendFlags, current, "append"), data, labels, current)
                    return .done(())
                }
                let code = currentErrno
                if code != ENOENT { throw hostError(errno: code, "append '\(current)'") }
                try Self.labelFolder(directory, labels, current, "append")
                let fd = openat(directory, name, Self.appendFlags | O_CREAT | O_EXCL | O_NOFOLLOW, mode_t(0o666))
                if fd >= 0 {
                    let file = Descriptor(fd)
                    // Another name may have been linked to the new file already.
                    try Self.requireRegularSingleLink(file.raw, current, "append")
                    try Self.appendTo(file, data, labels, current)
                    return .done(())
                }
                if currentErrno != EEXIST { throw hostError(errno: currentErrno, "append '\(current)'") }
            }
            throw HostError(.io, "append '\(current)': the name kept being created and removed while it was appended to; try again")
        }
    }

    /// How many times ``append(_:data:labels:authorize:)`` looks at a name that others keep creating and removing.
    static let maxAppendAttempts = 8

    /// Appends `data` to the open regular file `file`: its execute bits cleared, `labels` added, then the bytes.
    private static func appendTo(_ file: borrowing Descriptor, _ data: [UInt8], _ labels: [String], _ path: String) throws(HostError) {
        try dropExecutableBits(file.raw, path)
        if !labels.isEmpty { try FileLabels.add(labels, to: .descriptor(file.raw), what: "append '\(path)'") }
        try writeAll(file.raw, data, path, "append")
    }

    /// The names in a folder, without `.` and `..`, sorted by their UTF-8 bytes.
    ///
    /// Names that are not valid UTF-8 are returned with U+FFFD in place of the bad bytes. The total
    /// size of the names is capped by ``maxReadBytes``.
    ///
    /// - Throws: `denied`, `not-found`, `invalid-argument` (not a folder), `limit-exceeded`, `io`.
    func readDirectory(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> [String] {
        try readDirectoryLabelled(path, authorize: authorize).names
    }

    /// The names in a folder, as ``readDirectory(_:authorize:)``, and the information-flow labels the folder
    /// carries (``labelFolder``), read from the descriptor that is listed.
    func readDirectoryLabelled(_ path: GuestPath, authorize: (GuestPath) -> Bool) throws(HostError) -> (names: [String], labels: [String]) {
        try resolve(path, operation: "read-dir", authorize: authorize) { (directory, name, current) throws(HostError) in
            let fd: Int32
            if let name {
                switch try Self.entryKind(directory, name, current, "read-dir") {
                case .symbolicLink(let target): return .follow(target)
                case .missing: throw HostError(.notFound, "read-dir '\(current)': no such file or directory")
                case .regular, .other: throw HostError(.invalidArgument, "read-dir '\(current)': not a directory")
                case .directory: break
                }
                fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if fd < 0 {
                    let code = currentErrno
                    if code == ELOOP { return .follow(try Self.readLink(directory, name, current, "read-dir")) }
                    throw hostError(errno: code, "read-dir '\(current)'")
                }
            } else {
                fd = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if fd < 0 { throw hostError(errno: currentErrno, "read-dir '\(current)'") }
            }
            let folder = Descriptor(fd)
            // Names first, then labels: a labelled run labels the folder before it creates or removes a name, so
            // a change this listing saw is covered by the labels read after it (see ``readOpened``). The listing
            // consumes its descriptor; the labels are read on a duplicate of it (the same folder).
            let copy = fcntl(folder.raw, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { throw hostError(errno: currentErrno, "read-dir '\(current)'") }
            let same = Descriptor(copy)
            let names = try listNames(folder, current)
            return .done((names, try FileLabels.read(.descriptor(same.raw), what: "read-dir '\(current)'")))
        }
    }

    /// Adds `labels` (a run's) to the folder `directory` (the `O_PATH` descriptor of a walk's last folder)
    /// before a name is created in it or removed from it: which names a folder holds is data another run can
    /// list, so a labelled run's change to them labels the folder, and a listing brings the folder's labels.
    /// `io` (and nothing changes) when the folder cannot carry them, e.g. a sticky folder such as `/tmp`
    /// that another user owns.
    private static func labelFolder(_ directory: Int32, _ labels: [String], _ current: String, _ operation: String) throws(HostError) {
        guard !labels.isEmpty else { return }
        let fd = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw hostError(errno: currentErrno, "\(operation) '\(current)': its folder") }
        let folder = Descriptor(fd)
        try FileLabels.add(labels, to: .descriptor(folder.raw), what: "\(operation) '\(current)': its folder")
    }

    /// Removes a file, a symbolic link (not its target) or an empty folder.
    ///
    /// - Throws: `denied`, `not-found`, `invalid-argument` (`/`, or a folder that is not empty), `io`.
    /// `labels` (the removing run's) are added to the folder's before the name goes (``labelFolder``).
    func remove(_ path: GuestPath, labels: [String] = [], authorize: (GuestPath) -> Bool) throws(HostError) {
        try resolve(path, operation: "remove", authorize: authorize) { (directory, name, current) throws(HostError) -> FinalStep<Void> in
            guard let name else { throw HostError(.invalidArgument, "remove '/': the root cannot be removed") }
            if let journal = Self.journalBeside(directory, name) { throw Self.journalRefusal("remove", current, journal: journal) }
            try Self.labelFolder(directory, labels, current, "remove")
            if unlinkat(directory, name, 0) == 0 { return .done(()) }
            var code = currentErrno
            if code == EISDIR {
                if unlinkat(directory, name, AT_REMOVEDIR) == 0 { return .done(()) }
                code = currentErrno
            }
            throw hostError(errno: code, "remove '\(current)'")
        }
    }

    // MARK: The walk

    /// What the last step of a walk decided.
    enum FinalStep<Result> {
        case done(Result)
        /// The final component is a symbolic link with this target; resolve it and walk again.
        case follow(String)
    }

    /// Resolves `path` and calls `final` with the parent folder's descriptor, the last name (`nil` for
    /// `/` itself) and the path being resolved; follows symbolic links only when `authorize` allows their
    /// resolved path.
    ///
    /// The parent folder is first opened with one `openat2` call that refuses every symbolic link and
    /// every escape from `/` (``openParentWithoutLinks(_:operation:)``). Only when that call reports a
    /// link on the way (`ELOOP`), or cannot be used (`ENOSYS`, `EPERM`, `EXDEV`, `EAGAIN`), is the path walked one
    /// component at a time (``walkToParent(_:operation:hops:authorize:)``), which authorizes each link.
    /// A last component that is a link is handled by `final` on either path.
    private func resolve<Result>(
        _ path: GuestPath,
        operation: String,
        authorize: (GuestPath) -> Bool,
        final: (Int32, String?, String) throws(HostError) -> FinalStep<Result>
    ) throws(HostError) -> Result {
        var current = path
        var hops = 0

        while true {
            let parentFD: Int32
            if let fd = try openParentWithoutLinks(current, operation: operation) {
                parentFD = fd
            } else {
                switch try walkToParent(current, operation: operation, hops: &hops, authorize: authorize) {
                case .parent(let fd):
                    parentFD = fd
                case .restart(let next):
                    current = next
                    continue
                }
            }
            let directory = Descriptor(parentFD)
            let lastName = current.lastName.map(String.init)
            switch try final(directory.raw, lastName, current.description) {
            case .done(let result):
                return result
            case .follow(let target):
                let parent = Array(current.components.dropLast())
                current = try followed(target, parent: parent, rest: [], hops: &hops, operation: operation, authorize: authorize)
            }
        }
    }

    /// What a component walk reached.
    private enum WalkStep {
        /// The parent folder of the path's last component, opened (`O_PATH`); the caller owns it.
        case parent(Int32)
        /// A symbolic link in the middle of the path, authorized: resolve this path instead.
        case restart(GuestPath)
    }

    /// The parent folder of `path`, opened in one `openat2` call from `/` that fails on any symbolic
    /// link; `nil` when the caller must walk the path instead (a link on the way, `openat2` missing or
    /// refused, or a concurrent rename the kernel asks to retry). Other errors are thrown as the walk
    /// would report them.
    func openParentWithoutLinks(_ path: GuestPath, operation: String) throws(HostError) -> Int32? {
        let text = path.description
        let relative: String
        if !path.isBelowTopLevel {
            relative = "."
        } else {
            // The names before the last, without the leading `/`. A `/` byte never occurs inside a UTF-8
            // sequence, so the byte positions are valid string positions.
            let utf8 = text.utf8
            guard let slash = utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
            relative = String(Substring(utf8[utf8.index(after: utf8.startIndex)..<slash]))
        }
        return try openBeneathRoot(relative, flags: openPath | O_DIRECTORY | O_CLOEXEC, for: path, operation: operation)
    }

    /// How the last name of a path is opened before anything else: a handle (`O_PATH`) that runs no
    /// driver's or FIFO's open and does no I/O, on the name itself even when it is a symbolic link.
    static let handleFlags = openPath | O_NOFOLLOW | O_CLOEXEC

    /// How a checked regular file is reopened for reading (``reopen(_:flags:_:_:)``): never blocking (a
    /// lease), never becoming the controlling terminal.
    static let readFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY

    /// How a checked regular file is reopened for appending.
    static let appendFlags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY

    /// `path` itself, opened with `flags` in one `openat2` call from `/` that fails on any symbolic link
    /// (the last name included, except that `O_PATH | O_NOFOLLOW` in `flags` hands back a last name that is
    /// a link as the link itself); `nil` when the caller must resolve the path step by step instead (`/`
    /// itself, a link on the way, `openat2` missing or refused, or a concurrent rename the kernel asks to
    /// retry). Other errors are thrown as the step-by-step resolution would report them: the kernel meets
    /// the same first missing, forbidden or non-folder name on the way as the walk does.
    func openFileWithoutLinks(_ path: GuestPath, flags: Int32, operation: String) throws(HostError) -> Int32? {
        let utf8 = path.description.utf8
        if utf8.count <= 1 { return nil }
        // Without the leading `/`: resolved beneath `/`.
        let relative = String(Substring(utf8[utf8.index(after: utf8.startIndex)...]))
        return try openBeneathRoot(relative, flags: flags, for: path, operation: operation)
    }

    /// The one `openat2` call both single-call opens make: `relative` beneath `/`, refusing every symbolic
    /// link; `nil` when the caller must walk instead (the walk is forced, `/` could not be opened, a link
    /// on the way, a race, or no usable `openat2`), other errors thrown as the walk reports them for `path`.
    private func openBeneathRoot(_ relative: String, flags: Int32, for path: GuestPath, operation: String) throws(HostError) -> Int32? {
        guard resolution == .singleCallFirst, !Self.singleCallUnavailable.load(ordering: .relaxed) else { return nil }
        let root = Self.sharedRoot
        if root < 0 { return nil }
        let fd = peon_open_beneath_no_links(root, relative, flags)
        if fd >= 0 { return fd }
        let code = currentErrno
        switch code {
        case ELOOP, EXDEV, EAGAIN:
            return nil
        case ENOSYS, EPERM:
            // No openat2 (an old kernel), or a seccomp filter refusing it (container runtimes answer ENOSYS
            // or EPERM; opening a path never fails with EPERM otherwise): walk, from now on.
            Self.singleCallUnavailable.store(true, ordering: .relaxed)
            return nil
        default:
            throw hostError(errno: code, "\(operation) '\(path)'")
        }
    }

    /// Walks `path` from `/` with `O_NOFOLLOW`, one component at a time, holding a descriptor for every
    /// folder it passes; a symbolic link in the middle is followed only when `authorize` allows the path
    /// it leads to.
    private func walkToParent(
        _ path: GuestPath, operation: String, hops: inout Int, authorize: (GuestPath) -> Bool
    ) throws(HostError) -> WalkStep {
        let components = path.components
        let rootFD = open("/", openPath | O_DIRECTORY | O_CLOEXEC)
        if rootFD < 0 { throw hostError(errno: currentErrno, "\(operation) '\(path)'") }
        var directory = Descriptor(rootFD)
        var index = 0
        while index + 1 < components.count {
            let name = String(components[index])
            let fd = openat(directory.raw, name, openPath | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 { throw hostError(errno: currentErrno, "\(operation) '\(path)'") }
            let next = Descriptor(fd)
            var status = stat()
            if fstat(next.raw, &status) != 0 { throw hostError(errno: currentErrno, "\(operation) '\(path)'") }
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                directory = next
                index += 1
            case S_IFLNK:
                let target = try Self.readLink(next.raw, "", path.description, operation)
                let parent = Array(components[..<index])
                let rest = Array(components[(index + 1)...])
                return .restart(try followed(target, parent: parent, rest: rest, hops: &hops, operation: operation, authorize: authorize))
            default:
                throw HostError(.invalidArgument, "\(operation) '\(path)': '\(name)' is not a directory")
            }
        }
        return .parent(directory.release())
    }

    /// The absolute path reached by a link with `target` found in the folder `parent`, followed by the
    /// remaining components `rest`, once `authorize` has allowed it.
    private func followed(
        _ target: String,
        parent: [Substring],
        rest: [Substring],
        hops: inout Int,
        operation: String,
        authorize: (GuestPath) -> Bool
    ) throws(HostError) -> GuestPath {
        hops += 1
        if hops > Self.maxSymbolicLinkHops {
            throw HostError(.invalidArgument, "\(operation): more than \(Self.maxSymbolicLinkHops) symbolic links (a loop?)")
        }
        if target.isEmpty {
            throw HostError(.notFound, "\(operation): a symbolic link on the path is empty")
        }
        let path = try GuestPath.resolving(target, in: parent, then: rest)
        guard authorize(path) else {
            throw HostError(.denied, "\(operation): a symbolic link on the path leads to a path the grant does not cover")
        }
        return path
    }

    // MARK: Steps

    /// What a directory entry is, without following it.
    enum EntryKind {
        case missing
        case regular(stat)
        case directory
        case symbolicLink(String)
        case other
    }

    static func entryKind(_ directory: Int32, _ name: String, _ path: String, _ operation: String) throws(HostError) -> EntryKind {
        var status = stat()
        if fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) != 0 {
            let code = currentErrno
            if code == ENOENT { return .missing }
            throw hostError(errno: code, "\(operation) '\(path)'")
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regular(status)
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink(try readLink(directory, name, path, operation))
        default: return .other
        }
    }

    /// The target of the link `name` in `directory` (`name` empty: the `O_PATH` link descriptor itself).
    static func readLink(_ directory: Int32, _ name: String, _ path: String, _ operation: String) throws(HostError) -> String {
        var buffer = [UInt8](repeating: 0, count: maxPathBytes + 1)
        let count = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return -1 }
            return readlinkat(directory, name, base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        if count < 0 { throw hostError(errno: currentErrno, "\(operation) '\(path)'") }
        if count > maxPathBytes {
            throw HostError(.invalidArgument, "\(operation) '\(path)': a symbolic link's target is too long")
        }
        let bytes = buffer[..<count]
        if bytes.contains(0) { throw HostError(.invalidArgument, "\(operation) '\(path)': a symbolic link's target contains NUL") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Opens for I/O, with `flags`, the very file the `O_PATH` descriptor `handle` names, which the caller has
    /// checked with `fstat` to be a regular file: through its magic link in `/proc/self/fd`
    /// (``sharedProcDescriptors``, `peon_reopen`), so nothing another process renames into place between the
    /// check and the open is ever opened, and no FIFO or device node is opened at all. The file's permissions
    /// are checked again for `flags` by the kernel.
    ///
    /// Why this way: Linux has no other way to turn an `O_PATH` descriptor into an open file without
    /// privilege, and an open by name (even after a check of the same name, or compared with `st_dev`/`st_ino`
    /// afterwards) can open whatever was put at the name in between, which is the effect to be avoided.
    /// Where /proc is not mounted (or is not procfs) there is no safe way, so the call fails with `io`
    /// and opens nothing: the operator mounts /proc.
    func reopen(_ handle: borrowing Descriptor, flags: Int32, _ path: String, _ operation: String) throws(HostError) -> Descriptor {
        let folder = reopensThroughProc ? Self.sharedProcDescriptors : -1
        guard folder >= 0 else {
            throw HostError(.io, "\(operation) '\(path)': the file cannot be opened safely without /proc (an existing file is opened only through /proc/self/fd, after it is checked to be a regular file); mount /proc for peon-wasm")
        }
        let fd = peon_reopen(folder, handle.raw, flags)
        if fd < 0 {
            let code = currentErrno
            switch code {
            case ENOENT, ELOOP, ENOTDIR, EXDEV:
                // Not the file's answer: /proc/self/fd itself failed (e.g. a `nosymfollow` mount of /proc).
                throw HostError(.io, "\(operation) '\(path)': the checked file cannot be reopened through /proc/self/fd (\(errnoText(code).lowercased()))")
            default:
                throw hostError(errno: code, "\(operation) '\(path)'")
            }
        }
        return Descriptor(fd)
    }

    /// Refuses anything but a regular file with one name; returns its size (from the same `fstat`).
    @discardableResult
    static func requireRegularSingleLink(_ fd: Int32, _ path: String, _ operation: String) throws(HostError) -> Int {
        var status = stat()
        if fstat(fd, &status) != 0 { throw hostError(errno: currentErrno, "\(operation) '\(path)'") }
        return try requireRegularSingleLink(status, path, operation)
    }

    /// Refuses, from its `status`, anything but a regular file with one name; returns its size.
    @discardableResult
    static func requireRegularSingleLink(_ status: stat, _ path: String, _ operation: String) throws(HostError) -> Int {
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw HostError(.invalidArgument, "\(operation) '\(path)': is a directory")
        default: throw HostError(.invalidArgument, "\(operation) '\(path)': not a regular file")
        }
        if status.st_nlink > 1 {
            throw HostError(.denied, "\(operation) '\(path)': the file has \(status.st_nlink) hard links; other names may lie outside the grant")
        }
        return max(0, Int(status.st_size))
    }

    /// Reads the open regular file to its end. `expectedSize` (from the `fstat` that checked the file) sizes the
    /// one buffer the bytes are read into, without zero-filling it first. The file may still change meanwhile: the
    /// reads go on until `read` returns 0, or returns short having brought exactly `expectedSize` bytes (a regular
    /// file's read stops short only at its end, so the file ended where `fstat` said: one read for a file that did
    /// not change, instead of a second one that returns 0), and at most one byte past ``maxReadBytes``, to notice a
    /// file that grew past the limit.
    private func readAll(_ fd: Int32, _ path: String, expectedSize: Int) throws(HostError) -> [UInt8] {
        if expectedSize > maxReadBytes {
            throw HostError(.limitExceeded, "read '\(path)': \(expectedSize) bytes is more than the limit of \(maxReadBytes)")
        }
        // One byte past the limit, saturating (the limit is the host's, but `Int.max` must not trap).
        let limit = maxReadBytes < Int.max ? maxReadBytes + 1 : Int.max
        var failure: Int32 = 0
        var reachedEnd = false
        // The file's size plus one byte: a file that did not change ends with one short read and one read of 0.
        var result = [UInt8](unsafeUninitializedCapacity: expectedSize < limit ? expectedSize + 1 : limit) { buffer, initialized in
            initialized = 0
            while initialized < buffer.count {
                let room = buffer.count - initialized
                let count = retryingInterrupts { Glibc.read(fd, buffer.baseAddress.map { $0 + initialized }, room) }
                if count < 0 { failure = currentErrno; return }
                if count == 0 { reachedEnd = true; return }
                initialized += count
                // Asked for one byte more than the checked size and given exactly that size: the end, as checked.
                if count < room && initialized == expectedSize { reachedEnd = true; return }
            }
        }
        if failure != 0 { throw hostError(errno: failure, "read '\(path)'") }
        if reachedEnd { return result }
        // The file grew while it was read: go on in chunks up to the limit.
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while result.count < limit {
            let wanted = min(chunk.count, limit - result.count)
            let count = chunk.withUnsafeMutableBytes { raw in
                retryingInterrupts { Glibc.read(fd, raw.baseAddress, wanted) }
            }
            if count < 0 { throw hostError(errno: currentErrno, "read '\(path)'") }
            if count == 0 { break }
            result.append(contentsOf: chunk[..<count])
        }
        if result.count > maxReadBytes {
            throw HostError(.limitExceeded, "read '\(path)': the file grew past the limit of \(maxReadBytes) bytes")
        }
        return result
    }

    static func writeAll(_ fd: Int32, _ data: [UInt8], _ path: String, _ operation: String) throws(HostError) {
        let failure = writeFully(fd, data)
        if failure != 0 { throw hostError(errno: failure, "\(operation) '\(path)'") }
    }

    /// The mode bits a file written by a guest may keep: read and write only. No execute, setuid,
    /// setgid or sticky bit survives a guest's write, so a guest can never run (through an `exec`
    /// grant) bytes it wrote.
    static let nonExecutableBits: mode_t = 0o666

    /// Clears every execute, setuid, setgid and sticky bit of the open file before the guest's bytes go in.
    static func dropExecutableBits(_ fd: Int32, _ path: String) throws(HostError) {
        var status = stat()
        if fstat(fd, &status) != 0 { throw hostError(errno: currentErrno, "append '\(path)'") }
        let mode = status.st_mode & 0o7777
        if mode & ~nonExecutableBits != 0, fchmod(fd, mode & nonExecutableBits) != 0 {
            throw hostError(errno: currentErrno, "append '\(path)': cannot clear the execute bits")
        }
    }

    /// Writes `data` to a new file in `directory` and renames it over `name`, so a reader sees the old contents or the
    /// new ones, never a mix. The new file has no name while it is written (`O_TMPFILE`, where the file system offers
    /// it, and `/proc` to name it by when `tryUnnamed`): a run killed mid-write leaves nothing in the guest's folder.
    /// Elsewhere it is written as `.peon-HEX.tmp`.
    static func replace(
        _ directory: Int32, _ name: String, _ path: String, data: [UInt8], mode: mode_t?, labels: [String],
        unnamed tryUnnamed: Bool
    ) throws(HostError) {
        var temporary = ".peon-\(randomHex(bytes: 8)).tmp"
        // `O_TMPFILE` is `__O_TMPFILE | O_DIRECTORY`, a macro Swift does not import (020000000 on x86-64 and arm64).
        var fd: Int32 = tryUnnamed ? openat(directory, ".", 0o20000000 | O_DIRECTORY | O_WRONLY | O_CLOEXEC, mode_t(0o666)) : -1
        let unnamed = fd >= 0
        if !unnamed {
            for _ in 0..<8 {
                fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(0o666))
                if fd >= 0 || currentErrno != EEXIST { break }
                temporary = ".peon-\(randomHex(bytes: 8)).tmp"
            }
        }
        if fd < 0 { throw hostError(errno: currentErrno, "write '\(path)'") }
        let file = Descriptor(fd)
        var linked = !unnamed
        do throws(HostError) {
            if let mode, fchmod(file.raw, mode) != 0 { throw hostError(errno: currentErrno, "write '\(path)'") }
            if !labels.isEmpty { try FileLabels.write(labels, to: file.raw, path, "write") }
            try writeAll(file.raw, data, path, "write")
            if unnamed {
                // Named only now, and renamed at once. A name taken meanwhile (`EEXIST`) is tried again with another.
                for _ in 0..<8 {
                    if linkat(AT_FDCWD, "/proc/self/fd/\(file.raw)", directory, temporary, AT_SYMLINK_FOLLOW) == 0 {
                        linked = true
                        break
                    }
                    if currentErrno != EEXIST { break }
                    temporary = ".peon-\(randomHex(bytes: 8)).tmp"
                }
            }
        } catch {
            if !unnamed { _ = unlinkat(directory, temporary, 0) }
            throw error
        }
        // The unnamed file could not be given a name (`/proc` hidden or not mounted, a file system that refuses the
        // link): it is dropped, and the write done again under a name of its own.
        if !linked {
            return try replace(directory, name, path, data: data, mode: mode, labels: labels, unnamed: false)
        }
        if renameat(directory, temporary, directory, name) != 0 {
            let code = currentErrno
            _ = unlinkat(directory, temporary, 0)
            throw hostError(errno: code, "write '\(path)'")
        }
    }

    private func listNames(_ directory: consuming Descriptor, _ path: String) throws(HostError) -> [String] {
        let raw = directory.release()
        guard let stream = fdopendir(raw) else {
            let code = currentErrno
            _ = close(raw)
            throw hostError(errno: code, "read-dir '\(path)'")
        }
        defer { _ = closedir(stream) }
        var names: [String] = []
        var totalBytes = 0
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw hostError(errno: currentErrno, "read-dir '\(path)'") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            totalBytes += name.utf8.count
            if totalBytes > maxReadBytes {
                throw HostError(.limitExceeded, "read-dir '\(path)': the names add up to more than \(maxReadBytes) bytes")
            }
            names.append(name)
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}

/// A file's bytes and the information-flow labels recorded on it.
struct LabelledBytes: Sendable {
    /// The content.
    var bytes: [UInt8]
    /// The labels its extended attributes carry (``FileLabels``), sorted; empty when it has none.
    var labels: [String]
}

extension FileSystemCapability {
    /// The labels of the deepest existing entry on `path` (the target itself when it exists, else the
    /// nearest existing folder above it; links followed) and of the folder holding that entry. An
    /// attribute that cannot be read fails the call with `io` (closed) instead of its own error.
    ///
    /// With `linkItself` (for `remove`, which removes a link, not what it points at), a path whose last component is
    /// a symbolic link brings its folder's labels only: the target may lie outside every grant, and a link carries
    /// no labels of its own.
    static func labelsWhereTheWalkStopped(_ path: GuestPath, linkItself: Bool = false) throws(HostError) -> [String] {
        var status = stat()
        if linkItself, lstat(path.description, &status) == 0, status.st_mode & S_IFMT == S_IFLNK {
            guard let parent = parentFolder(of: path.description) else { return [] }
            return try FileLabels.read(.path(parent), what: "labels of '\(sanitize(parent))'").sorted()
        }
        // Existence is monotone along the path's prefixes (a prefix exists if a longer one does), so the deepest
        // existing one is found by bisection: a few `stat`s even for a hostile path of thousands of components.
        // Split at `/` bytes: `String.split` splits characters, and a name starting with a combining mark joins its
        // `/` into one character, so the folder before it was never looked at (its labels were skipped).
        let components = Array(path.description.utf8).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        func prefix(_ count: Int) -> String {
            count == 0 ? "/" : "/" + String(decoding: Array(components[..<count].joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
        }
        var found = 0, missing = components.count + 1
        while missing - found > 1 {
            let middle = found + (missing - found) / 2
            if stat(prefix(middle), &status) == 0 { found = middle } else { missing = middle }
        }
        let current = prefix(found)
        var labels = Set(try FileLabels.read(.path(current), what: "labels of '\(sanitize(current))'"))
        if let parent = parentFolder(of: current) {
            labels.formUnion(try FileLabels.read(.path(parent), what: "labels of '\(sanitize(parent))'"))
        }
        return labels.sorted()
    }

    /// `/a/b` → `/a`, `/a` → `/`, `/` → `nil`.
    private static func parentFolder(of path: String) -> String? {
        guard path != "/", let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }
}

/// The information-flow labels a file carries, kept in its extended attributes: `user.peon.labels`
/// (comma-separated names, set on a new file's inode before its rename) and one `user.peon.label.NAME` per
/// label added to an existing file (by `append`, or on a database, ``DatabaseLabels``). A file's labels are
/// the union of both.
///
/// Why an extended attribute: it belongs to the inode, so it travels with the data through renames
/// (and `write`'s own temporary-file rename) and needs no store that could fall out of step with the
/// files; it is read and written on the descriptor the capability already holds, so it is the labels
/// of exactly the inode that was authorized. Why one attribute per added label: two runs appending to one
/// file at once each add their own, and neither can lose the other's (rewriting one list would be a
/// read-modify-write; adding one that exists changes nothing). A write from outside peon-wasm changes the
/// content but keeps the attributes, so a file that once carried labels keeps them. Copies made outside
/// peon-wasm (`cp` without `--preserve=xattr`) and file systems without user attributes lose them; on such
/// a file system a labelled write fails closed with `io`.
enum FileLabels {
    /// The attribute holding a list of names.
    static let attribute = "user.peon.labels"
    /// The prefix of the one-per-label attributes.
    static let prefix = "user.peon.label."
    /// The largest list attribute read (larger is damage).
    static let maxBytes = 4096
    /// The most attribute-name bytes listed (more is damage).
    static let maxListBytes = 16 * 1024

    /// Which file: an open descriptor, or a path the operator gave (``DatabaseLabels``).
    enum Target {
        case descriptor(Int32)
        case path(String)
    }

    /// The labels on the open file `fd`: empty when it has none (or its file system keeps no attributes,
    /// so nothing labelled can have been written there); `io` when an attribute is unreadable or damaged.
    static func read(_ fd: Int32, _ path: String) throws(HostError) -> [String] {
        try read(.descriptor(fd), what: "read '\(path)'")
    }

    /// The labels on `target`, sorted; `what` starts an error message (`read '/data/a.txt'`).
    static func read(_ target: Target, what: String) throws(HostError) -> [String] {
        // Listed into a stack buffer: most files carry no attribute, and then nothing is allocated.
        let listed = withUnsafeTemporaryAllocation(of: CChar.self, capacity: maxListBytes) { buffer -> (count: Int, code: Int32, names: [String]) in
            let count: Int
            switch target {
            case .descriptor(let fd): count = Int(peon_flistxattr(fd, buffer.baseAddress, UInt(buffer.count)))
            case .path(let path): count = Int(peon_listxattr(path, buffer.baseAddress, UInt(buffer.count)))
            }
            if count < 0 { return (count, currentErrno, []) }
            if count == 0 { return (0, 0, []) }
            let bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: min(count, buffer.count))
            return (count, 0, bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
        }
        if listed.count < 0 {
            let code = listed.code
            if code == EOPNOTSUPP || code == ENOTSUP { return [] }
            if code == ERANGE { throw HostError(.io, "\(what): the information-flow label attributes are damaged (too many)") }
            throw HostError(.io, "\(what): the information-flow labels cannot be read (\(errnoText(code).lowercased()))")
        }
        var labels = Set<String>()
        for name in listed.names {
            // As bytes: a name whose label starts with a combining mark does not start with `prefix` as characters.
            if name.utf8.starts(with: prefix.utf8) {
                let label = String(decoding: name.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
                guard isIdentifier(label) else {
                    throw HostError(.io, "\(what): an information-flow label attribute is damaged")
                }
                labels.insert(label)
            } else if name == attribute {
                labels.formUnion(try listAttribute(target, what: what))
            }
        }
        return labels.sorted()
    }

    /// The names in `user.peon.labels` on `target`.
    private static func listAttribute(_ target: Target, what: String) throws(HostError) -> [String] {
        let (count, code, value) = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxBytes + 1) { buffer in
            let count: Int
            switch target {
            case .descriptor(let fd): count = Int(peon_fgetxattr(fd, attribute, buffer.baseAddress, UInt(buffer.count)))
            case .path(let path): count = Int(peon_getxattr(path, attribute, buffer.baseAddress, UInt(buffer.count)))
            }
            if count < 0 { return (count, currentErrno, "") }
            return (count, Int32(0), String(decoding: buffer[..<min(count, maxBytes)], as: UTF8.self))
        }
        if count < 0 {
            if code == ENODATA { return [] }  // removed since it was listed
            throw HostError(.io, "\(what): the information-flow labels cannot be read (\(errnoText(code).lowercased()))")
        }
        guard count <= maxBytes else {
            throw HostError(.io, "\(what): the information-flow label attribute is damaged (too long)")
        }
        guard let names = names(in: value) else {
            throw HostError(.io, "\(what): the information-flow label attribute is damaged")
        }
        return names
    }

    /// Adds `labels` to those `target` carries, one attribute for each it lacks: never a read-modify-write of
    /// another run's labels. `io` when one cannot be recorded, and then nothing may be written.
    static func add(_ labels: [String], to target: Target, what: String) throws(HostError) {
        let present = Set(try read(target, what: what))
        let value: [UInt8] = [0x31]
        for label in labels where !present.contains(label) {
            let name = prefix + label
            let result = value.withUnsafeBytes { raw in
                switch target {
                case .descriptor(let fd): peon_fsetxattr(fd, name, raw.baseAddress, UInt(raw.count), 0)
                case .path(let path): peon_setxattr(path, name, raw.baseAddress, UInt(raw.count), 0)
                }
            }
            if result != 0 {
                throw unrecorded(labels, what: what, errno: currentErrno)
            }
        }
    }

    /// A labelled write the file system cannot label.
    static func unrecorded(_ labels: [String], what: String, errno code: Int32) -> HostError {
        HostError(.io, "\(what): the data carries information-flow labels (\(labels.joined(separator: ", "))) and the file system cannot record them (\(errnoText(code).lowercased())), so nothing is written")
    }

    /// The label names of an attribute value (`hr,pii`), sorted and without repeats; `nil` when it is damaged.
    static func names(in text: String) -> [String]? {
        if text.isEmpty { return [] }
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard names.allSatisfy(isIdentifier) else { return nil }
        return Array(Set(names)).sorted()
    }

    /// Records `labels` on the open file `fd`, replacing what was there; `io` when it cannot.
    static func write(_ labels: [String], to fd: Int32, _ path: String, _ operation: String) throws(HostError) {
        let bytes = Array(labels.joined(separator: ",").utf8)
        let result = bytes.withUnsafeBytes { raw in peon_fsetxattr(fd, attribute, raw.baseAddress, UInt(raw.count), 0) }
        if result != 0 { throw unrecorded(labels, what: "\(operation) '\(path)'", errno: currentErrno) }
    }
}
