import CofferCrypto
import Testing

@testable import Coffer

/// Vault key slots without a vault: the address rules, the slot's encoding, and the binding of
/// the sealed key to one slot and one export key.
@Suite struct VaultSlotTests {
    let master = MasterKey.generate()
    let address = try! VaultAddress(url: "https://vault.example.org/base/", account: "älice bob/1")

    @Test func addressesAreCheckedAndNamesPercentEncoded() throws {
        #expect(address.url == "https://vault.example.org/base", "a trailing slash is dropped")
        #expect(address.endpoint("login/start") == "https://vault.example.org/base/v1/accounts/%C3%A4lice%20bob%2F1/login/start")
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress(url: "http://vault.example.org", account: "a") }
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress(url: "ftp://vault.example.org", account: "a") }
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress(url: "https://user@vault.example.org", account: "a") }
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress(url: "https://vault.example.org", account: "") }
        #expect(throws: VaultAddress.Invalid.self) {
            try VaultAddress(url: "https://vault.example.org", account: String(repeating: "x", count: 129))
        }
        #expect(throws: VaultAddress.Invalid.self) {
            try VaultAddress(url: "https://" + String(repeating: "v", count: 250) + ".org", account: "a")
        }
        // A port must be 1–65535; spaces at the ends of a name are refused.
        for url in ["https://v.example:99999", "https://v.example:0", "https://v.example:abc", "https://v.example:", "https://[::1]x"] {
            #expect(throws: VaultAddress.Invalid.self, "\(url)") { try VaultAddress(url: url, account: "a") }
        }
        #expect((try? VaultAddress(url: "https://[2001:db8::1]:8443/v", account: "a")) != nil)
        for name in ["   ", " alice", "alice "] {
            #expect(throws: VaultAddress.Invalid.self, "\(name)") { try VaultAddress(url: "https://v.example", account: name) }
        }
        #expect((try? VaultAddress(url: "http://LOCALHOST:8443", account: "a")) != nil)
        // Plain http only to this machine — not to a name that starts like a loopback address.
        for url in ["http://127.evil.example", "http://127.0.0.1.nip.io", "http://127.0.0.256", "http://localhost.example"] {
            #expect(throws: VaultAddress.Invalid.self, "\(url)") { try VaultAddress(url: url, account: "a") }
        }
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress(url: "https://vault.example.org", account: "a\u{1b}[2J") }
        for url in ["http://127.0.0.1:8443", "http://localhost:1", "http://[::1]:8443"] {
            #expect((try? VaultAddress(url: url, account: "a")) != nil, "\(url)")
        }
    }

    @Test func slotRoundTripsAndOpensWithItsSecret() throws {
        let (slot, secret) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
        let decoded = try KeySlot.decode(slot.encoded(), id: slot.id)
        #expect(decoded.kind == .vault(address))
        #expect(decoded.encoded() == slot.encoded())
        #expect(try decoded.open(vaultSecret: secret).secret.constantTimeEquals(master.secret))
        #expect(throws: KeySlot.Failure.self) { try decoded.open(vaultSecret: SecureBytes.random(count: 32)) }
        // A vault slot cannot be opened as a password slot, even with the secret's bytes.
        #expect(throws: KeySlot.Failure.self) { try decoded.open(with: .password(secret)) }
    }

    @Test func aChangedAddressInTheHeaderFailsToOpen() throws {
        let (slot, secret) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
        var bytes = slot.encoded()
        // The URL starts after version, kind and its length byte; redirect it to another host.
        let at = 3 + "https://".utf8.count
        bytes[at] = UInt8(ascii: "w")
        let altered = try KeySlot.decode(bytes, id: slot.id)
        #expect(altered.vaultAddress?.url == "https://wault.example.org/base")
        #expect(throws: KeySlot.Failure.self) { try altered.open(vaultSecret: secret) }
    }

    @Test func malformedVaultHeadersAreRefused() throws {
        let (slot, _) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
        var long = slot.encoded()
        long[2] = 255  // a URL length running into the account and salt
        #expect(throws: KeySlot.Failure.self) { try KeySlot.decode(long, id: slot.id) }
        var plainHTTP = slot.encoded()
        plainHTTP.replaceSubrange(3..<11, with: Array("http://v".utf8))  // now "http://vvault…": not loopback
        #expect(throws: KeySlot.Failure.self) { try KeySlot.decode(plainHTTP, id: slot.id) }
    }

    @Test func theSealedKeyIsBoundToItsSlotAndExportKey() throws {
        let exportKey = SecureBytes.random(count: 64)
        let (slot, secret) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
        let sealed = VaultSealedKey.seal(vaultSecret: secret, exportKey: exportKey, slot: slot, random: SystemRandom())
        #expect(sealed.count == VaultSealedKey.length)
        #expect(try VaultSealedKey.open(sealed, exportKey: exportKey, slot: slot).copyBytes() == secret.copyBytes())
        // Another password's export key.
        #expect(throws: VaultSealedKey.Failure.self) {
            try VaultSealedKey.open(sealed, exportKey: SecureBytes.random(count: 64), slot: slot)
        }
        // Another slot of the same repository and account: a vault cannot answer for one slot with another's key.
        let (other, _) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
        #expect(throws: VaultSealedKey.Failure.self) { try VaultSealedKey.open(sealed, exportKey: exportKey, slot: other) }
        // Any flipped bit, and a truncation.
        for i in [0, 1, 30, sealed.count - 1] {
            var bad = sealed
            bad[i] ^= 0x01
            #expect(throws: VaultSealedKey.Failure.self) { try VaultSealedKey.open(bad, exportKey: exportKey, slot: slot) }
        }
        #expect(throws: VaultSealedKey.Failure.self) { try VaultSealedKey.open(Array(sealed.dropLast()), exportKey: exportKey, slot: slot) }
    }
}

