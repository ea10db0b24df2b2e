import ArgumentParser
import Coffer
import Dispatch
import Foundation

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up files and folders into a new snapshot.",
        discussion: """
            Only new data is stored. A file that cannot be read is reported and left out; the \
            snapshot is still written and the exit code is 3. Ctrl-C stops cleanly: nothing \
            already in the repository is changed.
            """)

    @OptionGroup var options: RepositoryOptions

    @Argument(help: ArgumentHelp("Files or folders to back up (and/or --files-from).", valueName: "path"))
    var paths: [String] = []

    @Option(name: .customLong("tag"), help: ArgumentHelp("Tag the snapshot (repeatable).", valueName: "tag"))
    var tags: [String] = []

    @Option(
        name: .customLong("exclude"),
        help: ArgumentHelp(
            "Leave out paths matching a pattern (repeatable): *, ?, [...], ** across folders; without / it matches a name at any depth, a leading / anchors to the root, a trailing / matches folders only, !pattern re-includes (later patterns win).",
            valueName: "pattern"))
    var excludes: [String] = []

    @Option(name: .customLong("iexclude"), help: ArgumentHelp("Like --exclude, ignoring case (repeatable).", valueName: "pattern"))
    var iexcludes: [String] = []

    @Option(name: .customLong("exclude-file"), help: ArgumentHelp("Read exclude patterns from a file, one per line (# comments); they come after the --exclude ones.", valueName: "file"))
    var excludeFiles: [String] = []

    @Option(name: .customLong("iexclude-file"), help: ArgumentHelp("Read case-insensitive exclude patterns from a file.", valueName: "file"))
    var iexcludeFiles: [String] = []

    @Option(name: .customLong("files-from"), help: ArgumentHelp("Read the paths to back up from a file, one per line (# comments).", valueName: "file"))
    var filesFrom: [String] = []

    @Option(name: .customLong("exclude-larger-than"), help: ArgumentHelp("Leave out files larger than this (e.g. 500k, 10M, 1.5G).", valueName: "size"))
    var excludeLargerThan: String?

    @Option(name: .customLong("exclude-if-present"), help: ArgumentHelp("Leave out folders that contain a file with this name (repeatable).", valueName: "name"))
    var excludeIfPresent: [String] = []

    @Flag(name: .customLong("one-file-system"), help: "Do not cross into other file systems below a source path.")
    var oneFileSystem = false

    @Option(
        name: .customLong("exclude-category"),
        help: ArgumentHelp("Leave out files of a category: images, videos, audio, documents, databases, other (repeatable).", valueName: "category"))
    var excludeCategories: [String] = []

    @Option(help: ArgumentHelp("Host name to record (default: this machine's).", valueName: "name"))
    var host: String?

    @Flag(help: "Read and chunk everything but write nothing; shows what would be saved and left out, per content category.")
    var dryRun = false

    @Option(help: ArgumentHelp("Snapshot whose unchanged files are reused (default: the latest of this host and paths).", valueName: "id"))
    var parent: String?

    @Flag(help: "Read every file, even those unchanged since the parent snapshot, and check that every indexed pack is still stored (what was lost is stored again).")
    var force = false

    @Flag(name: .customLong("no-consistent-databases"), help: "Copy SQLite databases as plain bytes instead of from a consistent snapshot (see README).")
    var noConsistentDatabases = false

    @Option(help: ArgumentHelp(
        "A JSON backup profile: sources, rules and retention (see README, Profiles). Flags add to it.", valueName: "file"))
    var profile: String?

    func run() async throws {
        try await ErrorReporting.run {
            let job = try profile.map(ProfileLoader.load)
            var options = self.options
            if let job { ProfileLoader.fillIn(&options, from: job) }
            if !options.isRemote { MemoryTuning.forLocalBackup() }
            let (repo, _) = try await options.open()
            var request = BackupRequest(paths: try sourcePaths(profile: job))
            request.tags = tags + (job?.tags ?? [])
            request.selection = try selectionRules()
            try job?.apply(to: &request.selection)
            request.dryRun = dryRun
            request.hostname = host
            request.force = force
            request.consistentDatabases = !noConsistentDatabases
            if let parent { request.parent = try await repo.resolveSnapshot(parent).id }
            let json = options.json, quiet = options.quiet
            let finalRequest = request
            let result = try await Interrupt.cancellingOnSignal {
                try await repo.backup(finalRequest) { p in
                    if json {
                        Output.json(ProgressLine(
                            filesDone: p.filesDone, bytesDone: p.bytesDone, bytesAdded: p.bytesAdded, elapsedSeconds: Double(p.elapsedNanos) / 1e9,
                            totalFiles: p.totalsComplete ? p.totalFiles : nil, totalBytes: p.totalsComplete ? p.totalBytes : nil,
                            etaSeconds: p.etaSeconds))
                    } else if !quiet {
                        let rate = Double(p.bytesDone) / max(Double(p.elapsedNanos) / 1e9, 0.001)
                        let of = p.totalsComplete ? " of \(Output.bytes(p.totalBytes))" : ""
                        let eta = p.etaSeconds.map { "  ETA \(Output.duration($0))" } ?? ""
                        let files = p.totalsComplete ? "\(p.filesDone)/\(p.totalFiles)" : "\(p.filesDone)"
                        Output.status("\(files) files, \(Output.bytes(p.bytesDone))\(of), \(Output.bytes(UInt64(rate)))/s\(eta)  \(p.currentPath.suffix(40))")
                    }
                }
            }
            Output.clearStatus()
            for w in result.warnings { Output.warning(w.description) }
            for n in result.notices { FileHandle.standardError.write(Data("coffer: notice: \(n.description)\n".utf8)) }
            report(result, transfer: repo.storage.meter?.current)
            if let job, !dryRun, let policy = try job.retentionPolicy() {
                try await ProfileLoader.applyRetention(policy, prune: job.retention?.prune == true, repo: repo, options: options)
            }
            if !result.warnings.isEmpty {
                throw CLIError.partial("\(result.warnings.count) files or folders could not be read and were left out")
            }
        }
    }

    /// The positional paths followed by those of every --files-from file.
    private func sourcePaths(profile: BackupProfile?) throws -> [String] {
        var all = paths + (profile?.sources ?? []).map(ProfileLoader.expandHome)
        for file in filesFrom { all += SelectionRules.pathLines(try Secrets.readFile(file)) }
        guard !all.isEmpty else { throw CLIError.usage("nothing to back up: give paths or --files-from") }
        return all
    }

    private func selectionRules() throws -> SelectionRules {
        var rules = SelectionRules()
        var sensitive = excludes, insensitive = iexcludes
        for file in excludeFiles { sensitive += SelectionRules.patternLines(try Secrets.readFile(file)) }
        for file in iexcludeFiles { insensitive += SelectionRules.patternLines(try Secrets.readFile(file)) }
        rules.exclude(sensitive)
        rules.exclude(insensitive, caseInsensitive: true)
        do {
            if let excludeLargerThan { rules.excludeLargerThan = try SelectionRules.parseSize(excludeLargerThan) }
            rules.excludedCategories = Set(try excludeCategories.map(SelectionRules.parseCategory))
        } catch let e as SelectionRules.ParseError {
            throw CLIError.usage(e.description)
        }
        for name in excludeIfPresent {
            guard !name.isEmpty, !name.contains("/") else { throw CLIError.usage("--exclude-if-present takes a file name, not a path: \(name)") }
            rules.excludeIfPresent.append(Array(name.utf8))
        }
        rules.oneFileSystem = oneFileSystem
        return rules
    }

    func report(_ result: BackupResult, transfer: TransferMeter.Totals?) {
        let s = result.snapshot.summary
        let choices = result.selection?.files ?? []
        if options.json {
            for f in choices {
                Output.json(FileChoiceLine(path: f.path, category: f.category.rawValue, bytes: f.bytes, action: f.saved ? "save" : "skip"))
            }
            Output.json(SummaryLine(
                snapshotID: result.snapshotID?.hex, dryRun: dryRun, filesNew: s.filesNew, filesChanged: s.filesChanged,
                filesUnmodified: s.filesUnmodified, filesSkipped: s.filesSkipped, directories: s.directories,
                bytesProcessed: s.bytesProcessed, bytesAdded: s.bytesAdded, bytesStored: s.bytesStored, blobsAdded: s.blobsAdded,
                durationSeconds: Double(s.durationNanos) / 1e9, selection: result.selection.map(SelectionLine.init),
                transfer: transfer.map(TransferLine.init), packsResumed: result.packsResumed))
            return
        }
        guard !options.quiet else { return }
        for f in choices {
            print("would \(f.saved ? "save" : "skip")  \(f.category.rawValue.padding(10)) \(Output.bytes(f.bytes).leftPad(10))  \(f.path)")
        }
        if let selection = result.selection { printTable(selection) }
        let seconds = Double(s.durationNanos) / 1e9
        print("files: \(s.filesNew + s.filesChanged + s.filesUnmodified) processed, \(s.filesSkipped) skipped; \(s.directories) directories")
        print("processed \(Output.bytes(s.bytesProcessed)) in \(String(format: "%.2f", seconds)) s (\(Output.bytes(UInt64(Double(s.bytesProcessed) / max(seconds, 0.001))))/s)")
        print("added \(Output.bytes(s.bytesAdded)) in \(s.blobsAdded) new blobs, \(Output.bytes(s.bytesStored)) stored")
        if result.packsResumed > 0 { print("reused \(result.packsResumed) packs uploaded by an interrupted backup") }
        if let transfer { print(TransferLine.text(transfer)) }
        if let id = result.snapshotID {
            print("snapshot \(id.short) saved")
        } else {
            print("dry run: nothing was written")
        }
    }
}

