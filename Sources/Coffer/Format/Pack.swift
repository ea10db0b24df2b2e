public import CofferCrypto

/// One blob's place in a pack, as listed in the sealed pack header and in the index.
public struct PackedBlob: Sendable, Equatable {
    public let handle: BlobHandle
    /// Offset of the envelope from the start of the pack.
    public let offset: UInt32
    /// Length of the sealed envelope.
    public let length: UInt32
    /// Length of the blob's plaintext.
    public let rawLength: UInt32
}

/// Pack files (FORMAT.md §7): `envelope₀ ‖ … ‖ envelopeₙ₋₁ ‖ sealed header ‖ sealed trailer`.
/// The header lists the blobs and is padded so that the whole pack has the length
/// `paddedLength(unpadded:targetSize:)` gives; the fixed-size trailer holds the header's length.
/// Storage learns only the padded total.
public enum PackFormat {
    public static let version: UInt8 = 1
    static let headerLabel = Array("coffer-pack-header-v1".utf8)
    static let trailerLabel = Array("coffer-pack-trailer-v1".utf8)
    /// version ‖ header length, sealed.
    static let trailerPlainSize = 1 + 4
    public static let trailerSize = trailerPlainSize + XChaCha20Poly1305.overhead
    static let headerEntrySize = 1 + 32 + 4 + 4

    public enum Failure: Error {
        case tooShort
        case trailerAuthenticationFailed
        case headerAuthenticationFailed
        case malformed(String)
    }

    /// The smallest stored length of a pack under its target size.
    public static let minimumPartialPackLength = 64 << 10

    /// The stored length of a pack whose envelopes, header and trailer take `unpadded` bytes
    /// (FORMAT.md §7.3). A pack that reached the target holds about the target's worth of
    /// blobs whatever was backed up, so Padmé's few percent suffice. A pack under the target is
    /// the last, partly filled one of a backup (or of a prune's repacking): its length would
    /// measure how much that backup added, so it is padded to a power of two (at least 64 KiB),
    /// and never past the target, which keeps it no longer than a full pack.
    public static func paddedLength(unpadded: Int, targetSize: Int) -> Int {
        guard unpadded < targetSize else { return Padme.paddedLength(unpadded) }
        return min(SizeBucket.paddedLength(unpadded, minimum: minimumPartialPackLength), targetSize)
    }

    /// Seals the header and trailer for blobs already laid out in `body`; appends them to it.
    /// `targetSize` is the repository's pack target (the config's), which decides the padding.
    public static func finish(
        body: inout [UInt8], blobs: [PackedBlob], packID: PackID, key: SealingKey, targetSize: Int,
        random: any RandomSource
    ) {
        body += sealedTail(bodyLength: body.count, blobs: blobs, packID: packID, key: key, targetSize: targetSize, random: random)
    }

    /// The sealed header and trailer that follow `bodyLength` bytes of envelopes: for a pack
    /// whose body was written elsewhere (a local pack staged in a file).
    static func sealedTail(
        bodyLength: Int, blobs: [PackedBlob], packID: PackID, key: SealingKey, targetSize: Int, random: any RandomSource
    ) -> [UInt8] {
        var header = ByteWriter(capacity: 16 + blobs.count * headerEntrySize)
        header.u8(version)
        header.varint(blobs.count)
        for b in blobs {
            header.u8(b.handle.type.rawValue)
            header.id(b.handle.id)
            header.u32(b.length)
            header.u32(b.rawLength)
        }
        let unpadded = bodyLength + header.bytes.count + XChaCha20Poly1305.overhead + trailerSize
        header.raw(repeatElement(0, count: paddedLength(unpadded: unpadded, targetSize: targetSize) - unpadded))
        let headerLength = header.bytes.count + XChaCha20Poly1305.overhead
        var tail: [UInt8] = []
        tail.reserveCapacity(headerLength + trailerSize)
        XChaCha20Poly1305.seal(
            header.bytes, authenticating: headerLabel + packID.bytes, key: key.secret,
            nonce: random.bytes(XChaCha20Poly1305.nonceSize), appendingTo: &tail)
        var trailer = ByteWriter(capacity: trailerPlainSize)
        trailer.u8(version)
        trailer.u32(UInt32(headerLength))
        XChaCha20Poly1305.seal(
            trailer.bytes, authenticating: trailerLabel + packID.bytes, key: key.secret,
            nonce: random.bytes(XChaCha20Poly1305.nonceSize), appendingTo: &tail)
        return tail
    }

    /// Opens the trailer (the last `trailerSize` bytes): returns the sealed header's length.
    public static func headerLength(trailer: [UInt8], packID: PackID, key: SealingKey) throws(Failure) -> Int {
        guard trailer.count == trailerSize else { throw .tooShort }
        guard let plain = try? XChaCha20Poly1305.open(trailer, authenticating: trailerLabel + packID.bytes, key: key.secret),
            plain.count == trailerPlainSize
        else { throw .trailerAuthenticationFailed }
        guard plain[0] == version else { throw .malformed("unknown pack version \(plain[0])") }
        return Int(plain[1]) | Int(plain[2]) << 8 | Int(plain[3]) << 16 | Int(plain[4]) << 24
    }

    /// Opens a sealed header that starts at `headerOffset` and lists the blobs.
    public static func parseHeader(_ sealed: [UInt8], packID: PackID, headerOffset: Int, key: SealingKey) throws(Failure) -> [PackedBlob] {
        guard let plain = try? XChaCha20Poly1305.open(sealed, authenticating: headerLabel + packID.bytes, key: key.secret) else {
            throw .headerAuthenticationFailed
        }
        guard headerOffset <= Int(UInt32.max) else { throw .malformed("pack larger than 4 GiB") }
        do {
            var r = ByteReader(plain, what: "pack header \(packID.short)")
            guard try r.u8() == version else { throw MalformedObject("unknown pack header version") }
            let count = try r.count(atLeastBytesEach: headerEntrySize)
            var blobs: [PackedBlob] = []
            blobs.reserveCapacity(count)
            var offset: UInt64 = 0
            for _ in 0..<count {
                guard let type = BlobType(rawValue: try r.u8()) else { throw MalformedObject("unknown blob type") }
                let id: BlobID = try r.id()
                let length = try r.u32()
                let raw = try r.u32()
                blobs.append(PackedBlob(handle: BlobHandle(id: id, type: type), offset: UInt32(offset), length: length, rawLength: raw))
                offset += UInt64(length)
                guard offset <= UInt64(headerOffset) else { throw MalformedObject("blobs overlap the header") }
            }
            let padding = try r.raw(r.remaining)
            guard padding.allSatisfy({ $0 == 0 }) else { throw MalformedObject("non-zero padding") }
            return blobs
        } catch let e as MalformedObject {
            throw .malformed(e.what)
        } catch {
            throw .malformed("\(error)")
        }
    }
}
