import Foundation
import NIOCore

/// Reverse proxies (a TLS terminator, a load balancer) whose `X-Forwarded-For` header may name
/// the client for the login rate limit. Without this every client behind a proxy would share
/// the proxy's bucket; with it, only connections *from* a listed proxy may use the header, so
/// a client cannot pick its own bucket by writing one.
public struct TrustedProxies: Sendable, Equatable {
    /// Canonical IP literals, as `SocketAddress.ipAddress` prints them.
    let addresses: Set<String>

    public static let none = TrustedProxies(canonical: [])

    private init(canonical: Set<String>) { addresses = canonical }

    /// IP literals (IPv4 or IPv6); anything else is refused, naming it.
    public init(_ literals: [String]) throws(VaultConfigurationError) {
        var canonical: Set<String> = []
        for literal in literals {
            let bare = literal.hasPrefix("[") && literal.hasSuffix("]") ? String(literal.dropFirst().dropLast()) : literal
            guard let ip = (try? SocketAddress(ipAddress: bare, port: 0))?.ipAddress else {
                throw VaultConfigurationError(message: "--trusted-proxy \(literal): not an IP address")
            }
            canonical.insert(ip)
        }
        addresses = canonical
    }

    /// Whose bucket a request takes from. From a trusted proxy: the rightmost address in
    /// `X-Forwarded-For` that is not itself a trusted proxy (entries left of it were written by
    /// the client and prove nothing). A missing or garbled header leaves the proxy's own bucket.
    func client(peer: SocketAddress?, forwardedFor headerValues: [String]) -> LoginRateLimiter.Client {
        guard let peerIP = peer?.ipAddress, addresses.contains(peerIP) else { return LoginRateLimiter.Client(peer) }
        let hops = headerValues.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let address = try? SocketAddress(ipAddress: hop, port: 0), let ip = address.ipAddress else {
                return LoginRateLimiter.Client(peer)
            }
            if !addresses.contains(ip) { return LoginRateLimiter.Client(address) }
        }
        return LoginRateLimiter.Client(peer)
    }
}
