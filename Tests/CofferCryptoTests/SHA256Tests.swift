import CofferCrypto
import Testing

@Suite struct SHA256Tests {
    /// FIPS 180-2 Appendix B.1 and B.2, and the empty message.
    @Test func fipsVectors() {
        #expect(TestBytes.hex(SHA256.hash(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TestBytes.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(TestBytes.hex(SHA256.hash([UInt8]()))
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// Non-contiguous collections hash like their array.
    @Test func anyCollectionHashesLikeItsBytes() {
        let bytes = TestBytes.pseudoRandom(1000, seed: 3)
        #expect(SHA256.hash(bytes[100..<900]) == SHA256.hash(Array(bytes[100..<900])))
        #expect(SHA256.hash(bytes.reversed()) == SHA256.hash(Array(bytes.reversed())))
    }

    struct HMACCase: Sendable, CustomTestStringConvertible {
        let name: String
        let key: [UInt8]
        let data: [UInt8]
        let mac: String
        var testDescription: String { name }
    }

    /// RFC 4231 §4.2–4.5 and §4.7–4.8 (test case 5 is a truncated MAC and is left out).
    static let rfc4231: [HMACCase] = [
        HMACCase(name: "RFC 4231 case 1", key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8),
                 mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        HMACCase(name: "RFC 4231 case 2 (short key)", key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
                 mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        HMACCase(name: "RFC 4231 case 3", key: [UInt8](repeating: 0xaa, count: 20), data: [UInt8](repeating: 0xdd, count: 50),
                 mac: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        HMACCase(name: "RFC 4231 case 4 (25-byte key)", key: (1...25).map { UInt8($0) }, data: [UInt8](repeating: 0xcd, count: 50),
                 mac: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        HMACCase(name: "RFC 4231 case 6 (131-byte key)", key: [UInt8](repeating: 0xaa, count: 131),
                 data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                 mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        HMACCase(name: "RFC 4231 case 7 (131-byte key, long data)", key: [UInt8](repeating: 0xaa, count: 131),
                 data: Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
                 mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: rfc4231)
    func hmacRFC4231(_ c: HMACCase) {
        #expect(TestBytes.hex(HMACSHA256.authenticate(c.data, key: c.key)) == c.mac)
    }

    /// An empty key and an empty message are valid inputs (checked with Python's hmac module).
    @Test func hmacEmptyInputs() {
        #expect(TestBytes.hex(HMACSHA256.authenticate([UInt8](), key: []))
            == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }
}
