import Glibc
import CofferCrypto

/// What to back up and how.
public struct BackupRequest: Sendable {
    public var paths: [String]
    public var tags: [String] = []
    /// Exclude patterns (see `PathPattern`), added to `selection` as case-sensitive patterns
    /// before it: without a `/` they match a name, with one the absolute path.
    public var excludes: [String] = []
    /// What to save: patterns, size limit, marker files, one file system, content categories.
    public var selection = SelectionRules()
    /// Read and chunk everything, write nothing.
    public var dryRun = false
    public var hostname: String? = nil
    /// The snapshot whose unchanged files are reused; by default the latest one with the same
    /// host and paths.
    public var parent: SnapshotID? = nil
    /// Read every file even if the parent snapshot says it is unchanged.
    public var force = false
    /// How long to wait for a conflicting (exclusive) lock to go away.
    public var lockWaitNanos: UInt64 = 0
    /// Sealing tasks in flight, each a batch of chunks (`PipelineLimits.batchBytes`) or one tree blob; bounds
    /// memory (Engine/Pipeline).
    public var maxBlobsInFlight = PipelineLimits.batchesInFlight
    /// Back up SQLite databases from a consistent snapshot taken with SQLite's online backup
    /// API (committed -wal content included) instead of copying their live bytes; then their
    /// `-wal` and `-shm` siblings are left out, the restored database needing neither.
    public var consistentDatabases = true

    public init(paths: [String]) { self.paths = paths }
}

/// Progress of a running backup, reported a few times a second.
public struct BackupProgress: Sendable {
    public var filesDone: UInt64
    public var bytesDone: UInt64
    public var bytesAdded: UInt64
    public var currentPath: String
    public var elapsedNanos: UInt64
    /// What a scan running alongside has found so far (all files and bytes under the sources).
    public var totalFiles: UInt64 = 0
    public var totalBytes: UInt64 = 0
    /// True once that scan is complete: only then is an ETA meaningful.
    public var totalsComplete = false

    /// Seconds left at the average rate so far, when the totals are known.
    public var etaSeconds: Double? {
        guard totalsComplete, bytesDone > 0, elapsedNanos > 0, totalBytes >= bytesDone else { return nil }
        return Double(totalBytes - bytesDone) / (Double(bytesDone) / (Double(elapsedNanos) / 1e9))
    }
}

/// A file or folder that could not be backed up.
public struct BackupWarning: Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

public struct BackupResult: Sendable {
    /// nil for a dry run.
    public let snapshotID: SnapshotID?
    public let snapshot: Snapshot
    public let warnings: [BackupWarning]
    /// Things worth saying that lost nothing: e.g. a database backed up as plain bytes because
    /// SQLite could not snapshot it. Unlike warnings, they do not make the backup partial.
    public var notices: [BackupWarning] = []
    /// Per-category counts of what was saved and left out; filled for a dry run or when a
    /// category rule is active, nil otherwise.
    public var selection: SelectionReport? = nil
    /// Packs an interrupted backup had uploaded that no index named; this run indexed and
    /// reused them rather than uploading their data again.
    public var packsResumed = 0
}

public enum BackupError: Error, CustomStringConvertible {
    case sourceUnreadable(String, FileError)
    case duplicateSourceName(String)

    public var description: String {
        switch self {
        case .sourceUnreadable(let p, let e): return "cannot back up \(p): \(e)"
        case .duplicateSourceName(let n): return "two source paths are both named \(n); back them up from a common parent instead"
        }
    }
}

extension Repository {
    /// Backs up `request.paths` into a new snapshot. Order of writes (FORMAT.md §11): packs,
    /// then the index that lists them, then the snapshot, so an interrupted backup leaves only
    /// unreferenced packs. Cancelling the task stops it the same way.
    /// Holds a shared lock (none for a dry run), so prune cannot delete data it is about to reference.
    public func backup(_ request: BackupRequest, progress: (@Sendable (BackupProgress) -> Void)? = nil) async throws -> BackupResult {
        if request.dryRun { return try await runBackup(request, lock: nil, progress: progress) }
        return try await withLock(exclusive: false, waitNanos: request.lockWaitNanos) { lock in
            try await runBackup(request, lock: lock, progress: progress)
        }
    }

