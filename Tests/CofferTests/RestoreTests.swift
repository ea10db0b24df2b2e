import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// Stores trees and file contents that no backup would write (names with NUL, `..`, `/`,
/// a name twice), and a snapshot naming them: what someone holding the keys could put in a
/// repository.
struct HostileSnapshotBuilder {
    let repo: Repository
    let assembler: PackAssembler

    init(_ repo: Repository) {
        self.repo = repo
        assembler = PackAssembler(repository: repo, dryRun: false)
    }

    func store(_ bytes: [UInt8], as type: BlobType) async throws -> BlobID {
        let id = repo.keys.blobID(of: bytes)
        try await assembler.store(BlobHandle(id: id, type: type), plaintext: bytes[...])
        return id
    }

    /// A tree blob holding `nodes` sorted by name; nodes of the same name stay in the order
    /// given (a repeated name is kept).
    func tree(_ unsorted: [TreeNode]) async throws -> BlobID {
        let nodes = unsorted.enumerated().sorted { a, b in
            a.element.name == b.element.name ? a.offset < b.offset : a.element.name.lexicographicallyPrecedes(b.element.name)
        }.map(\.element)
        var w = ByteWriter()
        w.u8(Tree.version)
        w.varint(nodes.count)
        var bytes = w.bytes
        // A one-node tree is `version ‖ varint 1 ‖ node`: its node bytes, as the encoder writes them.
        for node in nodes { bytes += Tree(nodes: [node]).encoded().dropFirst(2) }
        return try await store(bytes, as: .tree)
    }

    func file(_ name: String, _ contents: [UInt8], _ meta: NodeMetadata) async throws -> TreeNode {
        try await file(Array(name.utf8), contents, meta)
    }

    func file(_ name: [UInt8], _ contents: [UInt8], _ meta: NodeMetadata) async throws -> TreeNode {
        let chunk = try await store(contents, as: .data)
        return TreeNode(name: name, metadata: meta, content: .file(size: UInt64(contents.count), chunks: contents.isEmpty ? [] : [chunk]))
    }

    func directory(_ name: [UInt8], _ meta: NodeMetadata, _ nodes: [TreeNode]) async throws -> TreeNode {
        TreeNode(name: name, metadata: meta, content: .directory(subtree: try await tree(nodes)))
    }

    func snapshot(root nodes: [TreeNode]) async throws -> (snapshot: SnapshotID, root: BlobID) {
        let root = try await tree(nodes)
        try await assembler.flush()
        let snapshot = Snapshot(
            timeNanos: 1_700_000_000_000_000_000, hostname: "hostile", username: "mallory", paths: ["/src"], tags: [], root: root,
            parent: nil, summary: BackupSummary())
        return (try await repo.saveSnapshot(snapshot).0, root)
    }
}

func meta(_ mode: UInt32, uid: UInt32 = 4242, gid: UInt32 = 4243, mtime: Int64 = 1_000_000_000_000_000_000) -> NodeMetadata {
    NodeMetadata(mode: mode, uid: uid, gid: gid, mtimeNanos: mtime, ctimeNanos: mtime, device: 1, inode: 0, links: 1)
}

/// What an observer outside the target can see of a directory and its entries.
struct Observed: Equatable, CustomStringConvertible {
    let entries: [String: String]
    var description: String { entries.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") }

    init(_ dir: String) throws {
        var entries: [String: String] = [:]
        func describe(_ path: String) throws -> String {
            let st = try fileStat(path)
            var text = "mode \(String(st.st_mode, radix: 8)) owner \(st.st_uid):\(st.st_gid) mtime \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) size \(st.st_size)"
            if st.st_mode & S_IFMT == S_IFREG { text += " bytes \(try readFile(path))" }
            return text
        }
        entries["."] = try describe(dir)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) { entries[name] = try describe(dir + "/" + name) }
        self.entries = entries
    }
}

@Suite struct RestoreTests {
    let password = Fixture.password("restore password")

    func withRepository(_ body: (Repository, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let repo = try await Repository.initialize(
                storage: LocalStorage(path: dir + "/repo"), credential: .password(password), options: Fixture.initOptions())
            try await body(repo, dir)
        }
    }

