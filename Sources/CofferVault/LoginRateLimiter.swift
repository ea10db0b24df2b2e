import CofferCrypto
import Foundation
import NIOCore

/// A token bucket per client address for the requests that cost a guess or hold state
/// (`login/start`, and `register/start`, whose id every `register/finish` needs). The
/// per-account counter stops guessing at one account; this stops one address from spraying
/// guesses over many names, filling the database with phantom rows, or the registration table.
///
/// Each bucket holds up to `perMinute` tokens (a burst of that many is fine) and refills
/// continuously at `perMinute` a minute. State is in memory only: a restart forgives everyone,
/// which costs an attacker a restart of the vault, not a guess.
public final class LoginRateLimiter: @unchecked Sendable {
    /// Whose bucket a request takes from.
    public enum Client: Hashable, Sendable {
        case ipv4(UInt32)
        /// The first 64 bits: an IPv6 host is usually given a whole /64 and can pick any
        /// address in it, so one address per bucket would be one bucket per request.
        case ipv6Prefix(UInt64)
        /// No IP address: a Unix socket, or an in-process test channel. All share one bucket.
        case unknown

        public init(_ address: SocketAddress?) {
            switch address {
            case .v4(let v4):
                self = .ipv4(UInt32(bigEndian: v4.address.sin_addr.s_addr))
            case .v6(let v6):
                let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
                // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; keyed by their /64
                // they would all share the bucket of ::ffff:0:0/64.
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                    self = .ipv4(bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) })
                } else {
                    self = .ipv6Prefix(bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) })
                }
            default:
                self = .unknown
            }
        }
    }

    public enum Decision: Equatable, Sendable {
        case allowed
        /// Whole seconds until the bucket holds a token again (at least 1).
        case refused(retryAfterSeconds: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updated: TimeInterval
    }

    public let perMinute: Int
    private let now: @Sendable () -> TimeInterval
    private let pruneThreshold: Int
    private let tableLimit: Int

    private let lock = Lock()
    private var buckets: [Client: Bucket] = [:]
    /// Shared by every client that arrives while the table is full: a flood from more
    /// addresses than the table holds is still limited, just not per address.
    private var overflow: Bucket
    private var nextPrune: Int
    private var lastPrune: TimeInterval = -.infinity

    /// - Parameters:
    ///   - perMinute: the sustained rate and the burst size; at least 1.
    ///   - now: seconds on a clock that never goes back (tests inject one).
    ///   - pruneThreshold: past this many buckets, the full ones (clients quiet long enough to
    ///     be forgiven entirely) are dropped: a full bucket is the same as no bucket.
    ///   - tableLimit: the most buckets ever kept, whatever the clients do.
    public init(
        perMinute: Int, now: @escaping @Sendable () -> TimeInterval = { ProcessInfo.processInfo.systemUptime },
        pruneThreshold: Int = 10_000, tableLimit: Int = 100_000
    ) {
        precondition(perMinute >= 1, "a rate of 0 means no limiter")
        precondition(1 <= pruneThreshold && pruneThreshold <= tableLimit)
        self.perMinute = perMinute
        self.now = now
        self.pruneThreshold = pruneThreshold
        self.tableLimit = tableLimit
        self.nextPrune = pruneThreshold
        self.overflow = Bucket(tokens: Double(perMinute), updated: now())
    }

    private var capacity: Double { Double(perMinute) }
    private var perSecond: Double { Double(perMinute) / 60 }

    /// Takes one token from the client's bucket, or says how long until there is one.
    public func take(_ client: Client) -> Decision {
        lock.withLock {
            let time = now()
            if buckets[client] == nil {
                makeRoom(at: time)
                guard buckets.count < tableLimit else { return take(from: &overflow, at: time) }
                buckets[client] = Bucket(tokens: capacity, updated: time)
            }
            return take(from: &buckets[client]!, at: time)
        }
    }

    /// How many clients have a bucket of their own (for tests).
    var trackedClients: Int { lock.withLock { buckets.count } }

    private func take(from bucket: inout Bucket, at time: TimeInterval) -> Decision {
        refill(&bucket, at: time)
        guard bucket.tokens >= 1 else {
            return .refused(retryAfterSeconds: max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up))))
        }
        bucket.tokens -= 1
        return .allowed
    }

    private func refill(_ bucket: inout Bucket, at time: TimeInterval) {
        bucket.tokens = min(capacity, bucket.tokens + max(0, time - bucket.updated) * perSecond)
        bucket.updated = time
    }

    /// Drops the full buckets once the table passes the threshold. The next prune waits until
    /// the table has doubled, so a table of busy clients is not scanned on every new one; at
    /// the limit, a scan at most once a second lets clients that have calmed down make room.
    private func makeRoom(at time: TimeInterval) {
        let atLimit = buckets.count >= tableLimit && time - lastPrune >= 1
        guard buckets.count >= nextPrune || atLimit else { return }
        buckets = buckets.filter { _, bucket in
            var bucket = bucket
            refill(&bucket, at: time)
            return bucket.tokens < capacity
        }
        lastPrune = time
        nextPrune = max(pruneThreshold, 2 * buckets.count)
    }
}
