/// HKDF-SHA512 (RFC 5869), OPAQUE's KDF. Built on the streaming HMAC (`HMACSHA512`) because
/// libsodium 1.0.18 has no HKDF. Every output is key material, so it lives in `SecureBytes`.
enum HKDFSHA512 {
    static let hashLength = 64

    /// Extract(salt, IKM) over the concatenation of `ikm`. OPAQUE always passes the empty salt,
    /// which HMAC zero-pads to the same block as RFC 5869's default of HashLen zero bytes.
    static func extract(salt: [UInt8] = [], _ ikm: [any ReadableBytes]) -> SecureBytes {
        HMACSHA512.authenticateSecret(key: salt, ikm)
    }

    /// Expand(PRK, info, L): T(i) = HMAC(PRK, T(i-1) || info || i), truncated to `length`.
    static func expand(prk: some ReadableBytes, info: [UInt8], length: Int) -> SecureBytes {
        precondition(length > 0 && length <= 255 * hashLength)
        var blocks: [SecureBytes] = []
        for counter in 1...UInt8((length + hashLength - 1) / hashLength) {
            let previous: [any ReadableBytes] = blocks.last.map { [$0] } ?? []
            blocks.append(HMACSHA512.authenticateSecret(key: prk, previous + [info, [counter]]))
        }
        return SecureBytes(concatenating: blocks, count: length)
    }
}
