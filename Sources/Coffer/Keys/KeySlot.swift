public import CofferCrypto

/// Argon2id cost of a password slot, stored in the slot in the clear (it is needed before any key).
public struct PasswordCost: Sendable, Equatable, CustomStringConvertible {
    public var opsLimit: UInt64
    public var memoryBytes: UInt64

    public init(opsLimit: UInt64, memoryBytes: UInt64) {
        self.opsLimit = opsLimit
        self.memoryBytes = memoryBytes
    }

    /// Default: 256 MiB and 4 passes, about 0.75 s per guess on this machine class (FORMAT.md §5.1).
    public static let standard = PasswordCost(opsLimit: 4, memoryBytes: 256 << 20)
    /// The cheapest cost libsodium allows. Only for tests: it offers no protection.
    public static let insecureMinimum = PasswordCost(opsLimit: Argon2id.minimumOpsLimit, memoryBytes: 8 << 10)

    public var description: String { "argon2id t=\(opsLimit) m=\(memoryBytes >> 10)KiB p=1" }

    // Limits (FORMAT.md §5.1). A slot's cost comes from storage, and every password slot is
    // tried on a wrong password: without limits a planted slot could ask for hours of Argon2id
    // or more memory than the machine has.
    /// Most passes a slot may ask for: 4 × the default.
    public static let maximumOpsLimit: UInt64 = 16
    /// Most memory a slot may ask for: 4 × the default.
    public static let maximumMemoryBytes: UInt64 = 1 << 30
    /// Least memory: libsodium's floor.
    public static let minimumMemoryBytes: UInt64 = 8 << 10
    /// Most work (passes × memory) a slot may ask for: 4 × the default's, about 3 s here.
    public static let maximumWork: UInt64 = 4 << 30
    /// Most work one open spends on password slots, cheapest first: 8 × the default's.
    public static let maximumWorkPerOpen: UInt64 = 8 << 30

    /// Passes × memory in bytes: what one guess against the slot costs, in time and memory.
    public var work: UInt64 { opsLimit.multipliedReportingOverflow(by: memoryBytes).overflow ? .max : opsLimit * memoryBytes }

    /// Whether a reader runs this cost (FORMAT.md §5.1); slots outside are refused unrun.
    public var isWithinLimits: Bool {
        (1...Self.maximumOpsLimit).contains(opsLimit) && (Self.minimumMemoryBytes...Self.maximumMemoryBytes).contains(memoryBytes)
            && work <= Self.maximumWork
    }

    /// The limits, for messages.
    public static let limitsDescription = "t from 1 to 16, m from 8 KiB to 1 GiB, t × m at most 4 GiB"
}

/// What a person presents to open a repository.
public enum Credential: Sendable {
    case password(SecureBytes)
    case recoveryKey(RecoveryKey)
    /// Opens only the device slot it names (FORMAT.md §5.4).
    case deviceKey(DeviceKey)
}

/// A key slot (`keys/<id>`, FORMAT.md §5): the master key wrapped under a password, a
/// recovery key, or a secret that a key vault releases after a password login. The header
/// before the sealed part is authenticated as associated data.
public struct KeySlot: Sendable {
    public enum Kind: Sendable, Equatable {
        case password(PasswordCost)
        case recoveryKey
        /// The wrapping key is a random secret held, sealed, by this vault account (§5.3).
        case vault(VaultAddress)
        /// The wrapping key comes from a 256-bit key in a file on one machine (§5.4); the label
        /// (host name, creation time) is sealed under the metadata key.
        case device(sealedLabel: [UInt8])
    }

    public static let version: UInt8 = 1
    static let wrapLabel = Array("coffer-keyslot-v1".utf8)
    static let recoveryLabel = Array("coffer-recovery-v1".utf8)
    static let deviceLabel = Array("coffer-device-v1".utf8)

    public let id: KeySlotID
    public let kind: Kind
    public let salt: [UInt8]
    /// nonce ‖ ciphertext of the master key ‖ tag.
    let wrapped: [UInt8]

    public enum Failure: Error, CustomStringConvertible {
        case wrongCredential
        case malformed(MalformedObject)
        case kdf(Argon2id.Failure)
        /// A new slot would ask for a cost that readers refuse (FORMAT.md §5.1).
        case costOutOfRange(PasswordCost)

        public var description: String {
            switch self {
            case .wrongCredential: return "wrong password or key"
            case .malformed(let m): return m.description
            case .kdf(let f): return "key derivation failed (\(f))"
            case .costOutOfRange(let c): return "\(c) is outside the limits a reader runs (\(PasswordCost.limitsDescription))"
            }
        }
    }

