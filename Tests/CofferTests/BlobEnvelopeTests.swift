import CofferCrypto
import Testing

@testable import Coffer

@Suite struct BlobEnvelopeTests {
    let keys = Fixture.keys()
    let compressor = ZstdCompressor()
    let decompressor = ZstdDecompressor()

    func seal(_ plaintext: [UInt8], handle: BlobHandle? = nil) -> (envelope: [UInt8], compression: BlobEnvelope.Compression, handle: BlobHandle) {
        let handle = handle ?? BlobHandle(id: keys.blobID(of: plaintext), type: .data)
        var scratch: [UInt8] = []
        var envelope: [UInt8] = []
        let compression = BlobEnvelope.seal(
            plaintext[...], handle: handle, key: keys.sealingKey(for: handle.type), nonce: SystemRandom().bytes(24),
            compressor: compressor, scratch: &scratch, appendingTo: &envelope)
        return (envelope, compression, handle)
    }

    func openError(_ envelope: [UInt8], handle: BlobHandle, rawLength: Int, keys: RepositoryKeys? = nil) -> BlobEnvelope.Failure? {
        do {
            _ = try BlobEnvelope.open(envelope[...], handle: handle, rawLength: rawLength, keys: keys ?? self.keys, decompressor: decompressor)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [0, 1, 100, 60_000, 200_000])
    func incompressibleDataIsStoredRaw(length: Int) throws {
        let plaintext = Fixture.bytes(length, seed: 31)
        let (envelope, compression, handle) = seal(plaintext)
        #expect(compression == .none)
        #expect(envelope.count == length + BlobEnvelope.overhead)
        #expect(try BlobEnvelope.open(envelope[...], handle: handle, rawLength: length, keys: keys, decompressor: decompressor) == plaintext)
    }

    /// A document whose text sits only at its start or end (a PDF with an embedded photo in the
    /// middle) is still compressed: the cheap test samples start, middle and end.
    @Test(arguments: [true, false])
    func textAtOneEndOfARandomChunkIsCompressed(textFirst: Bool) throws {
        let text = Fixture.text(90_000), noise = Fixture.bytes(300_000, seed: 32)
        let plaintext = textFirst ? text + noise : noise + text
        let (envelope, compression, handle) = seal(plaintext)
        #expect(compression == .zstd)
        #expect(envelope.count < plaintext.count - 80_000)
        #expect(try BlobEnvelope.open(envelope[...], handle: handle, rawLength: plaintext.count, keys: keys, decompressor: decompressor) == plaintext)
    }

    @Test(arguments: [2_000, 60_000, 200_000])
    func textIsCompressed(length: Int) throws {
        let plaintext = Fixture.text(length)
        let (envelope, compression, handle) = seal(plaintext)
        #expect(compression == .zstd)
        #expect(envelope.count < length / 2 + BlobEnvelope.overhead)
        #expect(try BlobEnvelope.open(envelope[...], handle: handle, rawLength: length, keys: keys, decompressor: decompressor) == plaintext)
    }

    @Test func treeBlobsUseTheMetadataKey() throws {
        let plaintext = Tree(nodes: EncodingTests.sampleNodes()).encoded()
        let handle = BlobHandle(id: keys.blobID(of: plaintext), type: .tree)
        let (envelope, _, _) = seal(plaintext, handle: handle)
        #expect(try BlobEnvelope.open(envelope[...], handle: handle, rawLength: plaintext.count, keys: keys, decompressor: decompressor) == plaintext)
        // The same bytes presented as a data blob do not open: the type is bound into key and seal.
        let asData = BlobHandle(id: handle.id, type: .data)
        #expect(openError(envelope, handle: asData, rawLength: plaintext.count)?.isAuthenticationFailed == true)
    }

    @Test func openingUnderAnotherIDFailsAuthentication() {
        let plaintext = Fixture.text(1000)
        let (envelope, _, _) = seal(plaintext)
        let other = BlobHandle(id: keys.blobID(of: Fixture.text(999)), type: .data)
        #expect(openError(envelope, handle: other, rawLength: plaintext.count)?.isAuthenticationFailed == true)
    }

    @Test func contentThatDoesNotMatchItsIDIsAnIDMismatch() {
        // Sealed consistently under a handle whose id belongs to other bytes.
        let plaintext = Fixture.text(1000)
        let lying = BlobHandle(id: keys.blobID(of: Fixture.text(1000, variant: 1)), type: .data)
        let (envelope, _, _) = seal(plaintext, handle: lying)
        #expect(openError(envelope, handle: lying, rawLength: plaintext.count)?.isIDMismatch == true)
        let rawLying = BlobHandle(id: keys.blobID(of: [1]), type: .data)
        let (raw, compression, _) = seal(Fixture.bytes(500), handle: rawLying)
        #expect(compression == .none)
        #expect(openError(raw, handle: rawLying, rawLength: 500)?.isIDMismatch == true)
    }

    @Test func wrongKeysFail() {
        let plaintext = Fixture.text(1000)
        let (envelope, _, handle) = seal(plaintext)
        #expect(openError(envelope, handle: handle, rawLength: plaintext.count, keys: Fixture.keys(2))?.isAuthenticationFailed == true)
    }

    @Test func wrongRawLengthIsMalformed() {
        let text = Fixture.text(5000)
        let (zstd, c1, h1) = seal(text)
        #expect(c1 == .zstd)
        #expect(openError(zstd, handle: h1, rawLength: 5001)?.isMalformed == true)
        #expect(openError(zstd, handle: h1, rawLength: 4999)?.isMalformed == true)
        let random = Fixture.bytes(5000)
        let (raw, c2, h2) = seal(random)
        #expect(c2 == .none)
        #expect(openError(raw, handle: h2, rawLength: 5001)?.isMalformed == true)
        #expect(openError(raw, handle: h2, rawLength: 0)?.isMalformed == true)
    }

    @Test func everyFlippedOrTruncatedByteFails() {
        let plaintext = Fixture.text(300)
        let (envelope, _, handle) = seal(plaintext)
        var accepted: [String] = []
        for offset in envelope.indices {
            var tampered = envelope
            tampered[offset] ^= 0x10
            if openError(tampered, handle: handle, rawLength: 300)?.isAuthenticationFailed != true { accepted.append("flip \(offset)") }
        }
        for n in 0..<envelope.count where openError(Array(envelope.prefix(n)), handle: handle, rawLength: 300)?.isAuthenticationFailed != true {
            accepted.append("prefix \(n)")
        }
        #expect(accepted.isEmpty, "\(accepted.prefix(5))")
    }

    @Test func forgedEnvelopesAreMalformed() {
        let plaintext = [UInt8]("abc".utf8)
        let handle = BlobHandle(id: keys.blobID(of: plaintext), type: .data)
        func forge(_ plain: [UInt8]) -> [UInt8] {
            var out: [UInt8] = []
            XChaCha20Poly1305.seal(
                plain, authenticating: BlobEnvelope.associatedData(handle), key: keys.dataSealing.secret,
                nonce: SystemRandom().bytes(24), appendingTo: &out)
            return out
        }
        #expect(openError(forge([0] + plaintext), handle: handle, rawLength: 3) == nil)
        #expect(openError(forge([]), handle: handle, rawLength: 3)?.isMalformed == true)
        #expect(openError(forge([2] + plaintext), handle: handle, rawLength: 3)?.isMalformed == true)
        #expect(openError(forge([1] + plaintext), handle: handle, rawLength: 3)?.isMalformed == true)
    }

    @Test func sealAppendsToExistingOutput() throws {
        let plaintext = Fixture.text(2000)
        let handle = BlobHandle(id: keys.blobID(of: plaintext), type: .data)
        var scratch: [UInt8] = [9, 9, 9]
        var output: [UInt8] = [1, 2, 3]
        _ = BlobEnvelope.seal(
            plaintext[...], handle: handle, key: keys.dataSealing, nonce: SystemRandom().bytes(24), compressor: compressor,
            scratch: &scratch, appendingTo: &output)
        #expect(Array(output.prefix(3)) == [1, 2, 3])
        #expect(try BlobEnvelope.open(output[3...], handle: handle, rawLength: 2000, keys: keys, decompressor: decompressor) == plaintext)
    }

    @Test func blobIDsAreKeyed() {
        let bytes = Array("coffer".utf8)
        #expect(keys.blobID(of: bytes) == keys.blobID(of: bytes))
        #expect(keys.blobID(of: bytes) != Fixture.keys(2).blobID(of: bytes))
        #expect(keys.blobID(of: bytes).bytes == Blake2b.hash256(bytes, key: keys.chunkID.secret))
    }

    @Test func purposeKeysAreDistinct() {
        let all = [keys.chunkID.secret, keys.gearSeed.secret, keys.dataSealing.secret, keys.metadataSealing.secret].map { $0.copyBytes() }
        #expect(Set(all).count == 4)
        #expect(keys.sealingKey(for: .data).secret.constantTimeEquals(keys.dataSealing.secret))
        #expect(keys.sealingKey(for: .tree).secret.constantTimeEquals(keys.metadataSealing.secret))
    }
}

@Suite struct PackFormatTests {
    let keys = Fixture.keys()
    let random = Fixture.random(41)

