import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

@Suite struct RepositoryTests {
    let password = Fixture.password("repository password")

    /// Runs `body` with an initialised repository at `<tmp>/repo` and the temporary directory.
    func withRepository(_ body: (Repository, LocalStorage, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            try await body(repo, storage, dir)
        }
    }

    func openKind(_ storage: LocalStorage, _ credential: Credential) async -> RepositoryErrorKind? {
        do {
            _ = try await Repository.open(storage: storage, credential: credential)
            return nil
        } catch let error as RepositoryError {
            return error.kind
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    // MARK: Initialise and open

    @Test func initializeThenOpenWithTheRightPassword() async throws {
        try await withRepository { repo, storage, _ async throws in
            #expect(repo.config.chunker == Fixture.smallChunker)
            #expect(repo.config.packTargetSize == 256 << 10)
            #expect(repo.config.formatVersion == RepositoryConfig.formatVersion)
            let opened = try await Repository.open(storage: storage, credential: .password(password))
            #expect(opened.config == repo.config)
            #expect(opened.openedWith == repo.openedWith)
            #expect(opened.keys.chunkID.secret.constantTimeEquals(repo.keys.chunkID.secret))
            #expect(opened.keys.metadataSealing.secret.constantTimeEquals(repo.keys.metadataSealing.secret))
            #expect(opened.chunker.gear == repo.chunker.gear)
            let slots = try await opened.keySlots()
            #expect(slots.map(\.id) == [repo.openedWith])
            #expect(slots.first?.kind == .password(.insecureMinimum))
        }
    }

    @Test func twoRepositoriesHaveIndependentKeys() async throws {
        try await withTemporaryDirectory { dir async throws in
            let a = try await Repository.initialize(storage: LocalStorage(path: dir + "/a"), credential: .password(password), options: Fixture.initOptions())
            let b = try await Repository.initialize(storage: LocalStorage(path: dir + "/b"), credential: .password(password), options: Fixture.initOptions())
            #expect(a.config.repositoryID != b.config.repositoryID)
            #expect(!a.keys.chunkID.secret.constantTimeEquals(b.keys.chunkID.secret))
            #expect(a.chunker.gear != b.chunker.gear)
        }
    }

    @Test func wrongPasswordIsAWrongCredential() async throws {
        try await withRepository { _, storage, _ async throws in
            #expect(await openKind(storage, .password(Fixture.password("repository passworD"))) == .wrongCredential)
            #expect(await openKind(storage, .password(Fixture.password(""))) == .wrongCredential)
        }
    }

    @Test func recoveryKeyWithoutARecoverySlotFindsNoUsableSlot() async throws {
        try await withRepository { _, storage, _ async throws in
            #expect(await openKind(storage, .recoveryKey(.generate())) == .noUsableKeySlot)
        }
    }

    @Test func initializingTwiceIsRefused() async throws {
        try await withRepository { repo, storage, _ async throws in
            let before = try await storage.read(.config)
            do {
                _ = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
                Issue.record("second initialisation succeeded")
            } catch let error as RepositoryError {
                #expect(error.kind == .alreadyInitialized)
            }
            #expect(try await storage.read(.config) == before, "the existing repository is untouched")
            #expect(try await repo.keySlots().count == 1)
        }
    }

    @Test func openingAnEmptyOrMissingDirectoryFindsNoRepository() async throws {
        try await withTemporaryDirectory { dir async throws in
            try makeDirectory(dir + "/empty")
            #expect(await openKind(LocalStorage(path: dir + "/empty"), .password(password)) == .noRepository)
            #expect(await openKind(LocalStorage(path: dir + "/missing"), .password(password)) == .noRepository)
        }
    }

    @Test func tamperedConfigIsDetected() async throws {
        try await withRepository { _, storage, dir async throws in
            var config = try await storage.read(.config)
            config[config.count / 2] ^= 1
            try writeFile(dir + "/repo/config", config)
            #expect(await openKind(storage, .password(password)) == .tampered)
        }
    }

    @Test func newerFormatVersionIsRefused() async throws {
        try await withRepository { repo, storage, _ async throws in
            var newer = repo.config
            newer.formatVersion = RepositoryConfig.formatVersion + 1
            let sealed = SealedObject.seal(newer.encoded(), kind: .config, id: .zero, key: repo.keys.metadataSealing, random: SystemRandom())
            try await storage.delete(.config)
            try await storage.write(.config, sealed)
            #expect(await openKind(storage, .password(password)) == .unsupportedFormat)
        }
    }

    // MARK: Key slots

    @Test func keySlotsCanBeAddedAndRemovedButNotTheLast() async throws {
        try await withRepository { repo, storage, _ async throws in
            let master = try await repo.unlockMasterKey(with: .password(password))
            let rk = RecoveryKey.generate()
            let recoverySlot = try await repo.addKeySlot(master: master, credential: .recoveryKey(rk), cost: .insecureMinimum)
            let second = Fixture.password("second password")
            let secondSlot = try await repo.addKeySlot(master: master, credential: .password(second), cost: .insecureMinimum)
            #expect(Set(try await repo.keySlots().map(\.id)) == [repo.openedWith, recoverySlot.id, secondSlot.id])

            let viaRecovery = try await Repository.open(storage: storage, credential: .recoveryKey(rk))
            #expect(viaRecovery.openedWith == recoverySlot.id)
            #expect(viaRecovery.keys.chunkID.secret.constantTimeEquals(repo.keys.chunkID.secret))
            #expect(try await Repository.open(storage: storage, credential: .password(second)).openedWith == secondSlot.id)
            #expect(try await Repository.open(storage: storage, credential: .password(password)).openedWith == repo.openedWith)

            // Remove both password slots: passwords no longer open anything.
            try await repo.removeKeySlot(repo.openedWith)
            try await repo.removeKeySlot(secondSlot.id)
            #expect(await openKind(storage, .password(password)) == .noUsableKeySlot)
            #expect(try await repo.keySlots().map(\.id) == [recoverySlot.id])

            do {
                try await viaRecovery.removeKeySlot(recoverySlot.id)
                Issue.record("removed the last key slot")
            } catch let error as RepositoryError {
                #expect(error.kind == .lastKeySlot)
            }
            #expect(try await Repository.open(storage: storage, credential: .recoveryKey(rk)).openedWith == recoverySlot.id)
        }
    }

    @Test func removingAnUnknownSlotIsNotFound() async throws {
        try await withRepository { repo, _, _ async throws in
            do {
                try await repo.removeKeySlot(Fixture.id(0x42))
                Issue.record("removed a slot that does not exist")
            } catch let error as RepositoryError {
                #expect(error.kind == .keySlotNotFound)
            }
        }
    }

    @Test func unlockingTheMasterKeyNeedsTheRightCredential() async throws {
        try await withRepository { repo, _, _ async throws in
            do {
                _ = try await repo.unlockMasterKey(with: .password(Fixture.password("nope")))
                Issue.record("unlocked with a wrong password")
            } catch let error as RepositoryError {
                #expect(error.kind == .wrongCredential)
            }
            let master = try await repo.unlockMasterKey(with: .password(password))
            #expect(RepositoryKeys(master: master).dataSealing.secret.constantTimeEquals(repo.keys.dataSealing.secret))
        }
    }

    @Test func keySlotsResolveByUniquePrefix() async throws {
        try await withRepository { repo, _, _ async throws in
            #expect(try await repo.resolveKeySlot(String(repo.openedWith.hex.prefix(6))) == repo.openedWith)
            #expect(try await repo.resolveKeySlot(repo.openedWith.hex.uppercased()) == repo.openedWith)
            for prefix in ["", repo.openedWith.hex + "0"] {
                do {
                    _ = try await repo.resolveKeySlot(prefix)
                    Issue.record("resolved \(prefix)")
                } catch let error as RepositoryError {
                    #expect(error.kind == .keySlotNotFound)
                }
            }
        }
    }

    // MARK: Backup and restore

    struct Source {
        let path: String
        let files: [String: [UInt8]]
    }

    /// A small tree with an empty file, a multi-chunk file and its copy, zeros, a hard link,
    /// a symlink and nested folders with their own modes.
    func makeSource(in dir: String) throws -> Source {
        let src = dir + "/src"
        try makeDirectory(src, mode: 0o755)
        try makeDirectory(src + "/sub", mode: 0o750)
        try makeDirectory(src + "/sub/dir", mode: 0o700)
        let big = Fixture.bytes(600 << 10, seed: 51)
        let files: [String: [UInt8]] = [
            "empty": [],
            "small.txt": Fixture.text(1000),
            "big.bin": big,
            "dup.bin": big,
            "zeros.bin": [UInt8](repeating: 0, count: 200 << 10),
            "hard1": Fixture.text(50 << 10, variant: 3),
            "sub/dir/nested.txt": Fixture.text(70 << 10, variant: 2),
        ]
        for (name, bytes) in files { try writeFile(src + "/" + name, bytes, mode: name == "small.txt" ? 0o640 : 0o644) }
        guard link(src + "/hard1", src + "/hard2") == 0 else { throw TestFailure("link: errno \(errno)") }
        guard symlink("small.txt", src + "/link") == 0 else { throw TestFailure("symlink: errno \(errno)") }
        var all = files
        all["hard2"] = files["hard1"]
        return Source(path: src, files: all)
    }

    func distinctChunks(_ repo: Repository, _ files: [[UInt8]]) -> Set<BlobID> {
        var ids = Set<BlobID>()
        for bytes in files {
            var start = 0
            for n in repo.chunker.chunkLengths(bytes) {
                ids.insert(repo.keys.blobID(of: bytes[start..<(start + n)]))
                start += n
            }
        }
        return ids
    }

    func backup(_ repo: Repository, _ path: String, force: Bool = false) async throws -> BackupResult {
        var request = BackupRequest(paths: [path])
        request.hostname = "unit-test-host"
        request.force = force
        return try await repo.backup(request)
    }

    @Test func backupThenRestoreReproducesTheTree() async throws {
        try await withRepository { repo, _, dir async throws in
            let source = try makeSource(in: dir)
            let result = try await backup(repo, source.path)
            #expect(result.warnings.isEmpty)
            let id = try #require(result.snapshotID)
            let s = result.snapshot.summary
            #expect(s.filesNew == 8)
            #expect(s.directories == 3)
            #expect(s.filesSkipped == 0)
            #expect(s.bytesProcessed == UInt64(source.files.values.reduce(0) { $0 + $1.count }))
            let chunks = distinctChunks(repo, Array(source.files.values))
            #expect(s.blobsAdded == UInt64(chunks.count + 4), "distinct chunks plus four trees (root, src, sub, sub/dir)")
            #expect(s.bytesAdded < s.bytesProcessed - UInt64(600 << 10), "the copy and the hard link are stored once")
            #expect(result.snapshot.paths == [source.path])
            #expect(result.snapshot.hostname == "unit-test-host")
            #expect(result.snapshot.parent == nil)

            let target = dir + "/restore"
            let restored = try await repo.restore(RestoreRequest(snapshot: id, target: target))
            #expect(restored.problems.isEmpty, "\(restored.problems)")
            #expect(restored.files == 7)
            #expect(restored.hardLinks == 1)
            #expect(restored.symlinks == 1)
            #expect(restored.directories == 3)
            #expect(try FileManager.default.contentsOfDirectory(atPath: target) == ["src"])

            let expected = try treeContents(source.path)
            let actual = try treeContents(target + "/src")
            #expect(actual.keys.sorted() == expected.keys.sorted())
            for (path, entry) in expected {
                #expect(actual[path] == entry, "\(path): restored \(actual[path].map(String.init(describing:)) ?? "nothing"), source \(entry)")
            }
            #expect(try fileStat(target + "/src/hard1").st_ino == fileStat(target + "/src/hard2").st_ino, "hard link recreated")
        }
    }

    @Test func unchangedSecondBackupAddsNothing() async throws {
        try await withRepository { repo, _, dir async throws in
            let source = try makeSource(in: dir)
            let first = try await backup(repo, source.path)
            let second = try await backup(repo, source.path)
            let s = second.snapshot.summary
            #expect(s.blobsAdded == 0)
            #expect(s.bytesAdded == 0)
            #expect(s.filesUnmodified == 8)
            #expect(s.filesNew == 0 && s.filesChanged == 0)
            #expect(s.bytesProcessed == first.snapshot.summary.bytesProcessed)
            #expect(second.snapshot.root == first.snapshot.root)
            #expect(second.snapshot.parent == first.snapshotID)
            #expect(try await repo.snapshots().map(\.id) == [first.snapshotID, second.snapshotID].compactMap { $0 })
            #expect(try await repo.resolveSnapshot("latest").id == second.snapshotID)

            // Reading every file again finds the same chunks: still nothing new.
            let forced = try await backup(repo, source.path, force: true)
            #expect(forced.snapshot.summary.blobsAdded == 0)
            #expect(forced.snapshot.summary.filesUnmodified == 8)
            #expect(forced.snapshot.root == first.snapshot.root)
        }
    }

    @Test func changedFileAddsOnlyItsChunkAndTheTreesAboveIt() async throws {
        try await withRepository { repo, _, dir async throws in
            let source = try makeSource(in: dir)
            let first = try await backup(repo, source.path)
            let changed = Fixture.text(1500, variant: 9)
            try writeFile(source.path + "/small.txt", changed, mode: 0o640)
            let second = try await backup(repo, source.path)
            let s = second.snapshot.summary
            #expect(s.filesChanged == 1)
            #expect(s.filesUnmodified == 7)
            #expect(s.blobsAdded == 3, "one data chunk, the src tree and the root tree")
            #expect(s.bytesProcessed == first.snapshot.summary.bytesProcessed + 500)

            let target = dir + "/restore"
            let restored = try await repo.restore(RestoreRequest(snapshot: try #require(second.snapshotID), target: target))
            #expect(restored.problems.isEmpty)
            #expect(try readFile(target + "/src/small.txt") == changed)
            #expect(try readFile(target + "/src/big.bin") == source.files["big.bin"])
        }
    }

    @Test func restoreCanSelectASubtree() async throws {
        try await withRepository { repo, _, dir async throws in
            let source = try makeSource(in: dir)
            let id = try #require(try await backup(repo, source.path).snapshotID)
            var request = RestoreRequest(snapshot: id, target: dir + "/partial")
            request.includes = ["/src/sub"]
            let restored = try await repo.restore(request)
            #expect(restored.files == 1)
            #expect(try readFile(dir + "/partial/src/sub/dir/nested.txt") == source.files["sub/dir/nested.txt"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/partial/src") == ["sub"])
        }
    }

    @Test func listingAndDumpingASnapshot() async throws {
        try await withRepository { repo, _, dir async throws in
            let source = try makeSource(in: dir)
            let result = try await backup(repo, source.path)
            var paths: [String] = []
            try await repo.list(snapshot: result.snapshot) { paths.append($0.path) }
            #expect(paths == [
                "/src", "/src/big.bin", "/src/dup.bin", "/src/empty", "/src/hard1", "/src/hard2", "/src/link", "/src/small.txt",
                "/src/sub", "/src/sub/dir", "/src/sub/dir/nested.txt", "/src/zeros.bin",
            ])
            var dumped: [UInt8] = []
            try await repo.dump(path: "/src/big.bin", in: result.snapshot) { dumped += $0 }
            #expect(dumped == source.files["big.bin"])
        }
    }

    @Test func damagedBlobIsReportedAndItsFileNotWritten() async throws {
        try await withRepository { repo, storage, dir async throws in
            let source = try makeSource(in: dir)
            let id = try #require(try await backup(repo, source.path).snapshotID)
            let small = try #require(source.files["small.txt"])
            let index = try await repo.loadIndex()
            let entry = try #require(index.lookup(BlobHandle(id: repo.keys.blobID(of: small), type: .data)))
            let packPath = storage.path(ObjectName(.data, entry.pack.hex))
            var pack = try readFile(packPath)
            pack[Int(entry.offset) + 30] ^= 1
            try writeFile(packPath, pack, mode: 0o600)

            let target = dir + "/restore"
            let restored = try await repo.restore(RestoreRequest(snapshot: id, target: target))
            #expect(restored.problems.map(\.path) == [target + "/src/small.txt"])
            #expect(!FileManager.default.fileExists(atPath: target + "/src/small.txt"), "no damaged file left behind")
            #expect(try readFile(target + "/src/big.bin") == source.files["big.bin"])
        }
    }

    @Test func missingSnapshotIsReported() async throws {
        try await withRepository { repo, _, _ async throws in
            do {
                _ = try await repo.loadSnapshot(Fixture.id(0x99))
                Issue.record("loaded a snapshot that does not exist")
            } catch let error as RepositoryError {
                #expect(error.kind == .missingObject)
            }
            do {
                _ = try await repo.resolveSnapshot("latest")
                Issue.record("resolved latest in an empty repository")
            } catch let error as RepositoryError {
                #expect(error.kind == .noSnapshots)
            }
        }
    }
}
