/// expand_message_xmd (RFC 9380 §5.3.1) with SHA-512, and the two hash-to-ristretto255 maps
/// RFC 9497 builds on it (§4.1: 64 uniform bytes per element or scalar). libsodium 1.0.18 has
/// the maps from uniform bytes but not the expansion.
enum ExpandMessageXMD {
    /// SHA-512's input block size in bytes (r_in_bytes / s_in_bytes), the zero pad's length.
    private static let blockLength = 128

    /// `length` uniform bytes from the concatenation of `message` under domain separation tag `dst`.
    /// Output is secret when the message is (a password, a key seed), so it stays in `SecureBytes`.
    static func sha512(_ message: [any ReadableBytes], dst: [UInt8], length: Int) -> SecureBytes {
        let blockCount = (length + SHA512.digestLength - 1) / SHA512.digestLength
        precondition(length > 0 && length <= 0xffff && blockCount <= 255 && dst.count <= 255)
        let dstPrime = dst + [UInt8(dst.count)]
        let zeroPad = [UInt8](repeating: 0, count: blockLength)
        let lengthBytes: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff)]
        let b0 = SHA512.hashSecret([zeroPad] + message + [lengthBytes, [0], dstPrime])
        var blocks = [SHA512.hashSecret([b0, [1], dstPrime])]
        for i in stride(from: 2, through: blockCount, by: 1) {
            blocks.append(SHA512.hashSecret([b0.xor(blocks[blocks.count - 1]), [UInt8(i)], dstPrime]))
        }
        return SecureBytes(concatenating: blocks, count: length)
    }
}

extension Ristretto255 {
    /// hash_to_group (RFC 9497 §4.1): expand to 64 bytes, then ristretto255's one-way map.
    /// Nil for the identity, which callers must refuse (probability about 2^-252).
    static func hashToGroup(_ message: [any ReadableBytes], dst: [UInt8]) -> Element? {
        Element(uniformBytes: ExpandMessageXMD.sha512(message, dst: dst, length: uniformLength))
    }

    /// hash_to_scalar (RFC 9497 §4.1): expand to 64 bytes, reduce modulo the group order.
    /// Nil for zero, which DeriveKeyPair retries with the next counter.
    static func hashToScalar(_ message: [any ReadableBytes], dst: [UInt8]) -> Scalar? {
        Scalar(reducing: ExpandMessageXMD.sha512(message, dst: dst, length: uniformLength))
    }
}
