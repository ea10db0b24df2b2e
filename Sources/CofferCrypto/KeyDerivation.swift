import CSodium

/// libsodium's `crypto_kdf_derive_from_key`: BLAKE2b keyed by the master key, with the subkey
/// number as salt and an 8-byte context as personalisation (FORMAT.md §3).
public enum SubkeyDerivation {
    public static let contextSize = 8

    public static func derive(from master: SecureBytes, id: UInt64, context: String, length: Int = 32) -> SecureBytes {
        let ctx = Array(context.utf8)
        precondition(ctx.count == contextSize && master.count == 32 && (16...64).contains(length))
        return SecureBytes(count: length) { out in
            master.withUnsafeBytes { m in
                ctx.withUnsafeBytes { c in
                    let rc = crypto_kdf_derive_from_key(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), length, id,
                        c.baseAddress!.assumingMemoryBound(to: CChar.self),
                        m.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    precondition(rc == 0)
                }
            }
        }
    }
}
