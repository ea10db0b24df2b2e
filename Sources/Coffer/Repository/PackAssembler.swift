import CofferCrypto
import Synchronization

/// Turns new blobs into packs (stage 4, Engine/Pipeline): compresses and seals each blob in
/// the caller's task, spreads data blobs at random over several open packs (so pack
/// boundaries do not trace file offsets, FORMAT.md §7.3), and hands a pack that reaches the
/// target size to the uploader (stage 5), which stores it and then indexes it (stage 6).
final class PackAssembler: @unchecked Sendable {
    // The counters and the list of unindexed packs are guarded by `lock`, each open pack by its
    // slot's lock (PackSlot); sealing and storage writes happen outside both.
    private struct OpenPack: Sendable {
        /// Chosen when the first blob arrives: a staged pack's file is already headed for its name.
        var id: PackID? = nil
        /// The envelopes: in memory (remote storage, tree packs, dry runs) ...
        var body: [UInt8] = []
        /// ... or, for the data packs of a local repository, in a file in the pack's folder,
        /// so that open packs cost a segment of memory each, not up to the pack target.
        var staged: StagedObject? = nil
        var blobs: [PackedBlob] = []
        var count: Int { staged?.count ?? body.count }
    }

    /// Per-task compression context and scratch buffers, reused across blobs.
    final class Worker: @unchecked Sendable {
        let compressor: ZstdCompressor
        var scratch: [UInt8] = []
        var sealed: [UInt8] = []
        init(level: Int32) { compressor = ZstdCompressor(level: level) }
    }

    /// Backups spread data blobs over three open packs; prune packs tightly into one.
    static let backupOpenDataPacks = 3
    private let openDataPacks: Int
    private let beforeIndex: (@Sendable () async throws -> Void)?

    private let repository: Repository
    private let dryRun: Bool
    /// Data packs are staged in files (StagedObject) on a local repository.
    private let local: LocalStorage?
    private let uploader: PackUploader
    private let lock = Lock()
    /// The open packs, each under a lock of its own, so that two tasks copying envelopes into
    /// different packs do not wait for each other (one lock for all had the cores waiting on
    /// it for 14 % of their sleeps). Mutated in place, never copied out: a copy would make
    /// every append copy the whole body.
    private let openData: [PackSlot]
    private let openTree = PackSlot()
    private let idleWorkers = Mutex<[Worker]>([])
    /// Packs stored but not yet named by an index object.
    private var unindexed: [IndexFile.Pack] = []
    /// An index object is written every this many packs, so an interrupted backup's packs are
    /// found and reused by the next run (FORMAT.md §11).
    static let packsPerIndex = 8
    // Counters: written by sealing tasks under `lock`, so read through the accessors below.
    private var _bytesStored: UInt64 = 0
    private var _blobsAdded: UInt64 = 0
    private var _bytesAdded: UInt64 = 0
    private var _packsWritten = 0
    var bytesStored: UInt64 { lock.withLock { _bytesStored } }
    var blobsAdded: UInt64 { lock.withLock { _blobsAdded } }
    var bytesAdded: UInt64 { lock.withLock { _bytesAdded } }
    var packsWritten: Int { lock.withLock { _packsWritten } }
    private var _indexObjectsWritten: [ObjectName] = []
    /// The index objects written so far (prune and repair must know their new index).
    var indexObjectsWritten: [ObjectName] { lock.withLock { _indexObjectsWritten } }

    init(repository: Repository, dryRun: Bool, openDataPacks: Int = backupOpenDataPacks, beforeIndex: (@Sendable () async throws -> Void)? = nil) {
        self.beforeIndex = beforeIndex
        self.repository = repository
        self.dryRun = dryRun
        self.openDataPacks = openDataPacks
        local = dryRun ? nil : repository.storage as? LocalStorage
        openData = (0..<openDataPacks).map { _ in PackSlot() }
        uploader = PackUploader(limit: PipelineLimits.packsInFlight(for: repository.storage))
    }

    private func checkoutWorker() -> Worker {
        idleWorkers.withLock { $0.popLast() } ?? Worker(level: repository.config.compressionLevel)
    }

    private func returnWorker(_ w: Worker) { idleWorkers.withLock { $0.append(w) } }