    /// Wraps `master` for `credential`.
    public static func create(
        master: MasterKey, credential: Credential, cost: PasswordCost = .standard, random: any RandomSource
    ) throws(Failure) -> KeySlot {
        let id = KeySlotID(bytes: random.bytes(32))
        let salt = random.bytes(Argon2id.saltSize)
        let kind: Kind
        switch credential {
        case .password:
            // A slot that no reader would run could never open the repository.
            guard cost.isWithinLimits else { throw .costOutOfRange(cost) }
            kind = .password(cost)
        case .recoveryKey: kind = .recoveryKey
        case .deviceKey: throw .wrongCredential  // made by `createDevice`, which draws the key
        }
        let key = try wrappingKey(kind: kind, salt: salt, credential: credential)
        return wrap(master, id: id, kind: kind, salt: salt, key: key, random: random)
    }

    /// Wraps `master` for a vault account under a fresh random secret, which the caller seals
    /// into the vault (`VaultSealedKey`) before it writes the slot.
    public static func createVault(
        master: MasterKey, address: VaultAddress, random: any RandomSource
    ) -> (slot: KeySlot, vaultSecret: SecureBytes) {
        let id = KeySlotID(bytes: random.bytes(32))
        let salt = random.bytes(Argon2id.saltSize)
        let kind = Kind.vault(address)
        var secretBytes = random.bytes(32)
        let secret = SecureBytes(copying: secretBytes)
        secureZero(&secretBytes)
        return (wrap(master, id: id, kind: kind, salt: salt, key: secret, random: random), secret)
    }

    /// Wraps `master` under a fresh device key; `label` is sealed under `labelKey` (the
    /// repository's metadata-sealing key) into the header.
    public static func createDevice(
        master: MasterKey, label: DeviceLabel, labelKey: SealingKey, random: any RandomSource
    ) -> (slot: KeySlot, key: DeviceKey) {
        let id = KeySlotID(bytes: random.bytes(32))
        let salt = random.bytes(Argon2id.saltSize)
        var secretBytes = random.bytes(DeviceKey.secretBytes)
        let device = DeviceKey(slotID: id, secret: SecureBytes(copying: secretBytes))
        secureZero(&secretBytes)
        let kind = Kind.device(sealedLabel: label.sealed(slotID: id, key: labelKey, random: random))
        // A device credential always fits a device kind.
        let key = try! wrappingKey(kind: kind, salt: salt, credential: .deviceKey(device))
        return (wrap(master, id: id, kind: kind, salt: salt, key: key, random: random), device)
    }

    /// The host name and creation time of a device slot, if its label opens under `labelKey`.
    public func deviceLabel(labelKey: SealingKey) -> DeviceLabel? {
        guard case .device(let sealed) = kind else { return nil }
        return DeviceLabel.open(sealed, slotID: id, key: labelKey)
    }

    /// Seals the master key under `key`, with the header as associated data. Draws the nonce.
    private static func wrap(
        _ master: MasterKey, id: KeySlotID, kind: Kind, salt: [UInt8], key: SecureBytes, random: any RandomSource
    ) -> KeySlot {
        var box: [UInt8] = []
        master.secret.withUnsafeBytes { m in
            XChaCha20Poly1305.seal(
                m, authenticating: associatedData(header: encodeHeader(kind: kind, salt: salt), id: id), key: key,
                nonce: random.bytes(XChaCha20Poly1305.nonceSize), appendingTo: &box)
        }
        return KeySlot(id: id, kind: kind, salt: salt, wrapped: box)
    }

    /// Unwraps the master key; `wrongCredential` if the credential does not fit this slot.
    public func open(with credential: Credential) throws(Failure) -> MasterKey {
        switch (kind, credential) {
        case (.password, .password), (.recoveryKey, .recoveryKey): break
        case (.device, .deviceKey(let key)) where key.slotID == id: break
        default: throw .wrongCredential
        }
        return try unwrap(with: try Self.wrappingKey(kind: kind, salt: salt, credential: credential))
    }

    /// Unwraps a vault slot's master key with the secret its vault account released.
    public func open(vaultSecret: SecureBytes) throws(Failure) -> MasterKey {
        guard case .vault = kind else { throw .wrongCredential }
        return try unwrap(with: vaultSecret)
    }

    private func unwrap(with key: SecureBytes) throws(Failure) -> MasterKey {
        guard var plain = try? XChaCha20Poly1305.open(wrapped, authenticating: associatedData, key: key), plain.count == 32 else {
            throw .wrongCredential
        }
        defer { secureZero(&plain) }
        return MasterKey(secret: SecureBytes(copying: plain))
    }

