import Glibc
public import CofferCrypto

/// An open repository: storage plus the keys that read and write it. Safe to share between
/// tasks; the index is loaded on demand and kept.
public final class Repository: Sendable {
    public let storage: any Storage
    public let config: RepositoryConfig
    public let keys: RepositoryKeys
    public let chunker: FastCDC
    /// The key slot that opened the repository.
    public let openedWith: KeySlotID
    /// What the vault released, when a vault slot opened the repository.
    public let vaultSession: VaultSession?
    let random: any RandomSource
    /// Local copy of metadata, when enabled (see `useCache(base:)`).
    public var cache: MetadataCache? { cacheLock.withLock { _cache } }
    private let cacheLock = Lock()
    // Guarded by cacheLock.
    private nonisolated(unsafe) var _cache: MetadataCache? = nil

    /// Turns on the local metadata cache under `base` (nil when it cannot be created).
    public func useCache(base: String) {
        let made = MetadataCache(base: base, repositoryID: config.repositoryID)
        cacheLock.withLock { _cache = made }
    }

    init(
        storage: any Storage, config: RepositoryConfig, keys: RepositoryKeys, openedWith: KeySlotID, random: any RandomSource,
        vaultSession: VaultSession? = nil
    ) {
        self.vaultSession = vaultSession
        self.storage = storage
        self.config = config
        self.keys = keys
        self.openedWith = openedWith
        self.random = random
        chunker = FastCDC(parameters: config.chunker, seed: keys.gearSeed)
    }

    public struct InitOptions: Sendable {
        public var chunker: ChunkerParameters = .standard
        public var compressionLevel: Int32 = 3
        public var packTargetSize: UInt32 = 16 << 20
        public var passwordCost: PasswordCost = .standard
        public init() {}
    }

