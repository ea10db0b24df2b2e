import CofferCrypto
import Glibc

/// Why the key file could not be read or created.
public struct VaultKeyError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The vault's long-term secrets: the AKE private key, the OPRF seed (a new one would
/// invalidate every record) and the one fake record unknown accounts are answered from (kept so
/// that repeated probes of an unknown name see the same answer across restarts).
///
/// Key file layout, 305 bytes: "coffer-vault-key" (16) ‖ version 1 (1) ‖ private key (32)
/// ‖ OPRF seed (64) ‖ fake record (192). Mode 0600; refused when group or others can read it.
public struct VaultKeys: Sendable {
    public let privateKey: Ristretto255.Scalar
    public let oprfSeed: SecureBytes
    public let fakeRecord: OPAQUE.RegistrationRecord

    static let magic = Array("coffer-vault-key".utf8)
    static let version: UInt8 = 1
    static let length = magic.count + 1 + Ristretto255.scalarLength + OPAQUE.hashLength + OPAQUE.RegistrationRecord.length

    public init(privateKey: Ristretto255.Scalar, oprfSeed: SecureBytes, fakeRecord: OPAQUE.RegistrationRecord) {
        self.privateKey = privateKey
        self.oprfSeed = oprfSeed
        self.fakeRecord = fakeRecord
    }

    /// Fresh keys; the fake record is drawn from the same randomness.
    public static func generate(random: any RandomSource = SystemRandom()) -> VaultKeys {
        // The configuration only matters for logins; key generation does not use it.
        let server = OPAQUEServer.generate(configuration: .cofferVaultV1, random: random)
        return VaultKeys(privateKey: server.privateKey, oprfSeed: server.oprfSeed, fakeRecord: server.makeFakeRecord())
    }

    /// The OPAQUE server for these keys.
    public func server(configuration: OPAQUEConfiguration) throws(OPAQUEError) -> OPAQUEServer {
        try OPAQUEServer(configuration: configuration, privateKey: privateKey, oprfSeed: oprfSeed)
    }

    /// Reads the key file at `path`, or creates it with fresh keys when it does not exist.
    public static func loadOrCreate(path: String) throws(VaultKeyError) -> VaultKeys {
        if let keys = try load(path: path) { return keys }
        let keys = generate()
        // Written to a private temporary name, then linked into place: a crash never leaves a
        // short key file, and if another process created one meanwhile, link fails and its keys win.
        let temporary = path + ".tmp-\(getpid())"
        var bytes = keys.serialized()
        defer { secureZero(&bytes) }
        try write(bytes, to: temporary)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 {
            guard errno == EEXIST, let existing = try load(path: path) else {
                throw VaultKeyError(message: "cannot create the key file \(path): \(String(cString: strerror(errno)))")
            }
            return existing
        }
        syncDirectory(of: path)
        return keys
    }

    /// Nil when the file does not exist.
    static func load(path: String) throws(VaultKeyError) -> VaultKeys? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw VaultKeyError(message: "cannot open the key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VaultKeyError(message: "cannot stat the key file \(path)") }
        guard st.st_mode & 0o077 == 0 else {
            throw VaultKeyError(message: "the key file \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        var bytes = [UInt8](repeating: 0, count: length + 1)
        defer { secureZero(&bytes) }
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw VaultKeyError(message: "cannot read the key file \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            filled += n
        }
        guard filled == length else { throw VaultKeyError(message: "the key file \(path) has \(filled) bytes, expected \(length)") }
        return try parse(bytes[..<length], path: path)
    }

    static func parse(_ bytes: ArraySlice<UInt8>, path: String) throws(VaultKeyError) -> VaultKeys {
        guard bytes.prefix(magic.count).elementsEqual(magic), bytes[bytes.startIndex + magic.count] == version else {
            throw VaultKeyError(message: "\(path) is not a coffer-vault key file (version 1)")
        }
        var offset = bytes.startIndex + magic.count + 1
        func take(_ n: Int) -> ArraySlice<UInt8> {
            defer { offset += n }
            return bytes[offset..<offset + n]
        }
        do throws(OPAQUEError) {
            let privateKey = try Ristretto255.Scalar(bytes: take(Ristretto255.scalarLength))
            let oprfSeed = SecureBytes(copying: take(OPAQUE.hashLength))
            let fakeRecord = try OPAQUE.RegistrationRecord(bytes: take(OPAQUE.RegistrationRecord.length))
            return VaultKeys(privateKey: privateKey, oprfSeed: oprfSeed, fakeRecord: fakeRecord)
        } catch {
            throw VaultKeyError(message: "the key file \(path) is damaged: \(error)")
        }
    }

    func serialized() -> [UInt8] {
        Self.magic + [Self.version] + privateKey.copyBytes() + oprfSeed.copyBytes() + fakeRecord.serialized
    }

    private static func write(_ bytes: [UInt8], to path: String) throws(VaultKeyError) {
        unlink(path)  // a leftover from a crashed start
        // O_EXCL with mode 0600: the file is never readable by others, not even for an instant.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw VaultKeyError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw VaultKeyError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
            written += n
        }
        guard fsync(fd) == 0 else { throw VaultKeyError(message: "cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    private static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
