import CofferCrypto
import Foundation

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
    /// What the vault reported at the login; nil right after `init`.
    public let report: VaultLoginReport?

    public var description: String { "VaultSession(\(address), redacted)" }
}

/// What a vault tells at a successful login (FORMAT.md §16): attempts left, and the failed
/// attempts since the previous successful login, which the owner should hear about (they may
/// be someone else's guesses).
public struct VaultLoginReport: Sendable, Equatable {
    /// Wrong attempts left before the account locks for good.
    public let attemptsLeft: Int?
    /// Logins started since the previous successful one that did not succeed: wrong
    /// passwords and abandoned logins, the owner's or anyone's.
    public let failedAttemptsSinceLastLogin: Int?
    /// When the latest of them started.
    public let lastFailedAt: Date?
    /// The account was registered by an older vault under a key that lets guesses collected
    /// before its upgrade be tested: it should be registered again, with the same password
    /// (opening does that, and says how it went in `reregistration`).
    public let needsReregistration: Bool
    /// For an account that needed it: whether opening registered the same password again.
    public var reregistration: Reregistration?

    public enum Reregistration: Sendable, Equatable {
        case done
        /// Why it failed (the repository is open all the same).
        case failed(String)
    }

    public init(attemptsLeft: Int?, failedAttemptsSinceLastLogin: Int?, lastFailedAt: Date?, needsReregistration: Bool) {
        self.attemptsLeft = attemptsLeft
        self.failedAttemptsSinceLastLogin = failedAttemptsSinceLastLogin
        self.lastFailedAt = lastFailedAt
        self.needsReregistration = needsReregistration
    }
}
