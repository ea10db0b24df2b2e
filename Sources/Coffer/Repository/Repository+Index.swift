import CofferCrypto

extension Repository {
    /// Reads every index object into one in-memory index.
    public func loadIndex() async throws -> MasterIndex {
        var index = MasterIndex()
        let listed = try await storage.list(.index)
        // Forget cached copies of index objects that are gone (prune replaced them).
        let names = Set(listed.map(\.name.name))
        cache?.prune("index") { names.contains($0) }
        for object in listed {
            guard let id = IndexID(hex: object.name.name) else { continue }
            let payload = try await loadSealed(kind: .index, name: object.name, id: id.raw)
            do { index.add(try IndexFile(decoding: payload, name: id.short)) } catch {
                throw RepositoryError.malformed(object.name, detail: "\(error)")
            }
        }
        cache?.prune("trees") { key in PackID(hex: String(key.prefix(64))).map { index.packs[$0] != nil } ?? false }
        return index
    }

    /// Writes an index object for packs that are already stored; returns its stored size.
    public func saveIndex(_ file: IndexFile) async throws -> Int {
        let id = IndexID(bytes: random.bytes(32))
        return try await saveSealed(file.encoded(), kind: .index, folder: .index, id: id.raw)
    }
}
