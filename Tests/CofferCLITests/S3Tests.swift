import Coffer
import Foundation
import Glibc
import Testing

/// The S3 backend against a real S3 server on loopback (`rclone serve s3`, which verifies every
/// Signature V4), directly and through a proxy that injects faults.
@Suite(.serialized, .enabled(if: S3TestEnvironment.enabled)) struct S3Tests {
    /// A small chat-like tree: a 20 MiB random "video" (two packs), text, a nested folder, a
    /// symlink and an empty file.
    static func makeSource(_ box: Sandbox) throws -> String {
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.mkdir(src + "/media")
        try FS.writeFile(src + "/media/video.mp4", try FS.randomBytes(20 << 20))
        try FS.writeFile(src + "/media/voice.opus", try FS.randomBytes(300_000))
        try FS.writeFile(src + "/notes.txt", String(repeating: "hello from the chat history\n", count: 5000))
        try FS.writeFile(src + "/empty", [])
        try FS.symlink(target: "media/video.mp4", at: src + "/latest-video")
        // A SQLite-looking database of 2,000 pages of 1 KiB: chunked page by page.
        var db = Array("SQLite format 3\0".utf8) + [0x04, 0x00] + [UInt8](repeating: 0, count: 82)
        db += try FS.randomBytes(2000 * 1024 - db.count)
        try FS.writeFile(src + "/messages.db", db)
        return src
    }

    /// A server, a sandbox whose repository is `bucket` on it (initialized), the environment
    /// `coffer` needs, and the sample source.
    static func repositoryOnS3(bucket: String) throws -> (server: S3TestServer, box: Sandbox, env: [String: String], src: String) {
        let server = try S3TestServer()
        let box = try Sandbox()
        box.repo = server.url(bucket: bucket)
        let env = server.environment(password: box.password, cache: box.path("cache"))
        let src = try makeSource(box)
        try box.ok(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"], env: env)
        return (server, box, env, src)
    }

    static func transfer(_ summary: [String: Any]) throws -> [String: Any] {
        try #require(summary["transfer"] as? [String: Any], "an S3 backup's summary has a transfer object: \(summary)")
    }

    @Test func everyCommandWorksOnS3() throws {
        let server = try S3TestServer()
        let box = try Sandbox()
        box.repo = server.url(bucket: "coffer-e2e")
        let env = server.environment(password: box.password, cache: box.path("cache"))
        let src = try Self.makeSource(box)

        let created = try box.ok(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"], env: env)
        #expect(created.out.contains("created bucket coffer-e2e"), "\(created.out)")
        let first = try box.ok(["backup", "--repo", box.repo, "--json", src], env: env)
        let firstTransfer = try Self.transfer(try first.summary())
        #expect((jsonInt(firstTransfer["bytesUploaded"]) ?? 0) > 20 << 20)

        // The objects sit at the same paths as in a local repository.
        let stored = try FileManager.default.subpathsOfDirectory(atPath: server.directory.path + "/coffer-e2e/repo")
        #expect(stored.contains("config"))
        #expect(stored.contains { $0.hasPrefix("keys/") } && stored.contains { $0.hasPrefix("snapshots/") })
        let packs = stored.filter { $0.hasPrefix("data/") && $0.split(separator: "/").count == 3 }
        #expect(packs.count >= 2 && packs.allSatisfy { $0.split(separator: "/")[2].hasPrefix($0.split(separator: "/")[1]) }, "\(packs)")

        let target = box.path("restored")
        let restore = try box.ok(["restore", "--repo", box.repo, "latest", "--target", target, "--json"], env: env)
        let restoreTransfer = try #require((try restore.jsonLines().last as? [String: Any])?["transfer"] as? [String: Any], "\(restore.out)")
        // Blobs that lie together in a pack come in one range read: the 2,000 database pages
        // and the rest take a few dozen requests, not thousands.
        #expect((jsonInt(restoreTransfer["requests"]) ?? .max) < 100, "\(restoreTransfer)")
        expectSameTree(try scanTree(raw(src)), try scanTree(raw(target + "/src")))

        // A no-change backup: everything from the cache, next to nothing on the wire.
        let again = try box.ok(["backup", "--repo", box.repo, "--json", src], env: env)
        let summary = try again.summary()
        #expect(jsonInt(summary["filesUnmodified"]) == 5)
        let t = try Self.transfer(summary)
        #expect((jsonInt(t["bytesUploaded"]) ?? .max) < 8 << 10, "\(t)")
        // Listings only: what the first backup wrote went to the cache as it was written.
        #expect((jsonInt(t["bytesDownloaded"]) ?? .max) < 16 << 10, "\(t)")

        let snapshots = try box.ok(["snapshots", "--repo", box.repo, "--json"], env: env)
        let list = try #require(try snapshots.jsonLines().first as? [[String: Any]])
        #expect(list.count == 2)
        let ls = try box.ok(["ls", "--repo", box.repo, "latest"], env: env)
        #expect(ls.out.contains("video.mp4") && ls.out.contains("notes.txt"))
        let dump = try box.ok(["dump", "--repo", box.repo, "latest", "/src/notes.txt"], env: env)
        #expect(dump.stdout == Data(String(repeating: "hello from the chat history\n", count: 5000).utf8))
        let ids = list.compactMap { $0["id"] as? String }
        try box.ok(["diff", "--repo", box.repo, ids[0], ids[1]], env: env)
        try box.ok(["stats", "--repo", box.repo], env: env)
        let newPassword = box.path("new-password")
        try FS.writeFile(newPassword, "second password\n")
        try box.ok(["key", "add", "--repo", box.repo, "--new-password-file", newPassword, "--argon2-memory-mib", "8", "--argon2-iterations", "1"], env: env)
        let keys = try box.ok(["key", "list", "--repo", box.repo, "--password-file", newPassword], env: env)
        #expect(keys.out.split(separator: "\n").count >= 3, "\(keys.out)")
        try box.ok(["forget", "--repo", box.repo, "--keep-last", "1", "--prune"], env: env)
        let check = try box.ok(["check", "--repo", box.repo, "--read-data"], env: env)
        #expect(check.out.contains("no errors were found"), "\(check.out)")
    }

    @Test func listingPagesPastOneThousandAndRangeReads() async throws {
        let server = try S3TestServer()
        let location = try S3Location(parsing: server.url(bucket: "listing", prefix: "deep/prefix"))
        let storage = S3Storage(
            location: location, credentials: S3Credentials(accessKeyID: S3TestEnvironment.accessKey, secretAccessKey: S3TestEnvironment.secretKey),
            region: "us-east-1")
        #expect(try await storage.prepareBucket(create: true))
        #expect(try await !storage.prepareBucket(create: false))

        // 1,100 objects in the data folder's fan-out, sizes 0…1,099.
        var names: [ObjectName: Int] = [:]
        for i in 0..<1100 {
            var bytes = [UInt8](repeating: 0, count: 32)
            for b in 0..<32 { bytes[b] = UInt8.random(in: 0...255) }
            names[ObjectName(.data, bytes.map { String(format: "%02x", $0) }.joined())] = i
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for (name, size) in names {
                if running >= 16 { try await group.next(); running -= 1 }
                group.addTask { try await storage.write(name, [UInt8](repeating: UInt8(size & 0xff), count: size)) }
                running += 1
            }
            try await group.waitForAll()
        }
        let before = try #require(storage.meter).current.requests
        let listed = try await storage.list(.data)
        let requests = try #require(storage.meter).current.requests - before
        #expect(listed.count == 1100)
        #expect(requests >= 2, "a listing of 1,100 objects takes more than one page")
        #expect(Dictionary(uniqueKeysWithValues: listed.map { ($0.name, $0.size) }) == names)
        #expect(try await storage.list(.index).isEmpty)

        let (name, size) = try #require(names.first { $0.value == 1000 })
        #expect(try await storage.read(name, range: 10..<20) == [UInt8](repeating: UInt8(1000 & 0xff), count: 10))
        #expect(try await storage.read(name).count == size)
        #expect(try await storage.stat(name)?.size == size)
        await #expect(throws: StorageError.self) { try await storage.read(name, range: 990..<1010) }
        try await storage.delete(name)
        #expect(try await storage.stat(name) == nil)
        await #expect(throws: StorageError.self) { try await storage.read(name) }
    }

    @Test func wrongKeysAreClearAuthenticationErrors() throws {
        let server = try S3TestServer()
        let box = try Sandbox()
        box.repo = server.url(bucket: "auth")
        let env = server.environment(password: box.password, cache: box.path("cache"))
        try box.ok(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"], env: env)

        var wrongSecret = env
        wrongSecret["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-key-0000000000"
        let denied = try box.coffer(["snapshots", "--repo", box.repo], env: wrongSecret)
        #expect(denied.exitedNormally && denied.status == 1, "\(denied.diagnostics)")
        #expect(denied.err.contains("access denied") && denied.err.contains("secret key is wrong"), "\(denied.err)")

        var wrongKey = env
        wrongKey["AWS_ACCESS_KEY_ID"] = "nobody-has-this-key-id"
        let unknown = try box.coffer(["backup", "--repo", box.repo, box.path(".")], env: wrongKey)
        #expect(unknown.status == 1 && unknown.err.contains("access denied"), "\(unknown.diagnostics)")

        var noKeys = env
        noKeys["AWS_ACCESS_KEY_ID"] = ""
        noKeys["AWS_SECRET_ACCESS_KEY"] = ""
        noKeys["HOME"] = box.path("empty-home")
        let missing = try box.coffer(["snapshots", "--repo", box.repo], env: noKeys)
        #expect(missing.status == 1 && missing.err.contains("AWS_ACCESS_KEY_ID"), "\(missing.diagnostics)")
    }

    @Test func faultsAreRetriedAndNothingIsLost() throws {
        let server = try S3TestServer()
        let box = try Sandbox()
        let proxy = try FaultProxy(
            upstreamPort: server.port, plan: "every:3:500,drop,truncate,503,stall,429,reset", stallSeconds: 30, scratch: box.root)
        box.repo = server.url(bucket: "faults", port: proxy.port)
        let direct = server.url(bucket: "faults")
        let env = server.environment(password: box.password, cache: box.path("cache"))
        let tuning = ["-o", "s3.timeout=2", "-o", "s3.retries=12"]
        let src = try Self.makeSource(box)

        try box.ok(["init", "--repo", box.repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"] + tuning, env: env)
        let backup = try box.ok(["backup", "--repo", box.repo, "--json", src] + tuning, env: env)
        #expect((jsonInt(try Self.transfer(try backup.summary())["retries"]) ?? 0) > 0)
        let target = box.path("restored")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target, "--no-cache"] + tuning, env: env)
        expectSameTree(try scanTree(raw(src)), try scanTree(raw(target + "/src")))

        let faults = proxy.faultCounts()
        for mode in ["500", "drop", "truncate", "503", "stall", "429", "reset"] {
            #expect((faults[mode] ?? 0) > 0, "the proxy never injected \(mode): \(faults)")
        }
        // Straight to the server: what arrived is a clean repository.
        let check = try box.ok(["check", "--repo", direct, "--read-data", "--no-cache"], env: env)
        #expect(check.out.contains("no errors were found"), "\(check.out)")
    }

    @Test func persistentFailureEndsInAClearErrorAndAValidRepository() throws {
        let (server, box, env, src) = try Self.repositoryOnS3(bucket: "outage")
        try box.ok(["backup", "--repo", box.repo, src], env: env)

        // Every upload now fails: the backup must stop with a clear error, not hang or lie.
        try FS.writeFile(src + "/media/new-photo.jpg", try FS.randomBytes(3 << 20))
        // Every pack upload fails; the lock and everything else pass.
        let proxy = try FaultProxy(upstreamPort: server.port, plan: "always:503:PUT:/data/", scratch: box.root)
        let failing = try box.coffer(
            ["backup", "--repo", server.url(bucket: "outage", port: proxy.port), "-o", "s3.retries=2", src], env: env, timeout: 120)
        #expect(failing.exitedNormally && failing.status == 1, "\(failing.diagnostics)")
        #expect(failing.err.contains("HTTP 503") && failing.err.contains("after 3 attempts"), "\(failing.err)")
        #expect((proxy.faultCounts()["503"] ?? 0) >= 3)
        #expect(proxy.log.filter { $0.contains(" 503 ") }.allSatisfy { $0.contains(" PUT ") && $0.contains("/data/") })

        // The repository is as it was: clean, one snapshot, which restores.
        let check = try box.ok(["check", "--repo", box.repo, "--read-data"], env: env)
        #expect(check.out.contains("no errors were found"), "\(check.out)")
        let snapshots = try #require(try box.ok(["snapshots", "--repo", box.repo, "--json"], env: env).jsonLines().first as? [[String: Any]])
        #expect(snapshots.count == 1)
        let target = box.path("restored")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target], env: env)
        #expect(!FS.exists(raw(target + "/src/media/new-photo.jpg")))
        #expect(try FS.readFile(target + "/src/notes.txt") == FS.readFile(src + "/notes.txt"))

        // And the next run carries on.
        try box.ok(["backup", "--repo", box.repo, src], env: env)
        try box.ok(["check", "--repo", box.repo], env: env)
    }
}

extension S3Tests {
    /// A backup whose packs all arrived but whose index uploads kept failing: the next run finds
    /// the packs through their own headers and does not upload their data again.
    @Test func packsOfAFailedBackupAreReusedNotUploadedAgain() throws {
        let (server, box, env, src) = try Self.repositoryOnS3(bucket: "resume")
        try box.ok(["backup", "--repo", box.repo, src], env: env)

        let photo = try FS.randomBytes(6 << 20)
        try FS.writeFile(src + "/media/new-photo.jpg", photo)
        let proxy = try FaultProxy(upstreamPort: server.port, plan: "always:503:PUT:/index/", scratch: box.root)
        let failing = try box.coffer(
            ["backup", "--repo", server.url(bucket: "resume", port: proxy.port), "-o", "s3.retries=1", src], env: env)
        #expect(failing.status == 1 && failing.err.contains("HTTP 503"), "\(failing.diagnostics)")
        let uploadedPacks = proxy.log.filter { $0.contains(" PUT ") && $0.contains("/data/") && $0.contains(" forwarded 200") }
        try #require(!uploadedPacks.isEmpty, "the failing backup uploaded no pack: \(proxy.log)")

        let check = try box.ok(["check", "--repo", box.repo], env: env)
        #expect(check.out.contains("no errors were found"), "\(check.out)")

        let next = try box.ok(["backup", "--repo", box.repo, "--json", src], env: env)
        let summary = try next.summary()
        #expect((jsonInt(summary["packsResumed"]) ?? 0) >= 1, "\(summary)")
        let uploaded = jsonInt(try Self.transfer(summary)["bytesUploaded"]) ?? .max
        #expect(uploaded < 1 << 20, "the photo's \(photo.count) bytes were uploaded again: \(uploaded) bytes went up")

        try box.ok(["check", "--repo", box.repo, "--read-data"], env: env)
        #expect(try box.ok(["dump", "--repo", box.repo, "latest", "/src/media/new-photo.jpg"], env: env).stdout == Data(photo))
    }
}

extension S3Tests {
    /// Ctrl-C while uploads hang: the backup stops promptly and still removes its lock, though
    /// a cancelled task sends no requests.
    @Test func interruptedBackupRemovesItsLock() throws {
        let (server, box, env, src) = try Self.repositoryOnS3(bucket: "interrupt")

        let proxy = try FaultProxy(upstreamPort: server.port, plan: "always:stall:PUT:/data/", stallSeconds: 120, scratch: box.root)
        let running = try box.start(["backup", "--repo", server.url(bucket: "interrupt", port: proxy.port), src], env: env)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !proxy.log.contains(where: { $0.contains(" stall ") }) { usleep(50_000) }
        try #require(proxy.log.contains { $0.contains(" stall ") }, "no pack upload reached the proxy: \(proxy.log)")
        let locksDuring = try FileManager.default.contentsOfDirectory(atPath: server.directory.path + "/interrupt/repo/locks")
        #expect(locksDuring.count == 1)

        running.process.interrupt()
        let result = try running.wait(timeout: 30)
        #expect(result.exitedNormally && result.status != 0 && result.err.contains("interrupted"), "\(result.diagnostics)")
        let locksAfter = (try? FileManager.default.contentsOfDirectory(atPath: server.directory.path + "/interrupt/repo/locks")) ?? []
        #expect(locksAfter.isEmpty, "the interrupted backup left its lock: \(locksAfter)")
        // And an exclusive command runs at once.
        try box.ok(["prune", "--repo", box.repo], env: env)
    }
}
