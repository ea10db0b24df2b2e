import CofferCrypto

/// The chunk ids of one file being backed up, in file order. The walker reserves a place for
/// each chunk as it cuts it; sealing tasks fill the places in any order. The file's tree node
/// is made once `isComplete`.
final class FileChunks: @unchecked Sendable {
    // Both fields are only touched under `lock`.
    private let lock = Lock()
    private var ids: [BlobID] = []
    private var unfilled = 0

    /// Places for `count` more chunks; returns the index of the first.
    func reserve(_ count: Int) -> Int {
        lock.withLock {
            let first = ids.count
            ids.append(contentsOf: repeatElement(Self.placeholder, count: count))
            unfilled += count
            return first
        }
    }

    func fill(_ index: Int, _ id: BlobID) {
        lock.withLock {
            ids[index] = id
            unfilled -= 1
        }
    }

    var isComplete: Bool { lock.withLock { unfilled == 0 } }

    /// The ids; only once complete.
    var all: [BlobID] {
        lock.withLock {
            precondition(unfilled == 0, "chunk ids read before every chunk was hashed")
            return ids
        }
    }

    private static let placeholder = BlobID(bytes: [UInt8](repeating: 0, count: 32))
}

/// Chunks handed to one sealing task: consecutive chunks of a large file, or the chunks of
/// several small files, so that their keyed ids are computed four at a time
/// (`Blake2b.hash256(each:)`). The chunks are views of the readers' buffers, which they keep
/// alive until the task is done.
struct ChunkBatch: Sendable {
    /// A chunk and its place among its file's chunk ids.
    struct Entry: Sendable {
        let chunk: Chunk
        let file: FileChunks
        let place: Int
    }

    private(set) var entries: [Entry] = []
    private(set) var bytes = 0

    var isEmpty: Bool { entries.isEmpty }
    /// Full at `batchBytes` (four average chunks of a large file), at `batchChunks`, or at
    /// `lanesFilled` chunks once it holds 1 MiB (small files: enough to fill the hash lanes,
    /// without holding 4 MiB of them).
    var isFull: Bool {
        bytes >= PipelineLimits.batchBytes || entries.count >= PipelineLimits.batchChunks
            || (entries.count >= PipelineLimits.lanesFilled && bytes >= 1 << 20)
    }

    /// Drops the chunks of a file that is not stored after all (skipped, or read again).
    mutating func removeChunks(of file: FileChunks) {
        entries.removeAll { $0.file === file }
        bytes = entries.reduce(0) { $0 + $1.chunk.count }
    }

    /// Adds the next chunk of `file`, reserving its place in the file's ids.
    mutating func append(_ chunk: Chunk, of file: FileChunks) {
        entries.append(Entry(chunk: chunk, file: file, place: file.reserve(1)))
        bytes += chunk.count
    }
}

/// Which blobs this run already stores or will store: those in the index it started from,
/// and those claimed since. The first task to claim a new blob seals it; others only use its id.
final class DedupClaims: @unchecked Sendable {
    let index: MasterIndex
    // Only touched under `lock`.
    private let lock = Lock()
    private var claimed = Set<BlobHandle>()

    init(index: MasterIndex) { self.index = index }

    /// True once per blob that is not yet stored: the caller must store it.
    func claim(_ handle: BlobHandle) -> Bool {
        if index.contains(handle) { return false }
        return lock.withLock { claimed.insert(handle).inserted }
    }
}

/// Stage 3 (Pipeline.swift): ids, dedup and sealing of one batch.
struct BlobStage: Sendable {
    let keys: RepositoryKeys
    let claims: DedupClaims
    let assembler: PackAssembler

    func process(_ batch: ChunkBatch) async throws {
        let ids = Chunk.withBytes(of: batch.entries.map(\.chunk)) { keys.blobIDs(each: $0) }
        for (entry, id) in zip(batch.entries, ids) {
            let handle = BlobHandle(id: id, type: .data)
            if claims.claim(handle) { try await assembler.store(handle, plaintext: entry.chunk.bytes) }
            // Filled after storing: a file is complete only when all its new chunks are in a pack.
            entry.file.fill(entry.place, id)
        }
    }
}
