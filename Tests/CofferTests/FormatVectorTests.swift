@_spi(Testing) import CofferCrypto
import Foundation
import Testing

@testable import Coffer

/// Pins the bytes of every object kind to the test vectors printed in FORMAT.md §13. The test
/// reads FORMAT.md itself, so the document and the code cannot drift apart.
/// `COFFER_PRINT_VECTORS=1 swift test --filter FormatVectorTests` prints fresh values.
@Suite struct FormatVectorTests {
    static let masterKey = MasterKey(secret: SecureBytes(copying: (0..<32).map { UInt8($0) }))
    static let keys = RepositoryKeys(master: masterKey)
    static func random() -> SeededRandom { SeededRandom(seed: [UInt8](repeating: 0x5a, count: 32)) }

    static let vectorVaultAddress = try! VaultAddress(url: "https://vault.example:8443", account: "alice")
    /// Stands in for OPAQUE's 64-byte export key (bytes 0x40…0x7f).
    static let vectorExportKey = SecureBytes(copying: (0x40..<0x80).map { UInt8($0) })
    static let vectorDeviceLabel = DeviceLabel(hostname: "laptop", createdNanos: 1_764_000_000_000_000_000)

    static func computed() throws -> [(String, String)] {
        var v: [(String, String)] = []
        let k = keys
        v.append(("subkey-chunk-id", Hex.encode(k.chunkID.secret.copyBytes())))
        v.append(("subkey-gear-table", Hex.encode(k.gearSeed.secret.copyBytes())))
        v.append(("subkey-data-sealing", Hex.encode(k.dataSealing.secret.copyBytes())))
        v.append(("subkey-metadata-sealing", Hex.encode(k.metadataSealing.secret.copyBytes())))

        let gear = FastCDC.gearTable(seed: k.gearSeed)
        v.append(("gear-table-first-4", gear.prefix(4).map { String($0, radix: 16) }.joined(separator: ",")))
        var gw = ByteWriter()
        for g in gear { gw.u64(g) }
        v.append(("gear-table-blake2b-256", Hex.encode(Blake2b.hash(gw.bytes))))

        v.append(("blob-id-of-coffer", k.blobID(of: Array("coffer".utf8)).hex))

        let input = ChaCha20.keystream(count: 1 << 20, key: [UInt8](repeating: 0x42, count: 32), nonce8: [UInt8](repeating: 0, count: 8))
        let small = ChunkerParameters(minSize: 8 << 10, averageSize: 32 << 10, maxSize: 128 << 10)
        let lengths = FastCDC(parameters: small, gear: gear).chunkLengths(input)
        v.append(("fastcdc-lengths", lengths.map(String.init).joined(separator: ",")))

        v.append(("padme", [1, 9, 100, 1000, 4096, 65_537, 1_000_000, 16_777_217].map { "\($0)→\(Padme.paddedLength($0))" }.joined(separator: ",")))
        v.append(("pack-padding", [1000, 65_537, 1_000_000, 9_000_000, 16_777_215, 16_777_216, 16_777_217].map {
            "\($0)→\(PackFormat.paddedLength(unpadded: $0, targetSize: 16 << 20))"
        }.joined(separator: ",")))
        v.append(("index-padding", [100, 4096, 4097, 45_000, 1_000_000].map {
            "\($0)→\(ObjectPadding.forKind(.index).paddedLength($0))"
        }.joined(separator: ",")))

        let rk = RecoveryKey(secret: SecureBytes(copying: (0..<24).map { UInt8($0 * 11 & 0xff) }))
        v.append(("recovery-key-display", rk.singleLine))

        let rslot = try KeySlot.create(master: masterKey, credential: .recoveryKey(rk), random: random())
        v.append(("keyslot-recovery-id", rslot.id.hex))
        v.append(("keyslot-recovery", Hex.encode(rslot.encoded())))
        let pslot = try KeySlot.create(
            master: masterKey, credential: .password(SecureBytes(copying: Array("correct horse".utf8))),
            cost: PasswordCost(opsLimit: 1, memoryBytes: 8 << 10), random: random())
        v.append(("keyslot-password", Hex.encode(pslot.encoded())))
        let (vslot, vaultSecret) = KeySlot.createVault(master: masterKey, address: vectorVaultAddress, random: random())
        v.append(("keyslot-vault", Hex.encode(vslot.encoded())))
        v.append(("vault-secret", Hex.encode(vaultSecret.copyBytes())))
        v.append(("vault-sealed-key", Hex.encode(VaultSealedKey.seal(
            vaultSecret: vaultSecret, exportKey: vectorExportKey, slot: vslot, random: random()))))
        let (dslot, deviceKey) = KeySlot.createDevice(
            master: masterKey, label: vectorDeviceLabel, labelKey: k.metadataSealing, random: random())
        v.append(("keyslot-device", Hex.encode(dslot.encoded())))
        v.append(("device-key-file", deviceKey.fileText().withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
            .replacingOccurrences(of: "\n", with: "|")))

        let config = RepositoryConfig(
            repositoryID: Raw256((0..<32).map { UInt8(255 - $0) }), chunker: .standard, compressionLevel: 3,
            packTargetSize: 16 << 20, createdNanos: 1_764_000_000_000_000_000)
        v.append(("config-payload", Hex.encode(config.encoded())))
        v.append(("config-object", Hex.encode(SealedObject.seal(config.encoded(), kind: .config, id: .zero, key: k.metadataSealing, random: random()))))

        let blobText = Array(String(repeating: "hello coffer ", count: 8).utf8)
        let handle = BlobHandle(id: k.blobID(of: blobText), type: .data)
        var scratch: [UInt8] = []
        var envelope: [UInt8] = []
        _ = BlobEnvelope.seal(
            blobText[...], handle: handle, key: k.dataSealing, nonce: random().bytes(24), compressor: ZstdCompressor(level: 3),
            scratch: &scratch, appendingTo: &envelope)
        v.append(("blob-envelope", Hex.encode(envelope)))

        let packID = PackID(bytes: [UInt8](repeating: 0xab, count: 32))
        var pack = envelope
        let packed = PackedBlob(handle: handle, offset: 0, length: UInt32(envelope.count), rawLength: UInt32(blobText.count))
        PackFormat.finish(body: &pack, blobs: [packed], packID: packID, key: k.metadataSealing, targetSize: 0, random: random())
        v.append(("pack", Hex.encode(pack)))

        let index = IndexFile(packs: [IndexFile.Pack(id: packID, length: UInt64(pack.count), blobs: [packed])])
        v.append(("index-payload", Hex.encode(index.encoded())))

        let meta = NodeMetadata(mode: 0o644, uid: 1000, gid: 1000, mtimeNanos: 1_700_000_000_123_456_789, ctimeNanos: 1_700_000_001_000_000_000, device: 2049, inode: 42, links: 1)
        let tree = Tree(nodes: [
            TreeNode(name: Array("notes.txt".utf8), metadata: meta, content: .file(size: UInt64(blobText.count), chunks: [handle.id])),
            TreeNode(name: Array("link".utf8), metadata: meta, content: .symlink(target: Array("notes.txt".utf8))),
        ])
        v.append(("tree-payload", Hex.encode(tree.encoded())))

        // A long file: 20,000 chunk ids (the blob ids of "chunk 0" … "chunk 19999") cut into
        // chunk lists, the first list's payload, and a tree naming the lists.
        let manyChunks = (0..<20_000).map { k.blobID(of: Array("chunk \($0)".utf8)) }
        let lists = ChunkList.split(manyChunks)
        v.append(("chunk-list-lengths", lists.map { String($0.count) }.joined(separator: ",")))
        let listIDs = lists.map { k.blobID(of: ChunkList.encode($0)) }
        v.append(("chunk-list-payload", Hex.encode(ChunkList.encode(manyChunks[0..<3]))))
        let longTree = Tree(nodes: [
            TreeNode(name: Array("msgstore.db".utf8), metadata: meta, content: .file(size: 20_000 * 4096, chunks: manyChunks),
                     chunkLists: Array(listIDs.prefix(2))),
        ])
        v.append(("tree-long-file-payload", Hex.encode(longTree.encoded())))

        var summary = BackupSummary()
        summary.filesNew = 1
        summary.bytesProcessed = 104
        let snapshot = Snapshot(
            timeNanos: 1_764_000_000_000_000_000, hostname: "phone", username: "ana", paths: ["/data/chat"], tags: ["daily"],
            root: k.blobID(of: tree.encoded()), parent: nil, summary: summary)
        v.append(("snapshot-payload", Hex.encode(snapshot.encoded())))

        let lock = LockRecord(
            exclusive: true, timeNanos: 1_764_000_000_000_000_000, hostname: "phone", username: "ana", pid: 4242,
            bootID: "6f1d3c52-0b4e-4f7a-9a1e-2d9c8b7a6e5f", pidNamespace: 4_026_531_836)
        v.append(("lock-payload", Hex.encode(lock.encoded())))
        return v
    }

