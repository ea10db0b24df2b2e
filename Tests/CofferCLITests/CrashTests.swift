import Foundation
import Glibc
import Testing

/// SplitMix64: a small seeded generator so a failing crash schedule can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `kill -9` of backup and prune at random moments. After every kill the repository must check
/// clean and every snapshot completed so far must restore bit-exact. CI runs a handful of
/// points; `COFFER_LONG_TESTS=1` runs 60. `COFFER_CRASH_SEED` replays a schedule.
@Suite(.serialized) struct CrashTests {
    static var long: Bool { ProcessInfo.processInfo.environment["COFFER_LONG_TESTS"] != nil }

    @Test func killedBackupsAndPrunesLeaveACleanRestorableRepository() throws {
        let seed = ProcessInfo.processInfo.environment["COFFER_CRASH_SEED"].flatMap { UInt64($0) } ?? 20_261_129
        var rng = SplitMix64(state: seed)
        let points = Self.long ? 60 : 6
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(raw(src))
        var fileNumber = 0
        /// Snapshot id → the source tree it must restore to.
        var expected: [String: [RawName: EntryInfo]] = [:]
        var killed = 0
        // How long each kind of run takes when left alone; kills are drawn from before that.
        var typicalMicros: [String: UInt32] = ["backup": 300_000, "prune": 150_000]

        for point in 0..<points {
            // Change the source a little: a new file, sometimes a rewrite or a removal.
            fileNumber += 1
            try FS.writeFile(src + "/file-\(fileNumber).bin", try FS.randomBytes(Int.random(in: 200_000...1_500_000, using: &rng)))
            if fileNumber > 3 && Bool.random(using: &rng) {
                try FS.writeFile(src + "/file-\(Int.random(in: 1..<fileNumber, using: &rng)).bin", try FS.randomBytes(300_000))
            }
            let state = try scanTree(raw(src))
            let before = Set(try box.snapshotsJSON().compactMap { $0["id"] as? String })

            let pruning = point % 3 == 2 && before.count > 1
            if pruning, let victim = before.sorted().first {
                // What `forget` does: delete the snapshot object. Prune is then killed.
                try FileManager.default.removeItem(atPath: box.repo + "/snapshots/" + victim)
                expected[victim] = nil
            }
            let args = pruning ? ["prune", "--repo", box.repo] : ["backup", "--repo", box.repo, "--quiet", src]
            let started = Date()
            let running = try box.start(args)
            usleep(UInt32.random(in: 0...(typicalMicros[args[0]]! * 9 / 10), using: &rng))
            if running.process.isRunning {
                kill(running.process.processIdentifier, SIGKILL)
                killed += 1
            }
            let result = try running.wait(timeout: 120)
            if result.succeeded { typicalMicros[args[0]] = UInt32(min(Date().timeIntervalSince(started), 30) * 1e6) }
            #expect(result.reason == .uncaughtSignal || result.succeeded, "point \(point): \(result.diagnostics)")

            // Any snapshot that appeared belongs to the state just scanned.
            for id in Set(try box.snapshotsJSON().compactMap { $0["id"] as? String }).subtracting(before) { expected[id] = state }

            let check = try box.coffer(["check", "--repo", box.repo])
            #expect(check.succeeded, "point \(point) (seed \(seed)): check failed after \(args[0]): \(check.diagnostics)")
            // Restore the newest and one random earlier snapshot (all of them in the long run).
            let ids = expected.keys.sorted()
            let chosen = Self.long ? ids : Array(Set([ids.last, ids.randomElement(using: &rng)].compactMap { $0 }))
            for id in chosen {
                let target = box.path("restore-\(point)-\(id.prefix(8))")
                let restore = try box.coffer(["restore", "--repo", box.repo, id, "--target", target, "--quiet"])
                #expect(restore.succeeded, "point \(point): restore \(id.prefix(8)): \(restore.diagnostics)")
                let got = try scanTree(raw(target + "/src"))
                let want = try #require(expected[id])
                #expect(Set(got.keys) == Set(want.keys), "point \(point): snapshot \(id.prefix(8)) restores other paths")
                for (path, entry) in want where entry.kind == .file {
                    #expect(got[path]?.content == entry.content, "point \(point): \(display(path)) differs in \(id.prefix(8))")
                }
                try? FileManager.default.removeItem(atPath: target)
            }
        }
        print("crash test: \(points) points, \(killed) runs killed, seed \(seed)")
        // The schedule must actually have killed something, or it tested nothing.
        #expect(killed >= 2, "only \(killed) of \(points) runs were killed before finishing (seed \(seed))")
        // After all that, a backup and a prune complete and reuse what is there.
        try box.ok(["backup", "--repo", box.repo, "--quiet", src])
        try box.ok(["prune", "--repo", box.repo])
        let final = try box.coffer(["check", "--repo", box.repo, "--read-data"])
        #expect(final.succeeded, "\(final.diagnostics)")
    }
}
