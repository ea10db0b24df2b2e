@testable import CofferCrypto
import Foundation
import Testing
@testable import CofferVault

/// Issue 12, finding 1: an attacker who knows only the vault URL and the account name (both in
/// the clear in the bucket's vault slot) tries to test password guesses offline by combining
/// one counted login with OPRF evaluations from other endpoints. Each variant must fail: the
/// attacker may test at most one guess per counted attempt.
@Suite("Offline guessing through the vault's endpoints")
struct OfflineGuessAttackTests {
    static let password = "sunshine7"
    /// The attacker's dictionary; the password is in it.
    static let dictionary = (0..<24).map { "guess-\($0)" } + [password, "after-1", "after-2"]

    /// What an abandoned login leaves the attacker: KE2's masked server key and envelope.
    struct Captured {
        let maskingNonce: [UInt8]
        let maskedResponse: [UInt8]
    }

    /// One OPRF evaluation of a guess, blinded, as some endpoint returned it.
    struct Evaluation {
        let guess: String
        let blind: Ristretto255.Scalar
        let evaluated: Ristretto255.Element
        let serverPublicKey: Ristretto255.Element
    }

    /// Sends one login start and abandons it: the one attempt the vault counts.
    static func captureOneLogin(_ vault: VaultFixture, _ account: [UInt8], service: VaultService? = nil) async throws -> Captured {
        let (ke2Bytes, _) = try await (service ?? vault.service).loginStart(account: account, ke1: try vault.ke1("anything"))
        let ke2 = try OPAQUE.KE2(bytes: ke2Bytes)
        return Captured(maskingNonce: ke2.maskingNonce, maskedResponse: ke2.maskedResponse)
    }

    /// Has `register/start` evaluate a guess: no token, no counter.
    static func evaluateThroughRegistration(_ vault: VaultFixture, _ account: [UInt8], _ guess: String) async throws -> Evaluation {
        let blind = Ristretto255.Scalar.random(using: SystemRandom())
        let blinded = try OPRF.blind(input: SecureBytes(copying: Array(guess.utf8)), blind: blind)
        let answer = try OPAQUE.RegistrationResponse(
            bytes: try await vault.service.registerStart(account: account, request: OPAQUE.RegistrationRequest(blindedMessage: blinded).serialized).response)
        return Evaluation(guess: guess, blind: blind, evaluated: answer.evaluatedMessage, serverPublicKey: answer.serverPublicKey)
    }

    /// Has `login/start` evaluate a guess (one counted attempt, on a phantom row before the
    /// victim registers).
    static func evaluateThroughLogin(_ vault: VaultFixture, _ account: [UInt8], _ guess: String, serverPublicKey: Ristretto255.Element) async throws -> Evaluation {
        let blind = Ristretto255.Scalar.random(using: SystemRandom())
        let blinded = try OPRF.blind(input: SecureBytes(copying: Array(guess.utf8)), blind: blind)
        let ke1 = OPAQUE.KE1(
            blindedMessage: blinded, clientNonce: SystemRandom().bytes(OPAQUE.nonceLength),
            clientPublicKeyshare: Ristretto255.Element(generatorTimes: Ristretto255.Scalar.random(using: SystemRandom())))
        let (ke2, _) = try await vault.service.loginStart(account: account, ke1: ke1.serialized)
        return Evaluation(
            guess: guess, blind: blind, evaluated: try OPAQUE.KE2(bytes: ke2).evaluatedMessage, serverPublicKey: serverPublicKey)
    }

    /// The offline step, one key stretching per guess: the guess is right when unmasking KE2
    /// with the masking key it yields gives the vault's public key.
    static func crack(_ captured: Captured, _ evaluations: [Evaluation]) throws -> String? {
        for e in evaluations {
            let randomized = try OPAQUE.randomizedPassword(
                password: SecureBytes(copying: Array(e.guess.utf8)), blind: e.blind, evaluatedElement: e.evaluated,
                keyStretching: VaultFixture.configuration.keyStretching)
            let pad = OPAQUE.credentialResponsePad(
                maskingKey: OPAQUE.maskingKey(randomizedPassword: randomized), maskingNonce: captured.maskingNonce)
            let unmasked = pad.xor(captured.maskedResponse).copyBytes()
            if Array(unmasked[..<OPAQUE.elementLength]) == e.serverPublicKey.bytes { return e.guess }
        }
        return nil
    }

