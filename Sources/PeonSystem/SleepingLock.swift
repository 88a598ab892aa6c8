#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a `pthread_mutex_t` of glibc's adaptive kind: a waiter spins briefly (bounded by glibc) and
/// then sleeps in the kernel, and a thread that is running takes the lock when it is free, whoever was woken.
///
/// Why not `Synchronization.Mutex`: on Linux it is a priority-inheritance futex that spins first and then hands the
/// lock to the next waiter in turn. With many more threads than cores (a fleet of agents sharing one audit log),
/// every hand-off then costs a context switch and the spinning takes the CPU from the holder: measured on 2 cores
/// with 100 agents, a third of all CPU time went to the audit log's lock. Why adaptive rather than a plain mutex:
/// the audit log's locks are held for a microsecond or two, so a waiter whose holder is running on the other core
/// usually gets the lock by spinning, without the sleep and the wake that cost the plain mutex ~9 % of all CPU with
/// 100 agents; measured alternately, 100 agents went from 76–81 k to 91–92 k calls/s and 16 threads appending
/// buffered entries from 242 k to 331 k/s. Use this for locks that many threads take for a short while; `Mutex`
/// stays right everywhere else.
///
/// Sendable for any value on `Mutex`'s terms: the value comes in and goes out only as `sending` (region-isolated),
/// so a non-`Sendable` value cannot be reached from two threads through the lock.
package final class SleepingLock<Value: ~Copyable>: @unchecked Sendable {
    // The lock lives at a fixed address for its whole life (a `pthread_mutex_t` must not move).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// A lock guarding `value`.
    package init(_ value: consuming sending Value) {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if canImport(Glibc)
        // Spin a little while the holder runs before sleeping (glibc's adaptive kind): see the type's comment.
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    @inline(__always)
    package func withLock<Result: ~Copyable, Failure: Error>(
        _ body: (inout sending Value) throws(Failure) -> sending Result
    ) throws(Failure) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