    static func documented() throws -> [String: String] {
        let formatURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("FORMAT.md")
        let text = try String(contentsOf: formatURL, encoding: .utf8)
        guard let start = text.range(of: "```vectors\n") else { return [:] }
        let body = text[start.upperBound...].prefix { _ in true }
        let block = body[..<(body.range(of: "```")?.lowerBound ?? body.endIndex)]
        var out: [String: String] = [:]
        var current: String? = nil
        for line in block.split(separator: "\n") {
            // A vector is "name: value"; long values continue on following lines indented by 4.
            if line.hasPrefix("    "), let c = current {
                out[c, default: ""] += line.dropFirst(4)
            } else if let colon = line.range(of: ": ") {
                let name = String(line[..<colon.lowerBound])
                current = name
                out[name] = String(line[colon.upperBound...])
            }
        }
        return out
    }

    @Test func formatDocumentMatchesComputedVectors() throws {
        let computed = try Self.computed()
        if ProcessInfo.processInfo.environment["COFFER_PRINT_VECTORS"] != nil {
            for (name, value) in computed {
                var lines = ["\(name): \(value.prefix(72))"]
                var rest = value.dropFirst(72)
                while !rest.isEmpty {
                    lines.append("    " + rest.prefix(72))
                    rest = rest.dropFirst(72)
                }
                print(lines.joined(separator: "\n"))
            }
        }
        let documented = try Self.documented()
        for (name, value) in computed {
            #expect(documented[name] == value, "FORMAT.md vector \(name) differs from what the code produces")
        }
        #expect(documented.count == computed.count, "FORMAT.md lists vectors the test does not compute")
    }

