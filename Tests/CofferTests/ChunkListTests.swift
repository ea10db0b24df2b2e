import CofferCrypto
import Testing

@testable import Coffer

@Suite struct ChunkListTests {
    static func ids(_ count: Int, salt: String = "") -> [BlobID] {
        let keys = Fixture.keys()
        return (0..<count).map { keys.blobID(of: Array("\(salt)chunk \($0)".utf8)) }
    }

    @Test func listsTileTheIdsWithinTheirBounds() {
        let ids = Self.ids(50_000)
        let lists = ChunkList.split(ids)
        #expect(Array(lists.joined()) == ids)
        #expect(lists.count > 20 && lists.count < 200, "about 1 list per 1,280 ids: \(lists.count)")
        for list in lists.dropLast() { #expect(list.count >= ChunkList.minIDs && list.count <= ChunkList.maxIDs) }
        #expect(ChunkList.split([]).isEmpty)
        #expect(ChunkList.split(Array(ids.prefix(10))).map(\.count) == [10])
    }

    /// The point of content-defined cuts: changing a few ids in the middle of a huge list
    /// leaves almost every list as it was, where fixed-size lists would all shift on an insert.
    @Test func aSmallChangeTouchesFewLists() {
        let keys = Fixture.keys()
        var ids = Self.ids(100_000)
        let before = Set(ChunkList.split(ids).map { keys.blobID(of: ChunkList.encode($0)) })
        ids[40_000] = keys.blobID(of: Array("changed page".utf8))
        ids.insert(contentsOf: Self.ids(3, salt: "new "), at: 70_000)
        let after = ChunkList.split(ids).map { keys.blobID(of: ChunkList.encode($0)) }
        let changed = after.filter { !before.contains($0) }
        #expect(changed.count <= 4, "\(changed.count) of \(after.count) lists changed")
    }

    @Test func encodingRoundTripsAndRejectsGarbage() throws {
        let ids = Self.ids(5)
        let id = Fixture.id(7, BlobID.self)
        #expect(try ChunkList.decode(ChunkList.encode(ids[...]), id: id) == ids)
        #expect(throws: MalformedObject.self) { try ChunkList.decode([2, 0], id: id) }  // empty
        #expect(throws: MalformedObject.self) { try ChunkList.decode(ChunkList.encode(ids[...]) + [0], id: id) }
        // A tree is not a chunk list and a chunk list is not a tree.
        let tree = Tree(nodes: []).encoded()
        #expect(throws: MalformedObject.self) { try ChunkList.decode(tree, id: id) }
        #expect(throws: MalformedObject.self) { try Tree(decoding: ChunkList.encode(ids[...]), id: id) }
        #expect(prefixesNotRejected(ChunkList.encode(ids[...])) { _ = try ChunkList.decode($0, id: id) }.isEmpty)
    }

    @Test func longFileNodesRoundTripWithoutTheirChunks() throws {
        let meta = NodeMetadata(mode: 0o600, uid: 1, gid: 1, mtimeNanos: 5, ctimeNanos: 6, device: 7, inode: 8, links: 1)
        let lists = Self.ids(3, salt: "list ")
        let tree = Tree(nodes: [TreeNode(name: Array("big.db".utf8), metadata: meta, content: .file(size: 99, chunks: Self.ids(4000)), chunkLists: lists)])
        let encoded = tree.encoded()
        #expect(encoded.count < 300, "the tree holds the 3 list ids, not 4000 chunk ids")
        let decoded = try Tree(decoding: encoded, id: Fixture.id(1))
        #expect(decoded.nodes[0].chunkLists == lists)
        #expect(decoded.nodes[0].content == .file(size: 99, chunks: []))
    }

    /// End to end in a repository: a database of 3,000 pages is a long file; one changed page
    /// stores one page and one chunk list (plus the trees), restores exactly, and check, prune
    /// and a second restore after prune all see the lists.
    @Test func aLongDatabaseFileBacksUpChangesCheaplyAndSurvivesPrune() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("db")), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            let page = 1024
            var db = DatabaseChunkingTests.header(pageSizeField: UInt16(page)) + Fixture.bytes(3000 * page - 100, seed: 31)
            try writeFile(dir + "/src/messages.db", db)
            let first = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            // 3000 pages, some chunk lists, two trees.
            #expect(first.snapshot.summary.blobsAdded > 3000 + 2)

            db[1500 * page + 7] ^= 0x5a
            try writeFile(dir + "/src/messages.db", db)
            let second = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            // One page, one or two chunk lists, the file's tree and the root tree.
            #expect(second.snapshot.summary.blobsAdded <= 1 + 2 + 2, "\(second.snapshot.summary.blobsAdded) blobs added")
            #expect(second.snapshot.summary.bytesAdded < UInt64(page + 2 * 8192 * 32 + 4000))

            let restored = try await repo.restore(RestoreRequest(snapshot: second.snapshotID!, target: dir + "/out"))
            #expect(restored.problems.isEmpty)
            #expect(try readFile(dir + "/out/src/messages.db") == db)

            try await repo.forgetSnapshots([first.snapshotID!])
            _ = try await repo.prune()
            let report = try await repo.check(CheckOptions(readData: true))
            #expect(report.errors.isEmpty, "\(report.problems)")
            let again = try await repo.restore(RestoreRequest(snapshot: second.snapshotID!, target: dir + "/out2"))
            #expect(again.problems.isEmpty)
            #expect(try readFile(dir + "/out2/src/messages.db") == db)
        }
    }
}
