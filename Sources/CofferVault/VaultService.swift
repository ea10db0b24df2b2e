import CofferCrypto
import Foundation

/// Why a vault request was refused. Each case maps to one HTTP status (VaultRoutes).
public enum VaultError: Error, Equatable, Sendable {
    /// 400: malformed input (bad name, wrong message length, not a group element, …).
    case badRequest(String)
    /// 401: wrong password, or an unknown account (indistinguishable on purpose).
    case authenticationFailed(attemptsLeft: Int)
    /// 401: the login session is unknown, expired, already used or for another account.
    case invalidSession
    /// 401: a password-change token that is unknown, expired, used or for another account.
    case invalidToken
    /// 409: the account is registered and no token allows replacing it.
    case accountExists
    /// 423: too many failed logins; the account is locked for good.
    case locked
    /// 429: too many logins or registrations from the client's address (VaultRoutes refuses
    /// them before the service sees them, so nothing was counted or stored).
    case rateLimited(retryAfterSeconds: Int)
    /// 500: the database failed.
    case storage(String)
}

/// The vault's rules, independent of HTTP: OPAQUE registration and login, the attempt counter
/// and the lock, phantom rows for unknown names, sessions and password-change tokens.
///
/// Counting: every login start is a failure until its finish succeeds (a client that takes KE2
/// and never finishes has still tested one guess offline), so the start increments the counter
/// in the same transaction that issues KE2, and a successful finish resets it to 0.
public final class VaultService: Sendable {
    public static let sealedKeyLimit = 4096
    public static let accountNameLimit = 128

    public let maxAttempts: Int
    private let store: VaultStore
    private let server: OPAQUEServer
    private let fakeRecord: OPAQUE.RegistrationRecord
    private let sessions: VaultSessions