    struct Built {
        var pack: [UInt8]
        var bodyCount: Int
        var blobs: [PackedBlob]
        var plaintexts: [[UInt8]]
        var packID: PackID
    }

    /// `targetSize` 0 builds the pack as one that reached its target (Padmé padding).
    func build(_ contents: [(BlobType, [UInt8])], targetSize: Int = 0) -> Built {
        let compressor = ZstdCompressor()
        var body: [UInt8] = []
        var scratch: [UInt8] = []
        var blobs: [PackedBlob] = []
        for (type, plaintext) in contents {
            let handle = BlobHandle(id: keys.blobID(of: plaintext), type: type)
            let start = body.count
            _ = BlobEnvelope.seal(
                plaintext[...], handle: handle, key: keys.sealingKey(for: type), nonce: random.bytes(24), compressor: compressor,
                scratch: &scratch, appendingTo: &body)
            blobs.append(PackedBlob(handle: handle, offset: UInt32(start), length: UInt32(body.count - start), rawLength: UInt32(plaintext.count)))
        }
        let bodyCount = body.count
        let packID = PackID(bytes: random.bytes(32))
        PackFormat.finish(body: &body, blobs: blobs, packID: packID, key: keys.metadataSealing, targetSize: targetSize, random: random)
        return Built(pack: body, bodyCount: bodyCount, blobs: blobs, plaintexts: contents.map(\.1), packID: packID)
    }

