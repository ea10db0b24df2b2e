import ArgumentParser
import Coffer
import CofferCrypto
import Foundation

/// Options every repository command shares.
struct RepositoryOptions: ParsableArguments {
    @Option(name: [.customShort("r"), .long], help: ArgumentHelp(
        "Repository location: a local path, or s3:https://HOST[:PORT]/BUCKET[/PREFIX] (s3:http://… for a local server).",
        valueName: "location"))
    var repo: String?

    @Option(name: [.customShort("o"), .customLong("option")], help: ArgumentHelp(
        "Backend option NAME=VALUE, repeatable: s3.connections (default 5), s3.retries (7), s3.timeout (seconds, 60), s3.region, s3.bucket-lookup (auto|path|dns).",
        valueName: "name=value"))
    var backendOptions: [String] = []

    @Option(help: ArgumentHelp("Read the password from this file (first line).", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("Open with the recovery key in this file instead of a password.", valueName: "file"))
    var recoveryKeyFile: String?

    @Option(help: ArgumentHelp(
        "Trust the CA certificates in this PEM file for a key vault (also COFFER_VAULT_CACERT).", valueName: "file"))
    var vaultCacert: String?

    @Option(help: ArgumentHelp(
        "With slots for several vault accounts, log in to this one (also COFFER_VAULT_ACCOUNT).", valueName: "name"))
    var vaultAccount: String?

    @Option(help: ArgumentHelp(
        "Trust the key vault at this URL and remember it (also COFFER_TRUST_VAULT): a password goes only to vaults this machine was told about (init --vault, key add --vault, this option, or yes at the prompt).",
        valueName: "url"))
    var trustVault: [String] = []

    @Flag(help: "Print machine-readable JSON.")
    var json = false

    @Flag(name: [.customShort("q"), .long], help: "Print nothing but errors.")
    var quiet = false

    @Option(help: ArgumentHelp(
        "Keep a local copy of index, snapshot and tree objects here (default for remote repositories: ~/.cache/coffer).",
        valueName: "dir"))
    var cacheDir: String?

    @Flag(help: "Do not use the local metadata cache.")
    var noCache = false

    func storage() throws -> any Storage {
        guard let path = repo ?? Environment.value("COFFER_REPOSITORY"), !path.isEmpty else {
            throw CLIError.usage("no repository given: use --repo PATH or set COFFER_REPOSITORY")
        }
        let settings = try backendOptions.map { text -> (name: String, value: String) in
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw CLIError.usage("-o \(text): expected NAME=VALUE")
            }
            return (String(text[..<eq]), String(text[text.index(after: eq)...]))
        }
        guard path.hasPrefix("s3:") else {
            // Ignored rather than refused, so one alias or script can serve both kinds.
            for s in settings { Output.warning("option \(s.name) applies to S3 repositories only; ignored") }
            return LocalStorage(path: path)
        }
        return try S3Backend.storage(url: path, settings: settings)
    }

    /// Whether the repository is remote, so metadata is worth caching locally.
    var isRemote: Bool { (repo ?? Environment.value("COFFER_REPOSITORY"))?.hasPrefix("s3:") == true }

    /// The credential given by flags, environment or prompt.
    func credential(prompt: String = "Repository password: ") throws -> Credential {
        if let file = recoveryKeyFile ?? Environment.value("COFFER_RECOVERY_KEY_FILE") {
            return .recoveryKey(try RecoveryKey(parsing: Secrets.readFile(file)))
        }
        if let text = Environment.value("COFFER_RECOVERY_KEY") {
            return .recoveryKey(try RecoveryKey(parsing: text))
        }
        return .password(try Secrets.password(file: passwordFile, prompt: prompt))
    }

    /// How key vaults are reached.
    var vaultClient: VaultClient { VaultClient(trustRootsFile: vaultCacert ?? Environment.value("COFFER_VAULT_CACERT")) }

    /// Which key vaults a password may go to: the user's list, what `--trust-vault` and
    /// COFFER_TRUST_VAULT (URLs separated by spaces) add, and a question on a terminal.
    func vaultTrust() throws -> CLIVaultTrust {
        let texts = trustVault + (Environment.value("COFFER_TRUST_VAULT")?.split(whereSeparator: \.isWhitespace).map(String.init) ?? [])
        let given = try texts.map { text in
            do { return try VaultAddress.canonicalURL(text) } catch { throw CLIError.usage("--trust-vault \(text): \(error)") }
        }
        return CLIVaultTrust(file: TrustedVaultFile.standard(), given: Set(given), mayAsk: Terminal.canAsk)
    }

