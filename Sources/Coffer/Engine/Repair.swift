import CofferCrypto

/// What `repairIndex` reads.
public struct RepairIndexOptions: Sendable {
    /// Read the sealed header of every pack, also of those the index already describes at
    /// their stored length (by default only packs no index names, or names at another length,
    /// are read).
    public var readAllPacks = false
    /// Read every pack in full and open every blob. A pack with a damaged header or damaged
    /// blobs is salvaged: its intact blobs are copied into new packs, and the pack is deleted.
    public var readData = false
    public var lockWaitNanos: UInt64 = 0
    public init() {}
}

public struct RepairIndexReport: Sendable, Codable {
    /// Pack objects in storage.
    public var packsStored = 0
    /// Packs the new index names.
    public var packsIndexed = 0
    /// Packs no readable index object named (left by an interrupted backup, or whose index
    /// object was lost), now indexed from their headers.
    public var packsAdded = 0
    /// Packs the old index named that are not in storage: their entries are gone.
    public var packsMissing = 0
    /// Packs whose header does not open, or (with readData) holding damaged blobs: left out of
    /// the new index.
    public var packsDamaged = 0
    /// Damaged packs whose intact blobs were copied into new packs, and which were deleted.
    public var packsSalvaged = 0
    public var blobsSalvaged = 0
    /// Blobs that failed to open (readData): no longer indexed.
    public var blobsDamaged = 0
    public var packsWritten = 0
    public var indexObjectsBefore = 0
    /// Index objects that could not be opened or decoded (replaced like the others).
    public var indexObjectsUnreadable = 0
    public var indexObjectsWritten = 0
    public var blobs = 0
}

public enum RepairError: Error, CustomStringConvertible {
    /// Storage failed while reading; nothing was changed.
    case unreadable(String)
    /// The new index is complete; some old objects are still there.
    case deleteFailed([String], packsKept: Int)

    public var description: String {
        switch self {
        case .unreadable(let what):
            return "\(what); nothing was changed"
        case .deleteFailed(let failures, let kept):
            var parts: [String] = []
            if !failures.isEmpty { parts.append("\(failures.count) deletions failed (\(failures.prefix(3).joined(separator: "; ")))") }
            if kept > 0 { parts.append("\(kept) damaged packs an index object may still name were kept") }
            return "the new index is written, but " + parts.joined(separator: "; ") + "; nothing is lost, and the next repair finishes the job"
        }
    }
}

extension Repository {
    /// Rebuilds the index from the packs in storage (restic's `repair index`): every pack that
    /// is there and whose sealed header opens is indexed from its header (or, when an index
    /// object already describes it at its stored length, from that entry); packs that are
    /// missing, truncated or whose header does not open are no longer indexed, so the next
    /// backup of the same files stores their blobs again. With `readData`, every blob is opened
    /// and damaged packs are salvaged. The new index objects are written first, then the old ones
    /// deleted (FORMAT.md §11.2). Holds an exclusive lock. A storage failure while reading
    /// stops the repair before it writes anything.
    public func repairIndex(_ options: RepairIndexOptions = RepairIndexOptions(), progress: (@Sendable (String) -> Void)? = nil) async throws -> RepairIndexReport {
        try await withLock(exclusive: true, waitNanos: options.lockWaitNanos) { lock in
            try await runRepairIndex(options, lock: lock, progress: progress)
        }
    }

