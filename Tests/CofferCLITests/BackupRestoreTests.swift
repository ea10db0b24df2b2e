import Foundation
import Glibc
import Testing

/// End-to-end: back up real trees with the `coffer` binary and restore them.
@Suite("coffer backup and restore, end to end")
struct BackupRestoreTests {
    /// A non-UTF-8 file name: 0xFF and 0xFE never occur in UTF-8.
    static let nonUTF8Name: RawName = raw("bad-") + [0xFF, 0xFE] + raw("-name.bin")
    static let unicodeName = "naïve – 日本.txt"

    @Test func restoreReproducesContentsModesTimesSymlinksAndHardLinks() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")

        // Build the tree.
        try FS.mkdir(src, mode: 0o755)
        try FS.mkdir(src + "/docs", mode: 0o750)
        try FS.mkdir(src + "/docs/nested", mode: 0o755)
        try FS.mkdir(src + "/docs/nested/deeper", mode: 0o711)
        try FS.mkdir(src + "/empty-dir", mode: 0o700)
        try FS.mkdir(src + "/links", mode: 0o755)
        try FS.mkdir(src + "/links/deeper", mode: 0o755)
        let text = String(repeating: "All work and no play makes Jack a dull boy. 0123456789\n", count: 4000)
        try FS.writeFile(src + "/docs/compressible.txt", text, mode: 0o644)
        try FS.writeFile(src + "/docs/" + Self.unicodeName, "unicode name, unicode content: ünïcødé ✓ 日本語\n", mode: 0o644)
        try FS.writeFile(src + "/docs/nested/deeper/leaf.txt", "a leaf three levels down\n", mode: 0o600)
        try FS.writeFile(joined(raw(src), Self.nonUTF8Name), [0, 1, 2, 0xFF, 0xFE, 10] + raw("not utf-8 named\n"), mode: 0o644)
        try FS.writeFile(src + "/empty.txt", [UInt8](), mode: 0o644)
        try FS.writeFile(src + "/random.bin", try FS.randomBytes(3 << 20), mode: 0o600)
        try FS.writeFile(src + "/run.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
        try FS.writeFile(src + "/links/one.txt", "one file, two names\n", mode: 0o640)
        try FS.hardLink(existing: src + "/links/one.txt", new: src + "/links/deeper/two.txt")
        try FS.symlink(target: "docs/compressible.txt", at: src + "/rel-link")
        try FS.symlink(target: "/nonexistent/coffer/target", at: src + "/dangling-link")

        // Distinct, recognisable mtimes (with nanoseconds); directories last, deepest first.
        let leaves: [RawName] = [
            raw("docs/compressible.txt"), raw("docs/" + Self.unicodeName), raw("docs/nested/deeper/leaf.txt"),
            Self.nonUTF8Name, raw("empty.txt"), raw("random.bin"), raw("run.sh"), raw("links/one.txt"),
            raw("rel-link"), raw("dangling-link"),
        ]
        let dirs = ["docs/nested/deeper", "docs/nested", "docs", "empty-dir", "links/deeper", "links"].map(raw)
        for (i, rel) in (leaves + dirs).enumerated() {
            try FS.setMtime(joined(raw(src), rel), seconds: 1_000_000_000 + i * 86_400 + 17, nanoseconds: 123_456_789 - i * 1_001)
        }
        try FS.setMtime(src, seconds: 1_600_000_000, nanoseconds: 5)

        let before = try scanTree(raw(src))
        let backup = try box.backup([src])
        #expect(jsonInt(backup.summary["filesSkipped"]) == 0)
        #expect(backup.summary["snapshotID"] is String)

        let target = box.path("restored")
        let restore = try box.coffer(["restore", "--repo", box.repo, "latest", "--target", target])
        #expect(restore.succeeded, "\(restore.diagnostics)")
        let after = try scanTree(raw(target + "/src"))

        expectSameTree(before, after)

        // The hard-linked pair is one inode again, and a different one from other files.
        let one = try #require(after[raw("links/one.txt")]), two = try #require(after[raw("links/deeper/two.txt")])
        #expect(one.inode == two.inode, "hard-linked pair restored as two separate files")
        #expect(one.links == 2 && two.links == 2)
        #expect(one.inode != after[raw("run.sh")]?.inode)
    }

    @Test func unchangedDataAddsNothingAndACopiedFileAddsNoDataBlobs() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        let data = try FS.randomBytes(3 << 20)
        try FS.writeFile(src + "/data.bin", data)
        try FS.writeFile(src + "/notes.txt", "some notes\n")

