import CofferCrypto
import Testing

@testable import Coffer

@Suite struct KeySlotTests {
    let master = Fixture.master()
    let password = Fixture.password("correct horse battery staple")

    func passwordSlot() throws -> KeySlot {
        try KeySlot.create(master: master, credential: .password(password), cost: .insecureMinimum, random: SystemRandom())
    }

    func openError(_ slot: KeySlot, _ credential: Credential) -> KeySlot.Failure? {
        do {
            _ = try slot.open(with: credential)
            return nil
        } catch {
            return error
        }
    }

    @Test func insecureMinimumCostIsLibsodiumsMinimum() {
        #expect(PasswordCost.insecureMinimum.opsLimit == Argon2id.minimumOpsLimit)
        #expect(PasswordCost.insecureMinimum.memoryBytes >= Argon2id.minimumMemoryBytes)
        #expect(PasswordCost.insecureMinimum.description == "argon2id t=1 m=8KiB p=1")
    }

    @Test func passwordSlotOpensWithTheRightPassword() throws {
        let slot = try passwordSlot()
        #expect(slot.kind == .password(.insecureMinimum))
        #expect(slot.salt.count == Argon2id.saltSize)
        let opened = try slot.open(with: .password(Fixture.password("correct horse battery staple")))
        #expect(opened.secret.copyBytes() == master.secret.copyBytes())
    }

    @Test func passwordSlotRefusesAWrongPassword() throws {
        let slot = try passwordSlot()
        for wrong in ["correct horse battery stapl", "Correct horse battery staple", ""] {
            #expect(openError(slot, .password(Fixture.password(wrong)))?.isWrongCredential == true, "\(wrong)")
        }
    }

    @Test func passwordSlotRefusesARecoveryKey() throws {
        #expect(openError(try passwordSlot(), .recoveryKey(.generate()))?.isWrongCredential == true)
    }

    @Test func recoverySlotOpensWithItsKeyOnly() throws {
        let rk = RecoveryKey.generate()
        let slot = try KeySlot.create(master: master, credential: .recoveryKey(rk), random: SystemRandom())
        #expect(slot.kind == .recoveryKey)
        #expect(try slot.open(with: .recoveryKey(rk)).secret.copyBytes() == master.secret.copyBytes())
        let reparsed = try RecoveryKey(parsing: rk.displayText)
        #expect(try slot.open(with: .recoveryKey(reparsed)).secret.copyBytes() == master.secret.copyBytes())
        #expect(openError(slot, .recoveryKey(.generate()))?.isWrongCredential == true)
        #expect(openError(slot, .password(password))?.isWrongCredential == true)
    }

    @Test func slotsOfTheSameMasterAreUnlinkable() throws {
        let a = try passwordSlot(), b = try passwordSlot()
        #expect(a.id != b.id)
        #expect(a.salt != b.salt)
        #expect(a.encoded() != b.encoded())
    }

    @Test func encodeDecodeRoundTrip() throws {
        let rk = RecoveryKey.generate()
        let pw = try passwordSlot()
        let rec = try KeySlot.create(master: master, credential: .recoveryKey(rk), random: SystemRandom())
        // version ‖ kind ‖ [ops ‖ memory] ‖ salt ‖ nonce ‖ wrapped key ‖ tag
        #expect(pw.encoded().count == 1 + 1 + 16 + 16 + 24 + 32 + 16)
        #expect(rec.encoded().count == 1 + 1 + 16 + 24 + 32 + 16)
        for (slot, credential) in [(pw, Credential.password(password)), (rec, .recoveryKey(rk))] {
            let decoded = try KeySlot.decode(slot.encoded(), id: slot.id)
            #expect(decoded.id == slot.id)
            #expect(decoded.kind == slot.kind)
            #expect(decoded.salt == slot.salt)
            #expect(decoded.encoded() == slot.encoded())
            #expect(try decoded.open(with: credential).secret.copyBytes() == master.secret.copyBytes())
        }
    }

