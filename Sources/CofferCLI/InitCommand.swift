import ArgumentParser
import Coffer
import CofferCrypto

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create a new repository.",
        discussion: "Refuses to touch a location that already holds a repository.")

    @OptionGroup var options: RepositoryOptions

    @Flag(help: "Also create a 64-digit recovery key; it is shown once (always with --vault).")
    var recoveryKey = false

    @OptionGroup var vault: VaultOptions

    @Option(help: ArgumentHelp("Argon2id memory for the password slot, in MiB (default 256).", valueName: "MiB"))
    var argon2MemoryMib: UInt64?

    @Option(help: ArgumentHelp("Argon2id passes for the password slot (default 4).", valueName: "n"))
    var argon2Iterations: UInt64?

    func run() async throws {
        try await ErrorReporting.run {
            let storage = try options.storage()
            var init_ = Repository.InitOptions()
            init_.passwordCost = try PasswordCost.fromOptions(memoryMib: argon2MemoryMib, iterations: argon2Iterations)
            // Ask for the bucket before the password: a typo in the URL or the keys should not
            // cost the user a password entry.
            if let s3 = storage as? S3Storage, try await s3.prepareBucket(create: true), !options.quiet, !options.json {
                print("created bucket \(s3.s3.bucket)")
            }
            let address = try vault.address()
            if address != nil && (argon2MemoryMib != nil || argon2Iterations != nil) {
                throw CLIError.usage("--argon2-* options set a password slot's cost; a vault repository has none (the vault fixes its own)")
            }
            let password = try Secrets.newPassword(file: options.passwordFile)
            let repo: Repository
            var recovery: RecoveryKey? = nil
            if let address {
                // The library adds the recovery key: a vault account locks for good after too many
                // wrong passwords, and the recovery key is then the way back in.
                (repo, recovery) = try await Repository.initialize(
                    storage: storage, vault: address, password: password, client: options.vaultClient, options: init_)
                // The user named this vault: later opens may log in to it without asking.
                CLIVaultTrust.record(address)
            } else {
                repo = try await Repository.initialize(storage: storage, credential: .password(password), options: init_)
                if recoveryKey {
                    let key = RecoveryKey.generate()
                    let master = try await repo.unlockMasterKey(with: .password(password))
                    _ = try await repo.addKeySlot(master: master, credential: .recoveryKey(key))
                    recovery = key
                }
            }
            if options.json {
                Output.json(InitReport(
                    location: storage.location, repositoryID: repo.config.repositoryID.hex, recoveryKey: recovery?.singleLine,
                    vaultURL: address?.url, vaultAccount: address?.account))
            } else if !options.quiet {
                print("created repository \(repo.config.repositoryID.hex.prefix(8)) at \(storage.location)")
                if let address { print("its password is checked by the key vault: \(address)") }
                if let recovery { RecoveryKeyDisplay.show(recovery) }
            } else if let recovery {
                RecoveryKeyDisplay.show(recovery)
            }
        }
    }
}

struct InitReport: Encodable {
    let location: String
    let repositoryID: String
    let recoveryKey: String?
    let vaultURL: String?
    let vaultAccount: String?
}

enum RecoveryKeyDisplay {
    static func show(_ key: RecoveryKey) {
        print("""

            Your recovery key (shown only this once; write it down and keep it safe):

            \(key.displayText.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))

            It opens the repository on its own. Coffer cannot show it again or recover it.
            """)
    }
}

/// `--vault URL --account NAME`, for the commands that register a vault slot.
struct VaultOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Check the password with this key vault, https://HOST[:PORT][/PATH] (http:// only on this machine), instead of storing a password slot.",
        valueName: "url"))
    var vault: String?

    @Option(help: ArgumentHelp("The vault account to register (1–128 bytes, unique on that vault).", valueName: "name"))
    var account: String?

    func address() throws -> VaultAddress? {
        guard let vault else {
            if account != nil { throw CLIError.usage("--account needs --vault URL") }
            return nil
        }
        guard let account else { throw CLIError.usage("--vault needs --account NAME: the account to register on that vault") }
        do { return try VaultAddress(url: vault, account: account) } catch { throw CLIError.usage(error.description) }
    }
}

extension PasswordCost {
    /// The cost `--argon2-memory-mib` and `--argon2-iterations` ask for (0 MiB is libsodium's
    /// floor, for tests), refused before any password is asked for if no reader would run it.
    static func fromOptions(memoryMib: UInt64?, iterations: UInt64?) throws -> PasswordCost {
        let mib = memoryMib ?? (standard.memoryBytes >> 20)
        guard mib <= maximumMemoryBytes >> 20 else {
            throw CLIError.usage("--argon2-memory-mib \(mib): at most \(maximumMemoryBytes >> 20) MiB (\(limitsDescription))")
        }
        let cost = PasswordCost(opsLimit: iterations ?? standard.opsLimit, memoryBytes: mib == 0 ? minimumMemoryBytes : mib << 20)
        guard cost.isWithinLimits else {
            throw CLIError.usage("--argon2-iterations \(cost.opsLimit) with \(mib) MiB: outside the limits (\(limitsDescription))")
        }
        return cost
    }
}
