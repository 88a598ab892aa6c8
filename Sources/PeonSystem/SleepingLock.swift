#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a plain `pthread_mutex_t`: a waiter sleeps in the kernel, and a thread that is running takes
/// the lock again when it is free, whoever was woken.
///
/// Why not `Synchronization.Mutex`: on Linux it is a priority-inheritance futex that spins first and then hands the
/// lock to the next waiter in turn. With many more threads than cores (a fleet of agents sharing one audit log),
/// every hand-off then costs a context switch and the spinning takes the CPU from the holder: measured on 2 cores
/// with 100 agents, a third of all CPU time went to the audit log's lock. Use this for locks that many threads take
/// for a short while; `Mutex` stays right everywhere else.
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
        pthread_mutex_init(mutex, nil)
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
