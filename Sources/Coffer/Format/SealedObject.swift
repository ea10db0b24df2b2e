public import CofferCrypto

/// Kinds of sealed metadata objects; the kind is bound into the seal (FORMAT.md §6).
public enum SealedKind: UInt8, Sendable {
    case config = 1
    case snapshot = 2
    case index = 3
    case lock = 4
}

/// The envelope of every metadata object:
/// `version ‖ nonce ‖ XChaCha20-Poly1305(compression ‖ length ‖ payload ‖ zero padding) ‖ tag`,
/// with associated data `"coffer-object-v1" ‖ version ‖ kind ‖ id`, padded so the stored
/// length reveals little of the payload's: Padmé, or a power-of-two bucket for index objects
/// (`ObjectPadding.forKind`).
public enum SealedObject {
    public static let version: UInt8 = 1
    static let label = Array("coffer-object-v1".utf8)
    /// version + nonce + tag + compression + length
    static let fixedOverhead = 1 + XChaCha20Poly1305.overhead + 1 + 4

    public enum Failure: Error, CustomStringConvertible {
        case unknownVersion(UInt8)
        case authenticationFailed
        case malformed(String)

        /// In words: these end up inside messages a person reads ("config failed authentication
        /// (…)"), where a Swift case name would mean nothing.
        public var description: String {
            switch self {
            case .unknownVersion(let v): "unknown object version \(v)"
            case .authenticationFailed: "seal does not verify"
            case .malformed(let why): why
            }
        }
    }

    public static func seal(
        _ payload: [UInt8], kind: SealedKind, id: Raw256, key: SealingKey, random: any RandomSource,
        compressor: ZstdCompressor? = nil
    ) -> [UInt8] {
        var body = payload
        var compression: UInt8 = 0
        if let compressor, payload.count > 64 {
            var frame: [UInt8] = []
            compressor.compress(payload, appendingTo: &frame)
            if frame.count < payload.count {
                body = frame
                compression = 1
            }
        }
        let unpadded = fixedOverhead + body.count
        let padding = ObjectPadding.forKind(kind).paddedLength(unpadded) - unpadded
        var plain = ByteWriter(capacity: body.count + 5 + padding)
        plain.u8(compression)
        plain.u32(UInt32(body.count))
        plain.raw(body)
        plain.raw(repeatElement(0, count: padding))
        var out: [UInt8] = [version]
        out.reserveCapacity(unpadded + padding)
        XChaCha20Poly1305.seal(
            plain.bytes, authenticating: associatedData(kind: kind, id: id), key: key.secret,
            nonce: random.bytes(XChaCha20Poly1305.nonceSize), appendingTo: &out)
        return out
    }

    public static func open(
        _ stored: [UInt8], kind: SealedKind, id: Raw256, key: SealingKey, decompressor: ZstdDecompressor = ZstdDecompressor()
    ) throws(Failure) -> [UInt8] {
        guard let v = stored.first else { throw .malformed("empty object") }
        guard v == version else { throw .unknownVersion(v) }
        let plain: [UInt8]
        do {
            plain = try XChaCha20Poly1305.open(
                stored.dropFirst(), authenticating: associatedData(kind: kind, id: id), key: key.secret)
        } catch { throw .authenticationFailed }
        guard plain.count >= 5 else { throw .malformed("short plaintext") }
        let length = Int(plain[1]) | Int(plain[2]) << 8 | Int(plain[3]) << 16 | Int(plain[4]) << 24
        guard length <= plain.count - 5 else { throw .malformed("length \(length) exceeds object") }
        guard plain[(5 + length)...].allSatisfy({ $0 == 0 }) else { throw .malformed("non-zero padding") }
        let body = plain[5..<(5 + length)]
        switch plain[0] {
        case 0: return Array(body)
        case 1:
            guard let size = ZstdDecompressor.declaredSize(body), size <= 1 << 31 else {
                throw .malformed("zstd frame without a size")
            }
            do { return try decompressor.decompress(body, expectedCount: size) } catch {
                throw .malformed("zstd: \(error)")
            }
        case let c: throw .malformed("unknown compression \(c)")
        }
    }

    static func associatedData(kind: SealedKind, id: Raw256) -> [UInt8] {
        label + [version, kind.rawValue] + id.bytes
    }
}

/// How a sealed object's stored length is rounded (FORMAT.md §6, §7.3).
public enum ObjectPadding: Sendable, Equatable {
    case padme
    /// A power of two, at least `minimum` bytes.
    case bucket(minimum: Int)

    /// Index objects grow by about 45 bytes per blob, so a Padmé length would count the blobs a
    /// backup added (with one chunk per SQLite page: the pages of the chat database that
    /// changed that day). They get coarse buckets; every other kind's size does not follow the
    /// data, and Padmé's few percent suffice.
    public static func forKind(_ kind: SealedKind) -> ObjectPadding {
        kind == .index ? .bucket(minimum: 4096) : .padme
    }

    public func paddedLength(_ length: Int) -> Int {
        switch self {
        case .padme: Padme.paddedLength(length)
        case .bucket(let minimum): SizeBucket.paddedLength(length, minimum: minimum)
        }
    }
}
