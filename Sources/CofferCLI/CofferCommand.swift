import ArgumentParser
import Coffer

@main
struct CofferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffer",
        abstract: "End-to-end encrypted, deduplicating backups.",
        discussion: """
            Coffer backs up directories into a repository that nobody without your password or \
            recovery key can read: file names, contents and sizes are sealed on this machine \
            before anything is written. Repeated backups store only new data.

            The repository comes from --repo or COFFER_REPOSITORY; the password from \
            COFFER_PASSWORD, --password-file/COFFER_PASSWORD_FILE or a prompt; a recovery key \
            from --recovery-key-file or COFFER_RECOVERY_KEY.

            Exit codes: 0 ok, 1 error, 3 snapshot written but some files were unreadable, \
            10 no repository, 11 lock failed, 12 wrong password or key.
            """,
        version: CofferVersion.string,
        subcommands: [
            InitCommand.self, BackupCommand.self, SnapshotsCommand.self, LsCommand.self, RestoreCommand.self, CheckCommand.self,
            DumpCommand.self, DiffCommand.self, KeyCommand.self, ForgetCommand.self, PruneCommand.self, RepairCommand.self, StatsCommand.self, UnlockCommand.self, VersionCommand.self,
        ])

}

enum CofferVersion {
    static let string = "0.1.0 (repository format \(RepositoryConfig.formatVersion))"
}

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version of coffer.")
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        if json {
            Output.json(["version": "0.1.0", "format": "\(RepositoryConfig.formatVersion)"])
        } else {
            print("coffer \(CofferVersion.string)")
        }
    }
}
