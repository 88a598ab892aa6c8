import PeonInterface
import PeonPolicy

// Egress content checks. A grant decides *where* data may go; it cannot see *what* goes. Grants may list
// patterns (`[egress]`: built-in detectors such as `private-key`, or their own) that no outgoing data may
// contain: an HTTP request's URL, headers and body, a written or appended file, an exec argument or its
// stdin, a database statement and its parameters. The values of `env:` headers the host injects are
// refused too, always: a secret the host adds on the way out must never leave by another door. A match is
// a denial decided before the write-ahead entry; the audit records the pattern's name and the part
// (`body`, `argument 2`), never the match.

extension Mediator {
    /// The first egress pattern found in the data `request` sends out, or `nil`.
    func egressFinding(_ request: CallRequest, snapshot: PolicySnapshot) -> (pattern: String, part: String)? {
        guard !request.outgoing.isEmpty, let grants = snapshot.compiled?.grants else { return nil }
        var patterns = grants.egress
        for grant in grants.http {
            for header in grant.headers {
                // Only values the host holds are secrets; a literal in the grants file is not. Short values
                // would match ordinary data, so they are not patterns.
                guard case .environment(let name) = header.value, let value = configuration.environment[name],
                      value.utf8.count >= 8 else { continue }
                patterns.append(ContentPattern(name: "injected-secret", literal: Array(value.utf8)))
            }
        }
        guard !patterns.isEmpty else { return nil }
        for (part, bytes) in request.outgoing {
            for pattern in patterns where pattern.occurs(in: bytes) {
                return (pattern.name, part)
            }
        }
        return nil
    }
}

extension DatabaseValue {
    /// The bytes of a text or blob parameter (what could carry data out); `nil` for numbers and null.
    var egressBytes: [UInt8]? {
        switch self {
        case .text(let text): Array(text.utf8)
        case .blob(let bytes): bytes
        default: nil
        }
    }
}
