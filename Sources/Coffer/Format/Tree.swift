/// File metadata kept for every node (FORMAT.md §9).
public struct NodeMetadata: Sendable, Equatable {
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Nanoseconds since the Unix epoch.
    public var mtimeNanos: Int64
    public var ctimeNanos: Int64
    public var device: UInt64
    public var inode: UInt64
    /// Hard-link count; >1 lets restore recreate the links.
    public var links: UInt32

    public init(mode: UInt32, uid: UInt32, gid: UInt32, mtimeNanos: Int64, ctimeNanos: Int64, device: UInt64, inode: UInt64, links: UInt32) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtimeNanos = mtimeNanos
        self.ctimeNanos = ctimeNanos
        self.device = device
        self.inode = inode
        self.links = links
    }
}

/// One entry of a directory.
public struct TreeNode: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case file(size: UInt64, chunks: [BlobID])
        case directory(subtree: BlobID)
        case symlink(target: [UInt8])
    }

    /// The name's raw bytes: Linux names need not be UTF-8.
    public var name: [UInt8]
    public var metadata: NodeMetadata
    public var content: Content

    public init(name: [UInt8], metadata: NodeMetadata, content: Content) {
        self.name = name
        self.metadata = metadata
        self.content = content
    }

    /// For display only; invalid UTF-8 is shown with replacement characters.
    public var displayName: String { String(decoding: name, as: UTF8.self) }
}

/// A directory listing, stored as a tree blob. The encoding is deterministic (nodes sorted by
/// name bytes), so an unchanged directory has an unchanged id and is stored once.
public struct Tree: Sendable, Equatable {
    public static let version: UInt8 = 1
    public private(set) var nodes: [TreeNode]

    public init(nodes: [TreeNode]) {
        self.nodes = nodes.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    public func node(named name: [UInt8]) -> TreeNode? { nodes.first { $0.name == name } }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + nodes.count * 96)
        w.u8(Self.version)
        w.varint(nodes.count)
        for n in nodes {
            switch n.content {
            case .file: w.u8(1)
            case .directory: w.u8(2)
            case .symlink: w.u8(3)
            }
            w.lengthPrefixed(n.name)
            let m = n.metadata
            w.u32(m.mode)
            w.u32(m.uid)
            w.u32(m.gid)
            w.i64(m.mtimeNanos)
            w.i64(m.ctimeNanos)
            w.u64(m.device)
            w.u64(m.inode)
            w.u32(m.links)
            switch n.content {
            case .file(let size, let chunks):
                w.u64(size)
                w.varint(chunks.count)
                for c in chunks { w.id(c) }
            case .directory(let subtree):
                w.id(subtree)
            case .symlink(let target):
                w.lengthPrefixed(target)
            }
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8], id: BlobID) throws {
        var r = ByteReader(bytes, what: "tree \(id.short)")
        guard try r.u8() == Self.version else { throw MalformedObject("tree \(id.short): unknown version") }
        let count = try r.count(atLeastBytesEach: 50)
        var nodes: [TreeNode] = []
        nodes.reserveCapacity(count)
        for _ in 0..<count {
            let kind = try r.u8()
            let name = try r.lengthPrefixed()
            guard !name.isEmpty, !name.contains(UInt8(ascii: "/")), name != [46], name != [46, 46] else {
                throw MalformedObject("tree \(id.short): invalid name")
            }
            let meta = NodeMetadata(
                mode: try r.u32(), uid: try r.u32(), gid: try r.u32(), mtimeNanos: try r.i64(), ctimeNanos: try r.i64(),
                device: try r.u64(), inode: try r.u64(), links: try r.u32())
            let content: TreeNode.Content
            switch kind {
            case 1:
                let size = try r.u64()
                let n = try r.count(atLeastBytesEach: 32)
                var chunks: [BlobID] = []
                chunks.reserveCapacity(n)
                for _ in 0..<n { chunks.append(try r.id()) }
                content = .file(size: size, chunks: chunks)
            case 2: content = .directory(subtree: try r.id())
            case 3: content = .symlink(target: try r.lengthPrefixed())
            default: throw MalformedObject("tree \(id.short): unknown node kind \(kind)")
            }
            if let last = nodes.last, !last.name.lexicographicallyPrecedes(name) {
                throw MalformedObject("tree \(id.short): names not sorted or repeated")
            }
            nodes.append(TreeNode(name: name, metadata: meta, content: content))
        }
        try r.expectEnd()
        self.nodes = nodes
    }
}