    /// Seals `plaintext` as `handle` and adds it to a pack, writing the pack if it is full.
    func store(_ handle: BlobHandle, plaintext: ArraySlice<UInt8>) async throws {
        // Lengths in packs and indexes are u32 (FORMAT.md §7.2).
        guard plaintext.count < Int(UInt32.max) - (64 << 20) else { throw RepositoryError.treeTooLarge("\(handle)") }
        let worker = checkoutWorker()
        worker.sealed.removeAll(keepingCapacity: true)
        _ = BlobEnvelope.seal(
            plaintext, handle: handle, key: repository.keys.sealingKey(for: handle.type),
            nonce: repository.random.bytes(24), compressor: worker.compressor, scratch: &worker.scratch,
            appendingTo: &worker.sealed)
        let added: (full: OpenPack?, writes: [StagedObject.SegmentWrite])
        do { added = try add(handle, envelope: worker.sealed[...], rawLength: UInt32(plaintext.count)) } catch {
            returnWorker(worker)
            throw error
        }
        returnWorker(worker)
        try await finishAdding(added)
    }

    /// Performs the segment writes an add produced, then hands on the pack it filled: a staged
    /// pack is committed only after every one of its writes is done.
    private func finishAdding(_ added: (full: OpenPack?, writes: [StagedObject.SegmentWrite])) async throws {
        for w in added.writes { await w.perform() }
        if let full = added.full { try await upload(full) }
    }

    /// Hands a full pack to the uploader; returns once it has a slot, not once it is stored.
    private func upload(_ pack: consuming OpenPack, indexAfter threshold: Int = packsPerIndex) async throws {
        let pack = Box(pack)
        try await uploader.submit { try await self.write(pack.take(), indexAfter: threshold) }
    }

    /// Adds an already sealed envelope (prune copies blobs between packs without re-sealing:
    /// the seal binds the blob's id and type, not its pack).
    func storeSealed(_ handle: BlobHandle, envelope: ArraySlice<UInt8>, rawLength: UInt32) async throws {
        try await finishAdding(try add(handle, envelope: envelope, rawLength: rawLength))
    }

    /// Appends an envelope to an open pack, under the pack's lock so that offsets follow the
    /// order of the bytes. Returns the pack if this filled it, and the segments of a staged pack
    /// that filled, which the caller writes after the lock is released.
    private func add(_ handle: BlobHandle, envelope: ArraySlice<UInt8>, rawLength: UInt32) throws -> (full: OpenPack?, writes: [StagedObject.SegmentWrite]) {
        let target = Int(repository.config.packTargetSize)
        lock.withLock {
            _blobsAdded += 1
            _bytesAdded += UInt64(rawLength)
        }
        let repository = self.repository
        func append(_ pack: inout OpenPack, staging: LocalStorage?) throws -> (OpenPack?, [StagedObject.SegmentWrite]) {
            if pack.blobs.isEmpty {
                let id = PackID(bytes: repository.random.bytes(32))
                pack.id = id
                if let staging { pack.staged = try staging.stage(ObjectName(.data, id.hex)) }
            }
            pack.blobs.append(PackedBlob(
                handle: handle, offset: UInt32(pack.count), length: UInt32(envelope.count), rawLength: rawLength))
            var writes: [StagedObject.SegmentWrite] = []
            if let staged = pack.staged {
                writes = staged.append(envelope)
            } else {
                // A data pack in memory grows to the target: room for it at once, so the
                // body is not copied as it grows. Tree packs are mostly small, and grow.
                if pack.body.isEmpty && handle.type == .data { pack.body.reserveCapacity(target + (4 << 20)) }
                pack.body.append(contentsOf: envelope)
            }
            guard pack.count >= target else { return (nil, writes) }
            defer { pack = OpenPack() }
            return (pack, writes)
        }
        switch handle.type {
        case .data:
            let staging = local
            return try openData[Int.random(in: 0..<openDataPacks)].pack.withLock { try append(&$0, staging: staging) }
        // Tree packs stay in memory: their envelopes also go to the metadata cache.
        case .tree: return try openTree.pack.withLock { try append(&$0, staging: nil) }
        }
    }

    /// Packs already stored that no index names yet (left by an interrupted backup): the next
    /// index object written names them.
    func adopt(_ packs: [IndexFile.Pack]) {
        lock.withLock { unindexed.append(contentsOf: packs) }
    }

    /// Writes every partly filled pack and the index object for the packs not yet indexed.
    /// The open data packs are merged first: each partly filled pack is padded to a power of
    /// two (FORMAT.md §7.3), so one such pack instead of three costs a third of the padding.
    func flush() async throws {
        let target = Int(repository.config.packTargetSize)
        let data = openData.map { $0.takePack() }
        let tree = openTree.takePack()
        let rest = try await Self.merge(data, target: target) + [tree].filter { !$0.blobs.isEmpty }
        for pack in rest { try await upload(pack, indexAfter: Int.max) }
        try await uploader.finish()
        try await writeIndex(lock.withLock { defer { unindexed = [] }; return unindexed })
    }

