import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

@Suite struct LocalStorageTests {
    func name(_ kind: ObjectKind, _ byte: UInt8) -> ObjectName { ObjectName(kind, Hex.encode([UInt8](repeating: byte, count: 32))) }

    /// A storage with its folder layout, in a fresh temporary directory.
    func withStorage(_ body: (LocalStorage, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.createLayout()
            try await body(storage, dir + "/repo")
        }
    }

    @Test func createLayoutMakesEveryFolder() async throws {
        try await withStorage { _, root async throws in
            for kind in ["keys", "data", "index", "snapshots", "locks"] {
                #expect(FileManager.default.fileExists(atPath: root + "/" + kind))
            }
            #expect(FileManager.default.fileExists(atPath: root + "/data/00"))
            #expect(FileManager.default.fileExists(atPath: root + "/data/ff"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/data").count == 256)
            #expect(try fileStat(root).st_mode & 0o777 == 0o700)
        }
    }

    @Test func writeReadStatListDelete() async throws {
        try await withStorage { storage, root async throws in
            let object = name(.snapshots, 0xab)
            let bytes = Fixture.bytes(1000)
            #expect(try await storage.stat(object) == nil)
            try await storage.write(object, bytes)
            #expect(try await storage.read(object) == bytes)
            #expect(try await storage.stat(object) == StoredObject(name: object, size: 1000))
            #expect(try await storage.list(.snapshots) == [StoredObject(name: object, size: 1000)])
            #expect(try await storage.list(.index).isEmpty)
            #expect(FileManager.default.fileExists(atPath: root + "/snapshots/" + object.name))
            try await storage.delete(object)
            #expect(try await storage.stat(object) == nil)
            #expect(try await storage.list(.snapshots).isEmpty)
        }
    }

    @Test func rangeReads() async throws {
        try await withStorage { storage, _ async throws in
            let object = name(.index, 1)
            let bytes = Fixture.bytes(500)
            try await storage.write(object, bytes)
            #expect(try await storage.read(object, range: 3..<10) == Array(bytes[3..<10]))
            #expect(try await storage.read(object, range: 0..<500) == bytes)
            #expect(try await storage.read(object, range: 499..<500) == [bytes[499]])
            #expect(try await storage.read(object, range: 250..<250) == [])
        }
    }

    @Test func readingPastTheEndIsTruncated() async throws {
        try await withStorage { storage, _ async throws in
            let object = name(.index, 2)
            try await storage.write(object, Fixture.bytes(100))
            let error = await #expect(throws: StorageError.self) { try await storage.read(object, range: 90..<101) }
            guard case .truncated(let n, let expected, let actual)? = error else {
                Issue.record("expected truncated, got \(String(describing: error))")
                return
            }
            #expect(n == object && expected == 101 && actual == 100)
        }
    }

    @Test func writingAnExistingNameIsRefusedAndKeepsTheOriginal() async throws {
        try await withStorage { storage, root async throws in
            let object = name(.keys, 3)
            try await storage.write(object, [1, 2, 3])
            let error = await #expect(throws: StorageError.self) { try await storage.write(object, [4, 5]) }
            guard case .alreadyExists(let n)? = error else {
                Issue.record("expected alreadyExists, got \(String(describing: error))")
                return
            }
            #expect(n == object)
            #expect(try await storage.read(object) == [1, 2, 3])
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/keys") == [object.name], "no temporary file left")
        }
    }

    @Test func missingObjectsAreNotFound() async throws {
        try await withStorage { storage, _ async throws in
            let object = name(.snapshots, 4)
            let readError = await #expect(throws: StorageError.self) { try await storage.read(object) }
            guard case .notFound(let n)? = readError else {
                Issue.record("read: \(String(describing: readError))")
                return
            }
            #expect(n == object)
            let deleteError = await #expect(throws: StorageError.self) { try await storage.delete(object) }
            guard case .notFound? = deleteError else {
                Issue.record("delete: \(String(describing: deleteError))")
                return
            }
        }
    }

    @Test func listingIgnoresTemporaryAndForeignFiles() async throws {
        try await withStorage { storage, root async throws in
            let real = name(.snapshots, 5)
            try await storage.write(real, [7])
            try writeFile(root + "/snapshots/.tmp-0011223344556677", [1, 2])
            try writeFile(root + "/snapshots/.tmp-" + String(repeating: "a", count: 59), [1])  // 64 characters, not hex
            try writeFile(root + "/snapshots/" + String(repeating: "z", count: 64), [1])
            try writeFile(root + "/snapshots/abcd", [1])
            try writeFile(root + "/snapshots/" + String(repeating: "a", count: 66), [1])
            #expect(try await storage.list(.snapshots) == [StoredObject(name: real, size: 1)])
        }
    }

