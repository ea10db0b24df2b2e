import CSodium

/// The ristretto255 prime-order group (RFC 9496) over libsodium's `crypto_core_ristretto255_*`
/// and `crypto_scalarmult_ristretto255*`. Every `Element` is a canonical encoding of a point other
/// than the identity and every `Scalar` is canonical (below the group order ℓ) and nonzero, so
/// products of the two are never the identity and the protocol code above needs no checks.
public enum Ristretto255 {
    public static let elementLength = 32
    public static let scalarLength = 32
    /// Input length of the hash-to-group map and of wide scalar reduction.
    static let uniformLength = 64

    public struct Element: Sendable, Hashable {
        /// The canonical 32-byte encoding (SerializeElement).
        public let bytes: [UInt8]

        /// DeserializeElement (RFC 9497 §2.1): a canonical encoding of a point, not the identity.
        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            Sodium.initialize()
            let candidate = Array(bytes)
            guard candidate.count == elementLength else {
                throw .invalidLength(expected: elementLength, actual: candidate.count)
            }
            // libsodium's validity check accepts the all-zero encoding of the identity; a peer
            // sending it would force a known shared secret, so it is refused here.
            let valid = candidate.withUnsafeBytes { p in
                sodium_is_zero(nonNullBase(p), elementLength) == 0
                    && crypto_core_ristretto255_is_valid_point(nonNullBase(p)) == 1
            }
            guard valid else { throw .invalidElement }
            self.bytes = candidate
        }

        private init(trusted bytes: [UInt8]) { self.bytes = bytes }

        /// G.ScalarMultGen: `scalar` times the group's generator (a public key).
        public init(generatorTimes scalar: Scalar) {
            var out = [UInt8](repeating: 0, count: elementLength)
            let rc = out.withUnsafeMutableBytes { o in
                scalar.storage.withUnsafeBytes { n in
                    crypto_scalarmult_ristretto255_base(o.baseAddress!.assumingMemoryBound(to: UInt8.self), nonNullBase(n))
                }
            }
            precondition(rc == 0, "a nonzero scalar below the order cannot give the identity")
            self.init(trusted: out)
        }

        /// The hash-to-group map from 64 uniform bytes (`crypto_core_ristretto255_from_hash`);
        /// nil when it lands on the identity.
        init?(uniformBytes: SecureBytes) {
            precondition(uniformBytes.count == uniformLength)
            var out = [UInt8](repeating: 0, count: elementLength)
            out.withUnsafeMutableBytes { o in
                uniformBytes.withUnsafeBytes { u in
                    _ = crypto_core_ristretto255_from_hash(o.baseAddress!.assumingMemoryBound(to: UInt8.self), nonNullBase(u))
                }
            }
            let isIdentity = out.withUnsafeBytes { sodium_is_zero(nonNullBase($0), elementLength) == 1 }
            if isIdentity { return nil }
            self.init(trusted: out)
        }

        /// `scalar` times this element, for results that are sent in the clear (blinded and
        /// evaluated OPRF elements).
        public func multiplied(by scalar: Scalar) -> Element {
            var out = [UInt8](repeating: 0, count: elementLength)
            out.withUnsafeMutableBytes { Self.multiply(bytes, by: scalar, into: $0) }
            return Element(trusted: out)
        }

        /// `scalar` times this element, serialized into guarded memory: for results that are
        /// secrets (Diffie-Hellman shares, the unblinded OPRF element).
        func sharedSecret(with scalar: Scalar) -> SecureBytes {
            SecureBytes(count: elementLength) { Self.multiply(bytes, by: scalar, into: $0) }
        }

        private static func multiply(_ point: [UInt8], by scalar: Scalar, into out: UnsafeMutableRawBufferPointer) {
            // crypto_scalarmult_ristretto255 clears the scalar's top bit; Scalar is always
            // reduced below ℓ < 2^253, so no bit is lost.
            let rc = point.withUnsafeBytes { p in
                scalar.storage.withUnsafeBytes { n in
                    crypto_scalarmult_ristretto255(out.baseAddress!.assumingMemoryBound(to: UInt8.self), nonNullBase(n), nonNullBase(p))
                }
            }
            precondition(rc == 0, "a nonzero scalar times a valid non-identity point cannot give the identity")
        }
    }

    /// An integer modulo the group order ℓ, little-endian, in guarded memory: scalars here are
    /// private keys, OPRF keys and blinds.
    public struct Scalar: Sendable {
        let storage: SecureBytes

        /// DeserializeScalar (RFC 9497 §2.1), also refusing zero: 32 bytes encoding a value in 1..<ℓ.
        public init(bytes: some Collection<UInt8>) throws(OPAQUEError) {
            guard bytes.count == scalarLength else {
                throw .invalidLength(expected: scalarLength, actual: bytes.count)
            }
            let candidate = SecureBytes(copying: bytes)
            guard Self.isCanonicalAndNonzero(candidate) else { throw .invalidScalar }
            storage = candidate
        }

        private init(trusted storage: SecureBytes) { self.storage = storage }

        /// A wide value of 64 uniform bytes reduced modulo ℓ; nil when that is zero.
        init?(reducing uniform: SecureBytes) {
            precondition(uniform.count == uniformLength)
            let reduced = SecureBytes(count: scalarLength) { out in
                uniform.withUnsafeBytes { u in
                    crypto_core_ristretto255_scalar_reduce(out.baseAddress!.assumingMemoryBound(to: UInt8.self), nonNullBase(u))
                }
            }
            if Self.isZero(reduced) { return nil }
            self.init(trusted: reduced)
        }

        /// G.RandomScalar, by rejection sampling exactly as libsodium's
        /// `crypto_core_ristretto255_scalar_random` does (32 bytes, top three bits cleared, retry
        /// while ≥ ℓ or zero) but drawing from `random`, so that a test source handing out a
        /// vector's scalar gets that scalar back unchanged.
        public static func random(using random: some RandomSource) -> Scalar {
            while true {
                var candidate = random.bytes(scalarLength)
                candidate[scalarLength - 1] &= 0x1f
                let scalar = try? Scalar(bytes: candidate)
                secureZero(&candidate)
                if let scalar { return scalar }
            }
        }

        /// The multiplicative inverse modulo ℓ (used to unblind OPRF evaluations).
        func inverse() -> Scalar {
            Scalar(trusted: SecureBytes(count: scalarLength) { out in
                storage.withUnsafeBytes { s in
                    let rc = crypto_core_ristretto255_scalar_invert(out.baseAddress!.assumingMemoryBound(to: UInt8.self), nonNullBase(s))
                    precondition(rc == 0, "a nonzero scalar has an inverse")
                }
            })
        }

        /// The 32-byte encoding, in guarded memory (for persisting a private key).
        public var secureBytes: SecureBytes { storage }

        /// A plain copy of the encoding, for the rare place (test vectors) that must see the bytes.
        public func copyBytes() -> [UInt8] { storage.copyBytes() }

        private static func isZero(_ s: SecureBytes) -> Bool {
            s.withUnsafeBytes { sodium_is_zero(nonNullBase($0), $0.count) == 1 }
        }

        /// Canonical iff reducing it (zero-extended to 64 bytes) leaves it unchanged; libsodium
        /// 1.0.18 exports no direct check.
        private static func isCanonicalAndNonzero(_ s: SecureBytes) -> Bool {
            let wide = SecureBytes(concatenating: [s, [UInt8](repeating: 0, count: uniformLength - scalarLength)], count: uniformLength)
            guard let reduced = Scalar(reducing: wide) else { return false }
            return reduced.storage.constantTimeEquals(s)
        }
    }
}
