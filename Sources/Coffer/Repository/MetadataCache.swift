import Glibc

/// A local copy of the repository's metadata — index objects, snapshot objects and tree blobs —
/// so a daily backup reads almost nothing back from storage. Entries are the stored, sealed
/// bytes, so the cache reveals no more than the storage does; every entry is authenticated
/// again when used, and a bad one is dropped and fetched anew. Lives outside the repository,
/// by default under `~/.cache/coffer/<repository id>`.
public final class MetadataCache: Sendable {
    public let directory: String

    /// Opens (creating if needed) the cache folder for one repository.
    public init?(base: String, repositoryID: Raw256) {
        directory = base + "/" + repositoryID.hex
        for d in [base, directory, directory + "/index", directory + "/snapshots", directory + "/trees", directory + "/runs"] {
            if mkdir(d, 0o700) != 0 && errno != EEXIST { return nil }
        }
    }

    /// `$XDG_CACHE_HOME/coffer` or `~/.cache/coffer`.
    public static func defaultBase(environment: [String: String]) -> String? {
        if let x = environment["XDG_CACHE_HOME"], x.hasPrefix("/") { return x + "/coffer" }
        guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
        return home + "/.cache/coffer"
    }

    func path(_ kind: String, _ name: String) -> String { "\(directory)/\(kind)/\(name)" }

    func get(_ kind: String, _ name: String) -> [UInt8]? {
        let fd = open(path(kind, name), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { return nil }
            done += n
        }
        return bytes
    }

    /// Best effort: a cache that cannot be written only costs speed.
    func put(_ kind: String, _ name: String, _ bytes: [UInt8]) {
        let final = path(kind, name)
        let tmp = final + ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { break }
            done += n
        }
        close(fd)
        if done == bytes.count { rename(tmp, final) } else { unlink(tmp) }
    }

    func remove(_ kind: String, _ name: String) { unlink(path(kind, name)) }

    /// Drops entries of `kind` for which `keep` is false.
    func prune(_ kind: String, keep: (String) -> Bool) {
        guard let d = opendir("\(directory)/\(kind)") else { return }
        var doomed: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            if name.contains(".tmp-") || !keep(name) { doomed.append(name) }
        }
        closedir(d)
        for name in doomed { remove(kind, name) }
    }

    // MARK: Unfinished backups

    /// Records that a backup is starting. Returns its marker and the markers of earlier runs
    /// from this machine that never finished (crashed, killed, or failed after uploading packs).
    func beginBackup() -> (marker: String, earlier: [String]) {
        var earlier: [String] = []
        if let d = opendir(directory + "/runs") {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name.hasPrefix("unfinished-") { earlier.append(name) }
            }
            closedir(d)
        }
        let marker = "unfinished-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open("\(directory)/runs/\(marker)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        return (marker, earlier)
    }

    /// A backup finished: its snapshot names what it uploaded, and the packs of the runs in
    /// `settled` were taken over at its start. Markers of runs still going are left alone.
    func finishBackup(_ marker: String, settled: [String]) {
        for name in settled + [marker] { unlink("\(directory)/runs/\(name)") }
    }

    static func treeKey(pack: PackID, offset: UInt32, length: UInt32) -> String { "\(pack.hex)-\(offset)-\(length)" }
}