        let first = try box.backup([src])
        #expect(jsonInt(first.summary["blobsAdded"]).map { $0 > 0 } == true)
        #expect(jsonInt(first.summary["bytesAdded"]).map { $0 >= data.count } == true)

        let second = try box.backup([src])
        let line = try #require(second.result.summaryLine)
        #expect(line.contains("\"blobsAdded\":0,"), "summary line: \(line)")
        #expect(jsonInt(second.summary["bytesAdded"]) == 0)
        #expect(jsonInt(second.summary["filesUnmodified"]) == 2, "summary line: \(line)")
        #expect(jsonInt(second.summary["filesNew"]) == 0 && jsonInt(second.summary["filesChanged"]) == 0, "summary line: \(line)")

        // The same bytes under another name: only the changed trees (the folder and the root) are new.
        try FS.writeFile(src + "/copy-of-data.bin", data)
        let third = try box.backup([src])
        let bytesAdded = try #require(jsonInt(third.summary["bytesAdded"]))
        let blobsAdded = try #require(jsonInt(third.summary["blobsAdded"]))
        #expect(bytesAdded < data.count / 10, "a copied file stored \(bytesAdded) new bytes")
        #expect(blobsAdded <= 2, "a copied file added \(blobsAdded) blobs; expected only the two changed tree blobs")
        #expect(jsonInt(third.summary["filesNew"]) == 1 && jsonInt(third.summary["filesUnmodified"]) == 2, "\(third.result.out)")

        let dump = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/copy-of-data.bin"])
        #expect(dump.succeeded, "\(dump.diagnostics)")
        #expect(dump.stdout == Data(data), "the deduplicated copy does not dump to the original bytes")
    }

    @Test func aFileRewrittenWithTheSameSizeAndMtimeIsReadAgain() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/same-size.txt", String(repeating: "A", count: 4096))
        try FS.setMtime(src + "/same-size.txt", seconds: 1_500_000_000, nanoseconds: 0)
        try box.backup([src])

        // Same size, same mtime, same inode; only the contents (and so the ctime) differ.
        try FS.writeFile(src + "/same-size.txt", String(repeating: "B", count: 4096))
        try FS.setMtime(src + "/same-size.txt", seconds: 1_500_000_000, nanoseconds: 0)
        let (_, summary) = try box.backup([src])
        #expect(jsonInt(summary["filesChanged"]) == 1, "\(summary)")
        let dump = try box.ok(["dump", "--repo", box.repo, "latest", "/src/same-size.txt"])
        #expect(dump.out == String(repeating: "B", count: 4096), "the backup reused the old contents of a rewritten file")
    }

    @Test func interruptedBackupLeavesAValidRepositoryAndTheNextBackupRestoresExactly() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        // Small enough for a debug build (which seals roughly 5 MB/s), large enough to be mid-way
        // when the signal arrives.
        let bytes = try FS.randomBytes(24 << 20)
        try FS.writeFile(src + "/a.bin", Array(bytes[0..<(12 << 20)]))
        try FS.writeFile(src + "/b.bin", Array(bytes[(12 << 20)...]))

        let running = try box.start(["backup", "--repo", box.repo, "--json", src])
        // Wait until the backup reports progress (so the signal handler is installed), then ~0.5 s.
        let started = running.waitForStdout(timeout: 30) { $0.contains("\"messageType\":\"status\"") }
        #expect(started, "backup printed no progress line: \(running.currentStdout)")
        usleep(500_000)
        let stillRunning = running.process.isRunning
        running.process.interrupt()  // SIGINT, as Ctrl-C would send
        let interrupted = try running.wait(timeout: 60)
        try #require(stillRunning, "the backup finished before SIGINT could be sent; use more data. \(interrupted.diagnostics)")

        #expect(interrupted.exitedNormally, "coffer died of the signal instead of stopping cleanly: \(interrupted.diagnostics)")
        #expect(interrupted.status != 0, "\(interrupted.diagnostics)")
        #expect(interrupted.err.contains("interrupted"), "\(interrupted.diagnostics)")
        #expect(interrupted.summaryLine == nil, "an interrupted backup printed a summary: \(interrupted.out)")

        // The repository is still readable and holds no snapshot from the interrupted run.
        #expect(try box.snapshotsJSON().isEmpty)

        let complete = try box.backup([src])
        #expect(jsonInt(complete.summary["filesSkipped"]) == 0)
        #expect(try box.snapshotsJSON().count == 1)
        let target = box.path("restored")
        let restore = try box.coffer(["restore", "--repo", box.repo, "latest", "--target", target])
        #expect(restore.succeeded, "\(restore.diagnostics)")
        let a = try FS.readFile(target + "/src/a.bin"), b = try FS.readFile(target + "/src/b.bin")
        #expect(a.count == 12 << 20 && b.count == 12 << 20)
        let exact = a == Array(bytes[0..<(12 << 20)]) && b == Array(bytes[(12 << 20)...])
        #expect(exact, "restored data differs from the source after an interrupted backup")
    }
}

