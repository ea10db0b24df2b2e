@_spi(Testing) import CofferCrypto
import Testing

@Suite struct RandomTests {
    let seed = [UInt8](repeating: 0x5a, count: 32)

    /// djb ChaCha20, all-zero key and nonce (draft-agl-tls-chacha20poly1305, test vector 1).
    @Test func chaCha20ZeroKeyVector() {
        let expected = TestBytes.hex("""
            76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7
            da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586
            """)
        let zeros = [UInt8](repeating: 0, count: 32)
        #expect(ChaCha20.keystream(count: 64, key: zeros, nonce8: [UInt8](repeating: 0, count: 8)) == expected)
        #expect(ChaCha20.keystream(count: 64, key: SecureBytes(copying: zeros), nonce8: [UInt8](repeating: 0, count: 8)) == expected)
        #expect(ChaCha20.keystream(count: 0, key: zeros, nonce8: [UInt8](repeating: 0, count: 8)).isEmpty)
    }

    @Test func keystreamIsAPrefixStream() {
        let long = ChaCha20.keystream(count: 1000, key: seed, nonce8: [1, 0, 0, 0, 0, 0, 0, 0])
        let short = ChaCha20.keystream(count: 100, key: seed, nonce8: [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(long.prefix(100)) == short)
        #expect(ChaCha20.keystream(count: 100, key: seed, nonce8: [2, 0, 0, 0, 0, 0, 0, 0]) != short)
    }

    /// Call n of a SeededRandom is the ChaCha20 keystream with nonce n (little-endian); values
    /// checked against Python `cryptography`'s ChaCha20.
    @Test func seededRandomProducesTheDocumentedStream() {
        let random = SeededRandom(seed: seed)
        #expect(TestBytes.hex(random.bytes(16)) == "570416449232bd07fdecc45ca6e6df18")
        #expect(TestBytes.hex(random.bytes(16)) == "bab5d7f4f57624ea781b9afaa8fe5843")
    }

    @Test func seededRandomIsDeterministic() {
        let a = SeededRandom(seed: seed), b = SeededRandom(seed: seed)
        let lengths = [0, 1, 24, 32, 1000, 7]
        #expect(lengths.map { a.bytes($0) } == lengths.map { b.bytes($0) })
    }

    @Test func successiveCallsAndSeedsDiffer() {
        let a = SeededRandom(seed: seed)
        let first = a.bytes(32), second = a.bytes(32)
        #expect(first != second)
        #expect(SeededRandom(seed: [UInt8](repeating: 0x5b, count: 32)).bytes(32) != first)
        #expect(a.bytes(0).isEmpty)
    }

    @Test func seededRandomIsSafeToShareBetweenTasks() async {
        let shared = SeededRandom(seed: seed)
        let outputs = await withTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<4 { group.addTask { (0..<50).map { _ in shared.bytes(16) } } }
            var all: [[UInt8]] = []
            for await part in group { all += part }
            return all
        }
        let sequential = SeededRandom(seed: seed)
        let expected = Set((0..<200).map { _ in sequential.bytes(16) })
        #expect(outputs.count == 200)
        #expect(Set(outputs) == expected, "every call consumed exactly one counter value")
    }

    @Test func systemRandomGivesTheRequestedCountAndFreshBytes() {
        let r = SystemRandom()
        #expect(r.bytes(0).isEmpty)
        #expect(r.bytes(33).count == 33)
        #expect(r.bytes(32) != r.bytes(32))
    }

    @Test func lockSerialisesCriticalSections() async {
        final class Counter: @unchecked Sendable {
            let lock = Lock()
            var value = 0
        }
        let counter = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { for _ in 0..<10_000 { counter.lock.withLock { counter.value += 1 } } }
            }
        }
        #expect(counter.lock.withLock { counter.value } == 40_000)
    }
}
