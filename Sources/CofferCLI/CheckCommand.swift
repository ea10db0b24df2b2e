import ArgumentParser
import Coffer
import Foundation

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Verify the repository's structure and, optionally, its data.",
        discussion: """
            Always: every key slot decodes; every index object opens; every indexed pack exists, has its indexed length, \
            and its sealed header lists exactly the indexed blobs; every snapshot opens and every \
            tree it reaches loads and names only indexed blobs. --read-data also reads every pack \
            and opens every blob (seal, decompression and keyed id); --read-data-subset reads part \
            of them: n/m takes the n-th of m groups of packs chosen by pack id (run 1/m … m/m over \
            time to cover everything), P% a random share. Packs no index names (left by an \
            interrupted backup) are reported as warnings; prune removes them. When errors are \
            found, check says which `coffer repair index` to run before backing up the same \
            files again. Exit code 1 when errors are found.
            """)

    @OptionGroup var options: RepositoryOptions

    @Flag(help: "Read all packs and verify every blob.")
    var readData = false

    @Option(help: ArgumentHelp("Read and verify only part of the packs: n/m (e.g. 1/10) or a percentage (e.g. 5%).", valueName: "n/m|P%"))
    var readDataSubset: String?

    @Option(help: ArgumentHelp("Wait this many seconds for other coffer processes' locks.", valueName: "seconds"))
    var retryLock: Double = 0

    func validate() throws {
        if let readDataSubset {
            do { _ = try CheckOptions.Subset(parsing: readDataSubset) } catch { throw ValidationError(error.description) }
        }
        guard retryLock.isFinite, (0...86_400).contains(retryLock) else {
            throw ValidationError("--retry-lock takes a number of seconds from 0 to 86400")
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var checkOptions = CheckOptions(readData: readData)
            if let readDataSubset { checkOptions.subset = try CheckOptions.Subset(parsing: readDataSubset) }
            checkOptions.lockWaitNanos = UInt64(retryLock * 1e9)
            let (repo, _) = try await options.open()
            let quiet = options.quiet || options.json
            let finalOptions = checkOptions
            let report = try await Interrupt.cancellingOnSignal {
                try await repo.check(finalOptions) { p in
                    guard !quiet else { return }
                    let count = p.total.map { "\(p.done)/\($0)" } ?? "\(p.done)"
                    Output.status("checking \(p.phase.rawValue): \(count), \(Output.bytes(p.bytesRead)) read")
                }
            }
            Output.clearStatus()
            let errors = report.errors.count
            if options.json {
                Output.json(CheckJSON(report, options: checkOptions))
            } else {
                for p in report.problems {
                    if p.isError { Output.error(p.description) } else if !options.quiet { Output.warning(p.description) }
                }
                if !options.quiet {
                    print(Self.summary(report, options: checkOptions))
                    print(errors == 0 ? "no errors were found" : "\(errors) \(errors == 1 ? "error" : "errors") found")
                } else if errors > 0 {
                    Output.error("\(errors) \(errors == 1 ? "error" : "errors") found")
                }
                if let repair = report.repair { Output.error(Self.advice(repair)) }
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }

    /// What to run for the problems found.
    static func advice(_ repair: CheckRepair) -> String {
        "to repair: run `\(command(repair))`, then back up the same files again (what is still on disk is stored again), then `coffer check --read-data`; snapshots whose data is lost for good keep failing until they are forgotten"
    }

    static func command(_ repair: CheckRepair) -> String {
        switch repair {
        case .rebuildIndex: return "coffer repair index"
        case .rebuildIndexFromAllHeaders: return "coffer repair index --read-all-packs"
        case .rebuildIndexReadingData: return "coffer repair index --read-data"
        }
    }

    static func summary(_ r: CheckReport, options: CheckOptions) -> String {
        var lines = [
            "checked \(r.indexObjects) index objects, \(r.packs) packs (\(r.packsStored) stored), \(r.blobs) blobs, \(r.snapshots) snapshots, \(r.trees) trees"
        ]
        if options.readData || options.subset != nil {
            let what = options.subset.map { "subset \($0)" } ?? "all data"
            lines.append("read \(what): \(r.packsRead) packs, \(r.blobsRead) blobs verified")
        }
        let unreferenced = r.problems.filter { $0.kind == .unreferenced }.count
        if unreferenced > 0 { lines.append("\(unreferenced) packs are in no index (harmless; `coffer prune` removes them)") }
        lines.append("\(Output.bytes(r.bytesRead)) read")
        return lines.joined(separator: "\n")
    }
}

struct CheckJSON: Encodable {
    struct Problem: Encodable {
        let severity: String
        let kind: String
        /// key slot, index, snapshot, pack, blob or folder
        let object: String
        /// Full id of the index object, snapshot, pack or blob; the folder's name.
        let id: String
        let blobType: String?
        let pack: String?
        let snapshot: String?
        let path: String?
        let message: String
        let description: String

        init(_ p: CheckProblem) {
            severity = p.severity.rawValue
            kind = p.kind.rawValue
            var blobType: String? = nil, pack: String? = nil
            switch p.subject {
            case .keySlot(let id): (object, self.id) = ("key slot", id.hex)
            case .index(let id): (object, self.id) = ("index", id.hex)
            case .snapshot(let id): (object, self.id) = ("snapshot", id.hex)
            case .pack(let id): (object, self.id) = ("pack", id.hex)
            case .blob(let h, let p):
                (object, id) = ("blob", h.id.hex)
                blobType = h.type == .data ? "data" : "tree"
                pack = p?.hex
            case .folder(let k): (object, id) = ("folder", k.rawValue)
            }
            self.blobType = blobType
            self.pack = pack
            snapshot = p.snapshot?.hex
            path = p.path
            message = p.message
            description = p.description
        }
    }

    let ok: Bool
    /// The command that repairs what was found, if any.
    let repair: String?
    let errors: Int
    let warnings: Int
    let readData: Bool
    let readDataSubset: String?
    let indexObjects, packs, packsStored, blobs, snapshots, trees, packsRead, blobsRead: Int
    let bytesRead: UInt64
    let problems: [Problem]

    init(_ r: CheckReport, options: CheckOptions) {
        errors = r.errors.count
        repair = r.repair.map { CheckCommand.command($0) }
        warnings = r.warnings.count
        ok = errors == 0
        readData = options.readData || options.subset != nil
        readDataSubset = options.subset?.description
        (indexObjects, packs, packsStored, blobs) = (r.indexObjects, r.packs, r.packsStored, r.blobs)
        (snapshots, trees, packsRead, blobsRead) = (r.snapshots, r.trees, r.packsRead, r.blobsRead)
        bytesRead = r.bytesRead
        problems = r.problems.map(Problem.init)
    }
}
