import CofferCrypto

extension Repository {
    /// The slots that can be opened; a malformed or refused one is left out (see `refusedKeySlots`),
    /// so one planted slot cannot block managing the others.
    public func keySlots() async throws -> [KeySlot] { try await Self.loadKeySlotsForOpening(storage).slots }

    /// What is wrong with each slot that `keySlots` leaves out, naming it.
    public func refusedKeySlots() async throws -> [String] { try await Self.loadKeySlotsForOpening(storage).refused }

    /// Adds a slot for `credential`; no data is touched.
    public func addKeySlot(master: MasterKey, credential: Credential, cost: PasswordCost = .standard) async throws -> KeySlot {
        let slot = try KeySlot.create(master: master, credential: credential, cost: cost, random: random)
        try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        return slot
    }

    /// Adds a device slot for this machine (FORMAT.md §5.4). `keep` must store the key (in a
    /// file only its user can read) before the slot is written: it runs first, and the slot is
    /// not written if it throws. A slot whose write fails leaves the key unused, not lost.
    public func addDeviceSlot(
        master: MasterKey, hostname: String? = nil, keep: (DeviceKey) throws -> Void
    ) async throws -> KeySlot {
        let label = DeviceLabel(hostname: hostname ?? Self.hostname(), createdNanos: Self.nowNanos())
        let (slot, key) = KeySlot.createDevice(master: master, label: label, labelKey: keys.metadataSealing, random: random)
        try keep(key)
        try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        return slot
    }

    /// A device slot's host name and creation time (nil for other slots, or a label that does
    /// not open).
    public func deviceLabel(of slot: KeySlot) -> DeviceLabel? { slot.deviceLabel(labelKey: keys.metadataSealing) }

    /// Removes a slot, also one that is refused as malformed; refuses to remove the last slot
    /// that opens.
    public func removeKeySlot(_ id: KeySlotID) async throws {
        let stored = try await storedKeySlotIDs()
        guard stored.contains(id) else { throw RepositoryError.keySlotNotFound(id.short) }
        guard try await keySlots().contains(where: { $0.id != id }) else { throw RepositoryError.lastKeySlot }
        try await storage.delete(ObjectName(.keys, id.hex))
    }

    /// Finds the slot whose id starts with `prefix` (in either case: it is typed).
    public func resolveKeySlot(_ prefix: String) async throws -> KeySlotID {
        let matches = try await storedKeySlotIDs().filter { $0.hex.hasPrefix(prefix.lowercased()) }
        guard !prefix.isEmpty, let first = matches.first else { throw RepositoryError.keySlotNotFound(prefix) }
        guard matches.count == 1 else { throw RepositoryError.ambiguousKeySlot(prefix) }
        return first
    }

    /// Every slot name in storage, whether or not the slot decodes.
    private func storedKeySlotIDs() async throws -> [KeySlotID] {
        try await storage.list(.keys).compactMap { KeySlotID(hex: $0.name.name) }.sorted()
    }

    /// Recovers the master key from the slot that opened this repository, to wrap it anew.
    public func unlockMasterKey(with credential: Credential) async throws -> MasterKey {
        for slot in try await keySlots() where slot.id == openedWith {
            // A vault slot opens with the secret its login released, not with another login.
            if let session = vaultSession, let master = try? slot.open(vaultSecret: session.vaultSecret) { return master }
            guard let master = try? slot.open(with: credential) else { throw RepositoryError.wrongCredential }
            return master
        }
        throw RepositoryError.keySlotNotFound(openedWith.short)
    }
}
