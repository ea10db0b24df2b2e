import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// A storage that fails chosen calls, for prune and repair under unlucky storage. Calls are
/// counted once `armed`; the fault then picks which fail:
/// - `fail(k)`: call k fails before doing anything (one transient error);
/// - `answerLost(k)`: call k is carried out, then reports an error (the answer never came);
/// - `crash(k)`: every call from k on fails (the process died between calls k-1 and k).
/// `refuseDelete` fails every delete it matches, however often it is tried.
final class ScriptedStorage: Storage, @unchecked Sendable {
    enum Fault: Sendable, CustomStringConvertible {
        case none, fail(Int), answerLost(Int), crash(Int)
        var description: String {
            switch self {
            case .none: return "none"
            case .fail(let k): return "call \(k) fails"
            case .answerLost(let k): return "call \(k) loses its answer"
            case .crash(let k): return "crash before call \(k)"
            }
        }
    }

    let base: any Storage
    private let mutex = NSLock()
    // Guarded by mutex.
    private var _calls = 0
    private var _armed = false
    private var _fault = Fault.none
    private var _refuseDelete: @Sendable (ObjectName) -> Bool = { _ in false }

    init(_ base: any Storage) { self.base = base }

    var location: String { base.location }
    var calls: Int { mutex.withLock { _calls } }

    func arm(_ fault: Fault, refuseDelete: @escaping @Sendable (ObjectName) -> Bool = { _ in false }) {
        mutex.withLock {
            _armed = true
            _calls = 0
            _fault = fault
            _refuseDelete = refuseDelete
        }
    }

    func disarm() { mutex.withLock { _armed = false } }

    private static func injected(_ what: String) -> StorageError { .io("injected failure:", path: what, errno: EIO) }

    /// Runs one call under the fault plan.
    private func call<T>(_ what: String, delete name: ObjectName? = nil, _ body: () async throws -> T) async throws -> T {
        let (armed, k, fault, refuse) = mutex.withLock { () -> (Bool, Int, Fault, @Sendable (ObjectName) -> Bool) in
            defer { if _armed { _calls += 1 } }
            return (_armed, _calls, _fault, _refuseDelete)
        }
        guard armed else { return try await body() }
        if let name, refuse(name) { throw Self.injected(what) }
        switch fault {
        case .fail(let n) where n == k: throw Self.injected(what)
        case .crash(let n) where k >= n: throw Self.injected(what)
        case .answerLost(let n) where n == k:
            _ = try await body()
            throw Self.injected(what)
        default: return try await body()
        }
    }

    func list(_ kind: ObjectKind) async throws -> [StoredObject] { try await call("list \(kind)") { try await base.list(kind) } }
    func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] {
        try await call("read \(name)") { try await base.read(name, range: range) }
    }
    func write(_ name: ObjectName, _ bytes: [UInt8]) async throws { try await call("write \(name)") { try await base.write(name, bytes) } }
    func delete(_ name: ObjectName) async throws { try await call("delete \(name)", delete: name) { try await base.delete(name) } }
    func stat(_ name: ObjectName) async throws -> StoredObject? { try await call("stat \(name)") { try await base.stat(name) } }
}

/// Shared set-up: a repository, files to back up, and the checks every test ends with.
struct RepairFixture {
    static let password = Fixture.password("repair")
    let dir: String
    var repoPath: String { dir + "/repo" }
    var src: String { dir + "/src" }

