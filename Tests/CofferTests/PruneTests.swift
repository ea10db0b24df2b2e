import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

@Suite struct PrunePlanTests {
    static func blob(_ byte: UInt8, length: UInt32, offset: UInt32 = 0) -> PackedBlob {
        PackedBlob(handle: BlobHandle(id: Fixture.id(byte), type: .data), offset: offset, length: length, rawLength: length)
    }
    static func pack(_ byte: UInt8, _ blobs: [PackedBlob], length: UInt64 = 1 << 20) -> IndexFile.Pack {
        IndexFile.Pack(id: Fixture.id(byte), length: length, blobs: blobs)
    }

    /// (pack contents as (blob, length), used blobs, expected action) — one row per case.
    static let rows: [(name: String, blobs: [(UInt8, UInt32)], used: Set<UInt8>, expected: PackPlan.Action)] = [
        ("everything used", [(1, 1000), (2, 1000)], [1, 2], .keep),
        ("nothing used", [(1, 1000), (2, 1000)], [], .delete),
        ("4 % unused stays", [(1, 960), (2, 40)], [1], .keep),
        ("6 % unused is rewritten", [(1, 940), (2, 60)], [1], .repack),
        ("half unused is rewritten", [(1, 500), (2, 500)], [2], .repack),
    ]

    @Test(arguments: rows.indices)
    func planFollowsTheUnusedShare(_ row: Int) {
        let r = Self.rows[row]
        let pack = Self.pack(9, r.blobs.map { Self.blob($0.0, length: $0.1) }, length: 16 << 20)
        var unclaimed = Set(r.used.map { BlobHandle(id: Fixture.id($0), type: .data) })
        let plans = Repository.planPacks([pack], unclaimed: &unclaimed, options: PruneOptions(), packTarget: 16 << 20)
        #expect(plans.first?.action == r.expected, "\(r.name)")
        #expect(unclaimed.isEmpty, "\(r.name): every used blob is claimed")
    }

    @Test func aBlobInTwoPacksIsKeptOnceAndTheDuplicateCountsAsUnused() {
        let a = Self.pack(1, [Self.blob(7, length: 1000)], length: 16 << 20)
        let b = Self.pack(2, [Self.blob(7, length: 1000)], length: 16 << 20)
        var unclaimed: Set<BlobHandle> = [BlobHandle(id: Fixture.id(7), type: .data)]
        let plans = Repository.planPacks([a, b], unclaimed: &unclaimed, options: PruneOptions(), packTarget: 16 << 20)
        #expect(plans.map(\.action) == [.keep, .delete])
    }

    @Test func smallPacksAreMergedOnlyWhenThatMakesFewerPacks() {
        let target = 16 << 20
        let smalls = (1...4).map { Self.pack(UInt8($0), [Self.blob(UInt8($0 + 10), length: 1000)], length: 2000) }
        var unclaimed = Set((11...14).map { BlobHandle(id: Fixture.id(UInt8($0)), type: .data) })
        let merged = Repository.planPacks(smalls, unclaimed: &unclaimed, options: PruneOptions(), packTarget: target)
        #expect(merged.allSatisfy { $0.action == .repack })
        // Two small packs would merge into one data pack plus possibly a tree pack: no gain.
        var two = Set((11...12).map { BlobHandle(id: Fixture.id(UInt8($0)), type: .data) })
        let kept = Repository.planPacks(Array(smalls.prefix(2)), unclaimed: &two, options: PruneOptions(), packTarget: target)
        #expect(kept.allSatisfy { $0.action == .keep })
    }

    @Test func indexBatchesRespectTheBlobLimit() {
        let packs = (1...5).map { Self.pack(UInt8($0), (0..<3).map { Self.blob(UInt8($0), length: 10) }) }
        let batches = Repository.batches(packs, maxBlobs: 7)
        #expect(batches.map(\.count) == [2, 2, 1])
        #expect(batches.flatMap { $0 }.map(\.id) == packs.map(\.id))
    }
}

@Suite struct PruneTests {
    let password = Fixture.password("prune")

    func withRepository(_ body: (Repository, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            try await body(repo, dir)
        }
    }

