// What a host call acts on, parsed once.
//
// A guest's call names its resource as text (a path, a URL, a program). That text is parsed here, once,
// into one typed canonical value. The policy object string, the audit entry's `resource` and what the
// capability acts on are all derived from that one value: the capabilities take these types, never a
// string they would parse again, so policy, log and action cannot disagree about what was meant.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The resource of one host call, in the one canonical form that policy decides on, the audit log
/// records and the capability acts on.
package enum Resource: Sendable, Hashable, CustomStringConvertible {
    /// A file or folder (`fs.*`).
    case file(GuestPath)
    /// An HTTP(S) URL (`http.send`).
    case url(CanonicalURL)
    /// A program (`exec.run`).
    case program(ProgramPath)
    /// A database as a whole, before any of its tables (`db.open`).
    case database(DatabaseName)
    /// One table of a database, as SQLite's authorizer reports it.
    case table(DatabaseName, String)

    /// The policy object and the audit `resource`: `fs:/srv/a.txt`, `http:https://api.example.com/v1`,
    /// `exec:/usr/bin/wc`, `db:analytics`, `db:analytics/orders`.
    package var description: String {
        switch self {
        case .file(let path): "fs:" + path.description
        case .url(let url): "http:" + url.description
        case .program(let program): "exec:" + program.description
        case .database(let name): "db:" + name.description
        case .table(let name, let table): "db:" + name.description + "/" + table
        }
    }

    /// Equal when they name the same thing byte for byte: a table name is compared by its UTF-8 bytes
    /// (``ExactText``), as SQLite and the policy engine compare it, never by canonical equivalence.
    package static func == (lhs: Resource, rhs: Resource) -> Bool {
        switch (lhs, rhs) {
        case (.file(let left), .file(let right)): left == right
        case (.url(let left), .url(let right)): left == right
        case (.program(let left), .program(let right)): left == right
        case (.database(let left), .database(let right)): left == right
        case (.table(let left, let leftTable), .table(let right, let rightTable)):
            left == right && ExactText(leftTable) == ExactText(rightTable)
        default: false
        }
    }

    /// Hashes what ``==`` compares.
    package func hash(into hasher: inout Hasher) {
        switch self {
        case .file(let path): hasher.combine(0); hasher.combine(path)
        case .url(let url): hasher.combine(1); hasher.combine(url)
        case .program(let program): hasher.combine(2); hasher.combine(program)
        case .database(let name): hasher.combine(3); hasher.combine(name)
        case .table(let name, let table): hasher.combine(4); hasher.combine(name); hasher.combine(ExactText(table))
        }
    }
}

