import Foundation
@testable import PeonMediator
import PeonInterface
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The single-call resolution (`openat2` refusing every symbolic link) is what resolves a link-free
/// path, and it hands every path with a link on the way to the component walk, which authorizes the
/// link. (The safety suites run on both ways; these tests pin down which way a path takes.)
@Suite struct FileSystemResolutionTests {
    /// Device and inode of what `fd` or `path` names, to tell that a descriptor is the expected folder.
    static func identity(fd: Int32) -> [UInt64] {
        var status = stat()
        guard fstat(fd, &status) == 0 else { return [] }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    static func identity(path: String) -> [UInt64] {
        var status = stat()
        guard stat(path, &status) == 0 else { return [] }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    @Test func aLinkFreePathIsResolvedToItsParentFolderInOneCall() throws {
        try withFileSystemFixture(.singleCallFirst) { fixture in
            let capability = fixture.capability.capability
            let deep = try fixture.capability.normalize("sub/b.txt")
            let fd = try #require(try capability.openParentWithoutLinks(deep, operation: "read"))
            defer { close(fd) }
            #expect(Self.identity(fd: fd) == Self.identity(path: fixture.workspace + "/sub"))
            // The last name may be a link: that is the operation's step, which authorizes it.
            let lastIsLink = try fixture.capability.normalize("link-out")
            let parent = try #require(try capability.openParentWithoutLinks(lastIsLink, operation: "read"))
            defer { close(parent) }
            #expect(Self.identity(fd: parent) == Self.identity(path: fixture.workspace))
            let root = try #require(try capability.openParentWithoutLinks(GuestPath.root, operation: "read-dir"))
            defer { close(root) }
            #expect(Self.identity(fd: root) == Self.identity(path: "/"))
        }
    }

    @Test func aLinkInTheMiddleOfThePathSendsItToTheWalk() throws {
        try withFileSystemFixture(.singleCallFirst) { fixture in
            let capability = fixture.capability.capability
            let throughLink = try fixture.capability.normalize("dir-out/other.txt")
            #expect(try capability.openParentWithoutLinks(throughLink, operation: "read") == nil)
            // And the walk then asks about the link's target before anything is read.
            var asked: [String] = []
            let content = try fixture.capability.read(throughLink, authorize: { asked.append($0); return true })
            #expect(content == Array("sibling".utf8))
            #expect(asked == [fixture.root + "/sibling/other.txt"])
        }
    }

    @Test func aMissingOrNonFolderParentIsReportedAsTheWalkWouldReportIt() throws {
        try withFileSystemFixture(.singleCallFirst) { fixture in
            let capability = fixture.capability.capability
            let missing = try fixture.capability.normalize("no/such/file")
            let notFolder = try fixture.capability.normalize("a.txt/x")
            #expect(hostError { () throws(HostError) in try capability.openParentWithoutLinks(missing, operation: "read") }?.code == .notFound)
            #expect(hostError { () throws(HostError) in try capability.openParentWithoutLinks(notFolder, operation: "read") }?.code == .invalidArgument)
        }
    }

    /// A read opens a link-free file itself (`O_PATH`) in one call (no parent folder, no `fstatat` first); a
    /// link on the way sends the path to the step-by-step resolution that authorizes it, a last name that is a
    /// link comes back as the link itself (which the read then hands to that resolution), and errors on the
    /// way are the walk's.
    @Test func aLinkFreeFileIsOpenedInOneCallAndAnyLinkSendsItToTheResolution() throws {
        try withFileSystemFixture(.singleCallFirst) { fixture in
            let capability = fixture.capability.capability
            let flags = FileSystemCapability.handleFlags
            let deep = try fixture.capability.normalize("sub/b.txt")
            let fd = try #require(try capability.openFileWithoutLinks(deep, flags: flags, operation: "read"))
            defer { close(fd) }
            #expect(Self.identity(fd: fd) == Self.identity(path: fixture.workspace + "/sub/b.txt"))
            let onTheWay = try fixture.capability.normalize("dir-out/other.txt")
            #expect(try capability.openFileWithoutLinks(onTheWay, flags: flags, operation: "read") == nil)
            let last = try #require(try capability.openFileWithoutLinks(try fixture.capability.normalize("link-out"), flags: flags, operation: "read"))
            defer { close(last) }
            var status = stat()
            #expect(fstat(last, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK)
            // Without O_PATH | O_NOFOLLOW, a last name that is a link fails the call as well.
            #expect(try capability.openFileWithoutLinks(try fixture.capability.normalize("link-out"), flags: FileSystemCapability.readFlags, operation: "read") == nil)
            #expect(try capability.openFileWithoutLinks(GuestPath.root, flags: flags, operation: "read") == nil)
            let missing = try fixture.capability.normalize("no/such/file")
            let notFolder = try fixture.capability.normalize("a.txt/x")
            #expect(hostError { () throws(HostError) in try capability.openFileWithoutLinks(missing, flags: flags, operation: "read") }?.code == .notFound)
            #expect(hostError { () throws(HostError) in try capability.openFileWithoutLinks(notFolder, flags: flags, operation: "read") }?.code == .invalidArgument)
            // The final link is still authorized before it is read through.
            var asked: [String] = []
            _ = try? fixture.capability.read(try fixture.capability.normalize("link-out"), authorize: { asked.append($0); return false })
            #expect(asked.count == 1)
        }
        try withFileSystemFixture(.componentWalk) { fixture in
            let path = try fixture.capability.normalize("sub/b.txt")
            #expect(try fixture.capability.capability.openFileWithoutLinks(path, flags: FileSystemCapability.handleFlags, operation: "read") == nil)
        }
    }

    @Test func theForcedWalkNeverTakesTheSingleCall() throws {
        try withFileSystemFixture(.componentWalk) { fixture in
            let path = try fixture.capability.normalize("sub/b.txt")
            #expect(try fixture.capability.capability.openParentWithoutLinks(path, operation: "read") == nil)
            #expect(try fixture.capability.read(path, authorize: { _ in false }) == Array("beta".utf8))
        }
    }
}
