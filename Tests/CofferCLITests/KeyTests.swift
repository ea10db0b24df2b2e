import Foundation
import Glibc
import Testing

/// End-to-end: recovery keys and key-slot management.
@Suite("coffer recovery keys and key slots, end to end")
struct KeyTests {
    static let cheap = ["--argon2-memory-mib", "8", "--argon2-iterations", "1"]

    /// Inits with `--recovery-key --json` and returns the recovery key it printed.
    static func initWithRecoveryKey(_ box: Sandbox) throws -> String {
        let r = try box.initRepository(extra: ["--recovery-key", "--json"])
        let lines = try r.jsonLines()
        #expect(lines.count == 1, "init --json printed more than one line: \(r.out)")
        let report = try #require(lines.first as? [String: Any])
        let key = try #require(report["recoveryKey"] as? String, "no recoveryKey in \(r.out)")
        let groups = key.split(separator: " ")
        #expect(groups.count == 16 && groups.allSatisfy { $0.count == 4 && $0.allSatisfy(\.isHexDigit) }, "odd recovery key: \(key)")
        return key
    }

    static func slots(_ box: Sandbox, env: [String: String]? = nil) throws -> [[String: Any]] {
        let r = try box.ok(["key", "list", "--repo", box.repo, "--json"], env: env)
        let lines = try r.jsonLines()
        try #require(lines.count == 1, "\(r.out)")
        return try #require(lines[0] as? [[String: Any]], "\(r.out)")
    }

    @Test func recoveryKeyOpensTheRepositoryAndATypoIsReportedByGroup() throws {
        let box = try Sandbox()
        let key = try Self.initWithRecoveryKey(box)
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "recoverable\n")
        try box.backup([src])

        // The recovery key alone opens it (no password in the environment).
        let opened = try box.coffer(["snapshots", "--repo", box.repo, "--json"], env: ["COFFER_RECOVERY_KEY": key])
        #expect(opened.succeeded, "\(opened.diagnostics)")
        #expect(try (opened.jsonLines().first as? [Any])?.count == 1)
        let dumped = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/f.txt"], env: ["COFFER_RECOVERY_KEY": key])
        #expect(dumped.succeeded && dumped.out == "recoverable\n", "\(dumped.diagnostics)")

        // Also from a file, typed without spaces and in upper case.
        let keyFile = box.path("key.txt")
        try FS.writeFile(keyFile, key.replacingOccurrences(of: " ", with: "").uppercased() + "\n")
        let fromFile = try box.coffer(["snapshots", "--repo", box.repo, "--recovery-key-file", keyFile], env: [:])
        #expect(fromFile.succeeded, "\(fromFile.diagnostics)")

        // One digit changed in group 5.
        var groups = key.split(separator: " ").map(String.init)
        var g5 = Array(groups[4])
        let digit = Int(String(g5[0]), radix: 16)!
        g5[0] = Character(String((digit + 1) % 16, radix: 16))
        groups[4] = String(g5)
        let typo = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_RECOVERY_KEY": groups.joined(separator: " ")])
        #expect(typo.exitedNormally && typo.status == 12, "\(typo.diagnostics)")
        #expect(typo.err.contains("group 5"), "\(typo.diagnostics)")

        // A well-formed key of another repository is simply wrong.
        let other = try Sandbox()
        let otherKey = try Self.initWithRecoveryKey(other)
        let wrong = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_RECOVERY_KEY": otherKey])
        #expect(wrong.exitedNormally && wrong.status == 12, "\(wrong.diagnostics)")
        #expect(wrong.err.contains("wrong password or key"), "\(wrong.diagnostics)")

        // Two slots: the password and the recovery key.
        let slots = try Self.slots(box)
        #expect(slots.count == 2)
        #expect(Set(slots.compactMap { $0["kind"] as? String }) == ["password", "recovery-key"])
        #expect(slots.filter { $0["current"] as? Bool == true }.first?["kind"] as? String == "password")
    }

    @Test func addedPasswordOpensAndTheLastSlotCannotBeRemoved() throws {
        let box = try Sandbox()
        let key = try Self.initWithRecoveryKey(box)
        let newPasswordFile = box.path("new-password")
        try FS.writeFile(newPasswordFile, "second password\n")

        let add = try box.coffer(["key", "add", "--repo", box.repo, "--new-password-file", newPasswordFile] + Self.cheap)
        #expect(add.succeeded, "\(add.diagnostics)")
        let withNew = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "second password"])
        #expect(withNew.succeeded, "\(withNew.diagnostics)")
        let slots = try Self.slots(box)
        #expect(slots.count == 3)

        // Open with the original password; remove the other two slots.
        let current = try #require(slots.first { $0["current"] as? Bool == true }?["id"] as? String)
        for slot in slots {
            let id = try #require(slot["id"] as? String)
            guard id != current else { continue }
            let r = try box.coffer(["key", "remove", "--repo", box.repo, String(id.prefix(10))])
            #expect(r.succeeded, "\(r.diagnostics)")
        }
        #expect(try Self.slots(box).count == 1)
        let gone = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "second password"])
        #expect(gone.exitedNormally && gone.status == 12, "removed password still opens: \(gone.diagnostics)")
        let keyGone = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_RECOVERY_KEY": key])
        #expect(keyGone.exitedNormally && keyGone.status != 0, "removed recovery key still opens: \(keyGone.diagnostics)")

        let last = try box.coffer(["key", "remove", "--repo", box.repo, current])
        #expect(last.exitedNormally && last.status != 0, "\(last.diagnostics)")
        #expect(last.err.contains("last"), "\(last.diagnostics)")
        #expect(try Self.slots(box).count == 1)
        try box.ok(["snapshots", "--repo", box.repo])
    }

    @Test func passwdReplacesThePassword() throws {
        let box = try Sandbox()
        try box.initRepository()
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/f.txt", "still here\n")
        try box.backup([src])
        let newPasswordFile = box.path("new-password")
        try FS.writeFile(newPasswordFile, "brand new password\n")

        let r = try box.coffer(["key", "passwd", "--repo", box.repo, "--new-password-file", newPasswordFile] + Self.cheap)
        #expect(r.succeeded, "\(r.diagnostics)")

        let old = try box.coffer(["snapshots", "--repo", box.repo])
        #expect(old.exitedNormally && old.status == 12, "the old password still opens: \(old.diagnostics)")
        let new = try box.coffer(["dump", "--repo", box.repo, "latest", "/src/f.txt"], env: ["COFFER_PASSWORD": "brand new password"])
        #expect(new.succeeded && new.out == "still here\n", "\(new.diagnostics)")
        #expect(try Self.slots(box, env: ["COFFER_PASSWORD": "brand new password"]).count == 1)
    }
}
