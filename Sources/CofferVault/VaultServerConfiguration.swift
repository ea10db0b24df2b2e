import CofferCrypto
import Foundation
import Hummingbird
import HummingbirdTLS

/// Why the server refuses to start.
public struct VaultConfigurationError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// How `coffer-vault` runs: where it listens, how (HTTPS or plain HTTP), where its state lives,
/// its attempt limit and login rate. The one place for the rules on when plain HTTP is allowed.
public struct VaultServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Holds `vault.db` (accounts) and `vault.key` (the server's long-term secrets).
    public var dataDirectory: String
    /// Wrong attempts allowed per password (a password change starts a new allowance).
    public var maxAttempts: Int
    /// Wrong attempts allowed over an account's life, across password changes; nil for 10 ×
    /// `maxAttempts`.
    public var maxLifetimeAttempts: Int?
    /// `login/start` and `register/start` requests a minute per client address (an IPv6
    /// client by its /64), also the burst allowed; 0 for no limit. Behind a proxy every
    /// client has the proxy's address.
    public var loginRate: Int
    /// Reverse proxies whose `X-Forwarded-For` names the client for `loginRate`.
    public var trustedProxies: [String]
    /// Plain HTTP on a non-loopback address: passwords never cross the wire, but sealed keys
    /// and tokens would, so this must be asked for (behind a TLS-terminating proxy).
    public var insecureHTTP: Bool
    /// PEM certificate chain (leaf first, intermediates after it) for serving HTTPS.
    public var tlsCertificatePath: String?
    /// PEM private key of the leaf certificate in `tlsCertificatePath`.
    public var tlsKeyPath: String?

    public init(
        host: String = "127.0.0.1", port: Int = 8443, dataDirectory: String, maxAttempts: Int = 10, maxLifetimeAttempts: Int? = nil,
        loginRate: Int = 30,
        trustedProxies: [String] = [], insecureHTTP: Bool = false, tlsCertificatePath: String? = nil, tlsKeyPath: String? = nil
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.maxAttempts = maxAttempts
        self.maxLifetimeAttempts = maxLifetimeAttempts
        self.loginRate = loginRate
        self.trustedProxies = trustedProxies
        self.insecureHTTP = insecureHTTP
        self.tlsCertificatePath = tlsCertificatePath
        self.tlsKeyPath = tlsKeyPath
    }

    public var databasePath: String { dataDirectory + "/vault.db" }
    public var keyPath: String { dataDirectory + "/vault.key" }

    /// Checks the flags against each other; the TLS files themselves are read by
    /// `makeTLSConfiguration()`.
    public func validate() throws(VaultConfigurationError) {
        guard (1...65535).contains(port) else { throw VaultConfigurationError(message: "--port must be 1 to 65535") }
        guard maxAttempts >= 1 else { throw VaultConfigurationError(message: "--max-attempts must be at least 1") }
        guard (maxLifetimeAttempts ?? maxAttempts) >= maxAttempts else {
            throw VaultConfigurationError(message: "--max-lifetime-attempts must be at least --max-attempts (\(maxAttempts))")
        }
        guard loginRate >= 0 else { throw VaultConfigurationError(message: "--login-rate must be 0 (no limit) or more") }
        _ = try TrustedProxies(trustedProxies)
        switch (tlsCertificatePath, tlsKeyPath) {
        case (nil, nil), (.some, .some): break
        case (.some, nil): throw VaultConfigurationError(message: "--tls-cert needs --tls-key (the certificate's private key)")
        case (nil, .some): throw VaultConfigurationError(message: "--tls-key needs --tls-cert (the certificate chain for that key)")
        }
        // Both at once would leave it unclear whether the operator expects HTTPS or plain HTTP.
        guard !(insecureHTTP && servesTLS) else {
            throw VaultConfigurationError(message: "--insecure-http (plain HTTP) and --tls-cert/--tls-key (HTTPS) exclude each other")
        }
        guard servesTLS || insecureHTTP || Self.isLoopback(host) else {
            throw VaultConfigurationError(
                message: "\(host) is not a loopback address: serve HTTPS there with --tls-cert and --tls-key, "
                    + "or plain HTTP behind a TLS-terminating proxy with --insecure-http")
        }
    }

    /// HTTPS when given a certificate (validate() has checked that a key comes with it).
    public var servesTLS: Bool { tlsCertificatePath != nil }

    /// Only names that cannot resolve elsewhere: a prefix test would take "127.evil.example",
    /// a name whose DNS the operator may not control. An IPv4 literal must be plain dotted
    /// decimal (no leading zeros, which some resolvers read as octal and others as a name).
    static func isLoopback(_ host: String) -> Bool {
        if ["localhost", "::1", "[::1]"].contains(host) { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127"
            && parts.allSatisfy { part in
                part.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
                    && (part == "0" || !part.hasPrefix("0")) && (Int(part).map { $0 <= 255 } ?? false)
            }
    }

    /// Opens (creating on first start) the data directory, key file and database.
    public func makeService(configuration opaque: OPAQUEConfiguration = .cofferVaultV1) throws -> VaultService {
        // 0700: the database holds records and sealed keys, the key file the server's secrets.
        do {
            try FileManager.default.createDirectory(
                atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw VaultConfigurationError(message: "cannot create the data directory --data \(dataDirectory): \(reason(error))")
        }
        let keyFileExisted = FileManager.default.fileExists(atPath: keyPath)
        let store = try VaultStore(path: databasePath)
        // A new key file would give every registered password a different OPRF output: every
        // login would read as a wrong password and spend the accounts' attempts.
        if !keyFileExisted, try store.transaction({ try $0.hasRegisteredAccounts() }) {
            throw VaultConfigurationError(
                message: "\(databasePath) holds registered accounts but \(keyPath) is missing: restore vault.key from your backup "
                    + "(new keys would make every password fail); to start over, move vault.db away")
        }
        let keys = try VaultKeys.loadOrCreate(path: keyPath)
        return try VaultService(store: store, keys: keys, configuration: opaque, maxAttempts: maxAttempts,
            maxLifetimeAttempts: maxLifetimeAttempts)
    }

    /// Holds `DIR/vault.lock` for as long as the returned value lives: two servers on one data
    /// directory would each keep their own sessions and rate limits.
    public func lockDataDirectory() throws -> DataDirectoryLock {
        let path = dataDirectory + "/vault.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw VaultConfigurationError(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw VaultConfigurationError(message: "another coffer-vault is already serving --data \(dataDirectory)")
        }
        return DataDirectoryLock(fd: fd)
    }

    /// The limiter `loginRate` asks for, or nil for none.
    public func makeLoginRateLimiter(
        now: @escaping @Sendable () -> TimeInterval = { ProcessInfo.processInfo.systemUptime }
    ) -> LoginRateLimiter? {
        loginRate > 0 ? LoginRateLimiter(perMinute: loginRate, now: now) : nil
    }

    /// The Hummingbird application serving `service`: HTTPS with `tls` (from
    /// `makeTLSConfiguration()`), plain HTTP without. `onListening` gets the URL the server
    /// answers on once it accepts connections (with the bound port, should `port` be 0).
    public func makeApplication(
        service: VaultService, tls: TLSConfiguration?, onListening: @escaping @Sendable (_ url: String) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let scheme = tls == nil ? "http" : "https"
        return Application(
            router: VaultRoutes.router(
                service: service, loginRateLimiter: makeLoginRateLimiter(), trustedProxies: try TrustedProxies(trustedProxies)),
            server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname(host, port: port), serverName: "coffer-vault"),
            onServerRunning: { [host, port] channel in
                await onListening(Self.url(scheme: scheme, host: host, port: channel.localAddress?.port ?? port))
            })
    }

    static func url(scheme: String, host: String, port: Int) -> String {
        // An IPv6 literal needs brackets in a URL, or its colons would read as the port's.
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(scheme)://\(bracketed):\(port)"
    }

    /// Why the directory could not be made, in the system's words: Foundation's own error
    /// for this is a bare "error 512".
    func reason(_ error: any Error) -> String {
        var path = dataDirectory.hasPrefix("/") ? "/" : ""
        for component in dataDirectory.split(separator: "/") {
            path += (path.isEmpty || path == "/" ? "" : "/") + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST { return "\(path): \(String(cString: strerror(errno)))" }
        }
        return "\(error)"
    }
}

/// The data directory's lock, released when the process ends (or this is freed).
public final class DataDirectoryLock: Sendable {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