    func sampleContents() -> [(BlobType, [UInt8])] {
        [(.data, Fixture.bytes(5000, seed: 42)), (.data, Fixture.text(20_000)), (.tree, Tree(nodes: EncodingTests.sampleNodes()).encoded()), (.data, [])]
    }

    /// Reads a pack the way a reader does: trailer → header length → header → blobs.
    func read(_ pack: [UInt8], packID: PackID, key: SealingKey? = nil) throws(PackFormat.Failure) -> [PackedBlob] {
        let trailer = Array(pack.suffix(PackFormat.trailerSize))
        let headerLength = try PackFormat.headerLength(trailer: trailer, packID: packID, key: key ?? keys.metadataSealing)
        let headerEnd = pack.count - PackFormat.trailerSize
        let headerStart = headerEnd - headerLength
        guard headerStart >= 0 else { throw .tooShort }
        return try PackFormat.parseHeader(Array(pack[headerStart..<headerEnd]), packID: packID, headerOffset: headerStart, key: key ?? keys.metadataSealing)
    }

    @Test func packRoundTripListsAndOpensEveryBlob() throws {
        let built = build(sampleContents())
        let entries = try read(built.pack, packID: built.packID)
        #expect(entries == built.blobs)
        let decompressor = ZstdDecompressor()
        for (entry, plaintext) in zip(entries, built.plaintexts) {
            let envelope = built.pack[Int(entry.offset)..<Int(entry.offset + entry.length)]
            #expect(try BlobEnvelope.open(envelope, handle: entry.handle, rawLength: Int(entry.rawLength), keys: keys, decompressor: decompressor) == plaintext)
        }
    }

    @Test func packLengthIsThePadmeLengthOfItsContents() {
        for count in [0, 1, 4, 127, 128, 300] {
            let contents: [(BlobType, [UInt8])] = (0..<count).map { i in (i % 5 == 0 ? .tree : .data, Fixture.bytes(i * 37 % 300, seed: UInt8(i % 250))) }
            let built = build(contents)
            var countVarint = ByteWriter()
            countVarint.varint(count)
            let header = 1 + countVarint.bytes.count + count * (1 + 32 + 4 + 4)
            let unpadded = built.bodyCount + header + XChaCha20Poly1305.overhead + PackFormat.trailerSize
            #expect(built.pack.count == Padme.paddedLength(unpadded), "\(count) blobs")
            #expect((try? read(built.pack, packID: built.packID))?.count == count)
        }
        #expect(PackFormat.trailerSize == 45)
    }

