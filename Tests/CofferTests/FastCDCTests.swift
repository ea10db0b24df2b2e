import CofferCrypto
import Glibc
import Testing

@testable import Coffer

@Suite struct FastCDCTests {
    let params = Fixture.smallChunker
    let chunker = FastCDC(parameters: Fixture.smallChunker, seed: Fixture.keys().gearSeed)

    /// Absolute end offsets of the chunks of `data`.
    func cutEnds(_ data: [UInt8], chunker: FastCDC? = nil) -> [Int] {
        var total = 0
        return (chunker ?? self.chunker).chunkLengths(data).map { total += $0; return total }
    }

    @Test func chunkLengthsRespectMinAndMaxAndSumToTheInput() {
        let data = Fixture.bytes(4 << 20, seed: 2)
        let lengths = chunker.chunkLengths(data)
        #expect(lengths.reduce(0, +) == data.count)
        #expect(lengths.allSatisfy { $0 <= params.maxSize })
        #expect(lengths.dropLast().allSatisfy { $0 >= params.minSize }, "only the last chunk may be short")
        let mean = data.count / lengths.count
        #expect(mean > params.averageSize / 2 && mean < params.averageSize * 2, "mean chunk \(mean) near the average")
    }

    @Test func chunkingIsDeterministic() {
        let data = Fixture.bytes(2 << 20, seed: 3)
        let again = FastCDC(parameters: params, seed: Fixture.keys().gearSeed)
        #expect(chunker.chunkLengths(data) == chunker.chunkLengths(data))
        #expect(chunker.chunkLengths(data) == again.chunkLengths(data))
    }

    @Test func smallAndEmptyInputs() {
        #expect(chunker.chunkLengths([]) == [])
        #expect(chunker.chunkLengths([7]) == [1])
        #expect(chunker.chunkLengths(Fixture.bytes(params.minSize)) == [params.minSize])
        let justAbove = chunker.chunkLengths(Fixture.bytes(params.minSize + 1))
        #expect(justAbove.reduce(0, +) == params.minSize + 1)
    }

    @Test func uniformInputIsCutAtTheMaximum() {
        // A constant byte stream drives the fingerprint to a constant: cuts fall back to maxSize.
        let zeros = [UInt8](repeating: 0, count: 3 * params.maxSize + 1000)
        let lengths = chunker.chunkLengths(zeros)
        #expect(lengths.reduce(0, +) == zeros.count)
        #expect(lengths.allSatisfy { $0 <= params.maxSize })
    }

