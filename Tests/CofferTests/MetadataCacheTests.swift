import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// Storage that counts what is read from it, by kind.
final class CountingStorage: Storage, @unchecked Sendable {
    let inner: LocalStorage
    private let lock = Lock()
    private var bytes: [ObjectKind: Int] = [:]
    init(_ inner: LocalStorage) { self.inner = inner }
    var location: String { inner.location }
    func readBytes(_ kind: ObjectKind) -> Int { lock.withLock { bytes[kind, default: 0] } }
    func reset() { lock.withLock { bytes = [:] } }
    func list(_ kind: ObjectKind) async throws -> [StoredObject] { try await inner.list(kind) }
    func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] {
        let out = try await inner.read(name, range: range)
        lock.withLock { bytes[name.kind, default: 0] += out.count }
        return out
    }
    func write(_ name: ObjectName, _ b: [UInt8]) async throws { try await inner.write(name, b) }
    func delete(_ name: ObjectName) async throws { try await inner.delete(name) }
    func stat(_ name: ObjectName) async throws -> StoredObject? { try await inner.stat(name) }
}

@Suite struct MetadataCacheTests {
    @Test func aDailyBackupReadsNoMetadataBackFromStorageWhenCached() async throws {
        try await withTemporaryDirectory { dir async throws in
            let local = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("cache")
            _ = try await Repository.initialize(storage: local, credential: .password(password), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            try makeDirectory(dir + "/src/sub")
            try writeFile(dir + "/src/a", Fixture.bytes(300_000))
            try writeFile(dir + "/src/sub/b", Fixture.text(50_000))
            let counting = CountingStorage(local)
            let repo = try await Repository.open(storage: counting, credential: .password(password))
            repo.useCache(base: dir + "/cache")
            _ = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            // The first run fills the cache as it reads (the new snapshot and index are read by the second run).
            _ = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            counting.reset()
            try writeFile(dir + "/src/new", Fixture.bytes(10_000, seed: 7))
            let third = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            #expect(third.snapshot.summary.filesUnmodified == 2)
            // Only objects written since the last run are fetched: nothing of the parent's trees.
            #expect(counting.readBytes(.data) == 0, "tree blobs of the parent come from the cache")
            let fresh = try await repo.snapshots().count
            #expect(fresh == 3)

            // A damaged cache entry is dropped and fetched again, never trusted.
            let cacheDir = try #require(repo.cache).directory
            for name in try FileManager.default.contentsOfDirectory(atPath: cacheDir + "/snapshots") {
                try writeFile(cacheDir + "/snapshots/" + name, [1, 2, 3])
            }
            counting.reset()
            #expect(try await repo.snapshots().count == 3)
            #expect(counting.readBytes(.snapshots) > 0)
            let latest = try await repo.resolveSnapshot("latest")
            let restored = try await repo.restore(RestoreRequest(snapshot: latest.id, target: dir + "/out"))
            #expect(restored.problems.isEmpty)
            #expect(try readFile(dir + "/out/src/a") == Fixture.bytes(300_000))
        }
    }

    @Test func cacheDropsWhatPruneReplaced() async throws {
        try await withTemporaryDirectory { dir async throws in
            let local = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("cache")
            let repo = try await Repository.initialize(storage: local, credential: .password(password), options: Fixture.initOptions())
            repo.useCache(base: dir + "/cache")
            try makeDirectory(dir + "/src")
            try writeFile(dir + "/src/a", Fixture.bytes(100_000))
            let first = try #require(try await repo.backup(BackupRequest(paths: [dir + "/src"])).snapshotID)
            try writeFile(dir + "/src/a", Fixture.bytes(100_000, seed: 5))
            _ = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            _ = try await repo.loadIndex()
            try await repo.forgetSnapshots([first])
            _ = try await repo.prune()
            _ = try await repo.loadIndex()
            _ = try await repo.snapshots()
            let cacheDir = try #require(repo.cache).directory
            let cachedIndex = Set(try FileManager.default.contentsOfDirectory(atPath: cacheDir + "/index"))
            let storedIndex = Set(try await local.list(.index).map(\.name.name))
            #expect(cachedIndex.isSubset(of: storedIndex))
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: cacheDir + "/snapshots")).contains(first.hex))
        }
    }
}
