import CofferCrypto

extension Repository {
    /// Reads one blob through the index, opens its seal, decompresses it and checks its keyed
    /// id: what comes back is exactly what was stored, or an error naming the blob and pack.
    /// A blob indexed in several packs is read from the next copy when one is missing or damaged;
    /// the error is the first copy's.
    public func loadBlob(_ handle: BlobHandle, index: MasterIndex, decompressor: ZstdDecompressor = ZstdDecompressor()) async throws -> [UInt8] {
        let entries = index.locations(handle)
        guard !entries.isEmpty else { throw RepositoryError.blobNotInIndex(handle) }
        var firstError: (any Error)? = nil
        for entry in entries {
            do {
                return try await loadBlob(handle, at: entry, decompressor: decompressor)
            } catch let e as CancellationError {
                throw e
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError!
    }

    private func loadBlob(_ handle: BlobHandle, at entry: IndexEntry, decompressor: ZstdDecompressor) async throws -> [UInt8] {
        let cacheKey = MetadataCache.treeKey(pack: entry.pack, offset: entry.offset, length: entry.length)
        if handle.type == .tree, let cache, let cached = cache.get("trees", cacheKey) {
            if let plain = try? BlobEnvelope.open(cached[...], handle: handle, rawLength: Int(entry.rawLength), keys: keys, decompressor: decompressor) {
                return plain
            }
            cache.remove("trees", cacheKey)
        }
        let envelope = try await readPack(entry.pack, Int(entry.offset)..<Int(entry.offset) + Int(entry.length), for: handle)
        let plain = try openEnvelope(envelope[...], handle: handle, entry: entry, decompressor: decompressor)
        if handle.type == .tree { cache?.put("trees", cacheKey, envelope) }
        return plain
    }

    /// Bytes `range` of a pack, with storage failures named as what they mean for `handle`
    /// (the first blob the range serves).
    private func readPack(_ pack: PackID, _ range: Range<Int>, for handle: BlobHandle) async throws -> [UInt8] {
        let name = ObjectName(.data, pack.hex)
        let bytes: [UInt8]
        do {
            bytes = try await storage.read(name, range: range)
        } catch StorageError.notFound {
            throw RepositoryError.missingObject(name)
        } catch StorageError.truncated(_, let expected, let actual) {
            throw RepositoryError.blobDamaged(handle, pack: pack, detail: "pack truncated to \(actual) bytes, blob ends at \(expected)")
        }
        // Storage promises the whole range; bytes short of it are never sliced as if they were.
        guard bytes.count == range.count else {
            throw RepositoryError.blobDamaged(handle, pack: pack, detail: "storage returned \(bytes.count) of the \(range.count) bytes asked for")
        }
        return bytes
    }

    private func openEnvelope(
        _ envelope: ArraySlice<UInt8>, handle: BlobHandle, entry: IndexEntry, decompressor: ZstdDecompressor, verifyingID: Bool = true
    ) throws -> [UInt8] {
        do {
            return try BlobEnvelope.open(
                envelope, handle: handle, rawLength: Int(entry.rawLength), keys: keys, decompressor: decompressor, verifyingID: verifyingID)
        } catch .authenticationFailed {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: "seal does not verify (tampered or swapped)")
        } catch .idMismatch {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: "content does not match its id")
        } catch .malformed(let why) {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: why)
        }
    }

    /// Blobs of one pack closer than this are fetched by one range read (the gap is read and
    /// dropped): a request's latency costs more than this many bytes on any link worth using.
    static let coalesceGap = 256 << 10
    /// One range read stays below this.
    static let maxRangeRead = 16 << 20

    /// Several data blobs, in the order asked. Blobs of the same pack that lie close together
    /// come from one range read, and different packs are read in parallel: restoring from a
    /// remote repository is bound by round trips, and a database chunked page by page would
    /// otherwise cost one request per page.
    /// `verifyingIDs`: also recompute each blob's keyed id (FORMAT.md §7.1: the seal alone
    /// proves the bytes against storage; the id check proves the writer hashed honestly).
    public func loadBlobs(_ handles: [BlobHandle], index: MasterIndex, verifyingIDs: Bool = true) async throws -> [[UInt8]] {
        let entries: [IndexEntry] = try handles.map { h in
            guard let e = index.lookup(h) else { throw RepositoryError.blobNotInIndex(h) }
            return e
        }
        var byPack: [PackID: [Int]] = [:]
        for (i, e) in entries.enumerated() { byPack[e.pack, default: []].append(i) }
        // Runs of positions, each served by one range read.
        var runs: [[Int]] = []
        for positions in byPack.values {
            var run: [Int] = []
            var start = 0, end = 0
            for p in positions.sorted(by: { entries[$0].offset < entries[$1].offset }) {
                let offset = Int(entries[p].offset), stop = offset + Int(entries[p].length)
                if !run.isEmpty && offset - end <= Self.coalesceGap && max(end, stop) - start <= Self.maxRangeRead {
                    run.append(p)
                    end = max(end, stop)
                } else {
                    if !run.isEmpty { runs.append(run) }
                    run = [p]
                    (start, end) = (offset, stop)
                }
            }
            if !run.isEmpty { runs.append(run) }
        }
        var results = [[UInt8]](repeating: [], count: handles.count)
        try await withThrowingTaskGroup(of: [(Int, [UInt8])].self) { group in
            for run in runs {
                group.addTask {
                    let first = entries[run[0]]
                    let start = run.map { Int(entries[$0].offset) }.min()!
                    let end = run.map { Int(entries[$0].offset) + Int(entries[$0].length) }.max()!
                    let decompressor = DecompressorPool.shared.take()
                    defer { DecompressorPool.shared.give(decompressor) }
                    do {
                        let bytes = try await self.readPack(first.pack, start..<end, for: handles[run[0]])
                        return try run.map { p in
                            let e = entries[p]
                            let from = Int(e.offset) - start
                            return (p, try self.openEnvelope(
                                bytes[from..<from + Int(e.length)], handle: handles[p], entry: e, decompressor: decompressor,
                                verifyingID: verifyingIDs))
                        }
                    } catch let error where !(error is CancellationError) {
                        // Blobs with another copy are read one by one, each from a copy that works.
                        guard run.contains(where: { index.locations(handles[$0]).count > 1 }) else { throw error }
                        var out: [(Int, [UInt8])] = []
                        for p in run { out.append((p, try await self.loadBlob(handles[p], index: index, decompressor: decompressor))) }
                        return out
                    }
                }
            }
            for try await batch in group { for (p, plain) in batch { results[p] = plain } }
        }
        return results
    }

    /// A tree with every file's chunk ids, those of long files read from their chunk lists.
    public func loadTree(_ id: BlobID, index: MasterIndex) async throws -> Tree {
        let bytes = try await loadBlob(BlobHandle(id: id, type: .tree), index: index)
        var tree: Tree
        do { tree = try Tree(decoding: bytes, id: id) } catch {
            throw RepositoryError.malformed(ObjectName(.data, "tree \(id.short)"), detail: "\(error)")
        }
        for (i, node) in tree.nodes.enumerated() {
            guard let lists = node.chunkLists, case .file(let size, _) = node.content else { continue }
            var chunks: [BlobID] = []
            for list in lists { chunks += try await loadChunkList(list, index: index) }
            tree.setContent(of: i, .file(size: size, chunks: chunks))
        }
        return tree
    }

    public func loadChunkList(_ id: BlobID, index: MasterIndex) async throws -> [BlobID] {
        let bytes = try await loadBlob(BlobHandle(id: id, type: .tree), index: index)
        do { return try ChunkList.decode(bytes, id: id) } catch {
            throw RepositoryError.malformed(ObjectName(.data, "chunk list \(id.short)"), detail: "\(error)")
        }
    }
}

/// Decompression contexts, reused: creating one per range read showed in restore profiles.
final class DecompressorPool: @unchecked Sendable {
    static let shared = DecompressorPool()
    // Only touched under `lock`.
    private let lock = Lock()
    private var idle: [ZstdDecompressor] = []

    func take() -> ZstdDecompressor { lock.withLock { idle.popLast() } ?? ZstdDecompressor() }

    func give(_ d: ZstdDecompressor) { lock.withLock { if idle.count < 16 { idle.append(d) } } }
}
