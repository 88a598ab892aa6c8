import Foundation
@testable import PeonMediator
import PeonInterface
import PeonTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The tree every file-system suite works in, built fresh in a temporary folder:
///
/// ```
/// root/
/// ├── outside.txt  "secret"              never granted: must never be read or changed
/// ├── sibling/                           a tree next to the grant
/// │   └── other.txt "sibling"
/// └── ws/                                the granted tree and the working directory
///     ├── a.txt      "alpha"
///     ├── sub/b.txt  "beta"
///     ├── empty/
///     ├── link-in   -> sub/b.txt         a link that stays inside
///     ├── link-out  -> ../outside.txt    last component leads out (relative target)
///     ├── abs-out   -> <root>/outside.txt last component leads out (absolute target)
///     ├── dir-out   -> ../sibling        middle component leads to the sibling tree
///     ├── dangling  -> ../created.txt    leads out to a file that does not exist yet
///     ├── loop-a    -> loop-b            a loop
///     ├── loop-b    -> loop-a
///     └── hard.txt                       a hard link to outside.txt
/// ```
struct FileSystemFixture {
    let root: String
    /// How the capability under test resolves paths (every safety suite runs once per way).
    let resolution: FileSystemCapability.PathResolution
    var workspace: String { root + "/ws" }
    var outside: String { root + "/outside.txt" }

    /// The grant the tests simulate: the workspace and everything under it.
    func isGranted(_ path: String) -> Bool {
        path == workspace || path.hasPrefix(workspace + "/")
    }

    func isGranted(_ path: GuestPath) -> Bool { isGranted(path.description) }

    var capability: FileSystemUnderTest { FileSystemUnderTest(workingDirectory: workspace, resolution: resolution) }

    init(root: URL, resolution: FileSystemCapability.PathResolution) throws {
        self.root = root.path
        self.resolution = resolution
        let manager = FileManager.default
        try "secret".write(toFile: self.root + "/outside.txt", atomically: false, encoding: .utf8)
        try manager.createDirectory(atPath: self.root + "/sibling", withIntermediateDirectories: true)
        try "sibling".write(toFile: self.root + "/sibling/other.txt", atomically: false, encoding: .utf8)
        let ws = self.root + "/ws"
        try manager.createDirectory(atPath: ws + "/sub", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: ws + "/empty", withIntermediateDirectories: true)
        try "alpha".write(toFile: ws + "/a.txt", atomically: false, encoding: .utf8)
        try "beta".write(toFile: ws + "/sub/b.txt", atomically: false, encoding: .utf8)
        try manager.createSymbolicLink(atPath: ws + "/link-in", withDestinationPath: "sub/b.txt")
        try manager.createSymbolicLink(atPath: ws + "/link-out", withDestinationPath: "../outside.txt")
        try manager.createSymbolicLink(atPath: ws + "/abs-out", withDestinationPath: self.root + "/outside.txt")
        try manager.createSymbolicLink(atPath: ws + "/dir-out", withDestinationPath: "../sibling")
        try manager.createSymbolicLink(atPath: ws + "/dangling", withDestinationPath: "../created.txt")
        try manager.createSymbolicLink(atPath: ws + "/loop-a", withDestinationPath: "loop-b")
        try manager.createSymbolicLink(atPath: ws + "/loop-b", withDestinationPath: "loop-a")
        try manager.linkItem(atPath: self.root + "/outside.txt", toPath: ws + "/hard.txt")
    }

