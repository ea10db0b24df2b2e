public import CofferCrypto

/// A device key (FORMAT.md §5.4): 256 random bits kept in a file on one machine, so scheduled
/// backups open the repository without a password and without a key derivation function (a
/// 256-bit secret needs no stretching). Each device key opens exactly one slot, named here.
public struct DeviceKey: Sendable {
    public static let secretBytes = 32
    static let fileMagic = "coffer-device-key-v1"

    /// The slot this key opens.
    public let slotID: KeySlotID
    public let secret: SecureBytes

    public init(slotID: KeySlotID, secret: SecureBytes) {
        precondition(secret.count == Self.secretBytes)
        self.slotID = slotID
        self.secret = secret
    }

    /// The key file's text: the magic line, the slot id, the secret (hex).
    public func fileText() -> SecureBytes {
        var text = Array("\(Self.fileMagic)\n\(slotID.hex)\n".utf8)
        secret.withUnsafeBytes { raw in
            let digits = Array("0123456789abcdef".utf8)
            for b in raw {
                text.append(digits[Int(b >> 4)])
                text.append(digits[Int(b & 15)])
            }
        }
        text.append(0x0a)
        defer { secureZero(&text) }
        return SecureBytes(copying: text)
    }

    public struct FileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses a key file's text (as `fileText` writes it).
    public init(fileText: SecureBytes) throws(FileError) {
        var text = fileText.copyBytes()
        defer { secureZero(&text) }
        let lines = text.split(separator: 0x0a, omittingEmptySubsequences: false)
        guard lines.count >= 3, String(decoding: lines[0], as: UTF8.self) == Self.fileMagic else {
            throw FileError(description: "not a coffer device key file (it must start with \(Self.fileMagic))")
        }
        guard let id = KeySlotID(hex: String(decoding: lines[1], as: UTF8.self)) else {
            throw FileError(description: "the device key file names no valid key slot id")
        }
        var secret = Hex.decode(String(decoding: lines[2], as: UTF8.self)) ?? []
        defer { secureZero(&secret) }
        guard secret.count == Self.secretBytes else { throw FileError(description: "the device key file holds no 256-bit key") }
        self.init(slotID: id, secret: SecureBytes(copying: secret))
    }
}

/// What a device slot says about itself, sealed in its header under the metadata key, so
/// that `key list` can name the machine and storage cannot (FORMAT.md §5.4, §12).
public struct DeviceLabel: Sendable, Equatable {
    public var hostname: String
    public var createdNanos: Int64
    static let label = Array("coffer-device-label-v1".utf8)
    /// Longest stored host name, in bytes: the sealed label (24 + 8 + 1 + 200 + 16) fits the
    /// slot header's one-byte length.
    static let hostnameLimit = 200

    public init(hostname: String, createdNanos: Int64) {
        // Cut at a character boundary, so that decoding adds no replacement character.
        var bytes = Array(hostname.utf8.prefix(Self.hostnameLimit))
        if bytes.count == Self.hostnameLimit {
            while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
            if let last = bytes.last, last >= 0xC0 { bytes.removeLast() }
        }
        self.hostname = String(decoding: bytes, as: UTF8.self)
        self.createdNanos = createdNanos
    }

    func sealed(slotID: KeySlotID, key: SealingKey, random: any RandomSource) -> [UInt8] {
        // Padded to one length, so a slot's size does not tell the host name's.
        var w = ByteWriter()
        w.u64(UInt64(bitPattern: createdNanos))
        w.u8(UInt8(hostname.utf8.count))
        w.raw(hostname.utf8)
        w.raw(repeatElement(0, count: Self.hostnameLimit - hostname.utf8.count))
        return XChaCha20Poly1305.seal(w.bytes, authenticating: Self.label + slotID.bytes, key: key.secret, random: random)
    }

    static func open(_ sealed: [UInt8], slotID: KeySlotID, key: SealingKey) -> DeviceLabel? {
        guard let plain = try? XChaCha20Poly1305.open(sealed, authenticating: label + slotID.bytes, key: key.secret),
            plain.count == 9 + hostnameLimit
        else { return nil }
        var r = ByteReader(plain, what: "device label")
        guard let created = try? r.u64(), let length = try? r.u8(), Int(length) <= hostnameLimit, let host = try? r.raw(Int(length))
        else { return nil }
        return DeviceLabel(hostname: String(decoding: host, as: UTF8.self), createdNanos: Int64(bitPattern: created))
    }
}
