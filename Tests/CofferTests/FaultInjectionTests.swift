import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// Runs backup, forget, prune, check and restore over storage that fails (`FaultyStorage`),
/// seed by seed, and holds the engine to two promises:
///
/// 1. Under faults, each command either succeeds or throws a clear error: a Coffer error type
///    whose message names an object or a cause in words, never a crash, never a Swift case name,
///    never a wrong diagnosis (a storage failure reported as a wrong password). A restore never
///    leaves a file holding wrong bytes, and never leaves out a file without saying so.
/// 2. With the faults gone, after re-running what failed (forget, prune), check (with
///    read-data) reports nothing at all, every snapshot the commands reported as made and not
///    forgotten is there, nothing forgotten came back, and every snapshot restores bit-exact.
///
/// A handful of seeds run in every `swift test`; `COFFER_FAULT_SEEDS=300` runs that many more
/// (seeds 1…300, or from `COFFER_FAULT_SEED_FIRST`), each one's outcome printed on one line.
@Suite struct FaultInjectionTests {
    /// Seeds run on every `swift test`: 1…8, fixed, not chosen to pass, plus seeds the sweep
    /// found failing in prune's deletions (a refused delete of an old index object), kept as
    /// regression seeds.
    static let ciSeeds: [UInt64] = Array(1...8) + [36, 81]

    @Test(arguments: ciSeeds)
    func aSeedOfStorageFaultsLeavesTheRepositoryConsistent(_ seed: UInt64) async throws {
        let outcome = try await FaultScenario.run(seed: seed)
        #expect(outcome.violations.isEmpty, "\(outcome.failureMessage)")
    }

    static var sweepSeeds: [UInt64] {
        let env = ProcessInfo.processInfo.environment
        guard let count = env["COFFER_FAULT_SEEDS"].flatMap({ UInt64($0) }), count > 0 else { return [] }
        let first = env["COFFER_FAULT_SEED_FIRST"].flatMap { UInt64($0) } ?? 1
        return Array(first..<(first + count))
    }

    @Test(.enabled(if: !sweepSeeds.isEmpty, "set COFFER_FAULT_SEEDS=N to run the long sweep"))
    func longSweepOfStorageFaults() async throws {
        var failing: [UInt64] = []
        var totals = FaultScenario.Counts()
        for seed in Self.sweepSeeds {
            FileHandle.standardError.write(Data("fault seed \(seed): running\n".utf8))
            let outcome = try await FaultScenario.run(seed: seed)
            totals.add(outcome.counts)
            print(outcome.summaryLine)
            if !outcome.violations.isEmpty {
                failing.append(seed)
                print(outcome.failureMessage)
            }
        }
        print("fault sweep: \(Self.sweepSeeds.count) seeds, \(failing.count) failing\(failing.isEmpty ? "" : ": \(failing.map(String.init).joined(separator: " "))"); \(totals)")
        #expect(failing.isEmpty, "seeds with violations: \(failing)")
    }

    /// A range read that comes back short (storage breaking its promise of the whole range)
    /// is damage to report, not bytes to slice: restore used to index past the end and crash.
    @Test func restoreReportsShortRangeReadsAsDamageInsteadOfCrashing() async throws {
        try await withTemporaryDirectory { dir async throws in
            let base = LocalStorage(path: dir + "/repo")
            try base.createLayout()
            var rates = FaultRates()
            rates[.shortRead] = 1
            let storage = FaultyStorage(base: base, seed: 1, rates: rates)
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("s")), options: Fixture.initOptions())
            try makeDirectory(dir + "/src")
            // Several chunks per file, so restore fetches them with one range read.
            try writeFile(dir + "/src/big.bin", Fixture.bytes(400_000, seed: 3))
            let id = try #require(try await repo.backup(BackupRequest(paths: [dir + "/src"])).snapshotID)
            let snapshot = try await repo.loadSnapshot(id)
            let index = try await repo.loadIndex()
            guard case .directory(let src) = try await repo.loadTree(snapshot.root, index: index).nodes[0].content else {
                throw TestFailure("the snapshot's root holds no src folder")
            }
            guard case .file(_, let chunks) = try await repo.loadTree(src, index: index).nodes[0].content else { throw TestFailure("big.bin is not a file") }
            #expect(chunks.count > 1)