    @Test func costIsStoredInTheSlot() throws {
        let cost = PasswordCost(opsLimit: 2, memoryBytes: 16 << 10)
        let slot = try KeySlot.create(master: master, credential: .password(password), cost: cost, random: SystemRandom())
        let decoded = try KeySlot.decode(slot.encoded(), id: slot.id)
        #expect(decoded.kind == .password(cost))
        #expect(try decoded.open(with: .password(password)).secret.copyBytes() == master.secret.copyBytes())
    }

    /// Flips bytes of a stored password slot: the header (cost, salt) is authenticated, so any
    /// change makes the slot unopenable. Offsets: 0 version, 1 kind, 2…9 ops, 10…17 memory,
    /// 18…33 salt, 34…57 nonce, 58…89 wrapped key, 90…105 tag. Flips are chosen so that Argon2id
    /// stays cheap (ops 1 → 3, memory 8 KiB → 8193 bytes or 24 KiB).
    @Test func tamperingWithAStoredPasswordSlotMakesItFailToOpen() throws {
        let slot = try passwordSlot()
        let stored = slot.encoded()
        let flips: [(String, Int, UInt8)] = [
            ("ops", 2, 0x02), ("memory low byte (same Argon2 cost, different header)", 10, 0x01), ("memory", 11, 0x40),
            ("salt first", 18, 0x01), ("salt last", 33, 0x80), ("nonce", 40, 0x01), ("wrapped key", 70, 0x01), ("tag", 105, 0x01),
        ]
        for (what, offset, mask) in flips {
            var tampered = stored
            tampered[offset] ^= mask
            let decoded = try KeySlot.decode(tampered, id: slot.id)
            #expect(openError(decoded, .password(password))?.isWrongCredential == true, "\(what) at \(offset)")
        }
        #expect(try KeySlot.decode(stored, id: slot.id).open(with: .password(password)).secret.copyBytes() == master.secret.copyBytes())
    }

    @Test func aSlotStoredUnderAnotherIDDoesNotOpen() throws {
        let slot = try passwordSlot()
        let moved = try KeySlot.decode(slot.encoded(), id: Fixture.id(0x77))
        #expect(openError(moved, .password(password))?.isWrongCredential == true)
    }

    @Test func everyByteOfARecoverySlotIsProtected() throws {
        let rk = RecoveryKey.generate()
        let slot = try KeySlot.create(master: master, credential: .recoveryKey(rk), random: SystemRandom())
        let stored = slot.encoded()
        var accepted: [Int] = []
        for offset in stored.indices {
            var tampered = stored
            tampered[offset] ^= 0x01
            do {
                _ = try KeySlot.decode(tampered, id: slot.id).open(with: .recoveryKey(rk))
                accepted.append(offset)
            } catch {
                // version and kind bytes make the slot malformed; the rest fail authentication
                #expect(offset < 2 ? error.isMalformed : error.isWrongCredential, "offset \(offset): \(error)")
            }
        }
        #expect(accepted.isEmpty, "tampered slot opened after flipping offsets \(accepted)")
    }

    @Test func truncatedOrExtendedSlotsAreMalformed() throws {
        let stored = try passwordSlot().encoded()
        let id: KeySlotID = Fixture.id(1)
        var notRejected: [Int] = []
        for n in 0..<stored.count {
            do {
                _ = try KeySlot.decode(Array(stored.prefix(n)), id: id)
                notRejected.append(n)
            } catch {
                if !error.isMalformed { notRejected.append(n) }
            }
        }
        #expect(notRejected.isEmpty, "prefix lengths \(notRejected)")
        #expect(throws: KeySlot.Failure.self) { try KeySlot.decode(stored + [0], id: id) }
        var unknownKind = stored
        unknownKind[1] = 9
        #expect((try? KeySlot.decode(unknownKind, id: id)) == nil)
    }

    @Test func randomGarbageNeverDecodesToAnOpenableSlot() {
        let random = Fixture.random(3)
        for i in 0..<500 {
            var bytes = random.bytes(i % 130)
            if bytes.count > 1 {
                bytes[0] = 1
                bytes[1] = 2
            }
            if let slot = try? KeySlot.decode(bytes, id: Fixture.id(2)) {
                #expect(slot.kind == .recoveryKey)
                #expect(throws: KeySlot.Failure.self) { try slot.open(with: .recoveryKey(.generate())) }
            }
        }
    }
}

