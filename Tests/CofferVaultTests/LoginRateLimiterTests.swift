import CofferCrypto
import Foundation
import NIOCore
import Testing
@testable import CofferVault

@Suite("LoginRateLimiter")
struct LoginRateLimiterTests {
    static func client(_ ip: String) throws -> LoginRateLimiter.Client {
        LoginRateLimiter.Client(try SocketAddress(ipAddress: ip, port: 40000))
    }

    @Test func aBurstOfTheRateIsAllowedAndTheNextRefused() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 30, now: { clock.seconds })
        let alice = try Self.client("203.0.113.7")
        for i in 1...30 { #expect(limiter.take(alice) == .allowed, "request \(i)") }
        // 30 a minute is one token every 2 s.
        #expect(limiter.take(alice) == .refused(retryAfterSeconds: 2))
        #expect(limiter.take(alice) == .refused(retryAfterSeconds: 2), "a refused request must not take a token either")
    }

    @Test func tokensComeBackContinuouslyUpToTheBurst() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 30, now: { clock.seconds })
        let alice = try Self.client("203.0.113.7")
        for _ in 1...30 { _ = limiter.take(alice) }
        clock.advance(1)
        #expect(limiter.take(alice) == .refused(retryAfterSeconds: 1), "half a token is not a token")
        clock.advance(1)
        #expect(limiter.take(alice) == .allowed)
        #expect(limiter.take(alice) == .refused(retryAfterSeconds: 2))
        // A long pause refills to the burst and no further.
        clock.advance(3600)
        let allowed = (1...40).filter { _ in limiter.take(alice) == .allowed }.count
        #expect(allowed == 30)
    }

    @Test func addressesHaveBucketsOfTheirOwn() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 3, now: { clock.seconds })
        let alice = try Self.client("203.0.113.7"), bob = try Self.client("203.0.113.8")
        for _ in 1...3 { #expect(limiter.take(alice) == .allowed) }
        #expect(limiter.take(alice) != .allowed)
        for _ in 1...3 { #expect(limiter.take(bob) == .allowed) }
        #expect(limiter.take(bob) != .allowed)
        #expect(limiter.take(.unknown) == .allowed)
    }

    @Test func clientsAreKeyedByIPv4AddressOrIPv6Slash64() throws {
        #expect(try Self.client("203.0.113.7") == .ipv4(0xCB00_7107))
        #expect(try Self.client("2001:db8:1:2::1") == .ipv6Prefix(0x2001_0db8_0001_0002))
        // Any address in the /64 is the same client; the next /64 is another.
        #expect(try Self.client("2001:db8:1:2:ffff:ffff:ffff:fffe") == Self.client("2001:db8:1:2::1"))
        #expect(try Self.client("2001:db8:1:3::1") != Self.client("2001:db8:1:2::1"))
        // An IPv4 client of a dual-stack listener is its IPv4 address, not the ::ffff:0:0/64.
        #expect(try Self.client("::ffff:203.0.113.7") == .ipv4(0xCB00_7107))
        #expect(try Self.client("::ffff:203.0.113.7") != Self.client("::ffff:203.0.113.8"))
        #expect(LoginRateLimiter.Client(nil) == .unknown)
        #expect(LoginRateLimiter.Client(try SocketAddress(unixDomainSocketPath: "/tmp/vault.sock")) == .unknown)
    }

    @Test func rotatingAddressesWithinASlash64DoesNotEscapeTheLimit() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 5, now: { clock.seconds })
        let allowed = try (1...20).filter { i in limiter.take(try Self.client("2001:db8:77:1::\(String(i, radix: 16))")) == .allowed }
        #expect(allowed.count == 5)
        #expect(limiter.take(try Self.client("2001:db8:77:2::1")) == .allowed)
    }

    @Test func fullBucketsAreDroppedOncePastTheThreshold() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 2, now: { clock.seconds }, pruneThreshold: 4, tableLimit: 100)
        let clients = try (1...4).map { try Self.client("198.51.100.\($0)") }
        for c in clients { _ = limiter.take(c) }
        // Two of them empty their buckets.
        _ = limiter.take(clients[0])
        _ = limiter.take(clients[1])
        #expect(limiter.trackedClients == 4)
        // 30 s is one token: the two that took one are full again, the other two are not.
        clock.advance(30)
        #expect(limiter.take(try Self.client("198.51.100.5")) == .allowed)
        #expect(limiter.trackedClients == 3)
        // A dropped bucket was full, so its client lost nothing: it gets the whole burst.
        #expect(limiter.take(clients[2]) == .allowed)
        #expect(limiter.take(clients[2]) == .allowed)
        #expect(limiter.take(clients[2]) != .allowed)
        // One that was kept still has its debt.
        #expect(limiter.take(clients[0]) == .allowed)
        #expect(limiter.take(clients[0]) != .allowed)
    }

    @Test func theTableNeverGrowsPastItsLimit() throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 2, now: { clock.seconds }, pruneThreshold: 4, tableLimit: 8)
        for i in 1...8 { #expect(limiter.take(try Self.client("198.51.100.\(i)")) == .allowed) }
        #expect(limiter.trackedClients == 8)
        // Past the limit, newcomers share one bucket: still limited, just not one by one.
        let newcomers = try (9...20).map { try Self.client("198.51.100.\($0)") }
        let allowed = newcomers.filter { limiter.take($0) == .allowed }.count
        #expect(allowed == 2)
        #expect(limiter.trackedClients == 8)
        // Once the table's clients are quiet and full again, newcomers get buckets of their own.
        clock.advance(60)
        #expect(limiter.take(newcomers[0]) == .allowed)
        #expect(limiter.take(newcomers[0]) == .allowed)
        #expect(limiter.take(newcomers[0]) != .allowed)
        #expect(limiter.trackedClients == 1)
    }

    @Test func parallelRequestsNeverGetMoreThanTheBurst() async throws {
        let clock = TestClock()
        let limiter = LoginRateLimiter(perMinute: 50, now: { clock.seconds })
        let client = try Self.client("203.0.113.9")
        let allowed = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<400 { group.addTask { limiter.take(client) == .allowed } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(allowed == 50)
    }
}
