// The system-call loops every layer needs, written once: retry on EINTR, and write every byte.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a system call again while it fails with `EINTR` (a signal arrived before it did anything).
///
/// `call` returns the system call's result; -1 with `errno == EINTR` repeats it, anything else is returned.
package func retryingInterrupts<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// Writes every byte of `bytes` to `fd`, retrying short writes and `EINTR`.
///
/// - Returns: 0 when everything was written, else the `errno` of the write that failed (the bytes before it
///   were written).
package func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    guard var base = bytes.baseAddress else { return 0 }
    var remaining = bytes.count
    while remaining > 0 {
        let written = retryingInterrupts { write(fd, base, remaining) }
        if written < 0 { return errno }
        if written == 0 { return EIO }
        remaining -= written
        base += written
    }
    return 0
}

/// Writes every byte of `bytes` to `fd`; see the buffer-pointer form.
package func writeFully(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int32 {
    bytes.withUnsafeBytes { writeFully(fd, $0) }
}

/// Writes every byte of `bytes` to `fd`; see the buffer-pointer form.
package func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
    bytes.withUnsafeBytes { writeFully(fd, $0) }
}
