import Foundation
import Glibc
import Testing

/// End-to-end: dump, ls, diff, snapshot references, tags, excludes, dry runs, version.
@Suite("coffer browsing and backup options, end to end")
struct BrowseTests {
    /// A repository with one small tree backed up.
    static func repositoryWithTree() throws -> (Sandbox, src: String, id: String) {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.mkdir(src + "/sub")
        try FS.writeFile(src + "/hello.txt", "hello, world\n")
        try FS.writeFile(src + "/sub/binary.bin", [UInt8](0...255) + [0, 0, 10, 13, 0xFF] + [UInt8](repeating: 7, count: 5000))
        try FS.symlink(target: "hello.txt", at: src + "/link")
        let (_, summary) = try box.backup([src])
        let id = try #require(summary["snapshotID"] as? String)
        return (box, src, id)
    }

    @Test func dumpWritesTheExactBytes() throws {
        let (box, src, _) = try Self.repositoryWithTree()
        let r = try box.ok(["dump", "--repo", box.repo, "latest", "/src/sub/binary.bin"])
        #expect(r.stdout == Data(try FS.readFile(src + "/sub/binary.bin")))
        #expect(r.err.isEmpty, "\(r.diagnostics)")

        let dir = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/sub"])
        #expect(dir.exitedNormally && dir.status != 0, "dump of a folder should fail: \(dir.diagnostics)")
        let missing = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/nope.txt"])
        #expect(missing.exitedNormally && missing.status != 0, "\(missing.diagnostics)")
        #expect(missing.stdout.isEmpty)
    }

    @Test func lsJSONLinesDescribeEveryEntry() throws {
        let (box, _, _) = try Self.repositoryWithTree()
        let r = try box.ok(["ls", "--repo", box.repo, "latest", "--json"])
        let entries = try r.jsonLines().map { try #require($0 as? [String: Any], "not an object: \($0)") }
        var byPath: [String: [String: Any]] = [:]
        for e in entries {
            let path = try #require(e["path"] as? String)
            #expect(e["type"] is String && jsonInt(e["size"]) != nil, "incomplete entry \(e)")
            byPath[path] = e
        }
        #expect(Set(byPath.keys) == ["/src", "/src/hello.txt", "/src/link", "/src/sub", "/src/sub/binary.bin"])
        #expect(byPath["/src"]?["type"] as? String == "dir")
        #expect(byPath["/src/hello.txt"]?["type"] as? String == "file")
        #expect(jsonInt(byPath["/src/hello.txt"]?["size"]) == 13)
        #expect(jsonInt(byPath["/src/sub/binary.bin"]?["size"]) == 256 + 5 + 5000)
        #expect(byPath["/src/link"]?["type"] as? String == "symlink")
        #expect(byPath["/src/link"]?["linkTarget"] as? String == "hello.txt")

        // Below a path only.
        let sub = try box.ok(["ls", "--repo", box.repo, "latest", "/src/sub"])
        #expect(sub.out.split(separator: "\n").map(String.init) == ["/src/sub/binary.bin"])
    }

    @Test func diffShowsAddedRemovedAndModifiedFiles() throws {
        let (box, src, first) = try Self.repositoryWithTree()
        try FS.writeFile(src + "/added.txt", "new\n")
        #expect(unlink(src + "/sub/binary.bin") == 0)
        try FS.writeFile(src + "/hello.txt", "hello, changed world\n")
        let (_, summary) = try box.backup([src])
        let second = try #require(summary["snapshotID"] as? String)

        let r = try box.ok(["diff", "--repo", box.repo, first, second])
        let changes = r.out.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, ["+", "-", "M", "T"].contains(parts[0]) else { return nil }
            return "\(parts[0]) \(parts[1])"
        }
        #expect(Set(changes) == ["+ /src/added.txt", "- /src/sub/binary.bin", "M /src/hello.txt"], "diff output:\n\(r.out)")
        #expect(changes.count == 3, "diff output:\n\(r.out)")

        let json = try box.ok(["diff", "--repo", box.repo, String(first.prefix(8)), "latest", "--json"])
        let list = try #require(try json.jsonLines().first as? [[String: String]], "\(json.out)")
        #expect(Set(list.map { "\($0["change"] ?? "?") \($0["path"] ?? "?")" }) == Set(changes))

        let none = try box.ok(["diff", "--repo", box.repo, second, "latest", "--json"])
        #expect(try (none.jsonLines().first as? [Any])?.isEmpty == true, "\(none.out)")
    }

