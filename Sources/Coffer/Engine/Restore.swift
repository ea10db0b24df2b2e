import Glibc
import CofferCrypto

public struct RestoreRequest: Sendable {
    public var snapshot: SnapshotID
    public var target: String
    /// Snapshot paths (as `ls` shows them) to restore; empty means everything.
    public var includes: [String] = []
    /// Hold a shared lock, so a prune cannot delete data halfway through (off for read-only storage).
    public var lock = true
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
        var restorer = Restorer(repository: self, index: index, includes: request.includes.map { SnapshotPath.components($0) }, progress: progress)
        let target = RawPath(request.target)
        try restorer.makeDirectory(target)
        try await withThrowingTaskGroup(of: FileOutcome.self) { group in
            try await restorer.restoreTree(snapshot.root, at: target, components: [], group: &group)
            while let outcome = try await group.next() { restorer.record(outcome) }
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

struct Restorer {
    static let filesInFlight = 4

    let repository: Repository
    let index: MasterIndex
    let includes: [[[UInt8]]]
    let progress: (@Sendable (RestoreProgress) -> Void)?
    var result = RestoreResult()
    /// (device, inode) of multiply-linked files already being restored → where.
    var linked: [LinkKey: RawPath] = [:]
    /// Later names of hard-linked files, linked once every file is written.
    var pendingLinks: [(first: RawPath, path: RawPath)] = []
    /// Directories in the order they were entered; their times are set last, deepest first,
    /// since writing into a directory changes its mtime.
    var directories: [(RawPath, NodeMetadata)] = []
    var inFlight = 0
    var lastReport: UInt64 = 0

    init(repository: Repository, index: MasterIndex, includes: [[[UInt8]]], progress: (@Sendable (RestoreProgress) -> Void)?) {
        self.repository = repository
        self.index = index
        self.includes = includes
        self.progress = progress
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

    /// Creates a directory, or reuses one that exists. Anything else in the way (a symlink
    /// above all, which could lead writes outside the target) is removed first.
    mutating func makeDirectory(_ path: RawPath) throws {
        if path.withCString({ mkdir($0, 0o700) }) == 0 { return }
        guard errno == EEXIST else { throw FileError(errno: errno, operation: "mkdir \(path.display)") }
        var st = Glibc.stat()
        if path.withCString({ lstat($0, &st) }) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return }
        guard path.withCString({ unlink($0) }) == 0, path.withCString({ mkdir($0, 0o700) }) == 0 else {
            throw FileError(errno: errno, operation: "replace \(path.display) with a directory")
        }
    }

    mutating func restoreTree(_ id: BlobID, at dir: RawPath, components: [[UInt8]], group: inout ThrowingTaskGroup<FileOutcome, any Error>) async throws {
        let tree = try await repository.loadTree(id, index: index)
        for node in tree.nodes {
            try Task.checkCancellation()
            let comps = components + [node.name]
            let (selected, onTheWay) = selection(comps)
            guard selected || onTheWay else { continue }
            let path = dir.appending(node.name)
            switch node.content {
            case .directory(let subtree):
                try makeDirectory(path)
                directories.append((path, node.metadata))
                try await restoreTree(subtree, at: path, components: comps, group: &group)
                if selected { result.directories += 1 }
            case .file(let size, let chunks):
                guard selected else { continue }
                try await submitFile(path, metadata: node.metadata, size: size, chunks: chunks, group: &group)
            case .symlink(let target):
                guard selected else { continue }
                Self.unlinkIfPresent(path)
                let ok = path.withCString { p in RawPath(bytes: target).withCString { symlink($0, p) } } == 0
                if !ok {
                    result.problems.append(RestoreProblem(path: path.display, message: FileError(errno: errno, operation: "symlink").description))
                    continue
                }
                Self.applyMetadata(path, node.metadata, isSymlink: true)
                result.symlinks += 1
            }
        }
    }

    private mutating func submitFile(_ path: RawPath, metadata meta: NodeMetadata, size: UInt64, chunks: [BlobID], group: inout ThrowingTaskGroup<FileOutcome, any Error>) async throws {
        if meta.links > 1 {
            // Same inode and same content: an inode reused during the backup must not link
            // two different files.
            let key = LinkKey(device: meta.device, inode: meta.inode, size: size, chunks: chunks)
            if let first = linked[key] {
                pendingLinks.append((first, path))
                return
            }
            linked[key] = path
        }
        if inFlight >= Self.filesInFlight, let outcome = try await group.next() {
            inFlight -= 1
            record(outcome)
        }
        inFlight += 1
        let repository = self.repository, index = self.index
        group.addTask {
            await Self.restoreContents(path, metadata: meta, size: size, chunks: chunks, repository: repository, index: index)
        }
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

    /// Hard links, then directory times, once all contents are written.
    mutating func finish() {
        for (first, path) in pendingLinks {
            Self.unlinkIfPresent(path)
            if first.withCString({ f in path.withCString { link(f, $0) } }) == 0 {
                result.hardLinks += 1
            } else {
                result.problems.append(RestoreProblem(path: path.display, message: FileError(errno: errno, operation: "link to \(first.display)").description))
            }
        }
        for (path, meta) in directories.reversed() { Self.applyMetadata(path, meta, isSymlink: false) }
    }

    static func unlinkIfPresent(_ path: RawPath) { _ = path.withCString { unlink($0) } }

    /// Writes one file from its verified chunks; on any failure the file is removed, never left
    /// holding wrong or partial bytes.
    static func restoreContents(_ path: RawPath, metadata meta: NodeMetadata, size: UInt64, chunks: [BlobID], repository: Repository, index: MasterIndex) async -> FileOutcome {
        unlinkIfPresent(path)
        let fd = path.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        guard fd >= 0 else {
            return FileOutcome(path: path, bytes: 0, problem: FileError(errno: errno, operation: "create").description)
        }
        var failure: String? = nil
        var offset: UInt64 = 0
        do {
            // A window of chunks at a time, fetched together (Repository.loadBlobs): bounded
            // memory, and few round trips to a remote repository.
            var start = 0
            while start < chunks.count {
                try Task.checkCancellation()
                var end = start, windowBytes = 0
                while end < chunks.count && (end == start || windowBytes < Self.windowBytes) {
                    windowBytes += Int(index.lookup(BlobHandle(id: chunks[end], type: .data))?.length ?? 0)
                    end += 1
                }
                let plains = try await repository.loadBlobs(chunks[start..<end].map { BlobHandle(id: $0, type: .data) }, index: index)
                for bytes in plains {
                    // All-zero chunks become holes: sparse files stay sparse.
                    if !isZero(bytes) { try writeAll(fd, bytes, at: offset) }
                    offset += UInt64(bytes.count)
                }
                start = end
            }
            if offset != size { failure = "restored \(offset) bytes, snapshot records \(size)" }
            if ftruncate(fd, off_t(offset)) != 0 { throw FileError(errno: errno, operation: "truncate") }
        } catch let e as RepositoryError {
            failure = e.description
        } catch let e as FileError {
            failure = e.description
        } catch {
            failure = "\(error)"
        }
        close(fd)
        if let failure {
            unlinkIfPresent(path)
            return FileOutcome(path: path, bytes: 0, problem: failure)
        }
        applyMetadata(path, meta, isSymlink: false)
        return FileOutcome(path: path, bytes: offset, problem: nil)
    }
    /// Sealed bytes fetched per window of a file; with `filesInFlight` files at once this bounds
    /// restore's memory for data.
    static let windowBytes = 16 << 20

    static func isZero(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            let words = raw.count / 8
            let w = raw.baseAddress.map { UnsafeRawPointer($0) }
            var i = 0
            while i < words {
                if w!.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) != 0 { return false }
                i += 1
            }
            for j in (words * 8)..<raw.count where raw[j] != 0 { return false }
            return true
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileError(errno: errno, operation: "write") }
            done += n
        }
    }

    /// Mode, owner (when root) and times; errors here are not worth failing a restore.
    static func applyMetadata(_ path: RawPath, _ meta: NodeMetadata, isSymlink: Bool) {
        path.withCString { p in
            if geteuid() == 0 { _ = lchown(p, meta.uid, meta.gid) }
            if !isSymlink { _ = chmod(p, mode_t(meta.mode)) }
            let t = timespec(tv_sec: Int(meta.mtimeNanos / 1_000_000_000), tv_nsec: Int(meta.mtimeNanos % 1_000_000_000))
            let times = [t, t]
            _ = utimensat(AT_FDCWD, p, times, AT_SYMLINK_NOFOLLOW)
        }
    }

}

/// Paths inside a snapshot, as `ls` prints them: `/` + source name + `/` + ….
public enum SnapshotPath {
    public static func components(_ path: String) -> [[UInt8]] {
        path.split(separator: "/").filter { $0 != "." && !$0.isEmpty }.map { Array($0.utf8) }
    }
}
