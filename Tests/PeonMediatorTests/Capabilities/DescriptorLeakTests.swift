import Foundation
@testable import PeonMediator
import PeonInterface
import PeonTestSupport
import Testing

/// Threat: a guest exhausts the host's file descriptors by repeating calls that leak one on some
/// path (success, refusal or error). Other suites run in parallel and open descriptors too, so the
/// check allows a margin far below one leaked descriptor per call.
@Suite struct DescriptorLeakTests {
    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func fileSystemCallsLeaveNoDescriptorOpenOnAnyPath(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let capability = fixture.capability
            let ws = fixture.workspace
            let before = Self.openDescriptors()
            for round in 0..<100 {
                _ = try? capability.read(ws + "/a.txt", authorize: fixture.isGranted)
                _ = try? capability.read(ws + "/link-out", authorize: fixture.isGranted)
                _ = try? capability.read(ws + "/loop-a", authorize: { _ in true })
                _ = try? capability.read(ws + "/dir-out/other.txt", authorize: fixture.isGranted)
                _ = try? capability.write(ws + "/w\(round % 3).txt", data: [1, 2], authorize: fixture.isGranted)
                _ = try? capability.append(ws + "/hard.txt", data: [1], authorize: fixture.isGranted)
                _ = try? capability.readDirectory(ws, authorize: fixture.isGranted)
                _ = try? capability.remove(ws + "/nope", authorize: fixture.isGranted)
            }
            #expect(Self.openDescriptors() - before < 100)
        }
    }

    @Test func execCallsLeaveNoDescriptorOpen() {
        let capability = ExecCapability(workingDirectory: "/")
        let before = Self.openDescriptors()
        for _ in 0..<30 {
            _ = try? capability.run(program: "/bin/true", arguments: [], stdin: [1], environment: [:], timeout: .seconds(10), maxOutputBytes: 10)
            _ = try? capability.run(program: "/usr/bin/yes", arguments: [], stdin: [], environment: [:], timeout: .seconds(10), maxOutputBytes: 10)
            _ = try? capability.run(program: "/nonexistent", arguments: [], stdin: [], environment: [:], timeout: .seconds(10), maxOutputBytes: 10)
        }
        // Three socket pairs and a pidfd per spawned call: a leaked pidfd alone would add 60.
        #expect(Self.openDescriptors() - before < 60)
    }
}
