public import CofferCrypto

/// What a vault slot's account keeps in the vault (FORMAT.md §5.3): the slot's random secret,
/// sealed under a key that only OPAQUE's export key — so only the password, through a login the
/// vault counts — can give. The vault stores it without being able to open it.
public enum VaultSealedKey {
    static let version: UInt8 = 1
    static let exportLabel = Array("coffer-vault-export-v1".utf8)
    static let sealLabel = Array("coffer-vault-sealed-key-v1".utf8)
    /// version ‖ nonce ‖ 32-byte secret ‖ tag.
    public static let length = 1 + 32 + XChaCha20Poly1305.overhead

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func seal(vaultSecret: SecureBytes, exportKey: SecureBytes, slot: KeySlot, random: any RandomSource) -> [UInt8] {
        var out: [UInt8] = [version]
        vaultSecret.withUnsafeBytes { secret in
            XChaCha20Poly1305.seal(
                secret, authenticating: associatedData(slot), key: sealingKey(exportKey: exportKey, slot: slot),
                nonce: random.bytes(XChaCha20Poly1305.nonceSize), appendingTo: &out)
        }
        return out
    }

    /// The slot's secret. Fails when the sealed key belongs to another slot or account, or was
    /// altered: the vault answered for the password, but not with this slot's key.
    public static func open(_ sealed: [UInt8], exportKey: SecureBytes, slot: KeySlot) throws(Failure) -> SecureBytes {
        guard sealed.count == length, sealed[0] == version else {
            throw Failure(description: "the vault returned a sealed key of \(sealed.count) bytes that is not one coffer made")
        }
        guard var secret = try? XChaCha20Poly1305.open(
            Array(sealed.dropFirst()), authenticating: associatedData(slot), key: sealingKey(exportKey: exportKey, slot: slot))
        else {
            throw Failure(description: "the key the vault returned does not open key slot \(slot.id.short): the account holds another repository's key, or it was altered")
        }
        defer { secureZero(&secret) }
        return SecureBytes(copying: secret)
    }

    /// BLAKE2b-256 keyed by the 64-byte export key, over a label and the slot's salt.
    static func sealingKey(exportKey: SecureBytes, slot: KeySlot) -> SecureBytes {
        var key = Blake2b.hash256(exportLabel + slot.salt, key: exportKey)
        defer { secureZero(&key) }
        return SecureBytes(copying: key)
    }

    /// Binds the sealed key to one slot: its id and its header (vault URL and account included).
    static func associatedData(_ slot: KeySlot) -> [UInt8] { sealLabel + slot.id.bytes + slot.header }
}
