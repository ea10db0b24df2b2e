import CSodium

/// Byte containers the SHA-512 wrappers read in place, so that secrets held in `SecureBytes`
/// are hashed without an unguarded copy.
protocol ReadableBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ReadableBytes where Element == UInt8 {}
extension SecureBytes: ReadableBytes {}

/// SHA-512 (FIPS 180-4) through libsodium's streaming `crypto_hash_sha512_*`, over the
/// concatenation of several parts (OPAQUE hashes long concatenations it never needs whole).
enum SHA512 {
    static let digestLength = 64

    static func hash(_ parts: any ReadableBytes...) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        out.withUnsafeMutableBytes { compute(parts, into: $0) }
        return out
    }

    /// Same, for a digest that is key material (expand_message_xmd over a password or seed).
    static func hashSecret(_ parts: [any ReadableBytes]) -> SecureBytes {
        SecureBytes(count: digestLength) { compute(parts, into: $0) }
    }

    private static func compute(_ parts: [any ReadableBytes], into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == digestLength)
        var state = crypto_hash_sha512_state()
        _ = crypto_hash_sha512_init(&state)
        for part in parts {
            part.withUnsafeBytes { p in _ = crypto_hash_sha512_update(&state, nonNullBase(p), UInt64(p.count)) }
        }
        _ = crypto_hash_sha512_final(&state, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        // The state buffers the last message block, which may hold secret input.
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress!, $0.count) }
    }
}

/// HMAC-SHA512 (RFC 2104) through libsodium's streaming `crypto_auth_hmacsha512_*`. The one-shot
/// `crypto_auth_hmacsha512` reads only 32 key bytes; OPAQUE's MAC and HKDF keys are 64 bytes.
enum HMACSHA512 {
    static let macLength = 64

    /// The MAC of the concatenation of `parts`.
    static func authenticate(key: some ReadableBytes, _ parts: any ReadableBytes...) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: macLength)
        out.withUnsafeMutableBytes { compute(key: key, parts, into: $0) }
        return out
    }

    /// Same, for a MAC that is itself key material (HKDF's PRK and output blocks).
    static func authenticateSecret(key: some ReadableBytes, _ parts: [any ReadableBytes]) -> SecureBytes {
        SecureBytes(count: macLength) { compute(key: key, parts, into: $0) }
    }

    private static func compute(key: some ReadableBytes, _ parts: [any ReadableBytes], into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == macLength)
        var state = crypto_auth_hmacsha512_state()
        key.withUnsafeBytes { k in _ = crypto_auth_hmacsha512_init(&state, nonNullBase(k), k.count) }
        for part in parts {
            part.withUnsafeBytes { p in _ = crypto_auth_hmacsha512_update(&state, nonNullBase(p), UInt64(p.count)) }
        }
        _ = crypto_auth_hmacsha512_final(&state, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        // The state holds key-derived pads; wipe it.
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress!, $0.count) }
    }
}

extension SecureBytes {
    /// The first `count` bytes of the concatenation of `parts`, copied guarded memory to guarded
    /// memory (HKDF and expand_message_xmd output blocks).
    convenience init(concatenating parts: [any ReadableBytes], count: Int) {
        self.init(count: count) { out in
            var offset = 0
            for part in parts where offset < count {
                part.withUnsafeBytes { p in
                    let n = min(p.count, count - offset)
                    for i in 0..<n { out[offset + i] = p[i] }
                    offset += n
                }
            }
            precondition(offset == count, "not enough input bytes")
        }
    }

    /// `self` XOR `other`, both of the same length.
    func xor(_ other: some ReadableBytes) -> SecureBytes {
        withUnsafeBytes { a in
            other.withUnsafeBytes { b in
                precondition(a.count == b.count)
                return SecureBytes(count: a.count) { out in
                    for i in 0..<a.count { out[i] = a[i] ^ b[i] }
                }
            }
        }
    }
}
