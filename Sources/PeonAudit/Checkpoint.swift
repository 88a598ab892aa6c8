import Crypto
import Foundation
import PeonSystem

/// A tree head in the C2SP `tlog-checkpoint` format: the text a signed note signs.
///
/// ```text
/// peon-wasm/build-host        <- origin: names the log (we default it to the signing key's name)
/// 1042                        <- tree size, decimal
/// 3q2+7w...=                  <- root hash, standard base64 of the 32-byte RFC 6962 root
/// ```
/// Optional extension lines may follow; each line ends with a newline.
public struct Checkpoint: Sendable, Equatable {
    /// The log's identity.
    public var origin: String
    /// The number of entries the tree covers.
    public var size: UInt64
    /// The RFC 6962 root hash of the first `size` entries.
    public var rootHash: [UInt8]
    /// Extension lines, kept verbatim.
    public var extensions: [String]

    /// Creates a checkpoint.
    public init(origin: String, size: UInt64, rootHash: [UInt8], extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The note text: origin, size and base64 root, then extensions, each ending with a newline.
    public var text: String {
        ([origin, String(size), Data(rootHash).base64EncodedString()] + extensions).map { $0 + "\n" }.joined()
    }

    /// Parses checkpoint text (the body of a signed note).
    public static func parse(_ text: String) throws(AuditError) -> Checkpoint {
        guard text.hasSuffix("\n") else { throw malformed("the checkpoint text does not end with a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3 else { throw malformed("a checkpoint needs an origin, a size and a root hash line") }
        guard !lines[0].isEmpty else { throw malformed("line 1: the origin is empty") }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else {
            throw malformed("line 2: the tree size \"\(lines[1].prefix(40))\" is not a decimal number without leading zeros")
        }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32 else {
            throw malformed("line 3: the root hash is not base64 of 32 bytes")
        }
        let extensions = Array(lines.dropFirst(3))
        if let empty = extensions.firstIndex(where: \.isEmpty) {
            throw malformed("line \(empty + 4): an extension line is empty")
        }
        return Checkpoint(origin: lines[0], size: size, rootHash: Array(root), extensions: extensions)
    }

    static func malformed(_ what: String) -> AuditError {
        AuditError(.checkpointMalformed, "malformed checkpoint: \(what)")
    }
}

/// An Ed25519 key that signs checkpoints as C2SP signed notes.
///
/// The key file holds one line in the Go `golang.org/x/mod/sumdb/note` private-key format,
/// `PRIVATE+KEY+NAME+HEX(keyhash)+BASE64(0x01 || 32-byte seed)`, so the same file works with Go's `note.NewSigner`.
/// It is created on first use with mode 0600 in a 0700 directory, and refused if group or others can read it.
/// Default place: `$XDG_CONFIG_HOME/peon-wasm/audit.key`, else `~/.config/peon-wasm/audit.key`
/// (``defaultKeyPath()``).
public struct CheckpointSigner: Sendable {
    /// The key name: it appears in the verifier key and in every signature line.
    public let name: String
    /// The 32-byte Ed25519 seed. Kept as bytes because swift-crypto's key type is not `Sendable`.
    private let seed: [UInt8]
    /// The raw public key, derived once.
    public let publicKey: [UInt8]

    private var privateKey: Curve25519.Signing.PrivateKey? { try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) }

    /// The Ed25519 signature algorithm byte of the signed-note format.
    static let ed25519: UInt8 = 0x01

    /// Creates a signer from a 32-byte Ed25519 seed. The name must be non-empty with no spaces or `+`.
    public init(name: String, seed: [UInt8]) throws(AuditError) {
        try Self.checkName(name)
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw AuditError(.badKey, "an Ed25519 seed must be 32 bytes, got \(seed.count)")
        }
        self.seed = seed
        self.publicKey = Array(key.publicKey.rawRepresentation)
        self.name = name
    }

    /// A 32-byte key for `purpose`, derived from this signer's secret seed (HMAC-SHA256 of the purpose under the
    /// seed): lets a file beside the log carry a tag only a holder of the signing key can make (the first-use index),
    /// without giving that file the signing key itself.
    package func derivedKey(_ purpose: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("peon-wasm key for \(purpose)".utf8), using: SymmetricKey(data: seed)))
    }

    /// A new random signer.
    public static func generate(name: String) throws(AuditError) -> CheckpointSigner {
        try CheckpointSigner(name: name, seed: Array(Curve25519.Signing.PrivateKey().rawRepresentation))
    }

    /// Checks that `name` can name a key (non-empty, no whitespace, control character or `+`): the
    /// `bad key` error otherwise, which a command line reports as a usage error.
    package static func checkName(_ name: String) throws(AuditError) {
        guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0 == "+" || $0.properties.isWhitespace || $0.value < 0x20 })
        else {
            throw AuditError(.badKey, "key name \"\(name)\" must be non-empty without spaces, control characters or '+'")
        }
        // Nor more than 32 combining marks in a row: the name is in every checkpoint (and is its origin by default),
        // and a checkpoint holding such a run is malformed (``SignedNote/parse(_:)``).
        guard CombiningMarks.longestRun(in: name) <= 32 else {
            throw AuditError(.badKey, "key name holds more than 32 combining marks in a row; choose a shorter name")
        }
    }

    /// The 4-byte key hash: the first 4 bytes of SHA-256(NAME || "\n" || 0x01 || public key).
    public var keyHash: [UInt8] { Self.keyHash(name: name, publicKey: publicKey) }

    static func keyHash(name: String, publicKey: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array(name.utf8) + [0x0A, ed25519] + publicKey).prefix(4))
    }

    /// The verifier key text, `NAME+HEX(keyhash)+BASE64(0x01 || public key)`, to give to auditors.
    public var verifierKey: String {
        "\(name)+\(hex(keyHash))+\(Data([Self.ed25519] + publicKey).base64EncodedString())"
    }

    /// The private key text as stored in the key file (keep it secret).
    public var privateKeyText: String {
        "PRIVATE+KEY+\(name)+\(hex(keyHash))+\(Data([Self.ed25519] + seed).base64EncodedString())"
    }

    /// Parses the private key text of a key file.
    public init(privateKeyText text: String) throws(AuditError) {
        let parts = text.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY" else {
            throw AuditError(.badKey, "not a signing key: expected PRIVATE+KEY+NAME+HASH+KEY")
        }
        guard let data = Data(base64Encoded: String(parts[4])), data.count == 33, data.first == Self.ed25519 else {
            throw AuditError(.badKey, "the signing key data is not base64 of 0x01 and a 32-byte Ed25519 seed")
        }
        try self.init(name: String(parts[2]), seed: Array(data.dropFirst()))
        guard hex(keyHash) == parts[3].lowercased() else {
            throw AuditError(.badKey, "the signing key's hash \(parts[3]) does not match its name and key")
        }
    }

    /// The default key file: `$XDG_CONFIG_HOME/peon-wasm/audit.key`, else `$HOME/.config/peon-wasm/audit.key`;
    /// nil when neither variable is set to an absolute path.
    public static func defaultKeyPath() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/peon-wasm/audit.key" }
        if let home = env["HOME"], home.hasPrefix("/") { return home + "/.config/peon-wasm/audit.key" }
        return nil
    }

    /// The default key name, `peon-wasm/HOSTNAME` (spaces and `+` replaced by `-`).
    public static func defaultName() -> String {
        let host = ProcessInfo.processInfo.hostName
        let cleaned = String(host.unicodeScalars.map { $0 == "+" || $0.properties.isWhitespace || $0.value < 0x20 ? "-" : Character($0) })
        return "peon-wasm/" + (cleaned.isEmpty ? "localhost" : cleaned)
    }

    /// Loads the key at `keyPath`, or creates it (mode 0600, parent directories 0700) when it does not exist.
    ///
    /// `name` is used only when creating; an existing key keeps the name stored in it.
    public static func loadOrCreate(keyPath: String, name: String) throws(AuditError) -> CheckpointSigner {
        if let existing = try load(keyPath: keyPath, missingIsNil: true) { return existing }
        let signer = try generate(name: name)
        try FileIO.createDirectories(parentOf: keyPath)
        switch FileIO.createExclusive(path: keyPath, contents: Array((signer.privateKeyText + "\n").utf8), mode: 0o600) {
        case .created: return signer
        case .exists:
            // Another process created it first: use theirs.
            if let existing = try load(keyPath: keyPath, missingIsNil: false) { return existing }
            throw AuditError(.io, "\(keyPath): the signing key vanished while it was being created; try again")
        case .failed(let e): throw e
        }
    }

    /// Loads an existing key file; refuses one that group or others may read.
    public static func load(keyPath: String) throws(AuditError) -> CheckpointSigner {
        guard let signer = try load(keyPath: keyPath, missingIsNil: false) else {
            throw AuditError(.io, "\(keyPath): no signing key there; create one with `peon-wasm audit key --audit-key \(keyPath)`")
        }
        return signer
    }

    private static func load(keyPath: String, missingIsNil: Bool) throws(AuditError) -> CheckpointSigner? {
        guard let mode = FileIO.mode(path: keyPath) else {
            if missingIsNil { return nil }
            throw AuditError(.io, "\(keyPath): no signing key there")
        }
        // What it is comes first: a folder's mode is no key's, and `chmod 600 FOLDER` is no advice to give.
        var entry = stat()
        if stat(keyPath, &entry) == 0, entry.st_mode & S_IFMT != S_IFREG {
            let what = nonRegularFileKind(mode: UInt32(entry.st_mode))
            throw AuditError(.badKey, "\(keyPath): the signing key must be a regular file, and this is \(what); name the key file itself")
        }
        guard mode & 0o077 == 0 else {
            throw AuditError(.badKey, "\(keyPath): the signing key is readable by group or others (mode \(String(mode & 0o777, radix: 8))); run `chmod 600 \(keyPath)`")
        }
        // Someone else's key file, or one in a folder others may write (and so replace the key in), signs for them.
        var file = stat()
        if stat(keyPath, &file) == 0, file.st_uid != geteuid() {
            throw AuditError(.badKey, "\(keyPath): the signing key belongs to user \(file.st_uid), not to the user running peon-wasm (\(geteuid())); use a key of your own")
        }
        let folder = (keyPath as NSString).deletingLastPathComponent
        var directory = stat()
        if stat(folder.isEmpty ? "." : folder, &directory) == 0,
           directory.st_mode & 0o022 != 0, directory.st_mode & S_ISVTX == 0 {
            throw AuditError(.badKey, "\(keyPath): the folder holding the signing key may be written by group or others (mode \(String(directory.st_mode & 0o777, radix: 8))), who could replace the key; run `chmod go-w \(folder.isEmpty ? "." : folder)`")
        }
        let bytes = try FileIO.readAll(path: keyPath, limit: 4096)
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try CheckpointSigner(privateKeyText: text)
        } catch {
            throw AuditError(.badKey, "\(keyPath): \(error.message)")
        }
    }

    /// Signs a checkpoint, returning the complete signed note: the text, a blank line, and one signature line
    /// `— NAME BASE64(keyhash || signature)`.
    public func sign(_ checkpoint: Checkpoint) throws(AuditError) -> String {
        let text = checkpoint.text
        guard let key = privateKey, let signature = try? key.signature(for: Array(text.utf8)) else {
            throw AuditError(.badKey, "signing the checkpoint with \(name) failed")
        }
        return text + "\n" + "\u{2014} \(name) \(Data(keyHash + Array(signature)).base64EncodedString())\n"
    }
}

