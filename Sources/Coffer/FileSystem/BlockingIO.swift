import Dispatch
import Synchronization

/// Runs system calls that may wait on the disk (a write and its fsync, a read that misses the
/// page cache) on threads of their own, off the threads that run Swift's tasks: those are one
/// per core, and a thread asleep in fsync is a core that neither hashes nor seals.
///
/// On Linux, tasks run on libdispatch's default-QoS root queue, and a *concurrent* queue
/// targets that same root queue and shares its threads. Measured: with the pack writes on one,
/// both task threads slept 1.9 s of a 4 s media backup in O_DIRECT writes, and the backup kept
/// 1.4 of 2 cores busy. Serial queues target the overcommit root queue instead, which starts a
/// thread for their work whatever the others are doing; several of them let that many calls
/// wait at once.
enum BlockingIO {
    private static let queues = (0..<4).map { DispatchQueue(label: "coffer.blocking-io.\($0)") }
    private static let next = Atomic<Int>(0)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let queue = queues[next.add(1, ordering: .relaxed).oldValue % queues.count]
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
