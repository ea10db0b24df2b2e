import Foundation
import Testing

@testable import Coffer

/// The upload stage: at most `limit` uploads at once, the first failure reported, a waiting
/// submitter released by cancellation, and `abandon` cancelling what runs.
@Suite struct PackUploaderTests {
    final class Gauge: @unchecked Sendable {
        private let lock = NSLock()
        private var now = 0
        private(set) var peak = 0
        private(set) var finished = 0
        func enter() { lock.withLock { now += 1; peak = max(peak, now) } }
        func leave() { lock.withLock { now -= 1; finished += 1 } }
        var done: Int { lock.withLock { finished } }
        var highest: Int { lock.withLock { peak } }
    }

    @Test func neverMoreThanTheLimitAndAllFinish() async throws {
        let uploader = PackUploader(limit: 2)
        let gauge = Gauge()
        for _ in 0..<12 {
            try await uploader.submit {
                gauge.enter()
                try await Task.sleep(nanoseconds: 5_000_000)
                gauge.leave()
            }
        }
        try await uploader.finish()
        #expect(gauge.done == 12)
        #expect(gauge.highest <= 2 && gauge.highest >= 1)
    }

    struct Boom: Error {}

    @Test func theFirstFailureIsThrownByLaterSubmitsAndFinish() async throws {
        let uploader = PackUploader(limit: 1)
        try await uploader.submit { throw Boom() }
        // The failed upload frees its slot; the next submit (or finish) reports it.
        await #expect(throws: Boom.self) {
            try await uploader.submit {}
            try await uploader.submit {}
            try await uploader.finish()
        }
    }

    /// How a hanging upload ended: cancelled (what `abandon` and a cancelled `finish` must do)
    /// or run to its end (what they must not wait for).
    final class Ending: @unchecked Sendable {
        private let lock = NSLock()
        private var cancelled = false
        private var completed = false
        func hang() async throws {
            do {
                // Ten minutes: far past the suite's time limit, so waiting for it fails the test.
                try await Task.sleep(nanoseconds: 600_000_000_000)
                lock.withLock { completed = true }
            } catch {
                lock.withLock { cancelled = error is CancellationError }
                throw error
            }
        }
        var wasCancelled: Bool { lock.withLock { cancelled && !completed } }
        var hasEnded: Bool { lock.withLock { cancelled || completed } }
    }

    // Wall-clock bounds flaked under a loaded CI machine (17 s for a release that takes
    // milliseconds alone), so the tests check how the hanging upload ended instead, and the
    // time limit catches a stage that waits for it.
    @Test(.timeLimit(.minutes(2))) func aSubmitterWaitingForASlotIsReleasedByCancellation() async throws {
        let uploader = PackUploader(limit: 1)
        let ending = Ending()
        // The only slot hangs until cancelled.
        try await uploader.submit { try await ending.hang() }
        let waiter = Task { try await uploader.submit {} }
        try await Task.sleep(nanoseconds: 50_000_000)
        waiter.cancel()
        // The waiter is released while the slot is still taken.
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(!ending.hasEnded, "the waiter was released only because the slot's upload ended")
        // abandon cancels the hanging upload instead of waiting ten minutes for it.
        await uploader.abandon()
        #expect(ending.wasCancelled)
    }
}

extension PackUploaderTests {
    @Test(.timeLimit(.minutes(2))) func cancellingAFinishCancelsTheUploads() async throws {
        let uploader = PackUploader(limit: 2)
        let ending = Ending()
        try await uploader.submit { try await ending.hang() }
        let finishing = Task { try await uploader.finish() }
        try await Task.sleep(nanoseconds: 50_000_000)
        finishing.cancel()
        await #expect(throws: (any Error).self) { try await finishing.value }
        #expect(ending.wasCancelled, "finish waited for the hanging upload instead of cancelling it")
    }
}
