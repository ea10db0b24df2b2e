import CofferCrypto
import Testing

@testable import Coffer

/// Binary encodings of the metadata payloads: round trips, canonical tree bytes, and decoders that
/// reject (never crash on) truncated, extended, mutated or random input.
@Suite struct EncodingTests {
    static let meta = NodeMetadata(
        mode: 0o4755, uid: 1000, gid: 100, mtimeNanos: 1_700_000_000_123_456_789, ctimeNanos: -5, device: .max,
        inode: 1 << 40, links: 3)

    static func sampleNodes() -> [TreeNode] {
        [
            TreeNode(name: Array("notes.txt".utf8), metadata: meta, content: .file(size: 3 << 20, chunks: [Fixture.id(1), Fixture.id(2), Fixture.id(1)])),
            TreeNode(name: Array("empty".utf8), metadata: meta, content: .file(size: 0, chunks: [])),
            TreeNode(name: Array("sub dir".utf8), metadata: meta, content: .directory(subtree: Fixture.id(3))),
            TreeNode(name: Array("link".utf8), metadata: meta, content: .symlink(target: Array("../a/b".utf8) + [0xff])),
            TreeNode(name: [0xff, 0xfe, 0x41], metadata: meta, content: .file(size: 1, chunks: [Fixture.id(4)])),
            TreeNode(name: Array("é".utf8), metadata: meta, content: .symlink(target: [])),
        ]
    }

    static func sampleIndex() -> IndexFile {
        IndexFile(packs: [
            IndexFile.Pack(id: Fixture.id(0xa1), length: 123_456_789, blobs: [
                PackedBlob(handle: BlobHandle(id: Fixture.id(1), type: .data), offset: 0, length: 100, rawLength: 60),
                PackedBlob(handle: BlobHandle(id: Fixture.id(2), type: .tree), offset: 100, length: .max, rawLength: .max),
            ]),
            IndexFile.Pack(id: Fixture.id(0xa2), length: 0, blobs: []),
        ])
    }

    static func sampleSnapshot(parent: SnapshotID? = Fixture.id(0x55)) -> Snapshot {
        var summary = BackupSummary()
        summary.filesNew = 1
        summary.filesChanged = 2
        summary.filesUnmodified = 3
        summary.directories = 4
        summary.filesSkipped = 5
        summary.bytesProcessed = 1 << 40
        summary.bytesAdded = 7
        summary.bytesStored = 8
        summary.blobsAdded = 9
        summary.durationNanos = .max
        return Snapshot(
            timeNanos: 1_764_000_000_000_000_000, hostname: "höst", username: "ana", paths: ["/data/chat", "/home/ana"],
            tags: ["daily", ""], root: Fixture.id(0x33), parent: parent, summary: summary)
    }

    static func sampleConfig() -> RepositoryConfig {
        RepositoryConfig(
            repositoryID: Raw256((0..<32).map { UInt8(255 - $0) }), chunker: Fixture.smallChunker, compressionLevel: -7,
            packTargetSize: 16 << 20, createdNanos: -1)
    }

    let treeID: BlobID = Fixture.id(0x10)
    let snapshotID: SnapshotID = Fixture.id(0x11)

    // MARK: Round trips

    @Test func treeRoundTrips() throws {
        let tree = Tree(nodes: Self.sampleNodes())
        let decoded = try Tree(decoding: tree.encoded(), id: treeID)
        #expect(decoded == tree)
        #expect(decoded.encoded() == tree.encoded())
        #expect(try Tree(decoding: Tree(nodes: []).encoded(), id: treeID).nodes.isEmpty)
    }

    @Test func treeEncodingIsIndependentOfNodeOrder() {
        let nodes = Self.sampleNodes()
        let reference = Tree(nodes: nodes).encoded()
        #expect(Tree(nodes: nodes.reversed()).encoded() == reference)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10 { #expect(Tree(nodes: nodes.shuffled(using: &generator)).encoded() == reference) }
        let names = Tree(nodes: nodes.reversed()).nodes.map(\.name)
        #expect(names == names.sorted { $0.lexicographicallyPrecedes($1) }, "nodes are kept in name-byte order")
    }

    @Test func treeLooksUpNodesByName() {
        let tree = Tree(nodes: Self.sampleNodes())
        #expect(tree.node(named: Array("link".utf8))?.content == .symlink(target: Array("../a/b".utf8) + [0xff]))
        #expect(tree.node(named: Array("missing".utf8)) == nil)
        #expect(tree.node(named: [0xff, 0xfe, 0x41])?.displayName == "\u{FFFD}\u{FFFD}A")
    }