            storage.enabled = true
            await #expect(throws: RepositoryError.self) {
                _ = try await repo.loadBlobs(chunks.map { BlobHandle(id: $0, type: .data) }, index: index)
            }
            let error = await #expect(throws: RepositoryError.self) {
                _ = try await repo.loadBlob(BlobHandle(id: chunks[0], type: .data), index: index)
            }
            #expect(error?.description.contains("bytes asked for") == true, "\(String(describing: error))")
        }
    }

    /// The judge of "clear" must itself reject what it is meant to reject.
    @Test func theClarityJudgeRejectsWhatItShould() {
        let root = "/tmp/repo"
        let named = StorageError.io("write", path: root + "/index/" + String(repeating: "ab", count: 32), errno: EIO)
        #expect(FaultScenario.unclear(named, root: root) == nil)
        #expect(FaultScenario.unclear(RepositoryError.locked("the repository is locked: x"), root: root) == nil)
        #expect(FaultScenario.unclear(RepositoryError.wrongCredential, root: root) != nil, "a storage fault is not a wrong password")
        #expect(FaultScenario.unclear(RepositoryError.noUsableKeySlot, root: root) != nil)
        #expect(FaultScenario.unclear(CancellationError(), root: root) != nil, "not a Coffer error")
        #expect(FaultScenario.unclear(TestFailure("x"), root: root) != nil)
        #expect(FaultScenario.unclear(RetentionError("Optional(3) blobNotFound(x)"), root: root) != nil, "Swift spellings")
        #expect(FaultScenario.unclear(RetentionError("something went wrong"), root: root) != nil, "names nothing")
        #expect(FaultScenario.unclear(RepositoryError.tampered(.config, detail: "authenticationFailed"), root: root) != nil, "a bare case name")
    }

    /// The storage injects what it says, deterministically, and only while enabled.
    @Test func faultyStorageInjectsEachKindDeterministically() async throws {
        try await withTemporaryDirectory { dir async throws in
            func run(_ seed: UInt64) async throws -> ([String], [InjectedFault]) {
                let base = LocalStorage(path: dir + "/r\(seed)-\(UInt64.random(in: 0..<UInt64.max))")
                try base.createLayout()
                var rates = FaultRates()
                for kind in FaultKind.allCases { rates[kind] = 0.1 }
                let s = FaultyStorage(base: base, seed: seed, rates: rates)
                let name = ObjectName(.index, String(repeating: "cd", count: 32))
                try await s.write(name, Fixture.bytes(1000))
                s.enabled = true
                var outcomes: [String] = []
                for _ in 0..<200 {
                    do {
                        let got = try await s.read(name, range: 100..<900)
                        outcomes.append("read \(got.count)")
                    } catch { outcomes.append("error") }
                }
                s.enabled = false
                for _ in 0..<20 { _ = try await s.read(name, range: 100..<900) }
                return (outcomes, s.log)
            }
            let (a, logA) = try await run(5)
            let (b, _) = try await run(5)
            let (c, _) = try await run(6)
            #expect(a == b, "the same seed, the same faults")
            #expect(a != c, "another seed, other faults")
            #expect(a.contains("error") && a.contains("read 800"))
            #expect(a.contains { $0.hasPrefix("read ") && $0 != "read 800" }, "some reads are short")
            #expect(Set(logA.map(\.kind)).isSuperset(of: [.readFails, .shortRead, .delay]))
            #expect(logA.allSatisfy { $0.call <= 201 }, "nothing injected while disabled")
        }
    }
}

/// One seed's scripted run.
final class FaultScenario {
    struct Counts: CustomStringConvertible {
        var commands = 0
        var commandsFailed = 0
        var faults: [FaultKind: Int] = [:]
        var cleanReruns = 0
        var leftoverLocks = 0
        var snapshotsRestored = 0

