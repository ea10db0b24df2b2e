import NIOCore
import Testing
@testable import CofferVault

@Suite("Trusted proxies")
struct TrustedProxiesTests {
    static func ip(_ text: String) throws -> SocketAddress { try SocketAddress(ipAddress: text, port: 443) }

    @Test func onlyATrustedPeerMayNameTheClient() throws {
        let proxies = try TrustedProxies(["10.0.0.1", "[2001:db8::1]"])
        // A client writing the header itself gets its own bucket regardless.
        #expect(proxies.client(peer: try Self.ip("198.51.100.7"), forwardedFor: ["203.0.113.5"]) == .init(try Self.ip("198.51.100.7")))
        // Through the proxy: the address the proxy appended.
        #expect(proxies.client(peer: try Self.ip("10.0.0.1"), forwardedFor: ["203.0.113.5"]) == .init(try Self.ip("203.0.113.5")))
        // A forged entry on the left proves nothing: the rightmost untrusted hop counts.
        #expect(
            proxies.client(peer: try Self.ip("10.0.0.1"), forwardedFor: ["1.2.3.4, 203.0.113.5"]) == .init(try Self.ip("203.0.113.5")))
        // Chained proxies are skipped, over several header lines too; IPv6 proxies are canonicalised.
        #expect(
            proxies.client(peer: try Self.ip("2001:db8:0::1"), forwardedFor: ["203.0.113.9", "10.0.0.1"])
                == .init(try Self.ip("203.0.113.9")))
        // No header, a garbled one, or only proxies: the proxy's own bucket.
        let proxyBucket = LoginRateLimiter.Client(try Self.ip("10.0.0.1"))
        #expect(proxies.client(peer: try Self.ip("10.0.0.1"), forwardedFor: []) == proxyBucket)
        #expect(proxies.client(peer: try Self.ip("10.0.0.1"), forwardedFor: ["not-an-address"]) == proxyBucket)
        #expect(proxies.client(peer: try Self.ip("10.0.0.1"), forwardedFor: ["10.0.0.1"]) == proxyBucket)
        #expect(TrustedProxies.none.client(peer: try Self.ip("10.0.0.1"), forwardedFor: ["203.0.113.5"]) == proxyBucket)
    }

    @Test func anythingButAnIPAddressIsRefused() {
        for bad in ["proxy.example", "10.0.0", "10.0.0.1:80", ""] {
            #expect(throws: VaultConfigurationError.self, "\(bad)") { try TrustedProxies([bad]) }
        }
        #expect(throws: VaultConfigurationError.self) {
            try VaultServerConfiguration(dataDirectory: "/x", trustedProxies: ["proxy.example"]).validate()
        }
    }
}
