import CofferCrypto

public struct PruneOptions: Sendable {
    /// Repack a pack when more than this share of its bytes is unused.
    public var maxUnusedFraction: Double = 0.05
    /// Packs smaller than this share of the target size are merged when there are several.
    public var smallPackFraction: Double = 0.25
    /// Work everything out, change nothing.
    public var dryRun = false
    public var lockWaitNanos: UInt64 = 0
    public init() {}
}

public struct PruneReport: Sendable, Codable {
    public var dryRun = false
    public var packsBefore = 0
    public var packsDeleted = 0
    public var packsRepacked = 0
    public var packsWritten = 0
    /// Packs in storage that no index names (left by interrupted backups).
    public var packsUnreferenced = 0
    public var indexObjectsReplaced = 0
    public var blobsUsed = 0
    public var blobsRemoved = 0
    public var bytesBefore: UInt64 = 0
    public var bytesAfter: UInt64 = 0
    public var bytesFreed: UInt64 { bytesBefore > bytesAfter ? bytesBefore - bytesAfter : 0 }
    public var unusedBytesBefore: UInt64 = 0
    public var unusedBytesAfter: UInt64 = 0

    enum CodingKeys: String, CodingKey {
        case dryRun, packsBefore, packsDeleted, packsRepacked, packsWritten, packsUnreferenced, indexObjectsReplaced
        case blobsUsed, blobsRemoved, bytesBefore, bytesAfter, unusedBytesBefore, unusedBytesAfter
    }
}

public enum PruneError: Error, CustomStringConvertible {
    case missingBlobs(count: Int, example: BlobHandle, damagedPacks: [PackID])
    case deleteFailed([String])
    public var description: String {
        switch self {
        case .missingBlobs(let n, let e, let damaged):
            let packs = damaged.isEmpty ? "" : " (indexed packs missing or of the wrong size: \(damaged.map(\.short).joined(separator: ", ")))"
            return "\(n) blobs used by snapshots are in no usable pack (e.g. \(e))\(packs); nothing was deleted — run `coffer check`"
        case .deleteFailed(let failures):
            return "the new index is written, but \(failures.count) old objects could not be deleted (\(failures.prefix(3).joined(separator: "; "))); run prune again"
        }
    }
}

/// What prune decided for one pack.
struct PackPlan {
    enum Action { case keep, delete, repack }
    let pack: IndexFile.Pack
    var action: Action
    /// Blobs in this pack that stay (first copy of a used blob).
    var keep: [PackedBlob]
    var usedBytes: UInt64
    var unusedBytes: UInt64
}

extension Repository {
    /// Removes data no snapshot uses (FORMAT.md §11.2): packs with nothing used are deleted,
    /// packs with much unused data and small packs are rewritten, then a new index is written,
    /// and only then are the old index objects and packs deleted. Holds an exclusive lock.
    public func prune(_ options: PruneOptions = PruneOptions(), progress: (@Sendable (String) -> Void)? = nil) async throws -> PruneReport {
        try await withLock(exclusive: true, waitNanos: options.lockWaitNanos) { lock in
            try await runPrune(options, lock: lock, progress: progress)
        }
    }

