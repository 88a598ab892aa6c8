import Foundation
@testable import PeonMediator
import PeonInterface
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Normalization is the string policy decides on: it must be canonical, so that two spellings of one
/// path can never get two different answers, and it must reject what the OS would misread.
@Suite struct FileSystemNormalizationTests {
    static let capability = FileSystemUnderTest(workingDirectory: "/ws/a")

    @Test(arguments: [
        ("b", "/ws/a/b"),
        ("/a/./b", "/a/b"),
        ("//a//b", "/a/b"),
        ("/a/b/", "/a/b"),
        ("/a/b/.", "/a/b"),
        (".", "/ws/a"),
        ("./", "/ws/a"),
        ("/", "/"),
        ("//", "/"),
        ("/..", "/"),
        ("../../../../etc/passwd", "/etc/passwd"),
        ("../b/./c//", "/ws/b/c"),
        ("x/../../y", "/ws/y"),
        ("/a/b/../../..", "/"),
        ("...", "/ws/a/..."),
        ("a\\..\\b", "/ws/a/a\\..\\b"),
    ])
    func aPathNormalizesToOneCanonicalAbsoluteSpelling(input: String, expected: String) throws {
        #expect(try Self.capability.normalize(input) == expected)
    }

    @Test func theWorkingDirectoryIsItselfNormalized() throws {
        let capability = FileSystemUnderTest(workingDirectory: "/ws//a/./b/../")
        #expect(capability.workingDirectory?.description == "/ws/a")
        #expect(try capability.normalize("c") == "/ws/a/c")
    }

    @Test(arguments: [
        ("", "empty"),
        ("a\u{0}b", "NUL"),
        ("/ws/\u{0}", "NUL"),
        (String(repeating: "a/", count: 2048), "longer than 4095"),
        ("/" + String(repeating: "n", count: 256), "longer than 255"),
    ])
    func aMalformedPathIsInvalidArgument(input: String, reason: String) {
        let error = hostError { () throws(HostError) in try Self.capability.normalize(input) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(reason) == true)
    }

