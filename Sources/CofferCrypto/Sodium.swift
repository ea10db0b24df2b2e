import CSodium

/// libsodium must be initialised once before any call: `sodium_init()` selects the CPU-specific
/// code paths (without it XChaCha20-Poly1305 runs at a third of its speed here).
public enum Sodium {
    /// Touch this before any crypto call; it is idempotent and thread-safe.
    public static let isReady: Bool = sodium_init() >= 0

    /// Runs `sodium_init()` once, trapping if libsodium cannot start (no usable randomness).
    @discardableResult
    public static func initialize() -> Bool {
        precondition(isReady, "libsodium failed to initialise")
        return isReady
    }
}

/// Constant-time comparison, for MACs and key checks.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
    }
}

/// Overwrites a buffer with zeros in a way the optimiser cannot remove.
public func secureZero(_ bytes: inout [UInt8]) {
    let count = bytes.count
    guard count > 0 else { return }
    bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, count) }
}