/// One file of a dry run: what would happen to it.
struct FileChoiceLine: Encodable {
    let messageType = "file"
    let path: String
    let category: String
    let bytes: UInt64
    let action: String
}

struct ProgressLine: Encodable {
    let messageType = "status"
    let filesDone: UInt64
    let bytesDone: UInt64
    let bytesAdded: UInt64
    let elapsedSeconds: Double
    /// Present once the scan of the sources is complete.
    let totalFiles: UInt64?
    let totalBytes: UInt64?
    let etaSeconds: Double?
}

struct SummaryLine: Encodable {
    let messageType = "summary"
    let snapshotID: String?
    let dryRun: Bool
    let filesNew, filesChanged, filesUnmodified, filesSkipped, directories: UInt64
    let bytesProcessed, bytesAdded, bytesStored, blobsAdded: UInt64
    let durationSeconds: Double
    /// Per-category numbers (a dry run, or a run with --exclude-category); omitted otherwise.
    let selection: SelectionLine?
    /// Network traffic of a remote repository; omitted for a local one.
    let transfer: TransferLine?
    /// Packs left by an interrupted backup that this one indexed and reused.
    let packsResumed: Int
}

/// What a remote repository cost in traffic: request bodies sent, response bodies received.
struct TransferLine: Encodable {
    let bytesUploaded, bytesDownloaded, requests, retries: UInt64

