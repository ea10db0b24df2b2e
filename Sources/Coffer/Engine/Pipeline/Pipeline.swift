import Glibc

/// A backup runs as a pipeline of stages with bounded hand-offs between them, so both cores
/// stay busy and memory stays bounded whatever the size of the history:
///
/// 1. walk and stat, and 2. read and cut (BackupWalker, one task): folders in name order,
///    unchanged files reused from the parent snapshot, large changed ones and databases read
///    and cut into chunks (ChunkReader); small ones are only opened, and go into the batch to
///    be read there. The chunks are slices of the read buffer, not copies.
/// 3. id, dedup, compress and seal (BlobStage, in the backup's task group): a `ChunkBatch` of
///    chunks per task, from one large file or from several small ones, which the task first
///    reads and cuts into one arena (SmallFileArena). The batch's keyed ids
///    are computed together, four chunks at a time in vector lanes (Blake2b.hash256(each:)),
///    and each goes into its file's `FileChunks`; a chunk that no index and no earlier chunk
///    of this run has (`DedupClaims`) is sealed.
/// 4. pack assembly (PackAssembler): sealed blobs spread over open packs.
/// 5. upload (PackUploader): full packs are stored with their own concurrency; a sealing task
///    waits only when `PipelineLimits.packsInFlight` packs are already on their way.
/// 6. index (PackUploader, after each upload): index objects name only stored packs.
///
/// A folder's tree is stored once every file in it has all its chunk ids (the walker drains
/// finished tasks until then), so files of one folder are chunked, sealed and uploaded at once.
///
/// Memory (a local repository): `batchesInFlight` batches plus the one being filled, each
/// holding at most `batchBytes` of chunks: a large file's keep at most two of its read buffers
/// alive (`ChunkReader.bufferSize`, 6 MiB with the standard chunker), small files' share one
/// `batchBytes` arena (SmallFileArena); freed buffers go back to a pool of at most 8 MiB. Add
/// one 1 MiB segment per open data pack and per segment write in flight (packs are staged in
/// files, StagedObject), each core's compression scratch (up to two chunks), the tree pack and
/// the master index. Measured on a 2.1 GiB chat folder (2026-12-02, with hash lanes): 85 to
/// 94 MiB peak RSS over three runs, of which 24 MiB is the process before it reads anything.
/// Against remote storage a pack is held in memory until stored: add the open packs and the
/// `packsInFlight` being uploaded, each at most the pack target plus one blob.
enum PipelineLimits {
    /// Chunk batches being hashed and sealed, one per core, while the walker fills the next:
    /// with hash lanes a batch is several milliseconds of work, and more in flight only held
    /// more memory (measured: 3 and 4 per two cores cost 6 to 15 MiB of peak RSS, no time).
    static let batchesInFlight = min(Cores.available, 8)
    /// A batch closes at this many bytes or chunks: big enough that a task costs little next to
    /// its hashing (a 4 KiB database page alone would not be) and that the hash lanes have
    /// several chunks to share, small enough to spread a file over the cores.
    static let batchBytes = 3 << 20
    static let batchChunks = 64
    static let lanesFilled = 8
    /// Files under this size (databases aside) are read whole by their sealing task, into one
    /// buffer per batch (SmallFileArena): a quarter of a batch, so that at least four share it.
    static let smallFile = batchBytes / 4

    /// Packs stored at once: a local disk gains nothing from more than two; remote storage
    /// hides its latency behind more.
    static func packsInFlight(for storage: any Storage) -> Int { storage is LocalStorage ? 2 : 4 }
}

enum Cores {
    /// Cores online (at least one).
    static let available: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
