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

    /// Creates a repository with the slots `makeSlots` wraps the new master key in.
    static func initialize(
        storage: any Storage, options: InitOptions, random: any RandomSource,
        makeSlots: (MasterKey) async throws -> ([KeySlot], VaultSession?)
    ) async throws -> Repository {
        Sodium.initialize()
        if try await storage.stat(.config) != nil { throw RepositoryError.alreadyInitialized(location: storage.location) }
        // Slots left by an interrupted init would open with the same password and then fail on
        // the new config: refuse rather than mix them.
        if try await !storage.list(.keys).isEmpty { throw RepositoryError.alreadyInitialized(location: storage.location) }
        let master = MasterKey.generate()
        let (slots, vaultSession) = try await makeSlots(master)
        let keys = RepositoryKeys(master: master)
        let config = RepositoryConfig(
            repositoryID: Raw256(random.bytes(32)), chunker: options.chunker, compressionLevel: options.compressionLevel,
            packTargetSize: options.packTargetSize, createdNanos: Self.nowNanos())
        do {
            // Only now: a refused vault registration leaves no folders behind.
            if let local = storage as? LocalStorage { try local.createLayout() }
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
    /// one of the account's attempts. It goes to a vault only if `vaultTrust` allows that
    /// vault's URL: storage can plant a slot naming any server (FORMAT.md §5.3).
    public static func open(
        storage: any Storage, credential: Credential, vault: VaultClient = VaultClient(), vaultAccount: String? = nil,
        vaultTrust: any VaultTrust = TrustedVaultURLs.none, random: any RandomSource = SystemRandom()
    ) async throws -> Repository {
        Sodium.initialize()
        guard let configObject = try await storage.stat(.config), configObject.size > 0 else {
            throw RepositoryError.noRepository(location: storage.location)
        }
        let (slots, refused) = try await loadKeySlotsForOpening(storage)
        var candidates: [KeySlot] = []
        var notTried = refused
        switch credential {
        case .password:
            // Cheapest first, within one budget: planted slots cannot make a typo expensive.
            let plan = passwordSlotsToTry(slots)
            candidates = plan.tried
            notTried += plan.skipped.map { "key slot \($0.id.short) (beyond the Argon2id work one open may spend)" }
        case .recoveryKey:
            candidates = slots.filter { $0.kind == .recoveryKey }
        case .deviceKey(let key):
            candidates = slots.filter { slot in
                if case .device = slot.kind { return slot.id == key.slotID }
                return false
            }
        }
        var configFailure: RepositoryError? = nil
        for slot in candidates {
            guard let master = try? slot.open(with: credential) else { continue }
            switch try await openConfig(storage, master) {
            case .opened(let keys, let config):
                return Repository(storage: storage, config: config, keys: keys, openedWith: slot.id, random: random)
            case .notThisMaster(let failure):
                configFailure = failure
            }
        }
        // Vault slots last: a wrong password costs the vault account an attempt.
        if case .password(let password) = credential, slots.contains(where: { $0.vaultAddress != nil }) {
            return try await openThroughVault(
                storage: storage, slots: slots, account: vaultAccount, password: password, client: vault, trust: vaultTrust,
                triedPasswordSlots: !candidates.isEmpty, random: random)
        }
        if let configFailure { throw configFailure }
        if !notTried.isEmpty { throw RepositoryError.keySlotsNotTried(notTried, triedAny: !candidates.isEmpty) }
        throw candidates.isEmpty ? RepositoryError.noUsableKeySlot : RepositoryError.wrongCredential
    }

    /// The password slots one open tries: cheapest first (then by id), until their summed
    /// Argon2id work would pass `PasswordCost.maximumWorkPerOpen` (FORMAT.md §5.1). The first is
    /// always within it, since no slot may ask for more than `maximumWork`.
    static func passwordSlotsToTry(_ slots: [KeySlot]) -> (tried: [KeySlot], skipped: [KeySlot]) {
        let password = slots.compactMap { slot -> (KeySlot, PasswordCost)? in
            if case .password(let cost) = slot.kind { return (slot, cost) }
            return nil
        }.sorted { ($0.1.work, $0.0.id) < ($1.1.work, $1.0.id) }
        var tried: [KeySlot] = [], skipped: [KeySlot] = []
        var spent: UInt64 = 0
        for (slot, cost) in password {
            if spent + cost.work <= PasswordCost.maximumWorkPerOpen {
                spent += cost.work
                tried.append(slot)
            } else {
                skipped.append(slot)
            }
        }
        return (tried, skipped)
    }

    enum ConfigOpening {
        case opened(RepositoryKeys, RepositoryConfig)
        /// The config does not open under this master key: it was tampered with, or the slot
        /// wraps another master key (left by an interrupted init). Other slots get their turn.
        case notThisMaster(RepositoryError)
    }

    /// Opens the config with the master key a slot gave.
    static func openConfig(_ storage: any Storage, _ master: MasterKey) async throws -> ConfigOpening {
        let keys = RepositoryKeys(master: master)
        let stored = try await storage.read(.config)
        let payload: [UInt8]
        do {
            payload = try SealedObject.open(stored, kind: .config, id: .zero, key: keys.metadataSealing)
        } catch {
            return .notThisMaster(RepositoryError.tampered(.config, detail: "\(error)"))
        }
        let config: RepositoryConfig
        do { config = try RepositoryConfig(decoding: payload) } catch {
            throw RepositoryError.malformed(.config, detail: "\(error)")
        }
        guard config.formatVersion <= RepositoryConfig.formatVersion else {
            throw RepositoryError.unsupportedFormat(config.formatVersion)
        }
        return .opened(keys, config)
    }

    /// All key slots; a malformed one fails the listing.
    static func loadKeySlots(_ storage: any Storage) async throws -> [KeySlot] {
        var slots: [KeySlot] = []
        for object in try await storage.list(.keys) {
            guard let id = KeySlotID(hex: object.name.name) else { continue }
            do { slots.append(try KeySlot.decode(try await storage.read(object.name), id: id)) } catch {
                throw RepositoryError.malformed(object.name, detail: "\(error)")
            }
        }
        return slots.sorted { $0.id < $1.id }
    }

    /// The key slots that can be tried, and why each other one is not: opening must not be
    /// blocked by one damaged or planted slot, and must be able to say which it left out.
    static func loadKeySlotsForOpening(_ storage: any Storage) async throws -> (slots: [KeySlot], refused: [String]) {
        var slots: [KeySlot] = []
        var refused: [String] = []
        for object in try await storage.list(.keys) {
            guard let id = KeySlotID(hex: object.name.name) else { continue }
            // A slot that cannot be read is a storage failure, not a slot to leave out: skipping
            // it would turn a failed read into "wrong password" or "no slot for this credential".
            let bytes: [UInt8]
            do { bytes = try await storage.read(object.name) } catch StorageError.notFound { continue }
            do { slots.append(try KeySlot.decode(bytes, id: id)) } catch KeySlot.Failure.malformed(let why) {
                // Named by its object too: a slot that does not decode was damaged or cut short
                // in storage (or planted), which is not what a wrong password looks like.
                refused.append("\(why.what) (\(object.name) is damaged or truncated)")
            } catch {
                refused.append("key slot \(id.short): \(error)")
            }
        }
        return (slots.sorted { $0.id < $1.id }, refused)
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