    @Test func latestAndShortIDPrefixesResolve() throws {
        let (box, src, first) = try Self.repositoryWithTree()
        try FS.writeFile(src + "/hello.txt", "second version\n")
        let (_, summary) = try box.backup([src])
        let second = try #require(summary["snapshotID"] as? String)
        #expect(first != second)

        #expect(try box.ok(["dump", "--repo", box.repo, "latest", "/src/hello.txt"]).out == "second version\n")
        #expect(try box.ok(["dump", "--repo", box.repo, String(first.prefix(8)), "/src/hello.txt"]).out == "hello, world\n")
        #expect(try box.ok(["dump", "--repo", box.repo, String(second.prefix(6)).uppercased(), "/src/hello.txt"]).out == "second version\n")
        #expect(try box.ok(["dump", "--repo", box.repo, first, "/src/hello.txt"]).out == "hello, world\n")

        let unknown = try box.coffer(["ls", "--repo", box.repo, "zz"])
        #expect(unknown.exitedNormally && unknown.status != 0, "\(unknown.diagnostics)")
        let snapshots = try box.snapshotsJSON()
        #expect(snapshots.compactMap { $0["id"] as? String } == [first, second], "snapshots are not listed oldest first")
        #expect(snapshots.last?["shortID"] as? String == String(second.prefix(8)))
    }

    @Test func snapshotsJSONCarriesTagsHostAndPaths() throws {
        let box = try Sandbox()
        try box.initRepository()
        #expect(try box.snapshotsJSON().isEmpty)
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "x\n")
        try box.backup([src], extra: ["--tag", "daily", "--tag", "important", "--host", "test-host"])
        let snapshots = try box.snapshotsJSON()
        #expect(snapshots.count == 1)
        let s = try #require(snapshots.first)
        #expect(s["tags"] as? [String] == ["daily", "important"])
        #expect(s["hostname"] as? String == "test-host")
        #expect(s["paths"] as? [String] == [src])
        #expect((s["id"] as? String)?.count == 64)
    }

    @Test func excludePatternsAndExcludeFilesLeaveFilesOut() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.mkdir(src + "/sub")
        try FS.mkdir(src + "/cache")
        try FS.writeFile(src + "/keep.txt", "k\n")
        try FS.writeFile(src + "/junk.tmp", "j\n")
        try FS.writeFile(src + "/sub/also.tmp", "j\n")
        try FS.writeFile(src + "/sub/keep.dat", "k\n")
        try FS.writeFile(src + "/debug.log", "l\n")
        try FS.writeFile(src + "/cache/blob", "c\n")
        let excludeFile = box.path("excludes")
        try FS.writeFile(excludeFile, "# comments and blank lines are ignored\n\n*.log\n  \(src)/cache  \n")

        try box.backup([src], extra: ["--exclude", "*.tmp"])
        let onlyTmp = Set(try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init))
        #expect(onlyTmp == ["/src", "/src/keep.txt", "/src/sub", "/src/sub/keep.dat", "/src/debug.log", "/src/cache", "/src/cache/blob"])

        try box.backup([src], extra: ["--exclude", "*.tmp", "--exclude-file", excludeFile])
        let both = Set(try box.ok(["ls", "--repo", box.repo, "latest"]).out.split(separator: "\n").map(String.init))
        #expect(both == ["/src", "/src/keep.txt", "/src/sub", "/src/sub/keep.dat"])

        let missingFile = try box.coffer(["backup", "--repo", box.repo, "--exclude-file", box.path("no-such-file"), src])
        #expect(missingFile.exitedNormally && missingFile.status != 0, "\(missingFile.diagnostics)")
        #expect(try box.snapshotsJSON().count == 2)
    }

    @Test func dryRunWritesNothing() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.bin", try FS.randomBytes(100_000))
        let before = box.repositoryFiles()

        let (_, summary) = try box.backup([src], extra: ["--dry-run"])
        #expect(summary["dryRun"] as? Bool == true)
        #expect(summary["snapshotID"] == nil || summary["snapshotID"] is NSNull)
        #expect(jsonInt(summary["bytesProcessed"]) == 100_000)
        #expect(box.repositoryFiles() == before, "a dry run changed the repository")
        #expect(try box.snapshotsJSON().isEmpty)

        let text = try box.ok(["backup", "--repo", box.repo, "--dry-run", src])
        #expect(text.out.contains("dry run"), "\(text.diagnostics)")
        #expect(box.repositoryFiles() == before)
    }

    @Test func versionPrints() throws {
        let box = try Sandbox()
        let r = try box.ok(["version"], env: [:])
        #expect(r.out.hasPrefix("coffer 0."), "\(r.diagnostics)")
        let json = try box.ok(["version", "--json"], env: [:])
        let object = try #require(try json.jsonLines().first as? [String: String], "\(json.out)")
        #expect(object["version"].map { !$0.isEmpty } == true)
        #expect(object["format"].map { !$0.isEmpty } == true)
        let flag = try box.ok(["--version"], env: [:])
        #expect(!flag.out.isEmpty)
    }
}
