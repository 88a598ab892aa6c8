// Fuzzes a grants file end to end as `peon-wasm run --grants` reads one: TOML parsing (TOMLKit), the grants
// parser's checks, compiling to policy lines, building the policy snapshot (every compiled pattern goes through the
// matcher functions) and deciding a request for each compiled rule.
import PeonMediator
import PeonPolicy
import FuzzReplay

/// libFuzzer's entry point: one grants file per call. Any input must end in a value or a thrown error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGrants(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let grants: Grants
    do {
        grants = try GrantsParser.parse(text, file: "fuzz.toml", baseDirectory: "/srv/fuzz")
    } catch {
        _ = error.description
        return 0
    }
    let compiled = CompiledGrants(grants)
    _ = compiled.policyText
    let snapshot: PolicySnapshot
    do {
        snapshot = try PolicySnapshot.build(grants: grants)
    } catch {
        _ = error.description
        return 0
    }
    // Decide each compiled rule's own object and action (first few only, to keep one run fast), and a near miss.
    for rule in compiled.rules.prefix(8) where rule.count == 4 {
        for object in [rule[1], rule[1] + "/x", String(rule[1].dropLast())] {
            let request = PolicyRequest(subject: snapshot.subject, object: object, action: rule[2], arguments: "1:x")
            _ = snapshot.decide(request)
        }
        _ = compiled.conditions(for: rule)
    }
    return 0
}

#if !PEON_LIBFUZZER
/// Without libFuzzer (the package's ordinary build): runs the files or folders named on the command line through
/// ``fuzzGrants(_:_:)`` once each.
@main enum Replay {
    static func main() {
        replayInputs(through: fuzzGrants)
    }
}
#endif
