import CofferCrypto

extension Repository {
    /// Writes a snapshot object; returns its id and stored size.
    public func saveSnapshot(_ snapshot: Snapshot) async throws -> (SnapshotID, Int) {
        let id = SnapshotID(bytes: random.bytes(32))
        let size = try await saveSealed(snapshot.encoded(), kind: .snapshot, folder: .snapshots, id: id.raw)
        return (id, size)
    }

    public func loadSnapshot(_ id: SnapshotID) async throws -> Snapshot {
        let name = ObjectName(.snapshots, id.hex)
        let payload = try await loadSealed(kind: .snapshot, name: name, id: id.raw)
        do { return try Snapshot(decoding: payload, id: id) } catch {
            throw RepositoryError.malformed(name, detail: "\(error)")
        }
    }

    /// All snapshots, oldest first.
    public func snapshots() async throws -> [(id: SnapshotID, snapshot: Snapshot)] {
        var out: [(id: SnapshotID, snapshot: Snapshot)] = []
        let listed = try await storage.list(.snapshots)
        let names = Set(listed.map(\.name.name))
        cache?.prune("snapshots") { names.contains($0) }
        for object in listed {
            guard let id = SnapshotID(hex: object.name.name) else { continue }
            out.append((id, try await loadSnapshot(id)))
        }
        return out.sorted { ($0.snapshot.timeNanos, $0.id) < ($1.snapshot.timeNanos, $1.id) }
    }

    /// Resolves `latest`, a full id or a unique prefix of one.
    public func resolveSnapshot(_ reference: String) async throws -> (id: SnapshotID, snapshot: Snapshot) {
        if reference == "latest" {
            guard let last = try await snapshots().last else { throw RepositoryError.noSnapshots }
            return last
        }
        let prefix = reference.lowercased()
        guard !prefix.isEmpty, Hex.decode(prefix.count % 2 == 0 ? prefix : prefix + "0") != nil else {
            throw RepositoryError.snapshotNotFound(reference)
        }
        let matches = try await storage.list(.snapshots).compactMap { SnapshotID(hex: $0.name.name) }
            .filter { $0.hex.hasPrefix(prefix) }
        guard let first = matches.first else { throw RepositoryError.snapshotNotFound(reference) }
        guard matches.count == 1 else { throw RepositoryError.ambiguousSnapshot(reference, matches: matches) }
        return (first, try await loadSnapshot(first))
    }
}
