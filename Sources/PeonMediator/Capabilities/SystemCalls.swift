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