/// Choosing the one vault account a password goes to, before any password is typed.
@Suite struct VaultAccountChoiceTests {
    static func writeSlots(_ storage: LocalStorage, _ addresses: [VaultAddress], passwordSlot: Bool = false) async throws {
        try storage.createLayout()
        let master = MasterKey.generate()
        for address in addresses {
            let (slot, _) = KeySlot.createVault(master: master, address: address, random: SystemRandom())
            try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        }
        if passwordSlot {
            let slot = try KeySlot.create(
                master: master, credential: .password(SecureBytes(copying: Array("pw".utf8))), cost: .insecureMinimum, random: SystemRandom())
            try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())
        }
    }

    @Test func severalAccountsNeedANameBeforeThePrompt() async throws {
        let a = try VaultAddress(url: "https://one.example", account: "alice")
        let b = try VaultAddress(url: "https://two.example", account: "bob")
        try await withTemporaryDirectory { dir in
            let two = LocalStorage(path: dir + "/two")
            try await Self.writeSlots(two, [a, b])
            await #expect(throws: RepositoryError.self) { try await Repository.checkVaultAccountChoice(storage: two, named: nil) }
            try await Repository.checkVaultAccountChoice(storage: two, named: "bob")
            await #expect(throws: RepositoryError.self) { try await Repository.checkVaultAccountChoice(storage: two, named: "carol") }
            // With a password slot the password may be for it: nothing to refuse yet.
            let withPassword = LocalStorage(path: dir + "/with-password")
            try await Self.writeSlots(withPassword, [a, b], passwordSlot: true)
            try await Repository.checkVaultAccountChoice(storage: withPassword, named: nil)
            // One account needs no name.
            let one = LocalStorage(path: dir + "/one")
            try await Self.writeSlots(one, [a])
            try await Repository.checkVaultAccountChoice(storage: one, named: nil)
        }
    }
}
