import CofferCrypto
import Foundation

/// What lives only in memory: registrations between start and finish, logins between start
/// and finish, and the password-change tokens a successful login hands out. All are
/// single-use and expire; a restart drops them all, which only makes clients start again.
actor VaultSessions {
    struct PendingLogin {
        let account: [UInt8]
        let state: OPAQUEServer.LoginState
        /// The record generation the KE2 was made from.
        let generation: Int64
        /// The row's `login_starts` after this start counted itself.
        let startNumber: Int64
        /// The row's `last_failure_at` before this start overwrote it, put back if this login
        /// succeeds and no start came after it.
        let previousFailureAt: Int64
        let expires: Date
    }

    /// A registration's fresh OPRF key, kept until its finish stores it with the record.
    struct PendingRegistration {
        let account: [UInt8]
        let oprfKey: Ristretto255.Scalar
        let expires: Date
    }

    private struct Token {
        let account: [UInt8]
        let expires: Date
    }

    /// At most this many registrations wait for their finish; past it the oldest is dropped
    /// (its finish then fails and the client starts again). `register/start` is rate-limited
    /// per address, so one client cannot push out another's without many addresses.
    static let registrationLimit = 10_000

    private var logins: [String: PendingLogin] = [:]
    private var tokens: [String: Token] = [:]
    private var registrations: [String: PendingRegistration] = [:]
    /// Registration ids in the order they were made, which is also their expiry order (one
    /// lifetime for all); ids already taken are skipped when they reach the front.
    private var registrationOrder: [String] = []
    private var registrationOrderStart = 0
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
    func add(account: [UInt8], state: OPAQUEServer.LoginState, generation: Int64, startNumber: Int64, previousFailureAt: Int64) -> String {
        prune()
        let id = newIdentifier()
        logins[id] = PendingLogin(
            account: account, state: state, generation: generation, startNumber: startNumber,
            previousFailureAt: previousFailureAt, expires: now() + lifetime)
        return id
    }

    /// Removes and returns the login, if it exists, belongs to `account` and has not expired.
    /// Taken even when it does not match: a session id is tried at most once.
    func take(_ id: String, account: [UInt8]) -> PendingLogin? {
        guard let login = logins.removeValue(forKey: id), login.account == account, login.expires > now() else { return nil }
        return login
    }

    /// Stores a registration's OPRF key and returns the registration id.
    func addRegistration(account: [UInt8], oprfKey: Ristretto255.Scalar) -> String {
        let t = now()
        // Drop from the front what has expired or was taken, then the oldest beyond the limit.
        while registrationOrderStart < registrationOrder.count {
            let id = registrationOrder[registrationOrderStart]
            if let pending = registrations[id], pending.expires > t, registrations.count < Self.registrationLimit { break }
            registrations[id] = nil
            registrationOrderStart += 1
        }
        if registrationOrderStart > 1024 && registrationOrderStart * 2 > registrationOrder.count {
            registrationOrder.removeFirst(registrationOrderStart)
            registrationOrderStart = 0
        }
        let id = newIdentifier()
        registrations[id] = PendingRegistration(account: account, oprfKey: oprfKey, expires: t + lifetime)
        registrationOrder.append(id)
        return id
    }

    /// Removes and returns the registration's OPRF key, if the id exists, belongs to `account`
    /// and has not expired. Taken even when it does not match: an id is tried at most once.
    func takeRegistration(_ id: String, account: [UInt8]) -> Ristretto255.Scalar? {
        guard let pending = registrations.removeValue(forKey: id), pending.account == account, pending.expires > now() else {
            return nil
        }
        return pending.oprfKey
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
