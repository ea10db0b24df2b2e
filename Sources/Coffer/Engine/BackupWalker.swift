import Glibc
import CofferCrypto

/// An error from a sealing task, as `group.next()` rethrows it into the walk: kept apart from
/// the walker's own errors, so that no catch for one file (skipped, or a database read as
/// plain bytes) swallows another file's failure. `Repository.backup` unwraps it.
struct SealingTaskFailure: Error {
    let underlying: any Error
}

/// Stages 1 and 2 of a backup (Engine/Pipeline): walks the sources, reuses unchanged files,
/// reads and cuts the others, and hands their chunks in batches to concurrent tasks (stage 3,
/// bounded, for backpressure). A folder's tree is stored once its files' ids are all known.
struct BackupWalker {
    let repository: Repository
    let request: BackupRequest
    let index: MasterIndex
    let assembler: PackAssembler
    let progress: (@Sendable (BackupProgress) -> Void)?
    let started: UInt64

    /// Blobs stored or claimed for storing in this run, shared with the sealing tasks.
    private let claims: DedupClaims
    private let stage: BlobStage
    /// Tasks in the group not yet collected by `group.next()`.
    private var inFlight = 0
    /// Chunks cut, and small files to read, not yet handed to a sealing task.
    private var pending = ChunkBatch()
    private var lastReport: UInt64 = 0
    private(set) var summary = BackupSummary()
    private(set) var warnings: [BackupWarning] = []
    /// Notes that do not make the backup partial (a database backed up as plain bytes).
    private(set) var notices: [BackupWarning] = []
    /// Databases captured from a consistent snapshot in this run: their -wal/-shm are left out.
    private var capturedDatabases = Set<[UInt8]>()
    private(set) var absolutePaths: [String] = []
    /// The rules in force: `request.excludes` as the first patterns, then `request.selection`.
    let rules: SelectionRules
    /// Whether regular files are classified by content (a category rule, or a dry run's report).
    /// Only then is a file's 64-byte header read before it is chosen.
    let classifies: Bool
    private(set) var selectionReport = SelectionReport()
    /// The device of the source path being walked (for --one-file-system).
    private var sourceDevice: UInt64 = 0

    init(repository: Repository, request: BackupRequest, index: MasterIndex, assembler: PackAssembler, progress: (@Sendable (BackupProgress) -> Void)?, started: UInt64) {
        self.repository = repository
        self.request = request
        self.index = index
        self.assembler = assembler
        self.progress = progress
        self.started = started
        claims = DedupClaims(index: index)
        stage = BlobStage(keys: repository.keys, claims: claims, assembler: assembler)
        var rules = request.selection
        rules.patterns = request.excludes.compactMap { PathPattern($0) } + rules.patterns
        self.rules = rules
        classifies = request.dryRun || !rules.excludedCategories.isEmpty
        selectionReport.recordsFiles = request.dryRun
    }

