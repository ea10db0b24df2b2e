import Foundation
import Glibc
import Testing

/// Vault key slots end to end: the real `coffer` against the real `coffer-vault` on loopback.
/// Each vault login runs the real Argon2id (256 MiB) of `coffer-vault-v1` in the client.
@Suite(.serialized) struct VaultTests {
    /// A sandbox with a vault server, a repository initialized with a vault password, its
    /// recovery key and a small source tree.
    struct Fixture {
        let box: Sandbox
        let server: VaultTestServer
        let recoveryKeyFile: String
        let src: String
        let account: String

        init(maxAttempts: Int = 10, account: String = "alice@example.com", loginRate: Int? = nil) throws {
            box = try Sandbox()
            server = try VaultTestServer(dataDirectory: box.path("vault"), maxAttempts: maxAttempts, loginRate: loginRate)
            self.account = account
            src = box.path("src")
            try FS.mkdir(src)
            try FS.mkdir(src + "/media")
            try FS.writeFile(src + "/media/photo.jpg", try FS.randomBytes(3 << 20))
            try FS.writeFile(src + "/chat.txt", String(repeating: "a message in the history\n", count: 4000))
            let created = try box.ok(["init", "--repo", box.repo, "--vault", server.url, "--account", account, "--json"])
            let report = try #require(try created.jsonLines().last as? [String: Any], "init --json: \(created.out)")
            // A vault repository always gets a recovery key: a locked account must not lose the data.
            let key = try #require(report["recoveryKey"] as? String, "init --vault printed no recovery key: \(created.out)")
            recoveryKeyFile = box.path("recovery.txt")
            try FS.writeFile(recoveryKeyFile, key)
        }

        func open(password: String) throws -> RunResult {
            try box.coffer(["snapshots", "--repo", box.repo, "--json"], env: ["COFFER_PASSWORD": password])
        }

        func openWithRecoveryKey() throws -> RunResult {
            try box.coffer(["snapshots", "--repo", box.repo, "--json", "--recovery-key-file", recoveryKeyFile], env: [:])
        }
    }

    @Test func backupAndRestoreFromAFreshCacheThroughTheVault() throws {
        let f = try Fixture()
        let slots = try f.box.ok(["key", "list", "--repo", f.box.repo, "--json"])
        let list = try #require(try slots.jsonLines().first as? [[String: Any]])
        #expect(Set(list.compactMap { $0["kind"] as? String }) == ["vault", "recovery-key"], "\(slots.out)")
        #expect(!list.contains { $0["kind"] as? String == "password" }, "a vault repository must hold no password slot to guess against")

        try f.box.backup([f.src])
        // Another machine: nothing cached, only the repository, the vault and the password.
        let target = f.box.path("restored")
        let restore = try f.box.coffer(
            ["restore", "--repo", f.box.repo, "latest", "--target", target, "--cache-dir", f.box.path("fresh-cache")])
        #expect(restore.succeeded, "\(restore.diagnostics)")
        expectSameTree(try scanTree(raw(f.src)), try scanTree(raw(target + "/src")))
    }

