import CofferCrypto
import Glibc
import Testing

@testable import Coffer

/// Chunk ids are computed four at a time, over batches that mix the chunks of many small
/// files (Engine/Pipeline). Every file must still get exactly its own chunks' ids, and a
/// batch that holds the same content twice must store it once.
@Suite struct BatchedIDTests {
    let password = Fixture.password("batched ids")

    @Test func smallFilesSharingBatchesGetTheirOwnIDsAndRestoreExactly() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            let src = dir + "/src"
            try makeDirectory(src)
            try makeDirectory(src + "/sub")
            // Sizes around BLAKE2b's 128-byte blocks and the small chunker's 16 KiB minimum,
            // several files per batch, a few larger files between them, and duplicates.
            let sizes = [0, 1, 127, 128, 129, 255, 256, 257, 1000, 4096, 16383, 16384, 16385, 70_000, 300_000]
            var contents: [String: [UInt8]] = [:]
            for (i, size) in sizes.enumerated() {
                for copy in 0..<3 {
                    let bytes = Fixture.bytes(size, seed: UInt8(i + 1))
                    let name = "f\(i < 10 ? "0" : "")\(i)-\(copy)"
                    try writeFile(src + "/" + name, bytes)
                    contents[name] = bytes
                    let other = Fixture.bytes(size, seed: UInt8(100 + i))
                    try writeFile(src + "/sub/" + name, other)
                    contents["sub/" + name] = other
                }
            }
            let backup = try await repo.backup(BackupRequest(paths: [src]))
            #expect(backup.warnings.isEmpty, "\(backup.warnings)")
            let snapshot = try await repo.loadSnapshot(try #require(backup.snapshotID))
            let index = try await repo.loadIndex()

            // Files below the chunker's minimum are one chunk: its id is the keyed hash of the
            // whole file, computed here one message at a time.
            let top = try await repo.loadTree(snapshot.root, index: index)
            func subtree(_ tree: Tree, _ name: String) throws -> BlobID {
                guard case .directory(let id)? = tree.node(named: Array(name.utf8))?.content else { throw TestFailure("no folder \(name)") }
                return id
            }
            let srcTree = try await repo.loadTree(try subtree(top, "src"), index: index)
            let subTree = try await repo.loadTree(try subtree(srcTree, "sub"), index: index)
            var checked = 0
            var allChunks = Set<BlobID>()
            var smallChunks = Set<BlobID>()
            for (prefix, tree) in [("", srcTree), ("sub/", subTree)] {
                for node in tree.nodes {
                    guard case .file(let size, let chunks) = node.content else { continue }
                    allChunks.formUnion(chunks)
                    let bytes = try #require(contents[prefix + String(decoding: node.name, as: UTF8.self)])
                    #expect(size == UInt64(bytes.count))
                    if bytes.isEmpty {
                        #expect(chunks.isEmpty)
                    } else if bytes.count <= Fixture.smallChunker.minSize {
                        #expect(chunks == [repo.keys.blobID(of: bytes)], "\(prefix)\(String(decoding: node.name, as: UTF8.self))")
                        smallChunks.formUnion(chunks)
                        checked += 1
                    }
                }
            }
            #expect(checked == 2 * 3 * sizes.filter { $0 > 0 && $0 <= Fixture.smallChunker.minSize }.count)
            // Three copies of each file, often in one batch: one id and one stored blob each.
            #expect(smallChunks.count == 2 * sizes.filter { $0 > 0 && $0 <= Fixture.smallChunker.minSize }.count)
            #expect(index.dataBlobCount == allChunks.count, "each distinct chunk stored once")

            // The larger files, cut into several chunks, restore bit for bit, and a full check
            // recomputes every id one at a time.
            let target = dir + "/target"
            let result = try await repo.restore(RestoreRequest(snapshot: try #require(backup.snapshotID), target: target))
            #expect(result.problems.isEmpty, "\(result.problems)")
            for (name, bytes) in contents { #expect(try readFile(target + "/src/" + name) == bytes, "\(name)") }
            var options = CheckOptions()
            options.readData = true
            let report = try await repo.check(options)
            #expect(report.problems.isEmpty, "\(report.problems)")
        }
    }
}

/// Small files are read whole into one shared buffer; a file that is not the size its stat
/// said must not lose or invent bytes.
@Suite struct SmallFileArenaTests {
    func withFile(_ bytes: [UInt8], _ body: (Int32) throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            try writeFile(dir + "/f", bytes)
            let fd = open(dir + "/f", O_RDONLY)
            guard fd >= 0 else { throw TestFailure("open: errno \(errno)") }
            defer { close(fd) }
            try body(fd)
        }
    }

    @Test func filesLandBackToBackAndShrunkFilesKeepWhatTheyHave() async throws {
        var arena = SmallFileArena(capacity: 1 << 20)
        let a = Fixture.bytes(1000, seed: 1), b = Fixture.bytes(700, seed: 2)
        var ranges: [Range<Int>] = []
        try await withFile(a) { fd in ranges.append(try #require(try arena.read(fd, size: 1000))) }
        // Stat said 900; the file has 700 by the time it is read.
        try await withFile(b) { fd in ranges.append(try #require(try arena.read(fd, size: 900))) }
        #expect(ranges == [0..<1000, 1000..<1700])
        #expect(arena.used == 1700)
        #expect(Array(arena.buffer.bytes[ranges[0]]) == a)
        #expect(Array(arena.buffer.bytes[ranges[1]]) == b)
    }

    @Test func aFileThatGrewIsLeftToTheStreamingReaderAtItsOffset() async throws {
        var arena = SmallFileArena(capacity: 1 << 20)
        let bytes = Fixture.bytes(5000, seed: 3)
        try await withFile(bytes) { fd in
            let range = try arena.read(fd, size: 4000)
            #expect(range == nil, "stat said 4000, the file has 5000")
            #expect(arena.used == 0)
            #expect(lseek(fd, 0, SEEK_CUR) == 0, "the streaming reader starts where the arena did")
            var reader = ChunkReader(fd: fd, cutter: .fixed(4096), sizeHint: 4000)
            var read: [UInt8] = []
            while let chunk = try reader.next() { read += chunk.bytes }
            #expect(read == bytes)
        }
    }

    @Test func aFileThatDoesNotFitIsRefusedWithoutReading() async throws {
        var arena = SmallFileArena(capacity: 64 << 10)
        try await withFile(Fixture.bytes(70_000)) { fd in
            let range = try arena.read(fd, size: 70_000)
            #expect(range == nil)
            #expect(arena.used == 0)
        }
        // Exactly the room less one byte fits (one byte more is read to see growth).
        let fits = arena.room - 1
        try await withFile(Fixture.bytes(fits)) { fd in
            let range = try arena.read(fd, size: fits)
            #expect(range == 0..<fits)
        }
    }
}
