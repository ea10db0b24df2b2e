import ArgumentParser
import Coffer

struct SnapshotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshots", abstract: "List snapshots, oldest first.")
    @OptionGroup var options: RepositoryOptions

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let all = try await repo.snapshots()
            if options.json {
                Output.json(all.map { SnapshotJSON($0.id, $0.snapshot) })
                return
            }
            guard !options.quiet else { return }
            print("ID        Time                 Host             Tags        Paths")
            print(String(repeating: "-", count: 72))
            for (id, s) in all {
                let cols = [id.short, Output.time(s.timeNanos), s.hostname.padding(16), s.tags.joined(separator: ",").padding(11)]
                print(cols.joined(separator: "  ") + " " + s.paths.joined(separator: ", "))
            }
            print(String(repeating: "-", count: 72))
            print("\(all.count) snapshots")
        }
    }
}

struct SnapshotJSON: Encodable {
    let id: String
    let shortID: String
    let time: String
    let hostname: String
    let username: String
    let paths: [String]
    let tags: [String]
    let tree: String
    let parent: String?
    let summary: BackupSummary

    init(_ id: SnapshotID, _ s: Snapshot) {
        self.id = id.hex
        shortID = id.short
        time = Output.isoTime(s.timeNanos)
        hostname = s.hostname
        username = s.username
        paths = s.paths
        tags = s.tags
        tree = s.root.hex
        parent = s.parent?.hex
        summary = s.summary
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
