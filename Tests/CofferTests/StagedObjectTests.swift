import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// Packs of a local repository are written while they fill (StagedObject): the bytes that land
/// must be exactly those appended, whatever order the segment writes finish in; nothing may be
/// left under a temporary name once a run ends, however it ends; and prune clears what a
/// killed run left.
@Suite struct StagedObjectTests {
    static let segment = StagedObject.segmentSize

    func temporaryFiles(_ root: String) -> [String] {
        var out: [String] = []
        for p in 0..<256 {
            let dir = root + "/data/" + Hex.encode([UInt8(p)])
            guard let d = opendir(dir) else { continue }
            defer { closedir(d) }
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name.hasPrefix(".tmp-") { out.append(dir + "/" + name) }
            }
        }
        return out
    }

    func withStorage(_ body: (LocalStorage) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.createLayout()
            try await body(storage)
        }
    }

    @Test(arguments: [0, 1, 4095, segment, segment + 1, 3 * segment + 777])
    func storesExactlyTheBytesAppendedWhateverOrderSegmentsLandIn(size: Int) async throws {
        try await withStorage { storage in
            let data = Fixture.bytes(size, seed: 21)
            let name = ObjectName(.data, Hex.encode(Fixture.bytes(32, seed: 22)))
            let staged = try storage.stage(name)
            var writes: [StagedObject.SegmentWrite] = []
            var offset = 0
            var step = 1
            while offset < data.count {
                let n = min(step, data.count - offset)
                writes += staged.append(data[offset..<(offset + n)])
                offset += n
                step = step * 7 % 400_000 + 1
            }
            #expect(writes.count == size / Self.segment)
            #expect(staged.count == size)
            // Last segment first: each lands at its own offset.
            for w in writes.reversed() { await w.perform() }
            try await staged.commit()
            #expect(try await storage.read(name) == data)
            #expect(temporaryFiles(storage.root).isEmpty)
        }
    }

    @Test func discardLeavesNoFileAndLaterAppendsWriteNothing() async throws {
        try await withStorage { storage in
            let name = ObjectName(.data, Hex.encode(Fixture.bytes(32, seed: 23)))
            let staged = try storage.stage(name)
            for w in staged.append(Fixture.bytes(2 * Self.segment + 10, seed: 24)[...]) { await w.perform() }
            #expect(temporaryFiles(storage.root).count == 1)
            await staged.discard()
            #expect(temporaryFiles(storage.root).isEmpty)
            #expect(try await storage.stat(name) == nil)
            // A straggler after a failed run's discard: no write may reach the closed descriptor.
            #expect(staged.append(Fixture.bytes(Self.segment, seed: 25)[...]).isEmpty)
        }
    }

    @Test func commitRefusesToReplaceAnObjectAndLeavesNoTemporaryFile() async throws {
        try await withStorage { storage in
            let name = ObjectName(.data, Hex.encode(Fixture.bytes(32, seed: 26)))
            try await storage.write(name, [1, 2, 3])
            let staged = try storage.stage(name)
            for w in staged.append(Fixture.bytes(5000, seed: 27)[...]) { await w.perform() }
            await #expect(throws: StorageError.self) { try await staged.commit() }
            #expect(try await storage.read(name) == [1, 2, 3])
            #expect(temporaryFiles(storage.root).isEmpty)
        }
    }

    @Test func aFileSystemWithoutDirectIOGetsTheSameBytes() async throws {
        // tmpfs refuses O_DIRECT; the staged object falls back to buffered writes.
        var st = Glibc.stat()
        guard stat("/dev/shm", &st) == 0 else { return }
        let dir = "/dev/shm/coffer-staged-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let storage = LocalStorage(path: dir)
        try storage.createLayout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = Fixture.bytes(2 * Self.segment + 4097, seed: 28)
        let name = ObjectName(.data, Hex.encode(Fixture.bytes(32, seed: 29)))
        let staged = try storage.stage(name)
        for w in staged.append(data[...]) { await w.perform() }
        try await staged.commit()
        #expect(try await storage.read(name) == data)
    }

    @Test func aCancelledBackupLeavesNoTemporaryFilesAndChecksClean() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("s")), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            for i in 0..<8 { try writeFile(dir + "/src/f\(i)", Fixture.bytes(2 << 20, seed: UInt8(30 + i))) }
            var cancelled = false
            for delay in [5, 20, 60, 150] where !cancelled {
                let task = Task { try await repo.backup(BackupRequest(paths: [dir + "/src"])) }
                try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
                task.cancel()
                do { _ = try await task.value } catch is CancellationError { cancelled = true }
                #expect(temporaryFiles(storage.root).isEmpty, "after a backup cancelled at \(delay) ms")
            }
            #expect(cancelled, "no backup was still running when cancelled: the test proved nothing")
            let report = try await repo.check()
            #expect(report.errors.isEmpty, "\(report.errors)")
        }
    }

    @Test func blobsSealedConcurrentlyIntoStagedPacksAllReadBack() async throws {
        // Many small and large chunks from several files at once: sealing tasks append to the
        // three open packs under each pack's own lock, and segment writes finish in any order;
        // every blob must then open at the offset its pack header gives.
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            // Packs of several segments (the fixture's 256 KiB target is under one), so segment
            // writes run and the end of the backup merges partly filled packs read back from disk.
            var options = Fixture.initOptions()
            options.packTargetSize = (3 << 19) + 12_345
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("c")), options: options)
            try makeDirectory(dir + "/src")
            for i in 0..<40 { try writeFile(dir + "/src/small\(i)", Fixture.bytes(3000 + 997 * i, seed: UInt8(i))) }
            for i in 0..<4 { try writeFile(dir + "/src/large\(i)", Fixture.bytes((2 << 20) + 12_345 * i, seed: UInt8(100 + i))) }
            let result = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            #expect(result.snapshotID != nil)
            #expect(temporaryFiles(storage.root).isEmpty)
            let packs = try await storage.list(.data)
            #expect(packs.count >= 4 && packs.contains { $0.size > StagedObject.segmentSize * 3 / 2 }, "\(packs.map(\.size))")
            var checking = CheckOptions()
            checking.readData = true
            let report = try await repo.check(checking)
            #expect(report.errors.isEmpty, "\(report.errors)")
            _ = try await repo.restore(RestoreRequest(snapshot: try #require(result.snapshotID), target: dir + "/out"))
            for i in [0, 39] { #expect(try readFile(dir + "/out/src/small\(i)") == Fixture.bytes(3000 + 997 * i, seed: UInt8(i))) }
            #expect(try readFile(dir + "/out/src/large3") == Fixture.bytes((2 << 20) + 12_345 * 3, seed: 103))
        }
    }

    @Test func pruneRemovesTemporaryFilesOfKilledRunsButNotRecentOnes() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("p")), options: Fixture.initOptions())
            let old = dir + "/repo/data/ab/.tmp-00000000000000aa"
            let recent = dir + "/repo/data/cd/.tmp-00000000000000cd"
            try writeFile(old, Fixture.bytes(70_000, seed: 40))
            try writeFile(recent, Fixture.bytes(1000, seed: 41))
            // Two hours old: a backup killed with a pack open.
            var times = [timespec(tv_sec: time(nil) - 7200, tv_nsec: 0), timespec(tv_sec: time(nil) - 7200, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, old, &times, 0) == 0)

            var dry = PruneOptions()
            dry.dryRun = true
            let planned = try await repo.prune(dry)
            #expect(planned.temporaryFilesRemoved == 1 && planned.temporaryBytesRemoved == 70_000)
            #expect(access(old, F_OK) == 0, "a dry run deletes nothing")

            let done = try await repo.prune()
            #expect(done.temporaryFilesRemoved == 1)
            #expect(access(old, F_OK) != 0)
            #expect(access(recent, F_OK) == 0, "a recent one may belong to a run whose lock lapsed")
        }
    }
}

