/// The server side of OPAQUE-3DH (RFC 9807): answers registrations, and logins from the stored
/// record, without ever learning the password or anything that allows an offline guess without
/// the OPRF seed.
///
/// Its long-term secrets are the key pair and the OPRF seed: both must persist (a new OPRF seed
/// invalidates every record) and stay secret.
public struct OPAQUEServer: Sendable {
    public let configuration: OPAQUEConfiguration
    public let privateKey: Ristretto255.Scalar
    public let publicKey: Ristretto255.Element
    /// Nh bytes from which each account's OPRF key is derived.
    public let oprfSeed: SecureBytes
    /// Randomness, in the order each step draws it (tests inject a vector's values this way).
    private let random: any RandomSource

    /// A server with existing keys.
    public init(
        configuration: OPAQUEConfiguration, privateKey: Ristretto255.Scalar, oprfSeed: SecureBytes,
        random: any RandomSource = SystemRandom()
    ) throws(OPAQUEError) {
        guard oprfSeed.count == OPAQUE.hashLength else {
            throw .invalidLength(expected: OPAQUE.hashLength, actual: oprfSeed.count)
        }
        self.init(configuration: configuration, privateKey: privateKey, checkedOPRFSeed: oprfSeed, random: random)
    }

    private init(
        configuration: OPAQUEConfiguration, privateKey: Ristretto255.Scalar, checkedOPRFSeed oprfSeed: SecureBytes,
        random: any RandomSource
    ) {
        self.configuration = configuration
        self.privateKey = privateKey
        self.publicKey = Ristretto255.Element(generatorTimes: privateKey)
        self.oprfSeed = oprfSeed
        self.random = random
    }

    /// A server with fresh keys. Draws the private key, then the OPRF seed.
    public static func generate(configuration: OPAQUEConfiguration, random: any RandomSource = SystemRandom()) -> OPAQUEServer {
        let privateKey = Ristretto255.Scalar.random(using: random)
        var seed = random.bytes(OPAQUE.hashLength)
        defer { secureZero(&seed) }
        return OPAQUEServer(
            configuration: configuration, privateKey: privateKey, checkedOPRFSeed: SecureBytes(copying: seed), random: random)
    }

    /// CreateRegistrationResponse: evaluates the OPRF under the account's key.
    /// `credentialIdentifier` names the account and must be the same at every login.
    public func createRegistrationResponse(
        _ request: OPAQUE.RegistrationRequest, credentialIdentifier: [UInt8]
    ) throws(OPAQUEError) -> OPAQUE.RegistrationResponse {
        createRegistrationResponse(request, oprfKey: try derivedOPRFKey(credentialIdentifier: credentialIdentifier))
    }

    /// CreateRegistrationResponse under a given OPRF key: a server that draws a fresh key per
    /// registration (and stores it with the record) rather than deriving it from the seed.
    public func createRegistrationResponse(
        _ request: OPAQUE.RegistrationRequest, oprfKey: Ristretto255.Scalar
    ) -> OPAQUE.RegistrationResponse {
        OPAQUE.RegistrationResponse(
            evaluatedMessage: OPRF.blindEvaluate(privateKey: oprfKey, blindedElement: request.blindedMessage),
            serverPublicKey: publicKey)
    }

    /// The account's OPRF key as RFC 9807 §5.3.1 derives it from the seed.
    public func derivedOPRFKey(credentialIdentifier: [UInt8]) throws(OPAQUEError) -> Ristretto255.Scalar {
        try OPAQUE.oprfKey(oprfSeed: oprfSeed, credentialIdentifier: credentialIdentifier)
    }

    /// A 32-byte key for sealing the server's own stored secrets: HKDF-Expand(oprf_seed, info,
    /// 32). The per-account derivation's info always ends in "OprfKey", so an `info` that does
    /// not can never yield an account's seed.
    public func storageKey(info: [UInt8]) -> SecureBytes {
        precondition(!info.suffix(7).elementsEqual("OprfKey".utf8), "info must not end in OprfKey")
        return HKDFSHA512.expand(prk: oprfSeed, info: info, length: 32)
    }

