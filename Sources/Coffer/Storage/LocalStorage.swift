import Glibc

/// A repository in a local directory. Writes go to a temporary file that is fsynced, renamed
/// into place and made durable by an fsync of the directory, so no partial object is ever
/// visible and a crash leaves at worst a stray `.tmp-*` file, which listings ignore.
public struct LocalStorage: Storage {
    public let root: String
    public var location: String { root }

    public init(path: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        root = p
    }

    func path(_ name: ObjectName) -> String { root + "/" + name.relativePath }

    /// Creates the folder layout; fails if `root` already holds a repository.
    public func createLayout() throws {
        if mkdir(root, 0o700) != 0 && errno != EEXIST { throw StorageError.io("mkdir", path: root, errno: errno) }
        var dirs = ObjectKind.allCases.filter { $0 != .config }.map { "\(root)/\($0.rawValue)" }
        dirs += (0..<256).map { "\(root)/data/" + Hex.encode([UInt8($0)]) }
        for d in dirs where mkdir(d, 0o700) != 0 && errno != EEXIST {
            throw StorageError.io("mkdir", path: d, errno: errno)
        }
        Self.fsyncDirectory(root)
    }

    public func list(_ kind: ObjectKind) async throws -> [StoredObject] {
        switch kind {
        case .config:
            return try await stat(.config).map { [$0] } ?? []
        case .data:
            var all: [StoredObject] = []
            for p in 0..<256 { all += try listDirectory("\(root)/data/" + Hex.encode([UInt8(p)]), kind: .data) }
            return all
        default:
            return try listDirectory("\(root)/\(kind.rawValue)", kind: kind)
        }
    }

    /// The names in one of the repository's folders (none if it is missing).
    private static func names(in dir: String) throws -> [String] {
        do { return try FileIO.names(in: dir) ?? [] } catch { throw StorageError.io(error.operation, path: dir, errno: error.errno) }
    }

    private func listDirectory(_ dir: String, kind: ObjectKind) throws -> [StoredObject] {
        var out: [StoredObject] = []
        for name in try Self.names(in: dir) {
            guard name.utf8.count == 64, Hex.decode(name) != nil else { continue }  // skips .tmp-*
            var st = Glibc.stat()
            guard lstat(dir + "/" + name, &st) == 0 else { continue }
            out.append(StoredObject(name: ObjectName(kind, name), size: Int(st.st_size)))
        }
        return out
    }