extension BackupRestoreTests {
    /// Without --preserve-owner, restored files belong to whoever restores (here root) and
    /// lose setuid/setgid; with it, the recorded owners and bits come back.
    @Test(.enabled(if: geteuid() == 0, "needs root to give a file another owner"))
    func restoreGivesOwnersAndSetIDBitsOnlyWithPreserveOwner() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/tool", "#!/bin/sh\necho hi\n", mode: 0o755)
        #expect(chown(src + "/tool", 4242, 4243) == 0)
        #expect(chmod(src + "/tool", 0o6755) == 0)
        try box.backup([src])

        let plain = box.path("plain")
        let restore = try box.coffer(["restore", "--repo", box.repo, "latest", "--target", plain])
        #expect(restore.succeeded, "\(restore.diagnostics)")
        let mine = try FS.lstatRaw(raw(plain + "/src/tool"))
        #expect(mine.st_uid == 0 && mine.st_gid == 0, "owner \(mine.st_uid):\(mine.st_gid)")
        #expect(mine.st_mode & 0o7777 == 0o755, "mode \(String(mine.st_mode & 0o7777, radix: 8))")

        let kept = box.path("kept")
        let preserving = try box.coffer(["restore", "--repo", box.repo, "latest", "--target", kept, "--preserve-owner"])
        #expect(preserving.succeeded, "\(preserving.diagnostics)")
        let theirs = try FS.lstatRaw(raw(kept + "/src/tool"))
        #expect(theirs.st_uid == 4242 && theirs.st_gid == 4243, "owner \(theirs.st_uid):\(theirs.st_gid)")
        #expect(theirs.st_mode & 0o7777 == 0o6755, "mode \(String(theirs.st_mode & 0o7777, radix: 8))")
    }
}

/// Compares two scanned trees entry by entry: kind, bytes, mode, mtime (to the nanosecond),
/// link count and symlink target.
func expectSameTree(_ a: [RawName: EntryInfo], _ b: [RawName: EntryInfo], sourceLocation: SourceLocation = #_sourceLocation) {
    let missing = Set(a.keys).subtracting(b.keys).map(display).sorted()
    let extra = Set(b.keys).subtracting(a.keys).map(display).sorted()
    #expect(missing.isEmpty, "not restored: \(missing)", sourceLocation: sourceLocation)
    #expect(extra.isEmpty, "restored but not in the source: \(extra)", sourceLocation: sourceLocation)
    for (path, x) in a.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
        guard let y = b[path] else { continue }
        let name = path.isEmpty ? "(root)" : display(path)
        #expect(x.kind == y.kind, "\(name): kind \(x.kind) became \(y.kind)", sourceLocation: sourceLocation)
        guard x.kind == y.kind else { continue }
        if x.kind != .symlink {  // a symlink's own mode is always 0777 on Linux
            #expect(x.mode == y.mode, "\(name): mode \(String(x.mode, radix: 8)) became \(String(y.mode, radix: 8))", sourceLocation: sourceLocation)
        }
        #expect(x.mtimeSeconds == y.mtimeSeconds, "\(name): mtime seconds \(x.mtimeSeconds) became \(y.mtimeSeconds)", sourceLocation: sourceLocation)
        #expect(x.mtimeNanoseconds == y.mtimeNanoseconds, "\(name): mtime nanoseconds \(x.mtimeNanoseconds) became \(y.mtimeNanoseconds)", sourceLocation: sourceLocation)
        switch x.kind {
        case .file:
            #expect(x.size == y.size, "\(name): size \(x.size) became \(y.size)", sourceLocation: sourceLocation)
            let same = x.content == y.content
            #expect(same, "\(name): contents differ", sourceLocation: sourceLocation)
            #expect(x.links == y.links, "\(name): link count \(x.links) became \(y.links)", sourceLocation: sourceLocation)
        case .symlink:
            #expect(x.linkTarget == y.linkTarget, "\(name): symlink target \(x.linkTarget.map(display) ?? "-") became \(y.linkTarget.map(display) ?? "-")", sourceLocation: sourceLocation)
        case .directory, .other:
            break
        }
    }
}