    @Test func indexFileRoundTrips() throws {
        let index = Self.sampleIndex()
        #expect(try IndexFile(decoding: index.encoded(), name: "x") == index)
        #expect(try IndexFile(decoding: IndexFile(packs: []).encoded(), name: "x").packs.isEmpty)
    }

    @Test func snapshotRoundTrips() throws {
        for snapshot in [Self.sampleSnapshot(), Self.sampleSnapshot(parent: nil)] {
            #expect(try Snapshot(decoding: snapshot.encoded(), id: snapshotID) == snapshot)
        }
        let empty = Snapshot(timeNanos: 0, hostname: "", username: "", paths: [], tags: [], root: Fixture.id(0), parent: nil, summary: BackupSummary())
        #expect(try Snapshot(decoding: empty.encoded(), id: snapshotID) == empty)
    }

    @Test func configRoundTrips() throws {
        let config = Self.sampleConfig()
        #expect(try RepositoryConfig(decoding: config.encoded()) == config)
        #expect(config.encoded().count == 1 + 4 + 32 + 4 * 5 + 8 + 1)
        #expect(config.formatVersion == RepositoryConfig.formatVersion)
    }

    // MARK: Forward compatibility of snapshots

    func snapshotBytes(summaryFields: [UInt64]) -> [UInt8] {
        let full = Self.sampleSnapshot(parent: nil).encoded()
        var w = ByteWriter()
        // Everything up to the summary: version … root ‖ parent flag 0; the summary is 11 bytes + …
        let summaryStart = full.count - Self.sampleSnapshot(parent: nil).summary.fields.reduce(1) { n, f in
            var v = ByteWriter()
            v.varint(f)
            return n + v.bytes.count
        }
        w.raw(full[..<summaryStart])
        w.varint(summaryFields.count)
        for f in summaryFields { w.varint(f) }
        return w.bytes
    }

    @Test func snapshotIgnoresUnknownTrailingSummaryFields() throws {
        let fields: [UInt64] = Array(1...12)
        let decoded = try Snapshot(decoding: snapshotBytes(summaryFields: fields), id: snapshotID)
        #expect(decoded.summary.fields == Array(1...10))
        #expect(decoded.hostname == "höst")
    }

    @Test func snapshotFillsMissingSummaryFieldsWithZero() throws {
        let decoded = try Snapshot(decoding: snapshotBytes(summaryFields: [4, 5, 6]), id: snapshotID)
        #expect(decoded.summary.fields == [4, 5, 6, 0, 0, 0, 0, 0, 0, 0])
        #expect(try Snapshot(decoding: snapshotBytes(summaryFields: []), id: snapshotID).summary == BackupSummary())
    }

    // MARK: Rejection

    @Test func truncatedEncodingsAreRejectedAtEveryLength() {
        let tree = Tree(nodes: Self.sampleNodes()).encoded()
        #expect(prefixesNotRejected(tree) { _ = try Tree(decoding: $0, id: treeID) }.isEmpty)
        let index = Self.sampleIndex().encoded()
        #expect(prefixesNotRejected(index) { _ = try IndexFile(decoding: $0, name: "x") }.isEmpty)
        let snapshot = Self.sampleSnapshot().encoded()
        #expect(prefixesNotRejected(snapshot) { _ = try Snapshot(decoding: $0, id: snapshotID) }.isEmpty)
        let config = Self.sampleConfig().encoded()
        #expect(prefixesNotRejected(config) { _ = try RepositoryConfig(decoding: $0) }.isEmpty)
    }

    @Test func trailingBytesAreRejected() {
        #expect(throws: MalformedObject.self) { try Tree(decoding: Tree(nodes: Self.sampleNodes()).encoded() + [0], id: treeID) }
        #expect(throws: MalformedObject.self) { try IndexFile(decoding: Self.sampleIndex().encoded() + [0], name: "x") }
        #expect(throws: MalformedObject.self) { try Snapshot(decoding: Self.sampleSnapshot().encoded() + [0], id: snapshotID) }
        #expect(throws: MalformedObject.self) { try RepositoryConfig(decoding: Self.sampleConfig().encoded() + [0]) }
    }

