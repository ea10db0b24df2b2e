/// One difference between two snapshots.
public struct SnapshotChange: Sendable {
    public enum Kind: String, Sendable { case added = "+", removed = "-", modified = "M", typeChanged = "T" }
    public let kind: Kind
    public let path: String
}

extension Repository {
    /// Compares two snapshots, descending only into subtrees whose ids differ.
    public func diff(_ a: Snapshot, _ b: Snapshot) async throws -> [SnapshotChange] {
        let index = try await loadIndex()
        var out: [SnapshotChange] = []
        try await diffTrees(a.root, b.root, prefix: "", index: index, into: &out)
        return out
    }

    private func diffTrees(_ a: BlobID?, _ b: BlobID?, prefix: String, index: MasterIndex, into out: inout [SnapshotChange]) async throws {
        if a == b { return }
        let left = a == nil ? [] : try await loadTree(a!, index: index).nodes
        let right = b == nil ? [] : try await loadTree(b!, index: index).nodes
        var byName: [[UInt8]: TreeNode] = [:]
        for n in right { byName[n.name] = n }
        for l in left {
            let path = prefix + "/" + l.displayName
            guard let r = byName.removeValue(forKey: l.name) else {
                out.append(SnapshotChange(kind: .removed, path: path))
                if case .directory(let sub) = l.content { try await diffTrees(sub, nil, prefix: path, index: index, into: &out) }
                continue
            }
            switch (l.content, r.content) {
            case (.directory(let x), .directory(let y)):
                try await diffTrees(x, y, prefix: path, index: index, into: &out)
            case (.file(let s1, let c1), .file(let s2, let c2)):
                if s1 != s2 || c1 != c2 || l.metadata.mode != r.metadata.mode { out.append(SnapshotChange(kind: .modified, path: path)) }
            case (.symlink(let t1), .symlink(let t2)):
                if t1 != t2 { out.append(SnapshotChange(kind: .modified, path: path)) }
            default:
                out.append(SnapshotChange(kind: .typeChanged, path: path))
            }
        }
        for r in right.filter({ byName[$0.name] != nil }) {
            let path = prefix + "/" + r.displayName
            out.append(SnapshotChange(kind: .added, path: path))
            if case .directory(let sub) = r.content { try await diffTrees(nil, sub, prefix: path, index: index, into: &out) }
        }
        out.sort { $0.path < $1.path }
    }
}
