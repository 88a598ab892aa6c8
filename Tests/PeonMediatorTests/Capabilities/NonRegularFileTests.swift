import Foundation
import PeonAudit
@testable import PeonMediator
import PeonInterface
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Threat: a path a grant covers names a FIFO or a device node. Refusing it after opening it is too late:
/// opening has effects of its own. Opening a FIFO for reading releases a writer blocked in `open` (and its
/// later writes succeed); opening a tape rewinds it, opening a watchdog arms it. So no `fs` call may open
/// anything but a regular file (or a folder, for a listing), not even for a moment, not even when the name
/// is swapped while the call runs. The observable effect used here: a thread blocked in
/// `open(fifo, O_WRONLY)` returns only once someone opens the FIFO for reading.
@Suite struct NonRegularFileTests {
    static let grants = """
        module = "agent"
        [[fs]]
        paths = ["data/**"]
        allow = ["read", "write", "append", "list"]
        """

    /// Every guest-facing call that could open the FIFO (read, read through a granted link, append, write,
    /// list) is refused through the mediator, and the blocked writer is still blocked afterwards.
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aFIFOAGrantCoversIsRefusedWithoutEverBeingOpened(resolution: FileSystemCapability.PathResolution) throws {
        let scratch = try Scratch()
        _ = try scratch.file("data/plain.txt", "plain")
        let fifo = scratch.path + "/data/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(symlink("fifo", scratch.path + "/data/link-to-fifo") == 0)
        let harness = try Harness(grants: Self.grants, scratch: scratch)
        let mediator = Mediator(harness.mediator.configuration, fileSystem: FileSystemCapability(resolution: resolution),
                                databases: DatabaseCapability(databases: [:]),
                                programs: ExecCapability(workingDirectory: scratch.path), http: UnavailableHTTP())
        let writer = try BlockedFIFOOpener(writing: true, fifo)
        defer { writer.release() }

        let calls: [(String, () throws(HostError) -> Void)] = [
            ("read", { () throws(HostError) in _ = try mediator.read(path: "data/fifo") }),
            ("read through a link", { () throws(HostError) in _ = try mediator.read(path: "data/link-to-fifo") }),
            ("append", { () throws(HostError) in try mediator.append(path: "data/fifo", data: [1]) }),
            ("write", { () throws(HostError) in try mediator.write(path: "data/fifo", data: [1]) }),
            ("read-dir", { () throws(HostError) in _ = try mediator.readDirectory(path: "data/fifo") }),
        ]
        for (name, call) in calls {
            let error = harness.error(call)
            #expect(error?.code == .invalidArgument, "\(name): \(String(describing: error))")
            #expect(!writer.hasOpened, "\(name) opened the FIFO: its blocked writer was released")
        }
        // The calls were allowed (the refusal is the capability's), and a regular file beside it still reads.
        #expect(try harness.decisions("fs.read").allSatisfy { $0.decision == .allow })
        #expect(try mediator.read(path: "data/plain.txt") == Array("plain".utf8))
        #expect(writer.release(), "the writer was not released by a reader")
    }