    @Test func aPackUnderItsTargetIsPaddedToAPowerOfTwo() throws {
        // The last, partly filled packs of a backup: their length must not measure what it added.
        let target = 16 << 20
        var lengths: Set<Int> = []
        for size in [10, 3000, 70_000, 300_000] {
            let built = build([(.data, Fixture.bytes(size, seed: 9))], targetSize: target)
            #expect(built.pack.count.nonzeroBitCount == 1, "\(size) B → \(built.pack.count)")
            #expect(built.pack.count >= PackFormat.minimumPartialPackLength)
            #expect((try? read(built.pack, packID: built.packID))?.count == 1)
            lengths.insert(built.pack.count)
        }
        // 10 B and 3000 B both fill only the smallest bucket.
        #expect(lengths == [64 << 10, 128 << 10, 512 << 10])
    }

    @Test func partialPackPaddingNeverPassesTheTarget() {
        for target in [4096, 100_000, 16 << 20, 24 << 20] {
            for unpadded in stride(from: 1, to: target, by: max(1, target / 997)) {
                let p = PackFormat.paddedLength(unpadded: unpadded, targetSize: target)
                #expect(p >= unpadded && p <= target, "\(unpadded) under \(target) → \(p)")
            }
            #expect(PackFormat.paddedLength(unpadded: target, targetSize: target) == Padme.paddedLength(target))
        }
    }

    @Test func wrongPackIDOrKeyFails() {
        let built = build(sampleContents())
        let trailer = Array(built.pack.suffix(PackFormat.trailerSize))
        let otherID = PackID(bytes: Fixture.bytes(32, seed: 43))
        let e1 = #expect(throws: PackFormat.Failure.self) { try PackFormat.headerLength(trailer: trailer, packID: otherID, key: keys.metadataSealing) }
        #expect(e1?.isTrailerAuthenticationFailed == true)
        let e2 = #expect(throws: PackFormat.Failure.self) { try PackFormat.headerLength(trailer: trailer, packID: built.packID, key: Fixture.keys(2).metadataSealing) }
        #expect(e2?.isTrailerAuthenticationFailed == true)
        let e3 = #expect(throws: PackFormat.Failure.self) { try PackFormat.headerLength(trailer: trailer, packID: built.packID, key: keys.dataSealing) }
        #expect(e3?.isTrailerAuthenticationFailed == true)

        // A header moved to another pack id does not open either.
        let headerLength = (try? PackFormat.headerLength(trailer: trailer, packID: built.packID, key: keys.metadataSealing)) ?? 0
        let end = built.pack.count - PackFormat.trailerSize
        let header = Array(built.pack[(end - headerLength)..<end])
        let e4 = #expect(throws: PackFormat.Failure.self) { try PackFormat.parseHeader(header, packID: otherID, headerOffset: end - headerLength, key: keys.metadataSealing) }
        #expect(e4?.isHeaderAuthenticationFailed == true)
    }

    @Test func trailerOfTheWrongSizeIsTooShort() {
        let built = build(sampleContents())
        let e = #expect(throws: PackFormat.Failure.self) {
            try PackFormat.headerLength(trailer: Array(built.pack.suffix(PackFormat.trailerSize - 1)), packID: built.packID, key: keys.metadataSealing)
        }
        #expect(e?.isTooShort == true)
    }

    @Test func tamperedHeaderOrTrailerFails() {
        let built = build(sampleContents())
        var trailer = built.pack
        trailer[trailer.count - 1] ^= 1
        let e1 = #expect(throws: PackFormat.Failure.self) { try read(trailer, packID: built.packID) }
        #expect(e1?.isTrailerAuthenticationFailed == true)
        var header = built.pack
        header[built.bodyCount + 30] ^= 1
        let e2 = #expect(throws: PackFormat.Failure.self) { try read(header, packID: built.packID) }
        #expect(e2?.isHeaderAuthenticationFailed == true)
    }

    @Test func blobsOverlappingTheHeaderAreMalformed() throws {
        let built = build(sampleContents())
        let trailer = Array(built.pack.suffix(PackFormat.trailerSize))
        let headerLength = try PackFormat.headerLength(trailer: trailer, packID: built.packID, key: keys.metadataSealing)
        let end = built.pack.count - PackFormat.trailerSize
        let header = Array(built.pack[(end - headerLength)..<end])
        #expect(try PackFormat.parseHeader(header, packID: built.packID, headerOffset: built.bodyCount, key: keys.metadataSealing) == built.blobs)
        let e = #expect(throws: PackFormat.Failure.self) {
            try PackFormat.parseHeader(header, packID: built.packID, headerOffset: built.bodyCount - 1, key: keys.metadataSealing)
        }
        #expect(e?.isMalformed == true)
    }
}
