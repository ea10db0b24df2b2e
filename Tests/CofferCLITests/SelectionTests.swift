import Foundation
import Glibc
import Testing

/// End-to-end: choosing what to save (patterns, sizes, marker files, --files-from, categories).
@Suite("coffer backup selection, end to end")
struct SelectionTests {
    static func iso(_ brand: String) -> [UInt8] {
        [0, 0, 0, 20] + raw("ftyp") + raw(brand) + [0, 0, 0, 0] + raw(brand) + [0, 0, 0, 8] + raw("mdat")
    }

    /// A chat app's data folder: what each file holds, keyed by its path below `src`.
    static func chatTree() throws -> [String: (category: String, bytes: [UInt8])] {
        [
            "Media/Images/IMG_0001.jpg": ("images", [0xFF, 0xD8, 0xFF, 0xE0] + (try FS.randomBytes(3000))),
            "Media/Images/photo.heic": ("images", iso("heic") + (try FS.randomBytes(2000))),
            "Media/Video/VID_0001.mp4": ("videos", iso("isom") + (try FS.randomBytes(5000))),
            "Media/Video/clip.webm": ("videos", [0x1A, 0x45, 0xDF, 0xA3] + (try FS.randomBytes(4000))),
            "Media/Video/no-signature.mov": ("videos", raw("just text")),
            "Media/Voice Notes/PTT-0001.opus": ("audio", raw("OggS") + [0, 2] + (try FS.randomBytes(700))),
            "Media/Voice Notes/PTT-0002.m4a": ("audio", iso("M4A ") + (try FS.randomBytes(800))),
            "Media/Documents/report.pdf": ("documents", raw("%PDF-1.7\n") + (try FS.randomBytes(1500))),
            "Media/Documents/sheet.docx": ("documents", [0x50, 0x4B, 0x03, 0x04] + (try FS.randomBytes(1200))),
            "msgstore.db": ("databases", raw("SQLite format 3\0") + [0x10, 0, 1, 1] + (try FS.randomBytes(4076))),
            "notes.bin": ("other", try FS.randomBytes(600)),
            "Backups/old.zip": ("other", [0x50, 0x4B, 0x03, 0x04] + (try FS.randomBytes(300_000))),
            "Cache/.nobackup": ("other", []),
            "Cache/thumb.JPG": ("images", [0xFF, 0xD8, 0xFF, 0xDB] + (try FS.randomBytes(900))),
        ]
    }

    /// A sandbox with an initialised repository and the chat tree in `src`.
    static func setUp() throws -> (Sandbox, src: String, files: [String: (category: String, bytes: [UInt8])]) {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        let files = try chatTree()
        for dir in ["", "/Media", "/Media/Images", "/Media/Video", "/Media/Voice Notes", "/Media/Documents", "/Backups", "/Cache"] {
            try FS.mkdir(src + dir)
        }
        for (rel, f) in files { try FS.writeFile(src + "/" + rel, f.bytes) }
        return (box, src, files)
    }

    /// Files (not folders) in the latest snapshot, relative to `/src`.
    static func savedFiles(_ box: Sandbox) throws -> Set<String> {
        let r = try box.ok(["ls", "--repo", box.repo, "latest", "--json"])
        var out = Set<String>()
        for case let e as [String: Any] in try r.jsonLines() where e["type"] as? String == "file" {
            let path = try #require(e["path"] as? String)
            out.insert(String(path.dropFirst("/src/".count)))
        }
        return out
    }

    @Test func excludeCategoryVideosLeavesOutVideosAndKeepsTheRest() throws {
        let (box, src, files) = try Self.setUp()
        try box.backup([src], extra: ["--exclude-category", "videos"])
        let expected = Set(files.filter { $0.value.category != "videos" }.keys)
        #expect(try Self.savedFiles(box) == expected)

        // Repeatable; the content decides, not the name.
        try FS.writeFile(src + "/Media/Images/looks-like-video.mp4", [0xFF, 0xD8, 0xFF, 0xE1] + (try FS.randomBytes(100)))
        try box.backup([src], extra: ["--exclude-category", "videos", "--exclude-category", "audio"])
        let saved = try Self.savedFiles(box)
        #expect(saved == Set(files.filter { !["videos", "audio"].contains($0.value.category) }.keys).union(["Media/Images/looks-like-video.mp4"]))

        let bad = try box.coffer(["backup", "--repo", box.repo, "--exclude-category", "stickers", src])
        #expect(bad.exitedNormally && bad.status != 0 && bad.err.contains("stickers"), "\(bad.diagnostics)")
    }

