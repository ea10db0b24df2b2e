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
    /// 410: a registration id that is unknown, expired, used or for another account.
    case invalidRegistration
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

/// The vault's rules, independent of HTTP: OPAQUE registration and login, the attempt counters
/// and the lock, phantom rows for unknown names, sessions and password-change tokens
/// (FORMAT.md §15–16).
///
/// OPRF keys: every registration draws a fresh random OPRF key at `registerStart`, keeps it in
/// memory under a single-use registration id, and `registerFinish` stores it with the record,
/// sealed under a key derived from vault.key. So the only evaluation under the key a record
/// answers to is the one its own registration received: a `registerStart` from anyone else, at
/// any time, is answered under a key no record will ever use. Unknown names (and legacy rows
/// from version 1) answer logins under the key derived from the OPRF seed, which no
/// registration uses any more.
///
/// Counting: every login start is a failure until its finish succeeds (a client that takes KE2
/// and never finishes has still tested one guess offline), so the start increments the counters
/// in the same transaction that issues KE2, and a successful finish takes back only its own
/// start. Nothing an attacker can do without the password resets a counter: `failures` (since
/// the last password change) locks at `maxAttempts`, `lifetimeFailures` (never reset) at
/// `maxLifetimeAttempts`.
public final class VaultService: Sendable {
    public static let sealedKeyLimit = 4096
    public static let accountNameLimit = 128

    /// Wrong attempts allowed per password (since the last registration of the account).
    public let maxAttempts: Int
    /// Wrong attempts allowed over the account's life, across password changes.
    public let maxLifetimeAttempts: Int
    private let store: VaultStore
    private let server: OPAQUEServer
    private let fakeRecordBytes: [UInt8]
    private let sealer: SealedOPRFKey
    /// Opened (and failing) in place of a sealed OPRF key for rows that have none, so every
    /// login start does the same work.
    private let standInSealedKey: [UInt8]
    private let sessions: VaultSessions
    private let random: any RandomSource
    private let now: @Sendable () -> Date

