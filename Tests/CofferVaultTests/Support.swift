import CofferCrypto
import Foundation
@testable import CofferVault

/// A vault in a fresh temporary folder, with cheap key stretching (production uses Argon2id
/// with 256 MiB, far too slow for dozens of logins) and a clock the test moves.
final class VaultFixture: Sendable {
    static let configuration = OPAQUEConfiguration(context: Array("coffer-vault-v1".utf8), keyStretching: .identity)

    let directory: String
    let keys: VaultKeys
    let clock = TestClock()
    let service: VaultService
    let client = OPAQUEClient(configuration: VaultFixture.configuration)

    init(maxAttempts: Int = 10, maxLifetimeAttempts: Int? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-vault-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        keys = try VaultKeys.loadOrCreate(path: directory + "/vault.key")
        service = try Self.openService(
            directory: directory, keys: keys, clock: clock, maxAttempts: maxAttempts, maxLifetimeAttempts: maxLifetimeAttempts)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    static func openService(
        directory: String, keys: VaultKeys, clock: TestClock, maxAttempts: Int, maxLifetimeAttempts: Int? = nil
    ) throws -> VaultService {
        try VaultService(
            store: VaultStore(path: directory + "/vault.db"), keys: keys, configuration: configuration,
            maxAttempts: maxAttempts, maxLifetimeAttempts: maxLifetimeAttempts, now: { clock.now })
    }

    /// A second service over the same files, as after a restart.
    func reopen(maxAttempts: Int = 10) throws -> VaultService {
        try Self.openService(
            directory: directory, keys: try VaultKeys.loadOrCreate(path: directory + "/vault.key"), clock: clock,
            maxAttempts: maxAttempts)
    }

    /// Runs the client's side of a registration and the server's start; returns the record,
    /// the client's view and the registration id `registerFinish` needs.
    func registration(_ account: String, password: String, service: VaultService? = nil) async throws
        -> (record: [UInt8], exportKey: SecureBytes, registration: String)
    {
        let service = service ?? self.service
        let (request, state) = try client.startRegistration(password: SecureBytes(copying: Array(password.utf8)))
        let (response, registration) = try await service.registerStart(account: Array(account.utf8), request: request.serialized)
        let result = try client.finishRegistration(OPAQUE.RegistrationResponse(bytes: response), state: state)
        return (result.record.serialized, result.exportKey, registration)
    }

    @discardableResult
    func register(_ account: String, password: String, sealedKey: [UInt8] = Array("sealed".utf8), token: String? = nil) async throws
        -> VaultService.RegistrationOutcome
    {
        let (record, _, registration) = try await registration(account, password: password)
        return try await service.registerFinish(
            account: Array(account.utf8), registration: registration, record: record, sealedKey: sealedKey, token: token).outcome
    }

    /// A full login. A wrong password cannot open the envelope, so the client sends a random
    /// KE3 (what a guesser that does not give up would do).
    func login(_ account: String, password: String, service: VaultService? = nil) async throws -> VaultService.LoginSuccess {
        let service = service ?? self.service
        let (ke1, state) = try client.startLogin(password: SecureBytes(copying: Array(password.utf8)))
        let (ke2, session) = try await service.loginStart(account: Array(account.utf8), ke1: ke1.serialized)
        let ke3: [UInt8]
        if let result = try? client.finishLogin(OPAQUE.KE2(bytes: ke2), state: state) {
            ke3 = result.ke3.serialized
        } else {
            ke3 = SystemRandom().bytes(OPAQUE.KE3.length)
        }
        return try await service.loginFinish(account: Array(account.utf8), session: session, ke3: ke3)
    }

    /// The VaultError a login throws, or nil if it succeeds.
    func loginError(_ account: String, password: String, service: VaultService? = nil) async -> VaultError? {
        do {
            _ = try await login(account, password: password, service: service)
            return nil
        } catch let error as VaultError {
            return error
        } catch {
            return .storage("unexpected \(error)")
        }
    }

    /// The account's row as the database holds it, read over a connection of its own.
    func storedAccount(_ account: String) throws -> VaultAccount? {
        try VaultStore(path: directory + "/vault.db").transaction { try $0.account(Array(account.utf8)) }
    }

    func ke1(_ password: String = "guess") throws -> [UInt8] {
        try client.startLogin(password: SecureBytes(copying: Array(password.utf8))).ke1.serialized
    }
}

/// A clock that moves only when told.
final class TestClock: @unchecked Sendable {
    private let lock = Lock()
    private var current = Date(timeIntervalSince1970: 1_800_000_000)
    var now: Date { lock.withLock { current } }
    /// For LoginRateLimiter, which counts seconds.
    var seconds: TimeInterval { now.timeIntervalSinceReferenceDate }
    func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
}
