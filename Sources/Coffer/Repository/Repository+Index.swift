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
            index.add(try await loadIndexFile(object.name, id: id))
        }
        cache?.prune("trees") { key in PackID(hex: String(key.prefix(64))).map { index.packs[$0] != nil } ?? false }
        return index
    }

    /// One index object, opened and decoded.
    func loadIndexFile(_ name: ObjectName, id: IndexID) async throws -> IndexFile {
        let payload = try await loadSealed(kind: .index, name: name, id: id.raw)
        do { return try IndexFile(decoding: payload, name: id.short) } catch {
            throw RepositoryError.malformed(name, detail: "\(error)")
        }
    }

    /// Writes an index object for packs that are already stored; returns its stored size.
    public func saveIndex(_ file: IndexFile) async throws -> Int {
        try await saveIndexObject(file).size
    }

    /// Writes an index object; returns its name and stored size.
    func saveIndexObject(_ file: IndexFile) async throws -> (name: ObjectName, size: Int) {
        let id = IndexID(bytes: random.bytes(32))
        let size = try await saveSealed(file.encoded(), kind: .index, folder: .index, id: id.raw)
        return (ObjectName(.index, id.hex), size)
    }
}

/// How replacing the index ended (FORMAT.md §11.2).
struct IndexReplacement: Sendable {
    var indexObjectsDeleted = 0
    var packsDeleted = 0
    /// Packs that were to go but stay, because an index object that may name them is still there.
    var packsKept = 0
    /// What could not be done, one line each (object and error).
    var failures: [String] = []
}

extension Repository {
    /// The end of prune and of repair: the new index objects (`written`) are stored; now the old
    /// ones (`old`, with the packs each names) are deleted, and then the packs in `doomed` —
    /// but only those that no index object left in storage may name. An old index object that
    /// could not be deleted (or whose delete failed without an answer and which is still
    /// there) keeps its packs alive, so the index never names a pack that is gone; the next
    /// run finishes the job. Index objects neither old nor written here (another process's)
    /// are read to see what they name; if one cannot be read, no pack is deleted.
    ///
    /// Runs to its end once begun (Ctrl-C does not stop it half-way), except that it stops as
    /// soon as `lock` may have lapsed (FORMAT.md §11.1): checked in storage before the first
    /// deletion and by the clock before each one, since a prune whose lock lapsed may be running
    /// beside a backup that uses these packs.
    func replaceIndex(
        old: [ObjectName: Set<PackID>], written: Set<ObjectName>, doomed: [PackID], lock: RepositoryLock?
    ) async throws -> IndexReplacement {
        // Every new index object must be in storage before anything it replaces goes.
        let present = Set(try await storage.list(.index).map(\.name))
        if let absent = written.first(where: { !present.contains($0) }) {
            throw IndexReplacementError.newIndexNotListed(absent)
        }
        try Task.checkCancellation()
        try await lock?.ensureHeld(before: "deleting anything; the new index is written, nothing was deleted")
        return try await withoutCancellation { [self] () async throws -> IndexReplacement in
            var outcome = IndexReplacement()
            var refused: [ObjectName: String] = [:]
            for name in old.keys.sorted(by: { $0.name < $1.name }) {
                try lock?.ensureHeldByTime(before: "deleting the rest of the old index objects and packs")
                do { try await storage.delete(name) } catch StorageError.notFound {} catch {
                    refused[name] = "\(error)"
                }
            }
            // What is left in index/ now, whatever each delete answered: a delete that failed
            // without an answer may have happened, one that "succeeded" may not have.
            let remaining: [StoredObject]
            do { remaining = try await storage.list(.index) } catch {
                outcome.failures = refused.map { "\($0.key): \($0.value)" }.sorted()
                outcome.failures.append("index/ could not be listed after deleting: \(error)")
                outcome.packsKept = doomed.count
                return outcome
            }
            let left = Set(remaining.map(\.name))
            outcome.indexObjectsDeleted = old.keys.filter { !left.contains($0) }.count
            for name in old.keys.sorted(by: { $0.name < $1.name }) where left.contains(name) {
                outcome.failures.append("\(name): \(refused[name] ?? "still listed after its delete succeeded")")
            }
            var alive = Set<PackID>()
            for object in remaining where !written.contains(object.name) {
                if let packs = old[object.name] {
                    alive.formUnion(packs)
                    continue
                }
                guard let id = IndexID(hex: object.name.name) else { continue }
                do {
                    for p in try await loadIndexFile(object.name, id: id).packs { alive.insert(p.id) }
                } catch RepositoryError.missingObject {
                    continue
                } catch {
                    outcome.failures.append("\(object.name) could not be read, so no pack was deleted: \(error)")
                    outcome.packsKept = doomed.count
                    return outcome
                }
            }
            for pack in doomed {
                if alive.contains(pack) {
                    outcome.packsKept += 1
                    continue
                }
                let name = ObjectName(.data, pack.hex)
                try lock?.ensureHeldByTime(before: "deleting the rest of the packs")
                do {
                    try await storage.delete(name)
                    outcome.packsDeleted += 1
                } catch StorageError.notFound {
                    outcome.packsDeleted += 1
                } catch {
                    // The delete may have happened without its answer arriving.
                    if (try? await storage.stat(name)).map({ $0 == nil }) == true {
                        outcome.packsDeleted += 1
                    } else {
                        outcome.failures.append("\(name): \(error)")
                    }
                }
            }
            return outcome
        }
    }
}

enum IndexReplacementError: Error, CustomStringConvertible {
    case newIndexNotListed(ObjectName)
    var description: String {
        switch self {
        case .newIndexNotListed(let name):
            return "\(name) was written but storage does not list it; nothing was deleted"
        }
    }
}