    /// Trees that try to reach outside the target; each is refused as damaged.
    enum Hostile: String, CaseIterable, CustomTestStringConvertible {
        /// A folder `..` followed by NUL at the top: `target/..` to the kernel, the target's
        /// parent, which was given the folder's mode and owner.
        case dotDotWithNULAtTheTop
        /// `..` followed by NUL, twice, below a folder `a`: `target/a/..\0/..\0/sentinel`.
        case dotDotWithNUL
        /// A symlink `x` to the sentinel, then a folder `x\0` (`x` to the kernel) with a file.
        case symlinkThenDirectoryWithNUL
        /// A symlink `x` to a file outside, then a set-uid file `x\0`.
        case symlinkThenFileWithNUL
        /// A set-uid file `x`, then a symlink `x\0` to a file outside, which the file's chmod
        /// would follow if it came after the symlink.
        case fileThenSymlinkWithNUL
        /// A name that is `..` itself.
        case dotDot
        /// A name holding `/`: `../sentinel/victim` from the target.
        case slash
        /// A symlink `x` to the sentinel, then a folder `x` (one name twice).
        case symlinkThenDirectoryOfTheSameName
        /// A symlink `x` to a file outside, then a file `x`.
        case symlinkThenFileOfTheSameName

        var testDescription: String { rawValue }

        /// The snapshot's root nodes; `sentinel` is a folder beside the target.
        func nodes(_ b: HostileSnapshotBuilder, sentinel: String) async throws -> [TreeNode] {
            let nul: [UInt8] = [0]
            let planted = try await b.file("victim", Array("pwned\n".utf8), meta(0o4777))
            let open = try await b.directory(Array("sentinel".utf8), meta(0o777), [planted])
            switch self {
            case .dotDotWithNULAtTheTop:
                return [try await b.directory(Array("..".utf8) + nul, meta(0o777), [open])]
            case .dotDotWithNUL:
                let up2 = try await b.directory(Array("..".utf8) + nul, meta(0o777), [open])
                let up1 = try await b.directory(Array("..".utf8) + nul, meta(0o777), [up2])
                return [try await b.directory(Array("a".utf8), meta(0o755), [up1])]
            case .symlinkThenDirectoryWithNUL:
                return [
                    TreeNode(name: Array("x".utf8), metadata: meta(0o777), content: .symlink(target: Array(sentinel.utf8))),
                    try await b.directory(Array("x".utf8) + nul, meta(0o777), [planted]),
                ]
            case .symlinkThenFileWithNUL:
                return [
                    TreeNode(name: Array("x".utf8), metadata: meta(0o777), content: .symlink(target: Array((sentinel + "/victim").utf8))),
                    try await b.file(Array("x".utf8) + nul, Array("pwned\n".utf8), meta(0o4777)),
                ]
            case .fileThenSymlinkWithNUL:
                return [
                    try await b.file(Array("x".utf8), Fixture.bytes(3 << 20), meta(0o4777)),
                    TreeNode(name: Array("x".utf8) + nul, metadata: meta(0o777), content: .symlink(target: Array((sentinel + "/victim").utf8))),
                ]
            case .dotDot:
                let up = try await b.directory(Array("..".utf8), meta(0o777), [open])
                return [try await b.directory(Array("a".utf8), meta(0o755), [up])]
            case .slash:
                return [try await b.file("../sentinel/victim", Array("pwned\n".utf8), meta(0o4777))]
            case .symlinkThenDirectoryOfTheSameName:
                return [
                    TreeNode(name: Array("x".utf8), metadata: meta(0o777), content: .symlink(target: Array(sentinel.utf8))),
                    try await b.directory(Array("x".utf8), meta(0o777), [planted]),
                ]
            case .symlinkThenFileOfTheSameName:
                return [
                    TreeNode(name: Array("x".utf8), metadata: meta(0o777), content: .symlink(target: Array((sentinel + "/victim").utf8))),
                    try await b.file("x", Array("pwned\n".utf8), meta(0o4777)),
                ]
            }
        }
    }

