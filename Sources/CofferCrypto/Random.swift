import CSodium

/// Where nonces, salts and object ids come from. Production uses the system CSPRNG; tests
/// inject a seeded stream so that test vectors are reproducible.
public protocol RandomSource: Sendable {
    func bytes(_ count: Int) -> [UInt8]
}

/// libsodium's `randombytes_buf` (getrandom(2) on Linux).
public struct SystemRandom: RandomSource {
    public init() { Sodium.initialize() }
    public func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) } }
        return out
    }
}

/// Deterministic bytes: the ChaCha20 keystream of a 32-byte seed. For tests and vectors only.
@_spi(Testing) public final class SeededRandom: RandomSource, @unchecked Sendable {
    private let seed: [UInt8]
    private var counter: UInt64 = 0
    private let lock = Lock()

    public init(seed: [UInt8]) {
        precondition(seed.count == 32)
        self.seed = seed
    }

    public func bytes(_ count: Int) -> [UInt8] {
        lock.withLock {
            var nonce = [UInt8](repeating: 0, count: 8)
            for i in 0..<8 { nonce[i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
            counter += 1
            return ChaCha20.keystream(count: count, key: seed, nonce8: nonce)
        }
    }
}

public enum ChaCha20 {
    /// The original (djb) ChaCha20 keystream with a 64-bit nonce, `crypto_stream_chacha20`.
    public static func keystream(count: Int, key: [UInt8], nonce8: [UInt8]) -> [UInt8] {
        keystream(count: count, key: SecureBytes(copying: key), nonce8: nonce8)
    }

    /// Same, keyed by secret storage.
    public static func keystream(count: Int, key: SecureBytes, nonce8: [UInt8]) -> [UInt8] {
        precondition(key.count == 32 && nonce8.count == 8)
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        out.withUnsafeMutableBytes { o in
            key.withUnsafeBytes { k in
                nonce8.withUnsafeBytes { n in
                    _ = crypto_stream_chacha20(o.baseAddress!, UInt64(count), nonceBase(n), keyBase(k))
                }
            }
        }
        return out
    }

    private static func nonceBase(_ b: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
        b.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }
    private static func keyBase(_ b: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
        b.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }
}
