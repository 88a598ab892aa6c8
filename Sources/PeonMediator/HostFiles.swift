#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host's own files, which no guest call reaches whatever its grants say: the audit log, every file beside it
/// whose name is the log's followed by `.` (its checkpoint, frontier, first-use index and their temporary files),
/// the checkpoint signing key (with its temporary files), the grants, model and policy files the run's decisions come
/// from (reloaded while it runs), and the module file (what the next run loads).
///
/// Why: a grant that happens to cover the log's folder (`out/**` with `--audit out/run.jsonl`) let a guest's
/// `fs.write` replace the log: the run ended with exit 0, its entries were gone, and only `audit verify` found the file
/// was no log. The record of what a guest did is not the guest's to read, replace or remove. Nor are its grants: a guest
/// granted `./**` beside its grants file rewrote them to `paths = ["/**"]` and, once they reloaded, read `/etc/shadow`.
///
/// Paths are compared as the mediator decides on them: absolute, normalized, and reached without symbolic links
/// (a link on a guest's path is followed only through a nested decision on the path it leads to, which is checked
/// here too). So each host file is kept with its folder's links resolved.
package struct HostFiles: Sendable, Hashable {
    /// Each host file's absolute path, its folder's symbolic links resolved.
    package private(set) var paths: [String] = []

    /// No host files.
    package init() {}

    /// Adds `path` (absolute, or relative to this process's working directory) and, when `path` is a symbolic link,
    /// every link on the way to the file it leads to and that file: a grants file given as `g.toml -> l2 -> real.toml`
    /// is read through all three, so removing `l2` and writing a file in its place would change it as well.
    package mutating func add(_ path: String) {
        var current = Self.canonical(path)
        insert(current)
        // At most 40 links, as the kernel follows (a loop ends there).
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { break }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(current, &buffer, buffer.count - 1)
            guard count > 0 else { break }
            let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let folder = current.lastIndex(of: "/").map { String(current[..<$0]) } ?? ""
            current = Self.canonical(target.hasPrefix("/") ? target : (folder.isEmpty ? "/" : folder) + "/" + target)
            insert(current)
        }
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            insert(String(cString: resolved))
        }
    }

    /// Adds the files SQLite keeps beside the database `path` (`PATH-journal`, `PATH-wal`, `PATH-shm`), beside the
    /// path given and beside the file it leads to (SQLite puts them beside the real file). They hold pages SQLite
    /// replays into the database when it opens it: a guest that could write into the database's folder created
    /// `app.db-journal` with a forged first page naming the root page of an ungranted table for a granted one, and
    /// `db.query` on the granted table returned the other's rows, recorded as the granted table's. Only SQLite, in
    /// the host's `db` capability, writes or reads them.
    package mutating func addJournals(of path: String) {
        var databases = [path]
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            databases.append(String(cString: resolved))
        }
        for database in databases {
            for suffix in ["-journal", "-wal", "-shm"] { add(database + suffix) }
        }
    }

    /// Adds every file of `other`, already resolved (no system call).
    package mutating func formUnion(_ other: HostFiles) {
        for path in other.paths { insert(path) }
    }

    private mutating func insert(_ canonical: String) {
        guard !pathBytes.contains(Array(canonical.utf8)) else { return }
        paths.append(canonical)
        pathBytes.append(Array(canonical.utf8))
    }

    /// Whether `path` (absolute and normalized, as a ``GuestPath`` spells it) is a host file or one beside it named
    /// after it (`PATH.` followed by anything).
    /// Compared byte for byte, as the file system names files: `String.hasPrefix` compares characters by canonical
    /// equivalence, and `e` + U+0301 and `é` are two files.
    /// (Every `fs` call asks, so the bytes are compared in place.)
    package func contains(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            pathBytes.contains { file in
                bytes.count >= file.count && bytes.prefix(file.count).elementsEqual(file)
                    && (bytes.count == file.count || bytes[file.count] == UInt8(ascii: "."))
            }
        }
    }

    /// ``paths`` as UTF-8 bytes, compared by ``contains(_:)``.
    private var pathBytes: [[UInt8]] = []

    /// `path` made absolute, with its folder's symbolic links resolved (the lexical path when the folder cannot be
    /// resolved, e.g. it does not exist yet).
    package static func canonical(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buffer, buffer.count) != nil {
                let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                absolute = (cwd == "/" ? "" : cwd) + "/" + path
            }
        }
        guard let slash = absolute.lastIndex(of: "/") else { return absolute }
        let folder = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
        let name = String(absolute[absolute.index(after: slash)...])
        guard let resolved = realpath(folder, nil) else { return absolute }
        defer { free(resolved) }
        let real = String(cString: resolved)
        return (real == "/" ? "" : real) + "/" + name
    }
}
