/// What both parties of an OPAQUE deployment must agree on besides the fixed suite
/// (ristretto255-SHA512 OPRF and 3DH, HKDF-SHA512, HMAC-SHA512, SHA-512): the context bound into
/// every handshake transcript and the key-stretching function applied to the OPRF output.
public struct OPAQUEConfiguration: Sendable {
    /// RFC 9807's application context, bound into the 3DH preamble so that transcripts of
    /// different applications never verify against each other.
    public let context: [UInt8]
    public let keyStretching: KeyStretching

    public init(context: [UInt8], keyStretching: KeyStretching) {
        precondition(context.count <= 0xffff, "the context has a two-byte length prefix")
        self.context = context
        self.keyStretching = keyStretching
    }

    /// Coffer's key vault: context "coffer-vault-v1", Argon2id with opslimit 3 over 256 MiB.
    public static let cofferVaultV1 = OPAQUEConfiguration(
        context: Array("coffer-vault-v1".utf8),
        keyStretching: .argon2id(opsLimit: 3, memoryBytes: 256 << 20))

    /// The KSF: Stretch(oprf_output), which makes every password guess against a stolen record
    /// (or a malicious server) cost what it costs the client.
    public struct KeyStretching: Sendable {
        /// For diagnostics only; two configurations with the same name may still differ.
        public let name: String
        let stretch: @Sendable (SecureBytes) throws(OPAQUEError) -> SecureBytes

        /// A custom KSF; `stretch` maps the 64-byte OPRF output to the stretched output.
        public init(name: String, stretch: @escaping @Sendable (SecureBytes) throws(OPAQUEError) -> SecureBytes) {
            self.name = name
            self.stretch = stretch
        }

        /// Stretch(x) = x. Only for RFC 9807's test vectors: it leaves offline guessing cheap.
        public static let identity = KeyStretching(name: "Identity") { $0 }

        /// Argon2id v1.3 through libsodium's `crypto_pwhash` (one lane) with a fixed all-zero
        /// 16-byte salt and a 64-byte output. The zero salt is safe here: the input is already
        /// the OPRF output, unique per server key and account.
        public static func argon2id(opsLimit: UInt64, memoryBytes: UInt64) -> KeyStretching {
            KeyStretching(name: "Argon2id(opslimit \(opsLimit), memlimit \(memoryBytes))") { (input: SecureBytes) throws(OPAQUEError) -> SecureBytes in
                do {
                    return try Argon2id.derive(
                        password: input, salt: [UInt8](repeating: 0, count: Argon2id.saltSize),
                        opsLimit: opsLimit, memoryBytes: memoryBytes, outputLength: OPRF.outputLength)
                } catch {
                    throw .keyStretchingFailed
                }
            }
        }
    }
}

/// Why an OPAQUE step failed. The three authentication failures are deliberately coarse: a
/// caller should report "wrong password or wrong server" without saying which.
public enum OPAQUEError: Error, Equatable, Sendable {
    /// A message, record, key or seed has the wrong length.
    case invalidLength(expected: Int, actual: Int)
    /// Not a canonical ristretto255 encoding, or the identity element.
    case invalidElement
    /// Not a canonical scalar (at least the group order), or zero.
    case invalidScalar
    /// A password, identity or OPRF input longer than its two-byte length prefix allows, or an
    /// input that hashes to the identity.
    case invalidInput
    /// DeriveKeyPair found no nonzero scalar in 256 tries (a broken hash, never in practice).
    case deriveKeyPairFailed
    /// The key-stretching function failed (Argon2id without enough memory).
    case keyStretchingFailed
    /// The client could not open its envelope: a wrong password, or a response not made from
    /// its record.
    case envelopeRecoveryFailed
    /// The server's MAC in KE2 did not verify: not the server that holds the record, or tampered.
    case serverAuthenticationFailed
    /// The client's MAC in KE3 did not verify: the client does not know the password (or the
    /// account is unknown and the server answered from a fake record).
    case clientAuthenticationFailed
}