    func backup(_ repo: Repository, _ dir: String) async throws -> SnapshotID {
        try #require(try await repo.backup(BackupRequest(paths: [dir + "/src"])).snapshotID)
    }

    func packBytes(_ repo: Repository) async throws -> Int { try await repo.storage.list(.data).reduce(0) { $0 + $1.size } }

    @Test func pruneFreesDataOnlyAForgottenSnapshotUsedAndKeepsTheRestRestorable() async throws {
        try await withRepository { repo, dir in
            let keep = Fixture.bytes(600_000, seed: 3)
            let gone = Fixture.bytes(900_000, seed: 4)
            try writeFile(dir + "/src/keep.bin", keep)
            try writeFile(dir + "/src/gone.bin", gone)
            let first = try await backup(repo, dir)
            unlink(dir + "/src/gone.bin")
            try writeFile(dir + "/src/new.txt", Fixture.text(300_000))
            _ = try await backup(repo, dir)
            let before = try await packBytes(repo)

            try await repo.storage.delete(ObjectName(.snapshots, first.hex))
            let dry = try await {
                var o = PruneOptions()
                o.dryRun = true
                return try await repo.prune(o)
            }()
            #expect(dry.dryRun && dry.blobsRemoved > 0)
            #expect(try await packBytes(repo) == before, "a dry run changes nothing")

            let report = try await repo.prune()
            let after = try await packBytes(repo)
            #expect(report.blobsRemoved > 0, "\(report)")
            #expect(before - after >= 850_000, "gone.bin's ~900 kB are freed (before \(before), after \(after))")
            #expect(after >= 600_000, "keep.bin (incompressible) remains; new.txt compresses to little")

            let target = dir + "/out"
            let latest = try await repo.resolveSnapshot("latest")
            let restored = try await repo.restore(RestoreRequest(snapshot: latest.id, target: target))
            #expect(restored.problems.isEmpty)
            #expect(try readFile(target + "/src/keep.bin") == keep)
            #expect(try readFile(target + "/src/new.txt") == Fixture.text(300_000))

            // A second prune finds nothing to do.
            let again = try await repo.prune()
            #expect(again.packsDeleted == 0 && again.packsRepacked == 0 && again.blobsRemoved == 0, "\(again)")
            // And the next backup still deduplicates against what prune kept.
            let next = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            #expect(next.snapshot.summary.blobsAdded == 0)
        }
    }

    @Test func pruneRemovesPacksThatNoIndexNames() async throws {
        try await withRepository { repo, dir in
            try writeFile(dir + "/src/a", Fixture.bytes(100_000))
            _ = try await backup(repo, dir)
            // What an interrupted backup leaves: a stored pack no index names.
            var body: [UInt8] = []
            PackFormat.finish(
                body: &body, blobs: [], packID: Fixture.id(0x77), key: repo.keys.metadataSealing,
                targetSize: Int(repo.config.packTargetSize), random: SystemRandom())
            try await repo.storage.write(ObjectName(.data, Fixture.id(0x77, PackID.self).hex), body)
            let report = try await repo.prune()
            #expect(report.packsUnreferenced == 1)
            #expect(try await repo.storage.stat(ObjectName(.data, Fixture.id(0x77, PackID.self).hex)) == nil)
        }
    }

    @Test func pruneRefusesToDeleteWhenAUsedBlobIsInNoIndex() async throws {
        try await withRepository { repo, dir in
            try writeFile(dir + "/src/a", Fixture.bytes(100_000))
            _ = try await backup(repo, dir)
            let before = try await repo.storage.list(.data).count
            for object in try await repo.storage.list(.index) { try await repo.storage.delete(object.name) }
            await #expect(throws: (any Error).self) { try await repo.prune() }
            #expect(try await repo.storage.list(.data).count == before, "nothing deleted")
        }
    }

    @Test func statsCountLogicalAndUniqueBytes() async throws {
        try await withRepository { repo, dir in
            let data = Fixture.bytes(200_000)
            try writeFile(dir + "/src/a", data)
            try writeFile(dir + "/src/copy", data)
            _ = try await backup(repo, dir)
            _ = try await backup(repo, dir)
            let s = try await repo.stats()
            #expect(s.snapshots == 2)
            #expect(s.files == 4)
            #expect(s.logicalBytes == 800_000)
            #expect(s.uniqueBytes >= 200_000 && s.uniqueBytes < 210_000, "one copy of the data plus small trees")
            #expect(s.dedupRatio > 3.8)
            #expect(s.unusedBytes == 0)
        }
    }
}

