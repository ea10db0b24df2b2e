/// OPAQUE-3DH (RFC 9807) with ristretto255-SHA512: sizes and the wire messages, each with
/// `serialized` in the RFC's layout (fixed-length fields, concatenated) and `init(bytes:)`,
/// which checks the length and that every group element is valid and not the identity.
public enum OPAQUE {
    /// Nn: nonces (envelope, masking, client and server).
    public static let nonceLength = 32
    /// Nseed: key-pair seeds.
    static let seedLength = 32
    /// Nh = Nm = Nx: hash, MAC and KDF-extract output; also the export and session key length.
    public static let hashLength = 64
    /// Npk = Noe: serialized public keys and OPRF elements.
    static let elementLength = Ristretto255.elementLength

    /// The client's first registration message: its blinded password.
    public struct RegistrationRequest: Sendable, Equatable {
        public static let length = elementLength
        public let blindedMessage: Ristretto255.Element

        init(blindedMessage: Ristretto255.Element) { self.blindedMessage = blindedMessage }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            blindedMessage = try reader.element()
        }

        public var serialized: [UInt8] { blindedMessage.bytes }
    }

    /// The server's registration answer: the OPRF evaluation and the server's public key.
    public struct RegistrationResponse: Sendable, Equatable {
        public static let length = 2 * elementLength
        public let evaluatedMessage: Ristretto255.Element
        public let serverPublicKey: Ristretto255.Element

        init(evaluatedMessage: Ristretto255.Element, serverPublicKey: Ristretto255.Element) {
            self.evaluatedMessage = evaluatedMessage
            self.serverPublicKey = serverPublicKey
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            evaluatedMessage = try reader.element()
            serverPublicKey = try reader.element()
        }

        public var serialized: [UInt8] { evaluatedMessage.bytes + serverPublicKey.bytes }
    }

    /// The client's sealed credentials: a nonce and a MAC binding the server's public key and
    /// both identities to the password (its private key is re-derived, not stored).
    public struct Envelope: Sendable, Equatable {
        public static let length = nonceLength + hashLength
        public let nonce: [UInt8]
        public let authTag: [UInt8]

        init(nonce: [UInt8], authTag: [UInt8]) {
            precondition(nonce.count == nonceLength && authTag.count == hashLength)
            self.nonce = nonce
            self.authTag = authTag
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            nonce = reader.bytes(nonceLength)
            authTag = reader.bytes(hashLength)
        }

        public var serialized: [UInt8] { nonce + authTag }
    }

    /// What the server stores per account (the client's registration upload).
    public struct RegistrationRecord: Sendable, Equatable {
        public static let length = elementLength + hashLength + Envelope.length
        public let clientPublicKey: Ristretto255.Element
        /// Hides the server's public key and the envelope in KE2 from anyone without the password.
        public let maskingKey: [UInt8]
        public let envelope: Envelope

        init(clientPublicKey: Ristretto255.Element, maskingKey: [UInt8], envelope: Envelope) {
            precondition(maskingKey.count == hashLength)
            self.clientPublicKey = clientPublicKey
            self.maskingKey = maskingKey
            self.envelope = envelope
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            clientPublicKey = try reader.element()
            maskingKey = reader.bytes(hashLength)
            envelope = try Envelope(bytes: reader.bytes(Envelope.length))
        }

        public var serialized: [UInt8] { clientPublicKey.bytes + maskingKey + envelope.serialized }
    }

    /// The client's first login message: credential request (blinded password) and its half of
    /// the 3DH handshake.
    public struct KE1: Sendable, Equatable {
        public static let length = elementLength + nonceLength + elementLength
        public let blindedMessage: Ristretto255.Element
        public let clientNonce: [UInt8]
        public let clientPublicKeyshare: Ristretto255.Element

        init(blindedMessage: Ristretto255.Element, clientNonce: [UInt8], clientPublicKeyshare: Ristretto255.Element) {
            precondition(clientNonce.count == nonceLength)
            self.blindedMessage = blindedMessage
            self.clientNonce = clientNonce
            self.clientPublicKeyshare = clientPublicKeyshare
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            blindedMessage = try reader.element()
            clientNonce = reader.bytes(nonceLength)
            clientPublicKeyshare = try reader.element()
        }

        public var serialized: [UInt8] { blindedMessage.bytes + clientNonce + clientPublicKeyshare.bytes }
    }

    /// The server's login answer: credential response (OPRF evaluation and the masked server
    /// public key and envelope) and its half of the handshake, authenticated by `serverMAC`.
    public struct KE2: Sendable, Equatable {
        static let maskedResponseLength = elementLength + Envelope.length
        static let credentialResponseLength = elementLength + nonceLength + maskedResponseLength
        public static let length = credentialResponseLength + nonceLength + elementLength + hashLength

        public let evaluatedMessage: Ristretto255.Element
        public let maskingNonce: [UInt8]
        /// server_public_key || envelope, XORed with a pad derived from the record's masking key.
        public let maskedResponse: [UInt8]
        public let serverNonce: [UInt8]
        public let serverPublicKeyshare: Ristretto255.Element
        public let serverMAC: [UInt8]

        init(
            evaluatedMessage: Ristretto255.Element, maskingNonce: [UInt8], maskedResponse: [UInt8],
            serverNonce: [UInt8], serverPublicKeyshare: Ristretto255.Element, serverMAC: [UInt8]
        ) {
            precondition(maskingNonce.count == nonceLength && maskedResponse.count == Self.maskedResponseLength)
            precondition(serverNonce.count == nonceLength && serverMAC.count == hashLength)
            self.evaluatedMessage = evaluatedMessage
            self.maskingNonce = maskingNonce
            self.maskedResponse = maskedResponse
            self.serverNonce = serverNonce
            self.serverPublicKeyshare = serverPublicKeyshare
            self.serverMAC = serverMAC
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            evaluatedMessage = try reader.element()
            maskingNonce = reader.bytes(nonceLength)
            maskedResponse = reader.bytes(Self.maskedResponseLength)
            serverNonce = reader.bytes(nonceLength)
            serverPublicKeyshare = try reader.element()
            serverMAC = reader.bytes(hashLength)
        }

        /// The CredentialResponse part, as the 3DH preamble includes it.
        var credentialResponse: [UInt8] { evaluatedMessage.bytes + maskingNonce + maskedResponse }

        public var serialized: [UInt8] { credentialResponse + serverNonce + serverPublicKeyshare.bytes + serverMAC }
    }

    /// The client's last login message: its MAC over the transcript, proving it knew the password.
    public struct KE3: Sendable, Equatable {
        public static let length = hashLength
        public let clientMAC: [UInt8]

        init(clientMAC: [UInt8]) {
            precondition(clientMAC.count == hashLength)
            self.clientMAC = clientMAC
        }

        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            var reader = try FieldReader(bytes, length: Self.length)
            clientMAC = reader.bytes(hashLength)
        }

        public var serialized: [UInt8] { clientMAC }
    }
}

/// Splits a fixed-layout message into its fields once its total length has been checked.
private struct FieldReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: some Collection<UInt8>, length: Int) throws(OPAQUEError) {
        self.bytes = Array(bytes)
        guard self.bytes.count == length else { throw .invalidLength(expected: length, actual: self.bytes.count) }
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func element() throws(OPAQUEError) -> Ristretto255.Element {
        try Ristretto255.Element(bytes: bytes(Ristretto255.elementLength))
    }
}
