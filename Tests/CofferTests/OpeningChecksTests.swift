import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// What a client checks before it spends anything on what storage hands it: which vault a
/// password may go to, what Argon2id cost a slot may ask for, and which names are objects.
@Suite struct VaultTrustTests {
    @Test func spellingsOfOneURLCompareEqualAndOthersDoNot() throws {
        let same = [
            "https://Vault.Example.COM", "https://vault.example.com/", "https://vault.example.com:443",
            "HTTPS://vault.example.com:0443//",
        ]
        for url in same { #expect(try VaultAddress.canonicalURL(url) == "https://vault.example.com:443", "\(url)") }
        #expect(try VaultAddress.canonicalURL("http://127.0.0.1") == "http://127.0.0.1:80")
        #expect(try VaultAddress.canonicalURL("http://[::1]:8443/v") == "http://[::1]:8443/v")
        #expect(try VaultAddress.canonicalURL("http://LOCALHOST:7/") == "http://localhost:7")
        let different = [
            "https://vault.example.com:8443", "https://vault.example.com/base", "https://vault.example.co",
            "https://evil.example.com", "http://localhost:443",
        ]
        for url in different {
            #expect(try VaultAddress.canonicalURL(url) != "https://vault.example.com:443", "\(url)")
        }
        // The path keeps its case: /Base and /base may be two vaults behind one proxy.
        #expect(try VaultAddress.canonicalURL("https://h.example/Base") != VaultAddress.canonicalURL("https://h.example/base"))
        // What no slot may hold cannot be trusted either.
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress.canonicalURL("http://vault.example.com") }
        #expect(throws: VaultAddress.Invalid.self) { try VaultAddress.canonicalURL("https://user@vault.example.com") }
        let address = try VaultAddress(url: "https://VAULT.example.com/", account: "a")
        #expect(try TrustedVaultURLs(["https://vault.example.com:443"]).allowsLogin(to: address))
        #expect(!TrustedVaultURLs.none.allowsLogin(to: address))
    }

    /// Counts the questions it is asked and answers no.
    final class RefusingTrust: VaultTrust, @unchecked Sendable {
        private let lock = NSLock()
        private var _asked: [String] = []
        var asked: [String] {
            lock.lock()
            defer { lock.unlock() }
            return _asked
        }
        func allowsLogin(to address: VaultAddress) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            _asked.append(address.url)
            return false
        }
    }

    @Test func aPasswordIsNotSentToAVaultThatIsNotTrusted() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("the owner's password")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            // Storage plants a vault slot naming a server of its own. Port 1 on loopback is
            // closed: a login would fail as "unreachable", so the error says whether one was sent.
            let planted = try VaultAddress(url: "http://127.0.0.1:1", account: "victim")
            let (slot, _) = KeySlot.createVault(master: MasterKey.generate(), address: planted, random: SystemRandom())
            try await storage.write(ObjectName(.keys, slot.id.hex), slot.encoded())

            let trust = RefusingTrust()
            do {
                _ = try await Repository.open(storage: storage, credential: .password(Fixture.password("a typo")), vaultTrust: trust)
                Issue.record("a wrong password opened the repository")
            } catch RepositoryError.vaultNotTrusted(let address, let triedPasswordSlots) {
                #expect(address == planted && triedPasswordSlots)
            } catch {
                Issue.record("expected vaultNotTrusted, got \(error)")
            }
            #expect(trust.asked == ["http://127.0.0.1:1"])
            // The default trusts no vault; the password slot still opens without any trust.
            await #expect(throws: RepositoryError.self) {
                try await Repository.open(storage: storage, credential: .password(Fixture.password("a typo")))
            }
            let opened = try await Repository.open(storage: storage, credential: .password(password), vaultTrust: trust)
            #expect(opened.openedWith == repo.openedWith)
            #expect(trust.asked.count == 1, "a password that opens a password slot asks about no vault")
        }
    }

    @Test func theQuestionComesBeforeThePasswordWhenOnlyAVaultCouldOpen() async throws {
        let address = try VaultAddress(url: "https://one.example", account: "alice")
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/one")
            try await VaultAccountChoiceTests.writeSlots(storage, [address])
            let trust = RefusingTrust()
            await #expect(throws: RepositoryError.self) {
                try await Repository.checkVaultAccountChoice(storage: storage, named: nil, trust: trust)
            }
            #expect(trust.asked == ["https://one.example"])
            try await Repository.checkVaultAccountChoice(
                storage: storage, named: nil, trust: try TrustedVaultURLs(["https://one.example"]))
        }
    }
}

