import Glibc
import CofferCrypto

public struct RestoreRequest: Sendable {
    public var snapshot: SnapshotID
    public var target: String
    /// Snapshot paths (as `ls` shows them) to restore; empty means everything.
    public var includes: [String] = []
    /// Hold a shared lock, so a prune cannot delete data halfway through (off for read-only storage).
    public var lock = true
    /// Give files the owner (uid, gid) the snapshot records, and keep their set-user-id and
    /// set-group-id bits. Off by default: a snapshot is data from wherever it was made, and
    /// restored files then belong to whoever restores them, without set-id bits (the sticky bit
    /// stays), as restic and tar do.
    public var preserveOwner = false
    /// Also recompute every data blob's keyed id. The seal already proves each blob against
    /// storage (FORMAT.md §7.1); this proves that whoever wrote it hashed it honestly, at about
    /// a nanosecond per byte.
    public var verifyIDs = false
    public init(snapshot: SnapshotID, target: String) {
        self.snapshot = snapshot
        self.target = target
    }
}

public struct RestoreProblem: Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

public struct RestoreResult: Sendable {
    public var files: UInt64 = 0
    public var directories: UInt64 = 0
    public var symlinks: UInt64 = 0
    public var hardLinks: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Files left out because their data was missing or damaged; never written as if good.
    public var problems: [RestoreProblem] = []
}

public struct RestoreProgress: Sendable {
    public var files: UInt64
    public var bytes: UInt64
    public var currentPath: String
}

extension Repository {
    /// Restores a snapshot into `request.target`. Every blob's seal and keyed id are checked
    /// before its bytes reach a file; a file with a bad blob is removed and reported. Several
    /// files are restored at once so both cores verify and decrypt.
    public func restore(_ request: RestoreRequest, progress: (@Sendable (RestoreProgress) -> Void)? = nil) async throws -> RestoreResult {
        guard request.lock else { return try await runRestore(request, progress: progress) }
        return try await withLock(exclusive: false) { try await runRestore(request, progress: progress) }
    }

    private func runRestore(_ request: RestoreRequest, progress: (@Sendable (RestoreProgress) -> Void)?) async throws -> RestoreResult {
        let snapshot = try await loadSnapshot(request.snapshot)
        let index = try await loadIndex()
        let target = try RestoreDirectory.openTarget(RawPath(request.target))
        var restorer = Restorer(
            repository: self, index: index, snapshot: request.snapshot, target: target,
            includes: request.includes.map { SnapshotPath.components($0) }, preserveOwner: request.preserveOwner,
            verifyIDs: request.verifyIDs, progress: progress)
        try await withThrowingTaskGroup(of: [FileOutcome].self) { group in
            try await restorer.restoreTree(snapshot.root, in: target, components: [], group: &group)
            try await restorer.submitSmallFiles(group: &group)
            while let outcomes = try await group.next() { for o in outcomes { restorer.record(o) } }
        }
        restorer.finish()
        return restorer.result
    }
}

struct LinkKey: Hashable {
    let device: UInt64
    let inode: UInt64
    let size: UInt64
    let chunks: [BlobID]
}

/// What restoring one file's contents came to.
struct FileOutcome: Sendable {
    let path: RawPath
    let bytes: UInt64
    let problem: String?
}

/// Walks a snapshot's trees and recreates them below the target, through open folder
/// descriptors only (RestoreDirectory): the walk holds the chain of folders from the target
/// down to the one it is in, and each file being written holds its own folder.
struct Restorer {
    /// Tasks writing files at once (a task writes one file, or a group of small ones).
    static let filesInFlight = 8
    /// Small files are restored in groups whose chunks are fetched together: their chunks sit
    /// next to each other in packs (they were backed up one after the other), so one range
    /// read serves many files. One request per voice note was most of a restore from S3's
    /// 7524 requests for 2.1 GiB.
    static let smallFile: UInt64 = 1 << 20
    static let smallFilesPerGroup = 64