@Suite struct LockTests {
    func withRepository(_ body: (Repository) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            try await body(try await Repository.initialize(storage: storage, credential: .password(Fixture.password("l")), options: Fixture.initOptions()))
        }
    }

    @Test func sharedLocksCoexistAndBlockAnExclusiveOne() async throws {
        try await withRepository { repo in
            let a = try await repo.lock(exclusive: false)
            let b = try await repo.lock(exclusive: false)
            await #expect(throws: RepositoryError.self) { _ = try await repo.lock(exclusive: true) }
            await a.release()
            await b.release()
            let x = try await repo.lock(exclusive: true)
            await #expect(throws: RepositoryError.self) { _ = try await repo.lock(exclusive: false) }
            await x.release()
            #expect(try await repo.storage.list(.locks).isEmpty, "released locks leave no objects")
        }
    }

    func plant(_ repo: Repository, _ record: LockRecord) async throws -> ObjectName {
        let id = Raw256(SystemRandom().bytes(32))
        _ = try await repo.saveSealed(record.encoded(), kind: .lock, folder: .locks, id: id)
        return ObjectName(.locks, id.hex)
    }

    @Test func aLockWhoseProcessIsGoneFromThisHostIsRemovedAutomatically() async throws {
        try await withRepository { repo in
            // pid_max on Linux is at most 4194304, so this pid cannot exist.
            let name = try await plant(repo, LockRecord(exclusive: true, timeNanos: Repository.nowNanos(), hostname: Repository.hostname(), username: "x", pid: 4_194_304 + 7,
                bootID: LockRecord.currentBootID, pidNamespace: LockRecord.currentPIDNamespace))
            let held = try await repo.lock(exclusive: true)
            #expect(try await repo.storage.stat(name) == nil)
            await held.release()
        }
    }

    @Test func aMissingPidInAnotherPIDNamespaceIsNotTakenAsGone() async throws {
        try await withRepository { repo in
            // Same host name, but another PID namespace (a container): the pid says nothing.
            let name = try await plant(repo, LockRecord(
                exclusive: true, timeNanos: Repository.nowNanos(), hostname: Repository.hostname(), username: "x", pid: 4_194_304 + 7,
                bootID: LockRecord.currentBootID, pidNamespace: LockRecord.currentPIDNamespace &+ 1))
            await #expect(throws: RepositoryError.self) { _ = try await repo.lock(exclusive: true) }
            #expect(try await repo.storage.stat(name) != nil)
        }
    }

    @Test func anExpiredLockOfAnotherHostIsIgnoredButAFreshOneBlocks() async throws {
        try await withRepository { repo in
            let old = Repository.nowNanos() - RepositoryLock.staleAfterNanos - 1_000_000_000
            let expired = try await plant(repo, LockRecord(exclusive: true, timeNanos: old, hostname: "elsewhere", username: "x", pid: 1))
            let held = try await repo.lock(exclusive: true)
            await held.release()
            #expect(try await repo.storage.stat(expired) != nil, "only `unlock` removes another host's lock")
            let removed = try await repo.removeLocks(all: false)
            #expect(removed == [expired])

            _ = try await plant(repo, LockRecord(exclusive: false, timeNanos: Repository.nowNanos(), hostname: "elsewhere", username: "x", pid: 1))
            await #expect(throws: RepositoryError.self) { _ = try await repo.prune() }
            _ = try await repo.removeLocks(all: true)
            _ = try await repo.prune()
        }
    }

    @Test func lockRecordRoundTripsAndRejectsGarbage() throws {
        let r = LockRecord(exclusive: true, timeNanos: 123, hostname: "h", username: "u", pid: 42)
        #expect(try LockRecord(decoding: r.encoded(), name: "x") == r)
        #expect(throws: MalformedObject.self) { try LockRecord(decoding: Array(r.encoded().dropLast()), name: "x") }
    }
}
