import CSodium
import Crypto

/// SHA-256 (FIPS 180-4) through swift-crypto (BoringSSL on Linux), which uses the CPU's SHA
/// extensions: 0.6 ns per byte here against libsodium's 2.3, and an S3 upload over plain HTTP
/// hashes every byte it sends (SigV4 signs the payload there). Coffer's own format uses
/// BLAKE2b; SHA-256 is here for protocols that require it (AWS Signature Version 4).
public enum SHA256 {
    public static let digestLength = 32

    /// The SHA-256 digest of `message`.
    public static func hash<M: Collection<UInt8>>(_ message: M) -> [UInt8] {
        withContiguousBytes(message) { m in Array(Crypto.SHA256.hash(data: m)) }
    }
}

/// HMAC-SHA256 (RFC 2104) through libsodium's streaming `crypto_auth_hmacsha256_*` calls,
/// which, unlike the one-shot `crypto_auth_hmacsha256`, accept a key of any length
/// (keys longer than the 64-byte block are hashed first, as RFC 2104 requires).
public enum HMACSHA256 {
    public static let macLength = 32

    public static func authenticate<M: Collection<UInt8>>(_ message: M, key: [UInt8]) -> [UInt8] {
        var state = crypto_auth_hmacsha256_state()
        var out = [UInt8](repeating: 0, count: macLength)
        key.withUnsafeBytes { k in
            _ = crypto_auth_hmacsha256_init(&state, nonNullBase(k), k.count)
        }
        withContiguousBytes(message) { m in
            _ = crypto_auth_hmacsha256_update(&state, nonNullBase(m), UInt64(m.count))
        }
        out.withUnsafeMutableBytes { o in
            _ = crypto_auth_hmacsha256_final(&state, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        // The state holds key-derived pads; wipe it.
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress!, $0.count) }
        return out
    }
}