    let repository: Repository
    let index: MasterIndex
    let snapshot: SnapshotID
    let target: RestoreDirectory
    let includes: [[[UInt8]]]
    let preserveOwner: Bool
    let verifyIDs: Bool
    let progress: (@Sendable (RestoreProgress) -> Void)?
    /// Folders open at once are one per level; this many levels stay well inside the
    /// open-file limit, leaving room for files, packs and the cache.
    let maxDepth: Int
    var result = RestoreResult()
    /// (device, inode) of multiply-linked files already being restored → where (components
    /// below the target).
    var linked: [LinkKey: [[UInt8]]] = [:]
    /// Later names of hard-linked files, linked once every file is written.
    var pendingLinks: [(first: [[UInt8]], path: [[UInt8]])] = []
    /// Folders in the order they were entered; their modes and times are set last, each after
    /// everything inside it (writing into a folder changes its mtime, and a mode such as 0500
    /// would stop the writing).
    var directories: [([[UInt8]], NodeMetadata)] = []
    var inFlight = 0
    /// Small files waiting for their group to fill, and their bytes.
    var smallFiles: [RestoredFile] = []
    var smallFileBytes: UInt64 = 0
    var lastReport: UInt64 = 0

    init(
        repository: Repository, index: MasterIndex, snapshot: SnapshotID, target: RestoreDirectory, includes: [[[UInt8]]],
        preserveOwner: Bool, verifyIDs: Bool, progress: (@Sendable (RestoreProgress) -> Void)?
    ) {
        self.repository = repository
        self.index = index
        self.snapshot = snapshot
        self.target = target
        self.includes = includes
        self.preserveOwner = preserveOwner
        self.verifyIDs = verifyIDs
        self.progress = progress
        maxDepth = max(16, Self.openFileLimit() - 128)
    }

    static func openFileLimit() -> Int { FileIO.openFileLimit() }

    /// Where `components` (below the target) is, for messages.
    func display(_ components: [[UInt8]]) -> String {
        components.reduce(target.path) { $0.appending($1) }.display
    }

    /// Whether a node at `components` is selected, or lies on the way to a selected one.
    func selection(_ components: [[UInt8]]) -> (selected: Bool, onTheWay: Bool) {
        if includes.isEmpty { return (true, true) }
        var onTheWay = false
        for inc in includes {
            if components.starts(with: inc) { return (true, true) }
            if inc.starts(with: components) { onTheWay = true }
        }
        return (false, onTheWay)
    }

    /// A tree, refused whole if it is damaged (a name that is not one file name, names out
    /// of order or twice: FORMAT.md §9), with the error naming the snapshot and the folder.
    func loadTree(_ id: BlobID, at components: [[UInt8]]) async throws -> Tree {
        do {
            return try await repository.loadTree(id, index: index)
        } catch RepositoryError.malformed(let name, let detail) {
            let folder = "/" + components.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
            throw RepositoryError.malformed(name, detail: "\(detail); it is the folder \(folder) of snapshot \(snapshot.short), which was not restored past this point")
        }
    }

    mutating func restoreTree(_ id: BlobID, in dir: RestoreDirectory, components: [[UInt8]], group: inout ThrowingTaskGroup<[FileOutcome], any Error>) async throws {
        let tree = try await loadTree(id, at: components)
        for node in tree.nodes {
            try Task.checkCancellation()
            let comps = components + [node.name]
            let (selected, onTheWay) = selection(comps)
            guard selected || onTheWay else { continue }
            switch node.content {
            case .directory(let subtree):
                guard comps.count <= maxDepth else {
                    throw FileError(errno: EMFILE, operation: "restore \(display(comps)): folders nested deeper than \(maxDepth) levels need a higher open-file limit (RLIMIT_NOFILE)")
                }
                let sub = try dir.makeDirectory(node.name)
                directories.append((comps, node.metadata))
                try await restoreTree(subtree, in: sub, components: comps, group: &group)
                if selected { result.directories += 1 }
            case .file(let size, let chunks):
                guard selected else { continue }
                try await submitFile(node.name, in: dir, components: comps, metadata: node.metadata, size: size, chunks: chunks, group: &group)
            case .symlink(let target):
                guard selected else { continue }
                do {
                    try dir.makeSymlink(node.name, to: target)
                } catch {
                    result.problems.append(RestoreProblem(path: display(comps), message: "\(error)"))
                    continue
                }
                dir.applySymlinkMetadata(node.name, node.metadata, preserveOwner: preserveOwner)
                result.symlinks += 1
            }
        }
    }

