import Testing

@testable import Coffer

@Suite struct ProgressTests {
    func progress(done: UInt64, total: UInt64, complete: Bool, seconds: Double) -> BackupProgress {
        var p = BackupProgress(filesDone: 1, bytesDone: done, bytesAdded: 0, currentPath: "/x", elapsedNanos: UInt64(seconds * 1e9))
        (p.totalFiles, p.totalBytes, p.totalsComplete) = (10, total, complete)
        return p
    }

    @Test func etaIsTheRemainingBytesAtTheAverageRate() throws {
        // 100 MB in 2 s is 50 MB/s; 300 MB left take 6 s.
        let eta = try #require(progress(done: 100_000_000, total: 400_000_000, complete: true, seconds: 2).etaSeconds)
        #expect(abs(eta - 6) < 1e-9)
    }

    @Test func noEtaBeforeTheScanIsCompleteOrBeforeAnyProgress() {
        #expect(progress(done: 100, total: 400, complete: false, seconds: 2).etaSeconds == nil)
        #expect(progress(done: 0, total: 400, complete: true, seconds: 2).etaSeconds == nil)
        // Files grew since the scan: more done than counted gives no ETA rather than a negative one.
        #expect(progress(done: 500, total: 400, complete: true, seconds: 2).etaSeconds == nil)
    }

    @Test func theScannerCountsFilesAndBytesUnderTheSources() async throws {
        try await withTemporaryDirectory { dir async throws in
            try makeDirectory(dir + "/src")
            try makeDirectory(dir + "/src/sub")
            try writeFile(dir + "/src/a", Fixture.bytes(1000))
            try writeFile(dir + "/src/sub/b", Fixture.bytes(2500))
            let scanner = SizeScanner()
            scanner.start(paths: [dir + "/src"])
            for _ in 0..<500 where !scanner.totals.complete { try await Task.sleep(nanoseconds: 10_000_000) }
            let t = scanner.totals
            #expect(t.complete && t.files == 2 && t.bytes == 3500)
        }
    }
}
