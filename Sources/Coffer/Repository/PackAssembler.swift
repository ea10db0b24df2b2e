import CofferCrypto

/// Turns new blobs into packs (stage 4, Engine/Pipeline): compresses and seals each blob in
/// the caller's task, spreads data blobs at random over several open packs (so pack
/// boundaries do not trace file offsets, FORMAT.md §7.3), and hands a pack that reaches the
/// target size to the uploader (stage 5), which stores it and then indexes it (stage 6).
final class PackAssembler: @unchecked Sendable {
    // Mutable state is guarded by `lock`; sealing and storage writes happen outside it.
    private struct OpenPack: Sendable {
        var body: [UInt8] = []
        var blobs: [PackedBlob] = []
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
    private let uploader: PackUploader
    private let lock = Lock()
    // Open packs are mutated in place (never copied out): a copy would make every append
    // copy the whole 16 MiB body.
    private var openData: [OpenPack]
    private var openTree = OpenPack()
    private var idleWorkers: [Worker] = []
    /// Packs stored but not yet named by an index object.
    private var unindexed: [IndexFile.Pack] = []
    /// An index object is written every this many packs, so an interrupted backup's packs are
    /// found and reused by the next run (FORMAT.md §11).
    static let packsPerIndex = 8
    private var generator = SystemRandomNumberGenerator()
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
        openData = Array(repeating: OpenPack(), count: openDataPacks)
        uploader = PackUploader(limit: PipelineLimits.packsInFlight(for: repository.storage))
    }

    private func checkoutWorker() -> Worker {
        lock.withLock { idleWorkers.popLast() } ?? Worker(level: repository.config.compressionLevel)
    }

    private func returnWorker(_ w: Worker) { lock.withLock { idleWorkers.append(w) } }

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
        let full = add(handle, envelope: worker.sealed[...], rawLength: UInt32(plaintext.count))
        returnWorker(worker)
        if let full { try await upload(full) }
    }

    /// Hands a full pack to the uploader; returns once it has a slot, not once it is stored.
    private func upload(_ pack: consuming OpenPack, indexAfter threshold: Int = packsPerIndex) async throws {
        let pack = Box(pack)
        try await uploader.submit { try await self.write(pack.take(), indexAfter: threshold) }
    }

    /// Adds an already sealed envelope (prune copies blobs between packs without re-sealing:
    /// the seal binds the blob's id and type, not its pack).
    func storeSealed(_ handle: BlobHandle, envelope: ArraySlice<UInt8>, rawLength: UInt32) async throws {
        if let full = add(handle, envelope: envelope, rawLength: rawLength) { try await upload(full) }
    }

    private func add(_ handle: BlobHandle, envelope: ArraySlice<UInt8>, rawLength: UInt32) -> OpenPack? {
        let target = Int(repository.config.packTargetSize)
        return lock.withLock {
            _blobsAdded += 1
            _bytesAdded += UInt64(rawLength)
            func append(_ pack: inout OpenPack) -> OpenPack? {
                pack.blobs.append(PackedBlob(
                    handle: handle, offset: UInt32(pack.body.count), length: UInt32(envelope.count), rawLength: rawLength))
                if pack.body.isEmpty { pack.body.reserveCapacity(target + (4 << 20)) }
                pack.body.append(contentsOf: envelope)
                guard pack.body.count >= target else { return nil }
                defer { pack = OpenPack() }
                return pack
            }
            switch handle.type {
            case .data: return append(&openData[Int.random(in: 0..<openDataPacks, using: &generator)])
            case .tree: return append(&openTree)
            }
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
        let rest: [OpenPack] = lock.withLock {
            defer {
                openData = openData.map { _ in OpenPack() }
                openTree = OpenPack()
            }
            return Self.merge(openData, target: target) + [openTree].filter { !$0.blobs.isEmpty }
        }
        for pack in rest { try await upload(pack, indexAfter: Int.max) }
        try await uploader.finish()
        try await writeIndex(lock.withLock { defer { unindexed = [] }; return unindexed })
    }

    /// On a failing run: waits until no upload (and no index object after one) is under way,
    /// so that nothing lands after the lock is released.
    func abandon() async { await uploader.abandon() }

    /// Concatenates the blobs of `packs` into as few packs as the target allows: each output
    /// pack is closed once it reaches the target, as `add` would close it.
    private static func merge(_ packs: [OpenPack], target: Int) -> [OpenPack] {
        var out: [OpenPack] = []
        var current = OpenPack()
        for pack in packs where !pack.blobs.isEmpty {
            let base = UInt32(current.body.count)
            if current.body.isEmpty {
                current.body = pack.body
                current.blobs = pack.blobs
            } else {
                current.body.append(contentsOf: pack.body)
                current.blobs += pack.blobs.map {
                    PackedBlob(handle: $0.handle, offset: $0.offset + base, length: $0.length, rawLength: $0.rawLength)
                }
            }
            if current.body.count >= target {
                out.append(current)
                current = OpenPack()
            }
        }
        if !current.blobs.isEmpty { out.append(current) }
        return out
    }

    private func write(_ pack: consuming OpenPack, indexAfter threshold: Int) async throws {
        // Moved out, not copied: the header and padding are appended in place.
        var body: [UInt8] = []
        swap(&body, &pack.body)
        let id = PackID(bytes: repository.random.bytes(32))
        PackFormat.finish(
            body: &body, blobs: pack.blobs, packID: id, key: repository.keys.metadataSealing,
            targetSize: Int(repository.config.packTargetSize), random: repository.random)
        if !dryRun {
            try await repository.storage.write(ObjectName(.data, id.hex), body)
            // Tree blobs are written through to the cache, as their envelopes are stored.
            if let cache = repository.cache {
                for blob in pack.blobs where blob.handle.type == .tree {
                    let key = MetadataCache.treeKey(pack: id, offset: blob.offset, length: blob.length)
                    cache.put("trees", key, Array(body[Int(blob.offset)..<Int(blob.offset) + Int(blob.length)]))
                }
            }
        }
        let due: [IndexFile.Pack] = lock.withLock {
            _bytesStored += UInt64(body.count)
            _packsWritten += 1
            unindexed.append(IndexFile.Pack(id: id, length: UInt64(body.count), blobs: pack.blobs))
            guard unindexed.count >= threshold else { return [] }
            defer { unindexed = [] }
            return unindexed
        }
        try await writeIndex(due)
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

/// Hands a value that is not Sendable-checked (a pack body, uniquely owned) to one task.
private final class Box<T>: @unchecked Sendable {
    private var value: T?
    init(_ value: consuming T) { self.value = value }
    func take() -> T {
        defer { value = nil }
        return value!
    }
}
