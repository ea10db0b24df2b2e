import CofferCrypto
import Testing

@Suite struct Blake2bTests {
    /// RFC 7693, Appendix A: BLAKE2b-512("abc").
    @Test func rfc7693AppendixAVector() {
        let expected = TestBytes.hex("""
            ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1
            7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923
            """)
        #expect(Blake2b.hash(Array("abc".utf8), length: 64) == expected)
    }

    @Test func emptyMessageVector() {
        let expected = TestBytes.hex("""
            786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419
            d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce
            """)
        #expect(Blake2b.hash([UInt8](), length: 64) == expected)
    }

    /// Keyed BLAKE2b-256, checked against Python's hashlib.blake2b(msg, key=…, digest_size=32).
    @Test func keyedHashMatchesAnIndependentImplementation() {
        let key = TestBytes.key()
        #expect(TestBytes.hex(Blake2b.hash256(Array("coffer".utf8), key: key))
            == "80a44a9ae960e99853c4f49ee8ea78fe012d518c1d0cd503d144fdb4a5225aa7")
        #expect(TestBytes.hex(Blake2b.hash256((0..<64).map { UInt8($0) }, key: key))
            == "7f46f043d63dfb3c9b1102c8824b632cae1fce453e3c0e9dc9e7113f3c1acc36")
    }

    @Test(arguments: [0, 1, 63, 64, 65, 127, 128, 129, 255, 256, 1000, 4097, 1 << 20])
    func keyedHash256EqualsLibB2(length: Int) {
        let message = TestBytes.pseudoRandom(length, seed: 7)
        for key in [TestBytes.key(), TestBytes.key(offset: 100), SecureBytes(copying: TestBytes.pseudoRandom(32, seed: 8))] {
            let ours = Blake2b.hash256(message, key: key)
            #expect(ours.count == 32)
            #expect(ours == LibB2.keyedHash256(message, key: key), "length \(length)")
        }
    }

    @Test func defaultLengthIs32AndLengthIsAParameterNotATruncation() {
        let message = Array("abc".utf8)
        #expect(Blake2b.hash(message).count == 32)
        #expect(Blake2b.hash(message, length: 16).count == 16)
        #expect(Blake2b.hash(message) == Blake2b.hash(message, length: 32))
        // BLAKE2b mixes the digest length into its parameter block.
        #expect(Blake2b.hash(message, length: 32) != Array(Blake2b.hash(message, length: 64).prefix(32)))
    }

    @Test func keyChangesTheDigest() {
        let message = Array("message".utf8)
        let a = Blake2b.hash256(message, key: TestBytes.key())
        let b = Blake2b.hash256(message, key: TestBytes.key(offset: 1))
        #expect(a != b)
        #expect(a != Blake2b.hash(message, length: 32), "keyed differs from unkeyed")
    }

    @Test func plainKeyVariantEqualsSecureKeyVariant() {
        let message = TestBytes.pseudoRandom(999, seed: 2)
        let keyBytes = (0..<32).map { UInt8($0) }
        #expect(Blake2b.hash256(message, plainKey: keyBytes) == Blake2b.hash256(message, key: SecureBytes(copying: keyBytes)))
    }

    @Test func slicesAndNonContiguousCollectionsHashLikeArrays() {
        let message = TestBytes.pseudoRandom(500, seed: 2)
        let key = TestBytes.key()
        let reference = Blake2b.hash256(Array(message[100..<400]), key: key)
        #expect(Blake2b.hash256(message[100..<400], key: key) == reference)
        #expect(Blake2b.hash256(NonContiguousBytes(base: Array(message[100..<400])), key: key) == reference)
        #expect(Blake2b.hash(message[100..<400]) == Blake2b.hash(Array(message[100..<400])))
    }
}

@Suite struct SubkeyDerivationTests {
    let master = TestBytes.key()

    /// crypto_kdf_derive_from_key is BLAKE2b-256(key = master, salt = id ‖ 0⁸, personal = context ‖ 0⁸),
    /// here checked against Python's hashlib for subkeys 1…4 of context "CofferK1".
    @Test func matchesBlake2bWithSaltAndPersonalisation() {
        let expected = [
            "91394473030b0441fe4e406e6c9f1f4e8bb4f1f342f247c3c5ceb8b07f3af379",
            "acd8197992db8f4703edf0e1c9f7f22a1dcf58bcf39f08f7d8e8a54ad63aa308",
            "d48c9c23f09738cbcb0e651ddc86574de9c306b39a9cce839a7cbc3796de756a",
            "4eaec9c1813578d4c3d1539ec49f30e539797a4dba94f8e4bb222f6434780feb",
        ]
        for (i, hex) in expected.enumerated() {
            let key = SubkeyDerivation.derive(from: master, id: UInt64(i + 1), context: "CofferK1")
            #expect(TestBytes.hex(key.copyBytes()) == hex, "subkey \(i + 1)")
        }
    }

    @Test func distinctIdsGiveDistinctKeys() {
        let ids: [UInt64] = Array(0..<64) + [1 << 32, UInt64.max]
        let keys = ids.map { SubkeyDerivation.derive(from: master, id: $0, context: "CofferK1").copyBytes() }
        #expect(Set(keys).count == ids.count)
    }

    @Test func derivationIsDeterministic() {
        let a = SubkeyDerivation.derive(from: master, id: 7, context: "CofferK1")
        let b = SubkeyDerivation.derive(from: master, id: 7, context: "CofferK1")
        #expect(a.constantTimeEquals(b))
    }

    @Test func contextAndMasterKeyChangeTheKey() {
        let base = SubkeyDerivation.derive(from: master, id: 1, context: "CofferK1").copyBytes()
        #expect(SubkeyDerivation.derive(from: master, id: 1, context: "CofferK2").copyBytes() != base)
        #expect(SubkeyDerivation.derive(from: TestBytes.key(offset: 1), id: 1, context: "CofferK1").copyBytes() != base)
    }

    @Test(arguments: [16, 32, 48, 64])
    func outputHasTheRequestedLength(length: Int) {
        #expect(SubkeyDerivation.derive(from: master, id: 1, context: "CofferK1", length: length).count == length)
    }
}
