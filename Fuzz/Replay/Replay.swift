// The fuzz targets outside libFuzzer. Fuzz/run.sh builds them with `-sanitize=fuzzer` and `-DPEON_LIBFUZZER`, and
// libFuzzer supplies `main`; the package's ordinary build has no libFuzzer, so each target's `main` replays inputs
// through this instead: the debug build keeps every target compiling, and a finding reproduces without sanitizers.
import Foundation

/// Runs every file named on the command line (every file inside a named folder, in name order) through
/// `testOneInput`, the target's `LLVMFuzzerTestOneInput`, once each, prints how many ran and exits: 0 when every
/// input ran, 2 when an argument could not be read.
///
/// A trap inside `testOneInput` is the finding reproduced and ends the process, as it does under libFuzzer.
package func replayInputs(through testOneInput: (UnsafeRawPointer?, Int) -> CInt) -> Never {
    exit(replay(Array(CommandLine.arguments.dropFirst()), through: testOneInput))
}

/// The work of ``replayInputs(through:)``; returns the exit status.
private func replay(_ arguments: [String], through testOneInput: (UnsafeRawPointer?, Int) -> CInt) -> Int32 {
    var files: [String] = []
    for argument in arguments {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder) else {
            FileHandle.standardError.write(Data("replay: error: \(argument): no such file or folder\n".utf8))
            return 2
        }
        if isFolder.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
            files += names.sorted().map { argument + "/" + $0 }
        } else {
            files.append(argument)
        }
    }
    if files.isEmpty {
        FileHandle.standardError.write(Data("usage: \(CommandLine.arguments.first ?? "Fuzz") INPUT-FILE-OR-FOLDER...\n".utf8))
        return 2
    }
    for file in files {
        guard let input = FileManager.default.contents(atPath: file) else {
            FileHandle.standardError.write(Data("replay: error: \(file): cannot read it\n".utf8))
            return 2
        }
        _ = input.withUnsafeBytes { testOneInput($0.baseAddress, $0.count) }
    }
    print("replayed \(files.count) input\(files.count == 1 ? "" : "s")")
    return 0
}
