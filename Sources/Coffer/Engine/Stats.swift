public struct RepositoryStats: Sendable, Codable {
    public var snapshots = 0
    public var files: UInt64 = 0
    /// Sum of file sizes over all snapshots (what restoring every snapshot would write).
    public var logicalBytes: UInt64 = 0
    /// Plaintext bytes of the distinct blobs the snapshots use.
    public var uniqueBytes: UInt64 = 0
    /// Sealed (compressed) bytes of those blobs.
    public var uniqueStoredBytes: UInt64 = 0
    public var blobsUsed = 0
    /// Everything under data/, padding and unused blobs included.
    public var packBytes: UInt64 = 0
    public var packs = 0
    /// Sealed bytes of indexed blobs no snapshot uses (prune frees them).
    public var unusedBytes: UInt64 = 0
    public var dedupRatio: Double { uniqueBytes == 0 ? 1 : Double(logicalBytes) / Double(uniqueBytes) }
    public var compressionRatio: Double { uniqueStoredBytes == 0 ? 1 : Double(uniqueBytes) / Double(uniqueStoredBytes) }

    enum CodingKeys: String, CodingKey {
        case snapshots, files, logicalBytes, uniqueBytes, uniqueStoredBytes, blobsUsed, packBytes, packs, unusedBytes
    }
}

extension Repository {
    /// Sizes and ratios over the whole repository; reads every tree once.
    public func stats() async throws -> RepositoryStats {
        let index = try await loadIndex()
        var stats = RepositoryStats()
        var reach = Reachability()
        for (_, snapshot) in try await snapshots() {
            stats.snapshots += 1
            try await reach.add(snapshot, repository: self, index: index)
        }
        stats.files = reach.files
        stats.logicalBytes = reach.logicalBytes
        stats.blobsUsed = reach.used.count
        for handle in reach.used {
            guard let e = index.lookup(handle) else { continue }
            stats.uniqueBytes += UInt64(e.rawLength)
            stats.uniqueStoredBytes += UInt64(e.length)
        }
        let packs = try await storage.list(.data)
        stats.packs = packs.count
        stats.packBytes = packs.reduce(0) { $0 + UInt64($1.size) }
        stats.unusedBytes = index.sealedBytes(excluding: reach.used)
        return stats
    }
}
