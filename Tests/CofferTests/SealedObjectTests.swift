import CofferCrypto
import Testing

@testable import Coffer

@Suite struct SealedObjectTests {
    let key = Fixture.keys().metadataSealing
    let id = Raw256(Fixture.bytes(32, seed: 21))
    /// version ‖ nonce ‖ tag ‖ compression ‖ length
    let fixedOverhead = 1 + XChaCha20Poly1305.overhead + 1 + 4

    func seal(_ payload: [UInt8], kind: SealedKind = .snapshot, compressor: ZstdCompressor? = nil) -> [UInt8] {
        SealedObject.seal(payload, kind: kind, id: id, key: key, random: SystemRandom(), compressor: compressor)
    }

    func openError(_ stored: [UInt8], kind: SealedKind = .snapshot, id: Raw256? = nil, key: SealingKey? = nil) -> SealedObject.Failure? {
        do {
            _ = try SealedObject.open(stored, kind: kind, id: id ?? self.id, key: key ?? self.key)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [0, 1, 17, 64, 65, 100, 1000, 4096, 70_000])
    func roundTripWithoutCompressionHasPadmeLength(length: Int) throws {
        let payload = Fixture.text(length)
        let stored = seal(payload)
        #expect(stored.count == Padme.paddedLength(fixedOverhead + length))
        #expect(stored.first == SealedObject.version)
        #expect(try SealedObject.open(stored, kind: .snapshot, id: id, key: key) == payload)
    }

    @Test func compressibleRoundTripWithCompression() throws {
        let payload = Fixture.text(50_000)
        let compressor = ZstdCompressor(level: 3)
        let stored = seal(payload, compressor: compressor)
        var frame: [UInt8] = []
        ZstdCompressor(level: 3).compress(payload, appendingTo: &frame)
        #expect(stored.count == Padme.paddedLength(fixedOverhead + frame.count))
        #expect(stored.count < payload.count / 4)
        #expect(try SealedObject.open(stored, kind: .snapshot, id: id, key: key) == payload)
    }

    @Test func incompressibleOrTinyPayloadsAreStoredAsIs() throws {
        let compressor = ZstdCompressor()
        let random = Fixture.bytes(10_000, seed: 22)
        let storedRandom = seal(random, compressor: compressor)
        #expect(storedRandom.count == Padme.paddedLength(fixedOverhead + random.count))
        #expect(try SealedObject.open(storedRandom, kind: .snapshot, id: id, key: key) == random)
        let tiny = [UInt8](repeating: 0x61, count: 64)  // compressible but at most 64 bytes: not compressed
        let storedTiny = seal(tiny, compressor: compressor)
        #expect(storedTiny.count == Padme.paddedLength(fixedOverhead + 64))
        #expect(try SealedObject.open(storedTiny, kind: .snapshot, id: id, key: key) == tiny)
    }

    @Test func sealingTwiceGivesDifferentBytes() {
        let payload = Fixture.text(100)
        #expect(seal(payload) != seal(payload))
    }

    @Test func openingWithTheWrongKindIDOrKeyFails() {
        let stored = seal(Fixture.text(300), kind: .index)
        #expect(openError(stored, kind: .index) == nil)
        #expect(openError(stored, kind: .snapshot)?.isAuthenticationFailed == true)
        #expect(openError(stored, kind: .config)?.isAuthenticationFailed == true)
        var otherID = id.bytes
        otherID[31] ^= 1
        #expect(openError(stored, kind: .index, id: Raw256(otherID))?.isAuthenticationFailed == true)
        #expect(openError(stored, kind: .index, key: Fixture.keys(2).metadataSealing)?.isAuthenticationFailed == true)
        #expect(openError(stored, kind: .index, key: Fixture.keys().dataSealing)?.isAuthenticationFailed == true)
    }

    @Test func everyFlippedByteFails() {
        let stored = seal(Fixture.text(40))
        var accepted: [Int] = []
        for offset in stored.indices {
            var tampered = stored
            tampered[offset] ^= 0x04
            guard let error = openError(tampered) else {
                accepted.append(offset)
                continue
            }
            if offset == 0 {
                guard case .unknownVersion(5) = error else {
                    Issue.record("version byte: \(error)")
                    continue
                }
            } else {
                #expect(error.isAuthenticationFailed, "offset \(offset): \(error)")
            }
        }
        #expect(accepted.isEmpty, "accepted flips at \(accepted)")
    }

    @Test func truncatedAndEmptyObjectsFail() {
        let stored = seal(Fixture.text(40))
        #expect(openError([])?.isMalformed == true)
        for n in 1..<stored.count {
            #expect(openError(Array(stored.prefix(n)))?.isAuthenticationFailed == true, "length \(n)")
        }
        #expect(openError(stored + [0])?.isAuthenticationFailed == true)
    }

    /// Plaintexts that authenticate (sealed with the right key and associated data) but break the
    /// envelope's rules: a forged object must be reported as malformed, never trusted.
    @Test func forgedPlaintextsAreMalformed() throws {
        func forge(_ plain: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [SealedObject.version]
            XChaCha20Poly1305.seal(
                plain, authenticating: SealedObject.associatedData(kind: .snapshot, id: id), key: key.secret,
                nonce: SystemRandom().bytes(24), appendingTo: &out)
            return out
        }
        func header(compression: UInt8, length: UInt32) -> [UInt8] {
            var w = ByteWriter()
            w.u8(compression)
            w.u32(length)
            return w.bytes
        }
        let payload = Fixture.text(20)
        #expect(try SealedObject.open(forge(header(compression: 0, length: 20) + payload + [0, 0]), kind: .snapshot, id: id, key: key) == payload)
        let cases: [(String, [UInt8])] = [
            ("short plaintext", [0, 0, 0]),
            ("length beyond the object", header(compression: 0, length: 21) + payload),
            ("non-zero padding", header(compression: 0, length: 20) + payload + [0, 1]),
            ("unknown compression", header(compression: 7, length: 20) + payload),
            ("zstd flag over raw bytes", header(compression: 1, length: 20) + payload),
        ]
        for (what, plain) in cases {
            #expect(openError(forge(plain))?.isMalformed == true, "\(what)")
        }
    }

    @Test func unknownVersionIsReported() {
        var stored = seal(Fixture.text(40))
        stored[0] = 2
        guard case .unknownVersion(2)? = openError(stored) else {
            Issue.record("expected unknownVersion(2)")
            return
        }
    }
}

@Suite struct SizeBucketTests {
    @Test func lengthsBecomePowersOfTwoAboveTheMinimum() {
        #expect(SizeBucket.paddedLength(0, minimum: 4096) == 4096)
        #expect(SizeBucket.paddedLength(4096, minimum: 4096) == 4096)
        #expect(SizeBucket.paddedLength(4097, minimum: 4096) == 8192)
        #expect(SizeBucket.paddedLength(1_000_000, minimum: 4096) == 1 << 20)
        for n in 1...70_000 {
            let p = SizeBucket.paddedLength(n, minimum: 1)
            #expect(p >= n && p < 2 * n && p.nonzeroBitCount == 1)
            if p < n || p >= 2 * n { break }
        }
    }