/// A verifier key, `NAME+HEX(keyhash)+BASE64(0x01 || 32-byte Ed25519 public key)`, and checking notes with it.
public struct VerifierKey: Sendable, Equatable {
    /// The key name.
    public var name: String
    /// The 4-byte key hash.
    public var keyHash: [UInt8]
    /// The raw Ed25519 public key.
    public var publicKey: [UInt8]

    /// Parses verifier key text; the key hash must match the name and key.
    public init(_ text: String) throws(AuditError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = trimmed.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw AuditError(.badKey, "verifier key \"\(trimmed.prefix(60))\" is not NAME+HASH+KEY")
        }
        guard let hash = unhex(parts[1]), hash.count == 4 else {
            throw AuditError(.badKey, "verifier key: the hash \"\(parts[1].prefix(20))\" is not 8 hex digits")
        }
        guard let data = Data(base64Encoded: String(parts[2])), data.count == 33, data.first == CheckpointSigner.ed25519 else {
            throw AuditError(.badKey, "verifier key: the key is not base64 of 0x01 and a 32-byte Ed25519 public key")
        }
        try CheckpointSigner.checkName(String(parts[0]))
        name = String(parts[0])
        keyHash = hash
        publicKey = Array(data.dropFirst())
        guard CheckpointSigner.keyHash(name: name, publicKey: publicKey) == keyHash else {
            throw AuditError(.badKey, "verifier key: the hash \(parts[1]) does not match the name and key")
        }
    }
}

