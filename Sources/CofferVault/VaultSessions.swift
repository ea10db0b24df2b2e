import CofferCrypto
import Foundation

/// What lives only in memory: logins between start and finish, and the password-change tokens
/// a successful login hands out. Both are single-use and expire; a restart drops them all,
/// which only makes clients log in again.
actor VaultSessions {
    struct PendingLogin {
        let account: [UInt8]
        let state: OPAQUEServer.LoginState
        /// The record generation the KE2 was made from.
        let generation: Int64
        let expires: Date
    }

    private struct Token {
        let account: [UInt8]
        let expires: Date
    }

    private var logins: [String: PendingLogin] = [:]
    private var tokens: [String: Token] = [:]
    /// Pruning is a full scan, so it runs only when the tables have doubled since the last one.
    private var pruneAt = 1024
    private let lifetime: TimeInterval
    private let now: @Sendable () -> Date
    private let random: any RandomSource

    init(lifetime: TimeInterval, now: @escaping @Sendable () -> Date, random: any RandomSource) {
        self.lifetime = lifetime
        self.now = now
        self.random = random
    }

    /// Stores a login and returns its session id.
    func add(account: [UInt8], state: OPAQUEServer.LoginState, generation: Int64) -> String {
        prune()
        let id = newIdentifier()
        logins[id] = PendingLogin(account: account, state: state, generation: generation, expires: now() + lifetime)
        return id
    }

    /// Removes and returns the login, if it exists, belongs to `account` and has not expired.
    /// Taken even when it does not match: a session id is tried at most once.
    func take(_ id: String, account: [UInt8]) -> PendingLogin? {
        guard let login = logins.removeValue(forKey: id), login.account == account, login.expires > now() else { return nil }
        return login
    }

    func issueToken(account: [UInt8]) -> String {
        prune()
        let id = newIdentifier()
        tokens[id] = Token(account: account, expires: now() + lifetime)
        return id
    }

    /// True, and the token is spent, if it was issued for `account` and has not expired.
    func redeemToken(_ id: String, account: [UInt8]) -> Bool {
        guard let token = tokens[id], token.account == account else { return false }
        tokens[id] = nil
        return token.expires > now()
    }

    /// Drops what has expired, so that abandoned logins do not pile up.
    private func prune() {
        guard logins.count + tokens.count >= pruneAt else { return }
        let t = now()
        logins = logins.filter { $0.value.expires > t }
        tokens = tokens.filter { $0.value.expires > t }
        pruneAt = max(1024, 2 * (logins.count + tokens.count))
    }

    /// 32 random bytes, hex.
    private func newIdentifier() -> String {
        let digits = Array("0123456789abcdef")
        return String(random.bytes(32).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}
