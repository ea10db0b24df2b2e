public import CofferCrypto

/// The repository's random 32-byte master key. Only key slots ever hold it, wrapped.
public struct MasterKey: Sendable {
    public let secret: SecureBytes
    public init(secret: SecureBytes) {
        precondition(secret.count == 32)
        self.secret = secret
    }
    public static func generate() -> MasterKey { MasterKey(secret: .random(count: 32)) }
}

/// Keys an id: keyed BLAKE2b-256 of a blob's plaintext.
public struct ChunkIDKey: Sendable { public let secret: SecureBytes }
/// Seed of the secret FastCDC gear table.
public struct GearSeed: Sendable { public let secret: SecureBytes }
/// Seals one class of objects with XChaCha20-Poly1305.
public struct SealingKey: Sendable { public let secret: SecureBytes }

/// One key per purpose, derived from the master key (FORMAT.md §3); no key serves two purposes.
public struct RepositoryKeys: Sendable {
    /// `crypto_kdf` context shared by all purpose keys; the subkey number names the purpose.
    public static let kdfContext = "CofferK1"

    public enum Purpose: UInt64, CaseIterable, Sendable {
        case chunkID = 1
        case gearTable = 2
        case dataSealing = 3
        case metadataSealing = 4
    }

    public let chunkID: ChunkIDKey
    public let gearSeed: GearSeed
    public let dataSealing: SealingKey
    public let metadataSealing: SealingKey

    public init(master: MasterKey) {
        func derive(_ p: Purpose) -> SecureBytes {
            SubkeyDerivation.derive(from: master.secret, id: p.rawValue, context: Self.kdfContext)
        }
        chunkID = ChunkIDKey(secret: derive(.chunkID))
        gearSeed = GearSeed(secret: derive(.gearTable))
        dataSealing = SealingKey(secret: derive(.dataSealing))
        metadataSealing = SealingKey(secret: derive(.metadataSealing))
    }

    /// The id of a blob: keyed BLAKE2b-256 of its plaintext.
    public func blobID<C: Collection<UInt8>>(of plaintext: C) -> BlobID {
        BlobID(bytes: Blake2b.hash256(plaintext, key: chunkID.secret))
    }

    /// The ids of many blobs at once (four at a time where the CPU has AVX2), in order.
    public func blobIDs(each plaintexts: [UnsafeRawBufferPointer]) -> [BlobID] {
        Blake2b.hash256(each: plaintexts, key: chunkID.secret).map { BlobID(bytes: $0) }
    }

    public func sealingKey(for type: BlobType) -> SealingKey {
        type == .data ? dataSealing : metadataSealing
    }
}
