import CofferCrypto

/// What a vault login released for the slot that opened a repository: its secret (so the
/// master key can be unwrapped again without another counted login) and the token that allows
/// one password change in the next five minutes.
public struct VaultSession: Sendable, CustomStringConvertible {
    public let address: VaultAddress
    let vaultSecret: SecureBytes
    /// Nil right after `init`, which registered rather than logged in.
    public let token: String?

    public var description: String { "VaultSession(\(address), redacted)" }
}
