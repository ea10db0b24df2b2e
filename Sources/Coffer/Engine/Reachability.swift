/// Which blobs the snapshots still use. Each tree is read once however many snapshots share it,
/// and the result is a set of handles (about 60 bytes each), not a map of objects.
struct Reachability {
    var used = Set<BlobHandle>()
    /// Logical bytes: the size of every file in every snapshot, counted per snapshot.
    var logicalBytes: UInt64 = 0
    var files: UInt64 = 0

    mutating func add(_ snapshot: Snapshot, repository: Repository, index: MasterIndex) async throws {
        try await addTree(snapshot.root, repository: repository, index: index, countLogical: true)
    }

    private mutating func addTree(_ id: BlobID, repository: Repository, index: MasterIndex, countLogical: Bool) async throws {
        let firstVisit = used.insert(BlobHandle(id: id, type: .tree)).inserted
        // A tree seen before contributes no new blobs; it is read again only to count logical size.
        guard firstVisit || countLogical else { return }
        let tree = try await repository.loadTree(id, index: index)
        for node in tree.nodes {
            switch node.content {
            case .file(let size, let chunks):
                if countLogical {
                    logicalBytes += size
                    files += 1
                }
                if firstVisit { for c in chunks { used.insert(BlobHandle(id: c, type: .data)) } }
            case .directory(let sub):
                try await addTree(sub, repository: repository, index: index, countLogical: countLogical)
            case .symlink:
                break
            }
        }
    }
}
