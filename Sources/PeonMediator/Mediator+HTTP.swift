import PeonAudit
package import PeonInterface
import Foundation
import Synchronization

// `http`: decided on `http:` + the guest's URL parsed once into a ``CanonicalURL`` and `http.` + the
// method. The capability sends that value's target byte for byte, so the URL decided on, the URL in
// the log and the request line the server receives are one and the same.
extension Mediator {
    /// `http.send`.
    package func send(_ request: HTTPRequestValue) throws(HostError) -> HTTPResponseValue {
        let url = try parse("http.send", kind: "http") { () throws(HostError) in try CanonicalURL(parsing: request.url) }
        let method = request.method.uppercased()
        guard !method.isEmpty, method.utf8.count <= 32,
              method.utf8.allSatisfy({ (0x41...0x5A).contains($0) || $0 == UInt8(ascii: "-") })
        else {
            callCount.add(1, ordering: .relaxed)
            throw try refuseEarly("http.send", resource: Resource.url(url).description,
                                  HostError(.invalidArgument, "'\(sanitize(request.method))' is not an HTTP method"))
        }
        try begin("http.send", .url(url))
        var details = payloadDetails(request.body, prefix: "payload")
        details["method"] = method
        details["guest_headers"] = request.headers.map(\.name).joined(separator: ",")
        // The values too, by digest and length as the body is: up to 64 KiB of header values went out with only their
        // names on record.
        if !request.headers.isEmpty {
            var block: [UInt8] = []
            for header in request.headers {
                block += header.name.utf8
                block += ": ".utf8
                block += header.value.utf8
                block += [0x0D, 0x0A]
            }
            details.merge(payloadDetails(block, prefix: "guest_headers")) { $1 }
        }
        let sideEffect = method != "GET" && method != "HEAD"
        var call = CallRequest(call: "http.send", resource: .url(url), action: "http." + method,
                               sideEffect: sideEffect, details: details)
        call.outgoing = [("url", Array(url.description.utf8))]
            + request.headers.map { ("header \(sanitize($0.name))", Array(($0.name + ": " + $0.value).utf8)) }
            + [("body", request.body)]
        return try mediate(call) { (ticket) throws(HostError) in
            var injected: [HTTPHeader] = []
            var allowed: Set<String> = []
            var maxResponse = configuration.caps.maxResponseBytes
            var timeout = configuration.caps.httpTimeout
            let decidedURL = url.description
            for grant in ticket.httpGrants {
                for header in grant.headers {
                    switch header.value {
                    case .literal(let value): injected.append(HTTPHeader(name: header.name, value: value))
                    case .environment(let name):
                        guard let value = configuration.environment[name] else {
                            throw HostError(.io, "the host has no value for a header this grant injects; ask the operator")
                        }
                        injected.append(HTTPHeader(name: header.name, value: value))
                    }
                }
                // Only a pattern that matches this URL exempts the address it names: a grant with
                // `http://*/**` and `http://127.0.0.1:8080/status` opens that one loopback port and path,
                // not every port of 127.0.0.1 through `*`.
                for pattern in grant.urls where globMatches(decidedURL, pattern: pattern) {
                    if let host = literalAddress(pattern) { allowed.insert(host) }
                }
                if let cap = grant.maxResponse { maxResponse = min(maxResponse, cap.bytes) }
                if let cap = grant.timeout { timeout = min(timeout, cap) }
            }
            let injectedNames = Set(injected.map { $0.name.lowercased() })
            let redactor = SecretRedactor(secrets: injected.map(\.value))
            let outgoing = OutgoingRequest(
                method: method, url: url,
                headers: try redactor.requestHeaders(
                    request.headers.filter { !injectedNames.contains($0.name.lowercased()) }, injectedNames: injectedNames),
                body: request.body)
            let deadline = min(configuration.deadline, ContinuousClock.now.advanced(by: timeout))
            var response = try http.send(outgoing, injectedHeaders: injected, allowedAddresses: allowed,
                                         maxResponseBytes: maxResponse, deadline: deadline)
            // A server may echo a secret back (a cookie, a header, a body that reflects the request):
            // every occurrence of every injected value is cut out before anything reaches the guest, and a
            // response whose bytes are not the whole, plain representation is not given to the guest at all.
            try redactor.requireCheckable(response)
            let redactions = redactor.redact(&response)
            var outcome = payloadDetails(response.body, prefix: "result")
            outcome["status"] = String(response.status)
            if redactions > 0 { outcome["redacted"] = String(redactions) }
            return (response, outcome)
        }
    }
}

/// Cuts every occurrence of the host's injected secrets out of a response: header names and values and
/// the body, each occurrence replaced by `[redacted]`.
struct SecretRedactor {
    /// What replaces a secret.
    static let marker = Array("[redacted]".utf8)
    private let secrets: [[UInt8]]

    /// A redactor for the non-empty values in `secrets` (longest first, so a secret that contains another
    /// is cut whole).
    init(secrets: [String]) {
        self.secrets = Set(secrets.map { Array($0.utf8) }.filter { !$0.isEmpty }).sorted { $0.count > $1.count }
    }

    /// Whether there is a secret to keep from the guest.
    var isActive: Bool { !secrets.isEmpty }

