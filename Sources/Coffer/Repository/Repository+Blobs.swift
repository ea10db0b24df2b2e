import CofferCrypto

extension Repository {
    /// Reads one blob through the index, opens its seal, decompresses it and checks its keyed
    /// id: what comes back is exactly what was stored, or an error naming the blob and pack.
    public func loadBlob(_ handle: BlobHandle, index: MasterIndex, decompressor: ZstdDecompressor = ZstdDecompressor()) async throws -> [UInt8] {
        guard let entry = index.lookup(handle) else { throw RepositoryError.blobNotInIndex(handle) }
        let name = ObjectName(.data, entry.pack.hex)
        let cacheKey = MetadataCache.treeKey(pack: entry.pack, offset: entry.offset, length: entry.length)
        if handle.type == .tree, let cache, let cached = cache.get("trees", cacheKey) {
            if let plain = try? BlobEnvelope.open(cached[...], handle: handle, rawLength: Int(entry.rawLength), keys: keys, decompressor: decompressor) {
                return plain
            }
            cache.remove("trees", cacheKey)
        }
        let envelope: [UInt8]
        do {
            envelope = try await storage.read(name, range: Int(entry.offset)..<Int(entry.offset) + Int(entry.length))
        } catch StorageError.notFound {
            throw RepositoryError.missingObject(name)
        } catch StorageError.truncated(_, let expected, let actual) {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: "pack truncated to \(actual) bytes, blob ends at \(expected)")
        }
        do {
            let plain = try BlobEnvelope.open(envelope[...], handle: handle, rawLength: Int(entry.rawLength), keys: keys, decompressor: decompressor)
            if handle.type == .tree { cache?.put("trees", cacheKey, envelope) }
            return plain
        } catch .authenticationFailed {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: "seal does not verify (tampered or swapped)")
        } catch .idMismatch {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: "content does not match its id")
        } catch .malformed(let why) {
            throw RepositoryError.blobDamaged(handle, pack: entry.pack, detail: why)
        }
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
