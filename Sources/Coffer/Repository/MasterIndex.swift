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
///
/// A blob can be named by several index entries (an interrupted prune or repair leaves the old
/// and the new copy, two backups may store the same new blob). Every copy is kept: `lookup`
/// gives the first one, `locations` all of them, so a reader whose first copy is gone or
/// damaged can fall back on another, and `removePacks` drops the packs known to be missing so
/// that nothing (a backup's deduplication above all) relies on them.
public struct MasterIndex: Sendable {
    /// 16 bytes: the pack as a number into `packIDs`.
    struct CompactEntry: Sendable, Equatable {
        let pack: UInt32
        let offset: UInt32
        let length: UInt32
        let rawLength: UInt32
    }

    private var data: [BlobID: CompactEntry] = [:]
    private var trees: [BlobID: CompactEntry] = [:]
    /// Further copies of blobs that are in more than one pack (rare, so kept apart).
    private var copies: [BlobHandle: [CompactEntry]] = [:]
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
            let first: CompactEntry?
            switch b.handle.type {
            case .data:
                first = data[b.handle.id]
                if first == nil { data[b.handle.id] = entry }
            case .tree:
                first = trees[b.handle.id]
                if first == nil { trees[b.handle.id] = entry }
            }
            // The same pack named twice (two index objects after an interrupted prune) is one copy.
            if let first, first != entry, copies[b.handle]?.contains(entry) != true {
                copies[b.handle, default: []].append(entry)
            }
        }
    }

    /// Forgets the given packs and every blob copy in them (packs known to be missing or
    /// unusable). A blob with a copy elsewhere resolves to that copy from now on.
    public mutating func removePacks(_ ids: some Sequence<PackID>) {
        let numbers = Set(ids.compactMap { packNumbers[$0] })
        guard !numbers.isEmpty else { return }
        for n in numbers { packs[packIDs[Int(n)]] = nil }
        func surviving(_ handle: BlobHandle) -> CompactEntry? {
            let left = (copies[handle] ?? []).filter { !numbers.contains($0.pack) }
            copies[handle] = left.count > 1 ? Array(left.dropFirst()) : nil
            return left.first
        }
        for (id, entry) in data where numbers.contains(entry.pack) { data[id] = surviving(BlobHandle(id: id, type: .data)) }
        for (id, entry) in trees where numbers.contains(entry.pack) { trees[id] = surviving(BlobHandle(id: id, type: .tree)) }
        for (handle, entries) in copies {
            let left = entries.filter { !numbers.contains($0.pack) }
            copies[handle] = left.isEmpty ? nil : left
        }
    }

    private func compact(_ handle: BlobHandle) -> CompactEntry? {
        handle.type == .data ? data[handle.id] : trees[handle.id]
    }

    private func expand(_ e: CompactEntry) -> IndexEntry {
        IndexEntry(pack: packIDs[Int(e.pack)], offset: e.offset, length: e.length, rawLength: e.rawLength)
    }

    public func lookup(_ handle: BlobHandle) -> IndexEntry? { compact(handle).map(expand) }

    /// Every indexed copy of a blob, the one `lookup` gives first.
    public func locations(_ handle: BlobHandle) -> [IndexEntry] {
        guard let first = compact(handle) else { return [] }
        return [expand(first)] + (copies[handle] ?? []).map(expand)
    }

    public func contains(_ handle: BlobHandle) -> Bool { compact(handle) != nil }
    public var blobCount: Int { data.count + trees.count }
    var dataBlobCount: Int { data.count }

    /// Sealed bytes of the indexed blobs not in `used` (one copy of each blob).
    func sealedBytes(excluding used: Set<BlobHandle>) -> UInt64 {
        func sum(_ map: [BlobID: CompactEntry], _ type: BlobType) -> UInt64 {
            map.reduce(0) { $0 + (used.contains(BlobHandle(id: $1.key, type: type)) ? 0 : UInt64($1.value.length)) }
        }
        return sum(data, .data) + sum(trees, .tree)
    }
}