    /// - Parameters:
    ///   - configuration: `.cofferVaultV1` in production; tests pass a cheap key stretching.
    ///   - sessionLifetime: how long a login session and a password-change token stay valid.
    ///   - now: the clock for expiry (tests inject one).
    public init(
        store: VaultStore, keys: VaultKeys, configuration: OPAQUEConfiguration = .cofferVaultV1, maxAttempts: Int = 10,
        sessionLifetime: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() },
        random: any RandomSource = SystemRandom()
    ) throws(OPAQUEError) {
        precondition(maxAttempts > 0, "at least one attempt")
        self.store = store
        self.server = try OPAQUEServer(
            configuration: configuration, privateKey: keys.privateKey, oprfSeed: keys.oprfSeed, random: random)
        self.fakeRecord = keys.fakeRecord
        self.maxAttempts = maxAttempts
        self.sessions = VaultSessions(lifetime: sessionLifetime, now: now, random: random)
    }

    // MARK: Registration

    /// Answers a registration request. Touches no state, so it reveals nothing about the name.
    public func registerStart(account: [UInt8], request: [UInt8]) throws(VaultError) -> [UInt8] {
        try Self.check(account: account)
        do throws(OPAQUEError) {
            let request = try OPAQUE.RegistrationRequest(bytes: request)
            return try server.createRegistrationResponse(request, credentialIdentifier: account).serialized
        } catch {
            throw .badRequest("invalid registration request: \(error)")
        }
    }

    public enum RegistrationOutcome: Sendable, Equatable {
        /// A new account (or one that was only a phantom row).
        case created
        /// A password change: record and sealed key replaced.
        case replaced
    }

    /// Stores the record and sealed key. An account that is registered is replaced only with a
    /// `token` from a recent successful login of it.
    public func registerFinish(account: [UInt8], record: [UInt8], sealedKey: [UInt8], token: String?) async throws(VaultError) -> RegistrationOutcome {
        try Self.check(account: account)
        do throws(OPAQUEError) {
            _ = try OPAQUE.RegistrationRecord(bytes: record)
        } catch {
            throw .badRequest("invalid registration record: \(error)")
        }
        guard (1...Self.sealedKeyLimit).contains(sealedKey.count) else {
            throw .badRequest("sealed_key must be 1 to \(Self.sealedKeyLimit) bytes")
        }
        // Spent before the transaction (an actor cannot be awaited inside it); a token is only
        // ever issued for a registered account, so spending it on a new one loses nothing.
        var authorized = false
        if let token {
            guard await sessions.redeemToken(token, account: account) else { throw .invalidToken }
            authorized = true
        }
        return try withStore { (tx) throws -> RegistrationOutcome in
            let existing = try tx.account(account)
            if let existing, existing.registered, !authorized { throw VaultError.accountExists }
            // A fresh start: a phantom's counter belonged to whoever probed the name, and a
            // password change proves the password.
            try tx.put(
                account,
                VaultAccount(
                    registered: true, record: record, sealedKey: sealedKey, failures: 0, locked: false,
                    generation: (existing?.generation ?? 0) + 1))
            return existing?.registered == true ? .replaced : .created
        }
    }

    // MARK: Login

    /// Counts the attempt and answers KE1 from the account's record, or from the fake record
    /// for a name nobody registered (with a phantom row, so that it counts and locks the same).
    public func loginStart(account: [UInt8], ke1: [UInt8]) async throws(VaultError) -> (ke2: [UInt8], session: String) {
        try Self.check(account: account)
        let message: OPAQUE.KE1
        do throws(OPAQUEError) {
            message = try OPAQUE.KE1(bytes: ke1)
        } catch {
            throw .badRequest("invalid KE1: \(error)")
        }
        // The lock is written and committed before refusing, so the closure returns nil
        // rather than throwing (a throw rolls the transaction back).
        let started = try withStore { (tx) throws -> (OPAQUE.KE2, OPAQUEServer.LoginState, Int64)? in
            var row =
                try tx.account(account)
                ?? VaultAccount(registered: false, record: [], sealedKey: [], failures: 0, locked: false, generation: 0)
            if row.locked || row.failures >= maxAttempts {
                // The limit was reached by a start that never finished: that guess is final now.
                if !row.locked { try tx.setCounters(account, failures: row.failures, locked: true) }
                return nil
            }
            row.failures += 1
            try tx.put(account, row)
            let record = row.registered ? try Self.parseRecord(row.record) : fakeRecord
            do throws(OPAQUEError) {
                let (ke2, state) = try server.startLogin(message, record: record, credentialIdentifier: account)
                return (ke2, state, row.generation)
            } catch {
                // Rolls the increment back: no KE2 leaves, so no guess was made.
                throw VaultError.badRequest("invalid KE1: \(error)")
            }
        }
        guard let (ke2, state, generation) = started else { throw .locked }
        let session = await sessions.add(account: account, state: state, generation: generation)
        return (ke2.serialized, session)
    }

    public struct LoginSuccess: Sendable {
        public let sealedKey: [UInt8]
        /// After the reset: the full allowance.
        public let attemptsLeft: Int
        /// Allows one password change (`registerFinish`) within the session lifetime.
        public let token: String
    }

    /// Checks KE3. On success resets the counter and releases the sealed key; on failure the
    /// attempt stays counted (it was counted at the start) and the lock is set at the limit.
    public func loginFinish(account: [UInt8], session: String, ke3: [UInt8]) async throws(VaultError) -> LoginSuccess {
        try Self.check(account: account)
        let message: OPAQUE.KE3
        do throws(OPAQUEError) {
            message = try OPAQUE.KE3(bytes: ke3)
        } catch {
            throw .badRequest("invalid KE3: \(error)")
        }
        guard let login = await sessions.take(session, account: account) else { throw .invalidSession }
        let verified = (try? server.finishLogin(message, state: login.state)) != nil
        enum Outcome { case success([UInt8]), failure(attemptsLeft: Int), locked }
        // A failure commits the lock before it is reported, so the closure returns it.
        let outcome = try withStore { (tx) throws -> Outcome in
            // The row exists: the start wrote it, and rows are never deleted.
            guard let row = try tx.account(account) else { throw VaultError.invalidSession }
            if row.locked { return .locked }
            // A record replaced since the start (password change) invalidates the login.
            if verified && row.registered && row.generation == login.generation {
                try tx.setCounters(account, failures: 0, locked: false)
                return .success(row.sealedKey)
            }
            if row.failures >= maxAttempts { try tx.setCounters(account, failures: row.failures, locked: true) }
            return .failure(attemptsLeft: max(0, maxAttempts - row.failures))
        }
        let sealedKey: [UInt8]
        switch outcome {
        case .success(let key): sealedKey = key
        case .failure(let attemptsLeft): throw .authenticationFailed(attemptsLeft: attemptsLeft)
        case .locked: throw .locked
        }
        let token = await sessions.issueToken(account: account)
        return LoginSuccess(sealedKey: sealedKey, attemptsLeft: maxAttempts, token: token)
    }

    // MARK: Helpers

    /// 1–128 bytes of UTF-8.
    static func check(account: [UInt8]) throws(VaultError) {
        guard (1...accountNameLimit).contains(account.count) else {
            throw .badRequest("the account name must be 1 to \(accountNameLimit) bytes")
        }
        guard String(validating: account, as: UTF8.self) != nil else { throw .badRequest("the account name is not UTF-8") }
    }

    private static func parseRecord(_ bytes: [UInt8]) throws(VaultError) -> OPAQUE.RegistrationRecord {
        do throws(OPAQUEError) {
            return try OPAQUE.RegistrationRecord(bytes: bytes)
        } catch {
            throw .storage("a stored record is damaged: \(error)")
        }
    }

    /// Runs a transaction, mapping database failures to `.storage`.
    private func withStore<R>(_ body: (VaultStore.Transaction) throws -> R) throws(VaultError) -> R {
        do {
            return try store.transaction { tx in try body(tx) }
        } catch let error as VaultError {
            throw error
        } catch {
            throw .storage("\(error)")
        }
    }
}