    /// Every entry under the root with its kind and content (or link target), for "nothing changed" checks.
    func snapshot() throws -> [String: String] {
        var result: [String: String] = [:]
        func visit(_ path: String) throws {
            for name in try FileManager.default.contentsOfDirectory(atPath: path) {
                let full = path + "/" + name
                var status = stat()
                guard lstat(full, &status) == 0 else { continue }
                switch status.st_mode & S_IFMT {
                case S_IFLNK:
                    result[full] = "link:" + (try FileManager.default.destinationOfSymbolicLink(atPath: full))
                case S_IFDIR:
                    result[full] = "dir"
                    try visit(full)
                default:
                    let data = FileManager.default.contents(atPath: full) ?? Data()
                    result[full] = "file:\(status.st_mode & 0o777):" + String(decoding: data, as: UTF8.self)
                }
            }
        }
        try visit(root)
        return result
    }
}

/// Runs `body` with a fresh fixture tree, the capability resolving paths the way `resolution` says.
func withFileSystemFixture(
    _ resolution: FileSystemCapability.PathResolution, _ body: (FileSystemFixture) throws -> Void
) throws {
    try withTemporaryDirectory { url in
        try body(try FileSystemFixture(root: url, resolution: resolution))
    }
}

/// The error `body` throws, or `nil` if it succeeds.
func hostError<T>(_ body: () throws(HostError) -> T) -> HostError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// The file system capability as these tests drive it: paths given as text are parsed the way the
/// mediator parses them (``GuestPath``), and `authorize` sees each link target's text.
struct FileSystemUnderTest {
    let capability: FileSystemCapability
    let workingDirectory: GuestPath?

    init(workingDirectory: String, maxReadBytes: Int = 64 << 20, maxWriteBytes: Int = 64 << 20,
         resolution: FileSystemCapability.PathResolution = .singleCallFirst) {
        self.workingDirectory = try? GuestPath(parsing: workingDirectory, relativeTo: nil)
        capability = FileSystemCapability(maxReadBytes: maxReadBytes, maxWriteBytes: maxWriteBytes, resolution: resolution)
    }

    /// Drives `capability` as it is (tests that configure it beyond the resolution).
    init(capability: FileSystemCapability, workingDirectory: String) {
        self.workingDirectory = try? GuestPath(parsing: workingDirectory, relativeTo: nil)
        self.capability = capability
    }

    func normalize(_ text: String) throws(HostError) -> GuestPath {
        try GuestPath(parsing: text, relativeTo: workingDirectory)
    }

    func read(_ path: GuestPath, authorize: (String) -> Bool) throws(HostError) -> [UInt8] {
        try capability.read(path) { authorize($0.description) }
    }

    func read(_ path: String, authorize: (String) -> Bool) throws(HostError) -> [UInt8] {
        try read(normalize(path), authorize: authorize)
    }

    func write(_ path: GuestPath, data: [UInt8], authorize: (String) -> Bool) throws(HostError) {
        try capability.write(path, data: data) { authorize($0.description) }
    }

    func write(_ path: String, data: [UInt8], authorize: (String) -> Bool) throws(HostError) {
        try write(normalize(path), data: data, authorize: authorize)
    }

    func append(_ path: GuestPath, data: [UInt8], authorize: (String) -> Bool) throws(HostError) {
        try capability.append(path, data: data) { authorize($0.description) }
    }

    func append(_ path: String, data: [UInt8], authorize: (String) -> Bool) throws(HostError) {
        try append(normalize(path), data: data, authorize: authorize)
    }

    func readDirectory(_ path: GuestPath, authorize: (String) -> Bool) throws(HostError) -> [String] {
        try capability.readDirectory(path) { authorize($0.description) }
    }

    func readDirectory(_ path: String, authorize: (String) -> Bool) throws(HostError) -> [String] {
        try readDirectory(normalize(path), authorize: authorize)
    }

    func remove(_ path: GuestPath, authorize: (String) -> Bool) throws(HostError) {
        try capability.remove(path) { authorize($0.description) }
    }

    func remove(_ path: String, authorize: (String) -> Bool) throws(HostError) {
        try remove(normalize(path), authorize: authorize)
    }
}

/// Lets tests compare a parsed path with its expected text.
func == (lhs: GuestPath, rhs: String) -> Bool { lhs.description == rhs }
