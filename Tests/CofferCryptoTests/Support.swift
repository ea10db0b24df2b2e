import CofferCrypto

/// Hex helpers and deterministic test inputs (CofferCrypto has no hex codec of its own).
enum TestBytes {
    /// Bytes from a hex string; whitespace is ignored. Traps on malformed input (test constants only).
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") })
        precondition(digits.count % 2 == 0, "odd number of hex digits")
        return stride(from: 0, to: digits.count, by: 2).map { i in
            UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16)!
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// Deterministic pseudo-random bytes: the ChaCha20 keystream under a key of `seed` bytes.
    static func pseudoRandom(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        ChaCha20.keystream(count: count, key: [UInt8](repeating: seed, count: 32), nonce8: [UInt8](repeating: 0, count: 8))
    }

    /// Highly compressible, text-like bytes.
    static func text(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 80)
        var line = 0
        while out.count < count {
            out += Array("line \(line): the quick brown fox jumps over the lazy dog, \(line % 7) times\n".utf8)
            line += 1
        }
        return Array(out.prefix(count))
    }

    /// A 32-byte key 0, 1, …, 31 (plus `offset`).
    static func key(offset: UInt8 = 0) -> SecureBytes {
        SecureBytes(copying: (0..<32).map { UInt8($0) &+ offset })
    }
}

/// A collection of bytes with no contiguous storage, to exercise the copying path of the wrappers.
struct NonContiguousBytes: Collection {
    let base: [UInt8]
    var startIndex: Int { 0 }
    var endIndex: Int { base.count }
    func index(after i: Int) -> Int { i + 1 }
    subscript(i: Int) -> UInt8 { base[i] }
}