    /// Creates a repository with one key slot for `credential`.
    public static func initialize(
        storage: any Storage, credential: Credential, options: InitOptions = InitOptions(),
        random: any RandomSource = SystemRandom()
    ) async throws -> Repository {
        try await initialize(storage: storage, options: options, random: random) { master in
            ([try KeySlot.create(master: master, credential: credential, cost: options.passwordCost, random: random)], nil)
        }
    }

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
            return ([slot, recovery], VaultSession(address: address, slot: slot, vaultSecret: secret, token: nil, serverPublicKey: nil))
        }
        return (repo, recoveryKey)
    }

    private static func initialize(
        storage: any Storage, options: InitOptions, random: any RandomSource,
        makeSlots: (MasterKey) async throws -> ([KeySlot], VaultSession?)
    ) async throws -> Repository {
        Sodium.initialize()
        if try await storage.stat(.config) != nil { throw RepositoryError.alreadyInitialized(location: storage.location) }
        // Slots left by an interrupted init would open with the same password and then fail on
        // the new config: refuse rather than mix them.
        if try await !storage.list(.keys).isEmpty { throw RepositoryError.alreadyInitialized(location: storage.location) }
        if let local = storage as? LocalStorage { try local.createLayout() }
        let master = MasterKey.generate()
        let (slots, vaultSession) = try await makeSlots(master)
        let keys = RepositoryKeys(master: master)
        let config = RepositoryConfig(
            repositoryID: Raw256(random.bytes(32)), chunker: options.chunker, compressionLevel: options.compressionLevel,
            packTargetSize: options.packTargetSize, createdNanos: Self.nowNanos())
        do {
            // The slots first: a config without a slot could never be opened.
            for slot in slots { try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded()) }
            let sealed = SealedObject.seal(config.encoded(), kind: .config, id: .zero, key: keys.metadataSealing, random: random)
            try await storage.write(.config, sealed)
        } catch {
            // The vault account is registered now; say so, or a retry would meet "already exists".
            if let vaultSession { throw RepositoryError.vaultSlotNotWritten(vaultSession.address.description, detail: "\(error)") }
            throw error
        }
        return Repository(storage: storage, config: config, keys: keys, openedWith: slots[0].id, random: random, vaultSession: vaultSession)
    }

    /// Opens with any key slot that `credential` unlocks. A password is tried on password slots
    /// first, which cost nothing but time, and only then on vault slots, where a wrong one costs
    /// one of the account's attempts.
    public static func open(
        storage: any Storage, credential: Credential, vault: VaultClient = VaultClient(), vaultAccount: String? = nil,
        random: any RandomSource = SystemRandom()
    ) async throws -> Repository {
        Sodium.initialize()
        guard let configObject = try await storage.stat(.config), configObject.size > 0 else {
            throw RepositoryError.noRepository(location: storage.location)
        }
        let slots = try await loadKeySlots(storage, skipMalformed: true)
        var matching = 0
        var configFailure: RepositoryError? = nil
        /// Opens the config with a master key; nil (remembering why) when this master is not the
        /// config's, so the other slots get their turn.
        func openConfig(_ master: MasterKey) async throws -> (RepositoryKeys, RepositoryConfig)? {
            let keys = RepositoryKeys(master: master)
            let stored = try await storage.read(.config)
            let payload: [UInt8]
            do {
                payload = try SealedObject.open(stored, kind: .config, id: .zero, key: keys.metadataSealing)
            } catch {
                // Either the config was tampered with, or this slot wraps another master key
                // (left by an interrupted init): try the other slots first.
                configFailure = RepositoryError.tampered(.config, detail: "\(error)")
                return nil
            }
            let config: RepositoryConfig
            do { config = try RepositoryConfig(decoding: payload) } catch {
                throw RepositoryError.malformed(.config, detail: "\(error)")
            }
            guard config.formatVersion <= RepositoryConfig.formatVersion else {
                throw RepositoryError.unsupportedFormat(config.formatVersion)
            }
            return (keys, config)
        }
        for slot in slots {
            switch (slot.kind, credential) {
            case (.password, .password), (.recoveryKey, .recoveryKey): matching += 1
            default: continue
            }
            guard let master = try? slot.open(with: credential), let opened = try await openConfig(master) else { continue }
            return Repository(storage: storage, config: opened.1, keys: opened.0, openedWith: slot.id, random: random)
        }
        if case .password(let password) = credential {
            let vaultSlots = slots.filter { $0.vaultAddress != nil }
            matching += vaultSlots.count
            if let (address, candidates) = try chooseVaultAccount(vaultSlots, named: vaultAccount) {
                // One login per open, whatever storage holds: a planted copy of a slot must not
                // cost the account a second attempt. The sealed key opens one slot only.
                let login = try await vault.login(address, password: password)
                for slot in candidates {
                    guard let secret = try? VaultSealedKey.open(login.sealedKey, exportKey: login.exportKey, slot: slot),
                        let master = try? slot.open(vaultSecret: secret), let opened = try await openConfig(master)
                    else { continue }
                    let session = VaultSession(
                        address: address, slot: slot, vaultSecret: secret, token: login.token, serverPublicKey: login.serverPublicKey)
                    return Repository(
                        storage: storage, config: opened.1, keys: opened.0, openedWith: slot.id, random: random, vaultSession: session)
                }
                if configFailure == nil { throw RepositoryError.vaultKeyDoesNotFit(address.description) }
            }
        }
        if let configFailure { throw configFailure }
        throw matching == 0 ? RepositoryError.noUsableKeySlot : RepositoryError.wrongCredential
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

    /// All key slots. A malformed one fails the listing, or is left out with `skipMalformed`
    /// (opening must not be blocked by one damaged or planted slot).
    static func loadKeySlots(_ storage: any Storage, skipMalformed: Bool = false) async throws -> [KeySlot] {
        var slots: [KeySlot] = []
        for object in try await storage.list(.keys) {
            guard let id = KeySlotID(hex: object.name.name) else { continue }
            do { slots.append(try KeySlot.decode(try await storage.read(object.name), id: id)) } catch {
                if skipMalformed { continue }
                throw RepositoryError.malformed(object.name, detail: "\(error)")
            }
        }
        return slots.sorted { $0.id < $1.id }
    }

    static func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    // MARK: Sealed metadata objects

    func saveSealed(_ payload: [UInt8], kind: SealedKind, folder: ObjectKind, id: Raw256) async throws -> Int {
        let sealed = SealedObject.seal(
            payload, kind: kind, id: id, key: keys.metadataSealing, random: random,
            compressor: ZstdCompressor(level: config.compressionLevel))
        try await storage.write(ObjectName(folder, id.hex), sealed)
        // Written through to the cache: the next run need not download what this one wrote.
        if folder == .index || folder == .snapshots { cache?.put(folder.rawValue, id.hex, sealed) }
        return sealed.count
    }

    func loadSealed(kind: SealedKind, name: ObjectName, id: Raw256) async throws -> [UInt8] {
        // Index and snapshot objects never change once written: a cached copy that still
        // opens is the object.
        let cacheKind = kind == .index ? "index" : kind == .snapshot ? "snapshots" : nil
        if let cache, let cacheKind, let cached = cache.get(cacheKind, name.name) {
            if let payload = try? SealedObject.open(cached, kind: kind, id: id, key: keys.metadataSealing) { return payload }
            cache.remove(cacheKind, name.name)
        }
        let payload = try await loadSealedFromStorage(kind: kind, name: name, id: id)
        return payload
    }

    private func loadSealedFromStorage(kind: SealedKind, name: ObjectName, id: Raw256) async throws -> [UInt8] {
        let stored: [UInt8]
        do { stored = try await storage.read(name) } catch StorageError.notFound {
            throw RepositoryError.missingObject(name)
        }
        do {
            let payload = try SealedObject.open(stored, kind: kind, id: id, key: keys.metadataSealing)
            if let cache, kind == .index || kind == .snapshot { cache.put(kind == .index ? "index" : "snapshots", name.name, stored) }
            return payload
        } catch .authenticationFailed {
            throw RepositoryError.tampered(name, detail: "seal does not verify")
        } catch {
            throw RepositoryError.malformed(name, detail: "\(error)")
        }
    }
}
