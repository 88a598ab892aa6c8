// Small shared helpers over the C library: an owned file descriptor, errno mapping, Linux-only constants.
//
// The capabilities are written for Linux (glibc): they rely on `O_PATH`, `readlinkat(fd, "")` on an
// `O_PATH` symlink descriptor, and glibc's `posix_spawn_file_actions_add{chdir,closefrom}_np`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CPeonSupport
import PeonInterface

/// `O_PATH` (Linux): a descriptor that names a file without opening it for I/O, from <fcntl.h> through
/// CPeonSupport (the Swift Glibc module hides it behind `_GNU_SOURCE`).
let openPath: Int32 = peon_o_path()

/// An open file descriptor that is closed exactly once, when the value goes away.
struct Descriptor: ~Copyable {
    /// The raw descriptor, valid while `self` lives.
    let raw: Int32

    init(_ raw: Int32) {
        self.raw = raw
    }

    /// Gives up ownership without closing (for `fdopendir`, which takes it over).
    consuming func release() -> Int32 {
        let raw = self.raw
        discard self
        return raw
    }

    deinit {
        _ = close(raw)
    }
}

/// The current thread's `errno`.
var currentErrno: Int32 { errno }

/// The text `strerror` gives for `code`, e.g. "No such file or directory".
func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}

/// Maps an OS error to the guest-visible code, in one place for every capability.
///
/// `ENOENT` is `not-found`; `EACCES`/`EPERM` are `denied` (the operating system refused, after policy
/// allowed); malformed or unsuitable targets are `invalid-argument`; a full disk or a too-big file is
/// `limit-exceeded`; everything else is `io`.
func hostErrorCode(forErrno code: Int32) -> HostErrorCode {
    switch code {
    case ENOENT: .notFound
    case EACCES, EPERM, EROFS: .denied
    case ENOTDIR, EISDIR, ENAMETOOLONG, EINVAL, ENOTEMPTY, ELOOP, EEXIST, EXDEV, ENOEXEC: .invalidArgument
    case ENOSPC, EDQUOT, EFBIG, EMFILE, ENFILE, ENOMEM: .limitExceeded
    case ETIMEDOUT: .timeout
    default: .io
    }
}

/// `what: strerror(code)` as a ``HostError`` with the mapped code.
func hostError(errno code: Int32, _ what: String) -> HostError {
    HostError(hostErrorCode(forErrno: code), "\(what): \(errnoText(code).lowercased())")
}

/// A fresh random hexadecimal string of `bytes` bytes, for temporary names.
func randomHex(bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    var text = ""
    for _ in 0..<bytes {
        let byte = UInt8.random(in: 0...255, using: &generator)
        text += String(byte >> 4, radix: 16) + String(byte & 0xf, radix: 16)
    }
    return text
}

/// Runs `body` with the `posix_spawn` file actions and attributes every child of the host starts with: stdin, stdout
/// and stderr duplicated from the given descriptors and every other descriptor closed, no signal blocked and every
/// signal at its default, `spawnFlags` (a new session, or a new process group: `POSIX_SPAWN_SETPGROUP` makes the child
/// lead one), and `workingDirectory` when given. `nil` when they could not be prepared.
func withSpawnSetup<R>(
    stdin: Int32, stdout: Int32, stderr: Int32, workingDirectory: String? = nil, spawnFlags: Int32,
    _ body: (inout posix_spawn_file_actions_t, inout posix_spawnattr_t) -> R
) -> R? {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var failed: Int32 = 0
    failed |= posix_spawn_file_actions_adddup2(&actions, stdin, 0)
    failed |= posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    failed |= posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    failed |= peon_spawn_file_actions_addclosefrom(&actions, 3)
    if let workingDirectory { failed |= workingDirectory.withCString { peon_spawn_file_actions_addchdir(&actions, $0) } }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    failed |= posix_spawnattr_setsigmask(&attributes, &noSignals)
    failed |= posix_spawnattr_setsigdefault(&attributes, &allSignals)
    if spawnFlags & Int32(POSIX_SPAWN_SETPGROUP) != 0 { failed |= posix_spawnattr_setpgroup(&attributes, 0) }
    failed |= posix_spawnattr_setflags(&attributes, Int16(spawnFlags | Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
    guard failed == 0 else { return nil }
    return body(&actions, &attributes)
}
