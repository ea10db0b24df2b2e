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

    @Test func aSubmitterWaitingForASlotIsReleasedByCancellation() async throws {
        let uploader = PackUploader(limit: 1)
        // The only slot hangs until cancelled.
        try await uploader.submit { try await Task.sleep(nanoseconds: 60_000_000_000) }
        let waiter = Task { try await uploader.submit {} }
        try await Task.sleep(nanoseconds: 50_000_000)
        waiter.cancel()
        let started = ContinuousClock.now
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(ContinuousClock.now - started < .seconds(5))
        // abandon cancels the hanging upload instead of waiting a minute for it.
        await uploader.abandon()
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}

extension PackUploaderTests {
    @Test func cancellingAFinishCancelsTheUploads() async throws {
        let uploader = PackUploader(limit: 2)
        try await uploader.submit { try await Task.sleep(nanoseconds: 60_000_000_000) }
        let finishing = Task { try await uploader.finish() }
        try await Task.sleep(nanoseconds: 50_000_000)
        let started = ContinuousClock.now
        finishing.cancel()
        await #expect(throws: (any Error).self) { try await finishing.value }
        #expect(ContinuousClock.now - started < .seconds(10), "finish waited for the hanging upload")
    }
}