    public func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] {
        let p = path(name)
        // A pack not in the page cache (they are written with O_DIRECT) is a disk read: off
        // the cooperative pool, so the other core keeps decrypting meanwhile.
        return try await BlockingIO.run { try Self.readObject(name, path: p, range: range) }
    }

    private static func readObject(_ name: ObjectName, path p: String, range: Range<Int>?) throws -> [UInt8] {
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw StorageError.notFound(name) }
            throw StorageError.io("open", path: p, errno: errno)
        }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw StorageError.io("fstat", path: p, errno: errno) }
        let size = Int(st.st_size)
        let r = range ?? 0..<size
        guard r.upperBound <= size else { throw StorageError.truncated(name, expected: r.upperBound, actual: size) }
        // Not zeroed first (a range's memset showed in restore profiles): only the bytes read
        // are counted, and a short read is an error, never a buffer returned part-filled.
        var failure: FileError?
        var done = 0
        let out = [UInt8](unsafeUninitializedCapacity: r.count) { buffer, initialized in
            do throws(FileError) { done = try FileIO.readAll(fd, into: UnsafeMutableRawBufferPointer(buffer), at: r.lowerBound) } catch { failure = error }
            initialized = failure == nil ? done : 0
        }
        if let failure { throw StorageError.io("read", path: p, errno: failure.errno) }
        guard done == r.count else { throw StorageError.truncated(name, expected: r.upperBound, actual: r.lowerBound + done) }
        return out
    }

    /// Objects at least this large (packs) are written with direct I/O: on the machines
    /// measured, a write through the page cache costs about ten times the CPU (FORMAT.md has
    /// nothing to say about it; DESIGN §8 has the figures).
    static let directWriteThreshold = 1 << 20

    public func write(_ name: ObjectName, _ bytes: [UInt8]) async throws {
        let final = path(name)
        try await BlockingIO.run { try Self.writeObject(bytes, name: name, final: final) }
    }

    private static func writeObject(_ bytes: [UInt8], name: ObjectName, final: String) throws {
        let dir = String(final[..<final.lastIndex(of: "/")!])
        let tmp = dir + "/.tmp-" + Hex.encode(SystemRandomBytes.bytes(8))
        var direct = bytes.count >= directWriteThreshold && FileIO.directFlag != 0
        var fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? FileIO.directFlag : 0), 0o600)
        if fd < 0 && direct && errno == EINVAL {
            direct = false
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw StorageError.io("create", path: tmp, errno: errno) }
        var ok = false
        defer {
            if !ok {
                close(fd)
                unlink(tmp)
            }
        }
        do {
            try bytes.withUnsafeBytes { raw in
                if direct, try FileIO.writeDirect(fd, raw) { return }
                // Refused at the first write: the same descriptor without O_DIRECT.
                if direct { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~FileIO.directFlag) }
                try FileIO.writeAll(fd, raw, at: 0)
            }
        } catch let error as FileError {
            throw StorageError.io(error.operation, path: tmp, errno: error.errno)
        }
        guard fsync(fd) == 0 else { throw StorageError.io("fsync", path: tmp, errno: errno) }
        ok = true
        close(fd)
        try publish(tmp, as: final, name: name)
    }

    /// Gives a written and fsynced temporary file its object name, then makes that durable.
    /// link(2) instead of rename(2): it refuses to replace an existing object. The temporary
    /// name is gone afterwards, whatever happened.
    static func publish(_ temporary: String, as final: String, name: ObjectName) throws(StorageError) {
        if link(temporary, final) != 0 {
            let e = errno
            unlink(temporary)
            if e == EEXIST { throw .alreadyExists(name) }
            throw .io("link", path: final, errno: e)
        }
        unlink(temporary)
        fsyncDirectory(String(final[..<final.lastIndex(of: "/")!]))
    }

    /// Starts `name`, to be written in pieces and committed (StagedObject).
    func stage(_ name: ObjectName) throws -> StagedObject {
        try StagedObject(name: name, final: path(name))
    }

    /// Temporary files that interrupted runs left in the pack folders, last changed more than
    /// `age` seconds ago: a backup killed while packs were open leaves one per open pack. Only
    /// for a caller holding the exclusive lock (prune), so no live run is writing them; the age
    /// spares one whose lock lapsed while it was suspended, which then fails at its commit
    /// instead of finding its file gone.
    func removeTemporaryFiles(olderThan age: Int, dryRun: Bool = false, now: Int = Int(time(nil))) throws -> (files: Int, bytes: Int) {
        var files = 0, bytes = 0
        for p in 0..<256 {
            let dir = "\(root)/data/" + Hex.encode([UInt8(p)])
            for name in try Self.names(in: dir) where name.hasPrefix(".tmp-") {
                var st = Glibc.stat()
                guard lstat(dir + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, now - Int(st.st_mtim.tv_sec) > age else { continue }
                if dryRun || unlink(dir + "/" + name) == 0 {
                    files += 1
                    // A second name of a stored pack (a run killed between link and unlink) frees nothing.
                    if st.st_nlink == 1 { bytes += Int(st.st_size) }
                }
            }
        }
        return (files, bytes)
    }

    public func delete(_ name: ObjectName) async throws {
        let p = path(name)
        guard unlink(p) == 0 else {
            if errno == ENOENT { throw StorageError.notFound(name) }
            throw StorageError.io("unlink", path: p, errno: errno)
        }
        Self.fsyncDirectory(String(p[..<p.lastIndex(of: "/")!]))
    }

    public func stat(_ name: ObjectName) async throws -> StoredObject? {
        var st = Glibc.stat()
        let p = path(name)
        guard lstat(p, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw StorageError.io("stat", path: p, errno: errno)
        }
        return StoredObject(name: name, size: Int(st.st_size))
    }

    /// True if `root` exists and holds a config object.
    public func repositoryExists() -> Bool { access(root + "/config", F_OK) == 0 }

    static func fsyncDirectory(_ p: String) {
        let fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
