import CofferCrypto

/// What a vault login released for the slot that opened a repository: the slot as it was
/// authenticated, its secret (so the master key can be unwrapped again without another counted
/// login), the vault's OPAQUE public key, and the token that allows one password change in the
/// next five minutes.
public struct VaultSession: Sendable, CustomStringConvertible {
    public let address: VaultAddress
    /// The slot the secret opened; a password change seals for this one, never for a copy
    /// re-read from storage.
    let slot: KeySlot
    let vaultSecret: SecureBytes
    /// Nil right after `init`, which registered rather than logged in.
    let token: String?
    /// The key the login's envelope authenticated; a password change must reach the same vault.
    let serverPublicKey: Ristretto255.Element?

    public var description: String { "VaultSession(\(address), redacted)" }
}
