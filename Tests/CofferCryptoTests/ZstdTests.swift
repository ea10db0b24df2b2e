import CofferCrypto
import Testing

@Suite struct ZstdTests {
    @Test(arguments: [0, 1, 100, 4096, 200_000])
    func textRoundTrips(length: Int) throws {
        let input = TestBytes.text(length)
        var frame: [UInt8] = []
        let written = ZstdCompressor().compress(input, appendingTo: &frame)
        #expect(written == frame.count)
        #expect(ZstdDecompressor.declaredSize(frame) == length)
        #expect(try ZstdDecompressor().decompress(frame, expectedCount: length) == input)
        if length >= 4096 { #expect(frame.count < length / 4, "text compresses well") }
    }

    @Test func incompressibleDataRoundTrips() throws {
        let input = TestBytes.pseudoRandom(100_000, seed: 4)
        var frame: [UInt8] = []
        ZstdCompressor(level: 1).compress(input, appendingTo: &frame)
        #expect(frame.count <= ZstdCompressor.bound(input.count))
        #expect(try ZstdDecompressor().decompress(frame, expectedCount: input.count) == input)
    }

    @Test func compressAppendsAfterExistingBytesAndAcceptsSlices() throws {
        let input = TestBytes.text(10_000)
        var out: [UInt8] = [0xaa, 0xbb]
        let n = ZstdCompressor().compress(input[100..<9_000], appendingTo: &out)
        #expect(out.count == 2 + n)
        #expect(Array(out.prefix(2)) == [0xaa, 0xbb])
        #expect(try ZstdDecompressor().decompress(out.dropFirst(2), expectedCount: 8_900) == Array(input[100..<9_000]))
    }

    @Test func contextsAreReusable() throws {
        let compressor = ZstdCompressor(level: 5)
        let decompressor = ZstdDecompressor()
        for length in [10, 50_000, 0, 777] {
            let input = TestBytes.text(length)
            var frame: [UInt8] = []
            compressor.compress(input, appendingTo: &frame)
            #expect(try decompressor.decompress(frame, expectedCount: length) == input)
        }
    }

    @Test func frameShorterThanExpectedIsASizeMismatch() {
        let input = TestBytes.text(5000)
        var frame: [UInt8] = []
        ZstdCompressor().compress(input, appendingTo: &frame)
        #expect(throws: ZstdError.sizeMismatch(expected: 5001, actual: 5000)) {
            try ZstdDecompressor().decompress(frame, expectedCount: 5001)
        }
    }

    @Test func frameLongerThanExpectedFails() {
        let input = TestBytes.text(5000)
        var frame: [UInt8] = []
        ZstdCompressor().compress(input, appendingTo: &frame)
        let error = #expect(throws: ZstdError.self) { try ZstdDecompressor().decompress(frame, expectedCount: 4999) }
        if case .failed? = error {} else { Issue.record("expected .failed, got \(String(describing: error))") }
    }

    @Test func garbageAndTruncatedFramesFail() {
        var frame: [UInt8] = []
        ZstdCompressor().compress(TestBytes.text(5000), appendingTo: &frame)
        #expect(throws: ZstdError.self) { try ZstdDecompressor().decompress(TestBytes.pseudoRandom(64), expectedCount: 100) }
        #expect(throws: ZstdError.self) { try ZstdDecompressor().decompress(frame.prefix(frame.count - 3), expectedCount: 5000) }
        #expect(throws: ZstdError.self) { try ZstdDecompressor().decompress(frame.prefix(4), expectedCount: 5000) }
        #expect(ZstdDecompressor.declaredSize(TestBytes.pseudoRandom(64)) == nil)
    }
}
