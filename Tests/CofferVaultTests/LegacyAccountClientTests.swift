@testable import Coffer
import CofferCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import CofferVault

/// FORMAT.md §16.1: an account a version-1 vault registered (under the seed-derived OPRF key)
/// is registered again, with the same password, by the first client that opens through it.
@Suite("Legacy vault accounts, seen from the client")
struct LegacyAccountClientTests {
    @Test func openingThroughALegacyAccountRegistersItAgainUnderAFreshKey() async throws {
        let vault = try VaultFixture()
        let client = {
            var client = VaultClient()
            client.configuration = VaultFixture.configuration
            return client
        }()
        let password = SecureBytes(copying: Array("the same password".utf8))
        let storage = LocalStorage(path: vault.directory + "/repo")
        try await VaultRoutesTests.application(vault).test(.live) { http async throws in
            let port = try #require(http.port)
            let address = try VaultAddress(url: "http://127.0.0.1:\(port)", account: "lee")
            _ = try await Repository.initialize(storage: storage, vault: address, password: password, client: client)
            // This machine was told about the vault by the init above (as the CLI records it).
            let trust = try TrustedVaultURLs([address.url])
            let first = try await Repository.open(storage: storage, credential: .password(password), vault: client, vaultTrust: trust)
            let session = try #require(first.vaultSession)
            #expect(session.report?.needsReregistration == false && session.report?.reregistration == nil)

            // Turn the account into what a version-1 vault left: a record made under the
            // seed-derived key, a sealed key for it, and no OPRF key of its own.
            let server = try vault.keys.server(configuration: VaultFixture.configuration)
            let opaque = OPAQUEClient(configuration: VaultFixture.configuration)
            let (request, state) = try opaque.startRegistration(password: password)
            let response = try server.createRegistrationResponse(request, credentialIdentifier: Array("lee".utf8))
            let legacy = try opaque.finishRegistration(response, state: state)
            try VaultStore(path: vault.directory + "/vault.db").transaction { tx in
                var row = try #require(try tx.account(Array("lee".utf8)))
                row.record = legacy.record.serialized
                row.sealedKey = VaultSealedKey.seal(
                    vaultSecret: session.vaultSecret, exportKey: legacy.exportKey, slot: session.slot, random: SystemRandom())
                row.sealedOPRFKey = []
                row.generation += 1
                try tx.put(Array("lee".utf8), row)
            }
            #expect(try vault.storedAccount("lee")?.isLegacy == true)

            let renewing = try await Repository.open(storage: storage, credential: .password(password), vault: client, vaultTrust: trust)
            let report = try #require(renewing.vaultSession?.report)
            #expect(report.needsReregistration)
            #expect(report.reregistration == .done)
            #expect(try vault.storedAccount("lee")?.isLegacy == false)
            // The fresh token from the re-registration still allows a password change.
            try await renewing.changeVaultPassword(to: SecureBytes(copying: Array("a new one".utf8)), client: client)
            let changed = try await Repository.open(storage: storage, credential: .password(SecureBytes(copying: Array("a new one".utf8))), vault: client, vaultTrust: trust)
            #expect(changed.vaultSession?.report?.needsReregistration == false)
            #expect(changed.vaultSession?.report?.reregistration == nil)
        }
    }
}
