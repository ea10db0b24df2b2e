/// The client side of OPAQUE-3DH (RFC 9807): registers a password with a server without ever
/// sending it, then logs in by proving knowledge of it, ending with a session key shared with
/// the server and an export key only the client can compute.
///
/// Each exchange is two calls: `start…` returns a message for the server and a state to keep,
/// `finish…` consumes the server's reply. Identities, when given, must be the same at
/// registration and login; when absent they default to the parties' public keys.
public struct OPAQUEClient: Sendable {
    public let configuration: OPAQUEConfiguration
    /// Randomness, in the order each step draws it (tests inject a vector's values this way).
    private let random: any RandomSource

    public init(configuration: OPAQUEConfiguration, random: any RandomSource = SystemRandom()) {
        Sodium.initialize()
        self.configuration = configuration
        self.random = random
    }

    /// Kept between `startRegistration` and `finishRegistration`; holds the password, so it
    /// never prints it.
    public struct RegistrationState: Sendable, CustomStringConvertible {
        let password: SecureBytes
        let blind: Ristretto255.Scalar
        public var description: String { "OPAQUEClient.RegistrationState(redacted)" }
    }

    public struct RegistrationResult: Sendable {
        /// For the server to store.
        public let record: OPAQUE.RegistrationRecord
        /// A key only someone who knows the password can re-derive (at each login).
        public let exportKey: SecureBytes
    }

    /// Kept between `startLogin` and `finishLogin`; holds the password and the ephemeral
    /// private key, so it never prints them.
    public struct LoginState: Sendable, CustomStringConvertible {
        let password: SecureBytes
        let blind: Ristretto255.Scalar
        let clientSecret: Ristretto255.Scalar
        let ke1: OPAQUE.KE1
        public var description: String { "OPAQUEClient.LoginState(redacted)" }
    }

    public struct LoginResult: Sendable {
        /// For the server, which confirms the login with it.
        public let ke3: OPAQUE.KE3
        public let sessionKey: SecureBytes
        /// The same export key registration produced.
        public let exportKey: SecureBytes
        /// The server key the envelope authenticated: the one seen at registration.
        public let serverPublicKey: Ristretto255.Element
    }

    /// CreateRegistrationRequest. Draws the blind.
    public func startRegistration(password: SecureBytes) throws(OPAQUEError) -> (request: OPAQUE.RegistrationRequest, state: RegistrationState) {
        let (blind, blindedElement) = try OPRF.blind(input: password, using: random)
        return (OPAQUE.RegistrationRequest(blindedMessage: blindedElement), RegistrationState(password: password, blind: blind))
    }

    /// FinalizeRegistrationRequest: seals the envelope. Draws the envelope nonce.
    public func finishRegistration(
        _ response: OPAQUE.RegistrationResponse, state: RegistrationState,
        clientIdentity: [UInt8]? = nil, serverIdentity: [UInt8]? = nil
    ) throws(OPAQUEError) -> RegistrationResult {
        let randomizedPassword = try OPAQUE.randomizedPassword(
            password: state.password, blind: state.blind, evaluatedElement: response.evaluatedMessage,
            keyStretching: configuration.keyStretching)
        // Store (RFC 9807 §4.1.2).
        let nonce = random.bytes(OPAQUE.nonceLength)
        let keys = try OPAQUE.EnvelopeKeys(randomizedPassword: randomizedPassword, nonce: nonce)
        let credentials = try OPAQUE.CleartextCredentials(
            serverPublicKey: response.serverPublicKey.bytes, clientPublicKey: keys.clientPublicKey.bytes,
            serverIdentity: serverIdentity, clientIdentity: clientIdentity)
        let envelope = OPAQUE.Envelope(nonce: nonce, authTag: keys.authTag(nonce: nonce, credentials: credentials))
        let record = OPAQUE.RegistrationRecord(
            clientPublicKey: keys.clientPublicKey,
            maskingKey: OPAQUE.maskingKey(randomizedPassword: randomizedPassword).copyBytes(),
            envelope: envelope)
        return RegistrationResult(record: record, exportKey: keys.exportKey)
    }

