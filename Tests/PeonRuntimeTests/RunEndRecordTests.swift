import Foundation
import PeonRuntime
import PeonTestSupport
import Testing

/// A worker killed while it waited to exit (the log's lock held by another writer past the deadline, or a stop) could
/// have written its `run.end` already; the supervisor then wrote a second (`run.end ok`, then `run.end timeout`). It
/// looks first (``AgentSession/runEndRecorded(path:runID:)``), and a run that has its end is not given another. The
/// end-to-end races are in the probe scripts the closing note names; this pins the check itself.
@Suite struct RunEndRecordTests {
    @Test func aRunsOwnEndIsFoundAndOnlyItsOwn() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("a.jsonl").path
            let lines = [
                #"{"seq":0,"time":"t","run":"run-a","module":"m","call":"run.start","prev":"0"}"#,
                #"{"seq":1,"time":"t","run":"run-b","module":"m","call":"run.start","prev":"0"}"#,
                #"{"seq":2,"time":"t","run":"run-a","module":"m","call":"run.end","outcome":"ok","prev":"0"}"#,
                #"{"seq":3,"time":"t","run":"run-ab","module":"m","call":"fs.read","reason":"\"call\":\"run.end\"","prev":"0"}"#,
            ]
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
            #expect(AgentSession.runEndRecorded(path: path, runID: "run-a"))
            #expect(!AgentSession.runEndRecorded(path: path, runID: "run-b"))
            // Another run whose id begins with this one's, and a reason that quotes the words, are not its end.
            #expect(!AgentSession.runEndRecorded(path: path, runID: "run-ab"))
            #expect(!AgentSession.runEndRecorded(path: folder.path + "/missing.jsonl", runID: "run-a"))
            // Its start too: present, or absent when the whole file was read.
            #expect(AgentSession.recordedMarks(path: path, runID: "run-a") == (.present, .present))
            #expect(AgentSession.recordedMarks(path: path, runID: "run-b") == (.present, .absent))
            #expect(AgentSession.recordedMarks(path: path, runID: "run-c") == (.absent, .absent))
            #expect(AgentSession.recordedMarks(path: path, runID: "run-ab") == (.absent, .absent))
        }
    }

    /// Past the last 8 MiB of a larger log nothing is known: the supervisor then writes no `run.start` of its own.
    @Test func aRunsMarksFurtherBackAreUnknown() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("big.jsonl").path
            var text = #"{"seq":0,"time":"t","run":"run-old","module":"m","call":"run.start","prev":"0"}"# + "\n"
            let filler = #"{"seq":1,"time":"t","run":"run-other","module":"m","call":"fs.read","prev":"0"}"# + "\n"
            text += String(repeating: filler, count: (9 << 20) / filler.utf8.count)
            let before = text.utf8.count
            text += #"{"seq":2,"time":"t","run":"run-new","module":"m","call":"run.start","prev":"0"}"# + "\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            #expect(AgentSession.recordedMarks(path: path, runID: "run-old") == (.unknown, .unknown))
            #expect(AgentSession.recordedMarks(path: path, runID: "run-new") == (.present, .unknown))
            // Knowing where a run's entries can begin (the log's size when its worker started), a start that is not
            // there after it is known to be absent, however large the log: a run stopped before its start in a 28 MB
            // log got no supervisor `run.start` (found by a red-team pass).
            #expect(AgentSession.recordedMarks(path: path, runID: "run-new", from: before).start == .present)
            #expect(AgentSession.recordedMarks(path: path, runID: "run-late", from: before).start == .absent)
            #expect(AgentSession.recordedMarks(path: path, runID: "run-old", from: before).start == .absent)
        }
    }
}
