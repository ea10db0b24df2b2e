import CofferCrypto

extension Repository {
    /// Packs in storage that no index names: those a backup uploaded before it was interrupted
    /// (killed, crashed, or stopped by an error) and before the index object that would have
    /// named them. Each pack's own sealed header lists its blobs, so the next backup reuses
    /// them instead of uploading the same data again. A pack whose header does not open under
    /// this repository's key is left alone (check reports it, prune deletes it).
    func unindexedPacks(known index: MasterIndex) async throws -> [IndexFile.Pack] {
        var found: [IndexFile.Pack] = []
        for object in try await storage.list(.data) {
            guard let id = PackID(hex: object.name.name), index.packs[id] == nil else { continue }
            if let blobs = try? await readHeader(of: object) { found.append(IndexFile.Pack(id: id, length: UInt64(object.size), blobs: blobs)) }
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
