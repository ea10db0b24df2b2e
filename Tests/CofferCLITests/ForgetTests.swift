import Foundation
import Glibc
import Testing

/// End-to-end: `coffer forget` with the real binary.
@Suite("coffer forget, end to end")
struct ForgetTests {
    /// Four backups of a changing tree; returns the snapshot ids (oldest first) and the tree each
    /// one must restore to.
    func makeSnapshots(_ box: Sandbox, count: Int = 4) throws -> (ids: [String], trees: [[RawName: EntryInfo]]) {
        let src = box.path("src")
        try FS.mkdir(src)
        var ids: [String] = []
        var trees: [[RawName: EntryInfo]] = []
        for i in 0..<count {
            // New random data in every version, so forgetting versions leaves data to prune.
            try FS.writeFile(src + "/data.bin", Array("version \(i)\n".utf8) + FS.randomBytes(300_000))
            try FS.writeFile(src + "/note-\(i).txt", "note \(i)\n")
            trees.append(try scanTree(raw(src)))
            let (_, summary) = try box.backup([src])
            ids.append(try #require(summary["snapshotID"] as? String))
        }
        return (ids, trees)
    }

    func expectRestores(_ box: Sandbox, _ id: String, to tree: [RawName: EntryInfo], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let target = box.path("restore-\(id.prefix(8))-\(UUID().uuidString.prefix(6))")
        try box.ok(["restore", "--repo", box.repo, id, "--target", target, "--quiet"], sourceLocation: sourceLocation)
        expectSameTree(tree, try scanTree(raw(target + "/src")), sourceLocation: sourceLocation)
    }

    func snapshotIDs(_ box: Sandbox) throws -> [String] {
        try box.snapshotsJSON().map { try #require($0["id"] as? String) }
    }

    @Test func keepLastDryRunChangesNothingThenForgetsAndTheRestStillRestores() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (ids, trees) = try makeSnapshots(box)
        #expect(try snapshotIDs(box) == ids)
        let filesBefore = box.repositoryFiles()

        // Dry run, as text and as JSON: the plan is shown, nothing changes.
        let text = try box.ok(["forget", "--repo", box.repo, "--keep-last", "2", "--dry-run"])
        #expect(text.out.contains("keep 2 snapshots"), "\(text.out)")
        #expect(text.out.contains("remove 2 snapshots"), "\(text.out)")
        #expect(text.out.contains("would remove 2 snapshots"), "\(text.out)")
        for id in ids { #expect(text.out.contains(String(id.prefix(8))), "\(id.prefix(8)) not listed: \(text.out)") }

        let json = try box.ok(["forget", "--repo", box.repo, "--keep-last", "2", "--dry-run", "--json"])
        let lines = try json.jsonLines()
        try #require(lines.count == 1, "forget --json prints one document: \(json.out)")
        let doc = try #require(lines[0] as? [String: Any])
        #expect(doc["dryRun"] as? Bool == true)
        let groups = try #require(doc["groups"] as? [[String: Any]])
        try #require(groups.count == 1, "one host+paths group: \(json.out)")
        let keep = try #require(groups[0]["keep"] as? [[String: Any]])
        let remove = try #require(groups[0]["remove"] as? [[String: Any]])
        #expect(keep.compactMap { $0["id"] as? String } == Array(ids[2...]))
        #expect(keep.map { $0["reasons"] as? [String] ?? [] } == [["last snapshot"], ["last snapshot"]])
        #expect(remove.compactMap { $0["id"] as? String } == Array(ids[..<2]))
        #expect(keep.allSatisfy { $0["time"] is String })
        #expect(groups[0]["host"] is String)
        #expect(groups[0]["paths"] as? [String] == [box.path("src")])

        #expect(box.repositoryFiles() == filesBefore, "a dry run changed the repository")
        #expect(try snapshotIDs(box) == ids)

        // The real thing: exactly two snapshot objects go, nothing else changes.
        let real = try box.ok(["forget", "--repo", box.repo, "--keep-last", "2"])
        #expect(real.out.contains("removed 2 snapshots"), "\(real.out)")
        #expect(try snapshotIDs(box) == Array(ids[2...]))
        let filesAfter = box.repositoryFiles()
        let gone = Set(filesBefore.keys).subtracting(filesAfter.keys)
        #expect(gone == Set(ids[..<2].map { "snapshots/\($0)" }), "forget deleted \(gone.sorted())")
        #expect(Set(filesAfter.keys).isSubset(of: filesBefore.keys), "forget wrote \(Set(filesAfter.keys).subtracting(filesBefore.keys).sorted())")

        for i in 2..<4 { try expectRestores(box, ids[i], to: trees[i]) }

        // Forgetting again with the same policy has nothing left to do.
        let again = try box.ok(["forget", "--repo", box.repo, "--keep-last", "2"])
        #expect(again.out.contains("nothing to forget"), "\(again.out)")
        #expect(try snapshotIDs(box) == Array(ids[2...]))
    }

    @Test func explicitIDsAreForgottenDirectly() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (ids, trees) = try makeSnapshots(box, count: 3)

        // A unique prefix of one id, a full id and `latest` would all do; take a prefix.
        let dry = try box.ok(["forget", "--repo", box.repo, String(ids[1].prefix(10)), "--dry-run"])
        #expect(dry.out.contains("would remove snapshot \(ids[1].prefix(8))"), "\(dry.out)")
        #expect(try snapshotIDs(box) == ids)

        let r = try box.ok(["forget", "--repo", box.repo, String(ids[1].prefix(10)), ids[0], "--json"])
        let doc = try #require(try r.jsonLines().first as? [String: Any])
        let removedIDs = (doc["removed"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
        #expect(removedIDs == [ids[1], ids[0]])
        #expect(try snapshotIDs(box) == [ids[2]])
        try expectRestores(box, ids[2], to: trees[2])

        // An id that does not exist: an error, and nothing is deleted.
        let missing = try box.coffer(["forget", "--repo", box.repo, "ffffffffff"])
        #expect(missing.exitedNormally && missing.status == 1, "\(missing.diagnostics)")
        #expect(missing.err.contains("no snapshot matches"), "\(missing.err)")
        #expect(try snapshotIDs(box) == [ids[2]])
    }

    @Test func refusesAnEmptyPolicyAndMixingIDsWithAPolicy() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (ids, _) = try makeSnapshots(box, count: 2)
        let filesBefore = box.repositoryFiles()

        let empty = try box.coffer(["forget", "--repo", box.repo])
        #expect(empty.exitedNormally && empty.status == 1, "\(empty.diagnostics)")
        #expect(empty.err.contains("no policy given"), "\(empty.err)")

        let zero = try box.coffer(["forget", "--repo", box.repo, "--keep-last", "0"])
        #expect(zero.exitedNormally && zero.status == 1, "keep-last 0 is an empty policy: \(zero.diagnostics)")

        let both = try box.coffer(["forget", "--repo", box.repo, "--keep-last", "1", ids[0]])
        #expect(both.exitedNormally && both.status == 1, "\(both.diagnostics)")
        #expect(both.err.contains("not both"), "\(both.err)")

        let negative = try box.coffer(["forget", "--repo", box.repo, "--keep-daily", "-2"])
        #expect(negative.exitedNormally && negative.status != 0, "\(negative.diagnostics)")

        // A tag no snapshot has would forget the whole group: refused.
        let typo = try box.coffer(["forget", "--repo", box.repo, "--keep-tag", "no-such-tag"])
        #expect(typo.exitedNormally && typo.status == 1, "\(typo.diagnostics)")
        #expect(typo.err.contains("refusing"), "\(typo.err)")

        #expect(box.repositoryFiles() == filesBefore)
    }

    @Test func unlimitedAndKeepWithinKeepEverythingRecent() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (ids, _) = try makeSnapshots(box, count: 2)
        // -1 is accepted as a separate argument (restic's spelling for unlimited).
        let r = try box.ok(["forget", "--repo", box.repo, "--keep-last", "-1", "--keep-within", "1d", "--json"])
        let doc = try #require(try r.jsonLines().first as? [String: Any])
        #expect((doc["removed"] as? [Any])?.isEmpty == true, "\(r.out)")
        #expect(try snapshotIDs(box) == ids)
    }

    @Test func pruneAfterForgetFreesTheForgottenData() throws {
        let box = try Sandbox()
        try box.initRepository()
        let (ids, trees) = try makeSnapshots(box, count: 3)
        let bytesBefore = box.repositoryFiles().filter { $0.key.hasPrefix("data/") }.values.reduce(0, +)

        let r = try box.ok(["forget", "--repo", box.repo, "--keep-last", "1", "--prune", "--json"])
        let doc = try #require(try r.jsonLines().first as? [String: Any])
        let prune = try #require(doc["prune"] as? [String: Any], "no prune report in \(r.out)")
        #expect(prune["dryRun"] as? Bool == false)
        #expect(try snapshotIDs(box) == [ids[2]])
        let bytesAfter = box.repositoryFiles().filter { $0.key.hasPrefix("data/") }.values.reduce(0, +)
        // Two of three versions of 300 kB of random data were only in the forgotten snapshots.
        #expect(bytesAfter + 500_000 < bytesBefore, "data before \(bytesBefore), after \(bytesAfter)")
        try expectRestores(box, ids[2], to: trees[2])
        #expect(box.repositoryFiles().keys.allSatisfy { !$0.hasPrefix("locks/") }, "a lock was left behind")
    }
}
