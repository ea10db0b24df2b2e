import Glibc
import CSQLite

/// Why a database could not be snapshotted (locked beyond the timeout, corrupt, not a database).
public struct SQLiteSnapshotError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A consistent copy of a live SQLite database, taken with SQLite's online backup API into a
/// private temporary file. The backup API copies pages one to one (so the page layout, and
/// page-aligned dedup, stays that of the source) and includes what is committed in the -wal
/// file. The copy and its private folder are deleted by `remove()` or on deinit.
public final class SQLiteSnapshot {
    /// The snapshot file: a self-contained database, no -wal needed.
    public let path: String
    private let directory: String
    private var removed = false

    private init(path: String, directory: String) {
        self.path = path
        self.directory = directory
    }

    deinit { remove() }

    /// Deletes the snapshot file and its folder (idempotent).
    public func remove() {
        guard !removed else { return }
        removed = true
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
        rmdir(directory)
    }

    /// Copies the database at `database` (raw path bytes, no NUL) as of one read transaction.
    /// The source is opened read-only and waited on for up to `busyTimeoutMillis` when locked.
    public static func capture(database: [UInt8], busyTimeoutMillis: Int32 = 5000, temporaryDirectory: String? = nil) throws(SQLiteSnapshotError) -> SQLiteSnapshot {
        let base = temporaryDirectory ?? Self.defaultTemporaryDirectory()
        var template = Array((base + "/coffer-sqlite-XXXXXX").utf8CString)
        // mkdtemp creates the folder with mode 0700.
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SQLiteSnapshotError(message: "cannot create a temporary folder in \(base): \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        let snapshot = SQLiteSnapshot(path: directory + "/snapshot.db", directory: directory)
        do throws(SQLiteSnapshotError) {
            try copy(from: database + [0], to: snapshot.path, busyTimeoutMillis: busyTimeoutMillis)
        } catch {
            snapshot.remove()
            throw error
        }
        return snapshot
    }

    public static func capture(database: String, busyTimeoutMillis: Int32 = 5000, temporaryDirectory: String? = nil) throws(SQLiteSnapshotError) -> SQLiteSnapshot {
        try capture(database: Array(database.utf8), busyTimeoutMillis: busyTimeoutMillis, temporaryDirectory: temporaryDirectory)
    }

    private static func defaultTemporaryDirectory() -> String {
        if let t = getenv("TMPDIR"), t.pointee != 0 { return String(cString: t) }
        return "/tmp"
    }

    private static func message(_ db: OpaquePointer?, _ code: Int32, _ what: String) -> String {
        let text = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        return "\(what): \(text)"
    }

    private static func copy(from source: [UInt8], to destination: String, busyTimeoutMillis: Int32) throws(SQLiteSnapshotError) {
        var src: OpaquePointer? = nil
        defer { sqlite3_close_v2(src) }
        // No SQLITE_OPEN_URI: the path is taken literally.
        let rc = source.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { sqlite3_open_v2($0.baseAddress!, &src, SQLITE_OPEN_READONLY, nil) }
        }
        guard rc == SQLITE_OK, src != nil else { throw SQLiteSnapshotError(message: message(src, rc, "cannot open the database")) }
        sqlite3_busy_timeout(src, busyTimeoutMillis)
        // Reading the schema makes "file is not a database" and most corruption show here.
        let schema = sqlite3_exec(src, "SELECT count(*) FROM sqlite_schema", nil, nil, nil)
        guard schema == SQLITE_OK else { throw SQLiteSnapshotError(message: message(src, schema, "cannot read the database")) }

        var dst: OpaquePointer? = nil
        defer { sqlite3_close_v2(dst) }
        let drc = sqlite3_open_v2(destination, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil)
        guard drc == SQLITE_OK, dst != nil else { throw SQLiteSnapshotError(message: message(dst, drc, "cannot create the snapshot file")) }
        guard let backup = sqlite3_backup_init(dst, "main", src, "main") else {
            throw SQLiteSnapshotError(message: message(dst, sqlite3_errcode(dst), "cannot start the snapshot"))
        }
        // One step copies every page within one read transaction on the source: a consistent state.
        let step = sqlite3_backup_step(backup, -1)
        let finish = sqlite3_backup_finish(backup)
        guard step == SQLITE_DONE else { throw SQLiteSnapshotError(message: message(nil, step, "snapshot failed")) }
        guard finish == SQLITE_OK else { throw SQLiteSnapshotError(message: message(dst, finish, "snapshot failed")) }
    }
}
