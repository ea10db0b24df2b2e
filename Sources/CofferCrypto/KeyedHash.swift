import CBlake2Lanes
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

    /// Keyed BLAKE2b-256 of each message under a key of at most 64 bytes, digests in order:
    /// the same digests as `hash256` one by one. With AVX2, four messages are hashed at once,
    /// one per vector lane (CBlake2Lanes), at about a third of the cost per byte; hand it
    /// many messages (a batch of chunks), not one.
    public static func hash256(each messages: [UnsafeRawBufferPointer], key: SecureBytes) -> [[UInt8]] {
        hash256(each: messages, key: key, kernel: nil)!
    }

    /// The kernels that can run on this CPU, for the tests that compare them.
    public enum Kernel: Int32, Sendable, CaseIterable {
        case serial = 0, avx2 = 1, avx512vl = 2
    }

    /// Messages hashed at once on this CPU.
    public static var lanes: Int { Int(coffer_blake2b_lanes()) }

    /// `hash256(each:key:)` through one kernel, or nil when this CPU lacks it.
    public static func hash256(each messages: [UnsafeRawBufferPointer], key: SecureBytes, kernel: Kernel?) -> [[UInt8]]? {
        precondition(key.count <= 64, "a BLAKE2b key has at most 64 bytes")
        if messages.isEmpty { return [] }
        var digests = [UInt8](repeating: 0, count: 32 * messages.count)
        let status: Int32 = digests.withUnsafeMutableBytes { out in
            var jobs = messages.enumerated().map { i, m in
                coffer_hash_job(
                    data: nonNullBase(m), length: m.count,
                    out: out.baseAddress!.advanced(by: 32 * i).assumingMemoryBound(to: UInt8.self))
            }
            return key.withUnsafeBytes { k in
                guard let kernel else { return coffer_blake2b256_many(&jobs, jobs.count, nonNullBase(k), k.count) }
                return coffer_blake2b256_many_with(kernel.rawValue, &jobs, jobs.count, nonNullBase(k), k.count)
            }
        }
        guard status == 0 else { return nil }
        return (0..<messages.count).map { Array(digests[32 * $0 ..< 32 * $0 + 32]) }
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
