/// Which blobs the snapshots still use. Each distinct tree is read once however many snapshots
/// share it; the used set holds handles (about 60 bytes each), not objects.
struct Reachability {
    var used = Set<BlobHandle>()
    /// Logical bytes: the size of every file in every snapshot, counted per snapshot.
    var logicalBytes: UInt64 = 0
    var files: UInt64 = 0
    /// Logical size and file count below each tree already read, so a shared tree counts again
    /// for every snapshot without being read again.
    private var totals: [BlobID: (bytes: UInt64, files: UInt64)] = [:]

    mutating func add(_ snapshot: Snapshot, repository: Repository, index: MasterIndex) async throws {
        let t = try await addTree(snapshot.root, repository: repository, index: index)
        logicalBytes += t.bytes
        files += t.files
    }

    private mutating func addTree(_ id: BlobID, repository: Repository, index: MasterIndex) async throws -> (bytes: UInt64, files: UInt64) {
        if let known = totals[id] { return known }
        used.insert(BlobHandle(id: id, type: .tree))
        let tree = try await repository.loadTree(id, index: index)
        var total: (bytes: UInt64, files: UInt64) = (0, 0)
        for node in tree.nodes {
            switch node.content {
            case .file(let size, let chunks):
                total.bytes += size
                total.files += 1
                for c in chunks { used.insert(BlobHandle(id: c, type: .data)) }
                for l in node.chunkLists ?? [] { used.insert(BlobHandle(id: l, type: .tree)) }
            case .directory(let sub):
                let t = try await addTree(sub, repository: repository, index: index)
                total.bytes += t.bytes
                total.files += t.files
            case .symlink:
                break
            }
        }
        totals[id] = total
        return total
    }
}
