// Micro benchmarks of the per-byte work a backup does: chunking, hashing, sealing,
// compressing, and encoding trees. See ../README.md for how to run them and read the numbers.
//
// Each benchmark but the FastCDC one handles 1 MiB per iteration, so its throughput
// (iterations per second) reads directly as MiB/s. The FastCDC one chunks 64 MiB per
// iteration: multiply its throughput by 64.

import Benchmark
import Coffer
import CofferCrypto

/// Deterministic bytes (SplitMix64), so runs compare like for like.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Fixtures {
    static let mib = 1 << 20

    /// Incompressible bytes, like photos and video.
    static func random(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var g = SplitMix64(state: seed)
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in words.indices { words[i] = g.next() }
        }
        return out
    }

    /// Chat-like text: words from a small vocabulary, skewed towards the common ones
    /// (zstd level 3 shrinks it to roughly a third).
    static func text(_ count: Int, seed: UInt64 = 2) -> [UInt8] {
        let words = """
            i you the to a and it is that of in for me on have my be this what just do we so no not but are \
            with your was can at if like okay yes yeah up out now go will about one when how good see there \
            think time then really love going here got too did want tomorrow tonight back well come thanks \
            need would sure home work night still from more should maybe right sorry call later morning week \
            weekend dinner coffee meeting train late soon happy great nice wait done ready photo video message
            """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { Array($0.utf8) }
        var g = SplitMix64(state: seed)
        var out: [UInt8] = []
        out.reserveCapacity(count + 64)
        var sentence = 0
        while out.count < count {
            // Squaring a uniform number favours low indices: a crude Zipf.
            let u = Double(g.next() >> 11) / Double(1 << 53)
            out += words[Int(u * u * Double(words.count))]
            sentence += 1
            if sentence > 4 && g.next() % 6 == 0 {
                out += Array(".\n".utf8)
                sentence = 0
            } else {
                out.append(UInt8(ascii: " "))
            }
        }
        return Array(out.prefix(count))
    }

    static let keys = RepositoryKeys(master: MasterKey.generate())
    static let nonce = random(24, seed: 3)

    static func treeNodes(_ n: Int) -> [TreeNode] {
        var g = SplitMix64(state: 4)
        return (0..<n).map { i in
            let meta = NodeMetadata(
                mode: 0o644, uid: 1000, gid: 1000, mtimeNanos: 1_704_067_200_000_000_000 + Int64(i) * 1_000_000_007,
                ctimeNanos: 1_704_067_200_000_000_000 + Int64(i) * 1_000_000_009, device: 2049, inode: 100_000 + UInt64(i),
                links: 1)
            let chunks = (0..<Int(1 + g.next() % 3)).map { _ in BlobID(bytes: random(32, seed: g.next())) }
            return TreeNode(
                name: Array("IMG-20240101-WA\(String(i).leftZeroPadded(4)).jpg".utf8), metadata: meta,
                content: .file(size: 200_000 + g.next() % 800_000, chunks: chunks))
        }
    }
}

extension String {
    func leftZeroPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

let benchmarks: @Sendable () -> Void = {
    Sodium.initialize()
    Benchmark.defaultConfiguration = .init(metrics: metrics, warmupIterations: 2, maxDuration: .seconds(3), maxIterations: 1000)

    // FastCDC: chunk boundaries over 64 MiB of random data with a keyed gear table.
    let chunkInput = Fixtures.random(64 * Fixtures.mib, seed: 10)
    let chunker = FastCDC(parameters: .standard, gear: FastCDC.gearTable(seed: Fixtures.keys.gearSeed))
    Benchmark("FastCDC cutLength 64 MiB (standard 256K/1M/4M)", configuration: .init(maxDuration: .seconds(5), maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations {
            var chunks = 0
            chunkInput.withUnsafeBytes { all in
                var offset = 0
                while offset < all.count {
                    offset += chunker.cutLength(UnsafeRawBufferPointer(rebasing: all[offset...]))
                    chunks += 1
                }
            }
            blackHole(chunks)
        }
    }

    let random1M = Fixtures.random(Fixtures.mib, seed: 11)
    let text1M = Fixtures.text(Fixtures.mib)

    Benchmark("BLAKE2b-256 keyed (blobID) 1 MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Fixtures.keys.blobID(of: random1M))
        }
    }

    var sealOut: [UInt8] = []
    sealOut.reserveCapacity(Fixtures.mib + 64)
    Benchmark("XChaCha20-Poly1305 seal 1 MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            sealOut.removeAll(keepingCapacity: true)
            XChaCha20Poly1305.seal(random1M, authenticating: [UInt8](), key: Fixtures.keys.dataSealing.secret, nonce: Fixtures.nonce, appendingTo: &sealOut)
            blackHole(sealOut.count)
        }
    }

    let compressor = ZstdCompressor(level: 3)
    var zstdOut: [UInt8] = []
    zstdOut.reserveCapacity(ZstdCompressor.bound(Fixtures.mib))
    Benchmark("zstd level 3 compress 1 MiB text") { benchmark in
        for _ in benchmark.scaledIterations {
            zstdOut.removeAll(keepingCapacity: true)
            blackHole(compressor.compress(text1M, appendingTo: &zstdOut))
        }
    }

    // The whole per-blob sealing path: sample test, maybe compress, seal.
    var scratch: [UInt8] = []
    var envelope: [UInt8] = []
    scratch.reserveCapacity(ZstdCompressor.bound(Fixtures.mib) + 64)
    envelope.reserveCapacity(ZstdCompressor.bound(Fixtures.mib) + 64)
    for (label, input) in [("random (stored raw)", random1M), ("text (zstd)", text1M)] {
        let handle = BlobHandle(id: Fixtures.keys.blobID(of: input), type: .data)
        Benchmark("BlobEnvelope.seal 1 MiB \(label)") { benchmark in
            for _ in benchmark.scaledIterations {
                envelope.removeAll(keepingCapacity: true)
                blackHole(BlobEnvelope.seal(
                    input[...], handle: handle, key: Fixtures.keys.dataSealing, nonce: Fixtures.nonce, compressor: compressor,
                    scratch: &scratch, appendingTo: &envelope))
            }
        }
    }

    let tree = Tree(nodes: Fixtures.treeNodes(1000))
    Benchmark("Tree encode 1000 nodes") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(tree.encoded())
        }
    }
}