    @Test(arguments: Hostile.allCases)
    func aHostileTreeIsRefusedAndNothingOutsideTheTargetChanges(_ hostile: Hostile) async throws {
        try await withRepository { repo, dir async throws in
            // The sentinel sits beside the target, where `..` from the target leads.
            let sentinel = dir + "/sentinel"
            try makeDirectory(sentinel, mode: 0o750)
            try writeFile(sentinel + "/victim", Array("untouched\n".utf8), mode: 0o644)
            let b = HostileSnapshotBuilder(repo)
            let (snapshot, _) = try await b.snapshot(root: try await hostile.nodes(b, sentinel: sentinel))
            let before = try Observed(sentinel)
            let parentBefore = try fileStat(dir)
            let besideBefore = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()

            var refusal: RepositoryError? = nil
            do {
                let result = try await repo.restore(RestoreRequest(snapshot: snapshot, target: dir + "/target"))
                Issue.record("the hostile tree was restored: \(result.files) files, \(result.symlinks) symlinks, problems \(result.problems)")
            } catch let error as RepositoryError {
                refusal = error
            }
            #expect(refusal?.kind == .malformed, "\(String(describing: refusal))")
            #expect(refusal?.description.contains("snapshot \(snapshot.short)") == true, "the error names the snapshot: \(String(describing: refusal))")

            let after = try Observed(sentinel)
            #expect(after == before, "outside the target, \(before) became \(after)")
            let besideAfter = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(besideAfter == (besideBefore + ["target"]).sorted(), "beside the target: \(besideAfter)")
            let parentAfter = try fileStat(dir)
            #expect(
                parentAfter.st_mode == parentBefore.st_mode && parentAfter.st_uid == parentBefore.st_uid && parentAfter.st_gid == parentBefore.st_gid,
                "the target's parent: mode \(String(parentBefore.st_mode, radix: 8)) owner \(parentBefore.st_uid):\(parentBefore.st_gid) became mode \(String(parentAfter.st_mode, radix: 8)) owner \(parentAfter.st_uid):\(parentAfter.st_gid)")
        }
    }

    /// Without the request to preserve them, restored files belong to whoever restores (even
    /// root) and lose set-user-id and set-group-id bits; the sticky bit stays.
    @Test func ownersAndSetIDBitsAreNotRestoredByDefault() async throws {
        try await withRepository { repo, dir async throws in
            let b = HostileSnapshotBuilder(repo)
            let (snapshot, _) = try await b.snapshot(root: [
                try await b.file("suid", Array("#!/bin/sh\n".utf8), meta(0o6755)),
                try await b.directory(Array("shared".utf8), meta(0o3775), [try await b.file("inside", [1, 2, 3], meta(0o640))]),
                try await b.directory(Array("tmp".utf8), meta(0o1777), []),
                TreeNode(name: Array("link".utf8), metadata: meta(0o777), content: .symlink(target: Array("suid".utf8))),
            ])
            let target = dir + "/target"
            let result = try await repo.restore(RestoreRequest(snapshot: snapshot, target: target))
            #expect(result.problems.isEmpty, "\(result.problems)")
            let expectedModes: [String: mode_t] = ["suid": 0o755, "shared": 0o1775, "shared/inside": 0o640, "tmp": 0o1777]
            for (path, mode) in expectedModes {
                let st = try fileStat(target + "/" + path)
                #expect(st.st_mode & 0o7777 == mode, "\(path): mode \(String(st.st_mode & 0o7777, radix: 8)), expected \(String(mode, radix: 8))")
            }
            for path in ["suid", "shared", "shared/inside", "tmp", "link"] {
                let st = try fileStat(target + "/" + path)
                #expect(st.st_uid == geteuid() && st.st_gid == getegid(), "\(path): owner \(st.st_uid):\(st.st_gid), expected the restoring user's")
            }
        }
    }

    /// What an earlier restore (or anyone who can write in the target) left there is replaced,
    /// never followed: a symlink where a folder or a file goes, and a hard link to a file
    /// outside where a file goes.
    @Test func whatIsInTheTargetIsReplacedNotFollowed() async throws {
        try await withRepository { repo, dir async throws in
            let sentinel = dir + "/sentinel"
            try makeDirectory(sentinel, mode: 0o750)
            try writeFile(sentinel + "/victim", Array("untouched\n".utf8), mode: 0o644)
            let b = HostileSnapshotBuilder(repo)
            let (snapshot, _) = try await b.snapshot(root: [
                try await b.directory(Array("src".utf8), meta(0o755), [
                    try await b.directory(Array("folder".utf8), meta(0o777), [try await b.file("inside", Array("inside\n".utf8), meta(0o4777))]),
                    try await b.file("linked", Array("new\n".utf8), meta(0o4777)),
                    try await b.file("pointed", Array("new\n".utf8), meta(0o4777)),
                    TreeNode(name: Array("plain".utf8), metadata: meta(0o777), content: .symlink(target: Array("linked".utf8))),
                ]),
            ])
            let target = dir + "/target"
            try makeDirectory(target, mode: 0o700)
            try makeDirectory(target + "/src", mode: 0o700)
            #expect(symlink(sentinel, target + "/src/folder") == 0)
            #expect(link(sentinel + "/victim", target + "/src/linked") == 0)
            #expect(symlink(sentinel + "/victim", target + "/src/pointed") == 0)
            #expect(symlink(sentinel + "/victim", target + "/src/plain") == 0)
            let before = try Observed(sentinel)

            let result = try await repo.restore(RestoreRequest(snapshot: snapshot, target: target))
            #expect(result.problems.isEmpty, "\(result.problems)")
            let after = try Observed(sentinel)
            #expect(after == before, "outside the target, \(before) became \(after)")
            #expect(try fileStat(target + "/src/folder").st_mode & S_IFMT == S_IFDIR)
            #expect(try readFile(target + "/src/folder/inside") == Array("inside\n".utf8))
            #expect(try readFile(target + "/src/linked") == Array("new\n".utf8))
            #expect(try fileStat(target + "/src/pointed").st_mode & S_IFMT == S_IFREG)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/src/plain") == "linked")
        }
    }

    /// Deep nesting (each level one open folder), folders and files of mode 000 (as a
    /// non-root restorer, a folder's mode is set only after everything inside it), names with
    /// a newline, names of 255 bytes and hard links across folders.
    @Test func awkwardButValidTreesRestoreExactly() async throws {
        try await withRepository { repo, dir async throws in
            let src = dir + "/src"
            try makeDirectory(src, mode: 0o755)
            var deep = src
            var narrowed: [String] = []
            for level in 0..<200 {
                deep += "/d"
                try makeDirectory(deep, mode: 0o755)
                if level % 50 == 49 { narrowed.append(deep) }
            }
            try writeFile(deep + "/bottom", Array("200 levels down\n".utf8), mode: 0o600)
            try makeDirectory(src + "/closed", mode: 0o700)
            try writeFile(src + "/closed/secret", Array("mode 000\n".utf8), mode: 0o000)
            try writeFile(src + "/closed/first", Array("hard link\n".utf8), mode: 0o644)
            guard link(src + "/closed/first", src + "/second") == 0 else { throw TestFailure("link: errno \(errno)") }
            try writeFile(src + "/line\nbreak", Array("newline in the name\n".utf8), mode: 0o644)
            try writeFile(src + "/" + String(repeating: "L", count: 255), Array("255-byte name\n".utf8), mode: 0o644)
            // Read-only folders on the way down, and a closed one, once everything is inside.
            for path in narrowed.reversed() { #expect(chmod(path, 0o500) == 0) }
            #expect(chmod(src + "/closed", 0o000) == 0)
            let expected = try treeContents(src)

            var request = BackupRequest(paths: [src])
            request.hostname = "unit-test-host"
            let backup = try await repo.backup(request)
            #expect(backup.warnings.isEmpty, "\(backup.warnings)")
            let target = dir + "/target"
            let result = try await repo.restore(RestoreRequest(snapshot: try #require(backup.snapshotID), target: target))
            #expect(result.problems.isEmpty, "\(result.problems)")
            #expect(result.hardLinks == 1)
            let actual = try treeContents(target + "/src")
            #expect(actual.keys.sorted() == expected.keys.sorted())
            for (path, entry) in expected where actual[path] != entry {
                Issue.record("\(path.prefix(80)): restored \(actual[path].map(String.init(describing:)) ?? "nothing"), source \(entry)")
            }
            #expect(try fileStat(target + "/src/closed/first").st_ino == fileStat(target + "/src/second").st_ino, "hard link recreated")
        }
    }

    /// With `preserveOwner` (as root), the recorded owners and set-id bits are restored,
    /// symlinks' own owners included.
    @Test(.enabled(if: geteuid() == 0, "needs root to give files another owner"))
    func preserveOwnerRestoresOwnersAndSetIDBits() async throws {
        try await withRepository { repo, dir async throws in
            let b = HostileSnapshotBuilder(repo)
            let (snapshot, _) = try await b.snapshot(root: [
                try await b.file("suid", Array("#!/bin/sh\n".utf8), meta(0o6755)),
                try await b.directory(Array("shared".utf8), meta(0o3775, uid: 77, gid: 78), [try await b.file("inside", [1, 2, 3], meta(0o640, uid: 79))]),
                TreeNode(name: Array("link".utf8), metadata: meta(0o777, uid: 80, gid: 81), content: .symlink(target: Array("suid".utf8))),
            ])
            let target = dir + "/target"
            var request = RestoreRequest(snapshot: snapshot, target: target)
            request.preserveOwner = true
            let result = try await repo.restore(request)
            #expect(result.problems.isEmpty, "\(result.problems)")
            let expected: [String: (mode: mode_t, uid: uid_t, gid: gid_t)] = [
                "suid": (0o6755, 4242, 4243), "shared": (0o3775, 77, 78), "shared/inside": (0o640, 79, 4243), "link": (0o777, 80, 81),
            ]
            for (path, want) in expected {
                let st = try fileStat(target + "/" + path)
                #expect(st.st_mode & 0o7777 == want.mode, "\(path): mode \(String(st.st_mode & 0o7777, radix: 8))")
                #expect(st.st_uid == want.uid && st.st_gid == want.gid, "\(path): owner \(st.st_uid):\(st.st_gid)")
            }
        }
    }
}
