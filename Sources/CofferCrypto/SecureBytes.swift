import CSodium

/// Fixed-size secret storage in guarded memory (`sodium_malloc`): kept out of swap where the OS
/// allows, and zeroed when freed. Contents are never printed: `description` is redacted.
public final class SecureBytes: @unchecked Sendable, CustomStringConvertible {
    // Safe to share across threads: the bytes are written only while initialising.
    private let pointer: UnsafeMutableRawPointer
    public let count: Int

    /// Allocates `count` bytes and lets `initializer` fill them; the buffer is immutable afterwards.
    public init(count: Int, _ initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(Sodium.isReady)
        guard let p = sodium_malloc(max(count, 1)) else { fatalError("sodium_malloc failed: out of memory") }
        sodium_memzero(p, max(count, 1))
        // Fill before the stored properties are set: if the initializer throws, deinit never
        // runs, so the buffer is freed here exactly once.
        do { try initializer(UnsafeMutableRawBufferPointer(start: p, count: count)) } catch {
            sodium_free(p)
            throw error
        }
        pointer = p
        self.count = count
    }

    /// Copies bytes in; the caller should zero its own copy.
    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: bytes.count) { buffer in
            for (i, b) in bytes.enumerated() { buffer[i] = b }
        }
    }

    /// Fresh random secret from the system CSPRNG.
    public static func random(count: Int) -> SecureBytes {
        SecureBytes(count: count) { randombytes_buf($0.baseAddress!, $0.count) }
    }

    deinit { sodium_free(pointer) }  // sodium_free zeroes before releasing.

    /// Read-only access; do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// A plain copy, for the rare place (test vectors) that must see the bytes.
    public func copyBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        count == other.count && sodium_memcmp(pointer, other.pointer, count) == 0
    }

    public var description: String { "SecureBytes(\(count) bytes, redacted)" }
}
