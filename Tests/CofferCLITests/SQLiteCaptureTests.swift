import Foundation
import Glibc
import Testing

struct PythonError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Consistent capture of a live SQLite database (WAL mode) while a writer keeps committing.
@Suite("SQLite databases are captured consistently while being written", .serialized)
struct SQLiteCaptureTests {
    static var long: Bool { ProcessInfo.processInfo.environment["COFFER_LONG_TESTS"] != nil }

    /// Creates `db` (rollback mode: schema and counter row land in the main file), then switches
    /// it to WAL mode.
    static let setup = """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        c.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        c.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        c.execute("INSERT INTO counter VALUES (1, 0)")
        c.commit()
        assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        c.close()
        """

    /// Inserts a message and sets counter = count(messages) in one transaction, forever; prints
    /// the committed count after each commit. argv[2] = 1 disables automatic checkpoints.
    static let writer = """
        import sqlite3, sys, os
        c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
        if sys.argv[2] == "1":
            c.execute("PRAGMA wal_autocheckpoint=0")
        body = "x" * 700
        i = 0
        while True:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO messages (body) VALUES (?)", (body + str(i),))
            c.execute("UPDATE counter SET n = (SELECT count(*) FROM messages) WHERE id = 1")
            c.execute("COMMIT")
            i += 1
            if i % 50 == 0:
                sys.stdout.write("%d\\n" % i); sys.stdout.flush()
        """

    /// Prints "<integrity_check> <counter> <count(messages)>" for a database, read-only.
    static let checker = """
        import sqlite3, sys
        c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
        ic = c.execute("PRAGMA integrity_check").fetchone()[0]
        n = c.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
        m = c.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(ic, n, m)
        """

