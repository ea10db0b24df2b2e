import ArgumentParser
import Coffer
import Foundation

struct LsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the files in a snapshot.")
    @OptionGroup var options: RepositoryOptions
    @Argument(help: "Snapshot id, unique prefix, or 'latest'.") var snapshot: String
    @Argument(help: "Only list below this path.") var path: String = "/"
    @Flag(name: [.short, .long], help: "Show mode, size and time.") var long = false

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let (_, snap) = try await repo.resolveSnapshot(snapshot)
            try await repo.list(snapshot: snap, under: path) { e in
                if options.json {
                    Output.json(EntryJSON(path: e.path, type: e.kind.rawValue, size: e.size, mode: e.metadata.mode,
                                          mtime: Output.isoTime(e.metadata.mtimeNanos), linkTarget: e.linkTarget))
                } else if long {
                    let kind = e.kind == .directory ? "d" : e.kind == .symlink ? "l" : "-"
                    let link = e.linkTarget.map { " -> \($0)" } ?? ""
                    print("\(kind)\(String(e.metadata.mode, radix: 8).leftPad(4)) \(String(e.size).leftPad(12)) \(Output.time(e.metadata.mtimeNanos)) \(e.path)\(link)")
                } else {
                    print(e.path)
                }
            }
        }
    }
}

struct EntryJSON: Encodable {
    let path: String
    let type: String
    let size: UInt64
    let mode: UInt32
    let mtime: String
    let linkTarget: String?
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

struct DumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump", abstract: "Write one file from a snapshot to standard output.")
    @OptionGroup var options: RepositoryOptions
    @Argument(help: "Snapshot id, unique prefix, or 'latest'.") var snapshot: String
    @Argument(help: "Path of the file inside the snapshot, as `ls` shows it.") var path: String

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let (_, snap) = try await repo.resolveSnapshot(snapshot)
            try await repo.dump(path: path, in: snap) { FileHandle.standardOutput.write(Data($0)) }
        }
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Show what changed between two snapshots.",
        discussion: "+ added, - removed, M modified content or mode, T type changed.")
    @OptionGroup var options: RepositoryOptions
    @Argument(help: "The older snapshot.") var first: String
    @Argument(help: "The newer snapshot.") var second: String

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let a = try await repo.resolveSnapshot(first), b = try await repo.resolveSnapshot(second)
            let changes = try await repo.diff(a.snapshot, b.snapshot)
            if options.json {
                Output.json(changes.map { ["change": $0.kind.rawValue, "path": $0.path] })
            } else if !options.quiet {
                for c in changes { print("\(c.kind.rawValue)    \(c.path)") }
                print("\(changes.count) changes between \(a.id.short) and \(b.id.short)")
            }
        }
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore a snapshot into a folder.",
        discussion: "Every chunk's seal is verified (it binds the chunk's id and type, so storage cannot alter, swap or truncate one); a file with missing or damaged data is not written and is reported. --verify-ids also recomputes each chunk's keyed hash, as check --read-data does.")
    @OptionGroup var options: RepositoryOptions
    @Argument(help: "Snapshot id, unique prefix, or 'latest'.") var snapshot: String
    @Option(name: [.short, .long], help: ArgumentHelp("Folder to restore into (created if missing).", valueName: "dir")) var target: String
    @Option(name: .customLong("include"), help: ArgumentHelp("Restore only this path (repeatable).", valueName: "path")) var includes: [String] = []
    @Flag(help: "Take no lock (for read-only storage); a prune running meanwhile could make the restore fail.") var noLock = false
    @Flag(help: "Give files the owners (uid, gid) and setuid/setgid bits the snapshot records (needs root); without it they belong to you and lose setuid/setgid.")
    var preserveOwner = false
    @Flag(help: "Also recompute every chunk's keyed hash (about 1 ns per byte more; the seal already proves each chunk against storage).")
    var verifyIds = false

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let (id, _) = try await repo.resolveSnapshot(snapshot)
            var request = RestoreRequest(snapshot: id, target: target)
            request.verifyIDs = verifyIds
            request.includes = includes
            request.lock = !noLock
            request.preserveOwner = preserveOwner
            let quiet = options.quiet || options.json
            let finalRequest = request
            let result = try await Interrupt.cancellingOnSignal {
                try await repo.restore(finalRequest) { p in
                    if !quiet { Output.status("\(p.files) files, \(Output.bytes(p.bytes))  \(p.currentPath.suffix(50))") }
                }
            }
            Output.clearStatus()
            for p in result.problems { Output.error(p.description) }
            if options.json {
                Output.json(RestoreJSON(snapshotID: id.hex, files: result.files, directories: result.directories, symlinks: result.symlinks,
                                        hardLinks: result.hardLinks, bytes: result.bytes, problems: result.problems.map(\.description),
                                        transfer: repo.storage.meter.map { TransferLine($0.current) }))
            } else if !options.quiet {
                print("restored \(result.files) files, \(result.directories) directories, \(result.symlinks) symlinks (\(Output.bytes(result.bytes))) to \(target)")
                if let meter = repo.storage.meter { print(TransferLine.text(meter.current)) }
            }
            if !result.problems.isEmpty {
                throw ExitCode(1)
            }
        }
    }
}

struct RestoreJSON: Encodable {
    let snapshotID: String
    let files, directories, symlinks, hardLinks, bytes: UInt64
    let problems: [String]
    let transfer: TransferLine?
}
