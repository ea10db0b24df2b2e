import CofferCrypto
import Foundation
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

/// `Blake2b.hash256(each:)` runs four BLAKE2b instances in the lanes of vector registers. Each
/// kernel this CPU has must give, for every message, what libb2's one-message BLAKE2b gives.
@Suite struct Blake2bLanesTests {
    /// Lengths around the 128-byte block (the last block of a lane is padded), the empty
    /// message (a keyed one is the key block alone), and long ones.
    static let lengths = [0, 1, 2, 63, 64, 65, 111, 112, 127, 128, 129, 200, 255, 256, 257, 383, 384, 385, 1000, 4095, 4096, 4097, 65_536, 300_001]

    static var availableKernels: [Blake2b.Kernel] {
        Blake2b.Kernel.allCases.filter(probe)
    }

    private static func probe(_ kernel: Blake2b.Kernel) -> Bool {
        [UInt8](repeating: 1, count: 3).withUnsafeBytes { Blake2b.hash256(each: [$0, $0], key: TestBytes.key(), kernel: kernel) != nil }
    }

    @Test func everyKernelEqualsLibB2ForEveryLengthAndKeyLength() {
        let kernels = Self.availableKernels
        let data = TestBytes.pseudoRandom(400_000, seed: 11)
        // Odd offsets, so no lane reads an aligned block.
        let messages = Self.lengths.enumerated().map { i, n in Array(data[(i * 7 + 3)..<(i * 7 + 3 + n)]) }
        let keys = [0, 1, 32, 63, 64].map { SecureBytes(copying: TestBytes.pseudoRandom($0, seed: UInt8(20 + $0 % 200))) }
        for key in keys {
            let expected = messages.map { LibB2.keyedHash256($0, key: key) }
            for kernel in kernels {
                let got = withViews(messages) { Blake2b.hash256(each: $0, key: key, kernel: kernel) }
                #expect(got == expected, "kernel \(kernel), key of \(key.count) bytes")
                // Three at once: one lane stays idle from the start.
                let three = withViews(Array(messages.suffix(3))) { Blake2b.hash256(each: $0, key: key, kernel: kernel) }
                #expect(three == Array(expected.suffix(3)), "kernel \(kernel), three messages")
            }
        }
    }

    /// Lanes take new messages as theirs end, longest first; each digest must land in its
    /// message's place whatever the order of lengths.
    @Test func digestsStayInTheirMessagesPlaces() {
        let lengths = [5000, 3, 129, 0, 70_000, 128, 1, 4096, 256, 9999, 17, 130]
        let messages = lengths.enumerated().map { i, n in TestBytes.pseudoRandom(n, seed: UInt8(40 + i)) }
        let key = TestBytes.key()
        let expected = messages.map { Blake2b.hash256($0, key: key) }
        #expect(withViews(messages) { Blake2b.hash256(each: $0, key: key) } == expected)
        for kernel in Self.availableKernels {
            #expect(withViews(messages) { Blake2b.hash256(each: $0, key: key, kernel: kernel) } == expected, "kernel \(kernel)")
        }
    }

    /// More messages than the kernel sorts on its stack (64): its heap path.
    @Test func manyMessagesAtOnce() {
        let data = TestBytes.pseudoRandom(200_000, seed: 13)
        let messages = (0..<150).map { i in Array(data[(i * 997 % 50_000)..<(i * 997 % 50_000 + (i * 7919) % 3000)]) }
        let key = TestBytes.key(offset: 3)
        let expected = messages.map { LibB2.keyedHash256($0, key: key) }
        for kernel in Self.availableKernels {
            #expect(withViews(messages) { Blake2b.hash256(each: $0, key: key, kernel: kernel) } == expected, "kernel \(kernel)")
        }
        #expect(withViews(messages) { Blake2b.hash256(each: $0, key: key) } == expected)
    }

    /// The vector of `keyedHashMatchesAnIndependentImplementation` (Python's hashlib), among
    /// other messages so it runs in a lane.
    @Test func pythonVectorInALane() {
        let messages = [Array("coffer".utf8), (0..<64).map { UInt8($0) }, [UInt8](repeating: 9, count: 1000)]
        let got = withViews(messages) { Blake2b.hash256(each: $0, key: TestBytes.key()) }
        #expect(TestBytes.hex(got[0]) == "80a44a9ae960e99853c4f49ee8ea78fe012d518c1d0cd503d144fdb4a5225aa7")
        #expect(TestBytes.hex(got[1]) == "7f46f043d63dfb3c9b1102c8824b632cae1fce453e3c0e9dc9e7113f3c1acc36")
    }

    /// On an x86-64 CPU with AVX2 (this project's machines), the lanes are in use.
    @Test(.enabled(if: Self.cpuHasAVX2, "the CPU has no AVX2"))
    func lanesAreUsedWhereTheCPUHasAVX2() {
        #expect(Blake2b.lanes == 4)
        #expect(Self.availableKernels.contains(.avx2))
    }

    static var cpuHasAVX2: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { $0.hasPrefix("flags") && $0.split(separator: " ").contains("avx2") }
    }

    private func withViews<R>(_ messages: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        func nest(_ i: Int, _ views: [UnsafeRawBufferPointer]) -> R {
            guard i < messages.count else { return body(views) }
            return messages[i].withUnsafeBytes { nest(i + 1, views + [$0]) }
        }
        return nest(0, [])
    }
}
