import CofferCrypto

/// One row of the accounts table (FORMAT.md §16.1).
public struct VaultAccount: Sendable, Equatable {
    /// False for a phantom: a row made by a login to a name nobody registered, so that unknown
    /// names are counted and locked exactly like real ones.
    public var registered: Bool
    /// The serialized OPAQUE registration record (empty for a phantom).
    public var record: [UInt8]
    /// Opaque to the vault: the client's key, sealed under its OPAQUE export key.
    public var sealedKey: [UInt8]
    /// The registration's own OPRF key, sealed under a key derived from vault.key
    /// (`SealedOPRFKey`). Empty for a phantom, and for a legacy account registered by a
    /// version-1 vault under the key derived from the OPRF seed.
    public var sealedOPRFKey: [UInt8]
    /// Login starts not followed by a successful finish since the last registration (password
    /// change). A successful login does not reset it: it only takes back its own start.
    public var failures: Int
    /// The same since the account was first registered: a password change does not reset it.
    public var lifetimeFailures: Int
    /// The same since the last successful login: what that login's owner is told at the next.
    public var unreportedFailures: Int
    /// When the last counted start happened (Unix seconds); 0 for never.
    public var lastFailureAt: Int64
    /// Login starts ever made on this row, so a finish knows whether its own start was the
    /// latest (and `lastFailureAt` must be taken back with it).
    public var loginStarts: Int64
    /// Set once the failures reach a limit; never cleared.
    public var locked: Bool
    /// Bumped by every registration, so a login started against an older record cannot finish
    /// against the new one.
    public var generation: Int64

    /// A row for a name the database has never seen.
    public static let phantom = VaultAccount(
        registered: false, record: [], sealedKey: [], sealedOPRFKey: [], failures: 0, lifetimeFailures: 0,
        unreportedFailures: 0, lastFailureAt: 0, loginStarts: 0, locked: false, generation: 0)

    /// Registered by a version-1 vault: its record answers only under the seed-derived OPRF key,
    /// which version 1 also evaluated for anyone at registration. The owner must re-register.
    public var isLegacy: Bool { registered && sealedOPRFKey.isEmpty }
}

/// Why the database cannot be used.
public struct VaultStoreError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The vault's persistent state: one SQLite database holding the accounts table. Every
/// read-modify-write runs in one BEGIN IMMEDIATE transaction (`transaction`), so parallel
/// logins cannot race the attempt counter, within this process (the lock) or across processes
/// (SQLite's write lock).
public final class VaultStore: @unchecked Sendable {
    // Safe to share: every use of `db` holds `lock`.
    private let db: SQLiteDatabase
    private let lock = Lock()

    public static let schemaVersion: Int64 = 2

    /// Opens or creates the database at `path`, migrating a version-1 database in place.
    public init(path: String) throws {
        db = try SQLiteDatabase(path: path)
        // A replaced record, sealed key or OPRF key is overwritten with zeros in the file,
        // not left in a free page for whoever copies vault.db later.
        try db.execute("PRAGMA secure_delete=ON")
        try db.immediateTransaction {
            let version = try Self.userVersion(db)
            switch version {
            case 0:
                try db.execute(Self.createVersion2)
            case 1:
                try Self.migrateFromVersion1(db)
            case Self.schemaVersion:
                break
            default:
                throw VaultStoreError(
                    message: "\(path) has schema version \(version), newer than this coffer-vault knows (\(Self.schemaVersion)); run a newer coffer-vault")
            }
        }
    }

    // Account names are compared byte for byte: a BLOB key compares with memcmp.
    static let createVersion2 = """
        CREATE TABLE IF NOT EXISTS accounts (
            name BLOB PRIMARY KEY NOT NULL,
            registered INTEGER NOT NULL,
            record BLOB NOT NULL,
            sealed_key BLOB NOT NULL,
            oprf_key BLOB NOT NULL,
            failures INTEGER NOT NULL,
            lifetime_failures INTEGER NOT NULL,
            unreported_failures INTEGER NOT NULL,
            last_failure_at INTEGER NOT NULL,
            login_starts INTEGER NOT NULL,
            locked INTEGER NOT NULL,
            generation INTEGER NOT NULL
        ) WITHOUT ROWID;
        PRAGMA user_version = 2;
        """