    /// A control: the offline check itself is right, so a nil from `crack` means the endpoints
    /// gave nothing usable, not that the check is broken. With the password (what the owner
    /// has) a real login's own evaluation does unmask its KE2.
    @Test func theOfflineCheckRecognisesTheRightEvaluation() async throws {
        let vault = try VaultFixture()
        let account = Array("victim".utf8)
        try await vault.register("victim", password: Self.password)
        let blind = Ristretto255.Scalar.random(using: SystemRandom())
        let blinded = try OPRF.blind(input: SecureBytes(copying: Array(Self.password.utf8)), blind: blind)
        let ke1 = OPAQUE.KE1(
            blindedMessage: blinded, clientNonce: SystemRandom().bytes(OPAQUE.nonceLength),
            clientPublicKeyshare: Ristretto255.Element(generatorTimes: Ristretto255.Scalar.random(using: SystemRandom())))
        let ke2 = try OPAQUE.KE2(bytes: try await vault.service.loginStart(account: account, ke1: ke1.serialized).ke2)
        let serverKey = Ristretto255.Element(generatorTimes: vault.keys.privateKey)
        let own = Evaluation(guess: Self.password, blind: blind, evaluated: ke2.evaluatedMessage, serverPublicKey: serverKey)
        let wrong = Evaluation(guess: "nope", blind: blind, evaluated: ke2.evaluatedMessage, serverPublicKey: serverKey)
        let captured = Captured(maskingNonce: ke2.maskingNonce, maskedResponse: ke2.maskedResponse)
        #expect(try Self.crack(captured, [wrong, own]) == Self.password)
    }

    /// After registration: one abandoned login, then every guess through `register/start`.
    @Test func registerStartAfterRegistrationTestsNoGuess() async throws {
        let vault = try VaultFixture()
        let account = Array("victim".utf8)
        try await vault.register("victim", password: Self.password)
        let captured = try await Self.captureOneLogin(vault, account)
        var evaluations: [Evaluation] = []
        for guess in Self.dictionary { evaluations.append(try await Self.evaluateThroughRegistration(vault, account, guess)) }
        #expect(try Self.crack(captured, evaluations) == nil)
        // It cost the attacker one attempt and the vault counted exactly that.
        #expect(try vault.storedAccount("victim")?.failures == 1)
    }

    /// Before registration: evaluations gathered through `register/start` and `login/start`
    /// while the name is unknown, then the victim registers, then one abandoned login.
    @Test func evaluationsGatheredBeforeRegistrationTestNoGuess() async throws {
        let vault = try VaultFixture()
        let account = Array("victim".utf8)
        let serverKey = Ristretto255.Element(generatorTimes: vault.keys.privateKey)
        var evaluations: [Evaluation] = []
        for guess in Self.dictionary { evaluations.append(try await Self.evaluateThroughRegistration(vault, account, guess)) }
        // Login starts on the phantom row: counted there, and a registration over a phantom
        // starts afresh; they must be worth nothing against the real record.
        for guess in Self.dictionary.suffix(5) {
            evaluations.append(try await Self.evaluateThroughLogin(vault, account, guess, serverPublicKey: serverKey))
        }
        try await vault.register("victim", password: Self.password)
        let captured = try await Self.captureOneLogin(vault, account)
        #expect(try Self.crack(captured, evaluations) == nil)
    }

    /// Many registration starts in parallel for the registered name, then a password change by
    /// the owner: none of the attacker's evaluations is under the key the new record uses.
    @Test func parallelRegisterStartsAroundAPasswordChangeTestNoGuess() async throws {
        let vault = try VaultFixture()
        let account = Array("victim".utf8)
        try await vault.register("victim", password: "old password")
        let evaluations = try await withThrowingTaskGroup(of: Evaluation.self) { group in
            for guess in Self.dictionary {
                group.addTask { try await Self.evaluateThroughRegistration(vault, account, guess) }
            }
            let token = try await vault.login("victim", password: "old password").token
            _ = try await vault.register("victim", password: Self.password, token: token)
            var all: [Evaluation] = []
            for try await e in group { all.append(e) }
            return all
        }
        let captured = try await Self.captureOneLogin(vault, account)
        #expect(try Self.crack(captured, evaluations) == nil)
    }
}
