/// The derivations RFC 9807 shares between client and server: OPRF key, randomized password,
/// envelope, credential-response masking and the 3DH key schedule. Each function is one box of
/// the RFC's pseudocode, named after it, so the two sides cannot drift apart.
extension OPAQUE {
    /// The per-account OPRF key: Expand(oprf_seed, credential_identifier || "OprfKey", Nok),
    /// then DeriveKeyPair(seed, "OPAQUE-DeriveKeyPair") (RFC 9807 §5.3.1). Deriving it from one
    /// server-wide seed keeps unknown accounts indistinguishable from known ones.
    static func oprfKey(oprfSeed: SecureBytes, credentialIdentifier: [UInt8]) throws(OPAQUEError) -> Ristretto255.Scalar {
        let seed = HKDFSHA512.expand(prk: oprfSeed, info: credentialIdentifier + Array("OprfKey".utf8), length: Ristretto255.scalarLength)
        return try OPRF.deriveKeyPair(seed: seed, info: Array("OPAQUE-DeriveKeyPair".utf8)).privateKey
    }

    /// DeriveDiffieHellmanKeyPair (RFC 9807 §6.4.2): the client's long-term key from its envelope
    /// and both parties' ephemeral keyshares.
    static func diffieHellmanKeyPair(seed: SecureBytes) throws(OPAQUEError) -> (privateKey: Ristretto255.Scalar, publicKey: Ristretto255.Element) {
        try OPRF.deriveKeyPair(seed: seed, info: Array("OPAQUE-DeriveDiffieHellmanKeyPair".utf8))
    }

    /// randomized_password = Extract("", oprf_output || Stretch(oprf_output)) (RFC 9807 §5.2.3).
    static func randomizedPassword(
        password: SecureBytes, blind: Ristretto255.Scalar, evaluatedElement: Ristretto255.Element,
        keyStretching: OPAQUEConfiguration.KeyStretching
    ) throws(OPAQUEError) -> SecureBytes {
        let oprfOutput = try OPRF.finalize(input: password, blind: blind, evaluatedElement: evaluatedElement)
        let stretched = try keyStretching.stretch(oprfOutput)
        return HKDFSHA512.extract([oprfOutput, stretched])
    }

    /// Expand(randomized_password, "MaskingKey", Nh).
    static func maskingKey(randomizedPassword: SecureBytes) -> SecureBytes {
        HKDFSHA512.expand(prk: randomizedPassword, info: Array("MaskingKey".utf8), length: hashLength)
    }

    /// The keys Store and Recover (RFC 9807 §4.1.2, §4.1.3) derive from the randomized password
    /// and the envelope nonce.
    struct EnvelopeKeys {
        let authKey: SecureBytes
        let exportKey: SecureBytes
        let clientPrivateKey: Ristretto255.Scalar
        let clientPublicKey: Ristretto255.Element

        init(randomizedPassword: SecureBytes, nonce: [UInt8]) throws(OPAQUEError) {
            func expand(_ label: String, _ length: Int) -> SecureBytes {
                HKDFSHA512.expand(prk: randomizedPassword, info: nonce + Array(label.utf8), length: length)
            }
            authKey = expand("AuthKey", hashLength)
            exportKey = expand("ExportKey", hashLength)
            (clientPrivateKey, clientPublicKey) = try diffieHellmanKeyPair(seed: expand("PrivateKey", seedLength))
        }

        /// MAC(auth_key, envelope_nonce || cleartext_credentials).
        func authTag(nonce: [UInt8], credentials: CleartextCredentials) -> [UInt8] {
            HMACSHA512.authenticate(key: authKey, nonce, credentials.serialized)
        }
    }

    /// CleartextCredentials (RFC 9807 §4.1.1): what the envelope authenticates. Absent
    /// identities default to the parties' public keys.
    struct CleartextCredentials {
        let serverPublicKey: [UInt8]
        let serverIdentity: [UInt8]
        let clientIdentity: [UInt8]