@Suite struct PasswordCostLimitTests {
    /// A password slot with any cost in its header, built without running Argon2id.
    static func slot(_ cost: PasswordCost, id: UInt8 = 7) throws -> KeySlot {
        let header = KeySlot.encodeHeader(kind: .password(cost), salt: [UInt8](repeating: 1, count: Argon2id.saltSize))
        return try KeySlot.decode(header + [UInt8](repeating: 0, count: 72), id: Fixture.id(id))
    }

    @Test func aSlotAskingForMoreThanTheLimitsIsRefusedNamingIt() throws {
        let tooCostly = [
            PasswordCost(opsLimit: 64, memoryBytes: 64 << 20),  // passes
            PasswordCost(opsLimit: 1, memoryBytes: 4 << 30),  // memory
            PasswordCost(opsLimit: 16, memoryBytes: 1 << 30),  // passes × memory
            PasswordCost(opsLimit: 0, memoryBytes: 8 << 10),
            PasswordCost(opsLimit: 1, memoryBytes: 4 << 10),
        ]
        for cost in tooCostly {
            do {
                _ = try Self.slot(cost)
                Issue.record("\(cost) was accepted")
            } catch let KeySlot.Failure.malformed(why) {
                #expect(why.what.contains("key slot 07070707") && why.what.contains("refused without running it"), "\(why)")
            } catch {
                Issue.record("\(error)")
            }
            #expect(throws: KeySlot.Failure.self) {
                try KeySlot.create(master: Fixture.master(), credential: .password(Fixture.password("p")), cost: cost, random: SystemRandom())
            }
        }
        for cost in [PasswordCost.standard, .insecureMinimum, PasswordCost(opsLimit: 4, memoryBytes: 1 << 30)] {
            #expect(try Self.slot(cost).kind == .password(cost))
        }
    }

    @Test func aPlantedCostlySlotIsRefusedQuicklyNotRun() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("the owner's password")
            _ = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            // 64 passes over 1 GiB: most of a minute of Argon2id here, were it run (68.6 s
            // measured before the cost limits), so the bound below still fails if it is run.
            // It is generous because the whole suite runs beside it on two cores: the open
            // alone takes 0.07 s, but 5.9 to 8.5 s in full-suite runs since backups stage
            // packs through blocking-I/O threads.
            let header = KeySlot.encodeHeader(
                kind: .password(PasswordCost(opsLimit: 64, memoryBytes: 1 << 30)), salt: [UInt8](repeating: 1, count: Argon2id.saltSize))
            let plantedID: KeySlotID = Fixture.id(0)
            try await storage.write(ObjectName(.keys, plantedID.hex), header + [UInt8](repeating: 0, count: 72))

            let started = ContinuousClock.now
            do {
                _ = try await Repository.open(storage: storage, credential: .password(Fixture.password("a typo")))
                Issue.record("a wrong password opened the repository")
            } catch RepositoryError.keySlotsNotTried(let slots, let triedAny) {
                #expect(triedAny, "the owner's slot was tried")
                #expect(slots.count == 1 && slots[0].contains("key slot 00000000") && slots[0].contains("t=64"), "\(slots)")
                #expect("\(RepositoryError.keySlotsNotTried(slots, triedAny: true))".hasPrefix("wrong password or key for the key slots tried; not tried: key slot 00000000"))
            } catch {
                Issue.record("expected keySlotsNotTried, got \(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(30), "the planted slot's Argon2id was run")
            // The owner's slot still opens beside it.
            _ = try await Repository.open(storage: storage, credential: .password(password))
        }
    }

    @Test func passwordSlotsAreTriedCheapestFirstWithinOneBudget() throws {
        let maximal = PasswordCost(opsLimit: 4, memoryBytes: 1 << 30)  // 4 GiB of work
        #expect(maximal.work == PasswordCost.maximumWork)
        let slots = try [
            Self.slot(maximal, id: 1), Self.slot(maximal, id: 2), Self.slot(.standard, id: 3), Self.slot(maximal, id: 4),
            Self.slot(.insecureMinimum, id: 5),
        ]
        let plan = Repository.passwordSlotsToTry(slots)
        // 8 KiB, then 1 GiB, then one 4 GiB slot: a second would pass 8 GiB.
        #expect(plan.tried.map(\.id) == [Fixture.id(5), Fixture.id(3), Fixture.id(1)])
        #expect(plan.skipped.map(\.id) == [Fixture.id(2), Fixture.id(4)])
        let total = plan.tried.reduce(UInt64(0)) { sum, slot in
            guard case .password(let c) = slot.kind else { return sum }
            return sum + c.work
        }
        #expect(total <= PasswordCost.maximumWorkPerOpen)
    }
}