/// An absolute, lexically normalized path: `/`, then names separated by single `/`, with no `.` or
/// `..` names and no trailing `/`.
///
/// Rules: UTF-8 without NUL, at most ``maxBytes`` bytes before and after normalization, each name at
/// most ``maxNameBytes`` bytes. A relative path starts at a base folder; `.` and empty names vanish and
/// `..` removes the previous name (never going above `/`). Paths are split on the byte `/` only (never
/// on Characters: a `/` that shares a grapheme cluster with its neighbour is still a separator to the
/// kernel). No file system access happens here; symbolic links are the capability's business, and
/// each link target it meets becomes a new ``GuestPath`` through ``resolving(_:in:then:)``.
package struct GuestPath: Sendable, Hashable, CustomStringConvertible {
    /// The longest path accepted, in UTF-8 bytes (`PATH_MAX` - 1 for the terminating NUL).
    package static let maxBytes = Int(PATH_MAX) - 1
    /// The longest single name accepted, in UTF-8 bytes (`NAME_MAX`).
    package static let maxNameBytes = Int(NAME_MAX)

    /// The path text: `/` followed by ``components`` joined with `/`. The one stored form: the components
    /// are read back from it.
    package let description: String

    /// The names from `/` down, each non-empty and neither `.` nor `..`.
    package var components: [Substring] { Self.splitNames(description) }

    /// Equal when the texts' bytes are: the kernel tells `café` (U+00E9) from `cafe` + U+0301, which Swift's `==`
    /// on strings does not (``ExactText``).
    package static func == (lhs: GuestPath, rhs: GuestPath) -> Bool {
        ExactText(lhs.description) == ExactText(rhs.description)
    }

    /// Hashes the text's bytes (see ``==(_:_:)``).
    package func hash(into hasher: inout Hasher) { hasher.combine(ExactText(description)) }

    /// Parses a guest's path.
    ///
    /// `GuestPath(parsing: "../b/./c//", relativeTo: /ws/a)` is `/ws/b/c`.
    ///
    /// - Parameters:
    ///   - text: the path as the guest sent it.
    ///   - base: the folder a relative path starts at; `nil` makes relative paths `invalid-argument`.
    /// - Throws: `invalid-argument` for an empty path, a NUL byte, a path longer than ``maxBytes`` (before
    ///   or after normalization), a name longer than ``maxNameBytes``, or a relative path without a base.
    package init(parsing text: String, relativeTo base: GuestPath?) throws(HostError) {
        if text.isEmpty { throw HostError(.invalidArgument, "the path is empty") }
        var text = text
        if let failure = text.withUTF8({ Self.unreadable($0) }) { throw failure }
        var prefix = ""
        if !Self.isAbsolute(text) {
            guard let base else {
                throw HostError(.invalidArgument, "the path is relative, but the host has no working directory to resolve it in")
            }
            if base.description.utf8.count > 1 { prefix = base.description }
        }
        description = try text.withUTF8 { input in
            prefix.withUTF8 { prefix in Self.normalize(input, after: prefix) }
        }.get()
    }

    /// Why the bytes of a guest's path are refused before they are read as names: a NUL byte, or too many bytes.
    private static func unreadable(_ input: UnsafeBufferPointer<UInt8>) -> HostError? {
        if input.contains(0) { return HostError(.invalidArgument, "the path contains a NUL byte") }
        if input.count > maxBytes { return HostError(.invalidArgument, "the path is longer than \(maxBytes) bytes") }
        return nil
    }

    /// The normal form of the path `input` (absolute, or relative to the normal folder `prefix`, empty for `/`),
    /// in one pass over the bytes into one buffer: each name is written after a `/` as it is read, then looked
    /// at when it ends (at a `/` or at the end), and `starts` remembers where each name written so far begins
    /// (its `/`), so `..` cuts the last one off. The buffer holds `prefix`, one `/` and `input`, the most that
    /// can be written; `starts` one entry per byte of it, more than there can be names.
    private static func normalize(_ input: UnsafeBufferPointer<UInt8>, after prefix: UnsafeBufferPointer<UInt8>) -> Result<String, HostError> {
        let capacity = prefix.count + 1 + input.count
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { out in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: capacity) { starts in
                var count = 0
                var names = 0
                for byte in prefix {
                    if byte == slash { starts[names] = count; names += 1 }
                    out[count] = byte
                    count += 1
                }
                var start = count
                out[count] = slash
                count += 1
                /// Looks at the name that ends here: drops an empty name or `.`, cuts the name before `..`, refuses
                /// one that is too long.
                func endName() -> HostError? {
                    switch count - start - 1 {
                    case 0:
                        count = start
                    case 1 where out[start + 1] == dot:
                        count = start
                    case 2 where out[start + 1] == dot && out[start + 2] == dot:
                        if names > 0 {
                            names -= 1
                            count = starts[names]
                        } else {
                            count = start
                        }
                    case let length:
                        if length > maxNameBytes {
                            return HostError(.invalidArgument, "a name in the path is longer than \(maxNameBytes) bytes")
                        }
                        starts[names] = start
                        names += 1
                    }
                    return nil
                }
                for byte in input {
                    if byte == slash {
                        if let failure = endName() { return .failure(failure) }
                        start = count
                    }
                    out[count] = byte
                    count += 1
                }
                if let failure = endName() { return .failure(failure) }
                if count > maxBytes {
                    return .failure(HostError(.invalidArgument, "the path is longer than \(maxBytes) bytes once resolved"))
                }
                // The text was valid UTF-8 and was only cut at `/` bytes, which never occur inside a multi-byte character.
                return .success(count == 0 ? "/" : String(decoding: UnsafeBufferPointer(rebasing: out[..<count]), as: UTF8.self))
            }
        }
    }

    /// The path a symbolic link leads to: `target` (absolute, or relative to `parent`), followed by the
    /// names `rest` that came after the link on the path being resolved (names of a ``GuestPath``, so
    /// already normal).
    ///
    /// - Throws: `invalid-argument` as ``init(parsing:relativeTo:)`` does.
    package static func resolving(_ target: String, in parent: [Substring], then rest: [Substring]) throws(HostError) -> GuestPath {
        if target.isEmpty || target.utf8.contains(0) {
            throw HostError(.invalidArgument, "a symbolic link on the path has an empty or invalid target")
        }
        // The link's target by the same one-pass rules as a guest's path, from the folder holding the link...
        let resolved = try GuestPath(parsing: target, relativeTo: GuestPath(trusted: parent))
        if rest.isEmpty { return resolved }
        // ...then the names that came after the link, already normal: appended as they are (parsing them
        // again one by one would copy the whole path once per name).
        var text = resolved.description.utf8.count > 1 ? resolved.description : ""
        for name in rest {
            text += "/"
            text.append(contentsOf: name)
        }
        if text.utf8.count > Self.maxBytes {
            throw HostError(.invalidArgument, "the path is longer than \(Self.maxBytes) bytes once resolved")
        }
        return GuestPath(normal: text)
    }

    /// The root folder, `/`.
    package static let root = GuestPath(trusted: [])

    private init(trusted components: [Substring]) {
        description = "/" + components.joined(separator: "/")
    }

    private init(normal text: String) {
        description = text
    }

    /// The last name (`nil` for `/`), read without splitting the whole path.
    package var lastName: Substring? {
        // By bytes, never by Characters: a `/` may share a grapheme cluster with its neighbour.
        let utf8 = description.utf8
        guard let cut = utf8.lastIndex(of: slash), utf8.count > 1 else { return nil }
        return Substring(utf8[utf8.index(after: cut)...])
    }

    /// Whether the path has more than one name (its parent folder is not `/`).
    package var isBelowTopLevel: Bool {
        guard let cut = description.utf8.lastIndex(of: slash) else { return false }
        return cut != description.utf8.startIndex
    }

    /// The folder that holds this path (`/` for `/`).
    package var parent: GuestPath {
        let utf8 = description.utf8
        guard let cut = utf8.lastIndex(of: slash), cut != utf8.startIndex else { return .root }
        return GuestPath(normal: String(Substring(utf8[..<cut])))
    }

    /// The same lexical rules for a grant's path pattern (`*` and `**` are names like any other here):
    /// `/srv/./a//**/` is `/srv/a/**`. The pattern must be absolute.
    package static func normalizedPattern(_ pattern: String) -> String {
        var names: [Substring] = []
        for name in splitNames(pattern) {
            if name.utf8.elementsEqual(".".utf8) { continue }
            if name.utf8.elementsEqual("..".utf8) { _ = names.popLast(); continue }
            names.append(name)
        }
        return "/" + names.joined(separator: "/")
    }

    /// Whether `path` begins with the byte `/`.
    package static func isAbsolute(_ path: String) -> Bool { path.utf8.first == slash }

    /// The names of `path`, split on the byte `/`, empty names dropped.
    static func splitNames(_ path: String) -> [Substring] {
        path.utf8.split(separator: slash).map { Substring($0) }
    }
}

