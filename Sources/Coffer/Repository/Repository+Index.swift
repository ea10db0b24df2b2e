import CofferCrypto

extension Repository {
    /// Reads every index object into one in-memory index.
    public func loadIndex() async throws -> MasterIndex {
        var index = MasterIndex()
        for object in try await storage.list(.index) {
            guard let id = IndexID(hex: object.name.name) else { continue }
            let payload = try await loadSealed(kind: .index, name: object.name, id: id.raw)
            do { index.add(try IndexFile(decoding: payload, name: id.short)) } catch {
                throw RepositoryError.malformed(object.name, detail: "\(error)")
            }
        }
        return index
    }

    /// Writes an index object for packs that are already stored; returns its stored size.
    public func saveIndex(_ file: IndexFile) async throws -> Int {
        let id = IndexID(bytes: random.bytes(32))
        return try await saveSealed(file.encoded(), kind: .index, folder: .index, id: id.raw)
    }
}
