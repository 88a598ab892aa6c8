import Foundation
import PeonTestSupport
import Testing

/// Threat: a guest with no grants at all fills the disk with audit entries, calling in a loop: every
/// refusal past its call quota (and every call refused for a malformed argument) was audited and did not
/// count, so one 30-second run wrote gigabytes.
@Suite struct QuotaFloodTests {
    /// A module whose `run` calls `fs.read` on `path` forever, ignoring the answer.
    static func floodModule(path: [UInt8]) -> String {
        let bytes = path.map { "\\" + String(format: "%02x", $0) }.joined()
        return """
            (module
              (import "peon:host/fs@0.1.0" "read" (func $read (param i32 i32 i32)))
              (memory (export "memory") 4)
              (data (i32.const 64) "\(bytes)")
              (global $heap (mut i32) (i32.const 1024))
              (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
                (local $p i32)
                (local.set $p (global.get $heap))
                (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
                (local.get $p))
              (func (export "run") (param i32 i32) (result i32)
                (loop $again
                  (global.set $heap (i32.const 1024))
                  (call $read (i32.const 64) (i32.const \(path.count)) (i32.const 32))
                  (br $again))
                (i32.const 16)))
            """
    }

    @Test("A guest that keeps calling after its quota refused it is stopped, and the log stays small",
          arguments: [Array("secret.txt".utf8), [UInt8(ascii: "a"), 0, UInt8(ascii: "b")]])
    func aGuestLoopingPastItsQuotaIsStopped(path: [UInt8]) throws {
        try withTemporaryDirectory { folder in
            let module = folder.appendingPathComponent("flood.wat")
            try Data(Self.floodModule(path: path).utf8).write(to: module)
            let grants = folder.appendingPathComponent("grants.toml")
            try Data("module = \"flood\"\n[limits]\ncalls = 50\n".utf8).write(to: grants)
            let audit = folder.appendingPathComponent("audit.jsonl")
            let result = try runPeonWasm(["run", module.path, "--grants", grants.path, "--audit", audit.path, "--timeout", "60s"],
                                         directory: folder)
            #expect(result.status == 72, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("after its call quota of 50 was used up"), "stderr: \(result.stderr)")
            let lines = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n")
            // run.start, 50 refusals within the quota, 100 past it, run.end.
            #expect(lines.count <= 50 + 100 + 2, "\(lines.count) entries")
            #expect(lines.last?.contains("\"call\":\"run.end\"") == true)
        }
    }
}
