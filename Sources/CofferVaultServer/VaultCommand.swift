import ArgumentParser
import CofferVault
import Foundation
import Glibc
import Hummingbird

/// `coffer-vault`: the key-vault server. Parses flags, opens the state and serves until killed.
@main
struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffer-vault",
        abstract: "Serve the Coffer key vault: OPAQUE password logins that release sealed keys.",
        discussion: """
            With --tls-cert and --tls-key it serves HTTPS (TLS 1.2 or later) on any address. Without \
            them it serves plain HTTP, on loopback addresses only, unless --insecure-http allows it \
            elsewhere (behind a TLS-terminating proxy). Once it accepts connections it prints \
            "coffer-vault listening on URL" on standard output.

            An account locks for good after --max-attempts wrong logins since its last password \
            change (a successful login does not reset the count; a password change does), or after \
            --max-lifetime-attempts over its life.

            --login-rate limits the requests that cost a guess or hold server memory (login start, \
            registration start) per client address, an IPv6 client by its /64; a request over the \
            limit gets HTTP 429 and is not counted. Behind a proxy every client has the proxy's \
            address, unless the proxy is named with --trusted-proxy (its X-Forwarded-For is then \
            believed); or raise the rate, or set 0 and limit at the proxy.
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8443
    @Option(name: .customLong("data"), help: "Directory for vault.db and vault.key (created, mode 0700).") var data: String
    @Option(help: "Wrong logins since the last password change after which an account is locked for good.") var maxAttempts = 10
    @Option(help: ArgumentHelp(
        "Wrong logins over an account's life, across password changes, after which it is locked for good (default: 10 × --max-attempts).",
        valueName: "n"))
    var maxLifetimeAttempts: Int?
    @Option(help: ArgumentHelp("Logins and registrations a minute per client address (also the burst); 0 for no limit.", valueName: "n"))
    var loginRate = 30
    @Option(help: ArgumentHelp(
        "A reverse proxy's IP address whose X-Forwarded-For names the client for --login-rate; repeatable.", valueName: "ip"))
    var trustedProxy: [String] = []
    @Option(help: ArgumentHelp("Certificate chain for HTTPS: PEM, leaf first, then any intermediates.", valueName: "file"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("Private key of that certificate: PEM, unencrypted.", valueName: "file"))
    var tlsKey: String?
    @Flag(help: "Allow plain HTTP on a non-loopback address.") var insecureHTTP = false

    var serverConfiguration: VaultServerConfiguration {
        VaultServerConfiguration(
            host: host, port: port, dataDirectory: data, maxAttempts: maxAttempts,
            maxLifetimeAttempts: maxLifetimeAttempts, loginRate: loginRate,
            trustedProxies: trustedProxy, insecureHTTP: insecureHTTP, tlsCertificatePath: tlsCert, tlsKeyPath: tlsKey)
    }

    func validate() throws {
        do {
            try serverConfiguration.validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        // Everything the vault creates (database, its WAL and shared-memory files, the key
        // file) is for the vault's user alone, whatever folder it is given.
        umask(0o077)
        let configuration = serverConfiguration
        // Before the data directory is created: a bad certificate should leave nothing behind.
        let tls = try configuration.makeTLSConfiguration()
        let service = try configuration.makeService()
        let lock = try configuration.lockDataDirectory()
        let application = try configuration.makeApplication(service: service, tls: tls) { url in
            // Unbuffered, so a script reading a pipe sees the line as soon as the port is open.
            FileHandle.standardOutput.write(Data("coffer-vault listening on \(url)\n".utf8))
        }
        do {
            try await application.runService()
            withExtendedLifetime(lock) {}
        } catch where "\(error)".contains("Address already in use") {
            throw VaultConfigurationError(message: "cannot listen on \(host):\(port): the address is already in use")
        }
    }
}
