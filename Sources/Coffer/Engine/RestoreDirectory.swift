import Glibc

/// An open folder of a restore target. Restore creates and changes everything through such
/// descriptors, by a single name relative to the folder that holds it, and never follows a
/// symlink there (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `linkat` without `AT_SYMLINK_FOLLOW`).
/// So whatever a snapshot holds, and whatever the restore itself has written so far (a symlink
/// named like a later file, say), no path is resolved again through it, and nothing outside the
/// target is reached (DESIGN.md §2). The descriptor is closed when the last holder lets go: the
/// walk, or a file still being written in the folder.
final class RestoreDirectory: Sendable {
    let descriptor: Int32
    /// Where the folder is, for messages only: never resolved again.
    let path: RawPath

    private init(descriptor: Int32, path: RawPath) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// Opens the target folder, creating it if missing. The target is the user's own choice, so
    /// a symlink given as (or above) the target is followed, as `cd` would.
    static func openTarget(_ path: RawPath) throws -> RestoreDirectory {
        if path.withCString({ mkdir($0, 0o700) }) != 0 && errno != EEXIST {
            throw FileError(errno: errno, operation: "create \(path.display)")
        }
        let fd = path.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw FileError(errno: errno, operation: "open \(path.display)") }
        return RestoreDirectory(descriptor: fd, path: path)
    }

    /// The subfolder `name`: created (mode 0700 until its own mode is set, after its contents)
    /// or, when a folder is there already, reused. Anything else in the way, a symlink above
    /// all, is removed, never followed.
    func makeDirectory(_ name: [UInt8]) throws -> RestoreDirectory {
        try Self.checkName(name, in: path)
        let made = Self.call(name) { mkdirat(descriptor, $0, 0o700) } == 0
        if !made && errno != EEXIST { throw FileError(errno: errno, operation: "create folder \(path.appending(name).display)") }
        var fd = openDirectoryDescriptor(name)
        if fd < 0 && !made && (errno == ENOTDIR || errno == ELOOP) {
            guard Self.call(name, { unlinkat(descriptor, $0, 0) }) == 0, Self.call(name, { mkdirat(descriptor, $0, 0o700) }) == 0 else {
                throw FileError(errno: errno, operation: "replace \(path.appending(name).display) with a folder")
            }
            fd = openDirectoryDescriptor(name)
        }
        guard fd >= 0 else { throw FileError(errno: errno, operation: "open folder \(path.appending(name).display)") }
        return RestoreDirectory(descriptor: fd, path: path.appending(name))
    }

    /// An existing subfolder, opened without following a symlink in its place.
    func openDirectory(_ name: [UInt8]) throws -> RestoreDirectory {
        try Self.checkName(name, in: path)
        let fd = openDirectoryDescriptor(name)
        guard fd >= 0 else { throw FileError(errno: errno, operation: "open folder \(path.appending(name).display)") }
        return RestoreDirectory(descriptor: fd, path: path.appending(name))
    }

    private func openDirectoryDescriptor(_ name: [UInt8]) -> Int32 {
        Self.call(name) { openat(descriptor, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
    }

    /// Creates the file `name` for writing (mode 0600 until its contents are written). What was
    /// there before, from an earlier restore say, is unlinked and a new file made (`O_EXCL`):
    /// never written through, so a symlink or a hard link to a file elsewhere changes nothing
    /// but the name here.
    func createFile(_ name: [UInt8]) throws -> Int32 {
        try Self.checkName(name, in: path)
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = Self.call(name) { openat(descriptor, $0, flags, 0o600) }
        if fd < 0 && errno == EEXIST {
            guard Self.call(name, { unlinkat(descriptor, $0, 0) }) == 0 else { throw FileError(errno: errno, operation: "replace") }
            fd = Self.call(name) { openat(descriptor, $0, flags, 0o600) }
        }
        guard fd >= 0 else { throw FileError(errno: errno, operation: "create") }
        return fd
    }

    /// A symlink `name` → `target`, replacing a file or symlink of that name (not a folder).
    func makeSymlink(_ name: [UInt8], to target: [UInt8]) throws {
        try Self.checkName(name, in: path)
        guard !target.contains(0) else { throw FileError(errno: EINVAL, operation: "symlink (its target holds a NUL byte)") }
        let make = { RawPath(bytes: target).withCString { t in Self.call(name) { symlinkat(t, self.descriptor, $0) } } }
        if make() == 0 { return }
        guard errno == EEXIST, Self.call(name, { unlinkat(descriptor, $0, 0) }) == 0, make() == 0 else {
            throw FileError(errno: errno, operation: "symlink")
        }
    }

    /// A hard link `name` here to the file `existing` in `folder`, replacing a file or symlink
    /// of that name. An `existing` that has meanwhile become a symlink is linked itself, not
    /// followed.
    func makeHardLink(_ name: [UInt8], to existing: [UInt8], in folder: RestoreDirectory) throws {
        try Self.checkName(name, in: path)
        try Self.checkName(existing, in: folder.path)
        _ = Self.call(name) { unlinkat(descriptor, $0, 0) }
        let linked = Self.call(existing) { e in Self.call(name) { linkat(folder.descriptor, e, descriptor, $0, 0) } }
        guard linked == 0 else { throw FileError(errno: errno, operation: "link to \(folder.path.appending(existing).display)") }
    }

    /// Removes the file `name` (a file restore gave up on); a folder is left alone.
    func remove(_ name: [UInt8]) { _ = Self.call(name) { unlinkat(descriptor, $0, 0) } }

    /// Owner, mode and times of the symlink `name` itself (its mode means nothing on Linux).
    func applySymlinkMetadata(_ name: [UInt8], _ meta: NodeMetadata, preserveOwner: Bool) {
        _ = Self.call(name) { n in
            if preserveOwner { _ = fchownat(descriptor, n, meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) }
            return utimensat(descriptor, n, RestoreMetadata.times(meta), AT_SYMLINK_NOFOLLOW)
        }
    }

    /// A single component: a name that is empty, `.`, `..` or holds `/` or NUL would reach
    /// another folder than this one. Decoding refuses such trees (FORMAT.md §9); this keeps the
    /// restore safe on its own.
    static func checkName(_ name: [UInt8], in folder: RawPath) throws {
        if let problem = Tree.nameProblem(name) {
            throw FileError(errno: EINVAL, operation: "refuse the name \(Tree.quoted(name)) in \(folder.display) (it \(problem))")
        }
    }

    /// Runs `body` with `name` as a C string (names are checked to hold no NUL first).
    private static func call<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        RawPath(bytes: name).withCString(body)
    }
}

/// Mode, owner and times, set on an open descriptor of what was restored.
enum RestoreMetadata {
    static let setIDBits: UInt32 = 0o6000

    /// Owner first (a `chown` clears set-id bits), then mode, then times (writing changes the
    /// mtime, so this comes after the contents). Without `preserveOwner` the restoring user
    /// keeps ownership and set-user-id and set-group-id are dropped, as restic and tar do for
    /// someone else's files; they are also dropped when the recorded owner could not be set,
    /// so a set-id program never runs as someone it was not made for. Errors here are not worth
    /// failing a restore.
    static func apply(_ meta: NodeMetadata, to fd: Int32, preserveOwner: Bool) {
        var mode = meta.mode & 0o7777
        if !preserveOwner || fchown(fd, meta.uid, meta.gid) != 0 { mode &= ~setIDBits }
        _ = fchmod(fd, mode_t(mode))
        _ = futimens(fd, times(meta))
    }

    /// Access and modification time, both the recorded mtime.
    static func times(_ meta: NodeMetadata) -> [timespec] {
        let t = timespec(tv_sec: Int(meta.mtimeNanos / 1_000_000_000), tv_nsec: Int(meta.mtimeNanos % 1_000_000_000))
        return [t, t]
    }
}
