@_spi(Testing) import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// Deterministic inputs and keys shared by the Coffer unit tests.
enum Fixture {
    /// Pseudo-random (incompressible) bytes: the ChaCha20 keystream under a key of `seed` bytes.
    static func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        ChaCha20.keystream(count: count, key: [UInt8](repeating: seed, count: 32), nonce8: [UInt8](repeating: 0, count: 8))
    }

    /// Highly compressible, text-like bytes; `variant` changes the wording.
    static func text(_ count: Int, variant: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 100)
        var line = 0
        while out.count < count {
            out += Array("\(variant) line \(line): the quick brown fox jumps over the lazy dog, \(line % 7) times\n".utf8)
            line += 1
        }
        return Array(out.prefix(count))
    }

    static func master(_ seed: UInt8 = 1) -> MasterKey {
        MasterKey(secret: SecureBytes(copying: (0..<32).map { UInt8($0) &+ seed }))
    }

    static func keys(_ seed: UInt8 = 1) -> RepositoryKeys { RepositoryKeys(master: master(seed)) }

    static func random(_ seed: UInt8 = 9) -> SeededRandom { SeededRandom(seed: [UInt8](repeating: seed, count: 32)) }

    static func password(_ text: String) -> SecureBytes { SecureBytes(copying: Array(text.utf8)) }

    /// Small chunks keep debug builds fast.
    static let smallChunker = ChunkerParameters(minSize: 16 << 10, averageSize: 64 << 10, maxSize: 256 << 10)

    static func id<T: Identifier256>(_ byte: UInt8, _: T.Type = T.self) -> T { T(bytes: [UInt8](repeating: byte, count: 32)) }

    static func initOptions() -> Repository.InitOptions {
        var options = Repository.InitOptions()
        options.passwordCost = .insecureMinimum
        options.chunker = smallChunker
        options.packTargetSize = 256 << 10
        return options
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh private directory that is removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    var template = Array((NSTemporaryDirectory() + "coffer-unit-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw TestFailure("mkdtemp failed: errno \(errno)") }
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
        guard n > 0 else { throw TestFailure("write \(path): errno \(errno)") }
        done += n
    }
    guard fchmod(fd, mode) == 0 else { throw TestFailure("fchmod \(path): errno \(errno)") }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
    return [UInt8](data)
}

func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
    guard mkdir(path, mode) == 0 else { throw TestFailure("mkdir \(path): errno \(errno)") }
    guard chmod(path, mode) == 0 else { throw TestFailure("chmod \(path): errno \(errno)") }
}

func fileStat(_ path: String) throws -> stat {
    var st = stat()
    guard lstat(path, &st) == 0 else { throw TestFailure("lstat \(path): errno \(errno)") }
    return st
}

/// What a file tree holds, as far as backup and restore promise to keep it.
enum TreeEntry: Equatable, CustomStringConvertible {
    case file(bytes: [UInt8], mode: UInt32, mtimeNanos: Int64)
    case directory(mode: UInt32, mtimeNanos: Int64)
    case symlink(target: String)

    var description: String {
        switch self {
        case .file(let b, let m, let t): return "file(\(b.count) bytes, mode \(String(m, radix: 8)), mtime \(t))"
        case .directory(let m, let t): return "dir(mode \(String(m, radix: 8)), mtime \(t))"
        case .symlink(let t): return "symlink(\(t))"
        }
    }
}

/// Every entry below `root`, keyed by its path relative to `root` ("" is `root` itself).
func treeContents(_ root: String) throws -> [String: TreeEntry] {
    var out: [String: TreeEntry] = [:]
    func visit(_ relative: String) throws {
        let path = relative.isEmpty ? root : root + "/" + relative
        let st = try fileStat(path)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let mode = UInt32(st.st_mode & 0o7777)
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            out[relative] = .file(bytes: try readFile(path), mode: mode, mtimeNanos: mtime)
        case S_IFLNK:
            out[relative] = .symlink(target: try FileManager.default.destinationOfSymbolicLink(atPath: path))
        case S_IFDIR:
            out[relative] = .directory(mode: mode, mtimeNanos: mtime)
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                try visit(relative.isEmpty ? name : relative + "/" + name)
            }
        default:
            throw TestFailure("unexpected file type at \(path)")
        }
    }
    try visit("")
    return out
}