@Suite struct BufferPoolTests {
    @Test func buffersAreReusedByClassAndCutToTheSizeAsked() {
        let pool = BufferPool(idleLimit: 8 << 20)
        var a = pool.take(capacity: 3 << 20)
        #expect(a.count == 3 << 20 && a.capacity >= 4 << 20)
        a[0] = 7
        let address = a.withUnsafeBytes { $0.baseAddress }
        pool.give(&a)
        #expect(a.isEmpty)
        let b = pool.take(capacity: (2 << 20) + 1)
        #expect(b.count == (2 << 20) + 1)
        #expect(b.withUnsafeBytes { $0.baseAddress } == address, "the same 4 MiB class buffer")
        let c = pool.take(capacity: 100)
        #expect(c.count == 100 && c.capacity >= 64 << 10)
    }

    @Test func theIdleLimitIsKept() {
        let pool = BufferPool(idleLimit: 4 << 20)
        var a = pool.take(capacity: 3 << 20)
        var b = pool.take(capacity: 3 << 20)
        let first = a.withUnsafeBytes { $0.baseAddress }
        pool.give(&a)
        pool.give(&b)  // over the limit: freed
        let again = pool.take(capacity: 3 << 20)
        let fresh = pool.take(capacity: 3 << 20)
        #expect(again.withUnsafeBytes { $0.baseAddress } == first)
        #expect(fresh.withUnsafeBytes { $0.baseAddress } != first, "only one was kept")
    }

    @Test func aChunkHeldPastItsBufferKeepsItsBytes() async throws {
        // Chunks are views; a slice kept after the chunk (and so the buffer) is dropped must not
        // see the next file's bytes when the storage is reused.
        let first = ChunkBuffer(capacity: 1 << 20)
        first.bytes.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0x11, $0.count) }
        let kept = Chunk(buffer: first, range: 0..<4096).bytes
        _ = consume first
        let next = ChunkBuffer(capacity: 1 << 20)
        next.bytes.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0x22, $0.count) }
        #expect(kept.allSatisfy { $0 == 0x11 })
    }
}
