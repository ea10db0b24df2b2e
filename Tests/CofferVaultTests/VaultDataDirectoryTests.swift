import CofferCrypto
import Foundation
import Testing
@testable import CofferVault

/// The data directory's safeguards: its key file cannot be silently replaced, and two servers
/// cannot share it.
@Suite("Vault data directory")
struct VaultDataDirectoryTests {
    @Test func aMissingKeyFileBesideRegisteredAccountsStopsTheStart() async throws {
        let vault = try VaultFixture()
        _ = try await vault.register("alice", password: "pw")
        let configuration = VaultServerConfiguration(dataDirectory: vault.directory)
        // With its key file the vault starts.
        _ = try configuration.makeService()
        try FileManager.default.removeItem(atPath: configuration.keyPath)
        let error = try #require(throws: VaultConfigurationError.self) { try configuration.makeService() }
        #expect(error.message.contains("vault.key is missing") || error.message.contains("restore vault.key"), "\(error.message)")
        #expect(!FileManager.default.fileExists(atPath: configuration.keyPath), "a new key file was made anyway")
    }

    @Test func aFreshDirectoryGetsItsKeyFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-vault-dir-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = VaultServerConfiguration(dataDirectory: directory)
        _ = try configuration.makeService()
        #expect(FileManager.default.fileExists(atPath: configuration.keyPath))
    }

    @Test func twoServersCannotShareADataDirectory() throws {
        let vault = try VaultFixture()
        let configuration = VaultServerConfiguration(dataDirectory: vault.directory)
        let first = try configuration.lockDataDirectory()
        let error = try #require(throws: VaultConfigurationError.self) { try configuration.lockDataDirectory() }
        #expect(error.message.contains("another coffer-vault"), "\(error.message)")
        withExtendedLifetime(first) {}
    }

    @Test func anUnusableDataDirectoryIsNamed() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-vault-file-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: file, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: file) }
        let error = try #require(throws: VaultConfigurationError.self) {
            try VaultServerConfiguration(dataDirectory: file + "/data").makeService()
        }
        #expect(error.message.contains("Not a directory"), "\(error.message)")
    }
}
