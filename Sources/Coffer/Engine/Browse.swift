import CofferCrypto

/// One entry as `ls` shows it.
public struct ListedEntry: Sendable {
    public enum Kind: String, Sendable { case file, directory = "dir", symlink }
    public let path: String
    public let kind: Kind
    public let size: UInt64
    public let metadata: NodeMetadata
    public let linkTarget: String?
}

extension Repository {
    /// Walks a snapshot's tree below `path` (all of it for `/`), depth first, in name order.
    public func list(snapshot: Snapshot, under path: String = "/", index: MasterIndex? = nil, visit: (ListedEntry) throws -> Void) async throws {
        let index = try await resolvedIndex(index)
        let comps = SnapshotPath.components(path)
        var treeID = snapshot.root
        var prefix = ""
        for (i, name) in comps.enumerated() {
            let tree = try await loadTree(treeID, index: index)
            guard let node = tree.node(named: name) else { throw RepositoryError.snapshotNotFound("path \(path) in snapshot") }
            prefix += "/" + node.displayName
            switch node.content {
            case .directory(let sub): treeID = sub
            default:
                guard i == comps.count - 1 else { throw RepositoryError.snapshotNotFound("path \(path) in snapshot") }
                try visit(Self.entry(node, path: prefix))
                return
            }
        }
        try await walk(treeID, prefix: prefix, index: index, visit: visit)
    }

    private func walk(_ id: BlobID, prefix: String, index: MasterIndex, visit: (ListedEntry) throws -> Void) async throws {
        for node in try await loadTree(id, index: index).nodes {
            let path = prefix + "/" + node.displayName
            try visit(Self.entry(node, path: path))
            if case .directory(let sub) = node.content { try await walk(sub, prefix: path, index: index, visit: visit) }
        }
    }

    static func entry(_ node: TreeNode, path: String) -> ListedEntry {
        switch node.content {
        case .file(let size, _): return ListedEntry(path: path, kind: .file, size: size, metadata: node.metadata, linkTarget: nil)
        case .directory: return ListedEntry(path: path, kind: .directory, size: 0, metadata: node.metadata, linkTarget: nil)
        case .symlink(let t): return ListedEntry(path: path, kind: .symlink, size: 0, metadata: node.metadata, linkTarget: String(decoding: t, as: UTF8.self))
        }
    }

    func resolvedIndex(_ index: MasterIndex?) async throws -> MasterIndex {
        if let index { return index }
        return try await loadIndex()
    }

    /// Finds the node at `path` in a snapshot.
    public func node(at path: String, in snapshot: Snapshot, index: MasterIndex) async throws -> TreeNode {
        let comps = SnapshotPath.components(path)
        guard !comps.isEmpty else { throw RepositoryError.snapshotNotFound("path \(path): give a file inside the snapshot") }
        var treeID = snapshot.root
        for (i, name) in comps.enumerated() {
            let tree = try await loadTree(treeID, index: index)
            guard let node = tree.node(named: name) else { throw RepositoryError.snapshotNotFound("path \(path) in snapshot") }
            if i == comps.count - 1 { return node }
            guard case .directory(let sub) = node.content else { throw RepositoryError.snapshotNotFound("path \(path) in snapshot") }
            treeID = sub
        }
        fatalError("unreachable")
    }

    /// Streams one file's verified contents to `write`, chunk by chunk.
    public func dump(path: String, in snapshot: Snapshot, write: ([UInt8]) throws -> Void) async throws {
        let index = try await loadIndex()
        let node = try await node(at: path, in: snapshot, index: index)
        guard case .file(_, let chunks) = node.content else { throw RepositoryError.snapshotNotFound("\(path) is not a file") }
        let decompressor = ZstdDecompressor()
        for chunk in chunks { try write(try await loadBlob(BlobHandle(id: chunk, type: .data), index: index, decompressor: decompressor)) }
    }
}
