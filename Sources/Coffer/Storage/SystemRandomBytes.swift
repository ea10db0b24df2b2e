import CofferCrypto

/// Non-secret randomness for temporary names.
enum SystemRandomBytes {
    static func bytes(_ n: Int) -> [UInt8] { SystemRandom().bytes(n) }
}