    @Test func excludeLargerThanLeavesOutBigFiles() throws {
        let (box, src, files) = try Self.setUp()
        try box.backup([src], extra: ["--exclude-larger-than", "100k"])
        #expect(try Self.savedFiles(box) == Set(files.keys).subtracting(["Backups/old.zip"]))

        try box.backup([src], extra: ["--exclude-larger-than", "4K"])
        #expect(try Self.savedFiles(box) == Set(files.filter { $0.value.bytes.count <= 4096 }.keys))

        let bad = try box.coffer(["backup", "--repo", box.repo, "--exclude-larger-than", "lots", src])
        #expect(bad.exitedNormally && bad.status != 0, "\(bad.diagnostics)")
    }

    @Test func excludeIfPresentLeavesOutTheWholeFolder() throws {
        let (box, src, files) = try Self.setUp()
        try box.backup([src], extra: ["--exclude-if-present", ".nobackup"])
        #expect(try Self.savedFiles(box) == Set(files.keys.filter { !$0.hasPrefix("Cache/") }))
        let all = try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init)
        #expect(!all.contains("/src/Cache"), "the marked folder itself is left out")

        // The marker only counts in the folder itself, and a source path is never left out.
        try box.backup([src + "/Cache"], extra: ["--exclude-if-present", ".nobackup"])
        let own = try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init)
        #expect(Set(own) == ["/Cache", "/Cache/.nobackup", "/Cache/thumb.JPG"])
    }

    @Test func filesFromChoosesTheSources() throws {
        let (box, src, _) = try Self.setUp()
        let list = box.path("sources.txt")
        try FS.writeFile(list, "# what to keep\n\(src)/Media/Voice Notes\n\n\(src)/msgstore.db\n")
        let (_, summary) = try box.backup([], extra: ["--files-from", list])
        #expect(summary["snapshotID"] is String)
        let snapshot = try #require(try box.snapshotsJSON().last)
        #expect(snapshot["paths"] as? [String] == [src + "/Media/Voice Notes", src + "/msgstore.db"])
        let entries = Set(try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init))
        #expect(entries == ["/Voice Notes", "/Voice Notes/PTT-0001.opus", "/Voice Notes/PTT-0002.m4a", "/msgstore.db"])

        // Positional paths and --files-from add up; nothing at all is an error.
        try FS.writeFile(list, "\(src)/notes.bin\n")
        try box.backup([src + "/Backups"], extra: ["--files-from", list])
        #expect(try box.snapshotsJSON().last?["paths"] as? [String] == [src + "/Backups", src + "/notes.bin"])
        let none = try box.coffer(["backup", "--repo", box.repo])
        #expect(none.exitedNormally && none.status != 0, "\(none.diagnostics)")
    }

    @Test func iexcludeIgnoresCaseAndExcludeDoesNot() throws {
        let (box, src, files) = try Self.setUp()
        try box.backup([src], extra: ["--exclude", "*.jpg"])
        #expect(try Self.savedFiles(box) == Set(files.keys).subtracting(["Media/Images/IMG_0001.jpg"]))

        try box.backup([src], extra: ["--iexclude", "*.jpg"])
        #expect(try Self.savedFiles(box) == Set(files.keys).subtracting(["Media/Images/IMG_0001.jpg", "Cache/thumb.JPG"]))

        let file = box.path("iexcludes")
        try FS.writeFile(file, "# voice notes, any case\nptt-*\n\(src.uppercased())/media/DOCUMENTS/\n")
        try box.backup([src], extra: ["--iexclude-file", file])
        #expect(try Self.savedFiles(box) == Set(files.keys.filter { !$0.contains("PTT-") && !$0.hasPrefix("Media/Documents/") }))
    }

    @Test func negationReincludesAndLaterPatternsWin() throws {
        let (box, src, files) = try Self.setUp()
        // Everything under Media except Opus voice notes and the PDF. --exclude patterns come
        // before those of --exclude-file, so the file's exclude wins over `!*.m4a`.
        let patterns = box.path("patterns")
        try FS.writeFile(patterns, "\(src)/Media/*/*\n!*.opus\n!report.pdf\n")
        try box.backup([src], extra: ["--exclude-file", patterns, "--exclude", "!*.m4a"])
        let expected = Set(files.keys.filter { !$0.hasPrefix("Media/") })
            .union(["Media/Voice Notes/PTT-0001.opus", "Media/Documents/report.pdf"])
        #expect(try Self.savedFiles(box) == expected)

        // Reversed order: the exclude comes last and wins.
        try box.backup([src], extra: ["--exclude", "!*.opus", "--exclude", "*.opus"])
        #expect(try Self.savedFiles(box) == Set(files.keys).subtracting(["Media/Voice Notes/PTT-0001.opus"]))

        // A trailing slash matches folders only; a name without one matches anything.
        try FS.writeFile(src + "/Video", raw("a file named like a folder"))
        try box.backup([src], extra: ["--exclude", "Video/"])
        let saved = try Self.savedFiles(box)
        #expect(saved.contains("Video") && !saved.contains { $0.hasPrefix("Media/Video/") })
    }

    @Test func dryRunReportsPerCategoryNumbers() throws {
        let (box, src, files) = try Self.setUp()
        let before = box.repositoryFiles()
        let (r, summary) = try box.backup(
            [src], extra: ["--dry-run", "--exclude-category", "videos", "--exclude-if-present", ".nobackup", "--exclude-larger-than", "100k"])
        #expect(box.repositoryFiles() == before, "a dry run changed the repository")
        #expect(summary["dryRun"] as? Bool == true)
        #expect(r.out.split(separator: "\n").filter { $0.contains("\"messageType\":\"summary\"") }.count == 1)
        let selection = try #require(summary["selection"] as? [String: Any], "no selection in \(summary)")
        let saved = try #require(selection["saved"] as? [String: [String: Any]])
        let skipped = try #require(selection["skipped"] as? [String: [String: Any]])

        func isSkipped(_ rel: String) -> Bool {
            files[rel]!.category == "videos" || rel.hasPrefix("Cache/") || rel == "Backups/old.zip"
        }
        for category in ["images", "videos", "audio", "documents", "databases", "other"] {
            let mine = files.filter { $0.value.category == category }
            let kept = mine.filter { !isSkipped($0.key) }, left = mine.filter { isSkipped($0.key) }
            #expect(jsonInt(saved[category]?["files"]) == kept.count, "saved \(category)")
            #expect(jsonInt(saved[category]?["bytes"]) == kept.values.reduce(0) { $0 + $1.bytes.count }, "saved \(category) bytes")
            #expect(jsonInt(skipped[category]?["files"]) == left.count, "skipped \(category)")
            #expect(jsonInt(skipped[category]?["bytes"]) == left.values.reduce(0) { $0 + $1.bytes.count }, "skipped \(category) bytes")
        }
        // Sanity on the fixture: every category has something saved or skipped.
        #expect(jsonInt(skipped["videos"]?["files"]) == 3 && jsonInt(saved["videos"]?["files"]) == 0)
        #expect(jsonInt(saved["audio"]?["files"]) == 2 && jsonInt(saved["databases"]?["files"]) == 1)
        #expect(jsonInt(skipped["images"]?["files"]) == 1, "the image in the marked folder is reported as skipped")
        #expect(jsonInt(summary["bytesProcessed"]) == files.filter { !isSkipped($0.key) }.values.reduce(0) { $0 + $1.bytes.count })

        let text = try box.ok(["backup", "--repo", box.repo, "--dry-run", "--exclude-category", "videos", src])
        let rows = text.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let videos = try #require(rows.first { $0.first == "videos" }, "\(text.out)")
        #expect(videos[1] == "0" && videos[4] == "3", "videos row: \(videos)")
        #expect(rows.contains { $0.first == "total" } && text.out.contains("dry run"), "\(text.out)")
        #expect(box.repositoryFiles() == before)

        // A normal backup without category rules prints no table and reads no headers.
        let (_, plain) = try box.backup([src])
        #expect(plain["selection"] == nil)
    }

    @Test func oneFileSystemKeepsEverythingOnTheSameDevice() throws {
        let (box, src, files) = try Self.setUp()
        try box.backup([src], extra: ["--one-file-system"])
        #expect(try Self.savedFiles(box) == Set(files.keys))
    }

    /// /dev/shm is usually its own tmpfs below /dev: back up /dev (only our folder in /dev/shm)
    /// with and without --one-file-system. Skipped where /dev/shm is not a separate mount.
    @Test func oneFileSystemDoesNotCrossIntoAnotherDevice() throws {
        var dev = Glibc.stat(), shm = Glibc.stat()
        guard stat("/dev", &dev) == 0, stat("/dev/shm", &shm) == 0, dev.st_dev != shm.st_dev, access("/dev/shm", W_OK) == 0 else { return }
        let box = try Sandbox()
        try box.initRepository()
        let name = "coffer-e2e-\(UUID().uuidString)"
        try FS.mkdir("/dev/shm/" + name)
        defer {
            unlink("/dev/shm/\(name)/file")
            rmdir("/dev/shm/" + name)
        }
        try FS.writeFile("/dev/shm/\(name)/file", "on another device\n")
        let only = ["--exclude", "/dev/*", "--exclude", "!/dev/shm/", "--exclude", "/dev/shm/*", "--exclude", "!/dev/shm/\(name)/"]
        try box.backup(["/dev"], extra: only)
        let crossing = Set(try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init))
        #expect(crossing == ["/dev", "/dev/shm", "/dev/shm/\(name)", "/dev/shm/\(name)/file"])

        try box.backup(["/dev"], extra: only + ["--one-file-system"])
        let staying = Set(try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init))
        #expect(staying == ["/dev", "/dev/shm"], "the mount point is kept, empty")
    }
}
