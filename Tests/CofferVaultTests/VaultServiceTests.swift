import CofferCrypto
import Foundation
import Testing
@testable import CofferVault

@Suite("VaultService")
struct VaultServiceTests {
    @Test func registerThenLoginReleasesTheSealedKey() async throws {
        let vault = try VaultFixture()
        #expect(try await vault.register("alice", password: "correct horse", sealedKey: [1, 2, 3]) == .created)
        let success = try await vault.login("alice", password: "correct horse")
        #expect(success.sealedKey == [1, 2, 3])
        #expect(success.attemptsLeft == 10)
        #expect(success.token.count == 64 && success.token.allSatisfy(\.isHexDigit))
    }

    @Test func wrongPasswordsCountDownThenLockForGood() async throws {
        let vault = try VaultFixture()
        try await vault.register("bob", password: "right")
        for expected in stride(from: 9, through: 0, by: -1) {
            #expect(await vault.loginError("bob", password: "wrong") == .authenticationFailed(attemptsLeft: expected))
        }
        // Locked: no KE2 is issued, and even the right password is refused.
        await #expect(throws: VaultError.locked) { try await vault.service.loginStart(account: Array("bob".utf8), ke1: try vault.ke1()) }
        #expect(await vault.loginError("bob", password: "right") == .locked)
    }

    /// Version 1 reset the counter at every successful login, so a guesser got 9 guesses
    /// between any two of the owner's logins, for ever. Now a success takes back only its own
    /// start, and tells the owner about the others.
    @Test func aSuccessfulLoginDoesNotResetTheCounter() async throws {
        let vault = try VaultFixture()
        try await vault.register("carol", password: "pw")
        for _ in 0..<5 { _ = await vault.loginError("carol", password: "no") }
        let success = try await vault.login("carol", password: "pw")
        #expect(success.attemptsLeft == 5)
        #expect(success.failedAttemptsSinceLastLogin == 5)
        #expect(await vault.loginError("carol", password: "no") == .authenticationFailed(attemptsLeft: 4))
    }

    @Test func aGuesserCannotOutlastTheOwnersLogins() async throws {
        let vault = try VaultFixture(maxAttempts: 10)
        try await vault.register("owner", password: "pw")
        var guesses = 0
        // The owner logs in every day; the guesser tries 9 times in between.
        for _ in 0..<5 {
            for _ in 0..<9 {
                guard await vault.loginError("owner", password: "guess \(guesses)") != .locked else { break }
                guesses += 1
            }
            guard (try? await vault.login("owner", password: "pw")) != nil else { break }
            vault.clock.advance(86400)
        }
        #expect(guesses == 10, "the guesser made \(guesses) guesses against one password")
        #expect(await vault.loginError("owner", password: "pw") == .locked)
    }

    @Test func theOwnerIsToldOfFailedAttemptsSinceTheLastLogin() async throws {
        let vault = try VaultFixture()
        try await vault.register("olga", password: "pw")
        let quiet = try await vault.login("olga", password: "pw")
        #expect(quiet.failedAttemptsSinceLastLogin == 0 && quiet.lastFailedAt == nil && quiet.attemptsLeft == 10)
        _ = await vault.loginError("olga", password: "no")
        vault.clock.advance(3600)
        // An abandoned start counts and is reported like a wrong password.
        _ = try await vault.service.loginStart(account: Array("olga".utf8), ke1: try vault.ke1())
        let lastFailure = vault.clock.now
        vault.clock.advance(60)
        let told = try await vault.login("olga", password: "pw")
        #expect(told.failedAttemptsSinceLastLogin == 2)
        #expect(told.lastFailedAt == Date(timeIntervalSince1970: lastFailure.timeIntervalSince1970.rounded(.down)))
        #expect(told.attemptsLeft == 8)
        // Told once: the next login has nothing new to report.
        let again = try await vault.login("olga", password: "pw")
        #expect(again.failedAttemptsSinceLastLogin == 0 && again.lastFailedAt == nil && again.attemptsLeft == 8)
    }

    @Test func aPasswordChangeStartsANewAllowanceButNotANewLifetime() async throws {
        let vault = try VaultFixture(maxAttempts: 3, maxLifetimeAttempts: 5)
        try await vault.register("pat", password: "one")
        for _ in 0..<2 { _ = await vault.loginError("pat", password: "no") }
        let token = try await vault.login("pat", password: "one").token
        #expect(try await vault.register("pat", password: "two", token: token) == .replaced)
        // 3 per password again, but only 3 left of the 5 for the account's life.
        #expect(await vault.loginError("pat", password: "no") == .authenticationFailed(attemptsLeft: 2))
        let second = try await vault.login("pat", password: "two")
        #expect(second.attemptsLeft == 2)
        #expect(try await vault.register("pat", password: "three", token: second.token) == .replaced)
        #expect(await vault.loginError("pat", password: "no") == .authenticationFailed(attemptsLeft: 1))
        #expect(await vault.loginError("pat", password: "no") == .authenticationFailed(attemptsLeft: 0))
        #expect(await vault.loginError("pat", password: "three") == .locked)
    }

