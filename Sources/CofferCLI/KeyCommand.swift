import ArgumentParser
import Coffer
import CofferCrypto
import Foundation
import Glibc

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Manage the key slots that open the repository.",
        discussion: "Adding, removing or changing a slot never touches the data.",
        subcommands: [KeyList.self, KeyAdd.self, KeyRemove.self, KeyPasswd.self])
}

struct KeyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List key slots.")
    @OptionGroup var options: RepositoryOptions

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let slots = try await repo.keySlots()
            if options.json {
                Output.json(slots.map { slot in
                    let label = repo.deviceLabel(of: slot)
                    return KeySlotJSON(
                        id: slot.id.hex, kind: slot.kindName, kdf: slot.kdfDescription(label), current: slot.id == repo.openedWith,
                        vaultURL: slot.vaultAddress?.url, vaultAccount: slot.vaultAddress?.account, deviceHost: label?.hostname,
                        deviceCreated: label.map { Self.timestamp($0.createdNanos) })
                })
                return
            }
            print(" ID        Kind          Key derivation")
            for s in slots {
                print("\(s.id == repo.openedWith ? "*" : " ")\(s.id.short)  \(s.kindName.padding(12))  \(s.kdfDescription(repo.deviceLabel(of: s)))")
            }
            for refused in try await repo.refusedKeySlots() { Output.warning("not usable: \(refused)") }
        }
    }
}

extension KeyList {
    static func timestamp(_ nanos: Int64) -> String {
        RepositoryOptions.timestamp(Date(timeIntervalSince1970: TimeInterval(nanos / 1_000_000_000)))
    }
}

struct KeySlotJSON: Encodable {
    let id: String
    let kind: String
    let kdf: String
    let current: Bool
    let vaultURL: String?
    let vaultAccount: String?
    let deviceHost: String?
    let deviceCreated: String?
}

extension KeySlot {
    var kindName: String {
        switch kind {
        case .password: return "password"
        case .recoveryKey: return "recovery-key"
        case .vault: return "vault"
        case .device: return "device"
        }
    }
    func kdfDescription(_ label: DeviceLabel?) -> String {
        switch kind {
        case .password(let c): return c.description
        case .recoveryKey: return "blake2b (192-bit key)"
        case .vault(let address): return "vault \(address) (OPAQUE, attempt-limited)"
        case .device:
            guard let label else { return "blake2b (256-bit device key; its label does not open)" }
            return "blake2b (256-bit device key) on \(label.hostname), added \(KeyList.timestamp(label.createdNanos))"
        }
    }
}

struct KeyAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a password, a key-vault account or a recovery key.")
    @OptionGroup var options: RepositoryOptions
    @OptionGroup var vault: VaultOptions
    @Flag(help: "Add a new 64-digit recovery key (shown once) instead of a password.") var recoveryKey = false
    @Flag(help: "Add a device key for this machine: a random 256-bit key in a 0600 file under ~/.config/coffer/device-keys, found by later commands here when no password or key is given (for scheduled backups).")
    var device = false
    @Option(help: ArgumentHelp("Read the new password from this file.", valueName: "file")) var newPasswordFile: String?
    @Option(help: ArgumentHelp("Argon2id memory in MiB for the new password.", valueName: "MiB")) var argon2MemoryMib: UInt64?
    @Option(help: ArgumentHelp("Argon2id passes for the new password.", valueName: "n")) var argon2Iterations: UInt64?

    func run() async throws {
        try await ErrorReporting.run {
            // Arguments first: a mistake found after the login would have cost a vault attempt.
            if [recoveryKey, vault.vault != nil, device].filter({ $0 }).count > 1 {
                throw CLIError.usage("choose one: --recovery-key, --vault or --device")
            }
            let cost = try PasswordCost.fromOptions(memoryMib: argon2MemoryMib, iterations: argon2Iterations)
            let address = try vault.address()
            if !recoveryKey && !device && newPasswordFile == nil && !Secrets.haveTerminal {
                throw CLIError.usage("give the new password with --new-password-file (or use --recovery-key)")
            }
            let (repo, credential) = try await options.open()
            let master = try await repo.unlockMasterKey(with: credential)
            if device {
                guard let folder = DeviceKeyFolder.standard() else {
                    throw CLIError.usage("no configuration folder for the device key (set COFFER_CONFIG_DIR or HOME)")
                }
                let repositoryID = repo.config.repositoryID.hex
                // The key file first (`save` refuses to replace one): a slot written without it
                // could never be opened.
                var path = ""
                let slot = try await repo.addDeviceSlot(master: master) { key in
                    path = try folder.save(key, repositoryID: repositoryID)
                }
                if options.json {
                    Output.json(["id": slot.id.hex, "file": path])
                } else if !options.quiet {
                    print("added device slot \(slot.id.short); its key is in \(path)")
                    print("commands on this machine given no password or key now open the repository with it")
                }
                return
            }
            if recoveryKey {
                let key = RecoveryKey.generate()
                let slot = try await repo.addKeySlot(master: master, credential: .recoveryKey(key))
                if options.json {
                    Output.json(["id": slot.id.hex, "recoveryKey": key.singleLine])
                } else {
                    if !options.quiet { print("added recovery key slot \(slot.id.short)") }
                    RecoveryKeyDisplay.show(key)
                }
                return
            }
            let existing = try await repo.keySlots()
            if let address {
                // One name on two vaults could not be told apart by --vault-account.
                if let clash = existing.compactMap(\.vaultAddress).first(where: { $0.account == address.account }) {
                    throw CLIError.usage("the repository already has a slot for \(clash); choose another --account name")
                }
                let password = try newPasswordFile.map { try Secrets.newPassword(file: $0) } ?? Secrets.promptNewPassword()
                let slot = try await repo.addVaultSlot(master: master, address: address, password: password, client: options.vaultClient)
                // The user named this vault: later opens may log in to it without asking.
                CLIVaultTrust.record(address)
                if options.json {
                    Output.json(["id": slot.id.hex, "vaultURL": address.url, "vaultAccount": address.account])
                } else if !options.quiet {
                    print("added vault slot \(slot.id.short): \(address)")
                    if existing.contains(where: { $0.vaultAddress != nil }) {
                        print("the repository now has several vault accounts: open it with --vault-account NAME")
                    }
                }
                return
            }
            let password = try newPasswordFile.map { try Secrets.newPassword(file: $0) } ?? Secrets.promptNewPassword()
            if existing.contains(where: { $0.vaultAddress != nil }) {
                Output.warning("a password slot can be attacked offline by whoever holds the storage, however slow its key derivation; the vault slot cannot")
            }
            let slot = try await repo.addKeySlot(master: master, credential: .password(password), cost: cost)
            if options.json { Output.json(["id": slot.id.hex]) } else if !options.quiet { print("added password slot \(slot.id.short)") }
        }
    }
}

