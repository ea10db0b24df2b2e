import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
@testable import CofferVault

/// A self-signed P-256 certificate for 127.0.0.1 and localhost, made by openssl in a fresh
/// temporary folder.
final class SelfSignedCertificate: Sendable {
    let directory: String
    var certificate: String { directory + "/cert.pem" }
    var key: String { directory + "/key.pem" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-vault-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", key, "-out", certificate)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Another P-256 key, not the certificate's.
    func otherKey() throws -> String {
        let path = directory + "/other-key.pem"
        try Self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        return path
    }

    static func openssl(_ arguments: String...) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw VaultConfigurationError(message: "openssl \(arguments.joined(separator: " ")) failed")
        }
    }
}

@Suite("Vault TLS")
struct VaultTLSTests {
    /// The message `validate()` refuses `configuration` with, or nil when it accepts it.
    static func refusal(_ configuration: VaultServerConfiguration) -> String? {
        do {
            try configuration.validate()
            return nil
        } catch {
            return error.message
        }
    }

    static func tlsRefusal(_ configuration: VaultServerConfiguration) -> String? {
        do {
            _ = try configuration.makeTLSConfiguration()
            return nil
        } catch {
            return error.message
        }
    }

    @Test func certificateAndKeyComeTogether() throws {
        let withoutKey = Self.refusal(VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: "/c.pem"))
        #expect(withoutKey?.contains("--tls-key") == true)
        let withoutCertificate = Self.refusal(VaultServerConfiguration(dataDirectory: "/x", tlsKeyPath: "/k.pem"))
        #expect(withoutCertificate?.contains("--tls-cert") == true)
        #expect(Self.refusal(VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: "/c.pem", tlsKeyPath: "/k.pem")) == nil)
    }

    @Test func nonLoopbackNeedsTLSOrInsecureHTTP() throws {
        let plain = Self.refusal(VaultServerConfiguration(host: "0.0.0.0", dataDirectory: "/x"))
        #expect(plain?.contains("not a loopback address") == true)
        #expect(plain?.contains("--tls-cert") == true)
        #expect(plain?.contains("TLS is not supported") == false)

        let https = VaultServerConfiguration(host: "0.0.0.0", dataDirectory: "/x", tlsCertificatePath: "/c.pem", tlsKeyPath: "/k.pem")
        #expect(Self.refusal(https) == nil)
        #expect(https.servesTLS)
        #expect(!VaultServerConfiguration(host: "0.0.0.0", dataDirectory: "/x", insecureHTTP: true).servesTLS)
    }

    @Test func tlsAndInsecureHTTPExcludeEachOther() throws {
        let both = VaultServerConfiguration(
            host: "0.0.0.0", dataDirectory: "/x", insecureHTTP: true, tlsCertificatePath: "/c.pem", tlsKeyPath: "/k.pem")
        #expect(Self.refusal(both)?.contains("--insecure-http") == true)
    }

    @Test func plainHTTPReadsNoFiles() throws {
        #expect(try VaultServerConfiguration(dataDirectory: "/x").makeTLSConfiguration() == nil)
    }

    @Test func missingCertificateFileIsNamed() throws {
        let files = try SelfSignedCertificate()
        let missing = files.directory + "/no-such-cert.pem"
        let message = Self.tlsRefusal(VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: missing, tlsKeyPath: files.key))
        #expect(message?.contains("--tls-cert \(missing)") == true)
        #expect(message?.contains("No such file") == true)
    }

    @Test func missingKeyFileIsNamed() throws {
        let files = try SelfSignedCertificate()
        let missing = files.directory + "/no-such-key.pem"
        let message = Self.tlsRefusal(
            VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: files.certificate, tlsKeyPath: missing))
        #expect(message?.contains("--tls-key \(missing)") == true)
    }

    @Test func filesThatAreNotPEMAreNamed() throws {
        let files = try SelfSignedCertificate()
        let garbage = files.directory + "/garbage.pem"
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: garbage))

        let certificate = Self.tlsRefusal(VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: garbage, tlsKeyPath: files.key))
        #expect(certificate?.contains("--tls-cert \(garbage) holds no PEM certificate") == true)
        // The certificate is PEM but not a key: swapped flags.
        let key = Self.tlsRefusal(
            VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: files.certificate, tlsKeyPath: files.certificate))
        #expect(key?.contains("--tls-key \(files.certificate) holds no PEM private key without a passphrase") == true)
    }

    @Test func encryptedKeyIsRefusedWithoutAPrompt() throws {
        let files = try SelfSignedCertificate()
        let encrypted = files.directory + "/encrypted-key.pem"
        try SelfSignedCertificate.openssl("pkey", "-in", files.key, "-aes256", "-passout", "pass:secret", "-out", encrypted)
        let message = Self.tlsRefusal(
            VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: files.certificate, tlsKeyPath: encrypted))
        #expect(message?.contains("--tls-key \(encrypted) holds no PEM private key without a passphrase") == true)
    }

    @Test func keyOfAnotherCertificateIsRefused() throws {
        let files = try SelfSignedCertificate()
        let other = try files.otherKey()
        let message = Self.tlsRefusal(
            VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: files.certificate, tlsKeyPath: other))
        #expect(message?.contains("--tls-key \(other) is not the private key of the certificate in --tls-cert \(files.certificate)") == true)
    }

    @Test func goodFilesGiveATLS12ServerConfiguration() throws {
        let files = try SelfSignedCertificate()
        let configuration = VaultServerConfiguration(dataDirectory: "/x", tlsCertificatePath: files.certificate, tlsKeyPath: files.key)
        let tls = try #require(try configuration.makeTLSConfiguration())
        #expect(tls.minimumTLSVersion == .tlsv12)
        #expect(tls.certificateChain.count == 1)
    }

    @Test func listeningURLBracketsIPv6() {
        #expect(VaultServerConfiguration.url(scheme: "https", host: "::1", port: 8443) == "https://[::1]:8443")
        #expect(VaultServerConfiguration.url(scheme: "https", host: "[::1]", port: 8443) == "https://[::1]:8443")
        #expect(VaultServerConfiguration.url(scheme: "http", host: "127.0.0.1", port: 1) == "http://127.0.0.1:1")
    }

    /// The real server on an ephemeral port, spoken to over HTTPS by a client that trusts only
    /// the test's certificate.
    @Test func servesHTTPSWithTheGivenCertificate() async throws {
        let vault = try VaultFixture()
        let files = try SelfSignedCertificate()
        // Port 0: the kernel picks a free port, which onListening reports.
        let configuration = VaultServerConfiguration(
            host: "127.0.0.1", port: 0, dataDirectory: vault.directory, tlsCertificatePath: files.certificate, tlsKeyPath: files.key)
        let (urls, listening) = AsyncStream.makeStream(of: String.self)
        let application = try configuration.makeApplication(service: vault.service, tls: try configuration.makeTLSConfiguration()) {
            listening.yield($0)
        }

        var trusting = TLSConfiguration.makeClientConfiguration()
        trusting.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.certificate))

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Ends the stream if the server stops (or never starts), so the wait below cannot hang.
                defer { listening.finish() }
                try await application.runService(gracefulShutdownSignals: [])
            }
            defer { group.cancelAll() }

            var iterator = urls.makeAsyncIterator()
            let url = try #require(await iterator.next(), "the server did not start")
            let components = try #require(URLComponents(string: url))
            #expect(components.scheme == "https")
            #expect(components.host == "127.0.0.1")
            let port = try #require(components.port)
            #expect(port != 0)

            try await Self.withClient(tls: trusting) { client in
                // A malformed body reaches the router, and gets its 400, only through a completed handshake.
                // The deadline is generous: in the full suite on two cores, other tests can hold the
                // cooperative threads the server runs on for several seconds.
                let response = try await client.execute(Self.loginStart("https://127.0.0.1:\(port)"), timeout: .seconds(60))
                #expect(response.status == .badRequest)
                let body = try await response.body.collect(upTo: 1 << 16)
                let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
                #expect(object?["error"] is String)

                await #expect(throws: (any Error).self) {
                    _ = try await client.execute(Self.loginStart("http://127.0.0.1:\(port)"), timeout: .seconds(10))
                }
            }
            // Trusts the system's roots only, none of which signed the test's certificate.
            try await Self.withClient(tls: .makeClientConfiguration()) { distrusting in
                await #expect(throws: NIOSSLError.self) {
                    _ = try await distrusting.execute(Self.loginStart("https://127.0.0.1:\(port)"), timeout: .seconds(10))
                }
            }
            var tls11 = trusting
            tls11.maximumTLSVersion = .tlsv11
            try await Self.withClient(tls: tls11) { old in
                await #expect(throws: NIOSSLError.self) {
                    _ = try await old.execute(Self.loginStart("https://127.0.0.1:\(port)"), timeout: .seconds(10))
                }
            }
        }
    }

    /// A client that fails a request on the first failed connection (by default it retries
    /// until the request's deadline, which would make each refused handshake take that long).
    static func withClient(tls: TLSConfiguration, _ body: (HTTPClient) async throws -> Void) async throws {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    static func loginStart(_ base: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + "/v1/accounts/x/login/start")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: "{not json"))
        return request
    }
}