        mutating func add(_ other: Counts) {
            commands += other.commands
            commandsFailed += other.commandsFailed
            for (k, v) in other.faults { faults[k, default: 0] += v }
            cleanReruns += other.cleanReruns
            leftoverLocks += other.leftoverLocks
            snapshotsRestored += other.snapshotsRestored
        }

        var description: String {
            let kinds = faults.keys.sorted().map { "\($0.rawValue) \(faults[$0]!)" }.joined(separator: ", ")
            return "\(commands) commands, \(commandsFailed) failed; faults: \(kinds.isEmpty ? "none" : kinds); "
                + "\(cleanReruns) clean re-runs, \(leftoverLocks) leftover locks of this process, \(snapshotsRestored) snapshots restored clean"
        }
    }

    struct Outcome {
        let seed: UInt64
        let rates: FaultRates
        var violations: [String] = []
        /// One line per command: name, then "ok" or the error.
        var transcript: [String] = []
        var log: [InjectedFault] = []
        var counts = Counts()
        var seconds = 0.0

        var summaryLine: String {
            "fault seed \(seed): \(violations.isEmpty ? "ok" : "\(violations.count) VIOLATIONS") in \(String(format: "%.2f", seconds)) s; \(counts)"
        }

        var failureMessage: String {
            var lines = ["fault seed \(seed) (rates: \(rates))"]
            lines += violations.map { "VIOLATION: \($0)" }
            lines.append("commands:")
            lines += transcript.map { "  \($0)" }
            lines.append("injected faults (delays left out):")
            lines += log.filter { $0.kind != .delay }.map { "  \($0)" }
            return lines.joined(separator: "\n")
        }
    }

    /// What the source looked like when a backup ran, and when it ran.
    struct BackupAttempt {
        let label: String
        let contents: [String: TreeEntry]
        let startNanos: Int64
        var endNanos: Int64 = 0
        var id: SnapshotID? = nil
    }

    /// Rates for a seed: each kind gets one of a few levels, so seeds differ in which faults
    /// dominate; some seeds have few faults and reach the later steps, others fail early.
    static func rates(seed: UInt64) -> FaultRates {
        var g = SplitMix64(seed &* 0xA076_1D64_78BD_642F)
        let levels = [0, 0.01, 0.03, 0.06]
        var r = FaultRates()
        r[.delay] = 0.05
        // Every third seed fails only deletions, often: the other seeds rarely get as far as
        // prune's deletions, where an unanswered or refused delete matters most.
        if seed % 3 == 0 {
            r[.deleteFailsBefore] = 0.2
            r[.deleteFailsAfter] = 0.1
            return r
        }
        for kind in FaultKind.allCases where kind != .delay { r[kind] = levels[Int(g.next() % UInt64(levels.count))] }
        return r
    }

    let seed: UInt64
    let storage: FaultyStorage
    let dir: String
    let password = Fixture.password("fault injection")
    var outcome: Outcome
    var attempts: [BackupAttempt] = []

    init(seed: UInt64, storage: FaultyStorage, dir: String, outcome: Outcome) {
        self.seed = seed
        self.storage = storage
        self.dir = dir
        self.outcome = outcome
    }

    var source: String { dir + "/src" }

    static func run(seed: UInt64) async throws -> Outcome {
        try await withTemporaryDirectory { dir async throws in
            let base = LocalStorage(path: dir + "/repo")
            try base.createLayout()
            let rates = Self.rates(seed: seed)
            let storage = FaultyStorage(base: base, seed: seed, rates: rates)
            let scenario = FaultScenario(seed: seed, storage: storage, dir: dir, outcome: Outcome(seed: seed, rates: rates))
            let started = MonotonicClock.nanos()
            try await scenario.script()
            scenario.outcome.log = storage.log
            for fault in storage.log { scenario.outcome.counts.faults[fault.kind, default: 0] += 1 }
            scenario.outcome.seconds = Double(MonotonicClock.nanos() - started) / 1e9
            return scenario.outcome
        }
    }

    func violation(_ text: String) { outcome.violations.append(text) }

