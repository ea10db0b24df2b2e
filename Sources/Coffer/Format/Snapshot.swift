/// What a backup did; stored in its snapshot.
public struct BackupSummary: Sendable, Equatable, Codable {
    public var filesNew: UInt64 = 0
    public var filesChanged: UInt64 = 0
    public var filesUnmodified: UInt64 = 0
    public var directories: UInt64 = 0
    /// Files that could not be read and were left out.
    public var filesSkipped: UInt64 = 0
    public var bytesProcessed: UInt64 = 0
    /// Plaintext bytes of new blobs.
    public var bytesAdded: UInt64 = 0
    /// Bytes written to storage (packs, index, snapshot).
    public var bytesStored: UInt64 = 0
    public var blobsAdded: UInt64 = 0
    public var durationNanos: UInt64 = 0

    public init() {}

    var fields: [UInt64] {
        [filesNew, filesChanged, filesUnmodified, directories, filesSkipped, bytesProcessed, bytesAdded, bytesStored, blobsAdded, durationNanos]
    }
    init(fields f: [UInt64]) {
        (filesNew, filesChanged, filesUnmodified, directories, filesSkipped) = (f[0], f[1], f[2], f[3], f[4])
        (bytesProcessed, bytesAdded, bytesStored, blobsAdded, durationNanos) = (f[5], f[6], f[7], f[8], f[9])
    }
}

/// Payload of a `snapshots/<id>` object (FORMAT.md §10).
public struct Snapshot: Sendable, Equatable {
    public static let version: UInt8 = 1

    /// Nanoseconds since the Unix epoch.
    public var timeNanos: Int64
    public var hostname: String
    public var username: String
    /// The absolute source paths, in the order given.
    public var paths: [String]
    public var tags: [String]
    /// Holds one directory node per source path, named by the path's last component.
    public var root: BlobID
    public var parent: SnapshotID?
    public var summary: BackupSummary

    public init(timeNanos: Int64, hostname: String, username: String, paths: [String], tags: [String], root: BlobID, parent: SnapshotID?, summary: BackupSummary) {
        self.timeNanos = timeNanos
        self.hostname = hostname
        self.username = username
        self.paths = paths
        self.tags = tags
        self.root = root
        self.parent = parent
        self.summary = summary
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.i64(timeNanos)
        w.string(hostname)
        w.string(username)
        w.varint(paths.count)
        for p in paths { w.string(p) }
        w.varint(tags.count)
        for t in tags { w.string(t) }
        w.id(root)
        if let parent {
            w.u8(1)
            w.id(parent)
        } else {
            w.u8(0)
        }
        let fields = summary.fields
        w.varint(fields.count)
        for f in fields { w.varint(f) }
        return w.bytes
    }

    public init(decoding bytes: [UInt8], id: SnapshotID) throws {
        var r = ByteReader(bytes, what: "snapshot \(id.short)")
        guard try r.u8() == Self.version else { throw MalformedObject("snapshot \(id.short): unknown version") }
        timeNanos = try r.i64()
        hostname = try r.string()
        username = try r.string()
        paths = try (0..<r.count()).map { _ in try r.string() }
        tags = try (0..<r.count()).map { _ in try r.string() }
        root = try r.id()
        switch try r.u8() {
        case 0: parent = nil
        case 1: parent = try r.id()
        default: throw MalformedObject("snapshot \(id.short): bad parent flag")
        }
        // Later versions may append summary fields; unknown trailing ones are ignored.
        let n = try r.count()
        var fields = try (0..<n).map { _ in try r.varint() }
        fields += repeatElement(0, count: max(0, 10 - fields.count))
        summary = BackupSummary(fields: fields)
        try r.expectEnd()
    }
}