    @Test(.enabled(if: S3TestEnvironment.enabled)) func aVaultRepositoryOnS3RestoresOnAnotherMachine() throws {
        let s3 = try S3TestServer()
        let box = try Sandbox()
        let vault = try VaultTestServer(dataDirectory: box.path("vault"))
        box.repo = s3.url(bucket: "vaulted")
        let src = box.path("src")
        try FS.mkdir(src)
        try FS.writeFile(src + "/voice.opus", try FS.randomBytes(2 << 20))
        let env = s3.environment(password: box.password, cache: box.path("cache"))
        try box.ok(["init", "--repo", box.repo, "--vault", vault.url, "--account", "dora"], env: env)
        try box.ok(["backup", "--repo", box.repo, src], env: env)
        // Another machine: a new cache, the bucket, the vault and the password — nothing else.
        var elsewhere = s3.environment(password: box.password, cache: box.path("other-cache"))
        elsewhere["HOME"] = box.path("other-home")
        // A machine that was never told about the vault is told once, then remembers.
        elsewhere["COFFER_CONFIG_DIR"] = box.path("other-home/config")
        elsewhere["COFFER_TRUST_VAULT"] = vault.url
        let target = box.path("restored")
        try box.ok(["restore", "--repo", box.repo, "latest", "--target", target], env: elsewhere)
        expectSameTree(try scanTree(raw(src)), try scanTree(raw(target + "/src")))
        // The bucket holds the vault slot and the recovery slot, and no password slot.
        let keys = try FileManager.default.contentsOfDirectory(atPath: s3.directory.path + "/vaulted/repo/keys")
        #expect(keys.count == 2, "\(keys)")
        var elsewhereJSON = elsewhere
        elsewhereJSON["COFFER_CACHE_DIR"] = box.path("third-cache")
        elsewhereJSON["COFFER_TRUST_VAULT"] = nil
        let listed = try box.ok(["key", "list", "--repo", box.repo, "--json"], env: elsewhereJSON)
        let kinds = try #require(try listed.jsonLines().first as? [[String: Any]]).compactMap { $0["kind"] as? String }
        #expect(kinds.sorted() == ["recovery-key", "vault"], "\(listed.out)")
    }