    @Test func aPathThatGrowsTooLongOnceJoinedToTheWorkingDirectoryIsRefused() {
        let deep = FileSystemUnderTest(workingDirectory: "/" + String(repeating: "d/", count: 1000))
        let error = hostError { () throws(HostError) in try deep.normalize(String(repeating: "x/", count: 1100)) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func aRelativePathWithoutAnAbsoluteWorkingDirectoryIsRefused() {
        let capability = FileSystemUnderTest(workingDirectory: "relative")
        #expect(hostError { () throws(HostError) in try capability.normalize("x") }?.code == .invalidArgument)
        #expect((try? capability.normalize("/x"))?.description == "/x")
    }
}

/// The operations do what the guest asked, inside the grant, within their limits.
@Suite struct FileSystemOperationTests {
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func readReturnsTheFileAndFollowsALinkThatStaysInside(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            var asked: [String] = []
            #expect(try fixture.capability.read(fixture.workspace + "/a.txt", authorize: fixture.isGranted) == Array("alpha".utf8))
            let content = try fixture.capability.read(fixture.workspace + "/link-in", authorize: { asked.append($0); return fixture.isGranted($0) })
            #expect(content == Array("beta".utf8))
            #expect(asked == [fixture.workspace + "/sub/b.txt"])
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func writeCreatesAndAtomicallyReplacesKeepingTheModeAndLeavingNoTemporaryFile(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let capability = fixture.capability
            let path = fixture.workspace + "/new.txt"
            try capability.write(path, data: Array("one".utf8), authorize: fixture.isGranted)
            #expect(chmod(path, 0o640) == 0)
            try capability.write(path, data: Array("two".utf8), authorize: fixture.isGranted)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
            var status = stat()
            #expect(stat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o640)
            let names = try capability.readDirectory(fixture.workspace, authorize: fixture.isGranted)
            #expect(!names.contains { $0.hasPrefix(".peon-") })
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func writeThroughALinkInsideReplacesTheTargetAndKeepsTheLink(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let link = fixture.workspace + "/link-in"
            try fixture.capability.write(link, data: Array("BETA".utf8), authorize: fixture.isGranted)
            #expect(try String(contentsOfFile: fixture.workspace + "/sub/b.txt", encoding: .utf8) == "BETA")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "sub/b.txt")
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func appendCreatesThenAppends(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let path = fixture.workspace + "/log.txt"
            try fixture.capability.append(path, data: Array("a".utf8), authorize: fixture.isGranted)
            try fixture.capability.append(path, data: Array("b".utf8), authorize: fixture.isGranted)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "ab")
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func readDirectoryListsNamesOnlySortedWithoutDotEntries(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let names = try fixture.capability.readDirectory(fixture.workspace + "/", authorize: fixture.isGranted)
            #expect(names == ["a.txt", "abs-out", "dangling", "dir-out", "empty", "hard.txt", "link-in", "link-out", "loop-a", "loop-b", "sub"])
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func removeDeletesFilesAndEmptyFoldersButNotFullOnesOrTheRoot(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let capability = fixture.capability
            try capability.remove(fixture.workspace + "/a.txt", authorize: fixture.isGranted)
            try capability.remove(fixture.workspace + "/empty", authorize: fixture.isGranted)
            #expect(!FileManager.default.fileExists(atPath: fixture.workspace + "/a.txt"))
            #expect(!FileManager.default.fileExists(atPath: fixture.workspace + "/empty"))
            #expect(hostError { () throws(HostError) in try capability.remove(fixture.workspace + "/sub", authorize: fixture.isGranted) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try capability.remove("/", authorize: { _ in true }) }?.code == .invalidArgument)
            #expect(FileManager.default.fileExists(atPath: fixture.workspace + "/sub/b.txt"))
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func missingFilesAndWrongKindsGetDistinctCodes(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let capability = fixture.capability
            let ws = fixture.workspace
            #expect(hostError { () throws(HostError) in try capability.read(ws + "/nope", authorize: fixture.isGranted) }?.code == .notFound)
            #expect(hostError { () throws(HostError) in try capability.read(ws + "/sub", authorize: fixture.isGranted) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try capability.read(ws + "/a.txt/x", authorize: fixture.isGranted) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try capability.readDirectory(ws + "/a.txt", authorize: fixture.isGranted) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try capability.write(ws + "/no/dir/x", data: [], authorize: fixture.isGranted) }?.code == .notFound)
            #expect(hostError { () throws(HostError) in try capability.write(ws + "/sub", data: [], authorize: fixture.isGranted) }?.code == .invalidArgument)
            // The capability only ever sees absolute paths: a relative one cannot even be parsed without a base.
            #expect(hostError { () throws(HostError) in try GuestPath(parsing: "relative", relativeTo: nil) }?.code == .invalidArgument)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aReadOverTheLimitIsRefusedWithoutReturningData(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let small = FileSystemUnderTest(workingDirectory: fixture.workspace, maxReadBytes: 4, maxWriteBytes: 4,
                                           resolution: resolution)
            let content = try small.read(fixture.workspace + "/sub/b.txt", authorize: fixture.isGranted)
            #expect(content == Array("beta".utf8))
            #expect(hostError { () throws(HostError) in try small.read(fixture.workspace + "/a.txt", authorize: fixture.isGranted) }?.code == .limitExceeded)
        }
    }

    /// The read buffer is sized from `fstat`: every size around the old 64 KiB chunk comes back whole, a file
    /// exactly at the limit is read and one byte more is refused.
    @Test func readsReturnEveryByteAtEverySize() throws {
        try withFileSystemFixture(.singleCallFirst) { fixture in
            for size in [0, 1, 4095, 4096, 65_535, 65_536, 65_537, 300_001] {
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
                let path = fixture.workspace + "/sized-\(size).bin"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                // Bools, not `==` on the arrays: a failing comparison of large arrays is diffed for minutes.
                #expect(try FileSystemUnderTest(workingDirectory: fixture.workspace).read(path) { _ in true }.elementsEqual(bytes),
                        "a file of \(size) bytes")
                let exact = FileSystemUnderTest(workingDirectory: fixture.workspace, maxReadBytes: size)
                #expect(try exact.read(path) { _ in true }.elementsEqual(bytes), "a file of exactly the limit is read")
                if size > 0 {
                    let under = FileSystemUnderTest(workingDirectory: fixture.workspace, maxReadBytes: size - 1)
                    #expect(hostError { () throws(HostError) in try under.read(path) { _ in true } }?.code == .limitExceeded)
                }
            }
        }
    }

    /// A regular file whose size `fstat` does not tell (a /proc file reports 0, like a file growing while it is
    /// read) is still read to its end, and still stopped at the limit.
    @Test func aFileLongerThanItsStatSizeIsReadToTheEndAndLimited() throws {
        let path = "/proc/version"
        guard let expected = FileManager.default.contents(atPath: path), expected.count > 8 else { return }
        var status = stat()
        guard stat(path, &status) == 0, status.st_size == 0 else { return }
        let reader = FileSystemUnderTest(workingDirectory: "/")
        #expect(try reader.read(path) { _ in true } == Array(expected))
        let small = FileSystemUnderTest(workingDirectory: "/", maxReadBytes: 8)
        #expect(hostError { () throws(HostError) in try small.read(path) { _ in true } }?.code == .limitExceeded)
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aWriteOrAppendOverTheLimitIsRefusedBeforeAnythingChanges(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            let small = FileSystemUnderTest(workingDirectory: fixture.workspace, maxReadBytes: 4, maxWriteBytes: 4,
                                           resolution: resolution)
            let path = fixture.workspace + "/a.txt"
            #expect(hostError { () throws(HostError) in try small.write(path, data: Array("12345".utf8), authorize: fixture.isGranted) }?.code == .limitExceeded)
            #expect(hostError { () throws(HostError) in try small.append(path, data: Array("12345".utf8), authorize: fixture.isGranted) }?.code == .limitExceeded)
            #expect(try fixture.snapshot() == before)
        }
    }
}
