import Foundation
import Glibc
import Testing

/// End-to-end: `key add --device` and commands that open with the device key when given no
/// password (FORMAT.md §5.4).
@Suite("coffer device keys, end to end")
struct DeviceKeyTests {
    /// The sandbox's configuration folder and no password: what a scheduled job has.
    static func noPassword(_ box: Sandbox) -> [String: String] { ["COFFER_CONFIG_DIR": box.configDir] }

    static func deviceFiles(_ box: Sandbox) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: box.configDir + "/device-keys")) ?? []).filter { !$0.hasPrefix(".") }
    }

    @Test func aDeviceKeyOpensWithoutAPasswordUntilItsSlotIsRemoved() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "daily\n")
        let added = try box.ok(["key", "add", "--device", "--repo", box.repo, "--json"])
        let report = try #require(try added.jsonLines().first as? [String: Any])
        let slotID = try #require(report["id"] as? String)
        let file = try #require(report["file"] as? String)
        #expect(file.hasPrefix(box.configDir + "/device-keys/"), "\(file)")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
        #expect(stat(box.configDir + "/device-keys", &st) == 0 && st.st_mode & 0o777 == 0o700)
        // The key is not in the repository: no object holds the file's secret line.
        let secretLine = try #require(String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").last.map(String.init))
        for (rel, _) in box.repositoryFiles() {
            let bytes = try #require(FileManager.default.contents(atPath: box.repo + "/" + rel))
            #expect(!Data(bytes).contains(Data(secretLine.utf8)), "\(rel) holds the device key")
        }

        // A backup with no password and no key given: opened with the device key.
        let backup = try box.coffer(["backup", "--repo", box.repo, "--json", src], env: Self.noPassword(box))
        #expect(backup.succeeded, "\(backup.diagnostics)")
        let listed = try KeyTests.slots(box, env: Self.noPassword(box))
        let device = try #require(listed.first { $0["id"] as? String == slotID })
        #expect(device["kind"] as? String == "device" && device["current"] as? Bool == true, "\(device)")
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        #expect(device["deviceHost"] as? String == String(cString: host), "\(device)")
        #expect(device["deviceCreated"] is String)

        // A second device key for the same repository on this machine is refused.
        let again = try box.coffer(["key", "add", "--device", "--repo", box.repo])
        #expect(again.exitedNormally && again.status == 1 && again.err.contains("already holds"), "\(again.diagnostics)")
        #expect(try KeyTests.slots(box).count == 2, "the refused add left a slot behind")

        // A key file others may read is not used.
        #expect(chmod(file, 0o644) == 0)
        let loose = try box.coffer(["snapshots", "--repo", box.repo], env: Self.noPassword(box))
        #expect(!loose.succeeded && loose.err.contains("can be read by other users"), "\(loose.diagnostics)")
        #expect(chmod(file, 0o600) == 0)

        // A symlink in the key's place, even to a file of the right mode, is not followed.
        let moved = box.path("moved-key")
        #expect(rename(file, moved) == 0 && symlink(moved, file) == 0)
        let linked = try box.coffer(["snapshots", "--repo", box.repo], env: Self.noPassword(box))
        #expect(!linked.succeeded, "a symlinked key file was used: \(linked.diagnostics)")
        #expect(unlink(file) == 0 && rename(moved, file) == 0)
        // Nor is a key folder that others may write to.
        #expect(chmod(box.configDir + "/device-keys", 0o777) == 0)
        let shared = try box.coffer(["snapshots", "--repo", box.repo], env: Self.noPassword(box))
        #expect(!shared.succeeded && shared.err.contains("only you can write"), "\(shared.diagnostics)")
        #expect(chmod(box.configDir + "/device-keys", 0o700) == 0)

        // Removing the slot (with the password, and --json) removes this machine's file, and
        // the device no longer opens the repository.
        let removed = try box.ok(["key", "remove", "--repo", box.repo, "--json", slotID])
        #expect(removed.out.contains("removedDeviceKeyFile") && removed.out.contains(file), "\(removed.diagnostics)")
        #expect(Self.deviceFiles(box).isEmpty)
        let after = try box.coffer(["snapshots", "--repo", box.repo], env: Self.noPassword(box))
        #expect(!after.succeeded, "\(after.diagnostics)")
    }

    @Test func anExplicitPasswordWinsOverTheDeviceKey() throws {
        let box = try Sandbox()
        try box.initRepository()
        try box.ok(["key", "add", "--device", "--repo", box.repo])
        // A wrong password given explicitly is wrong, even though the device key would open.
        let wrong = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "not it"])
        #expect(wrong.exitedNormally && wrong.status == 12, "\(wrong.diagnostics)")
        // The device key of one repository does not open another.
        let other = box.path("other-repo")
        try box.ok(["init", "--repo", other, "--argon2-memory-mib", "8", "--argon2-iterations", "1"])
        let opened = try box.coffer(["snapshots", "--repo", other], env: Self.noPassword(box))
        #expect(!opened.succeeded, "\(opened.diagnostics)")
    }
}
