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
    /// For a file stored in long form (node kind 4): the chunk-list blobs that hold its chunk
    /// ids (ChunkList). A decoded tree leaves such a file's `chunks` empty until
    /// `Repository.loadTree` reads the lists; encoding writes the lists, not the chunks.
    public var chunkLists: [BlobID]?

    public init(name: [UInt8], metadata: NodeMetadata, content: Content, chunkLists: [BlobID]? = nil) {
        self.name = name
        self.metadata = metadata
        self.content = content
        self.chunkLists = chunkLists
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

    /// Why `name` cannot be a node's name, or nil if it can (FORMAT.md §9): it must be one file
    /// name, exactly as the kernel will read it. NUL would end it early (`..\0` is `..`, and
    /// `x\0y` is `x`, the name of another node), `/` would make it a path, and `.` or `..` name
    /// another folder. Any other bytes are fine: Linux names need not be UTF-8.
    public static func nameProblem(_ name: [UInt8]) -> String? {
        if name.isEmpty { return "is empty" }
        if name == [0x2E] || name == [0x2E, 0x2E] { return "is . or .." }
        if name.contains(0x2F) { return "holds a /" }
        if name.contains(0) { return "holds a NUL byte" }
        return nil
    }

    /// A name for messages, quoted with Swift escapes (`"x\0y"`); invalid UTF-8 shows as U+FFFD.
    public static func quoted(_ name: [UInt8]) -> String { String(decoding: name, as: UTF8.self).debugDescription }

    /// Fills in a node's content (a long file's chunks, once read); its name and place stay.
    mutating func setContent(of index: Int, _ content: TreeNode.Content) { nodes[index].content = content }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + nodes.count * 96)
        w.u8(Self.version)
        w.varint(nodes.count)
        for n in nodes {
            switch n.content {
            case .file: w.u8(n.chunkLists == nil ? 1 : 4)
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
                let ids = n.chunkLists ?? chunks
                w.varint(ids.count)
                for c in ids { w.id(c) }
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
            if let problem = Self.nameProblem(name) {
                throw MalformedObject("tree \(id.short): the name \(Self.quoted(name)) \(problem)")
            }
            let meta = NodeMetadata(
                mode: try r.u32(), uid: try r.u32(), gid: try r.u32(), mtimeNanos: try r.i64(), ctimeNanos: try r.i64(),
                device: try r.u64(), inode: try r.u64(), links: try r.u32())
            let content: TreeNode.Content
            var lists: [BlobID]? = nil
            switch kind {
            case 1, 4:
                let size = try r.u64()
                let n = try r.count(atLeastBytesEach: 32)
                var ids: [BlobID] = []
                ids.reserveCapacity(n)
                for _ in 0..<n { ids.append(try r.id()) }
                if kind == 4 {
                    guard !ids.isEmpty else { throw MalformedObject("tree \(id.short): a long file without chunk lists") }
                    lists = ids
                    ids = []
                }
                content = .file(size: size, chunks: ids)
            case 2: content = .directory(subtree: try r.id())
            case 3:
                let target = try r.lengthPrefixed()
                // The kernel would cut the target at the NUL: not what was backed up.
                guard !target.contains(0) else { throw MalformedObject("tree \(id.short): the symlink \(Self.quoted(name)) has a target holding a NUL byte") }
                content = .symlink(target: target)
            default: throw MalformedObject("tree \(id.short): unknown node kind \(kind)")
            }
            if let last = nodes.last, !last.name.lexicographicallyPrecedes(name) {
                throw MalformedObject(last.name == name ? "tree \(id.short): the name \(Self.quoted(name)) appears twice" : "tree \(id.short): names not sorted")
            }
            nodes.append(TreeNode(name: name, metadata: meta, content: content, chunkLists: lists))
        }
        try r.expectEnd()
        self.nodes = nodes
    }
}

/// The chunk ids of a file with very many chunks, stored apart from its tree in chunk-list
/// blobs (tree-type blobs, FORMAT.md §9.1). The list is cut where a chunk id says so, so the
/// cuts move with the content: a small change to a huge file (a database updated in a few
/// places) changes the lists around the changed chunks, and the tree holding the file changes
/// by a few ids, instead of rewriting one huge list every day.
public enum ChunkList {
    public static let format: UInt8 = 2
    /// Files with more chunks than this are stored in long form.
    public static let threshold = 2048
    /// No cut before this many ids, a forced cut at `maxIDs`; between the two, a cut after an
    /// id whose first two bytes (little-endian) have the low 10 bits set: about 1 in 1024.
    public static let minIDs = 256
    public static let maxIDs = 8192
    static let cutMask: UInt16 = 0x3FF

    public static func split(_ chunks: [BlobID]) -> [ArraySlice<BlobID>] {
        var lists: [ArraySlice<BlobID>] = []
        var start = 0
        for (i, id) in chunks.enumerated() {
            let length = i - start + 1
            let mark = UInt16(truncatingIfNeeded: id.raw.w0)  // bytes 0 and 1, little-endian
            if length >= maxIDs || (length >= minIDs && mark & cutMask == cutMask) {
                lists.append(chunks[start...i])
                start = i + 1
            }
        }
        if start < chunks.count { lists.append(chunks[start...]) }
        return lists
    }

    /// `u8 format (2) ‖ varint n ‖ n × data blob id`.
    public static func encode(_ ids: ArraySlice<BlobID>) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + ids.count * 32)
        w.u8(format)
        w.varint(ids.count)
        for id in ids { w.id(id) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], id: BlobID) throws -> [BlobID] {
        var r = ByteReader(bytes, what: "chunk list \(id.short)")
        guard try r.u8() == format else { throw MalformedObject("chunk list \(id.short): not a chunk list") }
        let n = try r.count(atLeastBytesEach: 32)
        guard n > 0 else { throw MalformedObject("chunk list \(id.short): empty") }
        var ids: [BlobID] = []
        ids.reserveCapacity(n)
        for _ in 0..<n { ids.append(try r.id()) }
        try r.expectEnd()
        return ids
    }
}
