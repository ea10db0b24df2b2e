import Foundation
import Testing

@Suite struct ProfileTests {
    @Test func aProfileRunsTheWholeDailyJobInOneCommand() throws {
        let box = try Sandbox()
        try box.initRepository()
        let chat = box.path("chat")
        try FS.mkdir(raw(chat))
        try FS.mkdir(raw(chat + "/Media"))
        try FS.writeFile(chat + "/messages.txt", "hello")
        try FS.writeFile(chat + "/Media/clip.mp4", [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + (try FS.randomBytes(50_000)))
        try FS.writeFile(chat + "/Media/photo.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + (try FS.randomBytes(20_000)))
        let profile: [String: Any] = [
            "repository": box.repo,
            "sources": [chat],
            "tags": ["daily"],
            "excludeCategories": ["videos"],
            "retention": ["keepLast": 2, "prune": true],
        ]
        let file = box.path("job.json")
        try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: file))

        for day in 0..<3 {
            try FS.writeFile(chat + "/messages.txt", "day \(day)")
            // No --repo: the profile names the repository.
            try box.ok(["backup", "--profile", file, "--quiet"])
        }
        let snaps = try box.snapshotsJSON()
        #expect(snaps.count == 2, "keepLast 2 applied after each backup")
        #expect(snaps.allSatisfy { ($0["tags"] as? [String]) == ["daily"] })
        let listing = try box.ok(["ls", "--repo", box.repo, "latest"]).out
        #expect(listing.contains("/chat/Media/photo.jpg"))
        #expect(!listing.contains("clip.mp4"), "videos are excluded by the profile")
        let target = box.path("out")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target, "--quiet"])
        #expect(try FS.readFile(target + "/chat/messages.txt") == Array("day 2".utf8))
        try box.ok(["check", "--repo", box.repo])
    }

    @Test func dryRunListsEveryFileWithWhatWouldHappenToIt() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(raw(src))
        try FS.writeFile(src + "/photo.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + (try FS.randomBytes(1000)))
        try FS.writeFile(src + "/clip.mp4", [0, 0, 0, 0x18] + Array("ftypisom".utf8) + (try FS.randomBytes(3000)))
        let text = try box.ok(["backup", "--repo", box.repo, "--dry-run", "--exclude-category", "videos", src]).out
        #expect(text.contains("would save  images") && text.contains(src + "/photo.jpg"), "\(text)")
        #expect(text.contains("would skip  videos") && text.contains(src + "/clip.mp4"), "\(text)")
        let json = try box.ok(["backup", "--repo", box.repo, "--dry-run", "--json", "--exclude-category", "videos", src])
        let files = try json.jsonLines().compactMap { $0 as? [String: Any] }.filter { $0["messageType"] as? String == "file" }
        let actions = Dictionary(uniqueKeysWithValues: files.compactMap { f in (f["path"] as? String).map { ($0, f["action"] as? String ?? "") } })
        #expect(actions == [src + "/photo.jpg": "save", src + "/clip.mp4": "skip"])
        #expect(try box.snapshotsJSON().isEmpty, "a dry run writes no snapshot")
    }

    @Test func aBrokenProfileIsReportedClearly() throws {
        let box = try Sandbox()
        try box.initRepository()
        let file = box.path("bad.json")
        try FS.writeFile(file, #"{"tags": ["x"]}"#)
        let r = try box.coffer(["backup", "--repo", box.repo, "--profile", file])
        #expect(r.status == 1)
        #expect(r.err.contains("missing field \"sources\""), "\(r.err)")
    }
}
