import CofferCrypto
import Foundation
import Testing

@testable import Coffer

/// What storage learns from object lengths (FORMAT.md §12): a daily backup's new packs and
/// index objects must not measure how much it added, beyond a power of two.
@Suite struct ObjectSizeLeakTests {
    /// The lengths of the data and index objects one backup adds, after a first backup of the
    /// same folder, when the day's change is one new file of `addedBytes` incompressible bytes.
    func lengthsAddedByADay(addedBytes: Int) async throws -> (data: [Int], index: [Int]) {
        try await withTemporaryDirectory { dir async throws in
            var options = Fixture.initOptions()
            options.packTargetSize = 16 << 20  // the default: a day's packs stay partly filled
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("p")), options: options)
            try makeDirectory(dir + "/src")
            try writeFile(dir + "/src/history.bin", Fixture.bytes(400 << 10, seed: 5))
            var request = BackupRequest(paths: [dir + "/src"])
            request.hostname = "leak-test"
            _ = try await repo.backup(request)
            let before = Set(try await storage.list(.data).map(\.name) + storage.list(.index).map(\.name))
            try writeFile(dir + "/src/today.bin", Fixture.bytes(addedBytes, seed: 6))
            _ = try await repo.backup(request)
            let data = try await storage.list(.data).filter { !before.contains($0.name) }.map(\.size).sorted()
            let index = try await storage.list(.index).filter { !before.contains($0.name) }.map(\.size).sorted()
            return (data, index)
        }
    }

    @Test func aDaysPartlyFilledPacksAndIndexRevealOnlyAPowerOfTwo() async throws {
        // 3 KB and 12 KB added (one chunk each): Padmé alone tells them apart within a few percent.
        let small = try await lengthsAddedByADay(addedBytes: 3_000)
        let large = try await lengthsAddedByADay(addedBytes: 12_000)
        for length in small.data + large.data + small.index + large.index {
            #expect(length.nonzeroBitCount == 1, "stored length \(length) is not a power of two")
        }
        #expect(small.data == large.data, "pack lengths \(small.data) vs \(large.data)")
        #expect(small.index == large.index, "index lengths \(small.index) vs \(large.index)")
        #expect(!small.data.isEmpty && !small.index.isEmpty)
    }
}