@Suite struct DamagedKeySlotTests {
    /// The only key slot cut short in storage: nothing was tried, so the error must not say
    /// "wrong password" (which sends the owner hunting for a typo) but name the damaged object.
    @Test func allSlotsDamagedIsNotReportedAsAWrongPassword() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("pw")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            let name = ObjectName(.keys, repo.openedWith.hex)
            let whole = try await storage.read(name)
            try await storage.delete(name)
            try await storage.write(name, Array(whole.prefix(20)))
            do {
                _ = try await Repository.open(storage: storage, credential: .password(password))
                Issue.record("a truncated key slot opened the repository")
            } catch RepositoryError.keySlotsNotTried(let slots, let triedAny) {
                #expect(!triedAny)
                #expect(slots.count == 1 && slots[0].contains("\(name)") && slots[0].contains("damaged or truncated"), "\(slots)")
                let message = "\(RepositoryError.keySlotsNotTried(slots, triedAny: triedAny))"
                #expect(!message.contains("wrong password"), "\(message)")
                #expect(message.contains("recovery key"), "\(message)")
            } catch {
                Issue.record("expected keySlotsNotTried, got \(error)")
            }
        }
    }
}

@Suite struct ObjectNameCaseTests {
    @Test func upperCaseNamesInStorageAreNotObjects() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("pw")
            let repo = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
            // The only key slot, renamed to the upper-case spelling of its id.
            let lower = repo.openedWith.hex
            #expect(rename(dir + "/repo/keys/" + lower, dir + "/repo/keys/" + lower.uppercased()) == 0)
            #expect(try await storage.list(.keys).isEmpty, "an upper-case name was listed as a key slot")
            do {
                _ = try await Repository.open(storage: storage, credential: .password(password))
                Issue.record("a key slot under an upper-case name opened the repository")
            } catch let error as RepositoryError {
                #expect(error.kind == .noUsableKeySlot, "\(error)")
            }
            #expect(ObjectName(kind: .index, relativePath: Substring(lower.uppercased())) == nil)
            #expect(ObjectName(kind: .data, relativePath: Substring("AB/AB" + lower.dropFirst(2).uppercased())) == nil)
            #expect(ObjectName(kind: .index, relativePath: Substring(lower)) != nil)
            #expect(KeySlotID(hex: lower.uppercased()) == nil && KeySlotID(hex: lower) != nil)
        }
    }
}