struct KeyRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a key slot (never the last one).")
    @OptionGroup var options: RepositoryOptions
    @Argument(help: "The slot's id or a unique prefix of it.") var id: String

    func run() async throws {
        try await ErrorReporting.run {
            let (repo, _) = try await options.open()
            let slot = try await repo.resolveKeySlot(id)
            let removed = try await repo.keySlots().first { $0.id == slot }
            try await repo.removeKeySlot(slot)
            // This machine's key for a removed device slot goes too, --json or not.
            var removedFile: String? = nil
            if case .device? = removed?.kind { removedFile = DeviceKeyFolder.standard()?.remove(slot: slot) }
            if options.json {
                Output.json(["removed": slot.hex, "removedDeviceKeyFile": removedFile ?? ""])
                return
            }
            if !options.quiet { print("removed key slot \(slot.short)") }
            if slot == repo.openedWith {
                Output.warning("that was the slot this command opened with: its password or key no longer opens the repository")
            }
            if let address = removed?.vaultAddress {
                Output.warning("\(address) is still registered on the vault, but no longer opens this repository")
            }
            if let removedFile { print("removed this machine's device key \(removedFile)") }
            if case .device? = removed?.kind {
                Output.warning("the repository's master key is unchanged: whoever kept a copy of that device key and of the slot can still open it")
            }
        }
    }
}

struct KeyPasswd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd", abstract: "Change the password of the slot you open with.",
        discussion: "Writes the new slot before removing the old one, so a crash never locks you out.")
    @OptionGroup var options: RepositoryOptions
    @Option(help: ArgumentHelp("Read the new password from this file.", valueName: "file")) var newPasswordFile: String?
    @Option(help: ArgumentHelp("Argon2id memory in MiB for the new password.", valueName: "MiB")) var argon2MemoryMib: UInt64?
    @Option(help: ArgumentHelp("Argon2id passes for the new password.", valueName: "n")) var argon2Iterations: UInt64?

    func run() async throws {
        try await ErrorReporting.run {
            if newPasswordFile == nil && !Secrets.haveTerminal {
                throw CLIError.usage("give the new password with --new-password-file")
            }
            let cost = try PasswordCost.fromOptions(memoryMib: argon2MemoryMib, iterations: argon2Iterations)
            let (repo, credential) = try await options.open()
            guard case .password = credential else { throw CLIError.usage("open the repository with the password you want to change") }
            let master = try await repo.unlockMasterKey(with: credential)
            if repo.vaultSession != nil && (argon2MemoryMib != nil || argon2Iterations != nil) {
                throw CLIError.usage("--argon2-* options set a password slot's cost; the vault fixes its own")
            }
            let password = try newPasswordFile.map { try Secrets.newPassword(file: $0) } ?? Secrets.promptNewPassword()
            if let session = repo.vaultSession {
                try await repo.changeVaultPassword(to: password, client: options.vaultClient)
                if options.json {
                    Output.json(["vaultURL": session.address.url, "vaultAccount": session.address.account])
                } else if !options.quiet {
                    print("password changed for vault \(session.address)")
                }
                return
            }
            let slot = try await repo.addKeySlot(master: master, credential: .password(password), cost: cost)
            try await repo.removeKeySlot(repo.openedWith)
            if options.json {
                Output.json(["id": slot.id.hex, "replaced": repo.openedWith.hex])
            } else if !options.quiet {
                print("password changed: slot \(repo.openedWith.short) replaced by \(slot.id.short)")
            }
        }
    }
}
