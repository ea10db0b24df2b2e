import CofferCrypto

extension Repository {
    public func keySlots() async throws -> [KeySlot] { try await Self.loadKeySlots(storage) }

    /// Adds a slot for `credential`; no data is touched.
    public func addKeySlot(master: MasterKey, credential: Credential, cost: PasswordCost = .standard) async throws -> KeySlot {
        let slot = try KeySlot.create(master: master, credential: credential, cost: cost, random: random)
        try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        return slot
    }

    /// Removes a slot; refuses to remove the last one.
    public func removeKeySlot(_ id: KeySlotID) async throws {
        let slots = try await keySlots()
        guard slots.contains(where: { $0.id == id }) else { throw RepositoryError.keySlotNotFound(id.short) }
        guard slots.count > 1 else { throw RepositoryError.lastKeySlot }
        try await storage.delete(ObjectName(.keys, id.hex))
    }

    /// Finds the slot whose id starts with `prefix`.
    public func resolveKeySlot(_ prefix: String) async throws -> KeySlotID {
        let matches = try await keySlots().filter { $0.id.hex.hasPrefix(prefix.lowercased()) }
        guard !prefix.isEmpty, let first = matches.first else { throw RepositoryError.keySlotNotFound(prefix) }
        guard matches.count == 1 else { throw RepositoryError.ambiguousKeySlot(prefix) }
        return first.id
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