    private func runBackup(_ request: BackupRequest, lock: RepositoryLock?, progress: (@Sendable (BackupProgress) -> Void)?) async throws -> BackupResult {
        let started = MonotonicClock.nanos()
        var index = try await loadIndex()
        // Packs of an interrupted run: always looked for on a local or uncached repository
        // (a cheap listing), on a remote one only when this machine's cache says a run did not
        // finish or `force` asks to read everything again (the way back after a lost pack, as
        // `check` advises), so a daily backup does not list every pack.
        let run = request.dryRun ? nil : cache?.beginBackup()
        // The same listing shows which indexed packs are lost: their blobs are stored again.
        var resumed: [IndexFile.Pack] = []
        let looksForUnindexed = !request.dryRun && (cache == nil || storage is LocalStorage || request.force || run?.earlier.isEmpty == false)
        if looksForUnindexed {
            resumed = try await surveyStoredPacks(&index).unindexed
            for pack in resumed { index.add(pack) }
        }
        // Nothing that references data (an index, the snapshot) is written unless the lock
        // still certainly holds: a prune may only have run if it lapsed.
        let assembler = PackAssembler(
            repository: self, dryRun: request.dryRun,
            beforeIndex: { try await lock?.ensureHeld(before: "writing an index; the data uploaded so far is referenced by nothing") })
        assembler.adopt(resumed)
        let parent = try await findParent(request)
        let scanner = SizeScanner()
        defer { scanner.stop() }
        var withTotals: (@Sendable (BackupProgress) -> Void)? = nil
        if let progress {
            scanner.start(paths: request.paths.map(BackupWalker.absolute))
            withTotals = { p in
                var p = p
                (p.totalFiles, p.totalBytes, p.totalsComplete) = scanner.totals
                progress(p)
            }
        }
        var walker = BackupWalker(repository: self, request: request, index: index, assembler: assembler, progress: withTotals, started: started)

        let rootID: BlobID
        do {
            rootID = try await withThrowingTaskGroup(of: Void.self) { group in
                let id = try await walker.backupRoots(parentRoot: parent?.snapshot.root, group: &group)
                try await group.waitForAll()
                return id
            }
            try await assembler.flush()
        } catch {
            // No upload, nor the index object after it, may land once the lock is released.
            await assembler.abandon()
            throw (error as? SealingTaskFailure)?.underlying ?? error
        }
        var summary = walker.summary
        summary.blobsAdded = assembler.blobsAdded
        summary.bytesAdded = assembler.bytesAdded
        summary.bytesStored = assembler.bytesStored
        summary.durationNanos = MonotonicClock.nanos() - started
        let snapshot = Snapshot(
            timeNanos: Self.nowNanos(), hostname: request.hostname ?? Self.hostname(), username: Self.username(),
            paths: walker.absolutePaths, tags: request.tags, root: rootID, parent: parent?.id, summary: summary)
        let report = walker.classifies ? walker.selectionReport : nil
        if request.dryRun { return BackupResult(snapshotID: nil, snapshot: snapshot, warnings: walker.warnings, notices: walker.notices, selection: report) }
        try await lock?.ensureHeld(before: "writing the snapshot; the data uploaded so far is referenced by nothing")
        let (id, _) = try await saveSnapshot(snapshot)
        if let run { cache?.finishBackup(run.marker, settled: looksForUnindexed ? run.earlier : []) }
        var result = BackupResult(snapshotID: id, snapshot: snapshot, warnings: walker.warnings, notices: walker.notices, selection: report)
        result.packsResumed = resumed.count
        return result
    }

    /// The explicit parent, or the latest snapshot of the same host and the same source paths.
    func findParent(_ request: BackupRequest) async throws -> (id: SnapshotID, snapshot: Snapshot)? {
        if let id = request.parent { return (id, try await loadSnapshot(id)) }
        let host = request.hostname ?? Self.hostname()
        let paths = request.paths.map(BackupWalker.absolute)
        return try await snapshots().last { $0.snapshot.hostname == host && $0.snapshot.paths == paths }
    }

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(nulTerminated: buf)
    }

    static func username() -> String {
        if let pw = getpwuid(geteuid()) { return String(cString: pw.pointee.pw_name) }
        return String(geteuid())
    }
}

/// Monotonic nanoseconds.
enum MonotonicClock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