/// A C2SP signed note split into its text and signature lines.
public struct SignedNote: Sendable, Equatable {
    /// One signature line.
    public struct Signature: Sendable, Equatable {
        /// The signer's key name.
        public var name: String
        /// The 4-byte key hash.
        public var keyHash: [UInt8]
        /// The signature bytes after the key hash.
        public var signature: [UInt8]
    }

    /// The signed text, ending with a newline.
    public var text: String
    /// The signature lines, in order.
    public var signatures: [Signature]

    /// The most bytes a note may have; larger files are refused without reading them whole.
    public static let maxBytes = 1 << 20

    /// Splits note text at its last blank line and parses every signature line.
    public static func parse(_ note: String) throws(AuditError) -> SignedNote {
        // Nor more than 32 combining marks in a row (as for a log line's keys): comparing or searching such text as a
        // `String` takes quadratic time, and a 1 MiB note of them held `verify` (and every run opening the log) for
        // minutes. No signer writes one: a key name holds no such run, and a checkpoint's text is the log's own.
        guard CombiningMarks.longestRun(in: note) <= 32 else {
            throw Checkpoint.malformed("the note holds more than 32 combining marks in a row")
        }
        // C2SP signed notes hold no control characters but the newline (nor C1 ones here): a note that could
        // drive a terminal is refused before anything prints it.
        if note.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) }) {
            throw Checkpoint.malformed("the note contains a control character")
        }
        guard note.hasSuffix("\n") else { throw Checkpoint.malformed("the note does not end with a newline") }
        guard let split = note.range(of: "\n\n", options: .backwards) else {
            throw Checkpoint.malformed("no blank line separates the text from the signatures")
        }
        let text = String(note[..<split.lowerBound]) + "\n"
        let sigLines = note[split.upperBound...].dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        var signatures: [Signature] = []
        for (index, line) in sigLines.enumerated() {
            let where_ = "signature line \(index + 1)"
            guard line.hasPrefix("\u{2014} ") else { throw Checkpoint.malformed("\(where_) does not start with \"\u{2014} \"") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, !fields[0].isEmpty else {
                throw Checkpoint.malformed("\(where_) is not \"\u{2014} NAME BASE64\"")
            }
            guard let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 else {
                throw Checkpoint.malformed("\(where_): the signature is not base64 of a key hash and a signature")
            }
            signatures.append(Signature(name: String(fields[0]), keyHash: Array(blob.prefix(4)), signature: Array(blob.dropFirst(4))))
        }
        guard !signatures.isEmpty else { throw Checkpoint.malformed("the note carries no signature") }
        return SignedNote(text: text, signatures: signatures)
    }

    /// Checks that a signature by `key` covers the text; signatures by other keys are ignored, as the format asks.
    public func verify(with key: VerifierKey) throws(AuditError) {
        let candidates = signatures.filter { $0.name == key.name && $0.keyHash == key.keyHash }
        guard !candidates.isEmpty else {
            let names = signatures.map { "\($0.name)+\(hex($0.keyHash))" }.joined(separator: ", ")
            throw AuditError(.badSignature,
                             "the checkpoint is not signed by \(key.name)+\(hex(key.keyHash)) (signed by \(names)); name the key it was signed with (`--audit-key` for run and mcp, `--key` for audit verify)")
        }
        guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.publicKey) else {
            throw AuditError(.badKey, "verifier key: not a valid Ed25519 public key")
        }
        let message = Array(text.utf8)
        guard candidates.contains(where: { publicKey.isValidSignature($0.signature, for: message) }) else {
            throw AuditError(.badSignature, "the checkpoint signature by \(key.name) does not verify: the checkpoint was altered or forged")
        }
    }
}