/// The case of a `RepositoryError`, without its payload, so that tests can compare cases.
enum RepositoryErrorKind: Equatable {
    case noRepository, alreadyInitialized, wrongCredential, noUsableKeySlot, lastKeySlot, keySlotNotFound
    case ambiguousKeySlot, unsupportedFormat, tampered, malformed, missingObject, blobNotInIndex, blobDamaged
    case snapshotNotFound, ambiguousSnapshot, noSnapshots, locked, lockLost, treeTooLarge
    case vaultSlotNotWritten, notOpenedByVault, vaultAccountNotFound, vaultAccountAmbiguous, vaultKeyDoesNotFit
    case vaultUnreachable, vaultPasswordNotChanged, vaultNotTrusted, keySlotsNotTried
}

extension RepositoryError {
    var kind: RepositoryErrorKind {
        switch self {
        case .noRepository: .noRepository
        case .alreadyInitialized: .alreadyInitialized
        case .wrongCredential: .wrongCredential
        case .noUsableKeySlot: .noUsableKeySlot
        case .lastKeySlot: .lastKeySlot
        case .keySlotNotFound: .keySlotNotFound
        case .ambiguousKeySlot: .ambiguousKeySlot
        case .unsupportedFormat: .unsupportedFormat
        case .tampered: .tampered
        case .malformed: .malformed
        case .missingObject: .missingObject
        case .blobNotInIndex: .blobNotInIndex
        case .blobDamaged: .blobDamaged
        case .snapshotNotFound: .snapshotNotFound
        case .ambiguousSnapshot: .ambiguousSnapshot
        case .vaultSlotNotWritten: .vaultSlotNotWritten
        case .notOpenedByVault: .notOpenedByVault
        case .vaultAccountNotFound: .vaultAccountNotFound
        case .vaultAccountAmbiguous: .vaultAccountAmbiguous
        case .vaultKeyDoesNotFit: .vaultKeyDoesNotFit
        case .vaultUnreachable: .vaultUnreachable
        case .vaultPasswordNotChanged: .vaultPasswordNotChanged
        case .vaultNotTrusted: .vaultNotTrusted
        case .keySlotsNotTried: .keySlotsNotTried
        case .locked: .locked
        case .lockLost: .lockLost
        case .treeTooLarge: .treeTooLarge
        case .noSnapshots: .noSnapshots
        }
    }
}

extension KeySlot.Failure {
    var isWrongCredential: Bool { if case .wrongCredential = self { true } else { false } }
    var isMalformed: Bool { if case .malformed = self { true } else { false } }
}

extension SealedObject.Failure {
    var isAuthenticationFailed: Bool { if case .authenticationFailed = self { true } else { false } }
    var isMalformed: Bool { if case .malformed = self { true } else { false } }
}

extension BlobEnvelope.Failure {
    var isAuthenticationFailed: Bool { if case .authenticationFailed = self { true } else { false } }
    var isMalformed: Bool { if case .malformed = self { true } else { false } }
    var isIDMismatch: Bool { if case .idMismatch = self { true } else { false } }
}

extension PackFormat.Failure {
    var isTooShort: Bool { if case .tooShort = self { true } else { false } }
    var isTrailerAuthenticationFailed: Bool { if case .trailerAuthenticationFailed = self { true } else { false } }
    var isHeaderAuthenticationFailed: Bool { if case .headerAuthenticationFailed = self { true } else { false } }
    var isMalformed: Bool { if case .malformed = self { true } else { false } }
}

/// Lengths (of the prefixes of `encoded`) at which `decode` did not throw `MalformedObject`.
func prefixesNotRejected(_ encoded: [UInt8], _ decode: ([UInt8]) throws -> Void) -> [Int] {
    (0..<encoded.count).filter { n in
        do {
            try decode(Array(encoded.prefix(n)))
            return true
        } catch is MalformedObject {
            return false
        } catch {
            return true
        }
    }
}

/// Decodes `input`; returns a description of the problem if it threw anything but `MalformedObject`.
func unexpectedError(_ input: [UInt8], _ decode: ([UInt8]) throws -> Void) -> String? {
    do {
        try decode(input)
        return nil
    } catch is MalformedObject {
        return nil
    } catch {
        return "\(type(of: error)): \(error)"
    }
}
