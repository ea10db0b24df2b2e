import Foundation
import Glibc
import Testing

/// End-to-end: exit codes, damaged repositories, and what the repository reveals.
@Suite("coffer errors, integrity and secrecy, end to end")
struct ErrorAndIntegrityTests {
    @Test func wrongPasswordExits12() throws {
        let box = try Sandbox()
        try box.initRepository()
        let r = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "not the password"])
        #expect(r.exitedNormally && r.status == 12, "\(r.diagnostics)")
        #expect(r.err.contains("wrong password or key"), "\(r.diagnostics)")
        #expect(r.out.isEmpty, "\(r.diagnostics)")
        // The right one still works.
        try box.ok(["snapshots", "--repo", box.repo])
    }

    @Test func missingRepositoryExits10() throws {
        let box = try Sandbox()
        let nowhere = try box.coffer(["snapshots", "--repo", box.path("does-not-exist")])
        #expect(nowhere.exitedNormally && nowhere.status == 10, "\(nowhere.diagnostics)")
        #expect(nowhere.err.contains("no repository"), "\(nowhere.diagnostics)")

        try FS.mkdir(box.path("empty-folder"))
        let empty = try box.coffer(["snapshots", "--repo", box.path("empty-folder")])
        #expect(empty.exitedNormally && empty.status == 10, "\(empty.diagnostics)")

        // COFFER_REPOSITORY is honoured in place of --repo.
        let viaEnv = try box.coffer(["snapshots"], env: ["COFFER_PASSWORD": box.password, "COFFER_REPOSITORY": box.path("nope")])
        #expect(viaEnv.exitedNormally && viaEnv.status == 10, "\(viaEnv.diagnostics)")
    }

    @Test func initRefusesAnExistingRepositoryAndLeavesItIntact() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "keep me\n")
        try box.backup([src])
        let filesBefore = box.repositoryFiles()

        let again = try box.coffer(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"])
        #expect(again.exitedNormally && again.status != 0, "\(again.diagnostics)")
        #expect(again.err.contains("already holds a repository"), "\(again.diagnostics)")
        #expect(box.repositoryFiles() == filesBefore, "a refused init changed the repository")
        #expect(try box.snapshotsJSON().count == 1)

        // Even with another password, it is refused and the old password still opens it.
        let other = try box.coffer(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"],
                                   env: ["COFFER_PASSWORD": "another"])
        #expect(other.exitedNormally && other.status != 0, "\(other.diagnostics)")
        try box.ok(["snapshots", "--repo", box.repo])
    }

    @Test func damagedPackIsReportedAndTheAffectedFileIsNotRestored() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        let data = try FS.randomBytes(3 << 20)
        try FS.writeFile(src + "/big.bin", data)
        try box.backup([src])

        // The largest pack holds only big.bin's chunks; its middle byte lies inside one of them.
        let packs = box.repositoryFiles().filter { $0.key.hasPrefix("data/") }
        let (packRel, _) = try #require(packs.max { $0.value < $1.value })
        let packID = (packRel as NSString).lastPathComponent
        try FS.flipByte(box.repo + "/" + packRel)

        let target = box.path("restored")
        let r = try box.coffer(["restore", "--repo", box.repo, "latest", "--target", target])
        #expect(r.exitedNormally && r.status != 0, "\(r.diagnostics)")
        #expect(r.err.contains("pack \(packID.prefix(8))"), "stderr does not name the damaged pack \(packID): \(r.diagnostics)")
        #expect(r.err.contains("data blob "), "stderr does not name the damaged blob: \(r.diagnostics)")
        #expect(r.err.contains("big.bin"), "stderr does not name the affected file: \(r.diagnostics)")
        // Never wrong bytes under the file's name: absent (what restore promises) or exact.
        if FS.exists(raw(target + "/src/big.bin")) {
            let restored = try FS.readFile(target + "/src/big.bin")
            let exact = restored == data
            #expect(exact, "a file with a damaged chunk was restored with wrong content")
        }

        // `dump` of the same file fails too instead of printing damaged bytes.
        let dump = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/big.bin"])
        #expect(dump.exitedNormally && dump.status != 0, "dump of a damaged file succeeded")
        #expect(dump.err.contains("pack \(packID.prefix(8))"), "\(dump.diagnostics)")
    }

    @Test func damagedSnapshotObjectIsNamed() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "hello\n")
        try box.backup([src])
        let snapshotFiles = box.repositoryFiles().keys.filter { $0.hasPrefix("snapshots/") }
        let snapshotRel = try #require(snapshotFiles.first)
        #expect(snapshotFiles.count == 1)
        try FS.flipByte(box.repo + "/" + snapshotRel)

        let r = try box.coffer(["snapshots", "--repo", box.repo])
        #expect(r.exitedNormally && r.status != 0, "\(r.diagnostics)")
        #expect(r.err.contains(snapshotRel), "stderr does not name \(snapshotRel): \(r.diagnostics)")
    }

    @Test func truncatedIndexIsNamed() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "hello\n")
        try box.backup([src])
        let indexFiles = box.repositoryFiles().filter { $0.key.hasPrefix("index/") }
        #expect(indexFiles.count == 1)
        let (indexRel, size) = try #require(indexFiles.first)
        #expect(truncate(box.repo + "/" + indexRel, off_t(size / 2)) == 0)

        for command in [["ls", "latest"], ["restore", "latest", "--target", box.path("restored")], ["backup", src]] {
            let r = try box.coffer([command[0], "--repo", box.repo] + command.dropFirst())
            #expect(r.exitedNormally && r.status != 0, "\(r.diagnostics)")
            #expect(r.err.contains(indexRel), "stderr does not name \(indexRel): \(r.diagnostics)")
        }
    }

    @Test func repositoryBytesRevealNoNamesContentsTagsOrHost() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("SECRETDIR-5678")
        try FS.mkdir(src)
        try FS.mkdir(src + "/SECRETSUBDIR-4321")
        try FS.writeFile(src + "/SECRETNAME-1234.txt", String(repeating: "PLAINTEXT-MARKER-9876 ", count: 2000))
        try FS.writeFile(src + "/SECRETSUBDIR-4321/other.txt", "PLAINTEXT-MARKER-9876 once\n")
        try FS.symlink(target: "SECRETLINKTARGET-1111", at: src + "/link")
        try box.backup([src], extra: ["--tag", "SECRETTAG-2468", "--host", "SECRETHOST-1357"])
        // Sanity: the data is really in there.
        let dump = try box.ok(["dump", "--repo", box.repo, "latest", "/SECRETDIR-5678/SECRETSUBDIR-4321/other.txt"])
        #expect(dump.out == "PLAINTEXT-MARKER-9876 once\n")

        let markers = ["SECRETDIR-5678", "SECRETSUBDIR-4321", "SECRETNAME-1234", "PLAINTEXT-MARKER-9876",
                       "SECRETLINKTARGET-1111", "SECRETTAG-2468", "SECRETHOST-1357", box.password]
        let files = box.repositoryFiles()
        #expect(files.count > 3)
        var leaks: [String] = []
        for rel in files.keys.sorted() {
            let bytes = try FS.readFile(box.repo + "/" + rel)
            for m in markers {
                // Also look for the UTF-16 form, in case anything were stored that way.
                let utf16 = Array(m.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
                if containsBytes(bytes, raw(m)) || containsBytes(bytes, utf16) { leaks.append("\(m) in \(rel)") }
            }
        }
        #expect(leaks.isEmpty, "plaintext found in the repository: \(leaks)")
    }

    @Test(.enabled(if: UnreadableFiles.canTest, "needs a non-root user or /usr/bin/setpriv to drop root's file-permission override"))
    func unreadableFilesAreSkippedWithExitCode3AndTheSnapshotIsStillWritten() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/readable.txt", "fine\n")
        try FS.writeFile(src + "/locked.txt", "you cannot read me\n", mode: 0o000)
        try FS.mkdir(src + "/locked-dir", mode: 0o755)
        try FS.writeFile(src + "/locked-dir/inside.txt", "hidden\n")
        #expect(chmod(src + "/locked-dir", 0o000) == 0)
        defer {
            _ = chmod(src + "/locked-dir", 0o755)
            _ = chmod(src + "/locked.txt", 0o644)
        }

        // Root reads mode-000 files anyway; run coffer without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH.
        let r = try box.coffer(["backup", "--repo", box.repo, "--json", src], launcherPrefix: UnreadableFiles.launcherPrefix)
        #expect(r.exitedNormally && r.status == 3, "\(r.diagnostics)")
        #expect(r.err.contains(src + "/locked.txt"), "\(r.diagnostics)")
        #expect(r.err.contains(src + "/locked-dir"), "\(r.diagnostics)")
        let summary = try r.summary()
        #expect(jsonInt(summary["filesSkipped"]) == 2)
        let id = try #require(summary["snapshotID"] as? String)

        let snapshots = try box.snapshotsJSON()
        #expect(snapshots.count == 1)
        #expect(snapshots.first?["id"] as? String == id)
        let listed = try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init)
        #expect(listed.contains("/src/readable.txt"))
        #expect(!listed.contains("/src/locked.txt"))
        #expect(!listed.contains(where: { $0.hasPrefix("/src/locked-dir") }))
    }
}

enum UnreadableFiles {
    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { (p: String) in access(p, X_OK) == 0 }
    static var canTest: Bool { geteuid() != 0 || setpriv != nil }
    static var launcherPrefix: [String] {
        guard geteuid() == 0, let setpriv else { return [] }
        return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    }
}
