import CSodium

/// Argon2id v1.3 through libsodium's `crypto_pwhash` (one lane).
public enum Argon2id {
    public static let saltSize = 16

    public enum Failure: Error, Equatable {
        /// libsodium refused: parameters out of range or not enough memory.
        case failed(opsLimit: UInt64, memoryBytes: UInt64)
    }

    /// Smallest parameters libsodium accepts (for tests; never a default).
    public static let minimumOpsLimit = UInt64(crypto_pwhash_argon2id_opslimit_min())
    public static let minimumMemoryBytes = UInt64(crypto_pwhash_argon2id_memlimit_min())

    /// Stretches `password` into `outputLength` secret bytes.
    public static func derive(
        password: SecureBytes, salt: [UInt8], opsLimit: UInt64, memoryBytes: UInt64, outputLength: Int = 32
    ) throws(Failure) -> SecureBytes {
        precondition(salt.count == saltSize)
        var rc: Int32 = 0
        let key = SecureBytes(count: outputLength) { out in
            password.withUnsafeBytes { p in
                salt.withUnsafeBytes { s in
                    rc = crypto_pwhash(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(outputLength),
                        p.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64(p.count),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self), opsLimit, Int(memoryBytes),
                        crypto_pwhash_ALG_ARGON2ID13)
                }
            }
        }
        guard rc == 0 else { throw .failed(opsLimit: opsLimit, memoryBytes: memoryBytes) }
        return key
    }
}