    @Test func unknownVersionsAreRejected() {
        func bumped(_ b: [UInt8]) -> [UInt8] { [2] + b.dropFirst() }
        #expect(throws: MalformedObject.self) { try Tree(decoding: bumped(Tree(nodes: Self.sampleNodes()).encoded()), id: treeID) }
        #expect(throws: MalformedObject.self) { try IndexFile(decoding: bumped(Self.sampleIndex().encoded()), name: "x") }
        #expect(throws: MalformedObject.self) { try Snapshot(decoding: bumped(Self.sampleSnapshot().encoded()), id: snapshotID) }
        #expect(throws: MalformedObject.self) { try RepositoryConfig(decoding: bumped(Self.sampleConfig().encoded())) }
    }

    @Test func treesWithInvalidNamesAreRejected() {
        // NUL ends a name for the kernel: `..\0` would be `..`, `x\0y` would be `x`.
        let names: [[UInt8]] = [[], Array(".".utf8), Array("..".utf8), Array("a/b".utf8), Array("/".utf8), [0], Array("..".utf8) + [0], [0x78, 0, 0x79], Array("x".utf8) + [0]]
        for name in names {
            let tree = Tree(nodes: [TreeNode(name: name, metadata: Self.meta, content: .symlink(target: [1]))])
            #expect(throws: MalformedObject.self, "name \(name)") { try Tree(decoding: tree.encoded(), id: treeID) }
        }
    }

    @Test func invalidNamesAreNamedInTheError() {
        let tree = Tree(nodes: [TreeNode(name: Array("x".utf8) + [0, 0x79], metadata: Self.meta, content: .symlink(target: [1]))])
        #expect {
            try Tree(decoding: tree.encoded(), id: treeID)
        } throws: { error in
            "\(error)".contains(treeID.short) && "\(error)".contains(#""x\0y""#) && "\(error)".contains("NUL")
        }
    }

    @Test func symlinkTargetsWithNULAreRejected() {
        let tree = Tree(nodes: [TreeNode(name: Array("link".utf8), metadata: Self.meta, content: .symlink(target: Array("/etc".utf8) + [0] + Array("passwd".utf8)))])
        #expect(throws: MalformedObject.self) { try Tree(decoding: tree.encoded(), id: treeID) }
    }

    @Test func namesThatAreNotUTF8StillDecode() throws {
        let name: [UInt8] = [0xff, 0xfe, 0x0a, 0x41]  // not UTF-8, with a newline
        let tree = Tree(nodes: [TreeNode(name: name, metadata: Self.meta, content: .symlink(target: [0xff]))])
        #expect(try Tree(decoding: tree.encoded(), id: treeID).nodes.map(\.name) == [name])
    }

    @Test func treesWithRepeatedNamesAreRejected() {
        let node = TreeNode(name: Array("twice".utf8), metadata: Self.meta, content: .symlink(target: [1]))
        #expect(throws: MalformedObject.self) { try Tree(decoding: Tree(nodes: [node, node]).encoded(), id: treeID) }
    }

    @Test func treesWithUnsortedNamesAreRejected() throws {
        // Swap the two nodes of an encoded two-node tree, keeping each node's bytes intact.
        let a = Tree(nodes: [TreeNode(name: Array("a".utf8), metadata: Self.meta, content: .directory(subtree: Fixture.id(1)))]).encoded()
        let b = Tree(nodes: [TreeNode(name: Array("b".utf8), metadata: Self.meta, content: .directory(subtree: Fixture.id(2)))]).encoded()
        let swapped: [UInt8] = [1, 2] + b.dropFirst(2) + a.dropFirst(2)
        #expect(throws: MalformedObject.self) { try Tree(decoding: swapped, id: treeID) }
        let sorted: [UInt8] = [1, 2] + a.dropFirst(2) + b.dropFirst(2)
        #expect(try Tree(decoding: sorted, id: treeID).nodes.count == 2)
    }

    @Test func unknownNodeKindsAndBlobTypesAreRejected() {
        var tree = Tree(nodes: [TreeNode(name: Array("a".utf8), metadata: Self.meta, content: .symlink(target: [1]))]).encoded()
        tree[2] = 4
        #expect(throws: MalformedObject.self) { try Tree(decoding: tree, id: treeID) }
        var index = Self.sampleIndex().encoded()
        index[1 + 1 + 32 + 8 + 1] = 2  // the first blob's type byte
        #expect(throws: MalformedObject.self) { try IndexFile(decoding: index, name: "x") }
    }