    static func python(_ script: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw PythonError(message: "python3 failed: \(String(decoding: errData, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// (integrity_check result, counter value, message rows) of a database file.
    static func check(_ db: String) throws -> (String, Int, Int) {
        let parts = try python(checker, [db]).split(separator: " ").map(String.init)
        try #require(parts.count == 3, "unexpected checker output: \(parts)")
        return (parts[0], try #require(Int(parts[1])), try #require(Int(parts[2])))
    }

    /// A running writer; `committed` is the latest count it reported.
    final class Writer: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var latest = 0
        private var buffer = ""

        init(db: String, noCheckpoints: Bool) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", SQLiteCaptureTests.writer, db, noCheckpoints ? "1" : "0"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            out.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                guard let self, !d.isEmpty else { return }
                self.lock.lock()
                self.buffer += String(decoding: d, as: UTF8.self)
                let lines = self.buffer.split(separator: "\n", omittingEmptySubsequences: false)
                self.buffer = String(lines.last ?? "")
                for l in lines.dropLast() { if let n = Int(l) { self.latest = n } }
                self.lock.unlock()
            }
            try process.run()
        }

        var committed: Int { lock.lock(); defer { lock.unlock() }; return latest }

        /// Waits until at least `n` rows are committed.
        func waitFor(_ n: Int, timeout: TimeInterval = 60) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while committed < n {
                try #require(process.isRunning, "the writer stopped")
                try #require(Date() < deadline, "the writer committed only \(committed) rows")
                usleep(20_000)
            }
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    func makeDatabase(_ box: Sandbox) throws -> (src: String, db: String) {
        let src = box.path("chat")
        try FS.mkdir(src)
        try FS.writeFile(src + "/notes.txt", "not a database\n")
        let db = src + "/messages.db"
        _ = try Self.python(Self.setup, [db])
        return (src, db)
    }

    @Test func backupsWhileWritingRestoreConsistentSelfContainedDatabases() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (src, db) = try makeDatabase(box)
        let writer = try Writer(db: db, noCheckpoints: false)
        defer { writer.stop() }
        try writer.waitFor(200)

        let runs = Self.long ? 25 : 5
        var ids: [String] = []
        for _ in 0..<runs {
            let (_, summary) = try box.backup([src])
            ids.append(try #require(summary["snapshotID"] as? String))
            usleep(100_000)
        }
        #expect(writer.process.isRunning, "the writer must have been writing throughout")
        var counts: [Int] = []
        for (i, id) in ids.enumerated() {
            let target = box.path("restore-\(i)")
            try box.ok(["restore", "--repo", box.repo, id, "--target", target, "--quiet"])
            let restored = target + "/chat/messages.db"
            // The captured database is self-contained: its -wal and -shm were left out.
            #expect(!FS.exists(raw(restored + "-wal")))
            #expect(!FS.exists(raw(restored + "-shm")))
            #expect(FS.exists(raw(target + "/chat/notes.txt")))
            let (integrity, counter, rows) = try Self.check(restored)
            #expect(integrity == "ok", "snapshot \(i): integrity_check says \(integrity)")
            #expect(counter == rows, "snapshot \(i): counter \(counter) but \(rows) message rows")
            #expect(rows >= 200, "snapshot \(i) holds only \(rows) rows; 200 were committed before the first backup")
            counts.append(rows)
        }
        // Later snapshots saw more committed rows (the writer never stopped).
        #expect(counts == counts.sorted())
        #expect(counts.last! > counts.first!, "all snapshots hold \(counts.first!) rows")
    }

    /// With checkpoints disabled every commit stays in the -wal file: a byte copy of the main
    /// file alone lacks all of them, while the consistent capture holds them.
    @Test func plainByteCopyOfTheMainFileMissesRowsCommittedToTheWAL() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (src, db) = try makeDatabase(box)
        let writer = try Writer(db: db, noCheckpoints: true)
        defer { writer.stop() }
        try writer.waitFor(300)
        let committedBeforePlain = writer.committed
        let (_, plain) = try box.backup([src], extra: ["--no-consistent-databases"])
        let committedBeforeConsistent = writer.committed
        let (_, consistent) = try box.backup([src])
        #expect(writer.process.isRunning)
        #expect(committedBeforePlain >= 300)

        let plainTarget = box.path("plain"), consistentTarget = box.path("consistent")
        try box.ok(["restore", "--repo", box.repo, try #require(plain["snapshotID"] as? String), "--target", plainTarget, "--quiet"])
        try box.ok(["restore", "--repo", box.repo, try #require(consistent["snapshotID"] as? String), "--target", consistentTarget, "--quiet"])

        // The plain backup kept the sidecars as bytes (nothing is left out without capture) ...
        #expect(FS.exists(raw(plainTarget + "/chat/messages.db-wal")))
        // ... but the main file's bytes alone hold none of the committed rows.
        try FS.mkdir(box.path("alone"))
        try FS.writeFile(box.path("alone/messages.db"), try FS.readFile(plainTarget + "/chat/messages.db"))
        let (plainIntegrity, plainCounter, plainRows) = try Self.check(box.path("alone/messages.db"))
        #expect(plainIntegrity == "ok")
        #expect(plainRows == 0 && plainCounter == 0, "the main file alone holds \(plainRows) rows")
        #expect(plainRows < committedBeforePlain)

        let restored = consistentTarget + "/chat/messages.db"
        #expect(!FS.exists(raw(restored + "-wal")))
        let (integrity, counter, rows) = try Self.check(restored)
        #expect(integrity == "ok")
        #expect(counter == rows)
        #expect(rows >= committedBeforeConsistent, "the consistent capture holds \(rows) of \(committedBeforeConsistent) committed rows")
    }

    /// A database in use (here: a -journal beside it) that SQLite cannot read is backed up as
    /// plain bytes, with a notice that does not make the exit code 3.
    @Test func unreadableDatabaseFallsBackToPlainBytesWithoutPartialExit() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("odd")
        try FS.mkdir(src)
        // A valid header (page size 4096) followed by garbage: not a usable database.
        var bytes = Array("SQLite format 3\0".utf8) + [0x10, 0x00]
        bytes += try FS.randomBytes(4096 * 3 - bytes.count)
        try FS.writeFile(src + "/broken.db", bytes)
        try FS.writeFile(src + "/broken.db-journal", [UInt8](repeating: 0, count: 512))
        let result = try box.coffer(["backup", "--repo", box.repo, src])
        #expect(result.succeeded, "exit \(result.status): \(result.err)")
        #expect(result.err.contains("backed up as plain bytes"), "stderr: \(result.err)")
        let target = box.path("restore")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target, "--quiet"])
        #expect(try FS.readFile(target + "/odd/broken.db") == bytes)
    }

    /// A database at rest (no -wal, no -journal) is read as it is and restores bit for bit; the
    /// snapshot would rewrite header counters.
    @Test func aDatabaseAtRestRestoresBitForBit() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("chat")
        try FS.mkdir(src)
        let db = src + "/messages.db"
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1]); c.execute('create table m(id integer primary key, body text)')
            c.executemany('insert into m(body) values (?)', [('message %d' % i,) for i in range(2000)]); c.commit(); c.close()
            """, db]
        try python.run()
        python.waitUntilExit()
        try #require(python.terminationStatus == 0)
        try box.ok(["backup", "--repo", box.repo, "--quiet", src])
        let target = box.path("out")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target, "--quiet"])
        #expect(try FS.readFile(target + "/chat/messages.db") == FS.readFile(db))
    }
}
