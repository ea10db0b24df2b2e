import CofferCrypto

/// Key slots whose password a key vault checks (FORMAT.md §5.3): opening through one login,
/// adding a vault slot, and changing its password.
extension Repository {
    /// Creates a repository whose password is checked by a key vault: a vault slot and a
    /// recovery-key slot (the way back in once the account locks), never a password slot.
    /// Registers `password` with the vault account before writing anything, so a refused
    /// account leaves storage untouched; both slots are written before the config.
    public static func initialize(
        storage: any Storage, vault address: VaultAddress, password: SecureBytes, client: VaultClient,
        options: InitOptions = InitOptions(), random: any RandomSource = SystemRandom()
    ) async throws -> (Repository, RecoveryKey) {
        let recoveryKey = RecoveryKey.generate()
        let repo = try await initialize(storage: storage, options: options, random: random) { master in
            let (slot, secret) = KeySlot.createVault(master: master, address: address, random: random)
            try await client.register(address, password: password) { exportKey in
                VaultSealedKey.seal(vaultSecret: secret, exportKey: exportKey, slot: slot, random: random)
            }
            let recovery = try KeySlot.create(master: master, credential: .recoveryKey(recoveryKey), random: random)
            let session = VaultSession(address: address, slot: slot, vaultSecret: secret, token: nil, serverPublicKey: nil, report: nil)
            return ([slot, recovery], session)
        }
        return (repo, recoveryKey)
    }

    /// Logs in to one vault account once and tries the key it releases on that account's
    /// slots. Whatever storage holds, one password entry costs at most one attempt, and goes
    /// only to a vault that `trust` allows.
    static func openThroughVault(
        storage: any Storage, slots: [KeySlot], account: String?, password: SecureBytes, client: VaultClient,
        trust: any VaultTrust, triedPasswordSlots: Bool, random: any RandomSource
    ) async throws -> Repository {
        guard let (address, candidates) = try chooseVaultAccount(slots.filter { $0.vaultAddress != nil }, named: account) else {
            throw RepositoryError.noUsableKeySlot
        }
        // The URL came from storage: nothing is sent to it unless this machine trusts it.
        guard try await trust.allowsLogin(to: address) else {
            throw RepositoryError.vaultNotTrusted(address, triedPasswordSlots: triedPasswordSlots)
        }
        let login: VaultClient.Login
        do { login = try await client.login(address, password: password) } catch let error as VaultClientError {
            if case .unreachable = error { throw RepositoryError.vaultUnreachable(error) }
            throw error
        }
        var configFailure: RepositoryError? = nil
        // The sealed key is bound to one slot: planted copies fail here and cost nothing.
        for slot in candidates {
            guard let secret = try? VaultSealedKey.open(login.sealedKey, exportKey: login.exportKey, slot: slot),
                let master = try? slot.open(vaultSecret: secret)
            else { continue }
            switch try await openConfig(storage, master) {
            case .opened(let keys, let config):
                var token: String? = login.token
                var report = login.report
                if report.needsReregistration {
                    // Made by a version-1 vault, whose answers to anyone's registration starts
                    // can test guesses against this record: the same password again, under a
                    // fresh OPRF key, changes that and no byte of the repository.
                    do {
                        token = try await client.register(
                            address, password: password, token: login.token, expectedServerPublicKey: login.serverPublicKey
                        ) { exportKey in
                            VaultSealedKey.seal(vaultSecret: secret, exportKey: exportKey, slot: slot, random: random)
                        }
                        report.reregistration = .done
                    } catch {
                        report.reregistration = .failed("\(error)")
                    }
                }
                let session = VaultSession(
                    address: address, slot: slot, vaultSecret: secret, token: token, serverPublicKey: login.serverPublicKey,
                    report: report)
                return Repository(storage: storage, config: config, keys: keys, openedWith: slot.id, random: random, vaultSession: session)
            case .notThisMaster(let failure):
                configFailure = failure
            }
        }
        throw configFailure ?? RepositoryError.vaultKeyDoesNotFit(address.description)
    }

    /// Refuses before a password is typed when it could only go to vault slots and the account
    /// would have to be guessed, or the vault is one `trust` refuses; `open` would refuse the
    /// same after the prompt. `trust` may ask its question here, before the password.
    public static func checkVaultAccountChoice(storage: any Storage, named: String?, trust: (any VaultTrust)? = nil) async throws {
        let slots = try await loadKeySlotsForOpening(storage).slots
        guard !slots.contains(where: { if case .password = $0.kind { return true } else { return false } }) else { return }
        guard let (address, _) = try chooseVaultAccount(slots.filter { $0.vaultAddress != nil }, named: named), let trust else { return }
        guard try await trust.allowsLogin(to: address) else {
            throw RepositoryError.vaultNotTrusted(address, triedPasswordSlots: false)
        }
    }

    /// The one vault account a password is tried on, and its slots: the account named, or the
    /// only one there is. Several accounts and none named is refused rather than guessed, since
    /// a wrong password costs each account tried an attempt.
    static func chooseVaultAccount(_ slots: [KeySlot], named: String?) throws -> (VaultAddress, [KeySlot])? {
        var addresses: [VaultAddress] = []
        for slot in slots {
            if let a = slot.vaultAddress, !addresses.contains(a) { addresses.append(a) }
        }
        if let named {
            guard let address = addresses.first(where: { $0.account == named }) else {
                throw RepositoryError.vaultAccountNotFound(named, known: addresses.map(\.description))
            }
            guard addresses.filter({ $0.account == named }).count == 1 else {
                throw RepositoryError.vaultAccountAmbiguous(addresses.filter { $0.account == named }.map(\.description))
            }
            return (address, slots.filter { $0.vaultAddress == address })
        }
        guard let only = addresses.first else { return nil }
        guard addresses.count == 1 else { throw RepositoryError.vaultAccountAmbiguous(addresses.map(\.description)) }
        return (only, slots)
    }

    /// Adds a slot that opens through a login to `address`: registers `password` with the
    /// vault, then writes the slot. A refused registration writes nothing.
    public func addVaultSlot(master: MasterKey, address: VaultAddress, password: SecureBytes, client: VaultClient) async throws -> KeySlot {
        let (slot, secret) = KeySlot.createVault(master: master, address: address, random: random)
        try await client.register(address, password: password) { exportKey in
            VaultSealedKey.seal(vaultSecret: secret, exportKey: exportKey, slot: slot, random: random)
        }
        do {
            try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        } catch {
            throw RepositoryError.vaultSlotNotWritten(address.description, detail: "\(error)")
        }
        return slot
    }

    /// Changes the password of the vault slot that opened this repository: registers the new
    /// password under the token of that login, which replaces the account's record and sealed
    /// key at once. The slot in storage does not change.
    public func changeVaultPassword(to password: SecureBytes, client: VaultClient) async throws {
        guard let session = vaultSession, let token = session.token else { throw RepositoryError.notOpenedByVault }
        do {
            try await client.register(
                session.address, password: password, token: token, expectedServerPublicKey: session.serverPublicKey
            ) { exportKey in
                VaultSealedKey.seal(vaultSecret: session.vaultSecret, exportKey: exportKey, slot: session.slot, random: random)
            }
        } catch VaultClientError.unreachable(let url, let reason) {
            throw VaultClientError.passwordChangeUnconfirmed(url: url, reason: reason)
        } catch let error as VaultClientError {
            // Refused before anything was stored (rate limit, an expired token, a wrong vault).
            throw RepositoryError.vaultPasswordNotChanged(error)
        }
    }
}