    init(_ t: TransferMeter.Totals) {
        bytesUploaded = t.bytesSent
        bytesDownloaded = t.bytesReceived
        requests = t.requests
        retries = t.retries
    }

    static func text(_ t: TransferMeter.Totals) -> String {
        let retried = t.retries == 0 ? "" : ", \(t.retries) retried (last: \(t.lastRetryReason ?? "?"))"
        return "network: \(Output.bytes(t.bytesSent)) up, \(Output.bytes(t.bytesReceived)) down in \(t.requests) requests\(retried)"
    }
}

/// `{"saved": {"images": {"files": 2, "bytes": 1234}, …}, "skipped": {…}}` with every category.
struct SelectionLine: Encodable {
    struct Tally: Encodable {
        let files: UInt64
        let bytes: UInt64
    }

    let saved: [String: Tally]
    let skipped: [String: Tally]

    init(_ report: SelectionReport) {
        func table(_ t: [ContentCategory: SelectionReport.Tally]) -> [String: Tally] {
            Dictionary(uniqueKeysWithValues: ContentCategory.allCases.map { c in
                (c.rawValue, Tally(files: t[c]?.files ?? 0, bytes: t[c]?.bytes ?? 0))
            })
        }
        saved = table(report.saved)
        skipped = table(report.skipped)
    }
}

extension BackupCommand {
    /// What is saved and what is left out, per category, as a text table.
    fileprivate func printTable(_ r: SelectionReport) {
        func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, n - s.count))
            return left ? s + fill : fill + s
        }
        print(pad("category", 10, left: true) + pad("saved", 8) + pad("size", 12) + pad("skipped", 9) + pad("size", 12))
        var total = (SelectionReport.Tally(), SelectionReport.Tally())
        for c in ContentCategory.allCases {
            let a = r.saved[c] ?? SelectionReport.Tally(), b = r.skipped[c] ?? SelectionReport.Tally()
            total.0.files += a.files; total.0.bytes += a.bytes
            total.1.files += b.files; total.1.bytes += b.bytes
            print(pad(c.rawValue, 10, left: true) + pad("\(a.files)", 8) + pad(Output.bytes(a.bytes), 12) + pad("\(b.files)", 9) + pad(Output.bytes(b.bytes), 12))
        }
        print(pad("total", 10, left: true) + pad("\(total.0.files)", 8) + pad(Output.bytes(total.0.bytes), 12) + pad("\(total.1.files)", 9)
            + pad(Output.bytes(total.1.bytes), 12))
    }
}

/// Turns SIGINT/SIGTERM into task cancellation so long work stops at a safe point.
enum Interrupt {
    static func cancellingOnSignal<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await work() }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { task.cancel() }
            s.resume()
            return s
        }
        defer {
            sources.forEach { $0.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        return try await task.value
    }
}
