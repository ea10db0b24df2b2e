import ArgumentParser
import Coffer
import Foundation

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove data that no snapshot uses.",
        discussion: """
            Deletes packs nothing uses, rewrites packs with more unused data than --max-unused \
            and merges small packs, writes a new index, and only then deletes the old index and \
            packs: an interruption at any point loses nothing. Takes an exclusive lock, so it \
            waits for (or refuses, after --retry-lock) running backups.
            """)
    @OptionGroup var options: RepositoryOptions
    @Option(help: ArgumentHelp("Rewrite packs with more than this share unused, e.g. 5% or 0.05.", valueName: "share"))
    var maxUnused: String = "5%"
    @Option(help: ArgumentHelp("Wait this many seconds for other coffer processes' locks.", valueName: "seconds"))
    var retryLock: Double = 0
    @Flag(help: "Show what would be deleted and freed; change nothing.") var dryRun = false

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let report = try await PruneRunner.run(repo, maxUnused: maxUnused, retryLock: retryLock, dryRun: dryRun, quiet: options.quiet || options.json)
            PruneRunner.print(report, json: options.json, quiet: options.quiet)
        }
    }
}

/// Shared by `prune` and `forget --prune`.
enum PruneRunner {
    static func parseShare(_ text: String) throws -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let value = trimmed.hasSuffix("%") ? Double(trimmed.dropLast()).map { $0 / 100 } : Double(trimmed)
        guard let value, value >= 0, value <= 1 else { throw CLIError.usage("--max-unused takes a share such as 5% or 0.05, not \(text)") }
        return value
    }

    static func run(_ repo: Repository, maxUnused: String = "5%", retryLock: Double = 0, dryRun: Bool, quiet: Bool) async throws -> PruneReport {
        var opts = PruneOptions()
        opts.maxUnusedFraction = try parseShare(maxUnused)
        opts.dryRun = dryRun
        guard retryLock.isFinite, (0...86_400).contains(retryLock) else {
            throw CLIError.usage("--retry-lock takes a number of seconds from 0 to 86400")
        }
        opts.lockWaitNanos = UInt64(retryLock * 1e9)
        let finalOpts = opts
        let report = try await Interrupt.cancellingOnSignal {
            try await repo.prune(finalOpts) { step in if !quiet { Output.status(step) } }
        }
        Output.clearStatus()
        return report
    }

    static func print(_ r: PruneReport, json: Bool, quiet: Bool) {
        if json { return Output.json(r) }
        guard !quiet else { return }
        let verb = r.dryRun ? "would" : "did"
        Swift.print("packs: \(r.packsBefore) before; \(verb) delete \(r.packsDeleted), rewrite \(r.packsRepacked), remove \(r.packsUnreferenced) unreferenced")
        Swift.print("blobs: \(r.blobsUsed) in use, \(r.blobsRemoved) unused to remove")
        Swift.print("unused data: \(Output.bytes(r.unusedBytesBefore)) before, \(Output.bytes(r.unusedBytesAfter)) after")
        Swift.print("\(r.dryRun ? "would free about" : "freed") \(Output.bytes(r.bytesFreed)) (\(Output.bytes(r.bytesBefore)) → \(Output.bytes(r.bytesAfter)))")
        if r.temporaryFilesRemoved > 0 {
            Swift.print("temporary files left by interrupted runs: \(verb) remove \(r.temporaryFilesRemoved) (\(Output.bytes(r.temporaryBytesRemoved)))")
        }
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show sizes and dedup and compression ratios.")
    @OptionGroup var options: RepositoryOptions

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let s = try await repo.stats()
            if options.json {
                Output.json(StatsJSON(stats: s))
                return
            }
            guard !options.quiet else { return }
            print("snapshots:          \(s.snapshots)")
            print("files (all snaps):  \(s.files)")
            print("logical size:       \(Output.bytes(s.logicalBytes))")
            print("unique data:        \(Output.bytes(s.uniqueBytes)) in \(s.blobsUsed) blobs")
            print("stored (sealed):    \(Output.bytes(s.uniqueStoredBytes))")
            print("packs:              \(s.packs), \(Output.bytes(s.packBytes))")
            print("unused (prunable):  \(Output.bytes(s.unusedBytes))")
            print(String(format: "dedup ratio:        %.2f×", s.dedupRatio))
            print(String(format: "compression ratio:  %.2f×", s.compressionRatio))
        }
    }
}

struct StatsJSON: Encodable {
    let stats: RepositoryStats
    func encode(to encoder: any Encoder) throws {
        try stats.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(stats.dedupRatio, forKey: .dedupRatio)
        try c.encode(stats.compressionRatio, forKey: .compressionRatio)
    }
    enum Keys: String, CodingKey { case dedupRatio, compressionRatio }
}