    private func runRepairIndex(_ options: RepairIndexOptions, lock: RepositoryLock, progress: (@Sendable (String) -> Void)?) async throws -> RepairIndexReport {
        var report = RepairIndexReport()
        progress?("reading the index")
        var oldObjects: [ObjectName: Set<PackID>] = [:]
        // Per pack, what the readable index objects say (nil when they disagree).
        var described: [PackID: IndexFile.Pack?] = [:]
        for object in try await storage.list(.index) {
            guard let id = IndexID(hex: object.name.name) else { continue }
            report.indexObjectsBefore += 1
            let file: IndexFile
            do { file = try await loadIndexFile(object.name, id: id) } catch let e as RepositoryError {
                switch e {
                case .missingObject:
                    report.indexObjectsBefore -= 1
                    continue
                case .tampered, .malformed:
                    // Unreadable for every reader: it is replaced, its packs indexed from their headers.
                    report.indexObjectsUnreadable += 1
                    oldObjects[object.name] = []
                    continue
                default: throw e
                }
            } catch let e as CancellationError {
                throw e
            } catch {
                throw RepairError.unreadable("\(object.name) could not be read: \(error)")
            }
            oldObjects[object.name] = Set(file.packs.map(\.id))
            for p in file.packs {
                if let known = described[p.id] {
                    if known != p { described[p.id] = .some(nil) }
                } else {
                    described[p.id] = .some(p)
                }
            }
        }

        progress?("listing packs")
        let stored = try await storage.list(.data).filter { PackID(hex: $0.name.name) != nil }
        report.packsStored = stored.count
        let storedIDs = Set(stored.map { PackID(hex: $0.name.name)! })
        report.packsMissing = described.keys.filter { !storedIDs.contains($0) }.count

        var good: [IndexFile.Pack] = []
        var damaged: [(pack: PackID, salvage: [PackedBlob], bytes: [UInt8])] = []
        if options.readData {
            for (i, object) in stored.enumerated() {
                try Task.checkCancellation()
                progress?("reading packs: \(i)/\(stored.count)")
                let id = PackID(hex: object.name.name)!
                let known = described[id] ?? nil
                let bytes: [UInt8]
                do { bytes = try await storage.read(object.name) } catch StorageError.notFound {
                    continue
                } catch {
                    throw RepairError.unreadable("\(object.name) could not be read: \(error)")
                }
                let verdict = verify(bytes, id: id, indexed: known?.blobs)
                if verdict.damaged.isEmpty, let header = verdict.header {
                    good.append(IndexFile.Pack(id: id, length: UInt64(bytes.count), blobs: header))
                } else {
                    report.blobsDamaged += verdict.damaged.count
                    damaged.append((id, verdict.intact, bytes))
                }
            }
        } else {
            var toRead: [StoredObject] = []
            for object in stored {
                let id = PackID(hex: object.name.name)!
                if !options.readAllPacks, let known = described[id] ?? nil, known.length == UInt64(object.size) {
                    good.append(known)
                } else {
                    toRead.append(object)
                }
            }
            progress?("reading \(toRead.count) pack headers")
            let found: [IndexFile.Pack]
            do { found = try await readHeaders(of: toRead) } catch let e as CancellationError {
                throw e
            } catch {
                throw RepairError.unreadable("reading pack headers failed: \(error)")
            }
            good += found
            report.packsDamaged = toRead.count - found.count
        }
        report.packsAdded = good.filter { described[$0.id] == nil }.count

        // Salvage: copy each intact blob of a damaged pack that no good pack holds.
        var have = Set(good.flatMap { $0.blobs.map(\.handle) })
        let assembler = PackAssembler(repository: self, dryRun: false, openDataPacks: 1)
        do {
            for d in damaged {
                for blob in d.salvage where have.insert(blob.handle).inserted {
                    let envelope = d.bytes[Int(blob.offset)..<Int(blob.offset) + Int(blob.length)]
                    try await assembler.storeSealed(blob.handle, envelope: envelope, rawLength: blob.rawLength)
                    report.blobsSalvaged += 1
                }
            }
            try await assembler.flush()
        } catch {
            // No pack upload may still be under way once the lock is released.
            await assembler.abandon()
            throw error
        }
        report.packsDamaged += damaged.count
        report.packsWritten = assembler.packsWritten

        progress?("writing the new index")
        var written = Set(assembler.indexObjectsWritten)
        good.sort { $0.id < $1.id }
        for batch in Self.batches(good, maxBlobs: 65_536) { written.insert(try await saveIndexObject(IndexFile(packs: batch)).name) }
        report.indexObjectsWritten = written.count
        report.packsIndexed = good.count + report.packsWritten
        report.blobs = have.count

        progress?("deleting \(oldObjects.count) old index objects")
        let outcome = try await replaceIndex(old: oldObjects, written: written, doomed: damaged.map(\.pack), lock: lock)
        report.packsSalvaged = outcome.packsDeleted
        if !outcome.failures.isEmpty || outcome.packsKept > 0 {
            throw RepairError.deleteFailed(outcome.failures, packsKept: outcome.packsKept)
        }
        return report
    }

    /// What a pack read in full holds: its header's blobs when the header opens, the blobs that
    /// open, and those that do not. With an unreadable header, the blobs the index listed are tried.
    private func verify(_ bytes: [UInt8], id: PackID, indexed: [PackedBlob]?) -> (header: [PackedBlob]?, intact: [PackedBlob], damaged: [PackedBlob]) {
        let key = keys.metadataSealing
        var header: [PackedBlob]? = nil
        let size = bytes.count, trailerSize = PackFormat.trailerSize
        if size >= trailerSize + XChaCha20Poly1305.overhead,
            let length = try? PackFormat.headerLength(trailer: Array(bytes[(size - trailerSize)...]), packID: id, key: key),
            length <= size - trailerSize
        {
            let offset = size - trailerSize - length
            if let blobs = try? PackFormat.parseHeader(Array(bytes[offset..<(size - trailerSize)]), packID: id, headerOffset: offset, key: key),
                blobs.reduce(0, { $0 + Int($1.length) }) == offset
            {
                header = blobs
            }
        }
        let decompressor = ZstdDecompressor()
        var intact: [PackedBlob] = [], damaged: [PackedBlob] = []
        for blob in header ?? indexed ?? [] {
            let end = Int(blob.offset) + Int(blob.length)
            guard end <= size,
                (try? BlobEnvelope.open(bytes[Int(blob.offset)..<end], handle: blob.handle, rawLength: Int(blob.rawLength), keys: keys, decompressor: decompressor)) != nil
            else {
                damaged.append(blob)
                continue
            }
            intact.append(blob)
        }
        // A header that does not open makes the pack damaged even if every listed blob is fine.
        return (header, intact, damaged)
    }
}
