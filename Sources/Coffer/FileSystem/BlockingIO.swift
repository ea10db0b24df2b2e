import Dispatch

/// Runs system calls that may wait on the disk (a write and its fsync, a read that misses the
/// page cache) on threads of their own, off Swift's cooperative pool: that pool has one thread
/// per core, and a thread asleep in fsync is a core that neither hashes nor seals.
enum BlockingIO {
    private static let queue = DispatchQueue(label: "coffer.blocking-io", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
