/// Payload of an `index/<id>` object (FORMAT.md §8): which blobs each pack holds and where.
public struct IndexFile: Sendable, Equatable {
    public static let version: UInt8 = 1

    public struct Pack: Sendable, Equatable {
        public let id: PackID
        /// Stored length of the pack, padding included.
        public let length: UInt64
        public let blobs: [PackedBlob]
        public init(id: PackID, length: UInt64, blobs: [PackedBlob]) {
            self.id = id
            self.length = length
            self.blobs = blobs
        }
    }

    public var packs: [Pack]
    public init(packs: [Pack]) { self.packs = packs }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + packs.reduce(0) { $0 + 48 + $1.blobs.count * 45 })
        w.u8(Self.version)
        w.varint(packs.count)
        for p in packs {
            w.id(p.id)
            w.u64(p.length)
            w.varint(p.blobs.count)
            for b in p.blobs {
                w.u8(b.handle.type.rawValue)
                w.id(b.handle.id)
                w.u32(b.offset)
                w.u32(b.length)
                w.u32(b.rawLength)
            }
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8], name: String) throws {
        var r = ByteReader(bytes, what: "index \(name)")
        guard try r.u8() == Self.version else { throw MalformedObject("index \(name): unknown version") }
        let count = try r.count(atLeastBytesEach: 41)
        var packs: [Pack] = []
        packs.reserveCapacity(count)
        for _ in 0..<count {
            let id: PackID = try r.id()
            let length = try r.u64()
            let n = try r.count(atLeastBytesEach: 45)
            var blobs: [PackedBlob] = []
            blobs.reserveCapacity(n)
            for _ in 0..<n {
                guard let type = BlobType(rawValue: try r.u8()) else { throw MalformedObject("index \(name): unknown blob type") }
                let blobID: BlobID = try r.id()
                let offset = try r.u32()
                let length = try r.u32()
                let raw = try r.u32()
                blobs.append(PackedBlob(handle: BlobHandle(id: blobID, type: type), offset: offset, length: length, rawLength: raw))
            }
            packs.append(Pack(id: id, length: length, blobs: blobs))
        }
        try r.expectEnd()
        self.packs = packs
    }
}
