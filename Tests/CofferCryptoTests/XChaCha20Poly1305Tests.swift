import CofferCrypto
import Testing

@Suite struct XChaCha20Poly1305Tests {
    let key = TestBytes.key()
    let nonce = TestBytes.pseudoRandom(XChaCha20Poly1305.nonceSize, seed: 9)
    let ad = Array("associated data".utf8)

    func seal(_ plaintext: [UInt8], ad: [UInt8]? = nil) -> [UInt8] {
        var box: [UInt8] = []
        XChaCha20Poly1305.seal(plaintext, authenticating: ad ?? self.ad, key: key, nonce: nonce, appendingTo: &box)
        return box
    }

    @Test func sizesAreThoseOfXChaCha20Poly1305() {
        #expect(XChaCha20Poly1305.keySize == 32)
        #expect(XChaCha20Poly1305.nonceSize == 24)
        #expect(XChaCha20Poly1305.tagSize == 16)
        #expect(XChaCha20Poly1305.overhead == 40)
    }

    @Test(arguments: [0, 1, 15, 16, 17, 63, 64, 65, 1000, 65_539])
    func sealThenOpenReturnsThePlaintext(length: Int) throws {
        let plaintext = TestBytes.pseudoRandom(length, seed: 3)
        let box = seal(plaintext)
        #expect(box.count == length + XChaCha20Poly1305.overhead)
        #expect(Array(box.prefix(24)) == nonce, "the box starts with its nonce")
        #expect(try XChaCha20Poly1305.open(box, authenticating: ad, key: key) == plaintext)
    }

    /// draft-irtf-cfrg-xchacha-03, Appendix A.3.1 (also checked with an independent implementation).
    @Test func matchesTheXChaChaDraftTestVector() throws {
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let ad = TestBytes.hex("50515253c0c1c2c3c4c5c6c7")
        let key = SecureBytes(copying: (0x80...0x9f).map { UInt8($0) })
        let nonce = (0x40...0x57).map { UInt8($0) }
        let expectedCiphertext = TestBytes.hex("""
            bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
            ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
            21f9664c97637da9768812f615c68b13b52e
            """)
        let expectedTag = TestBytes.hex("c0875924c1c7987947deafd8780acf49")
        var box: [UInt8] = []
        XChaCha20Poly1305.seal(plaintext, authenticating: ad, key: key, nonce: nonce, appendingTo: &box)
        #expect(box == nonce + expectedCiphertext + expectedTag)
        #expect(try XChaCha20Poly1305.open(box, authenticating: ad, key: key) == plaintext)
    }

    @Test func sealAppendsAfterExistingBytes() throws {
        var out: [UInt8] = [1, 2, 3]
        XChaCha20Poly1305.seal([9, 9], authenticating: ad, key: key, nonce: nonce, appendingTo: &out)
        #expect(Array(out.prefix(3)) == [1, 2, 3])
        #expect(out.count == 3 + 2 + XChaCha20Poly1305.overhead)
        #expect(try XChaCha20Poly1305.open(out.dropFirst(3), authenticating: ad, key: key) == [9, 9])
    }

    @Test func sealWithRandomSourceUsesAFreshNonceEachTime() throws {
        let plaintext = Array("same message".utf8)
        let random = SystemRandom()
        let a = XChaCha20Poly1305.seal(plaintext, authenticating: ad, key: key, random: random)
        let b = XChaCha20Poly1305.seal(plaintext, authenticating: ad, key: key, random: random)
        #expect(a.prefix(24) != b.prefix(24))
        #expect(a != b)
        #expect(try XChaCha20Poly1305.open(a, authenticating: ad, key: key) == plaintext)
        #expect(try XChaCha20Poly1305.open(b, authenticating: ad, key: key) == plaintext)
    }