    /// A second thread keeps swapping one name between a regular file and a FIFO (with its writer blocked in
    /// `open`) while the name is read: a check by name followed by an open by name would sooner or later open
    /// the FIFO. Every read returns the file, or is refused, and the writer stays blocked. (An append is not swapped
    /// here: where the name is missing mid-swap it creates a file, which the swapping would then move over the FIFO.)
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aFIFOSwappedInWhileAFileIsReadIsNeverOpened(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let swap = fixture.workspace + "/swap"
            let fileAway = fixture.workspace + "/swap-file"
            let fifoAway = fixture.workspace + "/swap-fifo"
            try "file".write(toFile: swap, atomically: false, encoding: .utf8)
            #expect(mkfifo(fifoAway, 0o600) == 0)
            let writer = try BlockedFIFOOpener(writing: true, fifoAway)
            defer { writer.release() }
            let stop = Atomic(false)
            let finished = DispatchSemaphore(value: 0)
            let swapper = Thread {
                defer { finished.signal() }
                var fifoInPlace = false
                while !stop.load() {
                    if fifoInPlace {
                        _ = rename(swap, fifoAway)
                        _ = rename(fileAway, swap)
                    } else {
                        _ = rename(swap, fileAway)
                        _ = rename(fifoAway, swap)
                    }
                    fifoInPlace.toggle()
                }
            }
            swapper.start()
            var unexpected: [String] = []
            for _ in 0..<3000 {
                do throws(HostError) {
                    let content = try fixture.capability.read(swap, authorize: fixture.isGranted)
                    if content != Array("file".utf8) { unexpected.append("read \(content.count) bytes") }
                } catch {
                    // Mid-swap the name is missing, or is the FIFO (refused).
                    if error.code != .notFound && error.code != .invalidArgument { unexpected.append("\(error)") }
                }
                if writer.hasOpened { break }
            }
            stop.store(true)
            #expect(finished.wait(timeout: .now() + 10) == .success)
            #expect(!writer.hasOpened, "a read or append opened the FIFO swapped in")
            #expect(unexpected.isEmpty, "\(unexpected.prefix(3))")
            // Put the FIFO back at the name the writer opened, so that `release` reaches the same FIFO.
            var status = stat()
            if lstat(fifoAway, &status) != 0 { _ = rename(swap, fifoAway) }
            #expect(writer.release(), "the writer was not released by a reader")
        }
    }

    /// The same for `append`, seen from the other side: a thread blocked in `open(fifo, O_RDONLY)` returns once
    /// someone opens the FIFO for writing. The name is replaced atomically (a `rename` over it) by a new regular
    /// file or by another name of the FIFO, so it is never missing and the append never creates a file. Every
    /// append goes into a regular file or is refused, and the reader stays blocked.
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func aFIFOSwappedInWhileAFileIsAppendedToIsNeverOpened(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let swap = fixture.workspace + "/swap"
            let fifo = fixture.workspace + "/fifo"
            let spareFIFO = fixture.workspace + "/spare-fifo"
            let spareFile = fixture.workspace + "/spare-file"
            try "file".write(toFile: swap, atomically: false, encoding: .utf8)
            #expect(mkfifo(fifo, 0o600) == 0)
            let reader = try BlockedFIFOOpener(writing: false, fifo)
            defer { reader.release() }
            let stop = Atomic(false)
            let finished = DispatchSemaphore(value: 0)
            let swapper = Thread {
                defer { finished.signal() }
                while !stop.load() {
                    _ = link(fifo, spareFIFO)
                    _ = rename(spareFIFO, swap)
                    let fd = open(spareFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                    if fd >= 0 { close(fd) }
                    _ = rename(spareFile, swap)
                }
            }
            swapper.start()
            var unexpected: [String] = []
            for _ in 0..<3000 {
                do throws(HostError) {
                    try fixture.capability.append(swap, data: [], authorize: fixture.isGranted)
                } catch {
                    if error.code != .invalidArgument { unexpected.append("\(error)") }
                }
                if reader.hasOpened { break }
            }
            stop.store(true)
            #expect(finished.wait(timeout: .now() + 10) == .success)
            #expect(!reader.hasOpened, "an append opened the FIFO swapped in")
            #expect(unexpected.isEmpty, "\(unexpected.prefix(3))")
            #expect(reader.release(), "the reader was not released by a writer")
        }
    }

    /// Where /proc is not mounted there is no race-free way to open a checked file, so an existing file is
    /// not opened at all (`io`, saying why); what opens no existing file still works: creating a file by
    /// `append`, `write` (a new file renamed into place), listings; and a FIFO is still refused unopened.
    @Test(arguments: FileSystemCapability.PathResolution.allCases)
    func withoutProcAnExistingFileIsNeverOpenedButNewFilesStillAre(resolution: FileSystemCapability.PathResolution) throws {
        try withFileSystemFixture(resolution) { fixture in
            let capability = FileSystemUnderTest(capability: FileSystemCapability(resolution: resolution, reopensThroughProc: false),
                                                 workingDirectory: fixture.workspace)
            let fifo = fixture.workspace + "/fifo"
            #expect(mkfifo(fifo, 0o600) == 0)
            let writer = try BlockedFIFOOpener(writing: true, fifo)
            defer { writer.release() }

            let read = hostError { () throws(HostError) in try capability.read("a.txt", authorize: fixture.isGranted) }
            #expect(read?.code == .io)
            #expect(read?.message.contains("/proc") == true, "\(String(describing: read))")
            #expect(hostError { () throws(HostError) in try capability.append("a.txt", data: [1], authorize: fixture.isGranted) }?.code == .io)
            #expect(try String(contentsOfFile: fixture.workspace + "/a.txt", encoding: .utf8) == "alpha")

            try capability.append("new.txt", data: Array("new".utf8), authorize: fixture.isGranted)
            try capability.write("a.txt", data: Array("written".utf8), authorize: fixture.isGranted)
            #expect(try String(contentsOfFile: fixture.workspace + "/new.txt", encoding: .utf8) == "new")
            #expect(try String(contentsOfFile: fixture.workspace + "/a.txt", encoding: .utf8) == "written")
            #expect(try capability.readDirectory("sub", authorize: fixture.isGranted) == ["b.txt"])

            for operation in ["read", "append"] {
                let error = hostError { () throws(HostError) in
                    if operation == "read" { _ = try capability.read("fifo", authorize: fixture.isGranted) }
                    else { try capability.append("fifo", data: [1], authorize: fixture.isGranted) }
                }
                #expect(error?.code == .invalidArgument, "\(operation): \(String(describing: error))")
            }
            #expect(!writer.hasOpened)
            #expect(writer.release(), "the writer was not released by a reader")
        }
    }
}