    @Test func hugeCountsAreRejectedWithoutAllocating() {
        var w = ByteWriter()
        w.u8(1)
        w.varint(UInt64.max >> 1)
        #expect(throws: MalformedObject.self) { try Tree(decoding: w.bytes, id: treeID) }
        #expect(throws: MalformedObject.self) { try IndexFile(decoding: w.bytes, name: "x") }
        #expect(throws: MalformedObject.self) { try Tree(decoding: [1] + [UInt8](repeating: 0xff, count: 11), id: treeID) }
    }

    @Test func configWithInvalidChunkerSizesIsRejected() {
        func config(min: UInt32, avg: UInt32, max: UInt32) -> [UInt8] {
            var bytes = Self.sampleConfig().encoded()
            for (offset, value) in [(37, min), (41, avg), (45, max)] {
                for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
            }
            return bytes
        }
        #expect(throws: Never.self) { try RepositoryConfig(decoding: config(min: 1, avg: 2, max: 3)) }
        for (min, avg, max) in [(0, 64, 128), (64, 64, 128), (16, 48, 128), (16, 64, 64), (16, 64, 32), (1 << 20, 1 << 22, (64 << 20) + 1)] {
            #expect(throws: MalformedObject.self, "\(min)/\(avg)/\(max)") {
                try RepositoryConfig(decoding: config(min: UInt32(min), avg: UInt32(avg), max: UInt32(max)))
            }
        }
    }

    @Test func mutatedEncodingsNeverCrashTheDecoders() {
        let decoders: [(String, [UInt8], ([UInt8]) throws -> Void)] = [
            ("tree", Tree(nodes: Self.sampleNodes()).encoded(), { _ = try Tree(decoding: $0, id: treeID) }),
            ("index", Self.sampleIndex().encoded(), { _ = try IndexFile(decoding: $0, name: "x") }),
            ("snapshot", Self.sampleSnapshot().encoded(), { _ = try Snapshot(decoding: $0, id: snapshotID) }),
            ("config", Self.sampleConfig().encoded(), { _ = try RepositoryConfig(decoding: $0) }),
        ]
        for (name, encoded, decode) in decoders {
            var problems: [String] = []
            for offset in encoded.indices {
                for mask: UInt8 in [0x01, 0x80, 0xff] {
                    var mutated = encoded
                    mutated[offset] ^= mask
                    if let p = unexpectedError(mutated, decode) { problems.append("offset \(offset): \(p)") }
                }
            }
            #expect(problems.isEmpty, "\(name): \(problems.prefix(3))")
        }
    }

    @Test func randomGarbageIsRejected() {
        let random = Fixture.random(4)
        var accepted: [String] = []
        for i in 0..<2_000 {
            var bytes = random.bytes(1 + i % 300)
            if i % 2 == 0 { bytes[0] = 1 }  // get past the version byte half of the time
            let garbage = bytes
            let decoders: [(String, () throws -> Void)] = [
                ("tree", { _ = try Tree(decoding: garbage, id: treeID) }),
                ("index", { _ = try IndexFile(decoding: garbage, name: "x") }),
                ("snapshot", { _ = try Snapshot(decoding: garbage, id: snapshotID) }),
                ("config", { _ = try RepositoryConfig(decoding: garbage) }),
            ]
            for (name, decode) in decoders {
                do {
                    try decode()
                    accepted.append("\(name) accepted \(garbage.count) bytes")
                } catch is MalformedObject {
                } catch {
                    accepted.append("\(name) threw \(type(of: error))")
                }
            }
        }
        #expect(accepted.isEmpty, "\(accepted.prefix(5))")
    }
}

