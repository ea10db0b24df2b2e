/// Where one blob lives.
public struct IndexEntry: Sendable, Equatable {
    public let pack: PackID
    public let offset: UInt32
    public let length: UInt32
    public let rawLength: UInt32
}

/// The in-memory union of all index files: blob → location.
public struct MasterIndex: Sendable {
    private var entries: [BlobHandle: IndexEntry] = [:]
    public private(set) var packs: [PackID: UInt64] = [:]

    public init() {}

    public mutating func add(_ file: IndexFile) {
        for p in file.packs { add(p) }
    }

    public mutating func add(_ pack: IndexFile.Pack) {
        packs[pack.id] = pack.length
        for b in pack.blobs where entries[b.handle] == nil {
            entries[b.handle] = IndexEntry(pack: pack.id, offset: b.offset, length: b.length, rawLength: b.rawLength)
        }
    }

    public func lookup(_ handle: BlobHandle) -> IndexEntry? { entries[handle] }
    public func contains(_ handle: BlobHandle) -> Bool { entries[handle] != nil }
    public var blobCount: Int { entries.count }

    /// Sealed bytes of the indexed blobs not in `used`.
    func sealedBytes(excluding used: Set<BlobHandle>) -> UInt64 {
        entries.reduce(0) { $0 + (used.contains($1.key) ? 0 : UInt64($1.value.length)) }
    }
}
