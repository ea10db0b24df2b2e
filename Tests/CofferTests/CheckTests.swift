import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// `Repository.check`: a clean repository checks clean; damage to every kind of object is found
/// and named; garbage never crashes it.
@Suite struct CheckTests {
    let password = Fixture.password("check password")

    // MARK: Fixtures

    /// A repository at `<tmp>/repo` with one snapshot of a small tree (a 600 KiB random file in
    /// several chunks spread over several data packs, a small text file, a nested text file).
    struct Fixture1 {
        let repo: Repository
        let storage: LocalStorage
        let dir: String
        let snapshot: SnapshotID
        let source: String
        let small: [UInt8]
    }

    func withBackedUpRepository(_ body: (Fixture1) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            let src = dir + "/src"
            try makeDirectory(src)
            try makeDirectory(src + "/sub")
            try makeDirectory(src + "/sub/dir")
            let small = Fixture.text(1000, variant: 4)
            try writeFile(src + "/big.bin", Fixture.bytes(600 << 10, seed: 77))
            try writeFile(src + "/small.txt", small)
            try writeFile(src + "/sub/dir/nested.txt", Fixture.text(70 << 10, variant: 5))
            let id = try await backup(repo, src)
            try await body(Fixture1(repo: repo, storage: storage, dir: dir, snapshot: id, source: src, small: small))
        }
    }

    func backup(_ repo: Repository, _ path: String) async throws -> SnapshotID {
        var request = BackupRequest(paths: [path])
        request.hostname = "check-test"
        return try #require(try await repo.backup(request).snapshotID)
    }

    func check(_ repo: Repository, readData: Bool = false, subset: CheckOptions.Subset? = nil) async throws -> CheckReport {
        try await repo.check(CheckOptions(readData: readData, subset: subset))
    }

    /// Every index object, decoded (for finding packs and blobs to damage).
    func indexFiles(_ repo: Repository) async throws -> [(id: IndexID, file: IndexFile)] {
        var out: [(id: IndexID, file: IndexFile)] = []
        for object in try await repo.storage.list(.index).sorted(by: { $0.name.name < $1.name.name }) {
            let id = try #require(IndexID(hex: object.name.name))
            let payload = try await repo.loadSealed(kind: .index, name: object.name, id: id.raw)
            out.append((id, try IndexFile(decoding: payload, name: id.short)))
        }
        return out
    }

    func packs(_ repo: Repository) async throws -> [IndexFile.Pack] {
        try await indexFiles(repo).flatMap(\.file.packs).sorted { $0.id < $1.id }
    }

    func dataPacks(_ repo: Repository) async throws -> [IndexFile.Pack] {
        try await packs(repo).filter { $0.blobs.allSatisfy { $0.handle.type == .data } }
    }

    func treePacks(_ repo: Repository) async throws -> [IndexFile.Pack] {
        try await packs(repo).filter { $0.blobs.allSatisfy { $0.handle.type == .tree } }
    }

    func packPath(_ f: Fixture1, _ id: PackID) -> String { f.storage.path(ObjectName(.data, id.hex)) }

    func flip(_ path: String, at offset: Int) throws {
        var bytes = try readFile(path)
        bytes[offset] ^= 0x01
        try writeFile(path, bytes, mode: 0o600)
    }

    func truncateFile(_ path: String, to length: Int) throws {
        guard truncate(path, off_t(length)) == 0 else { throw TestFailure("truncate \(path): errno \(errno)") }
    }

    /// Seals `blobs` into a valid pack and stores it (not indexed); returns its index entry.
    @discardableResult
    func writePack(_ repo: Repository, _ blobs: [(plaintext: [UInt8], type: BlobType)]) async throws -> IndexFile.Pack {
        var body: [UInt8] = []
        var entries: [PackedBlob] = []
        var scratch: [UInt8] = []
        let compressor = ZstdCompressor(level: 3)
        let random = SystemRandom()
        for (plain, type) in blobs {
            let handle = BlobHandle(id: repo.keys.blobID(of: plain), type: type)
            let offset = body.count
            _ = BlobEnvelope.seal(
                plain[...], handle: handle, key: repo.keys.sealingKey(for: type), nonce: random.bytes(24), compressor: compressor,
                scratch: &scratch, appendingTo: &body)
            entries.append(PackedBlob(handle: handle, offset: UInt32(offset), length: UInt32(body.count - offset), rawLength: UInt32(plain.count)))
        }
        let id = PackID(bytes: random.bytes(32))
        PackFormat.finish(
            body: &body, blobs: entries, packID: id, key: repo.keys.metadataSealing,
            targetSize: Int(repo.config.packTargetSize), random: random)
        try await repo.storage.write(ObjectName(.data, id.hex), body)
        return IndexFile.Pack(id: id, length: UInt64(body.count), blobs: entries)
    }

    /// Replaces every index object by one holding `packs`.
    func replaceIndex(_ repo: Repository, with packs: [IndexFile.Pack]) async throws {
        for object in try await repo.storage.list(.index) { try await repo.storage.delete(object.name) }
        _ = try await repo.saveIndex(IndexFile(packs: packs))
    }

    /// The tree id at `path` (components below the snapshot root).
    func treeID(_ repo: Repository, _ snapshot: SnapshotID, _ components: [String]) async throws -> BlobID {
        let index = try await repo.loadIndex()
        var id = try await repo.loadSnapshot(snapshot).root
        for name in components {
            let node = try #require(try await repo.loadTree(id, index: index).node(named: Array(name.utf8)))
            guard case .directory(let sub) = node.content else { throw TestFailure("\(name) is not a directory") }
            id = sub
        }
        return id
    }

    static func pack(holding handle: BlobHandle, in packs: [IndexFile.Pack]) -> IndexFile.Pack? {
        packs.first { pack in pack.blobs.contains { $0.handle == handle } }
    }

    func errors(_ r: CheckReport) -> String { r.errors.map(\.description).joined(separator: "\n") }

    // MARK: Clean repositories

    @Test func cleanRepositoryChecksClean() async throws {
        try await withBackedUpRepository { f in
            try writeFile(f.source + "/small.txt", Fixture.text(1500, variant: 9))
            let second = try await backup(f.repo, f.source)
            let index = try await f.repo.loadIndex()
            let packs = try await packs(f.repo)
            let stored = try await f.storage.list(.data)

            let plain = try await check(f.repo)
            #expect(plain.problems.isEmpty, "\(plain.problems)")
            #expect(!plain.hasErrors)
            #expect(plain.indexObjects == 2)
            #expect(plain.snapshots == 2)
            #expect(plain.packs == packs.count && plain.packs == stored.count && plain.packsStored == stored.count)
            #expect(plain.blobs == index.blobCount)
            // First backup: root, src, sub, sub/dir; the second adds a new root and src.
            #expect(plain.trees == 6)
            #expect(plain.packsRead == 0 && plain.blobsRead == 0)
            #expect(plain.bytesRead > 0)

            let full = try await check(f.repo, readData: true)
            #expect(full.problems.isEmpty, "\(full.problems)")
            #expect(full.packsRead == packs.count)
            #expect(full.blobsRead == packs.reduce(0) { $0 + $1.blobs.count })
            #expect(full.bytesRead >= UInt64(stored.reduce(0) { $0 + $1.size }))
            _ = second
        }
    }

    @Test func anUnreferencedPackIsOnlyAWarning() async throws {
        try await withBackedUpRepository { f in
            // What an interrupted backup leaves: a complete, valid pack that no index names.
            let extra = try await writePack(f.repo, [(Fixture.bytes(5000, seed: 3), .data), (Fixture.text(3000, variant: 8), .data)])
            for readData in [false, true] {
                let r = try await check(f.repo, readData: readData)
                #expect(!r.hasErrors, "\(errors(r))")
                #expect(r.problems.count == 1)
                let p = try #require(r.problems.first)
                #expect(p.kind == .unreferenced && p.severity == .warning)
                #expect(p.subject == .pack(extra.id))
                #expect(p.description.hasPrefix("pack \(extra.id.short):"), "\(p)")
                #expect(r.packsStored == r.packs + 1)
            }
        }
    }

    // MARK: Packs

    @Test func aFlippedByteInADataBlobIsFoundByReadingTheData() async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await dataPacks(f.repo).first)
            let blob = try #require(pack.blobs.last)
            try flip(packPath(f, pack.id), at: Int(blob.offset) + Int(blob.length) / 2)

            // The structure is intact: only reading the data can see this.
            let plain = try await check(f.repo)
            #expect(!plain.hasErrors, "\(errors(plain))")

            let full = try await check(f.repo, readData: true)
            #expect(full.errors.count == 1, "\(errors(full))")
            let p = try #require(full.errors.first)
            #expect(p.kind == .damaged)
            #expect(p.subject == .blob(blob.handle, pack: pack.id))
            #expect(p.description.hasPrefix("pack \(pack.id.short): data blob \(blob.handle.id.short):"), "\(p)")
            #expect(full.blobsRead == full.blobs - 1)
        }
    }

    @Test(arguments: ["header", "trailer"])
    func aFlippedByteInAPackHeaderOrTrailerIsFoundByThePlainCheck(_ part: String) async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await dataPacks(f.repo).first)
            let size = Int(pack.length)
            try flip(packPath(f, pack.id), at: part == "header" ? size - PackFormat.trailerSize - 20 : size - 5)
            for readData in [false, true] {
                let r = try await check(f.repo, readData: readData)
                #expect(r.errors.count == 1, "\(part), readData \(readData): \(errors(r))")
                let p = try #require(r.errors.first)
                #expect(p.kind == .tampered)
                #expect(p.subject == .pack(pack.id))
                #expect(p.message.contains(part), "\(p)")
                if readData {
                    // The header is unreadable, so the blobs the index promises are verified instead: all good.
                    #expect(r.blobsRead == r.blobs)
                }
            }
        }
    }

    @Test func aTruncatedPackIsFound() async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await dataPacks(f.repo).first)
            // Cut inside the last blob: half the pack's length can fall in its padding (a small
            // pack padded to 64 KiB), and then no blob lies beyond the end.
            let last = try #require(pack.blobs.max { $0.offset < $1.offset })
            let cut = Int(last.offset) + Int(last.length) / 2
            try truncateFile(packPath(f, pack.id), to: cut)
            let plain = try await check(f.repo)
            let kinds = Set(plain.errors.map(\.kind))
            #expect(kinds == [.sizeMismatch, .tampered], "\(errors(plain))")
            #expect(plain.errors.allSatisfy { $0.subject == .pack(pack.id) })
            #expect(plain.errors.contains { $0.message.contains("size \(cut) bytes, the index says \(pack.length)") })

            let full = try await check(f.repo, readData: true)
            let beyond = full.errors.filter { $0.kind == .damaged }
            #expect(!beyond.isEmpty, "\(errors(full))")
            for p in beyond {
                guard case .blob(let h, let p2) = p.subject else { Issue.record("\(p)"); continue }
                #expect(p2 == pack.id)
                #expect(pack.blobs.contains { $0.handle == h })
                #expect(p.message.contains("beyond the pack's end"))
            }
        }
    }

    @Test func aDeletedDataPackIsMissing() async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await dataPacks(f.repo).first)
            try await f.storage.delete(ObjectName(.data, pack.id.hex))
            let r = try await check(f.repo)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .missing && p.subject == .pack(pack.id))
            #expect(p.description.hasPrefix("pack \(pack.id.short): missing (named by index "), "\(p)")
        }
    }

    @Test func aDeletedTreePackIsMissingAndTheSnapshotsTreesWithIt() async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await treePacks(f.repo).first)
            try await f.storage.delete(ObjectName(.data, pack.id.hex))
            let root = try await f.repo.loadSnapshot(f.snapshot).root
            let r = try await check(f.repo)
            #expect(r.errors.contains { $0.kind == .missing && $0.subject == .pack(pack.id) }, "\(errors(r))")
            let treeProblem = try #require(r.errors.first { $0.subject == .blob(BlobHandle(id: root, type: .tree), pack: pack.id) }, "\(errors(r))")
            #expect(treeProblem.snapshot == f.snapshot && treeProblem.path == "/")
            #expect(treeProblem.kind == .damaged)
        }
    }

    @Test func swappedPacksAreFound() async throws {
        try await withBackedUpRepository { f in
            let data = try await dataPacks(f.repo)
            try #require(data.count >= 2, "the fixture should spread data over several packs")
            let (a, b) = (data[0], data[1])
            let (pa, pb) = (packPath(f, a.id), packPath(f, b.id))
            let (ba, bb) = (try readFile(pa), try readFile(pb))
            try writeFile(pa, bb, mode: 0o600)
            try writeFile(pb, ba, mode: 0o600)
            for readData in [false, true] {
                let r = try await check(f.repo, readData: readData)
                for pack in [a, b] {
                    #expect(r.errors.contains { $0.kind == .tampered && $0.subject == .pack(pack.id) }, "\(errors(r))")
                }
                if readData {
                    // Every blob the index promises in either pack is at the wrong place or sealed for another id.
                    #expect(r.errors.contains { $0.kind == .damaged }, "\(errors(r))")
                }
            }
        }
    }

    @Test func aPackRenamedOverAnotherIsFound() async throws {
        try await withBackedUpRepository { f in
            let data = try await dataPacks(f.repo)
            try #require(data.count >= 2)
            let (a, b) = (data[0], data[1])
            guard rename(packPath(f, b.id), packPath(f, a.id)) == 0 else { throw TestFailure("rename: errno \(errno)") }
            let r = try await check(f.repo)
            #expect(r.errors.contains { $0.kind == .tampered && $0.subject == .pack(a.id) }, "\(errors(r))")
            #expect(r.errors.contains { $0.kind == .missing && $0.subject == .pack(b.id) }, "\(errors(r))")
            if a.length != b.length {
                #expect(r.errors.contains { $0.kind == .sizeMismatch && $0.subject == .pack(a.id) }, "\(errors(r))")
            }
        }
    }

    // MARK: Index

    @Test func aDamagedIndexObjectIsNamedAndTheOthersStillCount() async throws {
        try await withBackedUpRepository { f in
            try writeFile(f.source + "/small.txt", Fixture.text(1500, variant: 9))
            let second = try await backup(f.repo, f.source)
            let files = try await indexFiles(f.repo)
            try #require(files.count == 2)
            // The index object of the second backup names its new packs (one small chunk, two trees).
            let root2 = try await f.repo.loadSnapshot(second).root
            let victim = try #require(files.first { $0.file.packs.contains { $0.blobs.contains { $0.handle.id == root2 } } })
            let survivor = try #require(files.first { $0.id != victim.id })
            let path = f.storage.path(ObjectName(.index, victim.id.hex))
            try flip(path, at: try readFile(path).count / 2)

            let r = try await check(f.repo)
            #expect(r.indexObjects == 2)
            #expect(r.packs == survivor.file.packs.count, "the undamaged index object still counts")
            let p = try #require(r.errors.first { $0.subject == .index(victim.id) }, "\(errors(r))")
            #expect(p.kind == .tampered)
            #expect(p.description.hasPrefix("index/\(victim.id.hex): seal does not verify"), "\(p)")
            // Its packs are now in no index (warnings), and the second snapshot's root tree is missing.
            #expect(Set(r.warnings.map(\.subject)) == Set(victim.file.packs.map { CheckProblem.Subject.pack($0.id) }))
            let missing = try #require(r.errors.first { $0.kind == .notInIndex }, "\(errors(r))")
            #expect(missing.subject == .blob(BlobHandle(id: root2, type: .tree), pack: nil))
            #expect(missing.snapshot == second && missing.path == "/")
            #expect(r.errors.count == 2, "\(errors(r))")
        }
    }

    @Test func aTruncatedIndexObjectIsNamed() async throws {
        try await withBackedUpRepository { f in
            let file = try #require(try await indexFiles(f.repo).first)
            let path = f.storage.path(ObjectName(.index, file.id.hex))
            try truncateFile(path, to: try readFile(path).count - 7)
            let r = try await check(f.repo)
            #expect(r.errors.contains { $0.subject == .index(file.id) && $0.kind == .tampered }, "\(errors(r))")
        }
    }

    @Test func aDeletedIndexObjectLeavesBlobsMissingNamedBySnapshot() async throws {
        try await withBackedUpRepository { f in
            let file = try #require(try await indexFiles(f.repo).first)
            try await f.storage.delete(ObjectName(.index, file.id.hex))
            let root = try await f.repo.loadSnapshot(f.snapshot).root
            let r = try await check(f.repo)
            #expect(r.indexObjects == 0 && r.packs == 0)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .notInIndex && p.subject == .blob(BlobHandle(id: root, type: .tree), pack: nil))
            #expect(p.snapshot == f.snapshot && p.path == "/")
            #expect(p.description == "tree blob \(root.short): not in any index (used by snapshot \(f.snapshot.short) at /)")
            #expect(r.warnings.count == file.file.packs.count, "every pack is now unreferenced")
        }
    }

    @Test func aDataBlobMissingFromTheIndexIsNamedWithSnapshotAndPath() async throws {
        try await withBackedUpRepository { f in
            let smallHandle = BlobHandle(id: f.repo.keys.blobID(of: f.small), type: .data)
            let all = try await packs(f.repo)
            let holder = try #require(Self.pack(holding: smallHandle, in: all))
            let rest = all.filter { $0.id != holder.id }
            try await replaceIndex(f.repo, with: rest)
            let r = try await check(f.repo)
            let found = r.errors.filter { $0.subject == .blob(smallHandle, pack: nil) }
            #expect(found.count == 1, "\(errors(r))")
            let srcName = String(f.source.split(separator: "/").last!)
            for p in found {
                #expect(p.kind == .notInIndex)
                #expect(p.snapshot == f.snapshot)
                #expect(p.path == "/" + srcName + "/small.txt")
            }
            // Every error is a data blob of that pack, each reported once.
            #expect(r.errors.count == holder.blobs.count, "\(errors(r))")
            #expect(r.warnings.count == 1)
            #expect(r.warnings.first?.subject == .pack(holder.id))
        }
    }

    @Test func aHeaderThatDisagreesWithTheIndexIsNamed() async throws {
        try await withBackedUpRepository { f in
            let all = try await packs(f.repo)
            let pack = try #require(try await dataPacks(f.repo).first { $0.blobs.count >= 2 })
            let dropped = pack.blobs.last!
            let edited = IndexFile.Pack(id: pack.id, length: pack.length, blobs: Array(pack.blobs.dropLast()))
            try await replaceIndex(f.repo, with: all.map { $0.id == pack.id ? edited : $0 })
            let r = try await check(f.repo)
            let lines = r.errors.filter { $0.subject == .pack(pack.id) }.map(\.description)
            #expect(lines.contains("pack \(pack.id.short): header lists \(pack.blobs.count) blobs, index lists \(pack.blobs.count - 1)"), "\(lines)")
            #expect(lines.contains("pack \(pack.id.short): \(dropped.handle) is in the header but not in the index"), "\(lines)")
            #expect(r.errors.allSatisfy { $0.kind == .headerMismatch || $0.kind == .notInIndex }, "\(errors(r))")

            // A raw length that differs from the header's.
            let first = pack.blobs[0]
            let wrong = PackedBlob(handle: first.handle, offset: first.offset, length: first.length, rawLength: first.rawLength + 1)
            let edited2 = IndexFile.Pack(id: pack.id, length: pack.length, blobs: [wrong] + pack.blobs.dropFirst())
            try await replaceIndex(f.repo, with: all.map { $0.id == pack.id ? edited2 : $0 })
            let r2 = try await check(f.repo)
            #expect(r2.errors.count == 1, "\(errors(r2))")
            #expect(r2.errors.first?.kind == .headerMismatch)
            #expect(r2.errors.first?.message.contains("raw length \(first.rawLength); index says") == true, "\(errors(r2))")
        }
    }

    @Test func indexObjectsThatDisagreeAboutAPackAreNamed() async throws {
        try await withBackedUpRepository { f in
            let pack = try #require(try await dataPacks(f.repo).first)
            // Identical duplicates (what an interrupted prune leaves) are fine…
            _ = try await f.repo.saveIndex(IndexFile(packs: [pack]))
            let same = try await check(f.repo)
            #expect(same.problems.isEmpty, "\(same.problems)")
            // …different ones are not.
            _ = try await f.repo.saveIndex(IndexFile(packs: [IndexFile.Pack(id: pack.id, length: pack.length + 1, blobs: pack.blobs)]))
            let r = try await check(f.repo)
            #expect(r.errors.filter { $0.kind == .indexConflict }.map(\.subject) == [.pack(pack.id)], "\(errors(r))")
            // Whichever object is read first describes the pack for the rest of the check: when it
            // is the wrong one, the pack's length disagrees with it too.
            #expect(r.errors.allSatisfy { $0.subject == .pack(pack.id) && ($0.kind == .indexConflict || $0.kind == .sizeMismatch) }, "\(errors(r))")
        }
    }

    // MARK: Snapshots and trees

    @Test(arguments: ["flip", "truncate"])
    func aDamagedSnapshotObjectIsNamed(_ how: String) async throws {
        try await withBackedUpRepository { f in
            let path = f.storage.path(ObjectName(.snapshots, f.snapshot.hex))
            let size = try readFile(path).count
            if how == "flip" { try flip(path, at: size / 2) } else { try truncateFile(path, to: size - 1) }
            let r = try await check(f.repo)
            #expect(r.snapshots == 1)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .tampered && p.subject == .snapshot(f.snapshot))
            #expect(p.description.hasPrefix("snapshots/\(f.snapshot.hex): "), "\(p)")
        }
    }

    @Test func aDeletedSnapshotIsSimplyGone() async throws {
        try await withBackedUpRepository { f in
            try await f.storage.delete(ObjectName(.snapshots, f.snapshot.hex))
            let r = try await check(f.repo, readData: true)
            // Nothing is damaged: its data is merely unused now (prune frees it).
            #expect(r.problems.isEmpty, "\(r.problems)")
            #expect(r.snapshots == 0 && r.trees == 0)
        }
    }

    @Test func aSnapshotWhoseRootIsNowhereIsNamed() async throws {
        try await withBackedUpRepository { f in
            let nowhere = Fixture.id(0x5a, BlobID.self)
            let (id, _) = try await f.repo.saveSnapshot(Snapshot(
                timeNanos: 1, hostname: "h", username: "u", paths: ["/x"], tags: [], root: nowhere, parent: nil, summary: BackupSummary()))
            let r = try await check(f.repo)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .notInIndex && p.snapshot == id && p.path == "/")
        }
    }

    @Test func aDamagedTreeBlobIsNamedWithSnapshotAndPath() async throws {
        try await withBackedUpRepository { f in
            let srcName = String(f.source.split(separator: "/").last!)
            let sub = try await treeID(f.repo, f.snapshot, [srcName, "sub"])
            let handle = BlobHandle(id: sub, type: .tree)
            let entry = try #require(try await f.repo.loadIndex().lookup(handle))
            try flip(packPath(f, entry.pack), at: Int(entry.offset) + Int(entry.length) / 2)

            let r = try await check(f.repo)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .damaged && p.subject == .blob(handle, pack: entry.pack))
            #expect(p.snapshot == f.snapshot && p.path == "/\(srcName)/sub")
            #expect(p.description.hasPrefix("pack \(entry.pack.short): tree blob \(sub.short): damaged: seal does not verify"), "\(p)")

            // Reading the data finds it in the pack as well.
            let full = try await check(f.repo, readData: true)
            #expect(full.errors.contains { $0.subject == .blob(handle, pack: entry.pack) && $0.snapshot == nil }, "\(errors(full))")
        }
    }

    @Test func aTreeThatOpensButDoesNotDecodeIsNamed() async throws {
        try await withBackedUpRepository { f in
            // A forged "tree" (only possible with the key, or by a bug): valid seal and id, garbage content.
            let garbage = Fixture.bytes(300, seed: 44)
            let pack = try await writePack(f.repo, [(garbage, .tree)])
            _ = try await f.repo.saveIndex(IndexFile(packs: [pack]))
            let rootID = f.repo.keys.blobID(of: garbage)
            let (id, _) = try await f.repo.saveSnapshot(Snapshot(
                timeNanos: 1, hostname: "h", username: "u", paths: ["/x"], tags: [], root: rootID, parent: nil, summary: BackupSummary()))
            let r = try await check(f.repo, readData: true)
            #expect(r.errors.count == 1, "\(errors(r))")
            let p = try #require(r.errors.first)
            #expect(p.kind == .malformed && p.subject == .blob(BlobHandle(id: rootID, type: .tree), pack: pack.id))
            #expect(p.snapshot == id && p.path == "/")
        }
    }

    @Test func eachTreeIsWalkedOnceAcrossSnapshots() async throws {
        try await withBackedUpRepository { f in
            for _ in 0..<3 { _ = try await backup(f.repo, f.source) }
            let r = try await check(f.repo)
            #expect(r.problems.isEmpty, "\(r.problems)")
            #expect(r.snapshots == 4)
            #expect(r.trees == 4, "unchanged snapshots share all four trees")
        }
    }

    // MARK: Garbage

    @Test func garbageObjectsNeverCrashTheCheck() async throws {
        try await withBackedUpRepository { f in
            let random = SystemRandom()
            let key = f.repo.keys.metadataSealing
            var garbageIndexes: [IndexID] = []
            var garbageSnapshots: [SnapshotID] = []
            var garbagePacks: [PackID] = []

            // Random bytes of awkward lengths under every object kind that check reads.
            for (n, length) in [0, 1, 44, 45, 46, 85, 86, 1000, 70_000].enumerated() {
                let bytes = Fixture.bytes(length, seed: UInt8(100 + n))
                let i = IndexID(bytes: random.bytes(32)), s = SnapshotID(bytes: random.bytes(32)), p = PackID(bytes: random.bytes(32))
                try await f.storage.write(ObjectName(.index, i.hex), bytes)
                try await f.storage.write(ObjectName(.snapshots, s.hex), bytes)
                try await f.storage.write(ObjectName(.data, p.hex), bytes)
                garbageIndexes.append(i)
                garbageSnapshots.append(s)
                garbagePacks.append(p)
            }
            // A key slot that does not decode: opening skips it, check names it.
            let badSlot = KeySlotID(bytes: random.bytes(32))
            try await f.storage.write(ObjectName(.keys, badSlot.hex), Fixture.bytes(90, seed: 61))
            // Validly sealed objects whose payloads are garbage (a bug, or a forger with the key).
            for length in [0, 1, 5, 41, 200, 5000] {
                let payload = Fixture.bytes(length, seed: UInt8(length % 251))
                let i = IndexID(bytes: random.bytes(32)), s = SnapshotID(bytes: random.bytes(32))
                try await f.storage.write(ObjectName(.index, i.hex), SealedObject.seal(payload, kind: .index, id: i.raw, key: key, random: random))
                try await f.storage.write(ObjectName(.snapshots, s.hex), SealedObject.seal(payload, kind: .snapshot, id: s.raw, key: key, random: random))
                garbageIndexes.append(i)
                garbageSnapshots.append(s)
            }
            // A sealed index payload that starts well (version 1, one pack) and then lies.
            var liar = ByteWriter()
            liar.u8(1)
            liar.varint(1)
            let liarPack = PackID(bytes: random.bytes(32))
            liar.id(liarPack)
            liar.u64(UInt64.max)
            liar.varint(1)
            liar.u8(0)
            liar.id(BlobID(bytes: random.bytes(32)))
            liar.u32(UInt32.max)
            liar.u32(UInt32.max)
            liar.u32(UInt32.max)
            let liarIndex = IndexID(bytes: random.bytes(32))
            try await f.storage.write(ObjectName(.index, liarIndex.hex), SealedObject.seal(liar.bytes, kind: .index, id: liarIndex.raw, key: key, random: random))
            try await f.storage.write(ObjectName(.data, liarPack.hex), Fixture.bytes(4096, seed: 9))

            // Packs with a valid trailer but an impossible header length, or a sealed header of garbage.
            var forged: [IndexFile.Pack] = []
            for (n, headerLength) in [0, 1, 40, 41, 1 << 20, Int(UInt32.max)].enumerated() {
                let id = PackID(bytes: random.bytes(32))
                var body = Fixture.bytes(1000 + n, seed: UInt8(200 + n))
                var trailer = ByteWriter()
                trailer.u8(1)
                trailer.u32(UInt32(headerLength))
                XChaCha20Poly1305.seal(trailer.bytes, authenticating: PackFormat.trailerLabel + id.bytes, key: key.secret, nonce: random.bytes(24), appendingTo: &body)
                try await f.storage.write(ObjectName(.data, id.hex), body)
                forged.append(IndexFile.Pack(id: id, length: UInt64(body.count), blobs: [
                    PackedBlob(handle: BlobHandle(id: BlobID(bytes: random.bytes(32)), type: .data), offset: 10, length: 100, rawLength: 1 << 30),
                    PackedBlob(handle: BlobHandle(id: BlobID(bytes: random.bytes(32)), type: .tree), offset: UInt32.max - 5, length: UInt32.max, rawLength: 7),
                ]))
            }
            let headers: [[UInt8]] = [[], [1], [1, 0xff, 0xff, 0xff, 0xff, 0x0f], [2, 0], [1, 1, 9] + Fixture.bytes(41, seed: 3), Fixture.bytes(500, seed: 5)]
            for (n, header) in headers.enumerated() {
                let id = PackID(bytes: random.bytes(32))
                var body = Fixture.bytes(300 + n, seed: UInt8(220 + n))
                let headerOffset = body.count
                XChaCha20Poly1305.seal(header, authenticating: PackFormat.headerLabel + id.bytes, key: key.secret, nonce: random.bytes(24), appendingTo: &body)
                var trailer = ByteWriter()
                trailer.u8(1)
                trailer.u32(UInt32(body.count - headerOffset))
                XChaCha20Poly1305.seal(trailer.bytes, authenticating: PackFormat.trailerLabel + id.bytes, key: key.secret, nonce: random.bytes(24), appendingTo: &body)
                try await f.storage.write(ObjectName(.data, id.hex), body)
                forged.append(IndexFile.Pack(id: id, length: UInt64(body.count), blobs: []))
            }
            _ = try await f.repo.saveIndex(IndexFile(packs: forged))

            for readData in [false, true] {
                let r = try await check(f.repo, readData: readData)
                let named = Set(r.problems.map(\.subject))
                for i in garbageIndexes {
                    #expect(named.contains(.index(i)), "garbage index \(i.short) not reported")
                }
                for s in garbageSnapshots { #expect(named.contains(.snapshot(s)), "garbage snapshot \(s.short) not reported") }
                #expect(named.contains(.keySlot(badSlot)), "the garbage key slot is not reported")
                for p in garbagePacks { #expect(named.contains(.pack(p)), "garbage pack \(p.short) not reported") }
                #expect(named.contains(.pack(liarPack)), "the lying index's pack is not reported")
                for p in forged { #expect(named.contains(.pack(p.id)), "forged pack \(p.id.short) not reported") }
                #expect(r.errors.allSatisfy { $0.subject != .snapshot(f.snapshot) }, "the real snapshot is fine")
                #expect(!r.problems.contains { $0.snapshot == f.snapshot }, "the real snapshot's trees are fine")
            }
        }
    }

    // MARK: Subsets

    @Test func subsetsParse() throws {
        #expect(try CheckOptions.Subset(parsing: "1/10") == .part(n: 1, of: 10))
        #expect(try CheckOptions.Subset(parsing: " 3 / 3 ") == .part(n: 3, of: 3))
        #expect(try CheckOptions.Subset(parsing: "25%") == .fraction(0.25))
        #expect(try CheckOptions.Subset(parsing: "100%") == .fraction(1))
        for bad in ["0/3", "4/3", "1/0", "-1/2", "1/", "/2", "1/2/3", "abc", "", "0%", "101%", "-5%", "nan%", "%"] {
            #expect(throws: CheckError.self, "\(bad)") { try CheckOptions.Subset(parsing: bad) }
        }
    }

    @Test func partsOfASubsetCoverEveryPackExactlyOnce() async throws {
        try await withBackedUpRepository { f in
            let all = Set(try await packs(f.repo).map(\.id))
            for m in [1, 2, 3, 7] {
                var seen: [PackID] = []
                var read = 0
                for n in 1...m {
                    seen += Checker.select(all.sorted(), .part(n: n, of: m))
                    let r = try await check(f.repo, subset: .part(n: n, of: m))
                    #expect(!r.hasErrors)
                    read += r.packsRead
                }
                #expect(seen.count == all.count && Set(seen) == all, "m = \(m)")
                #expect(read == all.count, "m = \(m)")
            }
            let half = try await check(f.repo, subset: .fraction(0.5))
            #expect(half.packsRead == max(1, Int((Double(all.count) * 0.5).rounded())))
            let tiny = try await check(f.repo, subset: .fraction(0.0001))
            #expect(tiny.packsRead == 1, "a share above zero reads at least one pack")
            await #expect(throws: CheckError.self) { try await f.repo.check(CheckOptions(subset: .part(n: 2, of: 1))) }
        }
    }

    @Test func checkDoesNotLeaveALockBehind() async throws {
        try await withBackedUpRepository { f in
            _ = try await check(f.repo)
            #expect(try await f.storage.list(.locks).isEmpty)
            // It takes a shared lock: a backup's shared lock does not stop it, prune's exclusive one does.
            let held = try await f.repo.lock(exclusive: false)
            #expect(try await check(f.repo).problems.isEmpty)
            await held.release()
            let exclusive = try await f.repo.lock(exclusive: true)
            await #expect(throws: RepositoryError.self) { try await f.repo.check() }
            await exclusive.release()
        }
    }
}