    @Test func dataObjectsLiveInPrefixFolders() async throws {
        try await withStorage { storage, root async throws in
            let a = ObjectName(.data, "ab" + String(repeating: "0", count: 62))
            let b = ObjectName(.data, "01" + String(repeating: "f", count: 62))
            try await storage.write(a, [1, 2])
            try await storage.write(b, [3])
            #expect(FileManager.default.fileExists(atPath: "\(root)/data/ab/\(a.name)"))
            #expect(FileManager.default.fileExists(atPath: "\(root)/data/01/\(b.name)"))
            let listed = try await storage.list(.data).sorted { $0.name.name < $1.name.name }
            #expect(listed == [StoredObject(name: b, size: 1), StoredObject(name: a, size: 2)])
            #expect(try await storage.read(a, range: 1..<2) == [2])
        }
    }

    @Test func configObject() async throws {
        try await withStorage { storage, root async throws in
            #expect(!storage.repositoryExists())
            #expect(try await storage.list(.config).isEmpty)
            try await storage.write(.config, [1, 2, 3, 4])
            #expect(storage.repositoryExists())
            #expect(try await storage.list(.config) == [StoredObject(name: .config, size: 4)])
            #expect(FileManager.default.fileExists(atPath: root + "/config"))
        }
    }

    @Test func emptyObjectsAreAllowed() async throws {
        try await withStorage { storage, _ async throws in
            let object = name(.locks, 6)
            try await storage.write(object, [])
            #expect(try await storage.read(object) == [])
            #expect(try await storage.stat(object)?.size == 0)
        }
    }

    @Test func trailingSlashesAreTrimmedFromTheRoot() {
        #expect(LocalStorage(path: "/tmp/repo///").root == "/tmp/repo")
        #expect(LocalStorage(path: "/").root == "/")
        #expect(LocalStorage(path: "/tmp/repo").location == "/tmp/repo")
    }

    @Test func listingAMissingRepositoryIsEmpty() async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/nothing")
            #expect(try await storage.list(.snapshots).isEmpty)
            #expect(try await storage.list(.data).isEmpty)
            #expect(try await storage.stat(.config) == nil)
        }
    }
}

/// Packs are written with O_DIRECT (aligned segments, the tail padded and cut back), and
/// through the page cache where the file system refuses it (tmpfs). Either way the object must
/// read back byte for byte at exactly its size, leave no temporary file, and refuse to replace
/// an existing object.
@Suite struct DirectWriteTests {
    static let sizes = [
        LocalStorage.directWriteThreshold, LocalStorage.directWriteThreshold + 1, FileIO.directSegment - 1,
        FileIO.directSegment, FileIO.directSegment + 4097, 3 * FileIO.directSegment + 12_345,
    ]

    func roundTrip(under base: String) async throws {
        var template = Array((base + "/coffer-direct-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil, "mkdtemp under \(base): errno \(errno)")
        let dir = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = LocalStorage(path: dir + "/repo")
        try storage.createLayout()
        for (i, size) in Self.sizes.enumerated() {
            let bytes = Fixture.bytes(size, seed: UInt8(40 + i))
            let name = ObjectName(.data, Hex.encode([UInt8](repeating: UInt8(i), count: 32)))
            try await storage.write(name, bytes)
            #expect(try await storage.stat(name)?.size == size, "size \(size) under \(base)")
            #expect(try await storage.read(name) == bytes, "content of size \(size) under \(base)")
            await #expect(throws: StorageError.self) { try await storage.write(name, bytes) }
        }
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir + "/repo").filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test func packsWrittenDirectlyReadBackExactly() async throws {
        try await roundTrip(under: NSTemporaryDirectory().hasSuffix("/") ? String(NSTemporaryDirectory().dropLast()) : NSTemporaryDirectory())
    }

    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: "/dev/shm"), "needs tmpfs at /dev/shm"))
    func aFileSystemThatRefusesDirectIOGetsBufferedWrites() async throws {
        try await roundTrip(under: "/dev/shm")
    }
}
