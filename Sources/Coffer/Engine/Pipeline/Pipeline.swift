import Glibc

/// A backup runs as a pipeline of stages with bounded hand-offs between them, so both cores
/// stay busy and memory stays bounded whatever the size of the history:
///
/// 1. walk and stat, and 2. read and cut (BackupWalker, one task): folders in name order,
///    unchanged files reused from the parent snapshot, changed ones read and cut into chunks
///    (ChunkReader). The chunks are slices of the read buffer, not copies.
/// 3. id, dedup, compress and seal (BlobStage, in the backup's task group): a `ChunkBatch` of
///    chunks per task; each chunk's keyed id goes into its file's `FileChunks`, and a chunk
///    that no index and no earlier chunk of this run has (`DedupClaims`) is sealed.
/// 4. pack assembly (PackAssembler): sealed blobs spread over open packs.
/// 5. upload (PackUploader): full packs are stored with their own concurrency; a sealing task
///    waits only when `PipelineLimits.packsInFlight` packs are already on their way.
/// 6. index (PackUploader, after each upload): index objects name only stored packs.
///
/// A folder's tree is stored once every file in it has all its chunk ids (the walker drains
/// finished tasks until then), so files of one folder are chunked, sealed and uploaded at once.
///
/// Memory (a local repository): `batchesInFlight` batches, each keeping at most two read buffers
/// alive (`ChunkReader.bufferSize`, 6 MiB with the standard chunker; freed ones go back to a
/// pool of at most 16 MiB), plus one 1 MiB segment per open data pack and per segment write in
/// flight (packs are staged in files, StagedObject), plus each core's compression scratch (up
/// to two chunks), plus the tree pack and the master index. Measured on a 2.1 GiB chat folder:
/// 87 MiB peak RSS (median of three), of which 24 MiB is the process before it reads anything. Against remote
/// storage a pack is held in memory until stored: add the open packs and the `packsInFlight`
/// being uploaded, each at most the pack target plus one blob.
enum PipelineLimits {
    /// Chunk batches being hashed and sealed, or waiting for a core: two per core keeps both
    /// busy while the walker reads ahead.
    static let batchesInFlight = 2 * min(Cores.available, 8)
    /// A batch closes at this many bytes or chunks: big enough that a task costs little next to
    /// its hashing (a 4 KiB database page alone would not be), small enough to spread a file.
    static let batchBytes = 1 << 20
    static let batchChunks = 64

    /// Packs stored at once: a local disk gains nothing from more than two; remote storage
    /// hides its latency behind more.
    static func packsInFlight(for storage: any Storage) -> Int { storage is LocalStorage ? 2 : 4 }
}

enum Cores {
    /// Cores online (at least one).
    static let available: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
