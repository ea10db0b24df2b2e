import Foundation
import Glibc
import Testing

/// A backup stopped (SIGSTOP, like a laptop's suspend) past the lock's stale time while another
/// process forgets and prunes: when it resumes, its lock is lost for good, and the repository
/// must not end up with an index or snapshot naming deleted data. The children's clocks are
/// moved by the debug-build test hook COFFER_TEST_CLOCK_OFFSET_FILE (LockClock.system).
@Suite(.serialized) struct LockLapseTests {
    /// Data packs in the repository (64-hex names under data/, not temporary files).
    static func packs(_ box: Sandbox) -> Set<String> {
        Set(box.repositoryFiles().keys.filter { $0.hasPrefix("data/") && !$0.contains(".tmp") })
    }

    /// Every snapshot in `expected` restores to exactly its files, and the repository checks clean.
    static func expectIntact(_ box: Sandbox, _ expected: [String: (dir: String, files: [String: [UInt8]])], env: [String: String]) throws {
        let check = try box.coffer(["check", "--repo", box.repo, "--read-data"], env: env)
        #expect(check.succeeded, "\(check.diagnostics)")
        let ids = Set(try box.snapshotsJSON().compactMap { $0["id"] as? String })
        #expect(ids == Set(expected.keys), "snapshots: \(ids.sorted()) expected \(expected.keys.sorted())")
        for (id, want) in expected {
            let target = box.path("restore-\(id.prefix(8))")
            let r = try box.coffer(["restore", "--repo", box.repo, id, "--target", target, "--quiet"], env: env)
            #expect(r.succeeded, "restore \(id.prefix(8)): \(r.diagnostics)")
            for (name, bytes) in want.files {
                let got = try? FS.readFile(target + "/" + want.dir + "/" + name)
                #expect(got == bytes, "\(want.dir)/\(name) of snapshot \(id.prefix(8)) does not restore bit-exact")
            }
            try? FileManager.default.removeItem(atPath: target)
        }
    }

    @Test func aBackupStoppedPastTheStaleTimeStopsAndEverySnapshotStaysIntact() throws {
        let box = try Sandbox()
        try box.initRepository()
        let offsetFile = box.path("clock-offset")
        try FS.writeFile(offsetFile, "0")
        let env = ["COFFER_PASSWORD": box.password, "COFFER_TEST_CLOCK_OFFSET_FILE": offsetFile]

        // Snapshot A (to be forgotten) and B (kept). A file of A is also in the big backup, so
        // that backup dedups against data the prune deletes.
        let shared = try FS.randomBytes(3_000_000)
        var sources: [String: [String: [UInt8]]] = [
            "a": ["shared.bin": shared, "a.bin": try FS.randomBytes(1_000_000)],
            "b": ["b.bin": try FS.randomBytes(1_000_000)],
            "big": ["shared.bin": shared],
        ]
        for i in 0..<8 { sources["big"]!["part\(i).bin"] = try FS.randomBytes(12_000_000) }
        for (dir, files) in sources {
            try FS.mkdir(box.path(dir))
            for (name, bytes) in files { try FS.writeFile(box.path(dir + "/" + name), bytes) }
        }
        func backupID(_ dir: String) throws -> String {
            let r = try box.ok(["backup", "--repo", box.repo, "--json", box.path(dir)], env: env)
            return try #require(try r.summary()["snapshotID"] as? String, "\(r.out)")
        }
        let a = try backupID("a")
        let b = try backupID("b")
        let packsBefore = Self.packs(box)

        // The big backup: stopped as soon as it has stored a pack of its own.
        let running = try box.start(["backup", "--repo", box.repo, "--json", box.path("big")], env: env)
        var stopped = false
        let deadline = Date().addingTimeInterval(120)
        while running.process.isRunning && Date() < deadline {
            if !Self.packs(box).subtracting(packsBefore).isEmpty {
                kill(running.process.processIdentifier, SIGSTOP)
                stopped = true
                break
            }
            usleep(2_000)
        }
        try #require(stopped, "the backup finished before it could be stopped; give it more data")
        let uploadedBeforeStop = Self.packs(box).subtracting(packsBefore)

        // 40 minutes later by every clock: the stopped backup's lock is stale to others.
        try FS.writeFile(offsetFile, "2400")
        let forget = try box.coffer(["forget", "--repo", box.repo, a], env: env)
        let prune = try box.coffer(["prune", "--repo", box.repo], env: env)
        kill(running.process.processIdentifier, SIGCONT)
        let resumed = try running.wait(timeout: 300)
        #expect(forget.succeeded, "\(forget.diagnostics)")
        #expect(prune.succeeded, "\(prune.diagnostics)")
        // The test is only worth something if prune really deleted what the backup had stored.
        #expect(Self.packs(box).isDisjoint(with: uploadedBeforeStop), "prune did not delete the stopped backup's packs")

        var expected: [String: (dir: String, files: [String: [UInt8]])] = [b: ("b", sources["b"]!)]
        if resumed.succeeded {
            // Allowed only if its snapshot is whole (checked below with every other).
            let id = try #require(try resumed.summary()["snapshotID"] as? String)
            expected[id] = ("big", sources["big"]!)
        } else {
            #expect(resumed.exitedNormally && resumed.status == 11, "a lost lock exits as restic's locked does: \(resumed.diagnostics)")
            #expect(resumed.err.contains("lock was lost"), "\(resumed.diagnostics)")
            #expect(resumed.err.contains("stopped before writing"), "\(resumed.diagnostics)")
        }
        try Self.expectIntact(box, expected, env: env)
        #expect(!box.repositoryFiles().keys.contains { $0.hasPrefix("locks/") }, "every process released its lock")

        // Run again, the backup completes and restores.
        let again = try backupID("big")
        expected[again] = ("big", sources["big"]!)
        try Self.expectIntact(box, expected, env: env)
    }
}
