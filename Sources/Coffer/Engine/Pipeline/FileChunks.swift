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

/// Consecutive chunks of one file, handed to one sealing task. The chunks are views of the
/// reader's buffers, which they keep alive until the task is done.
struct ChunkBatch: Sendable {
    let file: FileChunks
    var chunks: [Chunk] = []
    var bytes = 0

    init(file: FileChunks) { self.file = file }

    var isFull: Bool { bytes >= PipelineLimits.batchBytes || chunks.count >= PipelineLimits.batchChunks }

    mutating func append(_ chunk: Chunk) {
        chunks.append(chunk)
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

    func process(_ batch: ChunkBatch, first: Int) async throws {
        for (offset, chunk) in batch.chunks.enumerated() {
            let bytes = chunk.bytes
            let handle = BlobHandle(id: keys.blobID(of: bytes), type: .data)
            if claims.claim(handle) { try await assembler.store(handle, plaintext: bytes) }
            // Filled after storing: a file is complete only when all its new chunks are in a pack.
            batch.file.fill(first + offset, handle.id)
        }
    }
}
