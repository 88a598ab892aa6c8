// Fuzzes what `peon-wasm audit verify` reads from a log an attacker may have edited: each line through the entry
// parser (with a round trip: an entry that parses must serialize to a line that parses to the same entry), the
// whole input as a log file through the verifier (line reader, chain and Merkle checks), and the input as a
// checkpoint note and as a verifier key.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PeonAudit
import FuzzReplay

/// Where the input is written for the verifier: in memory when /dev/shm exists, one file per fuzzing process.
let logPath: String = {
    let folder = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    return "\(folder)/peon-fuzz-audit-\(getpid()).log"
}()

/// A checkpoint of the empty log (size 0, root SHA-256 of nothing), unsigned as far as the verifier can tell
/// without a key: every log is checked against it at size 0, then read to its end.
let emptyCheckpoint = "fuzz\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u{2014} fuzz AAAAAAAAAAAAAAAA\n"

/// Whether the checkpoint file has been written in this process.
nonisolated(unsafe) var wroteCheckpoint = false

/// Replaces the file at `path` with `bytes`; false if the file system refused.
func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        guard let base = bytes.baseAddress else { return false }
        let written = write(fd, base + offset, bytes.count - offset)
        guard written > 0 else { return false }
        offset += written
    }
    return true
}

/// libFuzzer's entry point: one log (or note, or key) per call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAudit(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    let bytes = Array(buffer)

    // 1. Every line through the entry parser, and the serializer round trip.
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        guard case .success(let entry) = AuditEntry.parse(Array(line)) else { continue }
        let again = entry.serialized()
        switch AuditEntry.parse(again) {
        case .success(let reparsed):
            precondition(reparsed == entry, "an entry's serialized line parses to a different entry")
            precondition(reparsed.serialized() == again, "serializing an entry twice gives two different lines")
        case .failure(let error):
            preconditionFailure("an entry's serialized line does not parse: \(error.reason)")
        }
    }

    // 2. The whole input as a log file, verified against the empty checkpoint.
    if !wroteCheckpoint {
        wroteCheckpoint = emptyCheckpoint.utf8CString.withUnsafeBytes {
            writeFile(logPath + ".checkpoint", UnsafeRawBufferPointer(rebasing: $0.dropLast()))
        }
    }
    if wroteCheckpoint, writeFile(logPath, buffer) {
        do {
            let summary = try AuditVerifier.verify(logPath: logPath, verifierKey: nil)
            precondition(summary.size > 0 && summary.checkpoint.size == 0, "verify accepted an impossible log")
        } catch {
            _ = error.description
        }
    }

    // 3. The input as a signed checkpoint note and as a verifier key.
    let text = String(decoding: bytes, as: UTF8.self)
    if let note = try? SignedNote.parse(text) {
        _ = try? Checkpoint.parse(note.text)
    }
    _ = try? Checkpoint.parse(text)
    _ = try? VerifierKey(text)
    return 0
}

#if !PEON_LIBFUZZER
/// Without libFuzzer (the package's ordinary build): runs the files or folders named on the command line through
/// ``fuzzAudit(_:_:)`` once each.
@main enum Replay {
    static func main() {
        replayInputs(through: fuzzAudit)
    }
}
#endif