private let slash = UInt8(ascii: "/")
private let dot = UInt8(ascii: ".")

/// The absolute path of a program to run: exactly as given, which must already be normal.
///
/// A program path is not normalized for the guest: `/usr/bin/../bin/wc` is refused rather than read as
/// `/usr/bin/wc`, so the path a grant names is the only spelling that runs it.
package struct ProgramPath: Sendable, Hashable, CustomStringConvertible {
    /// The path.
    package let path: GuestPath

    /// The path text.
    package var description: String { path.description }

    /// Parses a program path.
    ///
    /// - Throws: `invalid-argument` unless `text` is absolute, without NUL, at most
    ///   ``GuestPath/maxBytes`` bytes and already lexically normal (no `.`, `..`, `//` or trailing `/`).
    package init(parsing text: String) throws(HostError) {
        guard text.utf8.count <= GuestPath.maxBytes else {
            throw HostError(.invalidArgument, "the program path is longer than \(GuestPath.maxBytes) bytes")
        }
        guard GuestPath.isAbsolute(text), !text.utf8.contains(0) else {
            throw HostError(.invalidArgument, "exec needs an absolute program path without NUL")
        }
        let path = try GuestPath(parsing: text, relativeTo: nil)
        guard path.description.utf8.elementsEqual(text.utf8), !path.components.isEmpty else {
            throw HostError(.invalidArgument, "exec needs a normalized program path (no '.', '..', '//' or trailing '/')")
        }
        self.path = path
    }
}

/// The name a module uses for a database (`--db NAME=PATH`): 1 to 64 of `A-Z a-z 0-9 . _ -`.
package struct DatabaseName: Sendable, Hashable, CustomStringConvertible {
    /// The name.
    package let description: String

    /// Checks a database name.
    ///
    /// - Throws: `invalid-argument` when `text` is not 1 to 64 of `A-Z a-z 0-9 . _ -`.
    package init(parsing text: String) throws(HostError) {
        guard !text.isEmpty, text.utf8.count <= 64,
              text.utf8.allSatisfy({ byte in
                  (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
                      || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
              })
        else {
            throw HostError(.invalidArgument, "a database name is 1 to 64 of A-Z a-z 0-9 . _ -")
        }
        description = text
    }
}