    @Test func tenWrongPasswordsLockTheAccountAndTheRecoveryKeyStillOpens() throws {
        let f = try Fixture()
        for attempt in 1...10 {
            let r = try f.open(password: "not the password \(attempt)")
            #expect(r.exitedNormally && r.status == 12, "\(r.diagnostics)")
            if attempt < 10 {
                let left = 10 - attempt
                #expect(r.err.contains("(\(left) attempt\(left == 1 ? "" : "s") left"), "attempt \(attempt): \(r.err)")
            } else {
                #expect(r.err.contains("no attempts are left") && r.err.contains("locked for good"), "\(r.err)")
            }
            // A restart halfway must not forgive anything.
            if attempt == 5 { try f.server.restart() }
        }
        let right = try f.open(password: f.box.password)
        #expect(right.status == 12, "the right password opened a locked account: \(right.diagnostics)")
        #expect(right.err.contains("locked") && right.err.contains("recovery key"), "\(right.err)")

        // Locked for good, across a restart too.
        try f.server.restart()
        let afterRestart = try f.open(password: f.box.password)
        #expect(afterRestart.status == 12 && afterRestart.err.contains("locked"), "\(afterRestart.diagnostics)")

        // The recovery key opens the repository and registers a new account.
        let recovered = try f.openWithRecoveryKey()
        #expect(recovered.succeeded, "\(recovered.diagnostics)")
        try FS.writeFile(f.box.path("new-password"), "a new vault password\n")
        let added = try f.box.coffer(
            ["key", "add", "--repo", f.box.repo, "--recovery-key-file", f.recoveryKeyFile, "--vault", f.server.url,
             "--account", "alice-2", "--new-password-file", f.box.path("new-password")], env: [:])
        #expect(added.succeeded, "\(added.diagnostics)")
        // Two vault accounts now: a password is tried on one only, so coffer asks which.
        let ambiguous = try f.open(password: "a new vault password")
        #expect(ambiguous.status != 0 && ambiguous.err.contains("--vault-account"), "\(ambiguous.diagnostics)")
        let chosen = try f.box.coffer(
            ["snapshots", "--repo", f.box.repo, "--vault-account", "alice-2"], env: ["COFFER_PASSWORD": "a new vault password"])
        #expect(chosen.succeeded, "\(chosen.diagnostics)")
        // Removing the locked account's slot makes the new one the only one.
        let slots = try #require(try f.box.ok(["key", "list", "--repo", f.box.repo, "--json", "--recovery-key-file", f.recoveryKeyFile], env: [:])
            .jsonLines().first as? [[String: Any]])
        let locked = try #require(slots.first { $0["vaultAccount"] as? String == f.account }?["id"] as? String)
        try f.box.ok(["key", "remove", "--repo", f.box.repo, "--recovery-key-file", f.recoveryKeyFile, locked], env: [:])
        let reopened = try f.open(password: "a new vault password")
        #expect(reopened.succeeded, "\(reopened.diagnostics)")
    }

    /// Version 1 reset the count at every successful login, which let a guesser make 9 guesses
    /// between any two of the owner's logins for ever; now the failures stay counted and the
    /// owner is told of them at the next login.
    @Test func aSuccessfulLoginReportsTheFailuresAndKeepsThemCounted() throws {
        let f = try Fixture()
        for _ in 1...3 { _ = try f.open(password: "wrong") }
        let right = try f.open(password: f.box.password)
        #expect(right.succeeded, "\(right.diagnostics)")
        #expect(
            right.err.contains("warning: vault account \"\(f.account)\" at \(f.server.url): 3 failed login attempts since your last login, the latest at 20")
                && right.err.contains("7 wrong attempts left before the account locks for good"), "\(right.err)")
        let quiet = try f.open(password: f.box.password)
        #expect(quiet.succeeded && !quiet.err.contains("failed login"), "told twice: \(quiet.err)")
        let next = try f.open(password: "wrong again")
        #expect(next.err.contains("(6 attempts left"), "\(next.err)")
    }

    @Test func plantedCopiesOfTheSlotCostNoExtraAttempts() throws {
        let f = try Fixture()
        let keys = f.box.repo + "/keys"
        // Find the vault slot (the larger of the two objects: it names the URL and the account).
        let names = try FileManager.default.contentsOfDirectory(atPath: keys)
        let vaultSlot = try #require(names.max { try! FS.readFile(keys + "/" + $0).count < FS.readFile(keys + "/" + $1).count })
        let bytes = try FS.readFile(keys + "/" + vaultSlot)
        // Storage plants copies under ids that sort first.
        for prefix in ["00", "01", "02"] {
            try FS.writeFile(keys + "/" + prefix + String(repeating: "0", count: 62), bytes)
        }
        let wrong = try f.open(password: "a typo")
        #expect(wrong.status == 12 && wrong.err.contains("(9 attempts left"), "one typo cost more than one attempt: \(wrong.err)")
        let right = try f.open(password: f.box.password)
        #expect(right.succeeded, "the real slot no longer opens beside planted copies: \(right.diagnostics)")
    }

    @Test func parallelWrongLoginsCannotExceedTheLimit() throws {
        let f = try Fixture(maxAttempts: 5)
        let runs = try (0..<12).map { i in
            try f.box.start(["snapshots", "--repo", f.box.repo], env: ["COFFER_PASSWORD": "guess \(i)"])
        }
        let results = try runs.map { try $0.wait(timeout: 300) }
        #expect(results.allSatisfy { $0.exitedNormally && $0.status == 12 }, "\(results.map(\.diagnostics))")
        // Exactly five logins got a KE2 (and so could test a guess); the others were refused.
        let guessed = results.filter { $0.err.hasPrefix("coffer: wrong password") }.count
        let refused = results.filter { $0.err.hasPrefix("coffer: vault") && $0.err.contains("is locked") }.count
        #expect(guessed == 5 && refused == 7, "guessed \(guessed), refused \(refused): \(results.map(\.err))")
        let right = try f.open(password: f.box.password)
        #expect(right.status == 12 && right.err.contains("locked"), "\(right.diagnostics)")
    }

    @Test func aRateLimitedLoginSaysWhenToRetryAndCostsNoAttempt() throws {
        // One a minute: `init`'s registration takes it, so the first login is refused.
        let f = try Fixture(loginRate: 1)
        let limited = try f.open(password: "a wrong password")
        #expect(limited.exitedNormally && limited.status == 1, "\(limited.diagnostics)")
        // About 60 s: the registration's token has been refilling since.
        let retry = try #require(limited.err.firstMatch(of: /too many requests from this address; try again in (\d+) s \(this one was not counted\)/), "\(limited.err)")
        #expect((50...60).contains(Int(retry.1) ?? 0), "\(limited.err)")
        // A restart refills the buckets; the refused guess did not cost an attempt.
        try f.server.restart()
        let wrong = try f.open(password: "a wrong password")
        #expect(wrong.status == 12 && wrong.err.contains("(9 attempts left"), "\(wrong.diagnostics)")
    }

    @Test func passwordChangeReplacesTheVaultRecordAndLeavesTheRepositoryAlone() throws {
        let f = try Fixture()
        try f.box.backup([f.src])
        let before = try Self.contents(of: f.box.repo)
        try FS.writeFile(f.box.path("new-password"), "second password\n")
        let changed = try f.box.coffer(
            ["key", "passwd", "--repo", f.box.repo, "--new-password-file", f.box.path("new-password")])
        #expect(changed.succeeded, "\(changed.diagnostics)")
        #expect(changed.out.contains("password changed for vault"), "\(changed.out)")
        // Not one byte of the repository depends on the password: nothing in it can test a guess.
        #expect(try Self.contents(of: f.box.repo) == before, "the repository changed when the vault password did")
        #expect(try f.open(password: "second password").succeeded)
        let old = try f.open(password: f.box.password)
        #expect(old.status == 12 && old.err.contains("wrong password"), "\(old.diagnostics)")
    }

    @Test func anUnreachableVaultSaysSoAndPointsToTheRecoveryKey() throws {
        var f: Fixture? = try Fixture()
        let box = f!.box, recoveryKeyFile = f!.recoveryKeyFile
        let repo = box.repo
        f = nil  // stops the server; the sandbox stays with `box`
        let r = try box.coffer(["snapshots", "--repo", repo])
        #expect(r.exitedNormally && r.status == 1, "\(r.diagnostics)")
        #expect(r.err.contains("cannot reach the key vault") && r.err.contains("recovery key"), "\(r.err)")
        let recovered = try box.coffer(["snapshots", "--repo", repo, "--recovery-key-file", recoveryKeyFile], env: [:])
        #expect(recovered.succeeded, "\(recovered.diagnostics)")
    }

    @Test func aTakenAccountIsRefusedAndNothingIsWritten() throws {
        let f = try Fixture(account: "bob")
        let other = f.box.path("other-repo")
        let r = try f.box.coffer(["init", "--repo", other, "--vault", f.server.url, "--account", "bob"])
        #expect(r.exitedNormally && r.status == 1, "\(r.diagnostics)")
        #expect(r.err.contains("already exists"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: other), "a refused vault account still left folders behind")
        // One account name on two vaults could not be told apart: refused before registering.
        let clash = try f.box.coffer(
            ["key", "add", "--repo", f.box.repo, "--vault", "http://127.0.0.1:1", "--account", "bob", "--new-password-file", "/dev/null"])
        #expect(clash.status != 0 && clash.err.contains("already has a slot"), "\(clash.diagnostics)")
        let port = try f.box.coffer(["init", "--repo", other, "--vault", "http://127.0.0.1:99999", "--account", "x"])
        #expect(port.exitedNormally && port.status == 1 && port.err.contains("port"), "\(port.diagnostics)")
        let plain = try f.box.coffer(["init", "--repo", other, "--vault", "http://192.0.2.1:8443", "--account", "x"])
        #expect(plain.status != 0 && plain.err.contains("https"), "plain http to another host must be refused: \(plain.diagnostics)")
    }

    @Test func aSlotSwappedForAnotherVaultGetsNoRequest() throws {
        let f = try Fixture()
        let keys = f.box.repo + "/keys"
        let names = try FileManager.default.contentsOfDirectory(atPath: keys)
        let vaultSlot = try #require(names.max { try! FS.readFile(keys + "/" + $0).count < FS.readFile(keys + "/" + $1).count })
        let original = try FS.readFile(keys + "/" + vaultSlot)
        // Storage replaces the vault slot with one for the same account on its own server.
        let listener = try RecordingListener()
        try FileManager.default.removeItem(atPath: keys + "/" + vaultSlot)
        let planted = try VaultTrustTests.plantVaultSlot(in: f.box.repo, url: listener.url, account: f.account)
        let r = try f.open(password: f.box.password)
        #expect(r.exitedNormally && r.status != 0, "\(r.diagnostics)")
        #expect(r.err.contains(listener.url) && r.err.contains("--trust-vault"), "\(r.err)")
        #expect(listener.connections == 0, "the password went to the planted vault")
        // With the real slot back, the vault `init` named opens without a question.
        try FileManager.default.removeItem(atPath: keys + "/" + planted)
        try FS.writeFile(keys + "/" + vaultSlot, original, mode: 0o600)
        #expect(try f.open(password: f.box.password).succeeded)
    }

    @Test func aVaultThisMachineWasNotToldAboutIsRefusedUntilTrustedOnce() throws {
        let f = try Fixture()
        // `init --vault` recorded the vault, canonically, in a file only the user can read.
        let recorded = f.box.configDir + "/trusted-vaults"
        #expect(String(decoding: try FS.readFile(recorded), as: UTF8.self).contains("\n\(f.server.url)\n"))
        #expect(try FS.lstatRaw(raw(recorded)).st_mode & 0o777 == 0o600)

        // Another machine (another configuration folder) has never heard of it.
        let elsewhere = f.box.path("elsewhere")
        let refused = try f.box.coffer(
            ["snapshots", "--repo", f.box.repo], env: ["COFFER_PASSWORD": "a wrong password", "COFFER_CONFIG_DIR": elsewhere])
        #expect(refused.exitedNormally && refused.status == 1, "\(refused.diagnostics)")
        #expect(refused.err.contains("the key vault at \(f.server.url)") && refused.err.contains("--trust-vault \(f.server.url)"), "\(refused.err)")
        // Told once, with another spelling of the same URL; then remembered.
        let told = try f.box.coffer(
            ["snapshots", "--repo", f.box.repo, "--trust-vault", "HTTP://127.0.0.1:\(f.server.port)/"],
            env: ["COFFER_PASSWORD": f.box.password, "COFFER_CONFIG_DIR": elsewhere])
        #expect(told.succeeded, "\(told.diagnostics)")
        let remembered = try f.box.coffer(
            ["snapshots", "--repo", f.box.repo], env: ["COFFER_PASSWORD": "a wrong password", "COFFER_CONFIG_DIR": elsewhere])
        // The refused open sent nothing: this is the first wrong password the vault has seen.
        #expect(remembered.status == 12 && remembered.err.contains("(9 attempts left"), "\(remembered.diagnostics)")
        // Another port on the same host is another vault.
        let otherPort = try f.box.coffer(
            ["snapshots", "--repo", f.box.repo, "--trust-vault", "http://127.0.0.1:\(f.server.port + 1)"],
            env: ["COFFER_PASSWORD": f.box.password, "COFFER_CONFIG_DIR": f.box.path("third")])
        #expect(otherPort.status == 1 && otherPort.err.contains("not one this machine trusts"), "\(otherPort.diagnostics)")
    }

    /// Every file under `root` with its bytes.
    static func contents(of root: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for rel in try FileManager.default.subpathsOfDirectory(atPath: root) {
            var st = Glibc.stat()
            if lstat(root + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { out[rel] = try FS.readFile(root + "/" + rel) }
        }
        return out
    }
}