    @Test func aPasswordChangeReturnsAFreshTokenForOneMoreChange() async throws {
        let vault = try VaultFixture()
        try await vault.register("tess", password: "one")
        let login = try await vault.login("tess", password: "one")
        let (record, _, registration) = try await vault.registration("tess", password: "two")
        let changed = try await vault.service.registerFinish(
            account: Array("tess".utf8), registration: registration, record: record, sealedKey: [2], token: login.token)
        #expect(changed.outcome == .replaced)
        let fresh = try #require(changed.token)
        #expect(fresh != login.token)
        #expect(try await vault.register("tess", password: "three", sealedKey: [3], token: fresh) == .replaced)
        #expect(try await vault.login("tess", password: "three").sealedKey == [3])
        await #expect(throws: VaultError.invalidToken) { try await vault.register("tess", password: "four", token: fresh) }
    }

    @Test func aLockedAccountCannotBeReplacedWithAToken() async throws {
        let vault = try VaultFixture(maxAttempts: 3)
        try await vault.register("quinn", password: "pw")
        let token = try await vault.login("quinn", password: "pw").token
        // Locked while the token is out: the lock is for good.
        for _ in 0..<3 { _ = await vault.loginError("quinn", password: "no") }
        await #expect(throws: VaultError.locked) { try await vault.register("quinn", password: "new", token: token) }
        #expect(await vault.loginError("quinn", password: "new") == .locked)
    }