    private func runPrune(_ options: PruneOptions, lock: RepositoryLock, progress: (@Sendable (String) -> Void)?) async throws -> PruneReport {
        var report = PruneReport()
        report.dryRun = options.dryRun
        progress?("loading index")
        var indexNames: [ObjectName] = []
        var packs: [PackID: IndexFile.Pack] = [:]
        var index = MasterIndex()
        for object in try await storage.list(.index) {
            guard let id = IndexID(hex: object.name.name) else { continue }
            let payload = try await loadSealed(kind: .index, name: object.name, id: id.raw)
            let file: IndexFile
            do { file = try IndexFile(decoding: payload, name: id.short) } catch {
                throw RepositoryError.malformed(object.name, detail: "\(error)")
            }
            indexNames.append(object.name)
            index.add(file)
            for p in file.packs where packs[p.id] == nil { packs[p.id] = p }
        }
        let stored = try await storage.list(.data)
        // Only packs that are really there, at their indexed length, may supply a blob: a used
        // blob must never be "kept" in a missing pack while its good copy is deleted.
        let storedSizes = Dictionary(stored.map { ($0.name.name, $0.size) }, uniquingKeysWith: { a, _ in a })
        let unusable = packs.values.filter { storedSizes[$0.id.hex] != Int($0.length) }
        for p in unusable { packs[p.id] = nil }
        report.packsBefore = stored.count
        report.bytesBefore = stored.reduce(0) { $0 + UInt64($1.size) }
        let unreferenced = stored.filter { PackID(hex: $0.name.name).map { packs[$0] == nil } ?? false }
        report.packsUnreferenced = unreferenced.count

        progress?("finding used blobs")
        var reach = Reachability()
        for (_, snapshot) in try await snapshots() { try await reach.add(snapshot, repository: self, index: index) }
        var unclaimed = reach.used
        report.blobsUsed = unclaimed.count

        var plans = Self.planPacks(packs.values.sorted { $0.id < $1.id }, unclaimed: &unclaimed, options: options, packTarget: Int(config.packTargetSize))
        if let example = unclaimed.first {
            throw PruneError.missingBlobs(count: unclaimed.count, example: example, damagedPacks: unusable.map(\.id))
        }
        report.unusedBytesBefore = plans.reduce(0) { $0 + $1.unusedBytes }
        report.blobsRemoved = plans.reduce(0) { $0 + ($1.action == .keep ? 0 : $1.pack.blobs.count - $1.keep.count) }
        report.packsDeleted = plans.filter { $0.action == .delete }.count
        report.packsRepacked = plans.filter { $0.action == .repack }.count
        report.unusedBytesAfter = plans.filter { $0.action == .keep }.reduce(0) { $0 + $1.unusedBytes }
        let keptBytes = plans.filter { $0.action == .keep }.reduce(UInt64(0)) { $0 + $1.pack.length }
        let repackedPayload = plans.filter { $0.action == .repack }.reduce(UInt64(0)) { $0 + $1.usedBytes }
        if options.dryRun || (report.packsDeleted == 0 && report.packsRepacked == 0 && unreferenced.isEmpty) {
            report.bytesAfter = keptBytes + repackedPayload
            if !options.dryRun { report.bytesAfter = report.bytesBefore }
            return report
        }

        // 1. Copy the blobs that stay out of packs being rewritten (their seals are kept; each
        //    is verified on the way so damage is not carried into a new pack).
        progress?("repacking \(report.packsRepacked) packs")
        let assembler = PackAssembler(repository: self, dryRun: false, openDataPacks: 1)
        let decompressor = ZstdDecompressor()
        for plan in plans where plan.action == .repack {
            let name = ObjectName(.data, plan.pack.id.hex)
            let bytes = try await storage.read(name)
            for blob in plan.keep {
                let end = Int(blob.offset) + Int(blob.length)
                guard end <= bytes.count else {
                    throw RepositoryError.blobDamaged(blob.handle, pack: plan.pack.id, detail: "pack truncated; nothing was deleted")
                }
                let envelope = bytes[Int(blob.offset)..<end]
                do {
                    _ = try BlobEnvelope.open(envelope, handle: blob.handle, rawLength: Int(blob.rawLength), keys: keys, decompressor: decompressor)
                } catch {
                    throw RepositoryError.blobDamaged(blob.handle, pack: plan.pack.id, detail: "\(error); nothing was deleted")
                }
                try await assembler.storeSealed(blob.handle, envelope: envelope, rawLength: blob.rawLength)
            }
        }
        // 2. The new index: rewritten packs (written by the assembler as it goes) plus every kept pack.
        try await assembler.flush()
        report.packsWritten = assembler.packsWritten
        let kept = plans.filter { $0.action == .keep }.map(\.pack)
        for batch in Self.batches(kept, maxBlobs: 65_536) { _ = try await saveIndex(IndexFile(packs: batch)) }
        // 3. Only now delete what the new index no longer needs: old index objects, then packs.
        //    Ctrl-C is honoured up to here; from here on the deletions run to the end.
        try Task.checkCancellation()
        progress?("deleting \(indexNames.count) old index objects and \(report.packsDeleted + report.packsRepacked + unreferenced.count) packs")
        report.indexObjectsReplaced = indexNames.count
        plans.removeAll { $0.action == .keep }
        // Truncated packs no longer named by the new index go too: their blobs were found elsewhere.
        let truncated = unusable.filter { storedSizes[$0.id.hex] != nil }.map { ObjectName(.data, $0.id.hex) }
        let doomed = plans.map { ObjectName(.data, $0.pack.id.hex) } + unreferenced.map(\.name) + truncated
        let storage = self.storage
        let staleIndexes = indexNames
        // A prune whose lock lapsed may be running beside a backup that uses these packs.
        try await lock.ensureHeld(before: "deleting anything; the new index is written, nothing was deleted")
        let (failures, bytesAfter) = try await withoutCancellation { () async throws -> ([String], UInt64) in
            var failures: [String] = []
            for name in staleIndexes {
                try lock.ensureHeldByTime(before: "deleting the rest of the old index objects and packs")
                do { try await storage.delete(name) } catch { failures.append("\(name): \(error)") }
            }
            for name in doomed {
                try lock.ensureHeldByTime(before: "deleting the rest of the packs")
                do { try await storage.delete(name) } catch StorageError.notFound {} catch { failures.append("\(name): \(error)") }
            }
            return (failures, try await storage.list(.data).reduce(0) { $0 + UInt64($1.size) })
        }
        report.bytesAfter = bytesAfter
        if !failures.isEmpty { throw PruneError.deleteFailed(failures) }
        return report
    }

