import CSodium

/// XChaCha20-Poly1305 (IETF), libsodium's `crypto_aead_xchacha20poly1305_ietf_*`.
/// The combined form is `nonce (24) ‖ ciphertext ‖ tag (16)` (FORMAT.md §2).
public enum XChaCha20Poly1305 {
    public static let keySize = 32
    public static let nonceSize = 24
    public static let tagSize = 16
    /// Bytes a sealed box adds to its plaintext.
    public static let overhead = nonceSize + tagSize

    public enum Failure: Error, Equatable {
        /// Wrong key, tampered bytes, wrong associated data or truncation: deliberately one case.
        case authenticationFailed
        case tooShort
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` to `output`, avoiding an intermediate copy.
    public static func seal<P: Collection<UInt8>, A: Collection<UInt8>>(
        _ plaintext: P, authenticating ad: A, key: SecureBytes, nonce: [UInt8], appendingTo output: inout [UInt8]
    ) {
        precondition(key.count == keySize && nonce.count == nonceSize)
        let start = output.count
        output.append(contentsOf: nonce)
        output.append(contentsOf: repeatElement(0, count: plaintext.count + tagSize))
        withContiguousBytes(plaintext) { m in
            withContiguousBytes(ad) { a in
                key.withUnsafeBytes { k in
                    output.withUnsafeMutableBytes { out in
                        let c = out.baseAddress!.advanced(by: start + nonceSize).assumingMemoryBound(to: UInt8.self)
                        let n = out.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self)
                        var clen: UInt64 = 0
                        let rc = crypto_aead_xchacha20poly1305_ietf_encrypt(
                            c, &clen, nonNullBase(m), UInt64(m.count), a.count == 0 ? nil : nonNullBase(a),
                            UInt64(a.count), nil, n, nonNullBase(k))
                        precondition(rc == 0 && clen == UInt64(m.count + tagSize))
                    }
                }
            }
        }
    }

    /// Seals with a fresh random nonce from `random`.
    public static func seal<P: Collection<UInt8>, A: Collection<UInt8>>(
        _ plaintext: P, authenticating ad: A, key: SecureBytes, random: any RandomSource
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + overhead)
        seal(plaintext, authenticating: ad, key: key, nonce: random.bytes(nonceSize), appendingTo: &out)
        return out
    }

    /// Opens a combined box; throws `authenticationFailed` for any mismatch.
    public static func open<B: Collection<UInt8>, A: Collection<UInt8>>(
        _ box: B, authenticating ad: A, key: SecureBytes
    ) throws(Failure) -> [UInt8] {
        precondition(key.count == keySize)
        guard box.count >= overhead else { throw .tooShort }
        let plainCount = box.count - overhead
        // Not zeroed first: libsodium writes every byte before it is counted, and a blob's
        // memset showed in restore profiles. One spare byte keeps the output pointer non-null
        // for an empty plaintext; it is never counted.
        var rc: Int32 = -1
        let plain = [UInt8](unsafeUninitializedCapacity: plainCount + 1) { p, initialized in
            initialized = 0
            rc = withContiguousBytes(box) { b in
                withContiguousBytes(ad) { a in
                    key.withUnsafeBytes { k in
                        var mlen: UInt64 = 0
                        let n = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        return crypto_aead_xchacha20poly1305_ietf_decrypt(
                            p.baseAddress!, &mlen, nil, n.advanced(by: nonceSize), UInt64(b.count - nonceSize),
                            a.count == 0 ? nil : nonNullBase(a), UInt64(a.count), n, nonNullBase(k))
                    }
                }
            }
            if rc == 0 { initialized = plainCount }
        }
        guard rc == 0 else { throw .authenticationFailed }
        return plain
    }
}
