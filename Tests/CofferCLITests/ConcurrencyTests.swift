import Foundation
import Glibc
import Testing

@Suite struct ConcurrencyTests {
    @Test func twoBackupsAtOnceBothSucceedAndBothRestore() throws {
        let box = try Sandbox()
        try box.initRepository()
        for name in ["a", "b"] {
            try FS.mkdir(raw(box.path(name)))
            for i in 0..<3 { try FS.writeFile(box.path("\(name)/f\(i)"), try FS.randomBytes(700_000)) }
        }
        let first = try box.start(["backup", "--repo", box.repo, "--quiet", box.path("a")])
        let second = try box.start(["backup", "--repo", box.repo, "--quiet", box.path("b")])
        let r1 = try first.wait(timeout: 120), r2 = try second.wait(timeout: 120)
        #expect(r1.succeeded, "\(r1.diagnostics)")
        #expect(r2.succeeded, "\(r2.diagnostics)")
        let snaps = try box.snapshotsJSON()
        #expect(snaps.count == 2)
        for s in snaps {
            let id = try #require(s["id"] as? String)
            let path = try #require((s["paths"] as? [String])?.first)
            let name = (path as NSString).lastPathComponent
            let target = box.path("out-\(name)")
            try box.ok(["restore", "--repo", box.repo, id, "--target", target, "--quiet"])
            for i in 0..<3 { #expect(try FS.readFile(target + "/\(name)/f\(i)") == FS.readFile(box.path("\(name)/f\(i)"))) }
        }
        #expect(box.repositoryFiles().keys.filter { $0.hasPrefix("locks/") }.isEmpty, "both released their locks")
    }

    @Test func pruneRefusesWhileABackupHoldsItsLockAndSaysWhy() throws {
        let box = try Sandbox()
        try box.initRepository()
        try FS.mkdir(raw(box.path("src")))
        // Enough data that the debug build is still busy when prune starts.
        for i in 0..<6 { try FS.writeFile(box.path("src/f\(i)"), try FS.randomBytes(2_000_000)) }
        let backup = try box.start(["backup", "--repo", box.repo, "--json", box.path("src")])
        // Wait until the backup is past its lock (it reports progress only after locking).
        let started = backup.waitForStdout(timeout: 60) { $0.contains("\"messageType\":\"status\"") }
        try #require(started, "the backup finished or stalled before reporting progress")
        let prune = try box.coffer(["prune", "--repo", box.repo])
        let stillRunning = backup.process.isRunning
        let done = try backup.wait(timeout: 120)
        #expect(done.succeeded, "\(done.diagnostics)")
        try #require(stillRunning, "the backup finished before prune tried its lock; use more data")
        #expect(prune.status == 11, "\(prune.diagnostics)")
        #expect(prune.err.contains("locked") && prune.err.contains("shared lock"), "\(prune.err)")
        // Once the backup is done, prune runs.
        try box.ok(["prune", "--repo", box.repo])
    }

    @Test func unlockRemovesTheLockAKilledBackupLeft() throws {
        let box = try Sandbox()
        try box.initRepository()
        try FS.mkdir(raw(box.path("src")))
        try FS.writeFile(box.path("src/f"), "x")
        // A process that is killed leaves its lock behind; on this host it is recognised as gone.
        for i in 0..<4 { try FS.writeFile(box.path("src/big\(i)"), try FS.randomBytes(2_000_000)) }
        let backup = try box.start(["backup", "--repo", box.repo, "--json", box.path("src")])
        _ = backup.waitForStdout(timeout: 60) { $0.contains("\"messageType\":\"status\"") }
        kill(backup.process.processIdentifier, SIGKILL)
        _ = try backup.wait(timeout: 60)
        let leftover = box.repositoryFiles().keys.filter { $0.hasPrefix("locks/") }
        #expect(leftover.count == 1, "a killed backup leaves its lock: \(leftover)")
        let unlock = try box.ok(["unlock", "--repo", box.repo])
        #expect(unlock.out.contains("removed 1"), "\(unlock.out)")
        #expect(box.repositoryFiles().keys.filter { $0.hasPrefix("locks/") }.isEmpty)
    }
}
