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
    /// Temporary files that interrupted runs left in a local repository's pack folders (an open
    /// pack of a killed backup), removed (or, in a dry run, found).
    public var temporaryFilesRemoved = 0
    public var temporaryBytesRemoved: UInt64 = 0

    enum CodingKeys: String, CodingKey {
        case dryRun, packsBefore, packsDeleted, packsRepacked, packsWritten, packsUnreferenced, indexObjectsReplaced
        case blobsUsed, blobsRemoved, bytesBefore, bytesAfter, unusedBytesBefore, unusedBytesAfter
        case temporaryFilesRemoved, temporaryBytesRemoved
    }
}

public enum PruneError: Error, CustomStringConvertible {
    case missingBlobs(count: Int, example: BlobHandle, damagedPacks: [PackID])
    /// A snapshot's trees cannot all be read, so what it uses is unknown.
    case snapshotUnreadable(SnapshotID, detail: String)
    /// A blob prune must copy into a new pack does not open.
    case blobDamaged(BlobHandle, pack: PackID, detail: String)
    /// The new index is complete; some old objects are still there.
    case deleteFailed([String], packsKept: Int)

    public var description: String {
        switch self {
        case .missingBlobs(let n, let e, let damaged):
            let packs = damaged.isEmpty ? "" : " (indexed packs missing or of the wrong size: \(damaged.map(\.short).joined(separator: ", ")))"
            return "\(n) blobs used by snapshots are in no usable pack (e.g. \(e))\(packs); nothing was deleted"
        case .snapshotUnreadable(let id, let detail):
            return "snapshot \(id.short) cannot be read completely (\(detail)), so the data it uses is unknown; nothing was deleted"
        case .blobDamaged(let h, let pack, let detail):
            return "\(h) in pack \(pack.short), which is being rewritten, is damaged (\(detail)); nothing was deleted"
        case .deleteFailed(let failures, let kept):
            var parts: [String] = []
            if !failures.isEmpty { parts.append("\(failures.count) deletions failed (\(failures.prefix(3).joined(separator: "; ")))") }
            if kept > 0 { parts.append("\(kept) packs an old index object may still name were kept") }
            return "the new index is written, but " + parts.joined(separator: "; ") + "; nothing is lost, and the next prune finishes the job"
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
        // Which packs each index object names: a pack goes only once none of them is left.
        var indexObjects: [ObjectName: Set<PackID>] = [:]
        var packs: [PackID: IndexFile.Pack] = [:]
        var index = MasterIndex()
        for object in try await storage.list(.index) {
            guard let id = IndexID(hex: object.name.name) else { continue }
            let file = try await loadIndexFile(object.name, id: id)
            indexObjects[object.name] = Set(file.packs.map(\.id))
            index.add(file)
            for p in file.packs where packs[p.id] == nil { packs[p.id] = p }
        }
        let stored = try await storage.list(.data)
        // Only packs that are really there, at their indexed length, may supply a blob: a used
        // blob must never be "kept" in a missing pack while its good copy is deleted, and trees
        // are read from a copy that exists.
        let storedSizes = Dictionary(stored.map { ($0.name.name, $0.size) }, uniquingKeysWith: { a, _ in a })
        let unusable = packs.values.filter { storedSizes[$0.id.hex] != Int($0.length) }
        for p in unusable { packs[p.id] = nil }
        index.removePacks(unusable.map(\.id))
        report.packsBefore = stored.count
        report.bytesBefore = stored.reduce(0) { $0 + UInt64($1.size) }
        // The exclusive lock is held, so no live run writes them; the age spares a run whose lock
        // lapsed while it was suspended (it fails at its commit rather than losing a file).
        if let local = storage as? LocalStorage {
            let removed = try local.removeTemporaryFiles(olderThan: Self.temporaryFileAge, dryRun: options.dryRun)
            report.temporaryFilesRemoved = removed.files
            report.temporaryBytesRemoved = UInt64(removed.bytes)
        }
        let unusableIDs = Set(unusable.map(\.id))
        let unreferenced = stored.compactMap { PackID(hex: $0.name.name) }.filter { packs[$0] == nil && !unusableIDs.contains($0) }
        report.packsUnreferenced = unreferenced.count

        progress?("finding used blobs")
        var reach = Reachability()
        for (id, snapshot) in try await snapshots() {
            do { try await reach.add(snapshot, repository: self, index: index) } catch let e as CancellationError {
                throw e
            } catch let e as RepositoryError {
                switch e {
                case .missingObject, .blobDamaged, .blobNotInIndex, .malformed, .tampered:
                    throw PruneError.snapshotUnreadable(id, detail: "\(e)")
                default: throw e
                }
            }
        }
        var unclaimed = reach.used
        report.blobsUsed = unclaimed.count

        var plans = Self.planPacks(packs.values.sorted { $0.id < $1.id }, unclaimed: &unclaimed, options: options, packTarget: Int(config.packTargetSize))
        if let example = unclaimed.first {
            throw PruneError.missingBlobs(count: unclaimed.count, example: example, damagedPacks: unusable.map(\.id).sorted())
        }
        report.unusedBytesBefore = plans.reduce(0) { $0 + $1.unusedBytes }
        report.blobsRemoved = plans.reduce(0) { $0 + ($1.action == .keep ? 0 : $1.pack.blobs.count - $1.keep.count) }
        report.packsDeleted = plans.filter { $0.action == .delete }.count
        report.packsRepacked = plans.filter { $0.action == .repack }.count
        report.unusedBytesAfter = plans.filter { $0.action == .keep }.reduce(0) { $0 + $1.unusedBytes }
        let keptBytes = plans.filter { $0.action == .keep }.reduce(UInt64(0)) { $0 + $1.pack.length }
        let repackedPayload = plans.filter { $0.action == .repack }.reduce(UInt64(0)) { $0 + $1.usedBytes }
        // Truncated or extended packs go too, once no index names them: their blobs were found
        // elsewhere. Missing packs need no delete, but a new index that no longer names them.
        let truncated = unusable.filter { storedSizes[$0.id.hex] != nil }.map(\.id)
        if options.dryRun || (report.packsDeleted == 0 && report.packsRepacked == 0 && unreferenced.isEmpty && unusable.isEmpty) {
            report.bytesAfter = keptBytes + repackedPayload
            if !options.dryRun { report.bytesAfter = report.bytesBefore }
            return report
        }

        // 1. Copy the blobs that stay out of packs being rewritten (their seals are kept; each
        //    is verified on the way so damage is not carried into a new pack).
        progress?("repacking \(report.packsRepacked) packs")
        let assembler = PackAssembler(repository: self, dryRun: false, openDataPacks: 1)
        do {
            let decompressor = ZstdDecompressor()
            for plan in plans where plan.action == .repack {
                let name = ObjectName(.data, plan.pack.id.hex)
                let bytes: [UInt8]
                do { bytes = try await storage.read(name) } catch StorageError.notFound {
                    throw PruneError.missingBlobs(count: plan.keep.count, example: plan.keep[0].handle, damagedPacks: [plan.pack.id])
                }
                for blob in plan.keep {
                    let end = Int(blob.offset) + Int(blob.length)
                    guard end <= bytes.count else {
                        throw PruneError.blobDamaged(blob.handle, pack: plan.pack.id, detail: "the pack ends at byte \(bytes.count), before the blob")
                    }
                    let envelope = bytes[Int(blob.offset)..<end]
                    do {
                        _ = try BlobEnvelope.open(envelope, handle: blob.handle, rawLength: Int(blob.rawLength), keys: keys, decompressor: decompressor)
                    } catch {
                        throw PruneError.blobDamaged(blob.handle, pack: plan.pack.id, detail: Checker.describe(error))
                    }
                    try await assembler.storeSealed(blob.handle, envelope: envelope, rawLength: blob.rawLength)
                }
            }
            // 2. The new index: rewritten packs (written by the assembler as it goes) plus every kept pack.
            try await assembler.flush()
        } catch {
            // No pack upload may still be under way once the lock is released.
            await assembler.abandon()
            throw error
        }
        report.packsWritten = assembler.packsWritten
        var written = Set(assembler.indexObjectsWritten)
        let kept = plans.filter { $0.action == .keep }.map(\.pack)
        for batch in Self.batches(kept, maxBlobs: 65_536) { written.insert(try await saveIndexObject(IndexFile(packs: batch)).name) }
        // 3. Only now delete what the new index no longer needs: old index objects, then the
        //    packs no remaining index object names. Ctrl-C is honoured up to here.
        report.indexObjectsReplaced = indexObjects.count
        plans.removeAll { $0.action == .keep }
        let doomed = plans.map(\.pack.id) + unreferenced + truncated
        progress?("deleting \(indexObjects.count) old index objects and \(doomed.count) packs")
        let outcome = try await replaceIndex(old: indexObjects, written: written, doomed: doomed, lock: lock)
        report.bytesAfter = (try? await storage.list(.data))?.reduce(0) { $0 + UInt64($1.size) } ?? report.bytesBefore
        if !outcome.failures.isEmpty || outcome.packsKept > 0 {
            throw PruneError.deleteFailed(outcome.failures, packsKept: outcome.packsKept)
        }
        return report
    }

    /// Decides per pack; claims each used blob once, from the first pack (in id order) that has it.
    /// Temporary files younger than this (seconds) are left alone.
    static let temporaryFileAge = 3600

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
        // Judged by the blobs a pack holds, not its stored length: a partly filled pack is padded
        // to a power of two (FORMAT.md §7.2), which would hide how little it holds.
        let small = plans.indices.filter {
            plans[$0].action == .keep && plans[$0].usedBytes + plans[$0].unusedBytes < smallLimit
        }
        let smallUsed = small.reduce(UInt64(0)) { $0 + plans[$1].usedBytes }
        let mergedCount = Int((smallUsed + UInt64(packTarget) - 1) / UInt64(packTarget)) + 1
        // When packs are rewritten anyway, small packs join them: the rewrite's last packs
        // are partly filled too, and leaving the small ones beside them would leave the next
        // prune more small packs than one merge needs (a prune must not find work in its
        // own result).
        let rewriting = plans.contains { $0.action == .repack }
        if small.count > mergedCount || (rewriting && !small.isEmpty) { for i in small { plans[i].action = .repack } }
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
