import Foundation
import Glibc
import Testing

/// End-to-end: `coffer check` finds damage to every kind of object, names it and exits 1; a
/// clean repository (unreferenced packs included) exits 0.
@Suite("coffer check, end to end")
struct CheckCommandTests {
    /// One stored object of the repository.
    struct Object {
        let rel: String
        let id: String
        let size: Int
        let mtimeNanos: Int
        var path: String
    }

    /// A repository with two snapshots: the second adds a file, so there are at least two data
    /// packs (each backup writes its own) and one small tree pack per backup. Only random
    /// files of 1.5 MiB: every data pack is far larger than a tree pack.
    func makeRepository() throws -> (box: Sandbox, snapshots: [String]) {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/a.bin", try FS.randomBytes(3 << 19))
        let first = try #require(try box.backup([src]).summary["snapshotID"] as? String)
        try FS.writeFile(src + "/b.bin", try FS.randomBytes(3 << 19))
        let second = try #require(try box.backup([src]).summary["snapshotID"] as? String)
        return (box, [first, second])
    }

    func objects(_ box: Sandbox, _ folder: String) throws -> [Object] {
        try box.repositoryFiles().filter { $0.key.hasPrefix(folder + "/") }.map { rel, size in
            let path = box.repo + "/" + rel
            let st = try FS.lstatRaw(raw(path))
            return Object(rel: rel, id: (rel as NSString).lastPathComponent, size: size,
                          mtimeNanos: st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec, path: path)
        }.sorted { ($0.size, $0.id) < ($1.size, $1.id) }
    }

    /// Packs, smallest first: the tree packs (tiny), then the data packs.
    func packs(_ box: Sandbox) throws -> (trees: [Object], data: [Object]) {
        let all = try objects(box, "data")
        // A tree pack holds a few hundred bytes, padded to the smallest partial-pack length
        // (64 KiB, FORMAT.md §7.2); a data pack holds at least one 256 KiB chunk.
        return (all.filter { $0.size <= 64 << 10 }, all.filter { $0.size > 64 << 10 })
    }

    func check(_ box: Sandbox, _ extra: [String] = []) throws -> RunResult {
        try box.coffer(["check", "--repo", box.repo] + extra)
    }

