import Foundation
import PeonPostgres
import PeonTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How the shipper reads `LOG.checkpoint` before shipping it (no database needed): bounded, and never waiting.
@Suite("audit shipper: reading LOG.checkpoint")
struct ShipperCheckpointTests {
    @Test("a FIFO at LOG.checkpoint is skipped at once, not waited on until a writer comes")
    func fifoCheckpointIsNotWaitedOn() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("run.jsonl").path
            try #require(mkfifo(log + ".checkpoint", 0o600) == 0)
            // A writer that comes after three seconds, only if a reader is waiting by then (a non-blocking open
            // for writing fails while nobody reads): a reader that waits gets its note; one that does not, nothing.
            let path = log + ".checkpoint"
            let writer = Thread {
                Thread.sleep(forTimeInterval: 3)
                let fd = open(path, O_WRONLY | O_NONBLOCK)
                guard fd >= 0 else { return }
                _ = "origin\n1\nroot\n\n— forged\n".withCString { write(fd, $0, strlen($0)) }
                close(fd)
            }
            writer.start()
            let started = Date()
            let note = PostgresAuditShipper.readCheckpoint(logPath: log)
            #expect(note == nil, "read from the FIFO: \(note ?? "")")
            #expect(Date().timeIntervalSince(started) < 2, "waited \(Date().timeIntervalSince(started)) s")
        }
    }

    @Test("a 1 GiB LOG.checkpoint is skipped by its size, unread, and a normal one is read")
    func checkpointIsBounded() throws {
        try withTemporaryDirectory { folder in
            let log = folder.appendingPathComponent("run.jsonl").path
            let text = "peon-wasm/test\n1\nAAAA\n\n— key sig\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: log + ".checkpoint"))
            #expect(PostgresAuditShipper.readCheckpoint(logPath: log) == text)
            let fd = open(log + ".checkpoint", O_WRONLY | O_TRUNC)
            try #require(fd >= 0)
            try #require(ftruncate(fd, 1 << 30) == 0)
            close(fd)
            // Refused by its size, not read whole first (reading the 1 GiB took about 15 s in a debug build).
            let started = Date()
            #expect(PostgresAuditShipper.readCheckpoint(logPath: log) == nil)
            #expect(Date().timeIntervalSince(started) < 5, "took \(Date().timeIntervalSince(started)) s: it was read")
        }
    }
}