    @Test func registerFinishNeedsItsOwnRegistration() async throws {
        let vault = try VaultFixture()
        let name = Array("rita".utf8)
        let (record, _, registration) = try await vault.registration("rita", password: "pw")
        await #expect(throws: VaultError.invalidRegistration) {
            try await vault.service.registerFinish(account: name, registration: String(repeating: "0", count: 64), record: record, sealedKey: [1], token: nil)
        }
        // An id made for another name is refused, and spent.
        let (_, _, other) = try await vault.registration("someone", password: "pw")
        await #expect(throws: VaultError.invalidRegistration) {
            try await vault.service.registerFinish(account: name, registration: other, record: record, sealedKey: [1], token: nil)
        }
        await #expect(throws: VaultError.invalidRegistration) {
            try await vault.service.registerFinish(account: Array("someone".utf8), registration: other, record: record, sealedKey: [1], token: nil)
        }
        #expect(try await vault.service.registerFinish(account: name, registration: registration, record: record, sealedKey: [1], token: nil).outcome == .created)
        // Single use.
        await #expect(throws: VaultError.invalidRegistration) {
            try await vault.service.registerFinish(account: name, registration: registration, record: record, sealedKey: [1], token: nil)
        }
        let (_, _, late) = try await vault.registration("late", password: "pw")
        vault.clock.advance(301)
        await #expect(throws: VaultError.invalidRegistration) {
            try await vault.service.registerFinish(account: Array("late".utf8), registration: late, record: record, sealedKey: [1], token: nil)
        }
        #expect(try vault.storedAccount("late") == nil)
    }

    /// The same blinded request gets a different answer at every start, for a registered name
    /// as for an unknown one, and never the seed-derived one the logins of unknown names use.
    @Test func registerStartAnswersUnderAFreshKeyEveryTime() async throws {
        let vault = try VaultFixture()
        try await vault.register("sam", password: "pw")
        let (request, _) = try vault.client.startRegistration(password: SecureBytes(copying: Array("guess".utf8)))
        let server = try vault.keys.server(configuration: VaultFixture.configuration)
        for name in ["sam", "nobody-at-all"] {
            let account = Array(name.utf8)
            let seeded = try server.createRegistrationResponse(request, credentialIdentifier: account).serialized
            let first = try await vault.service.registerStart(account: account, request: request.serialized)
            let second = try await vault.service.registerStart(account: account, request: request.serialized)
            #expect(first.response != second.response)
            #expect(first.response != seeded && second.response != seeded)
            // The server key (the last 32 bytes) is the vault's either way.
            #expect(first.response.suffix(32) == seeded.suffix(32))
            #expect(first.registration != second.registration)
        }
    }

    @Test func anAbandonedLoginCountsAsAFailure() async throws {
        let vault = try VaultFixture(maxAttempts: 3)
        try await vault.register("dave", password: "pw")
        _ = try await vault.service.loginStart(account: Array("dave".utf8), ke1: try vault.ke1())
        #expect(await vault.loginError("dave", password: "no") == .authenticationFailed(attemptsLeft: 1))
        _ = try await vault.service.loginStart(account: Array("dave".utf8), ke1: try vault.ke1())
        // The third start never finished: the limit is reached, and the next start locks.
        #expect(await vault.loginError("dave", password: "pw") == .locked)
    }

    @Test func countersSurviveAReopen() async throws {
        let vault = try VaultFixture()
        try await vault.register("erin", password: "pw", sealedKey: [9])
        for _ in 0..<3 { _ = await vault.loginError("erin", password: "no") }
        let reopened = try vault.reopen()
        #expect(await vault.loginError("erin", password: "no", service: reopened) == .authenticationFailed(attemptsLeft: 6))
        // Same key file, so the record still verifies.
        #expect(try await vault.login("erin", password: "pw", service: reopened).sealedKey == [9])
    }

    @Test func parallelLoginStartsNeverExceedTheLimit() async throws {
        let vault = try VaultFixture()
        try await vault.register("frank", password: "pw")
        let ke1s = try (0..<30).map { _ in try vault.ke1() }
        let service = vault.service
        let issued = await withTaskGroup(of: Bool.self) { group in
            for ke1 in ke1s {
                group.addTask {
                    do {
                        _ = try await service.loginStart(account: Array("frank".utf8), ke1: ke1)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(issued == 10)
        #expect(await vault.loginError("frank", password: "pw") == .locked)
    }

    @Test func parallelStartsAcrossTwoConnectionsNeverExceedTheLimit() async throws {
        // Two stores on one file: only SQLite's BEGIN IMMEDIATE keeps them apart.
        let vault = try VaultFixture()
        try await vault.register("grace", password: "pw")
        let services = [vault.service, try vault.reopen()]
        let ke1s = try (0..<30).map { _ in try vault.ke1() }
        let issued = await withTaskGroup(of: Bool.self) { group in
            for (i, ke1) in ke1s.enumerated() {
                let service = services[i % 2]
                group.addTask { (try? await service.loginStart(account: Array("grace".utf8), ke1: ke1)) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(issued == 10)
    }

    @Test func unknownAccountsAnswerLikeWrongPasswordsAndLock() async throws {
        let vault = try VaultFixture()
        for expected in stride(from: 9, through: 0, by: -1) {
            #expect(await vault.loginError("nobody", password: "x") == .authenticationFailed(attemptsLeft: expected))
        }
        #expect(await vault.loginError("nobody", password: "x") == .locked)
        // A phantom row does not block a real registration, which starts with a clean counter.
        #expect(try await vault.register("nobody", password: "pw", sealedKey: [7]) == .created)
        #expect(try await vault.login("nobody", password: "pw").sealedKey == [7])
    }

    @Test func theFakeRecordIsStableAcrossRestarts() async throws {
        let vault = try VaultFixture()
        let reloaded = try VaultKeys.loadOrCreate(path: vault.directory + "/vault.key")
        #expect(reloaded.fakeRecord == vault.keys.fakeRecord)
        #expect(reloaded.privateKey.copyBytes() == vault.keys.privateKey.copyBytes())
        #expect(reloaded.oprfSeed.copyBytes() == vault.keys.oprfSeed.copyBytes())
        var st = stat()
        #expect(stat(vault.directory + "/vault.key", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test func aKeyFileReadableByOthersIsRefused() throws {
        let vault = try VaultFixture()
        let path = vault.directory + "/vault.key"
        chmod(path, 0o644)
        #expect(throws: VaultKeyError.self) { try VaultKeys.loadOrCreate(path: path) }
    }

    @Test func aSecondRegistrationNeedsAToken() async throws {
        let vault = try VaultFixture()
        try await vault.register("heidi", password: "old", sealedKey: [1])
        await #expect(throws: VaultError.accountExists) { try await vault.register("heidi", password: "new") }
        await #expect(throws: VaultError.invalidToken) { try await vault.register("heidi", password: "new", token: String(repeating: "0", count: 64)) }

        let token = try await vault.login("heidi", password: "old").token
        #expect(try await vault.register("heidi", password: "new", sealedKey: [2], token: token) == .replaced)
        #expect(try await vault.login("heidi", password: "new").sealedKey == [2])
        #expect(await vault.loginError("heidi", password: "old") == .authenticationFailed(attemptsLeft: 9))
        // Used once.
        await #expect(throws: VaultError.invalidToken) { try await vault.register("heidi", password: "other", token: token) }
    }

    @Test func aTokenExpiresAndIsBoundToItsAccount() async throws {
        let vault = try VaultFixture()
        try await vault.register("ivan", password: "pw")
        try await vault.register("judy", password: "pw")
        let token = try await vault.login("ivan", password: "pw").token
        await #expect(throws: VaultError.invalidToken) { try await vault.register("judy", password: "x", token: token) }
        let second = try await vault.login("ivan", password: "pw").token
        vault.clock.advance(301)
        await #expect(throws: VaultError.invalidToken) { try await vault.register("ivan", password: "x", token: second) }
    }

    @Test func aLoginStartedBeforeAPasswordChangeCannotFinish() async throws {
        let vault = try VaultFixture()
        try await vault.register("ken", password: "old")
        let (ke1, state) = try vault.client.startLogin(password: SecureBytes(copying: Array("old".utf8)))
        let (ke2, session) = try await vault.service.loginStart(account: Array("ken".utf8), ke1: ke1.serialized)
        let ke3 = try vault.client.finishLogin(OPAQUE.KE2(bytes: ke2), state: state).ke3.serialized
        let token = try await vault.login("ken", password: "old").token
        try await vault.register("ken", password: "new", token: token)
        await #expect(throws: VaultError.authenticationFailed(attemptsLeft: 10)) {
            try await vault.service.loginFinish(account: Array("ken".utf8), session: session, ke3: ke3)
        }
    }

    @Test func sessionsAreSingleUseAndExpire() async throws {
        let vault = try VaultFixture()
        try await vault.register("leo", password: "pw")
        let account = Array("leo".utf8)
        func started() async throws -> (session: String, ke3: [UInt8]) {
            let (ke1, state) = try vault.client.startLogin(password: SecureBytes(copying: Array("pw".utf8)))
            let (ke2, session) = try await vault.service.loginStart(account: account, ke1: ke1.serialized)
            return (session, try vault.client.finishLogin(OPAQUE.KE2(bytes: ke2), state: state).ke3.serialized)
        }
        let first = try await started()
        _ = try await vault.service.loginFinish(account: account, session: first.session, ke3: first.ke3)
        await #expect(throws: VaultError.invalidSession) {
            try await vault.service.loginFinish(account: account, session: first.session, ke3: first.ke3)
        }
        let late = try await started()
        vault.clock.advance(301)
        await #expect(throws: VaultError.invalidSession) {
            try await vault.service.loginFinish(account: account, session: late.session, ke3: late.ke3)
        }
        // The expired login still counted as a failure.
        #expect(await vault.loginError("leo", password: "no") == .authenticationFailed(attemptsLeft: 8))
        let other = try await started()
        await #expect(throws: VaultError.invalidSession) {
            try await vault.service.loginFinish(account: Array("someone".utf8), session: other.session, ke3: other.ke3)
        }
    }

    @Test func malformedInputIsABadRequest() async throws {
        let vault = try VaultFixture()
        let (record, _, registration) = try await vault.registration("mia", password: "pw")
        func isBadRequest(_ body: () async throws -> Void) async -> Bool {
            do { try await body() } catch let error as VaultError {
                if case .badRequest = error { return true }
            } catch {}
            return false
        }
        #expect(await isBadRequest { _ = try await vault.service.registerStart(account: [], request: [UInt8](repeating: 1, count: 32)) })
        #expect(await isBadRequest { _ = try await vault.service.registerStart(account: [UInt8](repeating: 97, count: 129), request: []) })
        #expect(await isBadRequest { _ = try await vault.service.registerStart(account: [0xff], request: []) })
        #expect(await isBadRequest { _ = try await vault.service.registerStart(account: Array("mia".utf8), request: [1, 2]) })
        let mia = Array("mia".utf8)
        #expect(await isBadRequest { _ = try await vault.service.registerFinish(account: mia, registration: registration, record: record, sealedKey: [], token: nil) })
        #expect(await isBadRequest {
            _ = try await vault.service.registerFinish(
                account: mia, registration: registration, record: record, sealedKey: [UInt8](repeating: 0, count: 4097), token: nil)
        })
        #expect(await isBadRequest { _ = try await vault.service.registerFinish(account: mia, registration: registration, record: [1], sealedKey: [1], token: nil) })
        #expect(await isBadRequest { _ = try await vault.service.loginStart(account: mia, ke1: [0]) })
        // A 128-byte name is fine (a malformed request does not spend the registration id).
        let long = String(repeating: "a", count: 128)
        let (longRecord, _, longRegistration) = try await vault.registration(long, password: "pw")
        #expect(try await vault.service.registerFinish(
            account: Array(long.utf8), registration: longRegistration, record: longRecord, sealedKey: [UInt8](repeating: 0, count: 4096),
            token: nil).outcome == .created)
        #expect(try await vault.service.registerFinish(account: mia, registration: registration, record: record, sealedKey: [1], token: nil).outcome == .created)
    }
}
