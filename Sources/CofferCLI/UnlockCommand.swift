import ArgumentParser
import Coffer

struct UnlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock", abstract: "Remove stale locks.",
        discussion: """
            A lock is stale when it has not been refreshed for 30 minutes, or when its process \
            is gone from this host. --remove-all also removes locks that look alive: use it only \
            when you are sure no other coffer is using the repository.
            """)
    @OptionGroup var options: RepositoryOptions
    @Flag(help: "Remove every lock, not only stale ones.") var removeAll = false

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let removed = try await repo.removeLocks(all: removeAll)
            if options.json {
                Output.json(["removed": removed.map(\.name)])
            } else if !options.quiet {
                print(removed.isEmpty ? "no stale locks" : "removed \(removed.count) locks")
            }
        }
    }
}
