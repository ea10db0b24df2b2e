import CofferCrypto
import Glibc
import Synchronization

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

    // A small file read by its sealing task (`ChunkBatch.SmallFileRead`), not by the walker:
    // until the task has read and cut it, one place stands for its unknown chunks.
    private var readOutcome: Result<UInt64, FileError>? = nil
    /// The file's path, for the warning if its read fails.
    private(set) var readPath: RawPath? = nil

    func expectRead(of path: RawPath) {
        lock.withLock {
            readPath = path
            unfilled += 1
        }
    }

    /// The task has read the file (`bytes`), its chunks' places reserved.
    func finishRead(bytes: UInt64) {
        lock.withLock {
            readOutcome = .success(bytes)
            unfilled -= 1
        }
    }

    /// The task could not read the file: it is skipped, and no place waits for a chunk.
    func failRead(_ error: FileError) {
        lock.withLock {
            readOutcome = .failure(error)
            unfilled = 0
        }
    }

    /// For a file its task read: the bytes read, or why it could not be; once complete.
    var read: Result<UInt64, FileError>? { lock.withLock { readOutcome } }

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

    /// A small file to be read whole by the task, so that reading and cutting small files
    /// runs on every core, not in the walker (it was the walk's slowest stage: 2.9 s of the
    /// 4.8 s it took to back up the sample's media).
    struct SmallFileRead: Sendable {
        let descriptor: OwnedDescriptor
        let size: Int
        let cutter: Cutter
        let file: FileChunks
    }

    private(set) var entries: [Entry] = []
    private(set) var reads: [SmallFileRead] = []
    private(set) var bytes = 0

    var isEmpty: Bool { entries.isEmpty && reads.isEmpty }
    /// Full at `batchBytes` (three average chunks of a large file), at `batchChunks` chunks and
    /// files, or at `lanesFilled` of them once it holds 1 MiB (small files: enough to fill the
    /// hash lanes without holding megabytes of them).
    var isFull: Bool {
        let count = entries.count + reads.count
        return bytes >= PipelineLimits.batchBytes || count >= PipelineLimits.batchChunks
            || (count >= PipelineLimits.lanesFilled && bytes >= 1 << 20)
    }

    /// Adds a small file for the task to read.
    mutating func appendRead(_ read: SmallFileRead, path: RawPath) {
        read.file.expectRead(of: path)
        reads.append(read)
        bytes += read.size
    }

    /// Drops the chunks of a file that is not stored after all (skipped, or read again).
    mutating func removeChunks(of file: FileChunks) {
        entries.removeAll { $0.file === file }
        bytes = entries.reduce(0) { $0 + $1.chunk.count } + reads.reduce(0) { $0 + $1.size }
    }

    /// Adds the next chunk of `file`, reserving its place in the file's ids.
    mutating func append(_ chunk: Chunk, of file: FileChunks) {
        entries.append(Entry(chunk: chunk, file: file, place: file.reserve(1)))
        bytes += chunk.count
    }
}

/// A duplicate of a file's descriptor that a batch owns: closed when the last copy of the
/// batch goes, whether its task read the file or the batch was dropped when the backup
/// stopped. At most `budget` are open at once (a quarter of the process's limit), so held
/// descriptors never starve the walker's own opens; past it, the walker reads the file itself.
final class OwnedDescriptor: Sendable {
    let fd: Int32

    private static let open = Atomic<Int>(0)
    static let budget = max(16, min(512, FileIO.openFileLimit() / 4))

    init?(duplicating fd: Int32) {
        guard Self.open.add(1, ordering: .relaxed).newValue <= Self.budget else {
            Self.open.subtract(1, ordering: .relaxed)
            return nil
        }
        let owned = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard owned >= 0 else {
            Self.open.subtract(1, ordering: .relaxed)
            return nil
        }
        self.fd = owned
    }

    deinit {
        close(fd)
        Self.open.subtract(1, ordering: .relaxed)
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
        var entries = batch.entries
        if !batch.reads.isEmpty { entries += try await read(batch.reads) }
        let ids = Chunk.withBytes(of: entries.map(\.chunk)) { keys.blobIDs(each: $0) }
        for (entry, id) in zip(entries, ids) { try await store(entry.chunk, id: id, file: entry.file, place: entry.place) }
    }

    /// Stores the chunk unless this run already has it, then gives the file its id: filled
    /// after storing, so a file is complete only when all its new chunks are in a pack.
    private func store(_ chunk: Chunk, id: BlobID, file: FileChunks, place: Int) async throws {
        let handle = BlobHandle(id: id, type: .data)
        if claims.claim(handle) { try await assembler.store(handle, plaintext: chunk.bytes) }
        file.fill(place, id)
    }

    /// Reads and cuts the batch's small files into one arena; each file's chunks get their
    /// places before its read is marked finished, so it is never complete too early. A file
    /// that grew past its arena space is read, cut and stored here as a stream.
    private func read(_ reads: [ChunkBatch.SmallFileRead]) async throws -> [ChunkBatch.Entry] {
        var arena = SmallFileArena(capacity: reads.reduce(0) { $0 + $1.size + 1 })
        var entries: [ChunkBatch.Entry] = []
        for r in reads {
            let fd = r.descriptor.fd
            let range: Range<Int>?
            do { range = try arena.read(fd, size: r.size) } catch {
                // The walker skips the file with this warning, as it does files it cannot read.
                r.file.failRead(error)
                continue
            }
            if let range {
                var reader = ChunkReader(wholeFile: range, in: arena.buffer, cutter: r.cutter)
                while let chunk = try reader.next() {
                    entries.append(ChunkBatch.Entry(chunk: chunk, file: r.file, place: r.file.reserve(1)))
                }
                r.file.finishRead(bytes: UInt64(range.count))
                continue
            }
            var reader = ChunkReader(fd: fd, cutter: r.cutter, sizeHint: r.size)
            while true {
                let next: Chunk?
                do { next = try reader.next() } catch let error as FileError {
                    r.file.failRead(error)
                    break
                }
                guard let chunk = next else {
                    r.file.finishRead(bytes: reader.bytesRead)
                    break
                }
                try await store(chunk, id: keys.blobID(of: chunk.bytes), file: r.file, place: r.file.reserve(1))
            }
        }
        return entries
    }
}
