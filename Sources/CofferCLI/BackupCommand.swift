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

    @Argument(help: ArgumentHelp("Files or folders to back up.", valueName: "path"))
    var paths: [String]

    @Option(name: .customLong("tag"), help: ArgumentHelp("Tag the snapshot (repeatable).", valueName: "tag"))
    var tags: [String] = []

    @Option(name: .customLong("exclude"), help: ArgumentHelp("Leave out paths matching a glob (repeatable).", valueName: "pattern"))
    var excludes: [String] = []

    @Option(name: .customLong("exclude-file"), help: ArgumentHelp("Read exclude patterns from a file, one per line.", valueName: "file"))
    var excludeFiles: [String] = []

    @Option(help: ArgumentHelp("Host name to record (default: this machine's).", valueName: "name"))
    var host: String?

    @Flag(help: "Read and chunk everything but write nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("Snapshot whose unchanged files are reused (default: the latest of this host and paths).", valueName: "id"))
    var parent: String?

    @Flag(help: "Read every file, even those unchanged since the parent snapshot.")
    var force = false

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            var request = BackupRequest(paths: paths)
            request.tags = tags
            request.excludes = excludes
            for file in excludeFiles {
                request.excludes += try Secrets.readFile(file).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            }
            request.dryRun = dryRun
            request.hostname = host
            request.force = force
            if let parent { request.parent = try await repo.resolveSnapshot(parent).id }
            let json = options.json, quiet = options.quiet
            let finalRequest = request
            let result = try await Interrupt.cancellingOnSignal {
                try await repo.backup(finalRequest) { p in
                    if json {
                        Output.json(ProgressLine(filesDone: p.filesDone, bytesDone: p.bytesDone, bytesAdded: p.bytesAdded, elapsedSeconds: Double(p.elapsedNanos) / 1e9))
                    } else if !quiet {
                        let rate = Double(p.bytesDone) / max(Double(p.elapsedNanos) / 1e9, 0.001)
                        Output.status("\(p.filesDone) files, \(Output.bytes(p.bytesDone)), \(Output.bytes(UInt64(rate)))/s  \(p.currentPath.suffix(50))")
                    }
                }
            }
            Output.clearStatus()
            for w in result.warnings { Output.warning(w.description) }
            report(result)
            if !result.warnings.isEmpty {
                throw CLIError.partial("\(result.warnings.count) files or folders could not be read and were left out")
            }
        }
    }

    private func report(_ result: BackupResult) {
        let s = result.snapshot.summary
        if options.json {
            Output.json(SummaryLine(
                snapshotID: result.snapshotID?.hex, dryRun: dryRun, filesNew: s.filesNew, filesChanged: s.filesChanged,
                filesUnmodified: s.filesUnmodified, filesSkipped: s.filesSkipped, directories: s.directories,
                bytesProcessed: s.bytesProcessed, bytesAdded: s.bytesAdded, bytesStored: s.bytesStored, blobsAdded: s.blobsAdded,
                durationSeconds: Double(s.durationNanos) / 1e9))
            return
        }
        guard !options.quiet else { return }
        let seconds = Double(s.durationNanos) / 1e9
        print("files: \(s.filesNew + s.filesChanged + s.filesUnmodified) processed, \(s.filesSkipped) skipped; \(s.directories) directories")
        print("processed \(Output.bytes(s.bytesProcessed)) in \(String(format: "%.2f", seconds)) s (\(Output.bytes(UInt64(Double(s.bytesProcessed) / max(seconds, 0.001))))/s)")
        print("added \(Output.bytes(s.bytesAdded)) in \(s.blobsAdded) new blobs, \(Output.bytes(s.bytesStored)) stored")
        if let id = result.snapshotID {
            print("snapshot \(id.short) saved")
        } else {
            print("dry run: nothing was written")
        }
    }
}

struct ProgressLine: Encodable {
    let messageType = "status"
    let filesDone: UInt64
    let bytesDone: UInt64
    let bytesAdded: UInt64
    let elapsedSeconds: Double
}

struct SummaryLine: Encodable {
    let messageType = "summary"
    let snapshotID: String?
    let dryRun: Bool
    let filesNew, filesChanged, filesUnmodified, filesSkipped, directories: UInt64
    let bytesProcessed, bytesAdded, bytesStored, blobsAdded: UInt64
    let durationSeconds: Double
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