@Suite struct ByteCodingTests {
    @Test func varintsRoundTripAtTheEdges() throws {
        let values: [UInt64] = [0, 1, 127, 128, 255, 300, 16_383, 16_384, UInt64(UInt32.max), UInt64.max >> 1, UInt64.max]
        var w = ByteWriter()
        for v in values { w.varint(v) }
        var r = ByteReader(w.bytes, what: "test")
        for v in values { #expect(try r.varint() == v) }
        #expect(r.isAtEnd)
        var one = ByteWriter()
        one.varint(127)
        #expect(one.bytes == [0x7f])
        var two = ByteWriter()
        two.varint(128)
        #expect(two.bytes == [0x80, 0x01])
    }

    @Test func fixedWidthIntegersAreLittleEndian() throws {
        var w = ByteWriter()
        w.u32(0x0102_0304)
        w.u64(0x0102_0304_0506_0708)
        w.i64(-2)
        #expect(w.bytes == [4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1] + [0xfe] + [UInt8](repeating: 0xff, count: 7))
        var r = ByteReader(w.bytes, what: "test")
        #expect(try r.u32() == 0x0102_0304)
        #expect(try r.u64() == 0x0102_0304_0506_0708)
        #expect(try r.i64() == -2)
        try r.expectEnd()
    }

    @Test func readerRejectsOverlongVarintsOverrunsAndBadUTF8() {
        var r = ByteReader([UInt8](repeating: 0x80, count: 10) + [0x01], what: "test")
        #expect(throws: MalformedObject.self) { try r.varint() }
        var short = ByteReader([1, 2, 3], what: "test")
        #expect(throws: MalformedObject.self) { try short.u32() }
        #expect(short.remaining == 3, "a failed read consumes nothing")
        var w = ByteWriter()
        w.lengthPrefixed([0xff, 0xfe])
        var bad = ByteReader(w.bytes, what: "test")
        #expect(throws: MalformedObject.self) { try bad.string() }
        var big = ByteReader([5, 1, 2], what: "test")
        #expect(throws: MalformedObject.self) { try big.lengthPrefixed() }
        #expect(throws: MalformedObject.self) { try ByteReader([1], what: "test").expectEnd() }
    }

    @Test func malformedObjectNamesWhatWasWrong() {
        #expect(MalformedObject("tree 1234: truncated").description == "malformed tree 1234: truncated")
    }
}

@Suite struct IdentifierTests {
    @Test func hexRoundTripsAndRejectsBadInput() {
        let bytes = (0..<32).map { UInt8($0 * 7 & 0xff) }
        let hex = Hex.encode(bytes)
        #expect(hex.count == 64 && hex == hex.lowercased())
        #expect(Hex.decode(hex) == bytes)
        // Names and ids are lower-case hex only (FORMAT.md §1): one id, one name.
        #expect(Hex.decode(hex.uppercased()) == nil)
        #expect(Hex.decode("0A") == nil && Hex.decode("0a") == [10])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("") == [])
    }

    @Test func identifiersRoundTripThroughBytesAndHex() throws {
        let bytes = (0..<32).map { UInt8(255 - $0) }
        let id = BlobID(bytes: bytes)
        #expect(id.bytes == bytes)
        #expect(BlobID(hex: id.hex) == id)
        #expect(id.short == String(id.hex.prefix(8)))
        #expect(id.description == id.hex)
        #expect(BlobID(hex: String(id.hex.dropLast(2))) == nil)
        #expect(BlobID(hex: id.hex + "00") == nil)
        #expect(Raw256(bytes).bytes == bytes)
        #expect(Raw256.zero.bytes == [UInt8](repeating: 0, count: 32))
    }

    @Test func orderIsByteWise() {
        var low = [UInt8](repeating: 0, count: 32), high = low
        low[0] = 1
        high[1] = 0xff  // larger as a little-endian word, smaller as bytes
        #expect(PackID(bytes: high) < PackID(bytes: low))
        let ids = (0..<50).map { _ in SnapshotID(bytes: SystemRandom().bytes(32)) }
        #expect(ids.sorted().map(\.hex) == ids.map(\.hex).sorted())
    }
}

@Suite struct MasterIndexTests {
    @Test func indexesBlobsByHandleAndKeepsTheFirstLocation() {
        let data = BlobHandle(id: Fixture.id(1), type: .data)
        let tree = BlobHandle(id: Fixture.id(1), type: .tree)
        var index = MasterIndex()
        #expect(!index.contains(data) && index.blobCount == 0)
        index.add(IndexFile(packs: [IndexFile.Pack(id: Fixture.id(0xa), length: 500, blobs: [
            PackedBlob(handle: data, offset: 0, length: 10, rawLength: 5),
        ])]))
        index.add(IndexFile.Pack(id: Fixture.id(0xb), length: 700, blobs: [
            PackedBlob(handle: data, offset: 40, length: 10, rawLength: 5),
            PackedBlob(handle: tree, offset: 50, length: 20, rawLength: 9),
        ]))
        #expect(index.lookup(data) == IndexEntry(pack: Fixture.id(0xa), offset: 0, length: 10, rawLength: 5))
        #expect(index.lookup(tree) == IndexEntry(pack: Fixture.id(0xb), offset: 50, length: 20, rawLength: 9))
        #expect(index.lookup(BlobHandle(id: Fixture.id(2), type: .data)) == nil)
        #expect(index.blobCount == 2)
        #expect(index.packs == [Fixture.id(0xa): 500, Fixture.id(0xb): 700])
    }
}
