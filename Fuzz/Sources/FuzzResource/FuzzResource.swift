// Fuzzes the one place a guest's resource text becomes a typed value (PeonInterface): URLs, paths and
// program paths. Properties checked on every input, not only "does not crash":
// - a URL that parses has a canonical form that parses to the same value (idempotent), whose target
//   starts with `/`, holds no dot segment and only printable ASCII, and whose text is at most the
//   input's length plus a port-free scheme change;
// - a grant pattern normalized by the same rules is stable under normalizing again;
// - a path that parses is absolute, has no `.`/`..`/empty names, parses to itself again, and stays
//   within PATH_MAX; a program path that parses is exactly its input.
import PeonInterface
import FuzzReplay

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResource(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    checkURL(text)
    checkURL("http://h/" + text)
    checkPath(text)
    if let program = try? ProgramPath(parsing: text), program.description != text { fatalError("program path changed: \(text)") }
    return 0
}

func checkURL(_ text: String) {
    if let url = try? CanonicalURL(parsing: text) {
        guard let again = try? CanonicalURL(parsing: url.description), again == url else {
            fatalError("canonical URL does not parse to itself: \(text) -> \(url)")
        }
        let segments = url.target.split(separator: "?", maxSplits: 1).first?.split(separator: "/", omittingEmptySubsequences: false) ?? []
        if !url.target.hasPrefix("/") || segments.contains(where: { $0 == "." || $0 == ".." })
            || url.description.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            fatalError("canonical URL is not canonical: \(text) -> \(url)")
        }
    }
    if let pattern = try? CanonicalURL.normalizedPattern(text), (try? CanonicalURL.normalizedPattern(pattern)) != pattern {
        fatalError("URL pattern normalization is not stable: \(text) -> \(pattern)")
    }
}

func checkPath(_ text: String) {
    guard let path = try? GuestPath(parsing: text, relativeTo: GuestPath.root) else { return }
    let names = path.description.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    if !path.description.hasPrefix("/") || path.description.utf8.count > GuestPath.maxBytes
        || (path.description != "/" && names.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })) {
        fatalError("path is not normal: \(text) -> \(path)")
    }
    guard let again = try? GuestPath(parsing: path.description, relativeTo: nil), again == path else {
        fatalError("path does not parse to itself: \(text) -> \(path)")
    }
}

#if !PEON_LIBFUZZER
/// Without libFuzzer (the package's ordinary build): runs the files or folders named on the command line through
/// ``fuzzResource(_:_:)`` once each.
@main enum Replay {
    static func main() {
        replayInputs(through: fuzzResource)
    }
}
#endif
