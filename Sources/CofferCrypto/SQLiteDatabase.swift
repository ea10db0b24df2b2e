import CSQLite

/// Why a statement failed: SQLite's primary result code and its message.
public struct SQLiteError: Error, Equatable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { message }
}

/// One read-write SQLite connection, for state that must survive restarts and stay consistent
/// under concurrent writers (the key vault's attempt counters). Opened in WAL mode with a busy
/// timeout, so another connection's write transaction is waited for, not failed.
///
/// A connection is not safe to use from two threads at once: the owner serialises access (one
/// lock around each transaction). Statements must not outlive their connection.
public final class SQLiteDatabase {
    private let db: OpaquePointer

    /// Opens (creating if needed) the database at `path`, taken literally (no URI).
    public init(path: String, busyTimeoutMillis: Int32 = 5000) throws(SQLiteError) {
        var handle: OpaquePointer? = nil
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let text = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(handle)
            throw SQLiteError(code: rc, message: "cannot open \(path): \(text)")
        }
        db = handle
        sqlite3_busy_timeout(db, busyTimeoutMillis)
        // WAL: readers never block the writer, and a commit is one append plus fsync.
        // synchronous=FULL: a committed counter increment survives a power cut, which is the
        // whole point of counting attempts.
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
    }

    deinit { sqlite3_close_v2(db) }

    /// Runs one or more statements that return no rows of interest.
    public func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "\(sql.prefix(60))") }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var stmt: OpaquePointer? = nil
        let rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "prepare \(sql.prefix(60))") }
        return SQLiteStatement(stmt, database: self)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(db)) }

    /// Runs `body` in a BEGIN IMMEDIATE transaction: the write lock is taken at the start, so
    /// two read-then-write transactions (read a counter, increment it) can never interleave,
    /// not even across processes. Commits if `body` returns, rolls back if it throws.
    public func immediateTransaction<R>(_ body: () throws -> R) throws -> R {
        try execute("BEGIN IMMEDIATE")
        let result: R
        do {
            result = try body()
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        do throws(SQLiteError) {
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        return result
    }

    fileprivate func error(_ code: Int32, _ what: String) -> SQLiteError {
        SQLiteError(code: code, message: "\(what): \(String(cString: sqlite3_errmsg(db)))")
    }
}

/// A prepared statement. Parameters and columns are numbered as in SQLite: binds from 1,
/// columns from 0.
public final class SQLiteStatement {
    private let stmt: OpaquePointer
    // Keeps the connection open while the statement exists.
    private let database: SQLiteDatabase

    fileprivate init(_ stmt: OpaquePointer, database: SQLiteDatabase) {
        self.stmt = stmt
        self.database = database
    }

    deinit { sqlite3_finalize(stmt) }

    /// SQLITE_TRANSIENT: SQLite copies the value before bind returns.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

    public func bind(_ index: Int32, blob: [UInt8]) throws(SQLiteError) {
        // A zero-length blob still binds as a blob (not NULL) when the pointer is non-nil.
        let rc = blob.withUnsafeBytes { buf in
            sqlite3_bind_blob(stmt, index, buf.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buf.count), Self.transient)
        }
        try check(rc, "bind")
    }

    public func bind(_ index: Int32, int: Int64) throws(SQLiteError) {
        try check(sqlite3_bind_int64(stmt, index, int), "bind")
    }

    public func bind(_ index: Int32, text: String) throws(SQLiteError) {
        try check(sqlite3_bind_text(stmt, index, text, -1, Self.transient), "bind")
    }

    public func bindNull(_ index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_null(stmt, index), "bind")
    }

    /// Advances: true when a row is ready to read, false when the statement is done.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error(rc, "step")
        }
    }

    /// Makes the statement runnable again and clears its bindings.
    public func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }

    public func blob(_ column: Int32) -> [UInt8] {
        // Pointer first, then the size (SQLite's documented order).
        guard let p = sqlite3_column_blob(stmt, column) else { return [] }
        let n = Int(sqlite3_column_bytes(stmt, column))
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    public func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    private func check(_ rc: Int32, _ what: String) throws(SQLiteError) {
        guard rc == SQLITE_OK else { throw database.error(rc, what) }
    }
}