    @Test func indexObjectsAreBucketedOtherKindsArePadme() throws {
        let key = Fixture.keys().metadataSealing
        let id = Raw256(Fixture.bytes(32, seed: 21))
        // 45 bytes a blob: a day that added 400 blobs and one that added 600 look the same.
        var indexLengths: Set<Int> = []
        for blobs in [400, 500, 600] {
            let payload = Fixture.bytes(blobs * 45, seed: 3)
            let stored = SealedObject.seal(payload, kind: .index, id: id, key: key, random: SystemRandom())
            #expect(try SealedObject.open(stored, kind: .index, id: id, key: key) == payload)
            indexLengths.insert(stored.count)
        }
        #expect(indexLengths == [32 << 10])
        let snapshot = SealedObject.seal(Fixture.bytes(300 * 45, seed: 3), kind: .snapshot, id: id, key: key, random: SystemRandom())
        #expect(snapshot.count == Padme.paddedLength(SealedObject.fixedOverhead + 300 * 45))
    }
}

@Suite struct PadmeTests {
    /// Values from the Padmé definition (also listed in FORMAT.md §13).
    @Test func knownValues() {
        let expected: [(Int, Int)] = [
            (0, 0), (1, 1), (2, 2), (3, 3), (9, 10), (100, 104), (129, 144), (1000, 1024), (4096, 4096), (65_537, 67_584),
            (1_000_000, 1_015_808), (16_777_217, 17_301_504),
        ]
        for (n, padded) in expected { #expect(Padme.paddedLength(n) == padded, "\(n)") }
    }

    @Test func powersOfTwoAreUnchanged() {
        for k in 0..<40 { #expect(Padme.paddedLength(1 << k) == 1 << k, "2^\(k)") }
    }

    @Test func paddedLengthIsMonotonicBoundedAndIdempotent() {
        var previous = 0
        var worst = 0.0
        var problems: [Int] = []
        for n in 1...100_000 {
            let p = Padme.paddedLength(n)
            if p < n || p < previous || Padme.paddedLength(p) != p { problems.append(n) }
            worst = max(worst, Double(p - n) / Double(n))
            previous = p
        }
        #expect(problems.isEmpty, "first violations at \(problems.prefix(5))")
        #expect(worst <= 0.12, "overhead up to \(worst)")
    }

    @Test func overheadFallsWithSize() {
        for n in stride(from: 16 << 20, to: 17 << 20, by: 4099) {
            let p = Padme.paddedLength(n)
            #expect(p >= n && Double(p - n) / Double(n) <= 0.032, "\(n) → \(p)")
        }
    }

    @Test func paddedLengthsLeakFewBits() {
        // Only the top ⌊log2 E⌋ + 1 bits of a padded length may be set: few distinct lengths per octave.
        let distinct = Set((65_536..<131_072).map(Padme.paddedLength))
        // 32 steps of 2 KiB, plus 128 KiB itself for lengths just below it.
        #expect(distinct.count <= 33, "\(distinct.count) distinct padded lengths between 64 and 128 KiB")
    }
}