@Suite struct SecretFileTests {
    @Test func readsTheWholeFileAcrossGrowthAndTakesTheFirstLine() throws {
        try withTemporaryDirectorySync { dir in
            let text = Array("a password with ünïcode\r\nsecond line\n".utf8)
            try writeFile(dir + "/pw", text)
            for capacity in [1, 3, 4096] {
                let read = try SecretFile.read(dir + "/pw", initialCapacity: capacity)
                #expect(read.copyBytes() == text)
                #expect(read.firstLine().copyBytes() == Array("a password with ünïcode".utf8))
            }
            try writeFile(dir + "/empty", [])
            #expect(try SecretFile.read(dir + "/empty").count == 0)
            #expect(throws: SecretFile.Failure.self) { try SecretFile.read(dir + "/missing") }
        }
    }

    /// Growing frees old buffers; none may still hold the secret. A marker file (one line of
    /// random letters) is read with a tiny starting buffer, so it grows many times; then the
    /// process's writable memory is searched for pieces of the marker. The test keeps only the
    /// marker's complement, so its own copy cannot be what is found.
    @Test func readingASecretFileLeavesNoCopyInFreedMemory() throws {
        try withTemporaryDirectorySync { dir in
            let length = 48 << 10
            var marker = (0..<length).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<26) }
            let complement = marker.map { ~$0 }
            try writeFile(dir + "/secret", marker)
            secureZero(&marker)
            let probes = [100, 5000, 20000, length - 200].map { Array(complement[$0..<($0 + 48)]) }

            var read: SecureBytes? = try SecretFile.read(dir + "/secret", initialCapacity: 16)
            #expect(read!.withUnsafeBytes { zip($0, complement).allSatisfy { $0 == ~$1 } })
            read = nil  // sodium_free zeroes it
            _ = read

            let found = try MemoryScan.findComplements(of: probes)
            #expect(found.isEmpty, "pieces of the secret remain in memory at \(found)")
        }
    }
}

/// Searches this process's writable mappings for byte strings, given as their complements and
/// compared complemented, so that no buffer of the scan ever holds the strings themselves.
enum MemoryScan {
    static func findComplements(of probes: [[UInt8]]) throws -> [String] {
        let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        let mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC)
        guard mem >= 0 else { throw TestFailure("cannot open /proc/self/mem: errno \(errno)") }
        defer { close(mem) }
        var hits: [String] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, fields[1].hasPrefix("rw") else { continue }
            let bounds = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard bounds.count == 2 else { continue }
            var offset = bounds[0]
            while offset < bounds[1] {
                let want = Int(min(UInt64(chunk.count), bounds[1] - offset))
                let n = chunk.withUnsafeMutableBytes { pread(mem, $0.baseAddress!, want, off_t(offset)) }
                if n <= 0 { break }  // guard pages and the like cannot be read
                for probe in probes where contains(chunk, count: n, complementOf: probe) {
                    hits.append(String(line))
                }
                offset += UInt64(n)
            }
        }
        return hits
    }

    /// Whether `chunk[0..<count]` holds the bytes whose complements are `probe`.
    static func contains(_ chunk: [UInt8], count: Int, complementOf probe: [UInt8]) -> Bool {
        chunk.withUnsafeBytes { c in
            probe.withUnsafeBytes { p in
                let first = Int32(~p[0])
                var i = 0
                while i + p.count <= count {
                    guard let at = memchr(c.baseAddress! + i, first, count - p.count - i + 1) else { return false }
                    let j = c.baseAddress!.distance(to: UnsafeRawPointer(at))
                    var k = 1
                    while k < p.count && c[j + k] == ~p[k] { k += 1 }
                    if k == p.count { return true }
                    i = j + 1
                }
                return false
            }
        }
    }
}

func withTemporaryDirectorySync<R>(_ body: (String) throws -> R) throws -> R {
    var template = Array((NSTemporaryDirectory() + "coffer-unit-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw TestFailure("mkdtemp failed: errno \(errno)") }
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}