    // MARK: The script

    func script() async throws {
        _ = try await Repository.initialize(storage: storage, credential: .password(password), options: Fixture.initOptions())
        try writeVersion1()

        storage.enabled = true
        try await backup("backup 1")
        try writeVersion2()
        try await backup("backup 2")

        var forgetDone: ForgetResult? = nil
        var pruneDone = false
        if let repo = await command("forget: open", { try await self.open() }) {
            forgetDone = await command("forget --keep-last 1") {
                try await repo.forget(policy: RetentionPolicy(keepLast: 1), timeZone: TimeZone(identifier: "UTC")!)
            }
            // Always pruned (not only when forget removed something): it also removes what a
            // failed backup left, so the clean check below can demand no warnings either.
            if forgetDone != nil { pruneDone = await command("prune") { try await repo.prune() } != nil }
        }
        if let repo = await command("check: open", { try await self.open() }) {
            if let report = await command("check --read-data", { try await repo.check(CheckOptions(readData: true)) }) {
                for p in report.problems where p.description.isEmpty { violation("check (under faults) reported a problem with no description") }
            }
        }
        for attempt in attempts where attempt.id != nil && !(forgetDone?.removed.contains(attempt.id!) ?? false) {
            await restoreUnderFaults(attempt)
        }

        storage.enabled = false
        storage.phase = "clean"
        try await cleanPhase(forgetDone: forgetDone, pruneDone: pruneDone)
    }

    func open() async throws -> Repository {
        try await Repository.open(storage: storage, credential: .password(password))
    }

    /// Each CLI command is a process of its own, and the next one removes the locks an earlier
    /// one left behind (its pid is gone). In this one process they would block every later
    /// command, so before each command they are removed, faults off, as that process would.
    func removeLocksOfEarlierCommands() async throws {
        let enabled = storage.enabled
        storage.enabled = false
        defer { storage.enabled = enabled }
        for object in try await storage.list(.locks) {
            try await storage.delete(object.name)
            outcome.counts.leftoverLocks += 1
        }
    }

    func backup(_ label: String) async throws {
        var attempt = BackupAttempt(label: label, contents: try treeContents(source), startNanos: Repository.nowNanos())
        let source = self.source
        if let repo = await command("\(label): open", { try await self.open() }) {
            attempt.id = await command(label) {
                var request = BackupRequest(paths: [source])
                request.hostname = "fault-injection"
                guard let id = try await repo.backup(request).snapshotID else { throw TestFailure("a backup that is no dry run made no snapshot") }
                return id
            }
        }
        attempt.endNanos = Repository.nowNanos()
        attempts.append(attempt)
    }

    /// A few files, two with the same content, a symlink and a folder; small enough that a seed
    /// runs in a fraction of a second.
    func writeVersion1() throws {
        let s = UInt8(truncatingIfNeeded: seed)
        try makeDirectory(source)
        try makeDirectory(source + "/sub")
        try writeFile(source + "/a.txt", Fixture.text(20_000, variant: Int(seed % 5)))
        try writeFile(source + "/shared.bin", Fixture.bytes(90_000, seed: s))
        try writeFile(source + "/sub/shared-copy.bin", Fixture.bytes(90_000, seed: s))
        try writeFile(source + "/sub/small", Fixture.text(100, variant: 9))
        guard symlink("a.txt", source + "/link") == 0 else { throw TestFailure("symlink: errno \(errno)") }
    }

    /// Changes a file, removes one, adds one and changes a mode: the first snapshot's own data
    /// becomes unused once it is forgotten, so prune has packs to delete or rewrite.
    func writeVersion2() throws {
        try writeFile(source + "/a.txt", Fixture.text(35_000, variant: Int(seed % 5) + 10))
        guard unlink(source + "/sub/small") == 0 else { throw TestFailure("unlink: errno \(errno)") }
        try writeFile(source + "/new.bin", Fixture.bytes(50_000, seed: UInt8(truncatingIfNeeded: seed &+ 100)))
        guard chmod(source + "/shared.bin", 0o600) == 0 else { throw TestFailure("chmod: errno \(errno)") }
    }