    /// A stand-in record for logins to accounts that do not exist (RFC 9807 §10.9): answering
    /// from it makes an unknown account look like a wrong password. Make it once and keep it,
    /// so that repeated probes see a stable answer. Draws the client private key, then the
    /// masking key.
    public func makeFakeRecord() -> OPAQUE.RegistrationRecord {
        let clientPrivateKey = Ristretto255.Scalar.random(using: random)
        return OPAQUE.RegistrationRecord(
            clientPublicKey: Ristretto255.Element(generatorTimes: clientPrivateKey),
            maskingKey: random.bytes(OPAQUE.hashLength),
            envelope: OPAQUE.Envelope(
                nonce: [UInt8](repeating: 0, count: OPAQUE.nonceLength),
                authTag: [UInt8](repeating: 0, count: OPAQUE.hashLength)))
    }

    /// Kept between `startLogin` and `finishLogin`; holds the session key and the MAC KE3 must
    /// carry, so it never prints them.
    public struct LoginState: Sendable, CustomStringConvertible {
        let keys: OPAQUE.SessionKeys
        public var description: String { "OPAQUEServer.LoginState(redacted)" }
    }

    /// GenerateKE2: answers KE1 from the account's record (or the fake record). Draws the
    /// masking nonce, the server nonce and the server keyshare seed.
    public func startLogin(
        _ ke1: OPAQUE.KE1, record: OPAQUE.RegistrationRecord, credentialIdentifier: [UInt8],
        clientIdentity: [UInt8]? = nil, serverIdentity: [UInt8]? = nil
    ) throws(OPAQUEError) -> (ke2: OPAQUE.KE2, state: LoginState) {
        try startLogin(
            ke1, record: record, oprfKey: try derivedOPRFKey(credentialIdentifier: credentialIdentifier),
            clientIdentity: clientIdentity, serverIdentity: serverIdentity)
    }

    /// GenerateKE2 under a given OPRF key: the one the record was registered under.
    public func startLogin(
        _ ke1: OPAQUE.KE1, record: OPAQUE.RegistrationRecord, oprfKey: Ristretto255.Scalar,
        clientIdentity: [UInt8]? = nil, serverIdentity: [UInt8]? = nil
    ) throws(OPAQUEError) -> (ke2: OPAQUE.KE2, state: LoginState) {
        // CreateCredentialResponse (RFC 9807 §5.3.2).
        let evaluatedMessage = OPRF.blindEvaluate(privateKey: oprfKey, blindedElement: ke1.blindedMessage)
        let maskingNonce = random.bytes(OPAQUE.nonceLength)
        let pad = OPAQUE.credentialResponsePad(maskingKey: record.maskingKey, maskingNonce: maskingNonce)
        let maskedResponse = pad.xor(publicKey.bytes + record.envelope.serialized).copyBytes()
        let credentialResponse = evaluatedMessage.bytes + maskingNonce + maskedResponse

        // AuthServerRespond (RFC 9807 §6.4.4).
        let credentials = try OPAQUE.CleartextCredentials(
            serverPublicKey: publicKey.bytes, clientPublicKey: record.clientPublicKey.bytes,
            serverIdentity: serverIdentity, clientIdentity: clientIdentity)
        let serverNonce = random.bytes(OPAQUE.nonceLength)
        var seed = random.bytes(OPAQUE.seedLength)
        let keyshareSeed = SecureBytes(copying: seed)
        secureZero(&seed)
        let (serverSecret, serverKeyshare) = try OPAQUE.diffieHellmanKeyPair(seed: keyshareSeed)
        let keys = OPAQUE.SessionKeys(
            sharedSecrets: [
                ke1.clientPublicKeyshare.sharedSecret(with: serverSecret),
                ke1.clientPublicKeyshare.sharedSecret(with: privateKey),
                record.clientPublicKey.sharedSecret(with: serverSecret),
            ],
            preamble: OPAQUE.preamble(
                context: configuration.context, credentials: credentials, ke1: ke1,
                credentialResponse: credentialResponse, serverNonce: serverNonce, serverPublicKeyshare: serverKeyshare))
        let ke2 = OPAQUE.KE2(
            evaluatedMessage: evaluatedMessage, maskingNonce: maskingNonce, maskedResponse: maskedResponse,
            serverNonce: serverNonce, serverPublicKeyshare: serverKeyshare, serverMAC: keys.serverMAC)
        return (ke2, LoginState(keys: keys))
    }

    /// ServerFinish: checks the client's MAC and returns the session key. Fails with
    /// `.clientAuthenticationFailed` on a wrong password and always for a fake record.
    public func finishLogin(_ ke3: OPAQUE.KE3, state: LoginState) throws(OPAQUEError) -> SecureBytes {
        guard constantTimeEqual(ke3.clientMAC, state.keys.clientMAC) else { throw .clientAuthenticationFailed }
        return state.keys.sessionKey
    }
}
