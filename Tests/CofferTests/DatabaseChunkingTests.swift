import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

@Suite struct DatabaseChunkingTests {
    static func header(pageSizeField: UInt16) -> [UInt8] {
        var h = Array("SQLite format 3\0".utf8)
        h += [UInt8(pageSizeField >> 8), UInt8(pageSizeField & 0xff)]
        return h + [UInt8](repeating: 0, count: 82)
    }

    @Test func pageSizeIsReadFromTheHeader() {
        #expect(Cutter.sqlitePageSize(header: Self.header(pageSizeField: 4096)) == 4096)
        #expect(Cutter.sqlitePageSize(header: Self.header(pageSizeField: 1)) == 65536)
        #expect(Cutter.sqlitePageSize(header: Self.header(pageSizeField: 512)) == 512)
        #expect(Cutter.sqlitePageSize(header: Self.header(pageSizeField: 3000)) == nil, "not a power of two")
        #expect(Cutter.sqlitePageSize(header: Self.header(pageSizeField: 256)) == nil, "too small")
        #expect(Cutter.sqlitePageSize(header: Array("SQLite format 2\0".utf8) + [16, 0]) == nil)
        #expect(Cutter.sqlitePageSize(header: Array("SQLite".utf8)) == nil)
    }

    /// A database of 48 pages with three pages rewritten in place stores exactly three new data
    /// blobs, where FastCDC with the same repository would store the whole changed region again.
    @Test func aChangedPageCostsOnePage() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("db")), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            let page = 4096
            var db = Self.header(pageSizeField: UInt16(page)) + Fixture.bytes(48 * page - 100, seed: 21)
            try writeFile(dir + "/src/messages.db", db)
            let first = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            // 48 page blobs + the two trees.
            #expect(first.snapshot.summary.blobsAdded == 48 + 2)

            for p in [5, 17, 40] { db[p * page + 123] ^= 0xff }
            try writeFile(dir + "/src/messages.db", db)
            let second = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            #expect(second.snapshot.summary.blobsAdded == 3 + 2)
            #expect(second.snapshot.summary.bytesAdded < UInt64(3 * page + 2_000))

            let latest = try await repo.resolveSnapshot("latest")
            let restored = try await repo.restore(RestoreRequest(snapshot: latest.id, target: dir + "/out"))
            #expect(restored.problems.isEmpty)
            #expect(try readFile(dir + "/out/src/messages.db") == db)
        }
    }

    @Test func aFileThatOnlyLooksLikeADatabaseWithABadPageSizeIsChunkedByContent() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("db")), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            let data = Self.header(pageSizeField: 3000) + Fixture.bytes(600_000, seed: 22)
            try writeFile(dir + "/src/odd.db", data)
            let result = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            // FastCDC with the test's 16/64/256 KiB sizes: a handful of chunks, not 3000-byte pages.
            #expect(result.snapshot.summary.blobsAdded < 20)
        }
    }
}