    /// - Parameters:
    ///   - configuration: `.cofferVaultV1` in production; tests pass a cheap key stretching.
    ///   - maxLifetimeAttempts: nil for 10 × `maxAttempts`.
    ///   - sessionLifetime: how long a registration, a login session and a password-change
    ///     token stay valid.
    ///   - now: the clock for expiry and failure times (tests inject one).
    public init(
        store: VaultStore, keys: VaultKeys, configuration: OPAQUEConfiguration = .cofferVaultV1, maxAttempts: Int = 10,
        maxLifetimeAttempts: Int? = nil, sessionLifetime: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() },
        random: any RandomSource = SystemRandom()
    ) throws(OPAQUEError) {
        let maxLifetimeAttempts = maxLifetimeAttempts ?? 10 * maxAttempts
        precondition(maxAttempts > 0 && maxLifetimeAttempts >= maxAttempts, "at least one attempt, and no fewer for a lifetime")
        self.store = store
        self.server = try OPAQUEServer(
            configuration: configuration, privateKey: keys.privateKey, oprfSeed: keys.oprfSeed, random: random)
        self.fakeRecordBytes = keys.fakeRecord.serialized
        self.sealer = SealedOPRFKey(server: server)
        self.standInSealedKey = sealer.seal(
            Ristretto255.Scalar.random(using: random), account: [], record: keys.fakeRecord.serialized, random: random)
        self.maxAttempts = maxAttempts
        self.maxLifetimeAttempts = maxLifetimeAttempts
        self.random = random
        self.now = now
        self.sessions = VaultSessions(lifetime: sessionLifetime, now: now, random: random)
    }

    // MARK: Registration

    /// Answers a registration request under a fresh random OPRF key, kept for `registerFinish`
    /// under the returned registration id. Reads no account state and does the same work for
    /// every name, so it reveals nothing about the name; and since the key is new, the answer
    /// helps test no guess against any stored record.
    public func registerStart(account: [UInt8], request: [UInt8]) async throws(VaultError) -> (response: [UInt8], registration: String) {
        try Self.check(account: account)
        let parsed: OPAQUE.RegistrationRequest
        do throws(OPAQUEError) {
            parsed = try OPAQUE.RegistrationRequest(bytes: request)
        } catch {
            throw .badRequest("invalid registration request: \(error)")
        }
        let source: any RandomSource = random
        let oprfKey = Ristretto255.Scalar.random(using: source)
        let response = server.createRegistrationResponse(parsed, oprfKey: oprfKey)
        let registration = await sessions.addRegistration(account: account, oprfKey: oprfKey)
        return (response.serialized, registration)
    }

    public enum RegistrationOutcome: Sendable, Equatable {
        /// A new account (or one that was only a phantom row).
        case created
        /// A password change: record, OPRF key and sealed key replaced.
        case replaced
    }

    /// Stores the record, the registration's OPRF key and the sealed key. An account that is
    /// registered is replaced only with a `token` from a recent successful login of it, and
    /// never once it is locked. A replacement returns a fresh token: whoever holds it has just
    /// set the password, and a client that re-registers a legacy account at login keeps the
    /// power to change the password in the same session.
    public func registerFinish(
        account: [UInt8], registration: String, record: [UInt8], sealedKey: [UInt8], token: String?
    ) async throws(VaultError) -> (outcome: RegistrationOutcome, token: String?) {
        try Self.check(account: account)
        do throws(OPAQUEError) {
            _ = try OPAQUE.RegistrationRecord(bytes: record)
        } catch {
            throw .badRequest("invalid registration record: \(error)")
        }
        guard (1...Self.sealedKeyLimit).contains(sealedKey.count) else {
            throw .badRequest("sealed_key must be 1 to \(Self.sealedKeyLimit) bytes")
        }
        // The record was computed from this registration's evaluation: it is only usable
        // under this key.
        guard let oprfKey = await sessions.takeRegistration(registration, account: account) else { throw .invalidRegistration }
        // Spent before the transaction (an actor cannot be awaited inside it); a token is only
        // ever issued for a registered account, so spending it on a new one loses nothing.
        var authorized = false
        if let token {
            guard await sessions.redeemToken(token, account: account) else { throw .invalidToken }
            authorized = true
        }
        let sealedOPRFKey = sealer.seal(oprfKey, account: account, record: record, random: random)
        let outcome = try withStore { (tx) throws -> RegistrationOutcome in
            let existing = try tx.account(account)
            if let existing, existing.registered {
                guard authorized else { throw VaultError.accountExists }
                // Locked for good: a lock reached while the token was out is not undone.
                if existing.locked { throw VaultError.locked }
                // A password change proves the password, so it may start a new allowance (a
                // new password shares nothing with the old: new key, new record). The same
                // password registered again gets one too, which is why the lifetime count goes
                // on; so do the failures the owner has not been told of yet.
                var row = existing
                row.record = record
                row.sealedKey = sealedKey
                row.sealedOPRFKey = sealedOPRFKey
                // Re-registering a legacy account (done automatically, with the same password)
                // must not forgive the guesses already made against that password.
                if !existing.isLegacy { row.failures = 0 }
                row.generation += 1
                try tx.put(account, row)
                return .replaced
            }
            // A fresh start: a phantom's counters belonged to whoever probed the name, and
            // those probes were answered under the seed-derived key and the fake record, which
            // tell nothing about this registration.
            var row = VaultAccount.phantom
            row.registered = true
            row.record = record
            row.sealedKey = sealedKey
            row.sealedOPRFKey = sealedOPRFKey
            row.loginStarts = existing?.loginStarts ?? 0
            row.generation = (existing?.generation ?? 0) + 1
            try tx.put(account, row)
            return .created
        }
        guard outcome == .replaced else { return (outcome, nil) }
        return (outcome, await sessions.issueToken(account: account))
    }

    // MARK: Login

    /// Counts the attempt and answers KE1 from the account's record under its own OPRF key, or
    /// from the fake record under the seed-derived key for a name nobody registered (with a
    /// phantom row, so that it counts and locks the same).
    public func loginStart(account: [UInt8], ke1: [UInt8]) async throws(VaultError) -> (ke2: [UInt8], session: String) {
        try Self.check(account: account)
        let message: OPAQUE.KE1
        do throws(OPAQUEError) {
            message = try OPAQUE.KE1(bytes: ke1)
        } catch {
            throw .badRequest("invalid KE1: \(error)")
        }
        let startedAt = Int64(now().timeIntervalSince1970)
        // The lock is written and committed before refusing, so the closure returns nil
        // rather than throwing (a throw rolls the transaction back).
        typealias Started = (ke2: OPAQUE.KE2, state: OPAQUEServer.LoginState, generation: Int64, number: Int64, previous: Int64)
        let started = try withStore { (tx) throws -> Started? in
            var row = try tx.account(account) ?? .phantom
            if row.locked || isOverLimit(row) {
                // The limit was reached by a start that never finished: that guess is final now.
                if !row.locked { try tx.lock(account) }
                return nil
            }
            let previous = row.lastFailureAt
            row.failures += 1
            row.lifetimeFailures += 1
            row.unreportedFailures += 1
            row.lastFailureAt = startedAt
            row.loginStarts += 1
            try tx.put(account, row)
            // The fake record is parsed from its bytes too: a registered name must not answer
            // a few microseconds later than an unknown one.
            let record = try Self.parseRecord(row.registered ? row.record : fakeRecordBytes)
            let key = try oprfKey(for: row, account: account, record: record)
            do throws(OPAQUEError) {
                let (ke2, state) = try server.startLogin(message, record: record, oprfKey: key)
                return (ke2, state, row.generation, row.loginStarts, previous)
            } catch {
                // Rolls the increment back: no KE2 leaves, so no guess was made.
                throw VaultError.badRequest("invalid KE1: \(error)")
            }
        }
        guard let started else { throw .locked }
        let session = await sessions.add(
            account: account, state: started.state, generation: started.generation, startNumber: started.number,
            previousFailureAt: started.previous)
        return (started.ke2.serialized, session)
    }

    public struct LoginSuccess: Sendable {
        public let sealedKey: [UInt8]
        /// Wrong attempts left before the account locks: the smaller of what is left for this
        /// password and for the account's life.
        public let attemptsLeft: Int
        /// Allows one password change (`registerFinish`) within the session lifetime.
        public let token: String
        /// Counted starts since the previous successful login that did not succeed: wrong
        /// passwords, abandoned logins, anyone's.
        public let failedAttemptsSinceLastLogin: Int
        /// When the latest of them started (nil when there were none, or the time is unknown).
        public let lastFailedAt: Date?
        /// The account was registered by a version-1 vault under the seed-derived OPRF key:
        /// the owner should register the same password again with `token`.
        public let needsReregistration: Bool
    }

    /// Checks KE3. On success takes back the login's own count and releases the sealed key; on
    /// failure the attempt stays counted (it was counted at the start) and the lock is set at
    /// a limit.
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
        enum Outcome { case success(VaultAccount, reported: Int, lastFailedAt: Int64), failure(attemptsLeft: Int), locked }
        // A failure commits the lock before it is reported, so the closure returns it.
        let outcome = try withStore { (tx) throws -> Outcome in
            // The row exists: the start wrote it, and rows are never deleted.
            guard var row = try tx.account(account) else { throw VaultError.invalidSession }
            if row.locked { return .locked }
            // A record replaced since the start (password change) invalidates the login.
            if verified && row.registered && row.generation == login.generation {
                row.failures = max(0, row.failures - 1)
                row.lifetimeFailures = max(0, row.lifetimeFailures - 1)
                row.unreportedFailures = max(0, row.unreportedFailures - 1)
                // This start was the latest: the latest failure is the one before it.
                if row.loginStarts == login.startNumber { row.lastFailureAt = login.previousFailureAt }
                let reported = row.unreportedFailures
                let lastFailedAt = row.lastFailureAt
                row.unreportedFailures = 0
                try tx.put(account, row)
                return .success(row, reported: reported, lastFailedAt: lastFailedAt)
            }
            if isOverLimit(row) { try tx.lock(account) }
            return .failure(attemptsLeft: attemptsLeft(row))
        }
        switch outcome {
        case .success(let row, let reported, let lastFailedAt):
            let token = await sessions.issueToken(account: account)
            return LoginSuccess(
                sealedKey: row.sealedKey, attemptsLeft: attemptsLeft(row), token: token, failedAttemptsSinceLastLogin: reported,
                lastFailedAt: reported > 0 && lastFailedAt > 0 ? Date(timeIntervalSince1970: TimeInterval(lastFailedAt)) : nil,
                needsReregistration: row.isLegacy)
        case .failure(let attemptsLeft): throw .authenticationFailed(attemptsLeft: attemptsLeft)
        case .locked: throw .locked
        }
    }

    // MARK: Helpers

    private func isOverLimit(_ row: VaultAccount) -> Bool {
        row.failures >= maxAttempts || row.lifetimeFailures >= maxLifetimeAttempts
    }

    private func attemptsLeft(_ row: VaultAccount) -> Int {
        max(0, min(maxAttempts - row.failures, maxLifetimeAttempts - row.lifetimeFailures))
    }

    /// The OPRF key the row's record answers to. Both the seed derivation and an AEAD open run
    /// for every row (the open of a stand-in fails for rows without a key), so the time spent
    /// does not tell a registered account from an unknown one.
    private func oprfKey(for row: VaultAccount, account: [UInt8], record: OPAQUE.RegistrationRecord) throws(VaultError) -> Ristretto255.Scalar {
        let derived: Ristretto255.Scalar
        do throws(OPAQUEError) {
            derived = try server.derivedOPRFKey(credentialIdentifier: account)
        } catch {
            throw .storage("cannot derive an OPRF key: \(error)")
        }
        let hasOwnKey = row.registered && !row.isLegacy
        let opened = sealer.open(hasOwnKey ? row.sealedOPRFKey : standInSealedKey, account: account, record: record.serialized)
        guard hasOwnKey else { return derived }
        guard let opened else {
            throw .storage(
                "the sealed OPRF key of account \(String(decoding: account, as: UTF8.self)) does not open under vault.key (damaged, or another vault's)")
        }
        return opened
    }

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