/// A thread blocked in `open(fifo, O_WRONLY)`, which returns only when someone opens the FIFO for reading
/// (or in `open(fifo, O_RDONLY)`, which returns only when someone opens it for writing): ``hasOpened`` tells
/// whether anyone did. ``release()`` opens the FIFO the other way itself (non-blocking) and waits, with a
/// timeout, for the thread to finish, so a test never hangs on it.
final class BlockedFIFOOpener: Sendable {
    let path: String
    /// Whether the thread opens for writing (else for reading).
    let writing: Bool
    private let opened = Synchronization.Atomic(false)
    private let tid = Mutex<String?>(nil)
    private let finished = DispatchSemaphore(value: 0)
    private let released = Synchronization.Atomic(false)

    /// Starts the thread and returns once it is asleep in `open` (or after 5 s).
    init(writing: Bool, _ path: String) throws {
        self.path = path
        self.writing = writing
        let thread = Thread { [self] in
            // "PID/task/TID": where this thread's state can be read.
            var buffer = [CChar](repeating: 0, count: 64)
            let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
            tid.withLock { $0 = count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "" }
            let fd = open(path, (writing ? O_WRONLY : O_RDONLY) | O_CLOEXEC)
            opened.store(true, ordering: .sequentiallyConsistent)
            if fd >= 0 { close(fd) }
            finished.signal()
        }
        thread.start()
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let task = tid.withLock({ $0 }), isAsleepInASystemCall(task) { return }
            usleep(2000)
        }
    }

    /// Whether the thread's `open` has returned, i.e. someone opened the FIFO the other way.
    var hasOpened: Bool { opened.load(ordering: .sequentiallyConsistent) }

    /// Opens the FIFO the other way (releasing the thread) and waits up to 10 s for the thread to end; `true`
    /// when it ended. Only the first call does anything.
    @discardableResult
    func release() -> Bool {
        if released.exchange(true, ordering: .sequentiallyConsistent) { return true }
        // Non-blocking: a reader's open returns at once; a writer's succeeds because the blocked reader counts.
        let fd = open(path, (writing ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return finished.wait(timeout: .now() + 10) == .success
    }

    /// Whether the thread `task` ("PID/task/TID") sleeps (`S`) inside a system call: after it announced itself,
    /// the only one it makes is the `open`. An empty `task` (no /proc) is taken as asleep after 200 ms.
    private func isAsleepInASystemCall(_ task: String) -> Bool {
        if task.isEmpty { usleep(200_000); return true }
        guard let stat = try? String(contentsOfFile: "/proc/" + task + "/stat", encoding: .utf8),
              let nameEnd = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: nameEnd)...].split(separator: " ").first
        guard state == "S" else { return false }
        // Where readable, the system call it sleeps in ("running" while it is not in one).
        if let call = try? String(contentsOfFile: "/proc/" + task + "/syscall", encoding: .utf8) {
            return !call.hasPrefix("running")
        }
        return true
    }
}