/// Device slots (FORMAT.md §5.4): opened by their own key only, label readable with the
/// metadata key only.
@Suite struct DeviceSlotTests {
    let master = Fixture.master()
    let keys = RepositoryKeys(master: Fixture.master())

    @Test func aDeviceSlotOpensWithItsKeyAndNothingElse() throws {
        let label = DeviceLabel(hostname: "laptop", createdNanos: 1_764_000_000_000_000_000)
        let (slot, key) = KeySlot.createDevice(master: master, label: label, labelKey: keys.metadataSealing, random: SystemRandom())
        #expect(key.slotID == slot.id && key.secret.count == 32)
        #expect(try slot.open(with: .deviceKey(key)).secret.constantTimeEquals(master.secret))
        // Decoded from its bytes, it still opens and still has its label.
        let decoded = try KeySlot.decode(slot.encoded(), id: slot.id)
        #expect(try decoded.open(with: .deviceKey(key)).secret.constantTimeEquals(master.secret))
        #expect(decoded.deviceLabel(labelKey: keys.metadataSealing) == label)
        // Another device's key, the same secret naming another slot, and other credentials fail.
        let (_, otherKey) = KeySlot.createDevice(master: master, label: label, labelKey: keys.metadataSealing, random: SystemRandom())
        #expect(throws: KeySlot.Failure.self) { try slot.open(with: .deviceKey(otherKey)) }
        #expect(throws: KeySlot.Failure.self) { try slot.open(with: .deviceKey(DeviceKey(slotID: otherKey.slotID, secret: key.secret))) }
        #expect(throws: KeySlot.Failure.self) { try slot.open(with: .password(Fixture.password("laptop"))) }
        // The label does not open under another key, and the host name is not in the clear.
        #expect(slot.deviceLabel(labelKey: keys.dataSealing) == nil)
        let stored = slot.encoded()
        let needle = Array("laptop".utf8)
        #expect(!(0...(stored.count - needle.count)).contains { Array(stored[$0..<$0 + needle.count]) == needle })
    }

    @Test func aChangedLabelMakesTheSlotFailToOpen() throws {
        let (slot, key) = KeySlot.createDevice(
            master: master, label: DeviceLabel(hostname: "h", createdNanos: 1), labelKey: keys.metadataSealing, random: SystemRandom())
        var bytes = slot.encoded()
        bytes[4] ^= 1  // inside the sealed label, which the slot's seal authenticates too
        let altered = try KeySlot.decode(bytes, id: slot.id)
        #expect(throws: KeySlot.Failure.self) { try altered.open(with: .deviceKey(key)) }
    }

    @Test func aKeyFileRoundTripsAndBadFilesAreNamed() throws {
        let (_, key) = KeySlot.createDevice(
            master: master, label: DeviceLabel(hostname: "h", createdNanos: 1), labelKey: keys.metadataSealing, random: SystemRandom())
        let parsed = try DeviceKey(fileText: key.fileText())
        #expect(parsed.slotID == key.slotID && parsed.secret.constantTimeEquals(key.secret))
        for bad in ["", "coffer-device-key-v1\nzz\n00\n", "something else\n", "coffer-device-key-v1\n\(key.slotID.hex)\nabcd\n"] {
            #expect(throws: DeviceKey.FileError.self) { try DeviceKey(fileText: SecureBytes(copying: Array(bad.utf8))) }
        }
        // A long host name is cut so that the sealed label fits the header.
        let long = DeviceLabel(hostname: String(repeating: "h", count: 500), createdNanos: 1)
        let (slot, _) = KeySlot.createDevice(master: master, label: long, labelKey: keys.metadataSealing, random: SystemRandom())
        #expect(try KeySlot.decode(slot.encoded(), id: slot.id).deviceLabel(labelKey: keys.metadataSealing)?.hostname.utf8.count == 200)
        // Cut inside a two-byte character: the character goes, nothing is added in its place.
        let accented = DeviceLabel(hostname: String(repeating: "h", count: 199) + "é" + "x", createdNanos: 1)
        #expect(accented.hostname == String(repeating: "h", count: 199))
        _ = KeySlot.createDevice(master: master, label: accented, labelKey: keys.metadataSealing, random: SystemRandom())
    }
}
