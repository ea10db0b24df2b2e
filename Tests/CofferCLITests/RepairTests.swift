import Foundation
import Glibc
import Testing

/// End-to-end, as a user would: a lost or damaged pack is found by `check`, which says what to
/// run; `repair index` and a backup of the same files store again what was lost; then `check
/// --read-data` is clean, prune works again and the snapshots restore bit-exact.
@Suite("coffer repair index, end to end")
struct RepairCommandTests {
    struct Source {
        let a: [UInt8]
        let b: [UInt8]
    }

    func makeRepository() throws -> (Sandbox, Source) {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        let source = Source(a: try FS.randomBytes(3 << 19), b: Array(String(repeating: "a line of text that compresses\n", count: 20_000).utf8))
        try FS.writeFile(src + "/a.bin", source.a)
        try FS.writeFile(src + "/b.txt", source.b)
        try box.backup([src])
        return (box, source)
    }

    /// The largest pack: a data pack holding part of a.bin.
    func largestPack(_ box: Sandbox) throws -> String {
        let (rel, _) = try #require(box.repositoryFiles().filter { $0.key.hasPrefix("data/") }.max { $0.value < $1.value })
        return box.repo + "/" + rel
    }

    func expectRestoresBitExact(_ box: Sandbox, _ source: Source, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let target = box.path("out-\(UUID().uuidString)")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target], sourceLocation: sourceLocation)
        #expect(try FS.readFile(target + "/src/a.bin") == source.a, sourceLocation: sourceLocation)
        #expect(try FS.readFile(target + "/src/b.txt") == source.b, sourceLocation: sourceLocation)
    }

    func expectNoInternalNames(_ r: RunResult, sourceLocation: SourceLocation = #_sourceLocation) {
        for name in ["authenticationFailed", "missingObject", "blobDamaged", "notFound(", "missingBlobs"] {
            #expect(!r.err.contains(name) && !r.out.contains(name), "shows \(name): \(r.diagnostics)", sourceLocation: sourceLocation)
        }
    }

    @Test func aLostPackIsRecoveredWithRepairIndexAndABackup() throws {
        let (box, source) = try makeRepository()
        unlink(try largestPack(box))

        let check = try box.coffer(["check", "--repo", box.repo])
        #expect(check.status == 1 && check.err.contains("missing"), "\(check.diagnostics)")
        #expect(check.err.contains("run `coffer repair index`, then back up the same files again"), "\(check.diagnostics)")
        let prune = try box.coffer(["prune", "--repo", box.repo])
        #expect(prune.status == 1 && prune.err.contains("coffer repair index"), "\(prune.diagnostics)")
        expectNoInternalNames(prune)

        let repair = try box.ok(["repair", "index", "--repo", box.repo])
        #expect(repair.out.contains("missing packs dropped from the index: 1"), "\(repair.diagnostics)")
        let after = try box.coffer(["check", "--repo", box.repo])
        #expect(after.status == 1 && after.err.contains("not in any index"), "until a backup, the lost blobs are missing: \(after.diagnostics)")

        // The same command a user runs every day stores again what was lost.
        let (_, summary) = try box.backup([box.path("src")], extra: ["--force"])
        #expect((jsonInt(summary["blobsAdded"]) ?? 0) > 0 && (jsonInt(summary["bytesAdded"]) ?? 0) > 0, "\(summary)")

        let clean = try box.ok(["check", "--repo", box.repo, "--read-data"])
        #expect(clean.out.hasSuffix("no errors were found\n"), "\(clean.diagnostics)")
        try box.ok(["prune", "--repo", box.repo])
        try box.ok(["check", "--repo", box.repo, "--read-data"])
        try expectRestoresBitExact(box, source)
        try box.ok(["forget", "--repo", box.repo, "--keep-last", "1", "--prune"])
        try box.ok(["check", "--repo", box.repo, "--read-data"])
        try expectRestoresBitExact(box, source)
    }

    @Test func aDamagedPackIsRecoveredWithRepairIndexReadingTheData() throws {
        let (box, source) = try makeRepository()
        try FS.flipByte(try largestPack(box), at: 100)

        let check = try box.coffer(["check", "--repo", box.repo, "--read-data"])
        #expect(check.status == 1 && check.err.contains("run `coffer repair index --read-data`"), "\(check.diagnostics)")
        expectNoInternalNames(check)

        let repair = try box.ok(["repair", "index", "--repo", box.repo, "--read-data"])
        #expect(repair.out.contains("damaged blobs dropped: 1;"), "\(repair.diagnostics)")
        let (_, summary) = try box.backup([box.path("src")])
        #expect(jsonInt(summary["blobsAdded"]) == 1, "exactly the damaged blob is stored again: \(summary)")

        let clean = try box.ok(["check", "--repo", box.repo, "--read-data"])
        #expect(clean.out.hasSuffix("no errors were found\n"), "\(clean.diagnostics)")
        try box.ok(["prune", "--repo", box.repo])
        try box.ok(["check", "--repo", box.repo, "--read-data"])
        try expectRestoresBitExact(box, source)
    }

    @Test func repairIndexReportsInJSONAndOnACleanRepositoryChangesNoPack() throws {
        let (box, _) = try makeRepository()
        let packsBefore = box.repositoryFiles().filter { $0.key.hasPrefix("data/") }
        let r = try box.ok(["repair", "index", "--repo", box.repo, "--json", "--read-all-packs"])
        let report = try #require(try r.jsonLines().first as? [String: Any], "\(r.diagnostics)")
        #expect(jsonInt(report["packsIndexed"]) == packsBefore.count && jsonInt(report["packsMissing"]) == 0 && jsonInt(report["packsDamaged"]) == 0)
        #expect(box.repositoryFiles().filter { $0.key.hasPrefix("data/") } == packsBefore)
        try box.ok(["check", "--repo", box.repo, "--read-data"])
    }
}