    /// Decides per pack; claims each used blob once, from the first pack (in id order) that has it.
    static func planPacks(_ packs: [IndexFile.Pack], unclaimed: inout Set<BlobHandle>, options: PruneOptions, packTarget: Int) -> [PackPlan] {
        var plans: [PackPlan] = []
        for pack in packs {
            var keep: [PackedBlob] = []
            var used: UInt64 = 0, unused: UInt64 = 0
            for blob in pack.blobs {
                if unclaimed.remove(blob.handle) != nil {
                    keep.append(blob)
                    used += UInt64(blob.length)
                } else {
                    unused += UInt64(blob.length)
                }
            }
            let action: PackPlan.Action
            if keep.isEmpty {
                action = .delete
            } else if Double(unused) > options.maxUnusedFraction * Double(used + unused) {
                action = .repack
            } else {
                action = .keep
            }
            plans.append(PackPlan(pack: pack, action: action, keep: keep, usedBytes: used, unusedBytes: unused))
        }
        // Small packs (each backup leaves a few) are merged, when that makes fewer packs: the
        // merged data needs ⌈used / target⌉ packs, plus one for trees.
        let smallLimit = UInt64(Double(packTarget) * options.smallPackFraction)
        let small = plans.indices.filter { plans[$0].action == .keep && plans[$0].pack.length < smallLimit }
        let smallUsed = small.reduce(UInt64(0)) { $0 + plans[$1].usedBytes }
        let mergedCount = Int((smallUsed + UInt64(packTarget) - 1) / UInt64(packTarget)) + 1
        if small.count > mergedCount { for i in small { plans[i].action = .repack } }
        return plans
    }

    static func batches(_ packs: [IndexFile.Pack], maxBlobs: Int) -> [[IndexFile.Pack]] {
        var out: [[IndexFile.Pack]] = []
        var current: [IndexFile.Pack] = []
        var count = 0
        for p in packs {
            if count + p.blobs.count > maxBlobs && !current.isEmpty {
                out.append(current)
                current = []
                count = 0
            }
            current.append(p)
            count += p.blobs.count
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
