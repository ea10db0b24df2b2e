import ArgumentParser
import Coffer

struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair", abstract: "Repair a damaged repository.",
        subcommands: [RepairIndexCommand.self])
}

struct RepairIndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index", abstract: "Rebuild the index from the packs in storage.",
        discussion: """
            Indexes every pack whose sealed header opens, also packs no index names, and drops \
            the packs that are missing, truncated or damaged. Then run a backup of the same files: \
            it stores again whatever was lost and is still on disk. --read-all-packs reads the \
            header of every pack (by default only of packs the index does not describe at their \
            stored size); --read-data reads every pack in full, opens every blob, copies the \
            intact blobs of damaged packs into new packs and deletes the damaged ones. Writes the \
            new index before deleting the old one, under an exclusive lock.
            """)
    @OptionGroup var options: RepositoryOptions
    @Flag(help: "Read the header of every pack.") var readAllPacks = false
    @Flag(help: "Read every pack in full and salvage damaged packs.") var readData = false
    @Option(help: ArgumentHelp("Wait this many seconds for other coffer processes' locks.", valueName: "seconds"))
    var retryLock: Double = 0

    func validate() throws {
        guard retryLock.isFinite, (0...86_400).contains(retryLock) else {
            throw ValidationError("--retry-lock takes a number of seconds from 0 to 86400")
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var opts = RepairIndexOptions()
            opts.readAllPacks = readAllPacks
            opts.readData = readData
            opts.lockWaitNanos = UInt64(retryLock * 1e9)
            let (repo, _) = try await options.open()
            let quiet = options.quiet || options.json
            let finalOpts = opts
            let report = try await Interrupt.cancellingOnSignal {
                try await repo.repairIndex(finalOpts) { step in if !quiet { Output.status(step) } }
            }
            Output.clearStatus()
            if options.json { return Output.json(report) }
            guard !options.quiet else { return }
            print("packs: \(report.packsStored) stored, \(report.packsIndexed) indexed, \(report.packsAdded) of them found in no index")
            if report.packsMissing > 0 { print("missing packs dropped from the index: \(report.packsMissing)") }
            if report.packsDamaged > 0 { print("damaged packs left out of the index: \(report.packsDamaged)") }
            if report.blobsDamaged > 0 || report.packsSalvaged > 0 {
                print("damaged blobs dropped: \(report.blobsDamaged); intact blobs copied out of damaged packs: \(report.blobsSalvaged), into \(report.packsWritten) new packs; damaged packs deleted: \(report.packsSalvaged)")
            }
            print("index: \(report.indexObjectsBefore) objects replaced by \(report.indexObjectsWritten), \(report.blobs) blobs")
            if report.packsMissing > 0 || report.packsDamaged > 0 {
                print("next: back up the same files again (`coffer backup …`) to store what was lost, then `coffer check --read-data`")
            }
        }
    }
}