    /// GenerateKE1. Draws the blind, the client nonce and the client keyshare seed.
    public func startLogin(password: SecureBytes) throws(OPAQUEError) -> (ke1: OPAQUE.KE1, state: LoginState) {
        let (blind, blindedElement) = try OPRF.blind(input: password, using: random)
        let nonce = random.bytes(OPAQUE.nonceLength)
        var seed = random.bytes(OPAQUE.seedLength)
        let keyshareSeed = SecureBytes(copying: seed)
        secureZero(&seed)
        let (clientSecret, clientKeyshare) = try OPAQUE.diffieHellmanKeyPair(seed: keyshareSeed)
        let ke1 = OPAQUE.KE1(blindedMessage: blindedElement, clientNonce: nonce, clientPublicKeyshare: clientKeyshare)
        return (ke1, LoginState(password: password, blind: blind, clientSecret: clientSecret, ke1: ke1))
    }

    /// GenerateKE3: opens the envelope, checks the server's MAC and derives the session key.
    /// A wrong password fails with `.envelopeRecoveryFailed`; a server that does not hold this
    /// record (or a tampered KE2) fails with `.envelopeRecoveryFailed` or `.serverAuthenticationFailed`.
    public func finishLogin(
        _ ke2: OPAQUE.KE2, state: LoginState, clientIdentity: [UInt8]? = nil, serverIdentity: [UInt8]? = nil
    ) throws(OPAQUEError) -> LoginResult {
        // RecoverCredentials (RFC 9807 §6.3.2.2).
        let randomizedPassword = try OPAQUE.randomizedPassword(
            password: state.password, blind: state.blind, evaluatedElement: ke2.evaluatedMessage,
            keyStretching: configuration.keyStretching)
        let pad = OPAQUE.credentialResponsePad(
            maskingKey: OPAQUE.maskingKey(randomizedPassword: randomizedPassword), maskingNonce: ke2.maskingNonce)
        let unmasked = pad.xor(ke2.maskedResponse).copyBytes()
        let serverPublicKeyBytes = Array(unmasked[..<OPAQUE.elementLength])
        let envelope = try OPAQUE.Envelope(bytes: unmasked[OPAQUE.elementLength...])

        // Recover (RFC 9807 §4.1.3). The tag is checked over the raw bytes before the server key
        // is parsed: with a wrong password those bytes are noise, and that must read as a wrong
        // password, not as a malformed key.
        let keys = try OPAQUE.EnvelopeKeys(randomizedPassword: randomizedPassword, nonce: envelope.nonce)
        let credentials = try OPAQUE.CleartextCredentials(
            serverPublicKey: serverPublicKeyBytes, clientPublicKey: keys.clientPublicKey.bytes,
            serverIdentity: serverIdentity, clientIdentity: clientIdentity)
        guard constantTimeEqual(keys.authTag(nonce: envelope.nonce, credentials: credentials), envelope.authTag) else {
            throw .envelopeRecoveryFailed
        }
        let serverPublicKey = try Ristretto255.Element(bytes: serverPublicKeyBytes)

        // AuthClientFinalize (RFC 9807 §6.4.3).
        let sessionKeys = OPAQUE.SessionKeys(
            sharedSecrets: [
                ke2.serverPublicKeyshare.sharedSecret(with: state.clientSecret),
                serverPublicKey.sharedSecret(with: state.clientSecret),
                ke2.serverPublicKeyshare.sharedSecret(with: keys.clientPrivateKey),
            ],
            preamble: OPAQUE.preamble(
                context: configuration.context, credentials: credentials, ke1: state.ke1,
                credentialResponse: ke2.credentialResponse, serverNonce: ke2.serverNonce,
                serverPublicKeyshare: ke2.serverPublicKeyshare))
        guard constantTimeEqual(sessionKeys.serverMAC, ke2.serverMAC) else { throw .serverAuthenticationFailed }
        return LoginResult(
            ke3: OPAQUE.KE3(clientMAC: sessionKeys.clientMAC), sessionKey: sessionKeys.sessionKey,
            exportKey: keys.exportKey, serverPublicKey: serverPublicKey)
    }
}
