import CofferCrypto

/// What one listing of data/ taught a backup about the index it loaded.
struct StoredPackSurvey {
    /// Packs an interrupted backup stored that no index names, read from their own headers.
    var unindexed: [IndexFile.Pack] = []
    /// Indexed packs that are not in storage, or not at their indexed length: lost or damaged.
    var unusable: [PackID] = []
}

extension Repository {
    /// Compares the index with a listing of data/ (made after the index was loaded, so every
    /// pack it names was stored before the listing): drops the packs that are gone or have the
    /// wrong length from `index`, so that no blob is deduplicated against a copy that no longer
    /// exists (the backup stores it again), and finds the packs no index names: those a backup
    /// uploaded before it was interrupted (killed, crashed, or stopped by an error) and before
    /// the index object that would have named them. Each pack's own sealed header lists its
    /// blobs, so the next backup reuses them instead of uploading the same data again. A pack
    /// whose header does not open under this repository's key is left alone (check reports it,
    /// prune deletes it).
    ///
    /// A storage failure (not a bad header) fails the backup rather than silently leaving packs
    /// behind, as the marker of the unfinished run would be cleared.
    func surveyStoredPacks(_ index: inout MasterIndex) async throws -> StoredPackSurvey {
        let listed = try await storage.list(.data)
        var sizes: [PackID: Int] = [:]
        for object in listed { if let id = PackID(hex: object.name.name) { sizes[id] = object.size } }
        var survey = StoredPackSurvey()
        survey.unusable = index.packs.compactMap { id, length in sizes[id].map { UInt64($0) == length } == true ? nil : id }
        let indexed = index.packs
        index.removePacks(survey.unusable)
        let candidates = listed.filter { object in
            PackID(hex: object.name.name).map { indexed[$0] == nil } ?? false
        }
        survey.unindexed = try await readHeaders(of: candidates)
        return survey
    }

    /// The packs among `candidates` whose headers open, as index entries; packs whose header
    /// is damaged or that vanished are left out, storage failures are thrown.
    func readHeaders(of candidates: [StoredObject]) async throws -> [IndexFile.Pack] {
        var found: [IndexFile.Pack] = []
        // Two small range reads per pack: a few at a time hides a remote backend's latency.
        try await withThrowingTaskGroup(of: IndexFile.Pack?.self) { group in
            var next = candidates.makeIterator()
            func addNext() -> Bool {
                guard let object = next.next() else { return false }
                group.addTask {
                    do {
                        let blobs = try await self.readHeader(of: object)
                        return IndexFile.Pack(id: PackID(hex: object.name.name)!, length: UInt64(object.size), blobs: blobs)
                    } catch is PackFormat.Failure {
                        return nil
                    } catch RepositoryError.malformed {
                        return nil
                    } catch StorageError.notFound, StorageError.truncated {
                        return nil
                    }
                }
                return true
            }
            for _ in 0..<8 where addNext() {}
            while let result = try await group.next() {
                if let result { found.append(result) }
                _ = addNext()
            }
        }
        return found
    }

    /// A pack's blob list from its trailer and sealed header (FORMAT.md §7.2): two range reads.
    func readHeader(of object: StoredObject) async throws -> [PackedBlob] {
        guard let id = PackID(hex: object.name.name) else { throw RepositoryError.malformed(object.name, detail: "not a pack name") }
        let size = object.size
        let trailerSize = PackFormat.trailerSize
        guard size >= trailerSize + XChaCha20Poly1305.overhead else { throw RepositoryError.malformed(object.name, detail: "too short") }
        let key = keys.metadataSealing
        let trailer = try await storage.read(object.name, range: (size - trailerSize)..<size)
        let headerLength = try PackFormat.headerLength(trailer: trailer, packID: id, key: key)
        guard headerLength <= size - trailerSize else { throw RepositoryError.malformed(object.name, detail: "header longer than the pack") }
        let headerOffset = size - trailerSize - headerLength
        let sealed = try await storage.read(object.name, range: headerOffset..<(size - trailerSize))
        let blobs = try PackFormat.parseHeader(sealed, packID: id, headerOffset: headerOffset, key: key)
        // The blobs must tile the body exactly, or the header does not describe this pack.
        guard blobs.reduce(0, { $0 + Int($1.length) }) == headerOffset else {
            throw RepositoryError.malformed(object.name, detail: "header does not match the pack body")
        }
        return blobs
    }
}