    private mutating func submitFile(
        _ name: [UInt8], in dir: RestoreDirectory, components: [[UInt8]], metadata meta: NodeMetadata, size: UInt64, chunks: [BlobID],
        group: inout ThrowingTaskGroup<[FileOutcome], any Error>
    ) async throws {
        if meta.links > 1 {
            // Same inode and same content: an inode reused during the backup must not link
            // two different files.
            let key = LinkKey(device: meta.device, inode: meta.inode, size: size, chunks: chunks)
            if let first = linked[key] {
                pendingLinks.append((first, components))
                return
            }
            linked[key] = components
        }
        let file = RestoredFile(
            directory: dir, name: name, metadata: meta, size: size, chunks: chunks, preserveOwner: preserveOwner, verifyIDs: verifyIDs)
        if size <= Self.smallFile && !chunks.isEmpty {
            smallFiles.append(file)
            smallFileBytes += size
            if smallFileBytes >= UInt64(RestoredFile.windowBytes) || smallFiles.count >= Self.smallFilesPerGroup {
                try await submitSmallFiles(group: &group)
            }
            return
        }
        try await waitForSlot(group: &group)
        let repository = self.repository, index = self.index
        group.addTask { [await file.restore(repository: repository, index: index)] }
    }

    /// Starts the group of small files collected so far.
    mutating func submitSmallFiles(group: inout ThrowingTaskGroup<[FileOutcome], any Error>) async throws {
        guard !smallFiles.isEmpty else { return }
        let files = smallFiles
        smallFiles = []
        smallFileBytes = 0
        try await waitForSlot(group: &group)
        let repository = self.repository, index = self.index
        group.addTask { await RestoredFile.restore(files, repository: repository, index: index) }
    }

    private mutating func waitForSlot(group: inout ThrowingTaskGroup<[FileOutcome], any Error>) async throws {
        if inFlight >= Self.filesInFlight, let outcomes = try await group.next() {
            inFlight -= 1
            for o in outcomes { record(o) }
        }
        inFlight += 1
    }

    mutating func record(_ outcome: FileOutcome) {
        result.bytes += outcome.bytes
        if let problem = outcome.problem {
            result.problems.append(RestoreProblem(path: outcome.path.display, message: problem))
        } else {
            result.files += 1
        }
        guard let progress else { return }
        let now = MonotonicClock.nanos()
        guard now - lastReport >= 100_000_000 else { return }
        lastReport = now
        progress(RestoreProgress(files: result.files, bytes: result.bytes, currentPath: outcome.path.display))
    }

    /// Hard links, then folder modes and times, once all contents are written. Folders are
    /// opened again from the target down, one name at a time and never through a symlink
    /// (FolderChain); the folders entered, taken in reverse, come each after everything
    /// inside it.
    mutating func finish() {
        var chain = FolderChain(target: target)
        for (first, path) in pendingLinks {
            do {
                let from = try chain.open(first.dropLast())
                let to = try chain.open(path.dropLast())
                try to.makeHardLink(path.last!, to: first.last!, in: from)
                result.hardLinks += 1
            } catch {
                result.problems.append(RestoreProblem(path: display(path), message: "\(error)"))
            }
        }
        for (components, meta) in directories.reversed() {
            do {
                RestoreMetadata.apply(meta, to: try chain.open(components[...]).descriptor, preserveOwner: preserveOwner)
            } catch {
                result.problems.append(RestoreProblem(path: display(components), message: "\(error)"))
            }
        }
    }
}

/// The open folders from the target down to the last one asked for, so that folders taken
/// one after another near each other cost an `openat` or two, not one per level.
struct FolderChain {
    let target: RestoreDirectory
    var held: [(name: [UInt8], folder: RestoreDirectory)] = []

    init(target: RestoreDirectory) { self.target = target }

    mutating func open(_ components: ArraySlice<[UInt8]>) throws -> RestoreDirectory {
        var shared = 0
        for (open, wanted) in zip(held, components) {
            guard open.name == wanted else { break }
            shared += 1
        }
        held.removeLast(held.count - shared)
        var folder = held.last?.folder ?? target
        for name in components.dropFirst(shared) {
            folder = try folder.openDirectory(name)
            held.append((name, folder))
        }
        return folder
    }
}

/// One file to restore from its chunks, in the folder that holds it.
struct RestoredFile: Sendable {
    let directory: RestoreDirectory
    let name: [UInt8]
    let metadata: NodeMetadata
    let size: UInt64
    let chunks: [BlobID]
    let preserveOwner: Bool
    let verifyIDs: Bool

