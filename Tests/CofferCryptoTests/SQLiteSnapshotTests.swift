import Foundation
import Glibc
import Testing
import CofferCrypto

@Suite("SQLiteSnapshot")
struct SQLiteSnapshotTests {
    static func python(_ script: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "python3 failed")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func temporaryFolder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-sqlite-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func snapshotOfAWALDatabaseHoldsItsCommittedRowsWithTheSamePageLayout() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/small.db"
        // 300 rows committed into the -wal only (no checkpoint); the connection stays open
        // while the snapshot is taken, so the -wal is not folded into the main file.
        let script = """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("PRAGMA page_size=1024")
            c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA wal_autocheckpoint=0")
            for i in range(300): c.execute("INSERT INTO t (v) VALUES (?)", ("value %d" % i * 5,))
            print("ready", flush=True)
            sys.stdin.read()
            """
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        writer.arguments = ["python3", "-c", script, db]
        let out = Pipe(), input = Pipe()
        writer.standardOutput = out
        writer.standardInput = input
        try writer.run()
        defer { try? input.fileHandleForWriting.close(); writer.waitUntilExit() }
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        try #require(line.contains("ready"))

        var walStat = Glibc.stat()
        #expect(stat(db + "-wal", &walStat) == 0 && walStat.st_size > 0, "the rows must sit in the -wal")
        let snapshot = try SQLiteSnapshot.capture(database: db, temporaryDirectory: dir)
        let folder = (snapshot.path as NSString).deletingLastPathComponent
        var folderStat = Glibc.stat()
        #expect(stat(folder, &folderStat) == 0)
        #expect(folderStat.st_mode & 0o777 == 0o700)

        let bytes = try Data(contentsOf: URL(fileURLWithPath: snapshot.path))
        #expect(bytes.prefix(16) == Data("SQLite format 3\0".utf8))
        #expect(bytes[16] == 0x04 && bytes[17] == 0x00, "page size 1024 kept")
        #expect(bytes.count % 1024 == 0)
        // The snapshot opens alone, without a -wal, and holds every committed row.
        let check = try Self.python("""
            import sqlite3, sys
            c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            print(c.execute("PRAGMA integrity_check").fetchone()[0], c.execute("SELECT count(*) FROM t").fetchone()[0])
            """, [snapshot.path])
        #expect(check == "ok 300")

        snapshot.remove()
        #expect(access(snapshot.path, F_OK) != 0)
        #expect(access(folder, F_OK) != 0, "the private folder is removed")
    }

    @Test func notADatabaseIsRefusedAndLeavesNothingBehind() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/fake.db"
        var bytes = Array("SQLite format 3\0".utf8) + [0x10, 0x00]
        bytes += [UInt8](repeating: 0xA5, count: 8192 - bytes.count)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: SQLiteSnapshotError.self) { try SQLiteSnapshot.capture(database: path, temporaryDirectory: dir) }
        #expect(throws: SQLiteSnapshotError.self) { try SQLiteSnapshot.capture(database: dir + "/missing.db", temporaryDirectory: dir) }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left == ["fake.db"], "temporary folders left behind: \(left)")
    }
}
