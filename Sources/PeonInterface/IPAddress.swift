// Which IP addresses an outgoing request may reach without a grant naming them exactly.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An IPv4 or IPv6 address, parsed strictly (`inet_pton`: dotted-quad decimal only for IPv4).
package struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    package let bytes: [UInt8]

    /// Parses `text` (IPv6 without brackets or zone). `nil` when it is not exactly one address.
    package init?(_ text: String) {
        if text.utf8.contains(0) { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    /// Wraps 4 (IPv4) or 16 (IPv6) bytes in network order, as `getaddrinfo` returns them.
    package init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Whether this is an IPv6 address.
    package var isIPv6: Bool { bytes.count == 16 }

    /// The canonical text (`inet_ntop`): `127.0.0.1`, `::1`, `::ffff:127.0.0.1`. Grants name addresses
    /// in this form.
    package var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = isIPv6 ? AF_INET6 : AF_INET
        let ok = bytes.withUnsafeBytes { raw in
            buffer.withUnsafeMutableBufferPointer { out in
                inet_ntop(family, raw.baseAddress, out.baseAddress, socklen_t(out.count)) != nil
            }
        }
        guard ok else { return "<address>" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Why this address is not on the public internet (`"loopback"`, `"private"`, ...), or `nil` if it is.
    ///
    /// Refused ranges: IPv4 `0.0.0.0/8` (this network, includes `0.0.0.0`), `10/8`, `100.64/10` (CGNAT),
    /// `127/8`, `169.254/16` (link-local, cloud metadata `169.254.169.254`), `172.16/12`,
    /// `192.0.0/24`, `192.0.2/24`, `192.88.99/24`, `192.168/16`, `198.18/15`, `198.51.100/24`,
    /// `203.0.113/24`, `224/4` (multicast), `240/4` (reserved, broadcast). IPv6 `::` and `::1`,
    /// `::ffff:0:0/96` (IPv4-mapped: judged by the embedded IPv4), `::/96` (deprecated IPv4-compatible),
    /// `::ffff:0:0:0/96` (IPv4-translated, SIIT: all of it),
    /// `64:ff9b::/96` and `64:ff9b:1::/48` (NAT64: embedded IPv4), `100::/64`, `2001::/23` (incl.
    /// Teredo), `2001:db8::/32`, `2002::/16` (6to4, all of it), `fc00::/7` (unique local, incl.
    /// `fd00::/8` and `fd00:ec2::254`), `fe80::/10`, `fec0::/10`, `ff00::/8`.
    package var nonPublicReason: String? {
        if bytes.count == 4 { return Self.ipv4Reason(bytes) }
        guard bytes.count == 16 else { return "malformed" }
        let b = bytes
        let firstTwelveZero = b[0..<12].allSatisfy { $0 == 0 }
        if firstTwelveZero && b[12..<15].allSatisfy({ $0 == 0 }) && (b[15] == 0 || b[15] == 1) {
            return b[15] == 0 ? "unspecified" : "loopback"
        }
        // IPv4-mapped ::ffff:a.b.c.d reaches the embedded IPv4 address: judge that one.
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
            return Self.ipv4Reason(Array(b[12..<16])).map { "IPv4-mapped \($0)" }
        }
        // The deprecated IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5.1): never a legitimate destination.
        if firstTwelveZero { return "IPv4-compatible (deprecated)" }
        // IPv4-translated ::ffff:0:a.b.c.d (SIIT, RFC 2765): a stateless translator on the way reaches the embedded
        // IPv4 address with it; no public host has one. Refused whatever it embeds.
        if b[0..<8].allSatisfy({ $0 == 0 }) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0 {
            return "IPv4-translated (SIIT)"
        }
        // NAT64 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b {
            if b[4..<12].allSatisfy({ $0 == 0 }) {
                return Self.ipv4Reason(Array(b[12..<16])).map { "NAT64 \($0)" }
            }
            if b[4] == 0 && b[5] == 1 { return "NAT64 local-use" }
        }
        if b[0] == 0x01 && b[1] == 0x00 && b[2..<8].allSatisfy({ $0 == 0 }) { return "discard-only" }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02 { return "IETF special-purpose (incl. Teredo)" }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 { return "documentation" }
        if b[0] == 0x20 && b[1] == 0x02 {
            // 6to4 embeds an IPv4 address in bytes 2...5 and reaches it through relays: refuse all of it.
            return Self.ipv4Reason(Array(b[2..<6])).map { "6to4 \($0)" } ?? "6to4 (tunnelled)"
        }
        if b[0] & 0xfe == 0xfc { return "unique local (fc00::/7)" }
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return "link-local" }
        if b[0] == 0xfe && b[1] & 0xc0 == 0xc0 { return "site-local" }
        if b[0] == 0xff { return "multicast" }
        return nil
    }

    private static func ipv4Reason(_ b: [UInt8]) -> String? {
        switch (b[0], b[1], b[2]) {
        case (0, _, _): return b.allSatisfy { $0 == 0 } ? "unspecified" : "this-network"
        case (10, _, _): return "private"
        case (100, 64...127, _): return "shared address space (CGNAT)"
        case (127, _, _): return "loopback"
        case (169, 254, _): return "link-local (cloud metadata)"
        case (172, 16...31, _): return "private"
        case (192, 0, 0): return "IETF protocol assignments"
        case (192, 0, 2), (198, 51, 100), (203, 0, 113): return "documentation"
        case (192, 88, 99): return "6to4 relay anycast"
        case (192, 168, _): return "private"
        case (198, 18...19, _): return "benchmarking"
        case (224...239, _, _): return "multicast"
        case (240...255, _, _): return "reserved"
        default: return nil
        }
    }
}
