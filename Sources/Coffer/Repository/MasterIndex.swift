/// Where one blob lives.
public struct IndexEntry: Sendable, Equatable {
    public let pack: PackID
    public let offset: UInt32
    public let length: UInt32
    public let rawLength: UInt32
}

/// The in-memory union of all index files: blob → location. Kept compact for histories of
/// millions of chunks: a 32-byte id key and a 16-byte entry that names its pack by number,
/// about 64 bytes per blob with the hash table's slack (10 million chunks ≈ 0.65 GiB).
public struct MasterIndex: Sendable {
    /// 16 bytes: the pack as a number into `packIDs`.
    struct CompactEntry: Sendable {
        let pack: UInt32
        let offset: UInt32
        let length: UInt32
        let rawLength: UInt32
    }

    private var data: [BlobID: CompactEntry] = [:]
    private var trees: [BlobID: CompactEntry] = [:]
    private var packIDs: [PackID] = []
    private var packNumbers: [PackID: UInt32] = [:]
    /// Pack → stored length.
    public private(set) var packs: [PackID: UInt64] = [:]

    public init() {}

    public mutating func add(_ file: IndexFile) {
        for p in file.packs { add(p) }
    }

    public mutating func add(_ pack: IndexFile.Pack) {
        packs[pack.id] = pack.length
        let number: UInt32
        if let known = packNumbers[pack.id] {
            number = known
        } else {
            number = UInt32(packIDs.count)
            packIDs.append(pack.id)
            packNumbers[pack.id] = number
        }
        for b in pack.blobs {
            let entry = CompactEntry(pack: number, offset: b.offset, length: b.length, rawLength: b.rawLength)
            switch b.handle.type {
            case .data: if data[b.handle.id] == nil { data[b.handle.id] = entry }
            case .tree: if trees[b.handle.id] == nil { trees[b.handle.id] = entry }
            }
        }
    }

    private func compact(_ handle: BlobHandle) -> CompactEntry? {
        handle.type == .data ? data[handle.id] : trees[handle.id]
    }

    public func lookup(_ handle: BlobHandle) -> IndexEntry? {
        compact(handle).map { IndexEntry(pack: packIDs[Int($0.pack)], offset: $0.offset, length: $0.length, rawLength: $0.rawLength) }
    }
    public func contains(_ handle: BlobHandle) -> Bool { compact(handle) != nil }
    public var blobCount: Int { data.count + trees.count }

    /// Sealed bytes of the indexed blobs not in `used`.
    func sealedBytes(excluding used: Set<BlobHandle>) -> UInt64 {
        func sum(_ map: [BlobID: CompactEntry], _ type: BlobType) -> UInt64 {
            map.reduce(0) { $0 + (used.contains(BlobHandle(id: $1.key, type: type)) ? 0 : UInt64($1.value.length)) }
        }
        return sum(data, .data) + sum(trees, .tree)
    }
}