    @Test func acceptsSlicesAndNonContiguousCollections() throws {
        let plaintext = TestBytes.pseudoRandom(300, seed: 5)
        let reference = seal(plaintext)
        var viaCollection: [UInt8] = []
        XChaCha20Poly1305.seal(
            NonContiguousBytes(base: plaintext), authenticating: NonContiguousBytes(base: ad), key: key, nonce: nonce,
            appendingTo: &viaCollection)
        #expect(viaCollection == reference)
        let padded = [0xee, 0xee] + reference
        #expect(try XChaCha20Poly1305.open(padded[2...], authenticating: ad[...], key: key) == plaintext)
        #expect(try XChaCha20Poly1305.open(NonContiguousBytes(base: reference), authenticating: ad, key: key) == plaintext)
    }

    @Test func flippingAnyByteOfNonceCiphertextOrTagFailsAuthentication() {
        let box = seal(TestBytes.pseudoRandom(48, seed: 4))
        var accepted: [Int] = []
        for i in box.indices {
            var tampered = box
            tampered[i] ^= 0x01
            do {
                _ = try XChaCha20Poly1305.open(tampered, authenticating: ad, key: key)
                accepted.append(i)
            } catch {
                #expect(error == .authenticationFailed)
            }
        }
        #expect(accepted.isEmpty, "tampered bytes accepted at offsets \(accepted)")
    }

    @Test func tamperingWithEachRegionFails() {
        let box = seal(Array("attack at dawn".utf8))
        let regions = [("nonce", 0), ("ciphertext", 24), ("tag", box.count - 1)]
        for (name, offset) in regions {
            var tampered = box
            tampered[offset] ^= 0x80
            #expect(throws: XChaCha20Poly1305.Failure.authenticationFailed, "\(name)") {
                try XChaCha20Poly1305.open(tampered, authenticating: ad, key: key)
            }
        }
    }

    @Test func wrongAssociatedDataFails() {
        let box = seal(Array("payload".utf8))
        var flipped = ad
        flipped[0] ^= 1
        for wrong in [flipped, [], ad + [0], Array(ad.dropLast())] {
            #expect(throws: XChaCha20Poly1305.Failure.authenticationFailed) {
                try XChaCha20Poly1305.open(box, authenticating: wrong, key: key)
            }
        }
    }

    @Test func emptyAssociatedDataRoundTripsAndIsBound() throws {
        let box = seal(Array("payload".utf8), ad: [])
        #expect(try XChaCha20Poly1305.open(box, authenticating: [UInt8](), key: key) == Array("payload".utf8))
        #expect(throws: XChaCha20Poly1305.Failure.authenticationFailed) {
            try XChaCha20Poly1305.open(box, authenticating: [0], key: key)
        }
    }

    @Test func wrongKeyFails() {
        let box = seal(Array("payload".utf8))
        #expect(throws: XChaCha20Poly1305.Failure.authenticationFailed) {
            try XChaCha20Poly1305.open(box, authenticating: ad, key: TestBytes.key(offset: 1))
        }
    }

    @Test func truncatedBoxesAreRejectedAtEveryLength() {
        let box = seal(TestBytes.pseudoRandom(20, seed: 6))
        for length in 0..<box.count {
            let expected: XChaCha20Poly1305.Failure = length < XChaCha20Poly1305.overhead ? .tooShort : .authenticationFailed
            #expect(throws: expected, "length \(length)") {
                try XChaCha20Poly1305.open(box.prefix(length), authenticating: ad, key: key)
            }
            #expect(throws: expected, "suffix of length \(length)") {
                try XChaCha20Poly1305.open(box.suffix(length), authenticating: ad, key: key)
            }
        }
    }

    @Test func extendedBoxFails() {
        let box = seal(Array("payload".utf8))
        #expect(throws: XChaCha20Poly1305.Failure.authenticationFailed) {
            try XChaCha20Poly1305.open(box + [0], authenticating: ad, key: key)
        }
    }

    @Test func sameNonceAndKeyIsDeterministic() {
        let plaintext = Array("deterministic".utf8)
        #expect(seal(plaintext) == seal(plaintext))
        #expect(seal(plaintext) != seal(plaintext, ad: [1]), "the tag depends on the associated data")
    }
}
