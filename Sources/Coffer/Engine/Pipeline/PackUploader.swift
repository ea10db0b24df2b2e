import CofferCrypto

/// Stage 5 (Pipeline.swift): stores finished packs, up to `limit` at once, each in a task of
/// its own, so a sealing task that fills a pack goes back to sealing as soon as the pack has a
/// slot, without waiting for the storage to answer. When every slot is taken, `submit` waits:
/// that is the backpressure that bounds memory to `limit` packs on their way.
///
/// The first failure is kept: later `submit`s and `finish` throw it. `finish` (or `abandon`, on
/// an error path) must be awaited before the lock is released: no upload, and no index object
/// written after one, may land once another process could take the lock.
final class PackUploader: @unchecked Sendable {
    let limit: Int
    // All below only under `lock`.
    private let lock = Lock()
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var drained: [CheckedContinuation<Void, Never>] = []
    private var failure: (any Error)? = nil

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Runs `upload` in its own task once a slot is free.
    func submit(_ upload: @escaping @Sendable () async throws -> Void) async throws {
        try rethrowFailure()
        await withCheckedContinuation { (slot: CheckedContinuation<Void, Never>) in
            let free: Bool = lock.withLock {
                if running < limit {
                    running += 1
                    return true
                }
                waiting.append(slot)
                return false
            }
            if free { slot.resume() }
        }
        // An upload that failed while this one waited: the run is over.
        do { try rethrowFailure() } catch {
            release()
            throw error
        }
        // Not a child task: the caller goes on sealing while this runs.
        Task {
            do { try await upload() } catch { self.record(error) }
            self.release()
        }
    }

    /// Waits for every upload, then throws the first failure, if any.
    func finish() async throws {
        await waitForAll()
        try rethrowFailure()
    }

    /// Waits for every upload and forgets their failures (the caller is failing already).
    func abandon() async { await waitForAll() }

    private func waitForAll() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let idle: Bool = lock.withLock {
                if running == 0 { return true }
                drained.append(done)
                return false
            }
            if idle { done.resume() }
        }
    }

    private func release() {
        let (next, done): (CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) = lock.withLock {
            // A waiting submitter takes the slot over; `running` stays the same.
            if !waiting.isEmpty { return (waiting.removeFirst(), []) }
            running -= 1
            guard running == 0 else { return (nil, []) }
            defer { drained = [] }
            return (nil, drained)
        }
        next?.resume()
        for d in done { d.resume() }
    }

    private func record(_ error: any Error) {
        lock.withLock { if failure == nil { failure = error } }
    }

    private func rethrowFailure() throws {
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}
