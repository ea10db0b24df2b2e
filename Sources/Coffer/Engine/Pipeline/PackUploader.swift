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
    private var waiting: [(ticket: Int, slot: CheckedContinuation<Void, any Error>)] = []
    /// Tickets whose wait was cancelled before it began.
    private var cancelledTickets = Set<Int>()
    private var nextTicket = 0
    private var drained: [CheckedContinuation<Void, Never>] = []
    private var failure: (any Error)? = nil
    /// The uploads under way, by number, so that `abandon` can cancel them.
    private var tasks: [Int: Task<Void, Never>] = [:]
    private var nextNumber = 0

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Runs `upload` in its own task once a slot is free. The wait ends with CancellationError
    /// when the caller is cancelled (an interrupted backup whose uploads hang must not wait for
    /// their time-outs).
    func submit(_ upload: @escaping @Sendable () async throws -> Void) async throws {
        try rethrowFailure()
        let ticket: Int = lock.withLock {
            nextTicket += 1
            return nextTicket
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (slot: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = lock.withLock {
                    if cancelledTickets.remove(ticket) != nil { return .failure(CancellationError()) }
                    if running < limit {
                        running += 1
                        return .success(())
                    }
                    waiting.append((ticket, slot))
                    return nil
                }
                if let outcome { slot.resume(with: outcome) }
            }
        } onCancel: {
            let slot: CheckedContinuation<Void, any Error>? = lock.withLock {
                if let i = waiting.firstIndex(where: { $0.ticket == ticket }) { return waiting.remove(at: i).slot }
                cancelledTickets.insert(ticket)
                return nil
            }
            slot?.resume(throwing: CancellationError())
        }
        // An upload that failed while this one waited: the run is over.
        do { try rethrowFailure() } catch {
            release()
            throw error
        }
        // Not a child task: the caller goes on sealing while this runs.
        lock.withLock {
            let number = nextNumber
            nextNumber += 1
            tasks[number] = Task {
                do { try await upload() } catch { self.record(error) }
                self.lock.withLock { self.tasks[number] = nil }
                self.release()
            }
        }
    }

    /// Waits for every upload, then throws the first failure, if any. Cancelling the caller
    /// cancels the uploads (they then fail, and so does this).
    func finish() async throws {
        await withTaskCancellationHandler {
            await waitForAll()
        } onCancel: {
            cancelAll()
        }
        try Task.checkCancellation()
        try rethrowFailure()
    }

    private func cancelAll() {
        for task in lock.withLock({ Array(tasks.values) }) { task.cancel() }
    }

    /// Cancels the uploads under way (an interrupted backup must stop promptly, and a pack
    /// that no index names is only unreferenced data), waits for them, and forgets their
    /// failures (the caller is failing already). An index write already begun runs to its end
    /// (PackAssembler.writeIndex), so none lands once the caller has released its lock.
    func abandon() async {
        cancelAll()
        await waitForAll()
    }

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
        let (next, done): (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, Never>]) = lock.withLock {
            // A waiting submitter takes the slot over; `running` stays the same.
            if !waiting.isEmpty { return (waiting.removeFirst().slot, []) }
            running -= 1
            guard running == 0 else { return (nil, []) }
            defer { drained = [] }
            return (nil, drained)
        }
        next?.resume(returning: ())
        for d in done { d.resume() }
    }

    private func record(_ error: any Error) {
        lock.withLock { if failure == nil { failure = error } }
    }

    private func rethrowFailure() throws {
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}
