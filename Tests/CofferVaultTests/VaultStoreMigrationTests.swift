@testable import CofferCrypto
import Foundation
import Testing
@testable import CofferVault

/// FORMAT.md §16.1: the version-2 schema, the in-place migration of a version-1 database, the
/// legacy accounts it leaves, and the sealed OPRF key's vector.
@Suite("VaultStore schema and migration")
struct VaultStoreMigrationTests {
    /// The schema exactly as the version-1 VaultStore created it.
    static let version1Schema = """
        CREATE TABLE IF NOT EXISTS accounts (
            name BLOB PRIMARY KEY NOT NULL,
            registered INTEGER NOT NULL,
            record BLOB NOT NULL,
            sealed_key BLOB NOT NULL,
            failures INTEGER NOT NULL,
            locked INTEGER NOT NULL,
            generation INTEGER NOT NULL
        ) WITHOUT ROWID;
        PRAGMA user_version = 1;
        """

    static func userVersion(_ path: String) throws -> Int64 {
        let db = try SQLiteDatabase(path: path)
        let s = try db.prepare("PRAGMA user_version")
        _ = try s.step()
        return s.int(0)
    }

    /// Writes a version-1 row as the version-1 server did.
    static func insertVersion1Row(
        _ db: SQLiteDatabase, _ name: String, registered: Bool, record: [UInt8], sealedKey: [UInt8], failures: Int, locked: Bool
    ) throws {
        let s = try db.prepare(
            "INSERT INTO accounts (name, registered, record, sealed_key, failures, locked, generation) VALUES (?, ?, ?, ?, ?, ?, ?)")
        try s.bind(1, blob: Array(name.utf8))
        try s.bind(2, int: registered ? 1 : 0)
        try s.bind(3, blob: record)
        try s.bind(4, blob: sealedKey)
        try s.bind(5, int: Int64(failures))
        try s.bind(6, int: locked ? 1 : 0)
        try s.bind(7, int: registered ? 1 : 0)
        _ = try s.step()
    }

    /// A registration as version 1 answered it: under the key derived from the OPRF seed.
    static func version1Record(_ vault: VaultFixture, account: String, password: String) throws -> [UInt8] {
        let server = try vault.keys.server(configuration: VaultFixture.configuration)
        let (request, state) = try vault.client.startRegistration(password: SecureBytes(copying: Array(password.utf8)))
        let response = try server.createRegistrationResponse(request, credentialIdentifier: Array(account.utf8))
        return try vault.client.finishRegistration(response, state: state).record.serialized
    }

    @Test func aVersion1DatabaseIsMigratedInPlaceAndItsAccountsBecomeLegacy() async throws {
        let vault = try VaultFixture()
        // Replace the fixture's fresh database with one the version-1 schema made (the
        // fixture's own service keeps the unlinked file; the test uses a reopened one).
        let path = vault.directory + "/vault.db"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        do {
            let db = try SQLiteDatabase(path: path)
            try db.execute(Self.version1Schema)
            try Self.insertVersion1Row(
                db, "old", registered: true, record: try Self.version1Record(vault, account: "old", password: "pw"), sealedKey: [5],
                failures: 3, locked: false)
            try Self.insertVersion1Row(db, "ghost", registered: false, record: [], sealedKey: [], failures: 2, locked: false)
            try Self.insertVersion1Row(
                db, "shut", registered: true, record: try Self.version1Record(vault, account: "shut", password: "pw"), sealedKey: [6],
                failures: 10, locked: true)
        }
        #expect(try Self.userVersion(path) == 1)

        let service = try vault.reopen()
        #expect(try Self.userVersion(path) == 2)
        let old = try #require(try vault.storedAccount("old"))
        #expect(old.isLegacy && old.failures == 3 && old.lifetimeFailures == 3 && old.unreportedFailures == 3)
        #expect(old.sealedKey == [5] && old.generation == 1 && !old.locked)
        let ghost = try #require(try vault.storedAccount("ghost"))
        #expect(!ghost.registered && !ghost.isLegacy && ghost.failures == 2)
        #expect(try vault.storedAccount("shut")?.locked == true)

        // A legacy account logs in under the seed-derived key, and says it needs re-registering.
        let success = try await vault.login("old", password: "pw", service: service)
        #expect(success.sealedKey == [5])
        #expect(success.needsReregistration)
        #expect(success.failedAttemptsSinceLastLogin == 3 && success.lastFailedAt == nil)
        #expect(success.attemptsLeft == 7)
        #expect(await vault.loginError("shut", password: "pw", service: service) == .locked)
        #expect(await vault.loginError("ghost", password: "x", service: service) == .authenticationFailed(attemptsLeft: 7))

        // Why it must: evaluations under the seed-derived key, which version 1's register/start
        // gave anyone, still confirm guesses against the legacy record.
        let server = try vault.keys.server(configuration: VaultFixture.configuration)
        func seededEvaluation(_ guess: String) throws -> OfflineGuessAttackTests.Evaluation {
            let blind = Ristretto255.Scalar.random(using: SystemRandom())
            let blinded = try OPRF.blind(input: SecureBytes(copying: Array(guess.utf8)), blind: blind)
            let answer = try server.createRegistrationResponse(OPAQUE.RegistrationRequest(blindedMessage: blinded), credentialIdentifier: Array("old".utf8))
            return .init(guess: guess, blind: blind, evaluated: answer.evaluatedMessage, serverPublicKey: answer.serverPublicKey)
        }
        let collected = try ["a", "b", "pw", "c"].map(seededEvaluation)
        let before = try await OfflineGuessAttackTests.captureOneLogin(vault, Array("old".utf8), service: service)
        #expect(try OfflineGuessAttackTests.crack(before, collected) == "pw")

        // The owner's client registers the same password again with the login's token.
        let (record, _, registration) = try await vault.registration("old", password: "pw", service: service)
        #expect(
            try await service.registerFinish(account: Array("old".utf8), registration: registration, record: record, sealedKey: [5], token: success.token).outcome
                == .replaced)
        let renewed = try await vault.login("old", password: "pw", service: service)
        #expect(!renewed.needsReregistration && renewed.sealedKey == [5])
        #expect(try vault.storedAccount("old")?.isLegacy == false)
        let after = try await OfflineGuessAttackTests.captureOneLogin(vault, Array("old".utf8), service: service)
        #expect(try OfflineGuessAttackTests.crack(after, collected) == nil)

