import CofferCrypto

/// FastCDC (Xia et al., USENIX ATC 2016) with normalized chunking (level 2) over a secret gear
/// table, so chunk boundaries depend on the repository key (FORMAT.md §4.1).
public struct FastCDC: Sendable {
    public let parameters: ChunkerParameters
    /// 256 pseudo-random words, derived from the repository's gear seed.
    public let gear: [UInt64]
    /// Harder mask (more bits) before the average size, easier after: sizes cluster near the average.
    let maskSmall: UInt64
    let maskLarge: UInt64

    public init(parameters: ChunkerParameters, gear: [UInt64]) {
        precondition(gear.count == 256)
        self.parameters = parameters
        self.gear = gear
        let bits = parameters.averageSize.trailingZeroBitCount
        // Top bits: after `fp <<= 1` the high bits mix the last 64 bytes of the window.
        maskSmall = ~UInt64(0) << UInt64(64 - (bits + 2))
        maskLarge = ~UInt64(0) << UInt64(64 - (bits - 2))
    }

    public init(parameters: ChunkerParameters, seed: GearSeed) {
        self.init(parameters: parameters, gear: Self.gearTable(seed: seed))
    }

    /// The gear table: the first 2048 bytes of ChaCha20(key = gear seed, nonce = 0), read as 256
    /// little-endian 64-bit words.
    public static func gearTable(seed: GearSeed) -> [UInt64] {
        let stream = ChaCha20.keystream(count: 2048, key: seed.secret, nonce8: [UInt8](repeating: 0, count: 8))
        return (0..<256).map { i in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(stream[i * 8 + $1]) << (8 * UInt64($1)) }
        }
    }

    /// Length of the next chunk at the start of `data`. The caller passes at least `maxSize`
    /// bytes unless `data` holds the end of the stream.
    public func cutLength(_ data: UnsafeRawBufferPointer) -> Int {
        let n = data.count
        if n <= parameters.minSize { return n }
        let limit = min(n, parameters.maxSize)
        let normal = min(limit, parameters.averageSize)
        // Safe: every index read below is < limit <= data.count, and the gear index is a byte.
        return gear.withUnsafeBufferPointer { g in
            var fp: UInt64 = 0
            var i = parameters.minSize
            while i < normal {
                fp = (fp << 1) &+ g[Int(data[i])]
                if fp & maskSmall == 0 { return i + 1 }
                i += 1
            }
            while i < limit {
                fp = (fp << 1) &+ g[Int(data[i])]
                if fp & maskLarge == 0 { return i + 1 }
                i += 1
            }
            return limit
        }
    }

    /// Convenience for tests and small inputs: all chunk lengths of `data`.
    public func chunkLengths(_ data: [UInt8]) -> [Int] {
        var lengths: [Int] = []
        data.withUnsafeBytes { all in
            var offset = 0
            while offset < all.count {
                let n = cutLength(UnsafeRawBufferPointer(rebasing: all[offset...]))
                lengths.append(n)
                offset += n
            }
        }
        return lengths
    }
}
