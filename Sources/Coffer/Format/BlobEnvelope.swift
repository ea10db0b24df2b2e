public import CofferCrypto

/// A blob as stored inside a pack: `nonce ‖ XChaCha20-Poly1305(compression ‖ bytes) ‖ tag`,
/// associated data `"coffer-blob-v1" ‖ type ‖ id` (FORMAT.md §7.1). Not padded by itself: the
/// pack is padded as a whole and blob lengths live only in the sealed pack header.
public enum BlobEnvelope {
    static let label = Array("coffer-blob-v1".utf8)
    public static let overhead = XChaCha20Poly1305.overhead + 1

    public enum Compression: UInt8, Sendable {
        case none = 0
        case zstd = 1
    }

    public enum Failure: Error {
        case authenticationFailed
        case malformed(String)
        case idMismatch
    }

    /// Compresses when it pays and seals; appends the envelope to `output`.
    /// The cheap test: compress 16 KiB samples from the start, middle and end at level 1; if
    /// none shrinks by 3 % the chunk is stored raw without compressing the whole of it
    /// (FORMAT.md §7.1). Three samples, since documents mix text with embedded images.
    public static func seal(
        _ plaintext: ArraySlice<UInt8>, handle: BlobHandle, key: SealingKey, nonce: [UInt8],
        compressor: ZstdCompressor, scratch: inout [UInt8], appendingTo output: inout [UInt8]
    ) -> Compression {
        // scratch holds the envelope's plaintext: compression flag ‖ bytes.
        var compression = Compression.none
        scratch.removeAll(keepingCapacity: true)
        if worthCompressing(plaintext, compressor: compressor, scratch: &scratch) {
            scratch.append(Compression.zstd.rawValue)
            // A small blob (a database page) costs zstd its frame setup more than its matching:
            // level 1 is a quarter faster there and within 1 % of level 3's size (measured on
            // the sample chat database's 4 KiB pages: 6.1 against 8.1 ns per byte).
            let level = plaintext.count <= smallBlob ? min(compressor.level, 1) : compressor.level
            if compressor.compress(plaintext, level: level, appendingTo: &scratch) < plaintext.count {
                compression = .zstd
            } else {
                scratch.removeAll(keepingCapacity: true)
            }
        }
        if compression == .none {
            scratch.append(Compression.none.rawValue)
            scratch.append(contentsOf: plaintext)
        }
        XChaCha20Poly1305.seal(scratch, authenticating: associatedData(handle), key: key.secret, nonce: nonce, appendingTo: &output)
        return compression
    }

    static let sampleSize = 16 << 10
    /// Blobs up to this size are compressed at level 1 at most.
    static let smallBlob = 16 << 10

    static func worthCompressing(_ plaintext: ArraySlice<UInt8>, compressor: ZstdCompressor, scratch: inout [UInt8]) -> Bool {
        if plaintext.count <= 64 << 10 { return true }  // small: just try the whole thing
        let starts = [plaintext.startIndex, plaintext.startIndex + plaintext.count / 2, plaintext.endIndex - sampleSize]
        let before = scratch.count
        defer { scratch.removeLast(scratch.count - before) }
        for start in starts {
            let n = compressor.compress(plaintext[start..<(start + sampleSize)], level: 1, appendingTo: &scratch)
            scratch.removeLast(scratch.count - before)
            if n < sampleSize * 97 / 100 { return true }
        }
        return false
    }

    /// Opens, decompresses and (with `verifyingID`, the default) checks the keyed id of the
    /// plaintext. Without it, what the seal proves is all (FORMAT.md §7.1 says when that is enough).
    public static func open(
        _ envelope: ArraySlice<UInt8>, handle: BlobHandle, rawLength: Int, keys: RepositoryKeys, decompressor: ZstdDecompressor,
        verifyingID: Bool = true
    ) throws(Failure) -> [UInt8] {
        let plain: [UInt8]
        do {
            plain = try XChaCha20Poly1305.open(envelope, authenticating: associatedData(handle), key: keys.sealingKey(for: handle.type).secret)
        } catch { throw .authenticationFailed }
        guard let flag = plain.first else { throw .malformed("empty blob") }
        let body = plain.dropFirst()
        let bytes: [UInt8]
        switch Compression(rawValue: flag) {
        case .none?:
            guard body.count == rawLength else { throw .malformed("length \(body.count), index says \(rawLength)") }
            bytes = Array(body)
        case .zstd?:
            do { bytes = try decompressor.decompress(body, expectedCount: rawLength) } catch {
                throw .malformed("zstd: \(error)")
            }
        case nil: throw .malformed("unknown compression \(flag)")
        }
        guard !verifyingID || keys.blobID(of: bytes) == handle.id else { throw .idMismatch }
        return bytes
    }

    static func associatedData(_ handle: BlobHandle) -> [UInt8] { label + [handle.type.rawValue] + handle.id.bytes }
}