    /// The header: the cleartext part of the slot, which its seal authenticates.
    var header: [UInt8] { Self.encodeHeader(kind: kind, salt: salt) }
    var associatedData: [UInt8] { Self.associatedData(header: header, id: id) }

    /// The vault account, for a vault slot.
    public var vaultAddress: VaultAddress? {
        if case .vault(let address) = kind { return address }
        return nil
    }

    /// The stored bytes.
    public func encoded() -> [UInt8] { Self.encodeHeader(kind: kind, salt: salt) + wrapped }

    public static func decode(_ bytes: [UInt8], id: KeySlotID) throws(Failure) -> KeySlot {
        do {
            var r = ByteReader(bytes, what: "key slot \(id.short)")
            guard try r.u8() == version else { throw MalformedObject("key slot \(id.short): unknown version") }
            let kind: Kind
            switch try r.u8() {
            case 1:
                let ops = try r.u64()
                let mem = try r.u64()
                // Costs come from storage: refuse, unrun, what could exhaust memory or time.
                let cost = PasswordCost(opsLimit: ops, memoryBytes: mem)
                guard cost.isWithinLimits else {
                    throw MalformedObject(
                        "key slot \(id.short): its Argon2id cost (t=\(ops), m=\(mem >> 10) KiB) is above the limits (\(PasswordCost.limitsDescription)); refused without running it")
                }
                kind = .password(cost)
            case 2: kind = .recoveryKey
            case 3:
                let url = try r.raw(Int(try r.u8()))
                let account = try r.raw(Int(try r.u8()))
                guard let urlText = String(validating: url, as: UTF8.self), let accountText = String(validating: account, as: UTF8.self),
                    let address = try? VaultAddress(url: urlText, account: accountText), Array(address.url.utf8) == url
                else { throw MalformedObject("key slot \(id.short): invalid vault URL or account") }
                kind = .vault(address)
            case 4: kind = .device(sealedLabel: try r.raw(Int(try r.u8())))
            case let k: throw MalformedObject("key slot \(id.short): unknown kind \(k)")
            }
            let salt = try r.raw(Argon2id.saltSize)
            let wrapped = try r.raw(r.remaining)
            guard wrapped.count == 32 + XChaCha20Poly1305.overhead else {
                throw MalformedObject("key slot \(id.short): wrapped key has \(wrapped.count) bytes")
            }
            return KeySlot(id: id, kind: kind, salt: salt, wrapped: wrapped)
        } catch let e as MalformedObject {
            throw .malformed(e)
        } catch {
            throw .malformed(MalformedObject("key slot \(id.short)"))
        }
    }

    static func encodeHeader(kind: Kind, salt: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        switch kind {
        case .password(let cost):
            w.u8(1)
            w.u64(cost.opsLimit)
            w.u64(cost.memoryBytes)
        case .recoveryKey:
            w.u8(2)
        case .vault(let address):
            // Both fit a u8 length: VaultAddress bounds them at 255 and 128 bytes.
            w.u8(3)
            w.u8(UInt8(address.url.utf8.count))
            w.raw(address.url.utf8)
            w.u8(UInt8(address.account.utf8.count))
            w.raw(address.account.utf8)
        case .device(let sealedLabel):
            // DeviceLabel bounds the host name so that the sealed label fits a u8 length.
            w.u8(4)
            w.u8(UInt8(sealedLabel.count))
            w.raw(sealedLabel)
        }
        w.raw(salt)
        return w.bytes
    }

    static func associatedData(header: [UInt8], id: KeySlotID) -> [UInt8] { wrapLabel + id.bytes + header }

    /// Password: Argon2id(password, salt). Recovery key: BLAKE2b-256 keyed by its 192 secret
    /// bits over label ‖ salt — no stretching is needed for a key that cannot be guessed.
    static func wrappingKey(kind: Kind, salt: [UInt8], credential: Credential) throws(Failure) -> SecureBytes {
        switch (kind, credential) {
        case (.password(let cost), .password(let password)):
            do {
                return try Argon2id.derive(
                    password: password, salt: salt, opsLimit: cost.opsLimit, memoryBytes: cost.memoryBytes)
            } catch { throw .kdf(error) }
        case (.recoveryKey, .recoveryKey(let rk)):
            var key = Blake2b.hash256(recoveryLabel + salt, key: rk.secret)
            defer { secureZero(&key) }
            return SecureBytes(copying: key)
        case (.device, .deviceKey(let device)):
            var key = Blake2b.hash256(deviceLabel + salt, key: device.secret)
            defer { secureZero(&key) }
            return SecureBytes(copying: key)
        default:
            throw .wrongCredential
        }
    }
}