/// The vault over HTTPS with a private certificate, as a real deployment runs it.
@Suite(.serialized) struct VaultTLSEndToEndTests {
    @Test func aVaultOverHTTPSWithAPrivateCA() throws {
        let box = try Sandbox()
        let cert = box.path("cert.pem"), key = box.path("key.pem")
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make a certificate")

        let server = try VaultTestServer(dataDirectory: box.path("vault"), tls: (cert, key))
        #expect(server.url.hasPrefix("https://"))
        let created = try box.coffer(
            ["init", "--repo", box.repo, "--vault", server.url, "--account", "carol", "--vault-cacert", cert])
        #expect(created.succeeded, "\(created.diagnostics)")
        let opened = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": box.password, "COFFER_VAULT_CACERT": cert])
        #expect(opened.succeeded, "\(opened.diagnostics)")
        // Without the CA the certificate is not trusted, and the message says how to fix that.
        let untrusted = try box.coffer(["snapshots", "--repo", box.repo])
        #expect(untrusted.status == 1 && untrusted.err.contains("TLS") && untrusted.err.contains("--vault-cacert"), "\(untrusted.diagnostics)")
        // And a failed handshake is not a counted login: the right password still has all 10.
        let wrong = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "wrong", "COFFER_VAULT_CACERT": cert])
        #expect(wrong.err.contains("(9 attempts left"), "\(wrong.diagnostics)")
    }
}