        // Opening again changes nothing.
        _ = try vault.reopen()
        #expect(try Self.userVersion(path) == 2)
        #expect(try vault.storedAccount("old")?.isLegacy == false)
    }

    @Test func aNewerSchemaIsRefusedNamingTheFile() throws {
        let vault = try VaultFixture()
        let path = vault.directory + "/vault.db"
        try SQLiteDatabase(path: path).execute("PRAGMA user_version = 3")
        do {
            _ = try VaultStore(path: path)
            Issue.record("a version-3 database was opened")
        } catch let error as VaultStoreError {
            #expect(error.message.contains(path) && error.message.contains("version 3"), "\(error)")
        }
    }

    /// A source that hands out given bytes, for the vector's nonce.
    struct FixedRandom: RandomSource {
        let value: UInt8
        func bytes(_ count: Int) -> [UInt8] { [UInt8](repeating: value, count: count) }
    }

    @Test func theSealedOPRFKeyMatchesItsVector() throws {
        let server = try OPAQUEServer(
            configuration: VaultFixture.configuration, privateKey: Ristretto255.Scalar(bytes: [UInt8](repeating: 0, count: 31) + [1]),
            oprfSeed: SecureBytes(copying: Array(0..<64)))
        let sealer = SealedOPRFKey(server: server)
        let k = try Ristretto255.Scalar(bytes: Array(1..<32) + [0])
        let account = Array("alice".utf8)
        let record = [UInt8](repeating: 0xaa, count: 192)
        let sealed = sealer.seal(k, account: account, record: record, random: FixedRandom(value: 0xbb))
        #expect(sealed.count == SealedOPRFKey.length)
        #expect(sealed.map { String(format: "%02x", $0) }.joined() == (try Self.documentedVector("sealed-oprf-key")))
        #expect(sealer.open(sealed, account: account, record: record)?.copyBytes() == k.copyBytes())
        // Bound to its account and record, and to the vault.key it was sealed under.
        #expect(sealer.open(sealed, account: Array("alicf".utf8), record: record) == nil)
        #expect(sealer.open(sealed, account: account, record: [UInt8](repeating: 0xab, count: 192)) == nil)
        let otherVault = try OPAQUEServer(
            configuration: VaultFixture.configuration, privateKey: Ristretto255.Scalar(bytes: [UInt8](repeating: 0, count: 31) + [1]),
            oprfSeed: SecureBytes(copying: Array(1...64)))
        #expect(SealedOPRFKey(server: otherVault).open(sealed, account: account, record: record) == nil)
    }

    /// The value of `name` in FORMAT.md's `vault-vectors` block (long values continue on lines
    /// indented by four spaces).
    static func documentedVector(_ name: String) throws -> String? {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("FORMAT.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let start = text.range(of: "```vault-vectors\n") else { return nil }
        let body = text[start.upperBound...]
        let block = body[..<(body.range(of: "```")?.lowerBound ?? body.endIndex)]
        var values: [String: String] = [:]
        var current: String?
        for line in block.split(separator: "\n") {
            if line.hasPrefix("    "), let c = current {
                values[c, default: ""] += line.dropFirst(4)
            } else if let colon = line.range(of: ": ") {
                current = String(line[..<colon.lowerBound])
                values[current!] = String(line[colon.upperBound...])
            }
        }
        return values[name]
    }
}
