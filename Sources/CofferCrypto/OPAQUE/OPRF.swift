/// The oblivious pseudorandom function of RFC 9497 in base mode (modeOPRF, 0x00) with the
/// ristretto255-SHA512 suite: the client learns F(key, input) without revealing its input, and
/// the server without revealing its key. OPAQUE runs the password through it.
public enum OPRF {
    /// Nh: the length of Finalize's output.
    public static let outputLength = 64

    /// "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier (RFC 9497 §3.1).
    static let contextString: [UInt8] = Array("OPRFV1-".utf8) + [0x00] + Array("-ristretto255-SHA512".utf8)
    static let hashToGroupDST = Array("HashToGroup-".utf8) + contextString
    static let deriveKeyPairDST = Array("DeriveKeyPair".utf8) + contextString

    /// DeriveKeyPair (RFC 9497 §3.2.1): a key pair determined by `seed` and `info`.
    public static func deriveKeyPair(
        seed: SecureBytes, info: [UInt8]
    ) throws(OPAQUEError) -> (privateKey: Ristretto255.Scalar, publicKey: Ristretto255.Element) {
        let infoField = try lengthPrefixed(info)
        // Zero is retried with the next counter; 256 zeros in a row would take a broken hash.
        for counter in 0...255 {
            if let key = Ristretto255.hashToScalar([seed, infoField, [UInt8(counter)]], dst: deriveKeyPairDST) {
                return (key, Ristretto255.Element(generatorTimes: key))
            }
        }
        throw .deriveKeyPairFailed
    }

    /// Blind (RFC 9497 §3.3.1) with a fresh random blind.
    public static func blind(
        input: SecureBytes, using random: some RandomSource
    ) throws(OPAQUEError) -> (blind: Ristretto255.Scalar, blindedElement: Ristretto255.Element) {
        let blind = Ristretto255.Scalar.random(using: random)
        return (blind, try self.blind(input: input, blind: blind))
    }

    /// Blind with a given blind: hashes `input` to the group and multiplies by `blind`.
    public static func blind(input: SecureBytes, blind: Ristretto255.Scalar) throws(OPAQUEError) -> Ristretto255.Element {
        guard input.count <= 0xffff, let inputElement = Ristretto255.hashToGroup([input], dst: hashToGroupDST) else {
            throw .invalidInput
        }
        return inputElement.multiplied(by: blind)
    }

    /// BlindEvaluate (RFC 9497 §3.3.1): the server's side, `privateKey` times the blinded element.
    public static func blindEvaluate(privateKey: Ristretto255.Scalar, blindedElement: Ristretto255.Element) -> Ristretto255.Element {
        blindedElement.multiplied(by: privateKey)
    }

    /// Finalize (RFC 9497 §3.3.1): unblinds the evaluation and hashes it with the input.
    public static func finalize(
        input: SecureBytes, blind: Ristretto255.Scalar, evaluatedElement: Ristretto255.Element
    ) throws(OPAQUEError) -> SecureBytes {
        let inputLength = try lengthPrefix(input.count)
        let unblinded = evaluatedElement.sharedSecret(with: blind.inverse())
        return SHA512.hashSecret([inputLength, input, try lengthPrefix(unblinded.count), unblinded, Array("Finalize".utf8)])
    }

    /// I2OSP(length, 2): the two-byte big-endian length prefix used throughout RFC 9497 and 9807.
    static func lengthPrefix(_ length: Int) throws(OPAQUEError) -> [UInt8] {
        guard length <= 0xffff else { throw .invalidInput }
        return [UInt8(length >> 8), UInt8(length & 0xff)]
    }

    static func lengthPrefixed(_ bytes: [UInt8]) throws(OPAQUEError) -> [UInt8] {
        try lengthPrefix(bytes.count) + bytes
    }
}
