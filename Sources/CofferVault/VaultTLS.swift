import Foundation
import HummingbirdTLS
import NIOSSL

extension VaultServerConfiguration {
    /// The server's TLS settings from `tlsCertificatePath` and `tlsKeyPath`, or nil for plain
    /// HTTP. Everything that can be wrong with the files (unreadable, not PEM, a key that is not
    /// the certificate's) is found here, so a bad file stops the start before anything listens
    /// rather than at the first client's handshake.
    public func makeTLSConfiguration() throws(VaultConfigurationError) -> TLSConfiguration? {
        guard let certificatePath = tlsCertificatePath, let keyPath = tlsKeyPath else { return nil }
        let certificatePEM = try Self.readFile(certificatePath, flag: "--tls-cert")
        let keyPEM = try Self.readFile(keyPath, flag: "--tls-key")

        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificatePEM)
        } catch {
            throw VaultConfigurationError(message: "--tls-cert \(certificatePath) holds no PEM certificate (BEGIN CERTIFICATE block)")
        }
        let key: NIOSSLPrivateKey
        do {
            // A passphrase callback that gives none: without one BoringSSL may prompt on the
            // terminal for an encrypted key, and a server must fail instead of waiting.
            key = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem) { (_: NIOSSLPassphraseSetter<[UInt8]>) in
                throw NoPassphrase()
            }
        } catch {
            throw VaultConfigurationError(
                message: "--tls-key \(keyPath) holds no PEM private key without a passphrase (a BEGIN … PRIVATE KEY block)")
        }

        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // NIOSSL's default minimum is TLS 1.0; 1.0 and 1.1 are deprecated (RFC 8996).
        configuration.minimumTLSVersion = .tlsv12
        do {
            // Building the context is where BoringSSL checks that the key belongs to the leaf
            // certificate; Hummingbird would only build it when the server starts.
            _ = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw VaultConfigurationError(
                message: "--tls-key \(keyPath) is not the private key of the certificate in --tls-cert \(certificatePath)")
        } catch {
            throw VaultConfigurationError(
                message: "cannot set up TLS with --tls-cert \(certificatePath) and --tls-key \(keyPath): \(error)")
        }
        return configuration
    }

    private static func readFile(_ path: String, flag: String) throws(VaultConfigurationError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = access(path, R_OK) == 0 ? "not a regular file" : String(cString: strerror(errno))
            throw VaultConfigurationError(message: "cannot read \(flag) \(path): \(reason)")
        }
        return [UInt8](data)
    }
}

/// Refuses an encrypted key's passphrase request; the key then fails to load.
private struct NoPassphrase: Error {}