    /// On a failing run: waits until no upload (and no index object after one) is under way,
    /// so that nothing lands after the lock is released.
    /// Open packs staged in files are removed.
    func abandon() async {
        await uploader.abandon()
        for slot in openData { await slot.takePack().staged?.discard() }
    }

    /// Concatenates the blobs of `packs` into as few packs as the target allows: each output
    /// pack is closed once it reaches the target, as `add` would close it.
    /// Staged packs are merged into the first one's file, read back a segment at a time.
    private static func merge(_ packs: [OpenPack], target: Int) async throws -> [OpenPack] {
        var out: [OpenPack] = []
        var current = OpenPack()
        for pack in packs where !pack.blobs.isEmpty {
            let base = UInt32(current.count)
            if current.blobs.isEmpty {
                current = pack
            } else {
                if let into = current.staged {
                    guard let from = pack.staged else { preconditionFailure("staged and in-memory data packs mixed") }
                    try await from.forEachPiece { piece in
                        for w in into.append(piece[...]) { await w.perform() }
                    }
                    await from.discard()
                } else {
                    current.body.append(contentsOf: pack.body)
                }
                current.blobs += pack.blobs.map {
                    PackedBlob(handle: $0.handle, offset: $0.offset + base, length: $0.length, rawLength: $0.rawLength)
                }
            }
            if current.count >= target {
                out.append(current)
                current = OpenPack()
            }
        }
        if !current.blobs.isEmpty { out.append(current) }
        return out
    }

    private func write(_ pack: consuming OpenPack, indexAfter threshold: Int) async throws {
        let id = pack.id!
        let length: Int
        if let staged = pack.staged {
            let tail = PackFormat.sealedTail(
                bodyLength: staged.count, blobs: pack.blobs, packID: id, key: repository.keys.metadataSealing,
                targetSize: Int(repository.config.packTargetSize), random: repository.random)
            for w in staged.append(tail[...]) { await w.perform() }
            length = staged.count
            try await staged.commit()
        } else {
            length = try await writeInMemory(&pack.body, pack.blobs, id: id)
        }
        let due: [IndexFile.Pack] = lock.withLock {
            _bytesStored += UInt64(length)
            _packsWritten += 1
            unindexed.append(IndexFile.Pack(id: id, length: UInt64(length), blobs: pack.blobs))
            guard unindexed.count >= threshold else { return [] }
            defer { unindexed = [] }
            return unindexed
        }
        try await writeIndex(due)
    }

    /// Seals the header of a pack held in memory and stores it whole; returns its length.
    private func writeInMemory(_ packBody: inout [UInt8], _ blobs: [PackedBlob], id: PackID) async throws -> Int {
        // Moved out, not copied: the header and padding are appended in place.
        var body: [UInt8] = []
        swap(&body, &packBody)
        PackFormat.finish(
            body: &body, blobs: blobs, packID: id, key: repository.keys.metadataSealing,
            targetSize: Int(repository.config.packTargetSize), random: repository.random)
        if !dryRun {
            try await repository.storage.write(ObjectName(.data, id.hex), body)
            // Tree blobs are written through to the cache, as their envelopes are stored.
            if let cache = repository.cache {
                for blob in blobs where blob.handle.type == .tree {
                    let key = MetadataCache.treeKey(pack: id, offset: blob.offset, length: blob.length)
                    cache.put("trees", key, Array(body[Int(blob.offset)..<Int(blob.offset) + Int(blob.length)]))
                }
            }
        }
        return body.count
    }

    /// Index objects are written only after the packs they name are stored. A cancelled run
    /// writes none; one begun is not cancelled halfway, so that it has landed (or failed) by
    /// the time the run lets go of its lock.
    private func writeIndex(_ packs: [IndexFile.Pack]) async throws {
        guard !packs.isEmpty, !dryRun else { return }
        try Task.checkCancellation()
        let (name, size) = try await withoutCancellation { [self] in
            try await beforeIndex?()
            return try await repository.saveIndexObject(IndexFile(packs: packs))
        }
        lock.withLock {
            _bytesStored += UInt64(size)
            _indexObjectsWritten.append(name)
        }
    }
}

extension PackAssembler {
    /// One open pack and its lock.
    private final class PackSlot: Sendable {
        let pack = Mutex(OpenPack())

        /// The pack, leaving an empty one in its place.
        func takePack() -> OpenPack {
            pack.withLock { p in
                let taken = p
                p = OpenPack()
                return taken
            }
        }
    }
}

/// Hands a value that is not Sendable-checked (a pack body, uniquely owned) to one task.
private final class Box<T>: @unchecked Sendable {
    private var value: T?
    init(_ value: consuming T) { self.value = value }
    func take() -> T {
        defer { value = nil }
        return value!
    }
}
