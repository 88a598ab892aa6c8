import Foundation
@testable import PeonMediator
import PeonInterface
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Threat: a guest granted `ws/` reaches `outside.txt` or `sibling/` (see ``FileSystemFixture`` for
/// the tree) through `..`, a symbolic link in the middle or at the end of a path, a dangling link that
/// `O_CREAT` would follow, a hard link, a loop, or a link swapped in while the host walks the path.
/// Every test asserts the refusal *and* that nothing on disk changed.
@Suite struct FileSystemEscapeTests {
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func dotDotIsResolvedBeforePolicySoItCannotHideAnEscape(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let path = try fixture.capability.normalize("sub/../../outside.txt")
            #expect(path == fixture.outside)
            #expect(!fixture.isGranted(path))
        }
    }

    @Test(arguments: ["link-out", "abs-out"], FileSystemCapability.PathResolution.allCases)
    func aSymbolicLinkAsTheLastComponentLeadingOutIsRefused(name: String, resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            var asked: [String] = []
            let path = try fixture.capability.normalize(name)
            let error = hostError { () throws(HostError) in
                try fixture.capability.read(path, authorize: { asked.append($0); return fixture.isGranted($0) })
            }
            #expect(error?.code == .denied)
            #expect(asked == [fixture.outside])
            #expect(error.map { !$0.message.contains("secret") && !$0.message.contains(fixture.outside) } == true)
            #expect(try fixture.snapshot() == before)
        }
    }

    /// `"\u{600}/"` and `"/\u{301}"` are single Characters, so splitting the path as a `String` would keep a
    /// name like `x\u{600}/other.txt` whole, and `openat` would then follow the link `x\u{600}` inside the
    /// kernel, unchecked. Paths are split on the byte `/`, so the walk sees (and authorizes) the link.
    @Test(arguments: [("x\u{600}", "other.txt"), ("dir-out", "\u{301}other.txt")], FileSystemCapability.PathResolution.allCases)
    func aSlashHiddenInAGraphemeClusterStillSeparatesNamesSoALinkBehindItIsChecked(
        names: (link: String, file: String), resolution: FileSystemCapability.PathResolution
    ) throws {
        let (link, file) = names
        try withFileSystemFixture(resolution) { fixture in
            let manager = FileManager.default
            if !manager.fileExists(atPath: fixture.workspace + "/" + link) {
                try manager.createSymbolicLink(atPath: fixture.workspace + "/" + link, withDestinationPath: "../sibling")
            }
            try "sibling".write(toFile: fixture.root + "/sibling/" + file, atomically: false, encoding: .utf8)
            let path = try fixture.capability.normalize(link + "/" + file)
            #expect(path.components.suffix(2).map(String.init) == [link, file])
            var asked: [String] = []
            let error = hostError { () throws(HostError) in
                try fixture.capability.read(path, authorize: { asked.append($0); return fixture.isGranted($0) })
            }
            #expect(error?.code == .denied)
            #expect(asked == [fixture.root + "/sibling/" + file])
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aSymbolicLinkInTheMiddleOfThePathLeadingToASiblingTreeIsRefused(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            let capability = fixture.capability
            let read = try capability.normalize("dir-out/other.txt")
            #expect(hostError { () throws(HostError) in try capability.read(read, authorize: fixture.isGranted) }?.code == .denied)
            let created = try capability.normalize("dir-out/new.txt")
            #expect(hostError { () throws(HostError) in try capability.write(created, data: [1], authorize: fixture.isGranted) }?.code == .denied)
            #expect(hostError { () throws(HostError) in try capability.append(created, data: [1], authorize: fixture.isGranted) }?.code == .denied)
            #expect(hostError { () throws(HostError) in try capability.remove(read, authorize: fixture.isGranted) }?.code == .denied)
            let directory = try capability.normalize("dir-out")
            #expect(hostError { () throws(HostError) in try capability.readDirectory(directory, authorize: fixture.isGranted) }?.code == .denied)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func writingThroughALinkThatLeadsOutIsRefusedAndTheTargetIsUntouched(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            let path = try fixture.capability.normalize("link-out")
            let write = hostError { () throws(HostError) in try fixture.capability.write(path, data: Array("pwned".utf8), authorize: fixture.isGranted) }
            let append = hostError { () throws(HostError) in try fixture.capability.append(path, data: Array("pwned".utf8), authorize: fixture.isGranted) }
            #expect(write?.code == .denied)
            #expect(append?.code == .denied)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aDanglingLinkLeadingOutCannotBeUsedToCreateAFileOutside(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            let path = try fixture.capability.normalize("dangling")
            #expect(hostError { () throws(HostError) in try fixture.capability.append(path, data: [0x41], authorize: fixture.isGranted) }?.code == .denied)
            #expect(hostError { () throws(HostError) in try fixture.capability.write(path, data: [0x41], authorize: fixture.isGranted) }?.code == .denied)
            #expect(!FileManager.default.fileExists(atPath: fixture.root + "/created.txt"))
            #expect(try fixture.snapshot() == before)
        }
    }

    /// `ws/tricky -> dir-out/../outside.txt`: followed physically, `dir-out/..` is the root and the
    /// link reaches `outside.txt`; resolved lexically it is `ws/outside.txt`, which is what was authorized.
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func dotDotInsideALinkTargetCannotClimbOutOfAnotherLinksRealTarget(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            #expect(symlink("dir-out/../outside.txt", fixture.workspace + "/tricky") == 0)
            let before = try fixture.snapshot()
            var asked: [String] = []
            let error = hostError { () throws(HostError) in
                try fixture.capability.read(fixture.workspace + "/tricky", authorize: { asked.append($0); return fixture.isGranted($0) })
            }
            #expect(asked == [fixture.workspace + "/outside.txt"])
            #expect(error?.code == .notFound)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func anAbsolutePathOutsideReachesPolicyUnchanged(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let outside = try fixture.capability.normalize(fixture.outside)
            let system = try fixture.capability.normalize("/etc/passwd")
            #expect(outside == fixture.outside)
            #expect(system == "/etc/passwd")
            #expect(!fixture.isGranted(system))
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aSymbolicLinkLoopEndsWithAnErrorInsteadOfSpinning(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            var hops = 0
            let path = try fixture.capability.normalize("loop-a")
            let error = hostError { () throws(HostError) in
                try fixture.capability.read(path, authorize: { _ in hops += 1; return true })
            }
            #expect(error?.code == .invalidArgument)
            #expect(hops == FileSystemCapability.maxSymbolicLinkHops)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aHardLinkToAFileOutsideIsRefusedForReadAndAppend(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let before = try fixture.snapshot()
            let path = try fixture.capability.normalize("hard.txt")
            #expect(hostError { () throws(HostError) in try fixture.capability.read(path, authorize: fixture.isGranted) }?.code == .denied)
            #expect(hostError { () throws(HostError) in try fixture.capability.append(path, data: [0x41], authorize: fixture.isGranted) }?.code == .denied)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func replacingAHardLinkedFileNeverChangesItsOtherName(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let path = try fixture.capability.normalize("hard.txt")
            try fixture.capability.write(path, data: Array("new".utf8), authorize: fixture.isGranted)
            #expect(try String(contentsOfFile: fixture.outside, encoding: .utf8) == "secret")
            #expect(try String(contentsOfFile: path.description, encoding: .utf8) == "new")
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func removingALinkThatLeadsOutRemovesTheLinkNotTheTarget(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let path = try fixture.capability.normalize("link-out")
            try fixture.capability.remove(path, authorize: { _ in Issue.record("remove must not follow the link"); return false })
            #expect(FileManager.default.fileExists(atPath: fixture.outside))
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: path.description)) == nil)
        }
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aFIFOIsRefusedInsteadOfBlockingTheHost(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let path = fixture.workspace + "/fifo"
            #expect(mkfifo(path, 0o600) == 0)
            #expect(hostError { () throws(HostError) in try fixture.capability.read(path, authorize: fixture.isGranted) }?.code == .invalidArgument)
            #expect(hostError { () throws(HostError) in try fixture.capability.append(path, data: [1], authorize: fixture.isGranted) }?.code == .invalidArgument)
        }
    }

    /// A second thread keeps swapping `ws/swap` between a real folder and a link to `sibling/`; a
    /// walk that checked and then used the path would sooner or later read `sibling/other.txt`.
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aLinkSwappedInDuringTheWalkIsNeverFollowedWithoutAuthorization(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let swap = fixture.workspace + "/swap"
            let real = fixture.workspace + "/swap-real"
            let link = fixture.workspace + "/swap-link"
            try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: true)
            try "inside".write(toFile: real + "/other.txt", atomically: false, encoding: .utf8)
            #expect(symlink("../sibling", link) == 0)
            #expect(rename(real, swap) == 0)
            let stop = Atomic(false)
            let finished = DispatchSemaphore(value: 0)
            let swapper = Thread {
                defer { finished.signal() }
                // Alternate: move the folder away and put the link in its place, then back.
                var linkInPlace = false
                while !stop.load() {
                    if linkInPlace {
                        _ = rename(swap, link)
                        _ = rename(real, swap)
                    } else {
                        _ = rename(swap, real)
                        _ = rename(link, swap)
                    }
                    linkInPlace.toggle()
                }
            }
            swapper.start()
            var leaked = 0
            for _ in 0..<3000 {
                do {
                    let content = try fixture.capability.read(swap + "/other.txt", authorize: fixture.isGranted)
                    if content == Array("sibling".utf8) { leaked += 1 }
                } catch {
                    // Refusals and "not found" mid-swap are the expected outcomes.
                }
            }
            stop.store(true)
            finished.wait()
            #expect(leaked == 0)
            #expect(try String(contentsOfFile: fixture.root + "/sibling/other.txt", encoding: .utf8) == "sibling")
        }
    }
}

/// A tiny lock-protected flag for the swapper thread.
final class Atomic<Value: Sendable>: @unchecked Sendable {
    // Invariant: `value` is only read or written while `lock` is held.
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) {
        self.value = value
    }

    func load() -> Value {
        lock.withLock { value }
    }

    func store(_ newValue: Value) {
        lock.withLock { value = newValue }
    }
}
