import CofferCrypto

/// A registration's own OPRF key as `vault.db` keeps it (FORMAT.md §16.1): sealed under a key
/// derived from `vault.key`, so that a copy of the database alone still allows no offline guess
/// (§15), and bound to the account name and the record it was registered with, so that a row
/// pieced together from others' fields does not open.
///
/// `u8 version (1) ‖ XChaCha20-Poly1305(K, nonce, ad, OPRF key (32))`, 73 bytes, where
/// K = HKDF-Expand(oprf_seed, "coffer-vault-oprf-key-seal-v1", 32) and
/// ad = "coffer-vault-oprf-key-v1" ‖ u8 len ‖ account name ‖ record (192).
struct SealedOPRFKey {
    static let version: UInt8 = 1
    static let length = 1 + XChaCha20Poly1305.overhead + Ristretto255.scalarLength
    static let keyInfo = Array("coffer-vault-oprf-key-seal-v1".utf8)
    static let adLabel = Array("coffer-vault-oprf-key-v1".utf8)

    /// The sealing key, derived once when the service starts.
    let key: SecureBytes

    init(server: OPAQUEServer) {
        key = server.storageKey(info: Self.keyInfo)
    }

    static func associatedData(account: [UInt8], record: [UInt8]) -> [UInt8] {
        adLabel + [UInt8(account.count)] + account + record
    }

    func seal(_ oprfKey: Ristretto255.Scalar, account: [UInt8], record: [UInt8], random: any RandomSource) -> [UInt8] {
        var plain = oprfKey.copyBytes()
        defer { secureZero(&plain) }
        return [Self.version]
            + XChaCha20Poly1305.seal(plain, authenticating: Self.associatedData(account: account, record: record), key: key, random: random)
    }

    /// Nil when the box does not open for this account and record (or is not a version-1 box).
    /// Always runs one AEAD open over the same lengths, so that a caller answering a row that
    /// has no key from a stand-in box spends the same time as for a real one.
    func open(_ sealed: [UInt8], account: [UInt8], record: [UInt8]) -> Ristretto255.Scalar? {
        guard sealed.count == Self.length else { return nil }
        guard var plain = try? XChaCha20Poly1305.open(
            sealed.dropFirst(), authenticating: Self.associatedData(account: account, record: record), key: key)
        else { return nil }
        defer { secureZero(&plain) }
        guard sealed[0] == Self.version else { return nil }
        return try? Ristretto255.Scalar(bytes: plain)
    }
}
