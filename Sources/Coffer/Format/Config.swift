/// Chunk size bounds for FastCDC, in bytes.
public struct ChunkerParameters: Sendable, Equatable {
    public var minSize: Int
    public var averageSize: Int
    public var maxSize: Int

    public init(minSize: Int, averageSize: Int, maxSize: Int) {
        precondition(minSize > 0 && minSize < averageSize && averageSize < maxSize && averageSize.nonzeroBitCount == 1)
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
    }

    /// 256 KiB / 1 MiB / 4 MiB.
    public static let standard = ChunkerParameters(minSize: 256 << 10, averageSize: 1 << 20, maxSize: 4 << 20)
}

/// Payload of the sealed `config` object (FORMAT.md §6.1).
public struct RepositoryConfig: Sendable, Equatable {
    public static let version: UInt8 = 1
    /// The repository format this build writes and reads.
    public static let formatVersion: UInt32 = 1

    public var formatVersion: UInt32
    public var repositoryID: Raw256
    public var chunker: ChunkerParameters
    public var compressionLevel: Int32
    public var packTargetSize: UInt32
    public var createdNanos: Int64
    /// Cut SQLite databases at their page boundaries instead of with FastCDC (FORMAT.md §4.3).
    public var databasePageChunking: Bool

    public init(formatVersion: UInt32 = Self.formatVersion, repositoryID: Raw256, chunker: ChunkerParameters, compressionLevel: Int32, packTargetSize: UInt32, createdNanos: Int64, databasePageChunking: Bool = true) {
        self.databasePageChunking = databasePageChunking
        self.formatVersion = formatVersion
        self.repositoryID = repositoryID
        self.chunker = chunker
        self.compressionLevel = compressionLevel
        self.packTargetSize = packTargetSize
        self.createdNanos = createdNanos
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.u32(formatVersion)
        w.raw(repositoryID.bytes)
        w.u32(UInt32(chunker.minSize))
        w.u32(UInt32(chunker.averageSize))
        w.u32(UInt32(chunker.maxSize))
        w.u32(UInt32(bitPattern: compressionLevel))
        w.u32(packTargetSize)
        w.i64(createdNanos)
        w.u8(databasePageChunking ? 1 : 0)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes, what: "config")
        guard try r.u8() == Self.version else { throw MalformedObject("config: unknown version") }
        formatVersion = try r.u32()
        repositoryID = Raw256(try r.raw(32))
        let minSize = Int(try r.u32()), avg = Int(try r.u32()), maxSize = Int(try r.u32())
        guard minSize > 0, minSize < avg, avg < maxSize, avg.nonzeroBitCount == 1, maxSize <= 64 << 20 else {
            throw MalformedObject("config: invalid chunker sizes \(minSize)/\(avg)/\(maxSize)")
        }
        chunker = ChunkerParameters(minSize: minSize, averageSize: avg, maxSize: maxSize)
        compressionLevel = Int32(bitPattern: try r.u32())
        packTargetSize = try r.u32()
        createdNanos = try r.i64()
        switch try r.u8() {
        case 0: databasePageChunking = false
        case 1: databasePageChunking = true
        case let v: throw MalformedObject("config: unknown database chunking \(v)")
        }
        try r.expectEnd()
    }
}