        init(serverPublicKey: [UInt8], clientPublicKey: [UInt8], serverIdentity: [UInt8]?, clientIdentity: [UInt8]?) throws(OPAQUEError) {
            self.serverPublicKey = serverPublicKey
            self.serverIdentity = serverIdentity ?? serverPublicKey
            self.clientIdentity = clientIdentity ?? clientPublicKey
            // Identities carry two-byte length prefixes (and may not be empty).
            guard (1...0xffff).contains(self.serverIdentity.count), (1...0xffff).contains(self.clientIdentity.count) else {
                throw .invalidInput
            }
        }

        var serialized: [UInt8] {
            serverPublicKey + lengthPrefixed(serverIdentity) + lengthPrefixed(clientIdentity)
        }
    }

    /// Expand(masking_key, masking_nonce || "CredentialResponsePad", Npk + Nn + Nm): XORed over
    /// server_public_key || envelope in KE2 (RFC 9807 §5.3.2).
    static func credentialResponsePad(maskingKey: some ReadableBytes, maskingNonce: [UInt8]) -> SecureBytes {
        HKDFSHA512.expand(
            prk: maskingKey, info: maskingNonce + Array("CredentialResponsePad".utf8), length: KE2.maskedResponseLength)
    }

    /// The 3DH transcript (RFC 9807 §6.4.1), hashed into every key and MAC of the handshake.
    static func preamble(
        context: [UInt8], credentials: CleartextCredentials, ke1: KE1, credentialResponse: [UInt8],
        serverNonce: [UInt8], serverPublicKeyshare: Ristretto255.Element
    ) -> [UInt8] {
        Array("OPAQUEv1-".utf8) + lengthPrefixed(context)
            + lengthPrefixed(credentials.clientIdentity) + ke1.serialized
            + lengthPrefixed(credentials.serverIdentity) + credentialResponse
            + serverNonce + serverPublicKeyshare.bytes
    }

    /// I2OSP(len, 2) || bytes, for fields whose length was checked on the way in (context,
    /// identities).
    static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count <= 0xffff)
        return [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
    }

    /// DeriveKeys (RFC 9807 §6.4.2) over ikm = dh1 || dh2 || dh3, plus both MACs.
    struct SessionKeys {
        let handshakeSecret: SecureBytes
        let sessionKey: SecureBytes
        let serverMACKey: SecureBytes
        let clientMACKey: SecureBytes
        /// MAC(Km2, Hash(preamble)).
        let serverMAC: [UInt8]
        /// MAC(Km3, Hash(preamble || server_mac)).
        let clientMAC: [UInt8]

        init(sharedSecrets: [SecureBytes], preamble: [UInt8]) {
            let prk = HKDFSHA512.extract(sharedSecrets)
            let transcriptHash = SHA512.hash(preamble)
            handshakeSecret = Self.deriveSecret(prk, "HandshakeSecret", transcriptHash)
            sessionKey = Self.deriveSecret(prk, "SessionKey", transcriptHash)
            serverMACKey = Self.deriveSecret(handshakeSecret, "ServerMAC", [])
            clientMACKey = Self.deriveSecret(handshakeSecret, "ClientMAC", [])
            serverMAC = HMACSHA512.authenticate(key: serverMACKey, transcriptHash)
            clientMAC = HMACSHA512.authenticate(key: clientMACKey, SHA512.hash(preamble, serverMAC))
        }

        /// Derive-Secret(secret, label, context) = Expand-Label(secret, label, context, Nx), whose
        /// info is the TLS 1.3-style struct { uint16 length; opaque label<8..255> = "OPAQUE-" ||
        /// label; opaque context<0..255> }.
        private static func deriveSecret(_ secret: SecureBytes, _ label: String, _ context: [UInt8]) -> SecureBytes {
            let fullLabel = Array("OPAQUE-\(label)".utf8)
            let info = [UInt8(hashLength >> 8), UInt8(hashLength & 0xff), UInt8(fullLabel.count)] + fullLabel
                + [UInt8(context.count)] + context
            return HKDFSHA512.expand(prk: secret, info: info, length: hashLength)
        }
    }
}
