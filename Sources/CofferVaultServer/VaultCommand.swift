import ArgumentParser
import CofferVault
import Glibc
import Hummingbird

/// `coffer-vault`: the key-vault server. Parses flags, opens the state and serves until killed.
@main
struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffer-vault",
        abstract: "Serve the Coffer key vault: OPAQUE password logins that release sealed keys.",
        discussion: "Plain HTTP only (TLS is not built in yet): loopback addresses, or any address with --insecure-http behind a TLS proxy.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8443
    @Option(name: .customLong("data"), help: "Directory for vault.db and vault.key (created, mode 0700).") var data: String
    @Option(help: "Failed logins after which an account is locked for good.") var maxAttempts = 10
    @Flag(help: "Allow plain HTTP on a non-loopback address.") var insecureHTTP = false

    func run() async throws {
        // Everything the vault creates (database, its WAL and shared-memory files, the key
        // file) is for the vault's user alone, whatever folder it is given.
        umask(0o077)
        let configuration = VaultServerConfiguration(
            host: host, port: port, dataDirectory: data, maxAttempts: maxAttempts, insecureHTTP: insecureHTTP)
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        let service = try configuration.makeService()
        try await configuration.makeApplication(service: service).runService()
    }
}
