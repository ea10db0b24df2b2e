import CofferCrypto

/// What a remote backend moved over the network: body bytes sent and received (retries
/// included), requests made, and requests retried. Commands print it so a user sees what a
/// daily backup costs in traffic.
public final class TransferMeter: @unchecked Sendable {
    public struct Totals: Sendable, Equatable {
        public var bytesSent: UInt64 = 0
        public var bytesReceived: UInt64 = 0
        public var requests: UInt64 = 0
        public var retries: UInt64 = 0
        public var lastRetryReason: String?
        public init() {}
    }

    private let lock = Lock()
    private var totals = Totals()

    public init() {}

    public var current: Totals { lock.withLock { totals } }

    func noteRequest(sent: Int) {
        lock.withLock {
            totals.requests += 1
            totals.bytesSent += UInt64(sent)
        }
    }

    func noteReceived(_ count: Int) { lock.withLock { totals.bytesReceived += UInt64(count) } }

    func noteRetry(_ reason: String) {
        lock.withLock {
            totals.retries += 1
            totals.lastRetryReason = reason
        }
    }
}