    /// The guest's headers for a request that carries secrets, so that the response can be checked for them.
    ///
    /// Redaction finds a secret only verbatim. A guest that could ask the server for a transformed or partial
    /// representation (`Accept-Encoding: gzip`, `Range: bytes=5-9`) would get an echoed secret compressed or
    /// in pieces, which no search finds. So when the grant injects a secret, the host asks for the identity
    /// encoding itself (a guest's `Accept-Encoding` is replaced) and a guest's `Range` or `If-Range` is
    /// refused (`invalid-argument`). Without secrets the guest's headers pass as they are.
    func requestHeaders(_ guest: [HTTPHeader], injectedNames: Set<String>) throws(HostError) -> [HTTPHeader] {
        guard isActive else { return guest }
        var headers: [HTTPHeader] = []
        headers.reserveCapacity(guest.count + 1)
        for header in guest {
            switch header.name.lowercased() {
            case "range", "if-range":
                throw HostError(.invalidArgument,
                                "http: '\(sanitize(header.name))' is refused: this grant injects a secret, and only a whole response can be checked for it")
            case "accept-encoding":
                continue
            default:
                headers.append(header)
            }
        }
        if !injectedNames.contains("accept-encoding") {
            headers.append(HTTPHeader(name: "Accept-Encoding", value: "identity"))
        }
        return headers
    }

    /// Refuses (`io`) a response to a request that carried secrets when its body is not the whole
    /// representation in the identity encoding: a `Content-Encoding` other than `identity`, a `206 Partial
    /// Content` or a `Content-Range`. Redaction could not see a secret in it. The message never quotes the
    /// response: a header value could be the secret itself.
    func requireCheckable(_ response: HTTPResponseValue) throws(HostError) {
        guard isActive else { return }
        if response.status == 206 {
            throw HostError(.io, "http: the server sent a partial response (206) to a request carrying an injected secret; it is withheld, since only a whole response can be checked for the secret")
        }
        for header in response.headers {
            switch header.name.lowercased() {
            case "content-encoding":
                let codings = header.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                if codings.contains(where: { !$0.isEmpty && $0 != "identity" }) {
                    throw HostError(.io, "http: the server sent an encoded response (a Content-Encoding other than identity) to a request carrying an injected secret; it is withheld, since it cannot be checked for the secret")
                }
            case "content-range":
                throw HostError(.io, "http: the server sent part of a response (Content-Range) to a request carrying an injected secret; it is withheld, since only a whole response can be checked for the secret")
            default:
                continue
            }
        }
    }

    /// Redacts `response` in place and returns how many occurrences were cut.
    func redact(_ response: inout HTTPResponseValue) -> Int {
        guard !secrets.isEmpty else { return 0 }
        var count = 0
        for index in response.headers.indices {
            let (name, inName) = redact(Array(response.headers[index].name.utf8))
            let (value, inValue) = redact(Array(response.headers[index].value.utf8))
            if inName + inValue > 0 {
                response.headers[index] = HTTPHeader(name: String(decoding: name, as: UTF8.self),
                                                      value: String(decoding: value, as: UTF8.self))
                count += inName + inValue
            }
        }
        let (body, inBody) = redact(response.body)
        if inBody > 0 { response.body = body }
        return count + inBody
    }

    /// `bytes` with every occurrence of every secret replaced, and how many there were.
    func redact(_ bytes: [UInt8]) -> ([UInt8], Int) {
        var current = bytes
        var total = 0
        for secret in secrets {
            guard current.count >= secret.count else { continue }
            var output: [UInt8] = []
            var index = 0
            var found = 0
            let first = secret[0]
            while index < current.count {
                if current[index] == first, current.count - index >= secret.count,
                   current[index..<(index + secret.count)].elementsEqual(secret) {
                    output.append(contentsOf: Self.marker)
                    index += secret.count
                    found += 1
                } else {
                    output.append(current[index])
                    index += 1
                }
            }
            if found > 0 {
                current = output
                total += found
            }
        }
        return (current, total)
    }
}

/// The host of a URL pattern when it is an IP literal (`http://127.0.0.1:8080/**` → `127.0.0.1`).
func literalAddress(_ pattern: String) -> String? {
    // Byte by byte: patterns are ASCII (normalized by `CanonicalURL`), and this runs on every request.
    let bytes = Array(pattern.utf8)
    var start = 0
    while start + 2 < bytes.count,
          !(bytes[start] == UInt8(ascii: ":") && bytes[start + 1] == UInt8(ascii: "/") && bytes[start + 2] == UInt8(ascii: "/")) {
        start += 1
    }
    guard start + 2 < bytes.count else { return nil }
    start += 3
    var end = start
    while end < bytes.count, bytes[end] != UInt8(ascii: "/"), bytes[end] != UInt8(ascii: "?") { end += 1 }
    var host = String(decoding: bytes[start..<end], as: UTF8.self)
    if host.hasPrefix("[") {
        guard let close = host.firstIndex(of: "]") else { return nil }
        return IPAddress(String(host[host.index(after: host.startIndex)..<close]))?.description
    }
    if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
    let parts = host.split(separator: ".")
    return parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) ? host : nil
}