    /// Runs one command under faults: on failure, judges the error and returns nil.
    func command<T>(_ name: String, _ body: () async throws -> T) async -> T? {
        if name.hasSuffix(": open") { try? await removeLocksOfEarlierCommands() }
        storage.phase = name
        let from = storage.log.count
        outcome.counts.commands += 1
        do {
            let value = try await body()
            outcome.transcript.append("\(name): ok")
            return value
        } catch {
            outcome.counts.commandsFailed += 1
            outcome.transcript.append("\(name): failed: \(error)")
            if let why = Self.unclear(error, root: storage.base.root) {
                let faults = storage.faults(since: from).map(\.description).joined(separator: "; ")
                violation("\(name) failed with an unclear error (\(why)): \(type(of: error)): \(error) — faults in this command: \(faults.isEmpty ? "none" : faults)")
            }
            return nil
        }
    }

    /// Why an error is not a clear one, or nil if it is.
    static func unclear(_ error: any Error, root: String) -> String? {
        let text: String
        switch error {
        case let e as RepositoryError:
            switch e {
            case .wrongCredential, .noUsableKeySlot, .noRepository:
                return "storage failed, but the error blames the credential or the repository's existence"
            case .locked, .lockLost:
                return nil  // names the cause: a lock (possibly one an earlier fault left)
            default: text = e.description
            }
        case let e as StorageError: text = e.description
        case let e as PruneError: text = e.description
        case let e as BackupError: text = e.description
        case let e as FileError: text = e.description
        case let e as RetentionError: text = e.description
        case let e as CheckError: text = e.description
        default: return "not a Coffer error type"
        }
        // Swift's spellings of values: an enum case with its payload, an optional, a module path.
        let leaks = ["Optional(", "Coffer.", "Swift.", "errno:", "Failure", "(name:", "ObjectName("]
        if let leak = leaks.first(where: { text.contains($0) }) { return "shows Swift internals (\(leak))" }
        // `notFound(…)`, or a bare `(authenticationFailed)`: a case name where words belong.
        if text.range(of: #"\b[a-z]+[A-Z][A-Za-z]*\(|\([a-z]+[A-Z][A-Za-z]*\)"#, options: .regularExpression) != nil {
            return "shows an enum case name"
        }
        let names = [root, "config", "keys/", "data/", "index/", "snapshots/", "locks/", "pack ", "blob", "tree", "snapshot "]
        guard names.contains(where: { text.contains($0) }) else { return "names no object" }
        return nil
    }

    /// Restores `attempt`'s snapshot while faults are on: it may fail or leave files out, but
    /// what it writes must be right and what it leaves out must be reported.
    func restoreUnderFaults(_ attempt: BackupAttempt) async {
        let target = dir + "/faulty-restore-\(attempt.label.replacingOccurrences(of: " ", with: "-"))"
        guard let repo = await command("restore \(attempt.label): open", { try await self.open() }) else { return }
        let result = await command("restore \(attempt.label)") {
            try await repo.restore(RestoreRequest(snapshot: attempt.id!, target: target))
        }
        let restored = (try? treeContents(target + "/src")) ?? [:]
        for (path, entry) in restored {
            guard case .file(let bytes, _, _) = entry else { continue }
            guard case .file(let want, _, _)? = attempt.contents[path] else {
                violation("restore \(attempt.label) under faults wrote \(path), which the source did not have")
                continue
            }
            if bytes != want { violation("restore \(attempt.label) under faults left \(path) with wrong bytes (\(bytes.count) bytes, want \(want.count))") }
        }
        guard let result else { return }
        let reported = Set(result.problems.map(\.path))
        for (path, entry) in attempt.contents {
            guard case .file = entry, restored[path] == nil else { continue }
            if !reported.contains(where: { $0.hasSuffix("/src/" + path) }) {
                violation("restore \(attempt.label) under faults succeeded without \(path) and did not report it (problems: \(result.problems))")
            }
        }
    }

    // MARK: After the faults