    static func with(_ body: (RepairFixture, Repository) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let fixture = RepairFixture(dir: dir)
            let repo = try await Repository.initialize(
                storage: LocalStorage(path: fixture.repoPath), credential: .password(password), options: Fixture.initOptions())
            try makeDirectory(fixture.src)
            try await body(fixture, repo)
        }
    }

    /// The same repository opened through a scripted storage.
    func scripted() async throws -> (Repository, ScriptedStorage) {
        let storage = ScriptedStorage(LocalStorage(path: repoPath))
        return (try await Repository.open(storage: storage, credential: .password(Self.password)), storage)
    }

    func backup(_ repo: Repository, force: Bool = false) async throws -> BackupResult {
        var request = BackupRequest(paths: [src])
        request.force = force
        return try await repo.backup(request)
    }

    /// Restores every snapshot and compares it with what it held when it was taken.
    func expectRestores(_ repo: Repository, _ expected: [SnapshotID: [String: [UInt8]]], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for (id, files) in expected {
            let target = dir + "/out-\(id.short)-\(UInt32.random(in: 0...UInt32.max))"
            let result = try await repo.restore(RestoreRequest(snapshot: id, target: target))
            #expect(result.problems.isEmpty, "snapshot \(id.short): \(result.problems)", sourceLocation: sourceLocation)
            for (name, bytes) in files {
                #expect((try? readFile(target + "/src/" + name)) == bytes, "snapshot \(id.short): \(name) restores bit-exact", sourceLocation: sourceLocation)
            }
            try? FileManager.default.removeItem(atPath: target)
        }
    }

    func expectCheckClean(_ repo: Repository, readData: Bool = true, allowWarnings: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let report = try await repo.check(CheckOptions(readData: readData))
        #expect(report.errors.isEmpty, "check: \(report.errors.map(\.description))", sourceLocation: sourceLocation)
        if !allowWarnings { #expect(report.warnings.isEmpty, "check warns: \(report.warnings.map(\.description))", sourceLocation: sourceLocation) }
    }

    /// The files of the packs that hold data blobs.
    func dataPackFiles(_ repo: Repository) async throws -> [String] {
        var out: [String] = []
        for object in try await repo.storage.list(.index) {
            for p in try await repo.loadIndexFile(object.name, id: IndexID(hex: object.name.name)!).packs where p.blobs.first?.handle.type == .data {
                out.append(repoPath + "/" + ObjectName(.data, p.id.hex).relativePath)
            }
        }
        return out.sorted()
    }

    func packFiles() -> [String] {
        let root = repoPath + "/data"
        return ((try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? []).filter { $0.count == 67 }.map { root + "/" + $0 }.sorted()
    }
}

@Suite struct IndexCopyTests {
    static func pack(_ byte: UInt8, blobs: [PackedBlob]) -> IndexFile.Pack {
        IndexFile.Pack(id: Fixture.id(byte), length: 1000, blobs: blobs)
    }

    @Test func everyCopyOfABlobIsKeptAndRemovingAPackFallsBackOnTheNextCopy() {
        let h = BlobHandle(id: Fixture.id(7), type: .data)
        let only = BlobHandle(id: Fixture.id(8), type: .data)
        var index = MasterIndex()
        index.add(Self.pack(1, blobs: [PackedBlob(handle: h, offset: 0, length: 10, rawLength: 5), PackedBlob(handle: only, offset: 10, length: 10, rawLength: 5)]))
        index.add(Self.pack(2, blobs: [PackedBlob(handle: h, offset: 20, length: 10, rawLength: 5)]))
        // The same pack named again (two index objects) is not a second copy.
        index.add(Self.pack(2, blobs: [PackedBlob(handle: h, offset: 20, length: 10, rawLength: 5)]))
        #expect(index.locations(h).map(\.pack) == [Fixture.id(1), Fixture.id(2)])
        #expect(index.lookup(h)?.pack == Fixture.id(1))

        index.removePacks([Fixture.id(1)])
        #expect(index.lookup(h)?.pack == Fixture.id(2) && index.lookup(h)?.offset == 20)
        #expect(index.locations(h).count == 1)
        #expect(!index.contains(only), "a blob whose only pack is gone is not indexed any more")
        #expect(index.packs[Fixture.id(1)] == nil)
        index.removePacks([Fixture.id(2)])
        #expect(!index.contains(h) && index.blobCount == 0)
    }

    @Test func aBlobWhoseFirstIndexedPackIsGoneIsReadFromAnotherCopy() async throws {
        try await RepairFixture.with { f, repo in
            let bytes = Fixture.bytes(400_000, seed: 5)
            try writeFile(f.src + "/a.bin", bytes)
            let snap = try #require(try await f.backup(repo).snapshotID)
            // A second copy of every pack under another name, indexed after the original (what
            // an interrupted prune or a duplicate upload leaves), then the originals vanish.
            let index = try await repo.loadIndex()
            var copies = MasterIndex()
            var originals: [IndexFile.Pack] = []
            for object in try await repo.storage.list(.index) {
                originals += try await repo.loadIndexFile(object.name, id: IndexID(hex: object.name.name)!).packs
            }
            #expect(originals.count == index.packs.count)
            var copied: [IndexFile.Pack] = []
            for p in originals {
                let id = PackID(bytes: SystemRandom().bytes(32))
                try await repo.storage.write(ObjectName(.data, id.hex), try await repo.storage.read(ObjectName(.data, p.id.hex)))
                copied.append(IndexFile.Pack(id: id, length: p.length, blobs: p.blobs))
            }
            for p in originals { copies.add(p) }
            for p in copied { copies.add(p) }
            for p in originals { try await repo.storage.delete(ObjectName(.data, p.id.hex)) }

            let snapshot = try await repo.loadSnapshot(snap)
            let tree = try await repo.loadTree(snapshot.root, index: copies)
            let sub = try await repo.loadTree(try #require(tree.nodes.first?.subtreeID), index: copies)
            guard case .file(_, let chunks)? = sub.nodes.first?.content else { throw TestFailure("no file in \(sub)") }
            let plain = try await repo.loadBlobs(chunks.map { BlobHandle(id: $0, type: .data) }, index: copies)
            #expect(plain.flatMap { $0 } == bytes, "batched reads fall back on the copy")
            let one = try await repo.loadBlob(BlobHandle(id: chunks[0], type: .data), index: copies)
            #expect(one == Array(plain[0]))

            // Through the repository's own index (both index objects stored): restore works.
            _ = try await repo.saveIndex(IndexFile(packs: copied))
            try await f.expectRestores(repo, [snap: ["a.bin": bytes]])
        }
    }
}

extension TreeNode {
    var subtreeID: BlobID? { if case .directory(let id) = content { id } else { nil } }
}

@Suite struct PruneUnderFaultsTests {
    /// Two snapshots; forgetting the first leaves packs to delete and to rewrite.
    func prepare(_ f: RepairFixture, _ repo: Repository) async throws -> [SnapshotID: [String: [UInt8]]] {
        let keep = Fixture.bytes(500_000, seed: 3)
        try writeFile(f.src + "/keep.bin", keep)
        try writeFile(f.src + "/gone.bin", Fixture.bytes(700_000, seed: 4))
        let first = try #require(try await f.backup(repo).snapshotID)
        unlink(f.src + "/gone.bin")
        let text = Fixture.text(200_000)
        try writeFile(f.src + "/new.txt", text)
        let second = try #require(try await f.backup(repo).snapshotID)
        try await repo.forgetSnapshots([first])
        return [second: ["keep.bin": keep, "new.txt": text]]
    }

    /// The issue's case: old index objects that cannot be deleted. Prune must say so, keep
    /// every pack they name, and leave a repository that checks clean and restores.
    @Test func pruneKeepsThePacksOfOldIndexObjectsItCouldNotDelete() async throws {
        try await RepairFixture.with { f, repo in
            let expected = try await prepare(f, repo)
            let oldIndex = Set(try await repo.storage.list(.index).map(\.name))
            let (faulty, storage) = try await f.scripted()
            storage.arm(.none) { oldIndex.contains($0) }
            do {
                _ = try await faulty.prune()
                Issue.record("prune reported success although old index objects are still there")
            } catch let e as PruneError {
                guard case .deleteFailed(_, let kept) = e else { throw e }
                #expect(kept > 0, "the packs the old index objects name are kept: \(e)")
                #expect(!"\(e)".contains("authenticationFailed"))
            }
            storage.disarm()
            try await f.expectCheckClean(repo, allowWarnings: true)
            try await f.expectRestores(repo, expected)
            // A backup deduplicates only against packs that exist.
            let next = try await f.backup(repo, force: true)
            try await f.expectCheckClean(repo, allowWarnings: true)
            // The next prune finishes the job.
            _ = try await repo.prune()
            try await f.expectCheckClean(repo)
            try await f.expectRestores(repo, expected.merging([next.snapshotID!: expected.values.first!]) { a, _ in a })
        }
    }

    /// Every single storage call of prune failing, losing its answer, or the process stopping
    /// before it: after a clean re-run the repository checks clean (no warning either) and the
    /// kept snapshot restores bit-exact.
    @Test(arguments: ["fail", "answerLost", "crash"])
    func everyStorageCallOfPruneCanFail(_ mode: String) async throws {
        try await withTemporaryDirectory { outer async throws in
            // One prepared repository, copied afresh for each case.
            let template = outer + "/template"
            var expected: [SnapshotID: [String: [UInt8]]] = [:]
            var calls = 0
            try await RepairFixture.with { f, repo in
                expected = try await prepare(f, repo)
                try FileManager.default.copyItem(atPath: f.dir, toPath: template)
                let (counted, storage) = try await f.scripted()
                storage.arm(.none)
                _ = try await counted.prune()
                calls = storage.calls
            }
            #expect(calls > 10, "prune makes \(calls) storage calls")
            for k in 0..<calls {
                let fixture = RepairFixture(dir: outer + "/case-\(k)")
                try FileManager.default.copyItem(atPath: template, toPath: fixture.dir)
                let (faulty, storage) = try await fixture.scripted()
                let fault: ScriptedStorage.Fault = mode == "fail" ? .fail(k) : mode == "answerLost" ? .answerLost(k) : .crash(k)
                storage.arm(fault)
                let outcome: String
                do {
                    _ = try await faulty.prune()
                    outcome = "succeeded"
                } catch {
                    outcome = "\(error)"
                    #expect(!outcome.contains("authenticationFailed"), "\(fault): \(outcome)")
                }
                storage.disarm()
                // A crashed process leaves its lock; a new one on this host would remove it.
                _ = try await faulty.removeLocks(all: true)
                let repo = try await Repository.open(storage: LocalStorage(path: fixture.repoPath), credential: .password(RepairFixture.password))
                let before = try await repo.check(CheckOptions(readData: true))
                #expect(before.errors.isEmpty, "\(fault) (prune \(outcome)): \(before.errors.map(\.description))")
                try await fixture.expectRestores(repo, expected)
                _ = try await repo.prune()
                let after = try await repo.check(CheckOptions(readData: true))
                #expect(after.problems.isEmpty, "\(fault) (prune \(outcome)), after a re-run: \(after.problems.map(\.description))")
                try await fixture.expectRestores(repo, expected)
                try? FileManager.default.removeItem(atPath: fixture.dir)
            }
        }
    }

    @Test func aDamagedBlobInAPackBeingRewrittenIsNamedInWords() async throws {
        try await RepairFixture.with { f, repo in
            // Several small backups leave small packs that prune merges (rewrites).
            for i in 0..<5 {
                try writeFile(f.src + "/f\(i).bin", Fixture.bytes(30_000, seed: UInt8(10 + i)))
                _ = try await f.backup(repo)
            }
            var plan = PruneOptions()
            plan.dryRun = true
            #expect(try await repo.prune(plan).packsRepacked > 1)
            // Damage the first blob of every data pack (trees stay intact, so prune can read them).
            for path in try await f.dataPackFiles(repo) {
                var bytes = try readFile(path)
                bytes[30] ^= 0x40
                try writeFile(path, bytes, mode: 0o600)
            }
            do {
                _ = try await repo.prune()
                Issue.record("prune copied a damaged blob")
            } catch let e as PruneError {
                guard case .blobDamaged = e else { throw e }
                let text = "\(e)"
                #expect(!text.contains("authenticationFailed"), "\(text)")
                #expect(text.contains("is damaged") && text.contains("seal does not verify") && text.contains("nothing was deleted"), "\(text)")
            }
        }
    }
}

@Suite struct RepairIndexTests {
    /// A lost pack: a backup that still has the files stores what was lost again (it
    /// deduplicates only against packs that are there), repair drops the lost pack from the
    /// index, and then check, prune and restore are all clean.
    @Test func aLostPackIsRecoveredByRepairAndABackup() async throws {
        try await RepairFixture.with { f, repo in
            let a = Fixture.bytes(600_000, seed: 21), b = Fixture.text(300_000)
            try writeFile(f.src + "/a.bin", a)
            try writeFile(f.src + "/b.txt", b)
            let first = try #require(try await f.backup(repo).snapshotID)
            let biggest = try #require(f.packFiles().max { try! fileStat($0).st_size < fileStat($1).st_size })
            unlink(biggest)
            let broken = try await repo.check()
            #expect(broken.hasErrors && broken.repair == .rebuildIndex, "\(broken.problems.map(\.description))")

            // Before any repair: the backup stores again what the lost pack held.
            let again = try await f.backup(repo)
            #expect(again.snapshot.summary.blobsAdded > 0, "the lost blobs are stored again")
            let second = try #require(again.snapshotID)

            let report = try await repo.repairIndex()
            #expect(report.packsMissing == 1)
            try await f.expectCheckClean(repo)
            try await f.expectRestores(repo, [first: ["a.bin": a, "b.txt": b], second: ["a.bin": a, "b.txt": b]])
            let pruned = try await repo.prune()
            #expect(pruned.blobsUsed > 0)
            try await f.expectCheckClean(repo)
            try await f.expectRestores(repo, [first: ["a.bin": a, "b.txt": b], second: ["a.bin": a, "b.txt": b]])
        }
    }

    /// A lost index object: its packs are indexed again from their headers.
    @Test func repairIndexesPacksNoIndexNames() async throws {
        try await RepairFixture.with { f, repo in
            let a = Fixture.bytes(300_000, seed: 22)
            try writeFile(f.src + "/a.bin", a)
            let snap = try #require(try await f.backup(repo).snapshotID)
            for object in try await repo.storage.list(.index) { try await repo.storage.delete(object.name) }
            #expect(try await repo.check().repair == .rebuildIndex)
            let report = try await repo.repairIndex()
            #expect(report.packsAdded == f.packFiles().count && report.packsAdded > 0)
            try await f.expectCheckClean(repo)
            try await f.expectRestores(repo, [snap: ["a.bin": a]])
        }
    }

    /// A damaged blob (same size, one byte changed): only reading the data finds it; repair
    /// with readData salvages the pack's intact blobs and deletes it, the backup stores the
    /// damaged blob again, and everything is clean after.
    @Test func aDamagedPackIsSalvagedByRepairReadingTheData() async throws {
        try await RepairFixture.with { f, repo in
            let a = Fixture.bytes(700_000, seed: 23)
            try writeFile(f.src + "/a.bin", a)
            let snap = try #require(try await f.backup(repo).snapshotID)
            let pack = try #require(f.packFiles().max { try! fileStat($0).st_size < fileStat($1).st_size })
            var bytes = try readFile(pack)
            bytes[100] ^= 1
            try writeFile(pack, bytes, mode: 0o600)
            let broken = try await repo.check(CheckOptions(readData: true))
            #expect(broken.repair == .rebuildIndexReadingData, "\(broken.problems.map(\.description))")

            // A plain repair does not see it; one that reads the data does.
            #expect(try await repo.repairIndex().packsDamaged == 0)
            var options = RepairIndexOptions()
            options.readData = true
            let report = try await repo.repairIndex(options)
            #expect(report.packsDamaged == 1 && report.packsSalvaged == 1 && report.blobsDamaged == 1)
            #expect(!FileManager.default.fileExists(atPath: pack), "the damaged pack is deleted once its intact blobs are copied")
            let afterRepair = try await repo.check(CheckOptions(readData: true))
            #expect(afterRepair.problems.allSatisfy { $0.kind == .notInIndex }, "only the lost blob is missing: \(afterRepair.problems.map(\.description))")

            let again = try await f.backup(repo)
            #expect(again.snapshot.summary.blobsAdded == 1, "exactly the damaged blob is stored again")
            try await f.expectCheckClean(repo)
            _ = try await repo.prune()
            try await f.expectCheckClean(repo)
            try await f.expectRestores(repo, [snap: ["a.bin": a], again.snapshotID!: ["a.bin": a]])
        }
    }

    /// Every single storage call of a repair failing: the index is never left without the
    /// packs it described, and the repository checks clean after each attempt.
    @Test func everyStorageCallOfRepairCanFail() async throws {
        try await RepairFixture.with { f, repo in
            try writeFile(f.src + "/a.bin", Fixture.bytes(300_000, seed: 24))
            _ = try await f.backup(repo)
            let before = Set(try await repo.storage.list(.index).map(\.name))
            let (faulty, storage) = try await f.scripted()
            var options = RepairIndexOptions()
            options.readData = true
            storage.arm(.none) { _ in false }
            _ = try await faulty.repairIndex(options)
            let calls = storage.calls
            let afterOne = Set(try await repo.storage.list(.index).map(\.name))
            #expect(afterOne != before, "a repair replaces the index objects")
            for k in 0..<calls {
                let current = Set(try await repo.storage.list(.index).map(\.name))
                storage.arm(.fail(k))
                do { _ = try await faulty.repairIndex(options) } catch {
                    #expect(!"\(error)".contains("authenticationFailed"))
                }
                storage.disarm()
                _ = try await faulty.removeLocks(all: true)
                let now = Set(try await repo.storage.list(.index).map(\.name))
                #expect(!now.isEmpty, "call \(k): the index is never left empty (before \(current.count))")
                try await f.expectCheckClean(repo, allowWarnings: false)
            }
        }
    }
}