    /// Whether the credential will be asked for on the terminal.
    var willPrompt: Bool {
        recoveryKeyFile == nil && passwordFile == nil
            && ["COFFER_RECOVERY_KEY_FILE", "COFFER_RECOVERY_KEY", "COFFER_PASSWORD_FILE", "COFFER_PASSWORD"].allSatisfy { Environment.value($0) == nil }
    }

    func open() async throws -> (Repository, Credential) {
        let storage = try storage()
        let account = vaultAccount ?? Environment.value("COFFER_VAULT_ACCOUNT")
        let trust = try vaultTrust()
        // A typed password must not be wasted on a choice coffer will refuse to make; the
        // question about an unknown vault comes before the password, too.
        // Given nothing, a machine with a device key for this repository opens with it: the
        // way scheduled backups run (FORMAT.md §5.4).
        var opened: (Repository, Credential)? = nil
        if willPrompt, let folder = DeviceKeyFolder.standard() {
            let slots = Set(try await storage.list(.keys).compactMap { KeySlotID(hex: $0.name.name) })
            // Each key whose slot the storage lists (a planted slot name must not hide the
            // right key), and only in the repository its file is named for.
            var firstError: (any Error)? = nil
            for found in folder.keys(forAnyOf: slots) where opened == nil {
                do {
                    let repo = try await Repository.open(storage: storage, credential: .deviceKey(found.key))
                    guard (found.path as NSString).lastPathComponent == repo.config.repositoryID.hex else {
                        throw CLIError.usage("\(found.path) is not named for this repository (\(repo.config.repositoryID.hex)): not used; remove it")
                    }
                    opened = (repo, .deviceKey(found.key))
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if opened == nil, let firstError { throw firstError }
        }
        if opened == nil && willPrompt {
            try await Repository.checkVaultAccountChoice(storage: storage, named: account, trust: trust)
        }
        let credential = try opened?.1 ?? self.credential()
        let repo: Repository
        if let opened {
            repo = opened.0
        } else {
            repo = try await Repository.open(
                storage: storage, credential: credential, vault: vaultClient, vaultAccount: account, vaultTrust: trust)
        }
        // A local repository is as fast to read as a cache would be, so it gets one only when
        // asked; a remote one gets one by default.
        if !noCache, let base = cacheDir ?? Environment.value("COFFER_CACHE_DIR")
            ?? (isRemote ? MetadataCache.defaultBase(environment: ProcessInfo.processInfo.environment) : nil)
        {
            repo.useCache(base: base)
        }
        if let session = repo.vaultSession, let report = session.report { Self.warnAbout(report, address: session.address) }
        return (repo, credential)
    }

    /// Tells the owner what the vault reported at the login: failed attempts since the last
    /// one (theirs or a guesser's), and an allowance running low.
    static func warnAbout(_ report: VaultLoginReport, address: VaultAddress) {
        if let failed = report.failedAttemptsSinceLastLogin, failed > 0 {
            var facts = ["\(failed) failed login attempt\(failed == 1 ? "" : "s") since your last login"]
            if let at = report.lastFailedAt { facts.append(" the latest at \(Self.timestamp(at))") }
            if let left = report.attemptsLeft { facts.append(" \(left) wrong attempt\(left == 1 ? "" : "s") left before the account locks for good") }
            Output.warning(
                "vault \(address): \(facts.joined(separator: ",")). "
                    + "If they were not yours, someone is guessing your password: change it with `coffer key passwd`")
        } else if let left = report.attemptsLeft, left <= 3 {
            Output.warning(
                "vault \(address): only \(left) wrong attempt\(left == 1 ? "" : "s") left before the account locks for good; "
                    + "`coffer key passwd` starts a new allowance")
        }
        switch report.reregistration {
        case .done:
            Output.warning(
                "vault \(address) was registered by an older coffer-vault; it is now registered again under a fresh key, with the same password. "
                    + "Answers collected from the older vault may still let someone who also started a login there test guesses of that password "
                    + "offline: if the older vault was reachable by others, choose a new password with `coffer key passwd`")
        case .failed(let reason):
            Output.warning(
                "vault \(address) was registered by an older coffer-vault and could not be registered again (\(reason)); "
                    + "run `coffer key passwd`, with a new password if the older vault was reachable by others: until then, answers "
                    + "collected from the older vault can test password guesses against this account offline")
        case nil: break
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

enum Environment {
    static func value(_ name: String) -> String? {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
        return v
    }
}
