// swift-redactor: a data redactor in Embedded Swift, using the Swift guest SDK (modules/sdk/swift).
//
// Input: "SOURCE_DIR DEST_DIR". It lists SOURCE_DIR (fs.read-dir), reads every file in it
// (fs.read), replaces e-mail addresses, runs of 9 or more digits (phone and card numbers), IPv4 addresses
// and API keys with placeholders, and writes each redacted copy to DEST_DIR under the same name
// (fs.write). The answer lists how many items of each kind it redacted per file.
// Capabilities used: fs list, fs read, fs write, log.
import CPeon

@_cdecl("peon_run")
func peonRun(_ input: UnsafePointer<CChar>, _ length: Int, _ out: UnsafeMutablePointer<peon_buf>) -> Bool {
    Peon.serve(input, length, out) { input throws(PeonError) in try redactFolder(input) }
}

struct Counts {
    var emails = 0, numbers = 0, addresses = 0, secrets = 0
    var total: Int { emails + numbers + addresses + secrets }
}

func redactFolder(_ input: String) throws(PeonError) -> String {
    let words = input.split(separator: " ")
    guard words.count == 2 else { throw PeonError(code: .invalidArgument, message: "usage: SOURCE_DIR DEST_DIR") }
    let source = String(words[0]), destination = String(words[1])
    var report = "redacted copies of " + source + " in " + destination + "\n"
    var files = 0
    for name in try Peon.FS.readDir(source) {
        if name.hasPrefix(".") { continue }
        var counts = Counts()
        let redacted = redact(try Peon.FS.read(source + "/" + name), &counts)
        try Peon.FS.write(destination + "/" + name, redacted)
        files += 1
        report += "\(name): \(counts.emails) e-mail, \(counts.numbers) number, \(counts.addresses) address, \(counts.secrets) secret\n"
    }
    Peon.log(.info, "redacted \(files) files")
    return report + "\(files) files\n"
}

/// Splits `text` at spaces and newlines; each token (less trailing punctuation) that looks
/// sensitive is replaced by a placeholder.
func redact(_ text: [UInt8], _ counts: inout Counts) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
        if isSeparator(text[i]) {
            out.append(text[i])
            i += 1
            continue
        }
        var end = i
        while end < text.count && !isSeparator(text[end]) { end += 1 }
        var core = end
        while core > i && isTrailing(text[core - 1]) { core -= 1 }
        let token = Array(text[i..<core])
        if let placeholder = classify(token, &counts) {
            out.append(contentsOf: Array(placeholder.utf8))
        } else {
            out.append(contentsOf: token)
        }
        out.append(contentsOf: text[core..<end])
        i = end
    }
    return mergeNumbers(out, &counts)
}

func isSeparator(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
func isTrailing(_ c: UInt8) -> Bool { c == 0x2E || c == 0x2C || c == 0x3B || c == 0x3A || c == 0x29 || c == 0x3E || c == 0x22 }
func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) }

func hasPrefix(_ token: [UInt8], _ prefix: String) -> Bool {
    let p = Array(prefix.utf8)
    return token.count >= p.count && Array(token[0..<p.count]) == p
}

/// The placeholder for a sensitive token (keeping its leading `<`, `(` or `"`), or nil.
func classify(_ raw: [UInt8], _ counts: inout Counts) -> String? {
    var token = raw
    while let first = token.first, first == 0x3C || first == 0x28 || first == 0x22 { token.removeFirst() } // < ( "
    let lead = String(decoding: raw[0..<(raw.count - token.count)], as: UTF8.self)
    guard let placeholder = placeholder(token, &counts) else { return nil }
    return lead + placeholder
}

func placeholder(_ token: [UInt8], _ counts: inout Counts) -> String? {
    if let at = token.firstIndex(of: 0x40), at > 0, token[(at + 1)...].contains(0x2E) { // user@host.tld
        counts.emails += 1
        return "[email]"
    }
    if (hasPrefix(token, "sk-") || hasPrefix(token, "AKIA") || hasPrefix(token, "ghp_")) && token.count >= 16 {
        counts.secrets += 1
        return "[secret]"
    }
    let parts = token.split(separator: 0x2E, omittingEmptySubsequences: false)
    if parts.count == 4 && parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(isDigit) }) {
        counts.addresses += 1
        return "[ip]"
    }
    return nil
}

/// Replaces runs of 9 or more digits (so dates stay), possibly broken by spaces, dashes, parentheses or a
/// leading +, with "[number]" (phone and card numbers span several tokens).
func mergeNumbers(_ text: [UInt8], _ counts: inout Counts) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < text.count {
        guard isDigit(text[i]) || text[i] == 0x2B || text[i] == 0x28 else {
            out.append(text[i])
            i += 1
            continue
        }
        // A number may not start inside a word.
        if let last = out.last, isAlnum(last) {
            out.append(text[i])
            i += 1
            continue
        }
        var end = i, digits = 0, lastDigit = i
        while end < text.count {
            let c = text[end]
            if isDigit(c) { digits += 1; lastDigit = end } else if !(c == 0x20 || c == 0x2D || c == 0x28 || c == 0x29 || c == 0x2B) { break }
            end += 1
        }
        let followedByWord = lastDigit + 1 < text.count && isAlnum(text[lastDigit + 1])
        if digits >= 9 && !followedByWord {
            counts.numbers += 1
            out.append(contentsOf: Array("[number]".utf8))
            i = lastDigit + 1
        } else {
            out.append(text[i])
            i += 1
        }
    }
    return out
}
