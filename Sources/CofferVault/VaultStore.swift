import CofferCrypto

/// One row of the accounts table.
public struct VaultAccount: Sendable, Equatable {
    /// False for a phantom: a row made by a login to a name nobody registered, so that unknown
    /// names are counted and locked exactly like real ones.
    public var registered: Bool
    /// The serialized OPAQUE registration record (empty for a phantom).
    public var record: [UInt8]
    /// Opaque to the vault: the client's key, sealed under its OPAQUE export key.
    public var sealedKey: [UInt8]
    /// Login starts not (yet) followed by a successful finish since the last success.
    public var failures: Int
    /// Set once the failures reach the limit; never cleared by a login.
    public var locked: Bool
    /// Bumped by every registration, so a login started against an older record cannot finish
    /// against the new one.
    public var generation: Int64
}

/// The vault's persistent state: one SQLite database holding the accounts table. Every
/// read-modify-write runs in one BEGIN IMMEDIATE transaction (`transaction`), so parallel
/// logins cannot race the attempt counter, within this process (the lock) or across processes
/// (SQLite's write lock).
public final class VaultStore: @unchecked Sendable {
    // Safe to share: every use of `db` holds `lock`.
    private let db: SQLiteDatabase
    private let lock = Lock()

    public static let schemaVersion: Int64 = 1

    /// Opens or creates the database at `path`.
    public init(path: String) throws(SQLiteError) {
        db = try SQLiteDatabase(path: path)
        // Account names are compared byte for byte: a BLOB key compares with memcmp.
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS accounts (
                name BLOB PRIMARY KEY NOT NULL,
                registered INTEGER NOT NULL,
                record BLOB NOT NULL,
                sealed_key BLOB NOT NULL,
                failures INTEGER NOT NULL,
                locked INTEGER NOT NULL,
                generation INTEGER NOT NULL
            ) WITHOUT ROWID;
            PRAGMA user_version = 1;
            """)
    }

    /// Runs `body` in one write transaction: all its reads and writes commit together or not
    /// at all, and no other writer runs in between.
    public func transaction<R>(_ body: (Transaction) throws -> R) throws -> R {
        try lock.withLock {
            try db.immediateTransaction { try body(Transaction(db: db)) }
        }
    }

    /// The statements available inside a transaction.
    public struct Transaction {
        fileprivate let db: SQLiteDatabase

        public func account(_ name: [UInt8]) throws(SQLiteError) -> VaultAccount? {
            let s = try db.prepare(
                "SELECT registered, record, sealed_key, failures, locked, generation FROM accounts WHERE name = ?")
            try s.bind(1, blob: name)
            guard try s.step() else { return nil }
            return VaultAccount(
                registered: s.int(0) != 0, record: s.blob(1), sealedKey: s.blob(2), failures: Int(s.int(3)),
                locked: s.int(4) != 0, generation: s.int(5))
        }

        /// Whether any account was registered (phantom rows do not count).
        public func hasRegisteredAccounts() throws(SQLiteError) -> Bool {
            let s = try db.prepare("SELECT 1 FROM accounts WHERE registered = 1 LIMIT 1")
            return try s.step()
        }

        /// Inserts or replaces the whole row.
        public func put(_ name: [UInt8], _ account: VaultAccount) throws(SQLiteError) {
            let s = try db.prepare(
                """
                INSERT OR REPLACE INTO accounts (name, registered, record, sealed_key, failures, locked, generation)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            try s.bind(1, blob: name)
            try s.bind(2, int: account.registered ? 1 : 0)
            try s.bind(3, blob: account.record)
            try s.bind(4, blob: account.sealedKey)
            try s.bind(5, int: Int64(account.failures))
            try s.bind(6, int: account.locked ? 1 : 0)
            try s.bind(7, int: account.generation)
            try s.step()
        }

        public func setCounters(_ name: [UInt8], failures: Int, locked: Bool) throws(SQLiteError) {
            let s = try db.prepare("UPDATE accounts SET failures = ?, locked = ? WHERE name = ?")
            try s.bind(1, int: Int64(failures))
            try s.bind(2, int: locked ? 1 : 0)
            try s.bind(3, blob: name)
            try s.step()
        }
    }
}