    /// The documented objects also open and decode: the vectors are real objects, not just bytes.
    @Test func documentedObjectsOpen() throws {
        let documented = try Self.documented()
        let config = try #require(documented["config-object"].flatMap(Hex.decode))
        let payload = try SealedObject.open(config, kind: .config, id: .zero, key: Self.keys.metadataSealing)
        #expect(try RepositoryConfig(decoding: payload).chunker == .standard)
        let slotBytes = try #require(documented["keyslot-password"].flatMap(Hex.decode))
        let slotID = try #require(documented["keyslot-recovery-id"].flatMap { KeySlotID(hex: $0) })
        // Same seeded randomness, so the password slot got the same id as the recovery slot.
        let slot = try KeySlot.decode(slotBytes, id: slotID)
        let master = try slot.open(with: .password(SecureBytes(copying: Array("correct horse".utf8))))
        #expect(master.secret.constantTimeEquals(Self.masterKey.secret))
        // The vault slot opens with the secret that the sealed key yields under the export key.
        let vaultSlot = try KeySlot.decode(try #require(documented["keyslot-vault"].flatMap(Hex.decode)), id: slotID)
        #expect(vaultSlot.vaultAddress == Self.vectorVaultAddress)
        let sealed = try #require(documented["vault-sealed-key"].flatMap(Hex.decode))
        let secret = try VaultSealedKey.open(sealed, exportKey: Self.vectorExportKey, slot: vaultSlot)
        #expect(secret.copyBytes() == documented["vault-secret"].flatMap(Hex.decode))
        #expect(try vaultSlot.open(vaultSecret: secret).secret.constantTimeEquals(Self.masterKey.secret))
        // The device slot opens with the key in the documented key file, and names its host.
        let deviceFile = try #require(documented["device-key-file"]).replacingOccurrences(of: "|", with: "\n")
        let deviceKey = try DeviceKey(fileText: SecureBytes(copying: Array(deviceFile.utf8)))
        let deviceSlot = try KeySlot.decode(try #require(documented["keyslot-device"].flatMap(Hex.decode)), id: deviceKey.slotID)
        #expect(try deviceSlot.open(with: .deviceKey(deviceKey)).secret.constantTimeEquals(Self.masterKey.secret))
        #expect(deviceSlot.deviceLabel(labelKey: Self.keys.metadataSealing) == Self.vectorDeviceLabel)
        let rk = try RecoveryKey(parsing: try #require(documented["recovery-key-display"]))
        #expect(rk.secret.copyBytes() == (0..<24).map { UInt8($0 * 11 & 0xff) })
    }
}