    /// Version 1 had no per-registration OPRF key and reset `failures` at every successful
    /// login. Its rows keep their counters; every registered one becomes legacy (empty
    /// `oprf_key`), and the failures it holds are the best lower bound of the others.
    static func migrateFromVersion1(_ db: SQLiteDatabase) throws(SQLiteError) {
        try db.execute(
            """
            ALTER TABLE accounts ADD COLUMN oprf_key BLOB NOT NULL DEFAULT x'';
            ALTER TABLE accounts ADD COLUMN lifetime_failures INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN unreported_failures INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN last_failure_at INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE accounts ADD COLUMN login_starts INTEGER NOT NULL DEFAULT 0;
            UPDATE accounts SET lifetime_failures = failures, unreported_failures = failures;
            PRAGMA user_version = 2;
            """)
    }

    static func userVersion(_ db: SQLiteDatabase) throws(SQLiteError) -> Int64 {
        let s = try db.prepare("PRAGMA user_version")
        _ = try s.step()
        let version = s.int(0)
        // A fresh file says 0 but may hold a version-1 table made before user_version was set.
        if version == 0 {
            let t = try db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'")
            if try t.step() { return 1 }
        }
        return version
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

        static let columns = """
            registered, record, sealed_key, oprf_key, failures, lifetime_failures, unreported_failures, \
            last_failure_at, login_starts, locked, generation
            """

        public func account(_ name: [UInt8]) throws(SQLiteError) -> VaultAccount? {
            let s = try db.prepare("SELECT \(Self.columns) FROM accounts WHERE name = ?")
            try s.bind(1, blob: name)
            guard try s.step() else { return nil }
            return VaultAccount(
                registered: s.int(0) != 0, record: s.blob(1), sealedKey: s.blob(2), sealedOPRFKey: s.blob(3),
                failures: Int(s.int(4)), lifetimeFailures: Int(s.int(5)), unreportedFailures: Int(s.int(6)),
                lastFailureAt: s.int(7), loginStarts: s.int(8), locked: s.int(9) != 0, generation: s.int(10))
        }

        /// Whether any account was registered (phantom rows do not count).
        public func hasRegisteredAccounts() throws(SQLiteError) -> Bool {
            let s = try db.prepare("SELECT 1 FROM accounts WHERE registered = 1 LIMIT 1")
            return try s.step()
        }

        /// Inserts or replaces the whole row.
        public func put(_ name: [UInt8], _ account: VaultAccount) throws(SQLiteError) {
            let s = try db.prepare("INSERT OR REPLACE INTO accounts (name, \(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            try s.bind(1, blob: name)
            try s.bind(2, int: account.registered ? 1 : 0)
            try s.bind(3, blob: account.record)
            try s.bind(4, blob: account.sealedKey)
            try s.bind(5, blob: account.sealedOPRFKey)
            try s.bind(6, int: Int64(account.failures))
            try s.bind(7, int: Int64(account.lifetimeFailures))
            try s.bind(8, int: Int64(account.unreportedFailures))
            try s.bind(9, int: account.lastFailureAt)
            try s.bind(10, int: account.loginStarts)
            try s.bind(11, int: account.locked ? 1 : 0)
            try s.bind(12, int: account.generation)
            try s.step()
        }

        /// Sets the lock for good.
        public func lock(_ name: [UInt8]) throws(SQLiteError) {
            let s = try db.prepare("UPDATE accounts SET locked = 1 WHERE name = ?")
            try s.bind(1, blob: name)
            try s.step()
        }
    }
}