    func cleanPhase(forgetDone: ForgetResult?, pruneDone: Bool) async throws {
        let repo: Repository
        do { repo = try await open() } catch {
            violation("opening the repository with the faults gone failed: \(error)")
            return
        }
        // Each command of the CLI is a process of its own: the next one removes the locks of
        // this one (its pid is gone). In this single process, do what that next process would.
        for found in try await repo.locks() {
            guard let record = found.record, record.pid == UInt32(getpid()) else {
                violation("a lock not left by this process, or unreadable: \(found.name)")
                continue
            }
            try await storage.delete(found.name)
            outcome.counts.leftoverLocks += 1
        }

        var forget = forgetDone
        if forget == nil {
            outcome.counts.cleanReruns += 1
            do { forget = try await repo.forget(policy: RetentionPolicy(keepLast: 1), timeZone: TimeZone(identifier: "UTC")!) } catch {
                violation("re-running forget with the faults gone failed: \(error)")
                return
            }
        }
        if !pruneDone {
            outcome.counts.cleanReruns += 1
            do { _ = try await repo.prune() } catch {
                violation("re-running prune with the faults gone failed: \(error)")
            }
        }

        let report = try await repo.check(CheckOptions(readData: true))
        for p in report.problems { violation("check with the faults gone: \(p.severity.rawValue): \(p)") }

        // Which snapshots must be there: exactly those the last successful forget kept.
        let listed = Set(try await storage.list(.snapshots).compactMap { SnapshotID(hex: $0.name.name) })
        let kept = Set(forget!.groups.flatMap { $0.kept.map(\.id) })
        let removed = Set(forget!.removed)
        for id in kept.subtracting(listed) { violation("snapshot \(id.short), kept by forget, is gone") }
        for id in removed.intersection(listed) { violation("snapshot \(id.short), forgotten, is back") }
        for id in listed.subtracting(kept) { violation("snapshot \(id.short) is there, but forget did not keep it") }
        // A forget that failed under faults may have deleted what it meant to forget before
        // failing (a delete whose answer was lost); its re-run then never sees that snapshot.
        // That is allowed only for a snapshot keep-last 1 forgets: one older than a kept one.
        let newestKept = kept.compactMap { id in forget!.groups.flatMap(\.decisions).first { $0.id == id }?.timeNanos }.max()
        for attempt in attempts {
            guard let id = attempt.id, !kept.contains(id), !removed.contains(id) else { continue }
            let forgottenByTheFailedForget = forgetDone == nil && (newestKept.map { $0 > attempt.endNanos } ?? false)
            if !forgottenByTheFailedForget { violation("\(attempt.label) reported snapshot \(id.short), which forget never saw") }
        }

        for id in listed.sorted(by: { $0.hex < $1.hex }) {
            let snapshot: Snapshot
            do { snapshot = try await repo.loadSnapshot(id) } catch {
                violation("snapshot \(id.short) does not load with the faults gone: \(error)")
                continue
            }
            // The backup that wrote it, by time: a backup that failed may still have stored it.
            guard let attempt = attempts.first(where: { $0.startNanos <= snapshot.timeNanos && snapshot.timeNanos <= $0.endNanos }) else {
                violation("snapshot \(id.short) was written by none of the backups")
                continue
            }
            let target = dir + "/restore-\(id.short)"
            do {
                let result = try await repo.restore(RestoreRequest(snapshot: id, target: target))
                for p in result.problems { violation("restore of \(attempt.label) (\(id.short)) with the faults gone: \(p)") }
                let restored = try treeContents(target + "/src")
                if restored != attempt.contents {
                    let differing = Set(restored.keys).union(attempt.contents.keys).filter { restored[$0] != attempt.contents[$0] }.sorted()
                    violation("restore of \(attempt.label) (\(id.short)) differs from the source at \(differing.joined(separator: ", "))")
                } else {
                    outcome.counts.snapshotsRestored += 1
                }
            } catch {
                violation("restore of \(attempt.label) (\(id.short)) with the faults gone failed: \(error)")
            }
        }
    }
}