    @Test func cutLengthNeverExceedsTheBufferOrMaximum() {
        let data = Fixture.bytes(params.maxSize * 2, seed: 5)
        for size in [0, 1, params.minSize, params.minSize + 1, params.averageSize, params.maxSize - 1, params.maxSize, params.maxSize * 2] {
            let n = data.withUnsafeBytes { chunker.cutLength(UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
            #expect(n <= size && n <= params.maxSize, "buffer \(size) → \(n)")
            if size > 0 { #expect(n > 0) }
            if size <= params.minSize { #expect(n == size) }
        }
    }

    @Test func gearTableIsTheChaCha20KeystreamOfTheSeed() {
        let seed = Fixture.keys().gearSeed
        let table = FastCDC.gearTable(seed: seed)
        let stream = ChaCha20.keystream(count: 2048, key: seed.secret.copyBytes(), nonce8: [UInt8](repeating: 0, count: 8))
        #expect(table.count == 256)
        for i in [0, 1, 128, 255] {
            let word = (0..<8).reduce(UInt64(0)) { $0 | UInt64(stream[i * 8 + $1]) << (8 * UInt64($1)) }
            #expect(table[i] == word, "word \(i)")
        }
        #expect(chunker.gear == table)
    }

    @Test func differentGearSeedsGiveDifferentBoundaries() {
        let data = Fixture.bytes(2 << 20, seed: 6)
        let other = FastCDC(parameters: params, seed: Fixture.keys(2).gearSeed)
        #expect(FastCDC.gearTable(seed: Fixture.keys(2).gearSeed) != chunker.gear)
        let a = cutEnds(data), b = cutEnds(data, chunker: other)
        #expect(a != b)
        let shared = Set(a.dropLast()).intersection(b.dropLast())
        #expect(shared.count * 4 < a.count, "boundaries under another key are unrelated (\(shared.count) of \(a.count) shared)")
    }

    /// After an edit, chunking re-synchronises: every cut beyond the first few after the edit is
    /// the original cut shifted by the size change.
    func expectResynchronises(original: [Int], edited: [Int], editAt: Int, shift: Int, data: [UInt8], editedData: [UInt8]) throws {
        let before = original.filter { $0 <= editAt }
        #expect(Array(edited.prefix(before.count)) == before, "cuts before the edit are untouched")
        let shifted = original.filter { $0 > editAt }.map { $0 + shift }
        let editedCuts = Set(edited)
        let first = try #require(shifted.firstIndex(where: editedCuts.contains), "never re-synchronised")
        #expect(first <= 2, "re-synchronised only after \(first) chunks")
        let tail = Array(shifted[first...])
        #expect(Array(edited.suffix(tail.count)) == tail, "every cut after re-synchronisation matches")

        // The same, seen as content: almost all chunks of the edited data already exist.
        func chunkSet(_ d: [UInt8], _ ends: [Int]) -> [[UInt8]] {
            var start = 0
            return ends.map { end in
                defer { start = end }
                return Blake2b.hash(d[start..<end])
            }
        }
        let known = Set(chunkSet(data, original))
        let editedChunks = chunkSet(editedData, edited)
        let novel = editedChunks.filter { !known.contains($0) }.count
        #expect(novel <= 3, "\(novel) of \(editedChunks.count) chunks changed")
        #expect(editedChunks.count > 300, "the test input spans many chunks")
    }

    @Test func insertionNearTheStartKeepsLaterBoundaries() throws {
        let data = Fixture.bytes(24 << 20, seed: 11)
        let original = cutEnds(data)
        for (editAt, inserted) in [(10_000, Fixture.bytes(777, seed: 12)), (100_000, [0x42])] {
            var edited = data
            edited.insert(contentsOf: inserted, at: editAt)
            try expectResynchronises(
                original: original, edited: cutEnds(edited), editAt: editAt, shift: inserted.count, data: data, editedData: edited)
        }
    }

    @Test func deletionNearTheStartKeepsLaterBoundaries() throws {
        let data = Fixture.bytes(24 << 20, seed: 13)
        let original = cutEnds(data)
        for (editAt, count) in [(20_000, 500), (70_000, 1)] {
            var edited = data
            edited.removeSubrange(editAt..<(editAt + count))
            try expectResynchronises(
                original: original, edited: cutEnds(edited), editAt: editAt, shift: -count, data: data, editedData: edited)
        }
    }

    @Test func overwritingOneByteChangesOnlyNearbyChunks() throws {
        let data = Fixture.bytes(6 << 20, seed: 14)
        let original = cutEnds(data)
        var edited = data
        let at = 3 << 20
        edited[at] ^= 0xff
        let cuts = cutEnds(edited)
        let before = original.filter { $0 <= at }
        #expect(Array(cuts.prefix(before.count)) == before)
        let after = original.filter { $0 > at }
        let first = try #require(after.firstIndex(where: Set(cuts).contains))
        #expect(first <= 1)
        #expect(Array(cuts.suffix(after.count - first)) == Array(after[first...]))
    }

    /// ChunkReader streams a file through bounded buffers and must cut it exactly as chunking
    /// the whole file in memory does — also when the size it was told is too small (a file that
    /// grew since it was stat'ed). Every chunk is held until the end: the slices it hands out
    /// must stay valid (and unchanged) while the reader refills, as sealing tasks hold them.
    @Test(arguments: [0, 1, 16 << 10, 512 << 10, (3 << 20) + 12_345, (13 << 20) + 777], [true, false])
    func chunkReaderMatchesInMemoryChunking(size: Int, hintIsRight: Bool) async throws {
        let data = Fixture.bytes(size, seed: 15)
        try await withTemporaryDirectory { dir async throws in
            let path = dir + "/input"
            try writeFile(path, data)
            let fd = open(path, O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            var reader = ChunkReader(fd: fd, chunker: chunker, sizeHint: hintIsRight ? size : 0)
            var held: [ArraySlice<UInt8>] = []
            while let chunk = try reader.next() { held.append(chunk.bytes) }
            let lengths = held.map(\.count)
            let joined = held.reduce(into: [UInt8]()) { $0 += $1 }
            #expect(lengths == chunker.chunkLengths(data))
            #expect(joined == data)
            #expect(reader.bytesRead == UInt64(size))
        }
    }
}