    /// Backs up every source path as a node of one root tree. `parentRoot` is the root tree of
    /// the parent snapshot: files whose metadata match it there are not read again.
    mutating func backupRoots(parentRoot: BlobID?, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> BlobID {
        let parent = try await parentTree(parentRoot)
        var entries: [Entry] = []
        var names = Set<[UInt8]>()
        for path in request.paths {
            let absolute = Self.absolute(path)
            absolutePaths.append(absolute)
            let name = Array((absolute.split(separator: "/").last.map(String.init) ?? "root").utf8)
            guard names.insert(name).inserted else { throw BackupError.duplicateSourceName(String(decoding: name, as: UTF8.self)) }
            var st = Glibc.stat()
            guard lstat(absolute, &st) == 0 else { throw BackupError.sourceUnreadable(absolute, FileError(errno: errno, operation: "lstat")) }
            sourceDevice = UInt64(st.st_dev)
            if let entry = try await backupEntry(path: RawPath(absolute), name: name, st: st, previous: parent?.node(named: name), group: &group) {
                entries.append(entry)
            } else if (st.st_mode & S_IFMT) == S_IFDIR {
                throw BackupError.sourceUnreadable(absolute, FileError(errno: EACCES, operation: "opendir"))
            }
        }
        return try await storeTree(Tree(nodes: try await nodes(of: entries, group: &group)), group: &group)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return normalize(path) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let cwd = getcwd(&buf, buf.count) != nil ? String(nulTerminated: buf) : "/"
        return normalize(cwd + "/" + path)
    }

    /// Removes `.`, `..` and repeated slashes without touching the file system.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { _ = parts.popLast(); continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether a regular file is saved: its size and (when classifying) its content category.
    /// Counts it in the selection report either way.
    private mutating func selectFile(path: RawPath, name: [UInt8], st: stat) -> Bool {
        let size = UInt64(max(st.st_size, 0))
        let tooLarge = rules.tooLarge(size)
        guard classifies else { return !tooLarge }
        let category = Self.category(path: path, name: name)
        let keep = !tooLarge && !rules.excludedCategories.contains(category)
        selectionReport.add(category, size: size, saved: keep, path: path.display)
        return keep
    }

    /// The content category from the file's first 64 bytes, or its name when they say nothing.
    static func category(path: RawPath, name: [UInt8]) -> ContentCategory {
        var fd = path.withCString { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | noATime) }
        if fd < 0 && errno == EPERM { fd = path.withCString { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) } }
        guard fd >= 0 else { return ContentCategory.detect(header: [], name: name) }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: ContentCategory.headerLength)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        return ContentCategory.detect(header: Array(header[0..<max(n, 0)]), name: name)
    }

    /// Whether a folder holds one of the `--exclude-if-present` marker names.
    private func hasMarker(_ dir: RawPath) -> Bool {
        rules.excludeIfPresent.contains { marker in
            var st = Glibc.stat()
            return dir.appending(marker).withCString { lstat($0, &st) } == 0
        }
    }

    /// Counts an entry the rules leave out in the selection report; for a dry run, a folder's
    /// files are counted too (staying on its device).
    private mutating func tallySkipped(_ path: RawPath, name: [UInt8], st: stat) {
        guard classifies else { return }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            selectionReport.add(Self.category(path: path, name: name), size: UInt64(max(st.st_size, 0)), saved: false, path: path.display)
        case S_IFDIR where request.dryRun:
            guard let dir = path.withCString({ opendir($0) }) else { return }
            var names: [[UInt8]] = []
            while let e = readdir(dir) {
                let n = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
                if n != [46] && n != [46, 46] { names.append(n) }
            }
            closedir(dir)
            for n in names {
                let child = path.appending(n)
                var cst = Glibc.stat()
                guard child.withCString({ lstat($0, &cst) }) == 0 else { continue }
                if (cst.st_mode & S_IFMT) == S_IFDIR && cst.st_dev != st.st_dev { continue }
                tallySkipped(child, name: n, st: cst)
            }
        default:
            break
        }
    }

    /// A folder entry as the walk leaves it: a node, or a file whose chunks are still being
    /// hashed by sealing tasks.
    enum Entry {
        case node(TreeNode)
        case file(name: [UInt8], metadata: NodeMetadata, size: UInt64, chunks: FileChunks, previous: TreeNode.Content?)
    }

    /// The nodes of a folder's entries, once every chunk of its files has its id: collects
    /// finished tasks until then (their errors end the backup here).
    private mutating func nodes(of entries: [Entry], group: inout ThrowingTaskGroup<Void, any Error>) async throws -> [TreeNode] {
        if !pending.isEmpty { try await submitPending(group: &group) }
        for case .file(_, _, _, let chunks, _) in entries {
            while !chunks.isComplete {
                guard try await group.next() != nil else { break }
                inFlight -= 1
            }
        }
        var nodes: [TreeNode] = []
        nodes.reserveCapacity(entries.count)
        for entry in entries {
            switch entry {
            case .node(let node): nodes.append(node)
            case .file(let name, let metadata, var size, let fileChunks, let previous):
                switch fileChunks.read {
                case .failure(let error)?:
                    warn(fileChunks.readPath ?? RawPath(bytes: name), error)
                    continue
                case .success(let bytes)?: size = bytes
                case nil: break
                }
                let chunks = fileChunks.all
                switch previous {
                case .file(let oldSize, let oldChunks)? where oldSize == size && oldChunks == chunks: summary.filesUnmodified += 1
                case .some: summary.filesChanged += 1
                case nil: summary.filesNew += 1
                }
                let lists = chunks.count > ChunkList.threshold ? try await storeChunkLists(chunks, group: &group) : nil
                nodes.append(TreeNode(name: name, metadata: metadata, content: .file(size: size, chunks: chunks), chunkLists: lists))
            }
        }
        return nodes
    }

    /// One directory entry; nil when it is skipped (excluded, unreadable, or not a kind we keep).
    private mutating func backupEntry(path: RawPath, name: [UInt8], st: stat, previous: TreeNode?, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> Entry? {
        try Task.checkCancellation()
        let meta = Self.metadata(st)
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            guard selectFile(path: path, name: name, st: st) else { return nil }
            // A live database's main file can stay unchanged while commits pile up in its -wal.
            if let previous, !hasPendingWAL(path), let reused = reuse(previous, st: st) {
                return .node(TreeNode(name: name, metadata: meta, content: reused, chunkLists: previous.chunkLists))
            }
            guard let (size, chunks, fileMeta) = try await backupFile(path: path, group: &group) else { return nil }
            return .file(name: name, metadata: fileMeta, size: size, chunks: chunks, previous: previous?.content)
        case S_IFDIR:
            var previousSubtree: BlobID? = nil
            if case .directory(let id)? = previous?.content { previousSubtree = id }
            guard let subtree = try await backupDirectory(path: path, previous: previousSubtree, group: &group) else { return nil }
            summary.directories += 1
            return .node(TreeNode(name: name, metadata: meta, content: .directory(subtree: subtree)))
        case S_IFLNK:
            var buf = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = path.withCString { readlink($0, &buf, buf.count) }
            guard n >= 0 else {
                warn(path, FileError(errno: errno, operation: "readlink"))
                return nil
            }
            return .node(TreeNode(name: name, metadata: meta, content: .symlink(target: Array(buf[0..<n]))))
        default:
            return nil  // sockets, FIFOs and devices are not backed up (FORMAT.md §9)
        }
    }

    private mutating func backupDirectory(path: RawPath, previous: BlobID?, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> BlobID? {
        let parent = try await parentTree(previous)
        guard let dir = path.withCString({ opendir($0) }) else {
            warn(path, FileError(errno: errno, operation: "opendir"))
            return nil
        }
        var entries: [[UInt8]] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name == [46] || name == [46, 46] { continue }
            entries.append(name)
        }
        closedir(dir)
        entries.sort { $0.lexicographicallyPrecedes($1) }
        var nodes: [Entry] = []
        // Without directory-only patterns or a report, excluded names are not even lstat'ed.
        let typeMatters = rules.needsEntryType || classifies
        for name in entries {
            let childPath = path.appending(name)
            // Names sort bytewise, so `db` was backed up before `db-shm` and `db-wal`.
            if isSidecarOfCapturedDatabase(childPath) { continue }
            if !typeMatters && rules.excludes(path: childPath.bytes, isDirectory: false) { continue }
            var st = Glibc.stat()
            guard childPath.withCString({ lstat($0, &st) }) == 0 else {
                if typeMatters && rules.excludes(path: childPath.bytes, isDirectory: false) { continue }
                warn(childPath, FileError(errno: errno, operation: "lstat"))
                continue
            }
            let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
            if typeMatters && rules.excludes(path: childPath.bytes, isDirectory: isDirectory) {
                tallySkipped(childPath, name: name, st: st)
                continue
            }
            if isDirectory {
                if rules.oneFileSystem && UInt64(st.st_dev) != sourceDevice {
                    // A mount point is kept as an empty folder (as restic does), its content is not.
                    let empty = try await storeTree(Tree(nodes: []), group: &group)
                    summary.directories += 1
                    nodes.append(.node(TreeNode(name: name, metadata: Self.metadata(st), content: .directory(subtree: empty))))
                    continue
                }
                if !rules.excludeIfPresent.isEmpty && hasMarker(childPath) {
                    tallySkipped(childPath, name: name, st: st)
                    continue
                }
            }
            if let entry = try await backupEntry(path: childPath, name: name, st: st, previous: parent?.node(named: name), group: &group) {
                nodes.append(entry)
            }
        }
        return try await storeTree(Tree(nodes: try await self.nodes(of: nodes, group: &group)), group: &group)
    }

    private mutating func backupFile(path: RawPath, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> (UInt64, FileChunks, NodeMetadata)? {
        // O_NOATIME spares a write per file; the kernel allows it only to the file's owner.
        var fd = path.withCString { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | Self.noATime) }
        if fd < 0 && errno == EPERM { fd = path.withCString { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) } }
        guard fd >= 0 else {
            warn(path, FileError(errno: errno, operation: "open"))
            return nil
        }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else {
            warn(path, FileError(errno: errno, operation: "fstat"))
            return nil
        }
        // A SQLite database that is in use (a non-empty -wal, or a -journal) is read from a
        // consistent snapshot of it (same pages, same cutter). One at rest is read as it is, so
        // it restores bit for bit — unless it changed while being read; then the snapshot.
        // The node keeps the live file's metadata and the size of what was read.
        let isDatabase = request.consistentDatabases && Self.isSQLite(fd)
        // A small file (not a database, whose reads check for concurrent writes) is read and
        // cut by its sealing task, on its own descriptor.
        if !isDatabase && st.st_size < PipelineLimits.smallFile {
            if let owned = OwnedDescriptor(duplicating: fd) {
                let chunks = FileChunks()
                pending.appendRead(.init(descriptor: owned, size: Int(st.st_size), cutter: cutter(for: fd), file: chunks), path: path)
                summary.bytesProcessed += UInt64(st.st_size)
                if pending.isFull { try await submitPending(group: &group) }
                report(path)
                return (UInt64(st.st_size), chunks, Self.metadata(st))
            }
        }
        var result: (bytes: UInt64, chunks: FileChunks)? = nil
        do {
            if !isDatabase || !isInUse(path) {
                let plain = try await chunkFile(fd, sizeHint: Int(st.st_size), path: path, group: &group)
                if !isDatabase || Self.unchanged(fd, since: st) { result = plain } else { pending.removeChunks(of: plain.chunks) }
            }
            if result == nil {
                do {
                    let snapshot = try SQLiteSnapshot.capture(database: path.bytes)
                    defer { snapshot.remove() }
                    let sfd = open(snapshot.path, O_RDONLY | O_CLOEXEC)
                    guard sfd >= 0 else { throw FileError(errno: errno, operation: "open the database snapshot") }
                    defer { close(sfd) }
                    var sst = Glibc.stat()
                    _ = fstat(sfd, &sst)
                    result = try await chunkFile(sfd, sizeHint: Int(sst.st_size), path: path, group: &group)
                    capturedDatabases.insert(path.bytes)
                } catch is CancellationError {
                    throw CancellationError()
                } catch let failure as SealingTaskFailure {
                    throw failure  // another file's batch failed: the backup ends, as anywhere else
                } catch {
                    notices.append(BackupWarning(path: path.display, message: "backed up as plain bytes: \(error)"))
                    guard lseek(fd, 0, SEEK_SET) == 0 else { throw FileError(errno: errno, operation: "seek") }
                    result = try await chunkFile(fd, sizeHint: Int(st.st_size), path: path, group: &group)
                }
            }
        } catch let e as FileError {
            warn(path, e)
            return nil
        }
        report(path)
        guard let result else { return nil }
        return (result.bytes, result.chunks, Self.metadata(st))
    }

    /// Reads and cuts a file from its current offset to its end, handing the chunks in batches
    /// to sealing tasks; returns the bytes read and the file's chunk ids, which those tasks fill.
    private mutating func chunkFile(_ fd: Int32, sizeHint: Int, path: RawPath, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> (bytes: UInt64, chunks: FileChunks) {
        var reader = ChunkReader(fd: fd, cutter: cutter(for: fd), sizeHint: sizeHint)
        let chunks = FileChunks()
        do {
            while let chunk = try reader.next() {
                pending.append(chunk, of: chunks)
                summary.bytesProcessed += UInt64(chunk.count)
                if pending.isFull {
                    try await submitPending(group: &group)
                    report(path)
                    try Task.checkCancellation()
                }
            }
        } catch let e as FileError {
            // The file is skipped: what of it is not yet handed over is not stored either.
            pending.removeChunks(of: chunks)
            throw e
        }
        // A small file's chunks wait in `pending` for the next file's; the folder's `nodes`
        // hands over what is left before it waits for its files.
        return (reader.bytesRead, chunks)
    }

    /// Whether a database is being written: a non-empty -wal or a -journal next to it.
    private func isInUse(_ path: RawPath) -> Bool {
        var st = Glibc.stat()
        let journal = RawPath(bytes: path.bytes + Array("-journal".utf8)).withCString { lstat($0, &st) } == 0
        return journal || hasPendingWAL(path)
    }

    /// Whether an open file still has the size and times it had before it was read.
    static func unchanged(_ fd: Int32, since before: stat) -> Bool {
        var now = Glibc.stat()
        return fstat(fd, &now) == 0 && now.st_size == before.st_size && nanos(now.st_mtim) == nanos(before.st_mtim)
            && nanos(now.st_ctim) == nanos(before.st_ctim)
    }

    /// A parent tree, or nil when there is none or it cannot be read (then files are simply read again).
    private func parentTree(_ id: BlobID?) async throws -> Tree? {
        guard let id else { return nil }
        return try? await repository.loadTree(id, index: index)
    }

    /// The parent's content for a file whose size, mtime, ctime and inode are unchanged and
    /// whose chunks are all still indexed.
    private mutating func reuse(_ previous: TreeNode, st: stat) -> TreeNode.Content? {
        guard !request.force, case .file(let size, let chunks) = previous.content else { return nil }
        let m = previous.metadata
        guard size == UInt64(st.st_size), m.mtimeNanos == Self.nanos(st.st_mtim), m.ctimeNanos == Self.nanos(st.st_ctim),
            m.inode == UInt64(st.st_ino),
            chunks.allSatisfy({ index.contains(BlobHandle(id: $0, type: .data)) }),
            (previous.chunkLists ?? []).allSatisfy({ index.contains(BlobHandle(id: $0, type: .tree)) })
        else { return nil }
        summary.filesUnmodified += 1
        summary.bytesProcessed += size
        return previous.content
    }

    /// Whether the file starts with a SQLite database header (with a valid page size).
    static func isSQLite(_ fd: Int32) -> Bool {
        var header = [UInt8](repeating: 0, count: 100)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 100, 0) }
        return n >= 18 && Cutter.sqlitePageSize(header: Array(header[0..<n])) != nil
    }

    /// Whether consistent capture is on and `<path>-wal` is a non-empty file (committed
    /// changes may sit there, not yet in the main file).
    private func hasPendingWAL(_ path: RawPath) -> Bool {
        guard request.consistentDatabases else { return false }
        var st = Glibc.stat()
        return RawPath(bytes: path.bytes + Array("-wal".utf8)).withCString { lstat($0, &st) } == 0 && st.st_size > 0
    }

    /// `<db>-wal` or `<db>-shm` of a database captured consistently in this run.
    private func isSidecarOfCapturedDatabase(_ path: RawPath) -> Bool {
        guard !capturedDatabases.isEmpty, path.bytes.count > 4 else { return false }
        let suffix = Array(path.bytes.suffix(4))
        guard suffix == Array("-wal".utf8) || suffix == Array("-shm".utf8) else { return false }
        return capturedDatabases.contains(Array(path.bytes.dropLast(4)))
    }

    /// Page-aligned chunks for SQLite databases (when the repository enables it), FastCDC otherwise.
    private func cutter(for fd: Int32) -> Cutter {
        guard repository.config.databasePageChunking else { return .contentDefined(repository.chunker) }
        var header = [UInt8](repeating: 0, count: 100)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 100, 0) }
        if n >= 18, let page = Cutter.sqlitePageSize(header: Array(header[0..<n])) { return .fixed(page) }
        return .contentDefined(repository.chunker)
    }

    private mutating func storeTree(_ tree: Tree, group: inout ThrowingTaskGroup<Void, any Error>) async throws -> BlobID {
        let bytes = tree.encoded()
        guard bytes.count < Int(UInt32.max) - (64 << 20) else { throw RepositoryError.treeTooLarge("a directory") }
        return try await storeMetadata(bytes, group: &group)
    }

    /// A long file's chunk ids as chunk-list blobs (FORMAT.md §9.1); unchanged lists are
    /// already stored and cost nothing.
    private mutating func storeChunkLists(_ chunks: [BlobID], group: inout ThrowingTaskGroup<Void, any Error>) async throws -> [BlobID] {
        var ids: [BlobID] = []
        for list in ChunkList.split(chunks) { ids.append(try await storeMetadata(ChunkList.encode(list), group: &group)) }
        return ids
    }

    /// Stores a tree-type blob unless it is already stored or claimed.
    private mutating func storeMetadata(_ bytes: [UInt8], group: inout ThrowingTaskGroup<Void, any Error>) async throws -> BlobID {
        let handle = BlobHandle(id: repository.keys.blobID(of: bytes), type: .tree)
        if claims.claim(handle) {
            let assembler = self.assembler
            try await addTask(group: &group) { try await assembler.store(handle, plaintext: bytes[...]) }
        }
        return handle.id
    }

    /// Hands the pending chunks to a sealing task (stage 3).
    private mutating func submitPending(group: inout ThrowingTaskGroup<Void, any Error>) async throws {
        let batch = pending
        pending = ChunkBatch()
        let stage = self.stage
        try await addTask(group: &group) { try await stage.process(batch) }
    }

    /// Adds a task to the group, first waiting for one to finish if too many are in flight.
    private mutating func addTask(group: inout ThrowingTaskGroup<Void, any Error>, _ work: @escaping @Sendable () async throws -> Void) async throws {
        if inFlight >= request.maxBlobsInFlight {
            try await group.next()
            inFlight -= 1
        }
        inFlight += 1
        group.addTask {
            do { try await work() } catch let error where !(error is CancellationError) { throw SealingTaskFailure(underlying: error) }
        }
    }

    private mutating func warn(_ path: RawPath, _ error: FileError) {
        summary.filesSkipped += 1
        warnings.append(BackupWarning(path: path.display, message: error.description))
    }

    private mutating func report(_ path: RawPath) {
        guard let progress else { return }
        let now = MonotonicClock.nanos()
        guard now - lastReport >= 100_000_000 else { return }
        lastReport = now
        progress(BackupProgress(
            filesDone: summary.filesNew + summary.filesChanged + summary.filesUnmodified,
            bytesDone: summary.bytesProcessed, bytesAdded: assembler.bytesAdded, currentPath: path.display,
            elapsedNanos: now - started))
    }

    static let noATime: Int32 = 0o1000000  // O_NOATIME, which Glibc's Swift overlay does not export

    static func nanos(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }

    static func metadata(_ st: stat) -> NodeMetadata {
        NodeMetadata(
            mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid, mtimeNanos: nanos(st.st_mtim),
            ctimeNanos: nanos(st.st_ctim), device: UInt64(st.st_dev), inode: UInt64(st.st_ino), links: UInt32(st.st_nlink))
    }
}
