/// Text from a guest (or anything else a user does not control) made safe to show on a terminal or
/// in a one-line message.
///
/// Escaped as `\u{HEX}`: C0 controls (line breaks, `ESC`, `BEL`, backspace, carriage return), `DEL`,
/// C1 controls (U+0080–U+009F, which some terminals read as `CSI`), the bidirectional overrides,
/// isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) that can make a line read
/// differently from its bytes, and the line and paragraph separators (U+2028, U+2029) that some terminals
/// and log viewers break lines at. And every other character that shows as nothing: the format characters
/// (Unicode category Cf: zero-width space and joiners, the word joiner, the byte order mark, the soft hyphen,
/// the tag characters U+E0000–U+E007F), every other default-ignorable character (variation selectors, the
/// combining grapheme joiner, Hangul fillers, the braille blank), and unassigned and private-use code points, so that
/// `fs:/etc/pass\u{200b}wd` never looks like `fs:/etc/passwd`; where names are read (`audit show`), every space other
/// than U+0020 too, so that `a\u{a0}b` never looks like `a b`.
/// So a guest can neither forge a `peon-wasm:` line, erase or rewrite what a prompt shows, hide a character
/// in a path, nor colour the screen. Everything else, including other non-ASCII text, passes unchanged.
package enum TerminalText {
    /// Written before the host's own words reach a terminal a guest may have written to (the `peon-wasm: error:`
    /// line, an approval prompt): CAN ends any escape sequence the guest left open (`ESC [`, an OSC string), SI and
    /// `ESC ( B` undo a switch to the line-drawing character set, and `ESC [0m` undoes hidden, blinking or
    /// same-colour text. A guest's output cannot then swallow, garble or hide what follows.
    package static let resetBeforeHostText = "\u{18}\u{0F}\u{1B}(B\u{1B}[0m"

    /// `text` with every character listed above escaped; `text` itself when it has none. With `spaces`, every space
    /// but U+0020 too (no-break, narrow no-break, ideographic, en, em, thin): each prints as a plain space, so in a
    /// resource `fs:/srv/a\u{a0}b` would look like `fs:/srv/a b`. Only where a name is read (`audit show`): French
    /// and CJK text use such spaces, and an agent's answer keeps them.
    package static func escaped(_ text: String, spaces: Bool = false) -> String {
        // Printable ASCII (most resources and messages) needs no look at scalars.
        if isPrintableASCII(text) { return text }
        if text.unicodeScalars.allSatisfy({ !needsEscape($0, spaces: spaces) }) { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if needsEscape(scalar, spaces: spaces) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether every byte of `text` is printable ASCII (0x20–0x7E), read from its contiguous UTF-8 where it has
    /// one (a native string always does), byte by byte otherwise.
    private static func isPrintableASCII(_ text: String) -> Bool {
        if let answer = text.utf8.withContiguousStorageIfAvailable({ bytes in
            var printable = true
            for byte in bytes { printable = printable && byte >= 0x20 && byte < 0x7F }
            return printable
        }) {
            return answer
        }
        return text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// Whether `scalar` is escaped by ``escaped(_:)``.
    package static func needsEscape(_ scalar: Unicode.Scalar, spaces: Bool = false) -> Bool {
        let value = scalar.value
        if value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) { return true }
        if value == 0xA0 { return spaces }
        if value < 0xAD { return false }
        if value == 0x2028 || value == 0x2029 { return true }
        // Invisible: variation selectors, Hangul fillers.
        if (0xFE00...0xFE0F).contains(value) || (0xE0100...0xE01EF).contains(value)
            || value == 0x115F || value == 0x1160 || value == 0x3164 || value == 0xFFA0 || value == 0x2800 {
            return true
        }
        // Format characters (the bidirectional controls, zero-width characters, the byte order mark, tags), every
        // other character Unicode says to draw as nothing (the combining grapheme joiner, Khmer and Mongolian vowel
        // inherents and selectors), and unassigned ones, which a terminal may draw as nothing too.
        let properties = scalar.properties
        // With `spaces`, every space but U+0020 (see ``escaped(_:spaces:)``).
        return properties.generalCategory == .format || properties.isDefaultIgnorableCodePoint
            || (spaces && properties.generalCategory == .spaceSeparator)
            || properties.generalCategory == .unassigned || properties.generalCategory == .privateUse
    }
}