    func expectErrors(_ r: RunResult, naming names: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.exitedNormally && r.status == 1, "\(r.diagnostics)", sourceLocation: sourceLocation)
        for name in names {
            #expect(r.err.contains(name), "stderr does not name \(name): \(r.diagnostics)", sourceLocation: sourceLocation)
        }
        #expect(r.out.split(separator: "\n").last.map { $0.hasSuffix(" found") && !$0.hasPrefix("no ") } == true,
                "the last line should count the errors: \(r.diagnostics)", sourceLocation: sourceLocation)
    }

    func expectClean(_ r: RunResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.succeeded, "\(r.diagnostics)", sourceLocation: sourceLocation)
        #expect(r.out.split(separator: "\n").last == "no errors were found", "\(r.diagnostics)", sourceLocation: sourceLocation)
    }

    func flip(_ path: String, at offset: Int) throws { try FS.flipByte(path, at: offset) }

    func checkJSON(_ box: Sandbox, _ extra: [String] = []) throws -> (result: RunResult, report: [String: Any]) {
        let r = try check(box, ["--json"] + extra)
        let lines = try r.jsonLines()
        try #require(lines.count == 1, "check --json prints one line: \(r.diagnostics)")
        return (r, try #require(lines[0] as? [String: Any], "\(r.diagnostics)"))
    }

    func problems(_ report: [String: Any]) -> [[String: Any]] { report["problems"] as? [[String: Any]] ?? [] }

    // MARK: Clean

    @Test func aCleanRepositoryChecksCleanWithAndWithoutReadingData() throws {
        let (box, snapshots) = try makeRepository()
        let plain = try check(box)
        expectClean(plain)
        #expect(plain.err.isEmpty, "\(plain.diagnostics)")
        #expect(plain.out.contains("2 snapshots"), "\(plain.diagnostics)")
        let full = try check(box, ["--read-data"])
        expectClean(full)
        let packs = try objects(box, "data").count
        #expect(full.out.contains("read all data: \(packs) packs"), "\(full.diagnostics)")

        let (jr, report) = try checkJSON(box, ["--read-data"])
        #expect(jr.succeeded, "\(jr.diagnostics)")
        #expect(report["ok"] as? Bool == true)
        #expect(jsonInt(report["errors"]) == 0 && jsonInt(report["warnings"]) == 0)
        #expect(jsonInt(report["snapshots"]) == snapshots.count)
        #expect(jsonInt(report["indexObjects"]) == 2)
        #expect(jsonInt(report["packs"]) == packs && jsonInt(report["packsRead"]) == packs)
        #expect(jsonInt(report["trees"]) == 4)
        let packBytes = try objects(box, "data").reduce(0) { $0 + $1.size }
        #expect((jsonInt(report["bytesRead"]) ?? 0) >= packBytes)
        #expect(problems(report).isEmpty)
    }

    @Test func packsLeftByAnInterruptedBackupAreWarningsNotErrors() throws {
        let (box, snapshots) = try makeRepository()
        // What a backup interrupted after writing its packs leaves: the second backup's packs
        // without the index object and snapshot that would name them.
        let newestIndex = try #require(try objects(box, "index").max { $0.mtimeNanos < $1.mtimeNanos })
        try FileManager.default.removeItem(atPath: newestIndex.path)
        try FileManager.default.removeItem(atPath: box.repo + "/snapshots/" + snapshots[1])
        for extra in [[], ["--read-data"]] {
            let r = try check(box, extra)
            expectClean(r)
            #expect(r.err.contains("warning: pack "), "\(r.diagnostics)")
            #expect(r.err.contains("not in any index"), "\(r.diagnostics)")
            #expect(r.out.contains("packs are in no index"), "\(r.diagnostics)")
        }
        let (_, report) = try checkJSON(box)
        #expect(report["ok"] as? Bool == true)
        #expect((jsonInt(report["warnings"]) ?? 0) >= 2, "a data pack and a tree pack")
        #expect(problems(report).allSatisfy { $0["severity"] as? String == "warning" && $0["kind"] as? String == "unreferenced" })
    }

    @Test func aDeletedSnapshotIsNotAnError() throws {
        let (box, snapshots) = try makeRepository()
        try FileManager.default.removeItem(atPath: box.repo + "/snapshots/" + snapshots[0])
        let r = try check(box, ["--read-data"])
        expectClean(r)
        #expect(r.err.isEmpty, "\(r.diagnostics)")
        #expect(r.out.contains("1 snapshots"), "\(r.diagnostics)")
    }

    // MARK: Packs

    @Test func aFlippedByteInsideAPackIsFoundByReadData() throws {
        let (box, _) = try makeRepository()
        let pack = try #require(try packs(box).data.last)
        try flip(pack.path, at: pack.size / 3)
        // The structure is intact: the plain check cannot see a damaged blob body.
        expectClean(try check(box))
        let r = try check(box, ["--read-data"])
        expectErrors(r, naming: ["pack \(pack.id.prefix(8)): data blob "])
        #expect(r.err.contains("seal does not verify"), "\(r.diagnostics)")

        let (_, report) = try checkJSON(box, ["--read-data"])
        #expect(report["ok"] as? Bool == false)
        let p = try #require(problems(report).first)
        #expect(p["object"] as? String == "blob" && p["blobType"] as? String == "data")
        #expect(p["pack"] as? String == pack.id)
        #expect(p["kind"] as? String == "damaged" && p["severity"] as? String == "error")
    }

    @Test(arguments: ["header", "trailer"])
    func aFlippedByteInAPackHeaderOrTrailerIsFoundByThePlainCheck(_ part: String) throws {
        let (box, _) = try makeRepository()
        let pack = try #require(try packs(box).data.last)
        try flip(pack.path, at: part == "header" ? pack.size - 45 - 20 : pack.size - 5)
        for extra in [[], ["--read-data"]] {
            let r = try check(box, extra)
            expectErrors(r, naming: ["pack \(pack.id.prefix(8)): ", part])
            #expect(r.out.hasSuffix("1 error found\n"), "\(r.diagnostics)")
        }
    }

    @Test func aTruncatedPackIsFound() throws {
        let (box, _) = try makeRepository()
        let pack = try #require(try packs(box).data.last)
        #expect(truncate(pack.path, off_t(pack.size / 2)) == 0)
        expectErrors(try check(box), naming: ["pack \(pack.id.prefix(8)): size \(pack.size / 2) bytes, the index says \(pack.size)"])
        expectErrors(try check(box, ["--read-data"]), naming: ["beyond the pack's end"])
    }

    @Test func aDeletedPackIsFound() throws {
        let (box, _) = try makeRepository()
        let pack = try #require(try packs(box).data.first)
        try FileManager.default.removeItem(atPath: pack.path)
        let r = try check(box)
        expectErrors(r, naming: ["pack \(pack.id.prefix(8)): missing (named by index "])
        let (_, report) = try checkJSON(box)
        let p = try #require(problems(report).first { $0["id"] as? String == pack.id })
        #expect(p["object"] as? String == "pack" && p["kind"] as? String == "missing")
    }

    @Test func swappedPacksAreFound() throws {
        let (box, _) = try makeRepository()
        let data = try packs(box).data
        try #require(data.count >= 2, "each backup writes its own data pack")
        let (a, b) = (data[0], data[1])
        let (ba, bb) = (try FS.readFile(a.path), try FS.readFile(b.path))
        try FS.writeFile(a.path, bb, mode: 0o600)
        try FS.writeFile(b.path, ba, mode: 0o600)
        for extra in [[], ["--read-data"]] {
            expectErrors(try check(box, extra), naming: ["pack \(a.id.prefix(8)): trailer does not open", "pack \(b.id.prefix(8)): trailer does not open"])
        }
    }

    @Test func aPackRenamedOverAnotherIsFound() throws {
        let (box, _) = try makeRepository()
        let data = try packs(box).data
        try #require(data.count >= 2)
        let (a, b) = (data[0], data[1])
        #expect(rename(b.path, a.path) == 0)
        expectErrors(try check(box), naming: ["pack \(a.id.prefix(8)): trailer does not open", "pack \(b.id.prefix(8)): missing"])
    }

    @Test func aDamagedTreeBlobIsNamedWithItsSnapshot() throws {
        let (box, snapshots) = try makeRepository()
        // The first tree pack's first blob is one of a snapshot's trees.
        let pack = try #require(try packs(box).trees.first)
        try flip(pack.path, at: 40)
        let r = try check(box)
        expectErrors(r, naming: ["pack \(pack.id.prefix(8)): tree blob ", "used by snapshot "])
        #expect(snapshots.contains { r.err.contains("used by snapshot \($0.prefix(8)) at /") }, "\(r.diagnostics)")
    }

    // MARK: Index

    @Test func aFlippedByteInAnIndexObjectIsNamed() throws {
        let (box, _) = try makeRepository()
        let index = try #require(try objects(box, "index").first)
        try flip(index.path, at: index.size / 2)
        let r = try check(box)
        expectErrors(r, naming: ["\(index.rel): seal does not verify"])
        // Its packs are now in no index, and a snapshot misses its trees.
        #expect(r.err.contains("not in any index (used by snapshot "), "\(r.diagnostics)")
    }

    @Test func aDeletedIndexObjectLeavesItsSnapshotsBlobsMissing() throws {
        let (box, snapshots) = try makeRepository()
        let newest = try #require(try objects(box, "index").max { $0.mtimeNanos < $1.mtimeNanos })
        try FileManager.default.removeItem(atPath: newest.path)
        let r = try check(box)
        // The second snapshot's root tree was in it; the first snapshot is untouched.
        expectErrors(r, naming: ["tree blob ", "not in any index (used by snapshot \(snapshots[1].prefix(8)) at /)"])
        #expect(!r.err.contains("snapshot \(snapshots[0].prefix(8))"), "\(r.diagnostics)")
    }

    // MARK: Snapshots

    @Test(arguments: ["flip", "truncate"])
    func aDamagedSnapshotObjectIsNamed(_ how: String) throws {
        let (box, snapshots) = try makeRepository()
        let path = box.repo + "/snapshots/" + snapshots[0]
        let size = try FS.readFile(path).count
        if how == "flip" { try flip(path, at: size / 2) } else { #expect(truncate(path, off_t(size - 3)) == 0) }
        let r = try check(box)
        expectErrors(r, naming: ["snapshots/\(snapshots[0]): seal does not verify"])
        #expect(r.out.hasSuffix("1 error found\n"), "\(r.diagnostics)")
    }

    // MARK: Garbage

    @Test func garbageObjectsAreNamedAndNeverCrashTheCheck() throws {
        let (box, _) = try makeRepository()
        var names: [String] = []
        for (folder, length) in [("index", 0), ("index", 97), ("index", 5000), ("snapshots", 1), ("snapshots", 300), ("data", 10), ("data", 45), ("data", 70_000), ("keys", 90)] {
            let id = Hex.encode(try FS.randomBytes(32))
            let rel = folder == "data" ? "data/\(id.prefix(2))/\(id)" : "\(folder)/\(id)"
            try FS.writeFile(box.repo + "/" + rel, try FS.randomBytes(length), mode: 0o600)
            names.append(folder == "data" ? "pack \(id.prefix(8))" : rel)
        }
        for extra in [[], ["--read-data"], ["--json"]] {
            let r = try check(box, extra)
            #expect(r.exitedNormally && r.status == 1, "\(r.diagnostics)")
            if extra == ["--json"] {
                let report = try #require(try r.jsonLines().first as? [String: Any])
                #expect(jsonInt(report["errors"]) == 6, "6 garbage key slot, index and snapshot objects: \(r.out)")
                #expect(jsonInt(report["warnings"]) == 3, "3 garbage packs, in no index: \(r.out)")
            } else {
                for name in names { #expect(r.err.contains(name), "\(name) not named: \(r.diagnostics)") }
                #expect(r.out.hasSuffix("6 errors found\n"), "\(r.diagnostics)")
            }
        }
    }

    // MARK: Options and output

    @Test func readDataSubsetsCoverEveryPackOnceAndBadOnesAreRefused() throws {
        let (box, _) = try makeRepository()
        let total = try objects(box, "data").count
        var read = 0
        for part in ["1/3", "2/3", "3/3"] {
            let (r, report) = try checkJSON(box, ["--read-data-subset", part])
            #expect(r.succeeded, "\(r.diagnostics)")
            #expect(report["readDataSubset"] as? String == part)
            read += jsonInt(report["packsRead"]) ?? 0
        }
        #expect(read == total)
        let (some, report) = try checkJSON(box, ["--read-data-subset", "10%"])
        #expect(some.succeeded)
        #expect(jsonInt(report["packsRead"]) == max(1, Int((Double(total) * 0.1).rounded())))
        let text = try check(box, ["--read-data-subset", "1/2"])
        expectClean(text)
        #expect(text.out.contains("read subset 1/2: "), "\(text.diagnostics)")

        for bad in ["0/3", "4/3", "x", "0%", "150%"] {
            let r = try check(box, ["--read-data-subset", bad])
            #expect(r.exitedNormally && r.status == 64, "\(bad): \(r.diagnostics)")
            #expect(r.err.contains("--read-data-subset"), "\(bad): \(r.diagnostics)")
        }
    }

    @Test func quietPrintsOnlyErrors() throws {
        let (box, _) = try makeRepository()
        expectCleanQuiet(try check(box, ["--quiet"]))
        let pack = try #require(try packs(box).data.last)
        try flip(pack.path, at: pack.size - 5)
        let r = try check(box, ["--quiet"])
        #expect(r.exitedNormally && r.status == 1, "\(r.diagnostics)")
        #expect(r.out.isEmpty, "\(r.diagnostics)")
        #expect(r.err.contains("pack \(pack.id.prefix(8)): trailer does not open"), "\(r.diagnostics)")
        #expect(r.err.contains("1 error found"), "\(r.diagnostics)")
    }

    func expectCleanQuiet(_ r: RunResult) {
        #expect(r.succeeded && r.out.isEmpty && r.err.isEmpty, "\(r.diagnostics)")
    }

    @Test func wrongPasswordAndMissingRepositoryKeepTheirExitCodes() throws {
        let (box, _) = try makeRepository()
        let wrong = try box.coffer(["check", "--repo", box.repo], env: ["COFFER_PASSWORD": "nope"])
        #expect(wrong.exitedNormally && wrong.status == 12, "\(wrong.diagnostics)")
        let missing = try box.coffer(["check", "--repo", box.path("nowhere")])
        #expect(missing.exitedNormally && missing.status == 10, "\(missing.diagnostics)")
    }
}

private enum Hex {
    static func encode(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}