    var path: RawPath { directory.path.appending(name) }

    /// Sealed bytes fetched per window of a file; two windows per file (one written, the next
    /// fetched) with `Restorer.filesInFlight` files at once bound restore's memory for data.
    static let windowBytes = 4 << 20

    /// Restores small files whose chunks are fetched with one `loadBlobs`, then written one
    /// file after the other. If the fetch fails, each file is restored on its own, so that a
    /// damaged blob costs only the files that use it.
    static func restore(_ files: [RestoredFile], repository: Repository, index: MasterIndex) async -> [FileOutcome] {
        let handles = files.flatMap { $0.chunks.map { BlobHandle(id: $0, type: .data) } }
        let plains: [[UInt8]]
        do {
            plains = try await repository.loadBlobs(handles, index: index, verifyingIDs: files.contains { $0.verifyIDs })
        } catch {
            var outcomes: [FileOutcome] = []
            for f in files { outcomes.append(await f.restore(repository: repository, index: index)) }
            return outcomes
        }
        var outcomes: [FileOutcome] = []
        var next = 0
        for f in files {
            let mine = plains[next..<(next + f.chunks.count)]
            next += f.chunks.count
            outcomes.append(await f.write(index: index) { window in
                Array(mine[(mine.startIndex + window.lowerBound)..<(mine.startIndex + window.upperBound)])
            })
        }
        return outcomes
    }

    /// Writes the file from its verified chunks; on any failure the file is removed, never left
    /// holding wrong or partial bytes.
    func restore(repository: Repository, index: MasterIndex) async -> FileOutcome {
        await write(index: index) { window in
            try await repository.loadBlobs(
                chunks[window].map { BlobHandle(id: $0, type: .data) }, index: index, verifyingIDs: verifyIDs)
        }
    }

    /// Creates the file and writes its chunks, a window at a time from `fetch`, which returns
    /// the plaintexts of the chunks in a range of `chunks`.
    private func write(index: MasterIndex, _ fetch: @Sendable (Range<Int>) async throws -> [[UInt8]]) async -> FileOutcome {
        let fd: Int32
        do { fd = try directory.createFile(name) } catch {
            return FileOutcome(path: path, bytes: 0, problem: "\(error)")
        }
        var failure: String? = nil
        var writer = FileDataWriter(fd: fd, expectedSize: size)
        do {
            // A window of chunks at a time, fetched together (Repository.loadBlobs): bounded
            // memory, and few round trips to a remote repository. The next window is fetched
            // while this one is written, so the file's reads, decryption and writes overlap
            // instead of taking turns (two windows per file in memory).
            func window(from start: Int) -> Range<Int> {
                var end = start, windowBytes = 0
                while end < chunks.count && (end == start || windowBytes < Self.windowBytes) {
                    windowBytes += Int(index.lookup(BlobHandle(id: chunks[end], type: .data))?.length ?? 0)
                    end += 1
                }
                return start..<end
            }
            var current = window(from: 0)
            var plains = current.isEmpty ? [] : try await fetch(current)
            while !current.isEmpty {
                try Task.checkCancellation()
                let following = window(from: current.upperBound)
                async let next = following.isEmpty ? [] : fetch(following)
                for bytes in plains { try await writer.append(bytes) }
                plains = try await next
                current = following
            }
            try await writer.finish()
            if writer.size != Int(size) { failure = "restored \(writer.size) bytes, snapshot records \(size)" }
        } catch let e as RepositoryError {
            failure = e.description
        } catch let e as FileError {
            failure = e.description
        } catch {
            failure = "\(error)"
        }
        if let failure {
            close(fd)
            directory.remove(name)
            return FileOutcome(path: path, bytes: 0, problem: failure)
        }
        RestoreMetadata.apply(metadata, to: fd, preserveOwner: preserveOwner)
        close(fd)
        return FileOutcome(path: path, bytes: UInt64(writer.size), problem: nil)
    }

}

/// Paths inside a snapshot, as `ls` prints them: `/` + source name + `/` + ….
public enum SnapshotPath {
    public static func components(_ path: String) -> [[UInt8]] {
        path.split(separator: "/").filter { $0 != "." && !$0.isEmpty }.map { Array($0.utf8) }
    }
}
