import CofferCrypto
import Foundation
import Hummingbird

/// Why the server refuses to start.
public struct VaultConfigurationError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// How `coffer-vault` runs: where it listens, where its state lives, and its attempt limit.
public struct VaultServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Holds `vault.db` (accounts) and `vault.key` (the server's long-term secrets).
    public var dataDirectory: String
    public var maxAttempts: Int
    /// Plain HTTP on a non-loopback address: passwords never cross the wire, but sealed keys
    /// and tokens would, so this must be asked for (behind a TLS-terminating proxy).
    public var insecureHTTP: Bool

    public init(host: String = "127.0.0.1", port: Int = 8443, dataDirectory: String, maxAttempts: Int = 10, insecureHTTP: Bool = false) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.maxAttempts = maxAttempts
        self.insecureHTTP = insecureHTTP
    }

    public var databasePath: String { dataDirectory + "/vault.db" }
    public var keyPath: String { dataDirectory + "/vault.key" }

    /// The server serves plain HTTP only (TLS is not built in yet), so a non-loopback address
    /// needs `insecureHTTP`.
    public func validate() throws(VaultConfigurationError) {
        guard (1...65535).contains(port) else { throw VaultConfigurationError(message: "--port must be 1 to 65535") }
        guard maxAttempts >= 1 else { throw VaultConfigurationError(message: "--max-attempts must be at least 1") }
        guard insecureHTTP || Self.isLoopback(host) else {
            throw VaultConfigurationError(
                message: "\(host) is not a loopback address: plain HTTP there needs --insecure-http (TLS is not supported yet)")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Opens (creating on first start) the data directory, key file and database.
    public func makeService(configuration opaque: OPAQUEConfiguration = .cofferVaultV1) throws -> VaultService {
        // 0700: the database holds records and sealed keys, the key file the server's secrets.
        try FileManager.default.createDirectory(
            atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let keys = try VaultKeys.loadOrCreate(path: keyPath)
        let store = try VaultStore(path: databasePath)
        return try VaultService(store: store, keys: keys, configuration: opaque, maxAttempts: maxAttempts)
    }

    /// The Hummingbird application serving `service`.
    public func makeApplication(service: VaultService) -> some ApplicationProtocol {
        Application(
            router: VaultRoutes.router(service: service),
            configuration: .init(address: .hostname(host, port: port), serverName: "coffer-vault"))
    }
}
