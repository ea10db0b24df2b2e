import CofferCrypto
import Foundation
import Glibc
import Testing

@testable import Coffer

/// A lock clock the test moves: both clocks run as the machine's plus an offset, as after a
/// suspend (boot clock) seen from a host whose wall clock agrees.
final class MovableClock: @unchecked Sendable {
    // `offset` is only touched under `mutex`.
    private let mutex = Lock()
    private var offset: Int64 = 0

    func advance(minutes: Int64) { mutex.withLock { offset += minutes * 60_000_000_000 } }
    private var now: Int64 { mutex.withLock { offset } }

    var clock: LockClock {
        LockClock(
            wallNanos: { Repository.nowNanos() + self.now },
            bootNanos: { LockClock.system.bootNanos() &+ UInt64(self.now) })
    }
}

/// A storage that runs `action` once, when the first call matching `when` comes (before the
/// call): another process unlocking, or a request taking its time.
final class TriggerStorage: Storage, @unchecked Sendable {
    enum Call { case write(ObjectKind), list(ObjectKind) }
    // `armed` is only touched under `mutex`.
    private let mutex = Lock()
    private var armed: (Call, @Sendable () async -> Void)? = nil
    let base: any Storage
    init(_ base: any Storage) { self.base = base }

    var location: String { base.location }
    func arm(_ call: Call, _ action: @escaping @Sendable () async -> Void) { mutex.withLock { armed = (call, action) } }

    private func fire(_ call: Call) async {
        let action: (@Sendable () async -> Void)? = mutex.withLock {
            guard let (want, action) = armed else { return nil }
            switch (want, call) {
            case (.write(let a), .write(let b)) where a == b, (.list(let a), .list(let b)) where a == b:
                armed = nil
                return action
            default: return nil
            }
        }
        await action?()
    }

    func list(_ kind: ObjectKind) async throws -> [StoredObject] {
        await fire(.list(kind))
        return try await base.list(kind)
    }
    func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] { try await base.read(name, range: range) }
    func write(_ name: ObjectName, _ bytes: [UInt8]) async throws {
        await fire(.write(name.kind))
        try await base.write(name, bytes)
    }
    func delete(_ name: ObjectName) async throws { try await base.delete(name) }
    func stat(_ name: ObjectName) async throws -> StoredObject? { try await base.stat(name) }
}

@Suite struct RepositoryLockTests {
    func withRepository(_ body: (Repository, TriggerStorage, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let local = LocalStorage(path: dir + "/repo")
            try local.createLayout()
            let storage = TriggerStorage(local)
            let repo = try await Repository.initialize(storage: storage, credential: .password(Fixture.password("l")), options: Fixture.initOptions())
            mkdir(dir + "/src", 0o755)
            try await body(repo, storage, dir)
        }
    }

    func isLockLost(_ error: any Error) -> Bool {
        if case RepositoryError.lockLost = error { return true }
        return false
    }

    func lockObjects(_ repo: Repository) async throws -> Set<String> { Set(try await repo.storage.list(.locks).map(\.name.name)) }

    @Test func theMarginCoversTheLongestS3RequestAndTheClockSkew() {
        let longest = S3Transport.longestRequestSeconds * 1_000_000_000
        #expect(RepositoryLock.marginNanos == longest + RepositoryLock.toleratedSkewNanos + RepositoryLock.slackNanos)
        #expect(RepositoryLock.heldForNanos == RepositoryLock.staleAfterNanos - RepositoryLock.marginNanos)
        // A renewal that starts on time and takes the longest request still lands while held.
        #expect(Int64(RepositoryLock.refreshIntervalNanos) + longest < RepositoryLock.heldForNanos)
        // No retry starts after the whole request's time is up.
        #expect(Int64(S3Options().retryWindowSeconds) < S3Transport.longestRequestSeconds)
    }

    @Test func aLockThatLapsedWhileTheComputerSleptIsLostForGood() async throws {
        try await withRepository { repo, _, _ in
            let time = MovableClock()
            let held = try await repo.lock(exclusive: false, clock: time.clock)
            try await held.ensureHeld()
            let original = try await lockObjects(repo)
            // Asleep for 40 minutes: other hosts saw the lock go stale. The renewal due on
            // waking must not bring it back.
            time.advance(minutes: 40)
            await held.refresh()
            await #expect(performing: { try await held.ensureHeld(before: "writing the snapshot") }, throws: isLockLost)
            #expect(try await lockObjects(repo) == original, "no new lock object hides the lapse")
            // Nor does any later renewal, however punctual.
            await held.refresh()
            await #expect(performing: { try await held.ensureHeld() }, throws: isLockLost)
            #expect(throws: RepositoryError.self) { try held.ensureHeldByTime() }
            await held.release()
            #expect(try await lockObjects(repo).isEmpty)
        }
    }

    @Test func aLockJustInsideItsTimeIsRenewedAndStaysHeld() async throws {
        try await withRepository { repo, _, _ in
            let time = MovableClock()
            let held = try await repo.lock(exclusive: false, clock: time.clock)
            let original = try await lockObjects(repo)
            // Renewed every 10 minutes for two hours: always inside the 15 minutes it holds.
            for _ in 0..<12 {
                time.advance(minutes: 10)
                await held.refresh()
                try await held.ensureHeld()
            }
            let now = try await lockObjects(repo)
            #expect(now.count == 1 && now != original, "each renewal replaces the previous object")
            await held.release()
        }
    }

    @Test func aRenewalThatLandsTooLateLosesTheLock() async throws {
        try await withRepository { repo, storage, _ in
            let time = MovableClock()
            let held = try await repo.lock(exclusive: false, clock: time.clock)
            let original = try await lockObjects(repo)
            time.advance(minutes: 5)
            // The renewal's upload takes 11 minutes: it lands 16 minutes after the last object.
            storage.arm(.write(.locks)) { time.advance(minutes: 11) }
            await held.refresh()
            await #expect(performing: { try await held.ensureHeld() }, throws: isLockLost)
            #expect(try await lockObjects(repo) == original, "the late object is removed again")
            await held.release()
        }
    }

    @Test func aLockRemovedByAnotherProcessIsLostAndNotRecreated() async throws {
        try await withRepository { repo, _, _ in
            // Noticed by the check before a write.
            let a = try await repo.lock(exclusive: false)
            #expect(try await repo.removeLocks(all: true).count == 1)
            await #expect(performing: { try await a.ensureHeld() }, throws: isLockLost)
            await a.refresh()
            #expect(try await lockObjects(repo).isEmpty, "a lost lock is not renewed")
            await #expect(performing: { try await a.ensureHeld() }, throws: isLockLost)
            await a.release()

            // Noticed by a renewal first.
            let b = try await repo.lock(exclusive: false)
            _ = try await repo.removeLocks(all: true)
            await b.refresh()
            #expect(try await lockObjects(repo).isEmpty, "the renewal's own object is removed again")
            await #expect(performing: { try await b.ensureHeld() }, throws: isLockLost)
            await b.release()
        }
    }

    @Test func aBackupWhoseLockIsRemovedWritesNoIndexAndNoSnapshot() async throws {
        try await withRepository { repo, storage, dir in
            try writeFile(dir + "/src/a", Fixture.bytes(700_000, seed: 4))
            // `unlock --remove-all` from another host while the first pack uploads.
            storage.arm(.write(.data)) { _ = try? await repo.removeLocks(all: true) }
            await #expect(performing: { _ = try await repo.backup(BackupRequest(paths: [dir + "/src"])) }, throws: isLockLost)
            #expect(try await repo.storage.list(.index).isEmpty)
            #expect(try await repo.storage.list(.snapshots).isEmpty)
            #expect(try await repo.storage.list(.data).count > 0, "the test removed the lock mid-backup")
        }
    }

    @Test func pruneWhoseLockIsRemovedDeletesNothing() async throws {
        try await withRepository { repo, storage, dir in
            try writeFile(dir + "/src/a", Fixture.bytes(600_000, seed: 5))
            let first = try #require(try await repo.backup(BackupRequest(paths: [dir + "/src"])).snapshotID)
            unlink(dir + "/src/a")
            try writeFile(dir + "/src/b", Fixture.bytes(600_000, seed: 6))
            _ = try await repo.backup(BackupRequest(paths: [dir + "/src"]))
            try await repo.forgetSnapshots([first])
            let packs = try await repo.storage.list(.data).count
            let indexes = try await repo.storage.list(.index).count
            // Prune writes its new index, then another process removes every lock.
            storage.arm(.write(.index)) { _ = try? await repo.removeLocks(all: true) }
            await #expect(performing: { _ = try await repo.prune() }, throws: isLockLost)
            #expect(try await repo.storage.list(.data).count >= packs, "no pack was deleted")
            #expect(try await repo.storage.list(.index).count > indexes, "no index object was deleted")
            // With its lock, the same prune deletes what the forgotten snapshot alone used.
            let report = try await repo.prune()
            #expect(report.packsDeleted + report.packsRepacked > 0)
        }
    }

    @Test func forgetWhoseLockIsRemovedForgetsNothing() async throws {
        try await withRepository { repo, storage, dir in
            try writeFile(dir + "/src/a", Fixture.bytes(10_000, seed: 7))
            let id = try #require(try await repo.backup(BackupRequest(paths: [dir + "/src"])).snapshotID)
            storage.arm(.list(.snapshots)) { _ = try? await repo.removeLocks(all: true) }
            await #expect(performing: { try await repo.forgetSnapshots([id]) }, throws: isLockLost)
            #expect(try await repo.storage.list(.snapshots).count == 1)
        }
    }
}

@Suite struct LockClockSkewTests {
    func withRepository(_ body: (Repository) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let storage = LocalStorage(path: dir + "/repo")
            try await body(try await Repository.initialize(storage: storage, credential: .password(Fixture.password("l")), options: Fixture.initOptions()))
        }
    }

    func plant(_ repo: Repository, minutesAhead: Int64) async throws -> ObjectName {
        let record = LockRecord(
            exclusive: false, timeNanos: Repository.nowNanos() + minutesAhead * 60_000_000_000, hostname: "elsewhere", username: "x", pid: 1)
        let id = Raw256(SystemRandom().bytes(32))
        _ = try await repo.saveSealed(record.encoded(), kind: .lock, folder: .locks, id: id)
        return ObjectName(.locks, id.hex)
    }

    @Test func aLockDatedFarInTheFutureShowsSkewedClocksAndIsRefused() async throws {
        try await withRepository { repo in
            // Within the tolerance: shared locks coexist as usual.
            let near = try await plant(repo, minutesAhead: 2)
            let held = try await repo.lock(exclusive: false)
            await held.release()
            try await repo.storage.delete(near)
            // Ten minutes ahead: that host would take our lock for stale ten minutes early.
            _ = try await plant(repo, minutesAhead: 10)
            do {
                _ = try await repo.lock(exclusive: false)
                Issue.record("a lock ten minutes in the future was accepted")
            } catch RepositoryError.locked(let why) {
                #expect(why.contains("ahead of this computer's clock") && why.contains("elsewhere"), "\(why)")
            }
            #expect(try await repo.storage.list(.locks).count == 1, "our own attempt was removed again")
        }
    }

    @Test func aHostWhoseClockIsAheadWithinTheToleranceDoesNotTakeAHeldLockForStale() async throws {
        try await withRepository { repo in
            // Our lock, read by a host whose clock is 4 minutes ahead, just before our lock is
            // lost: to it the lock is still alive.
            let ours = MovableClock()
            let held = try await repo.lock(exclusive: false, clock: ours.clock)
            ours.advance(minutes: 14)
            try await held.ensureHeld()
            let ahead = MovableClock()
            ahead.advance(minutes: 14 + 4)
            // One more minute plus the longest request must still leave it alive.
            ahead.advance(minutes: 1 + S3Transport.longestRequestSeconds / 60)
            let seen = try await repo.locks(clock: ahead.clock)
            #expect(seen.count == 1 && !seen[0].stale, "a write sent after our last check could still be landing")
            ahead.advance(minutes: 1)
            #expect(try await repo.locks(clock: ahead.clock)[0].stale, "thirty minutes after its time, the lock is stale")
            await held.release()
        }
    }
}

/// Lock objects whose write landed though its answer was lost, or whose delete failed, must
/// not outlive the command: an exclusive one would block every backup for half an hour.
@Suite struct LockObjectLeakTests {
    /// Passes calls through, except: the next `lostWrites` lock writes store the object and then
    /// fail, and the next `failedDeletes` lock deletes fail and keep it.
    final class UnluckyLockStorage: Storage, @unchecked Sendable {
        let base: LocalStorage
        // Both counters are only touched under `mutex`.
        private let mutex = Lock()
        private var lostWrites = 0
        private var failedDeletes = 0
        init(_ base: LocalStorage) { self.base = base }
        func arm(lostWrites: Int = 0, failedDeletes: Int = 0) {
            mutex.withLock {
                self.lostWrites = lostWrites
                self.failedDeletes = failedDeletes
            }
        }
        private func takeLostWrite(_ name: ObjectName) -> Bool {
            name.kind == .locks && mutex.withLock {
                guard lostWrites > 0 else { return false }
                lostWrites -= 1
                return true
            }
        }
        private func takeFailedDelete(_ name: ObjectName) -> Bool {
            name.kind == .locks && mutex.withLock {
                guard failedDeletes > 0 else { return false }
                failedDeletes -= 1
                return true
            }
        }
        var location: String { base.location }
        func list(_ kind: ObjectKind) async throws -> [StoredObject] { try await base.list(kind) }
        func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] { try await base.read(name, range: range) }
        func write(_ name: ObjectName, _ bytes: [UInt8]) async throws {
            try await base.write(name, bytes)
            if takeLostWrite(name) { throw StorageError.io("write", path: base.path(name), errno: ETIMEDOUT) }
        }
        func delete(_ name: ObjectName) async throws {
            if takeFailedDelete(name) { throw StorageError.io("delete", path: base.path(name), errno: EIO) }
            try await base.delete(name)
        }
        func stat(_ name: ObjectName) async throws -> StoredObject? { try await base.stat(name) }
    }

    func withUnluckyRepository(_ body: (Repository, UnluckyLockStorage) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir async throws in
            let local = LocalStorage(path: dir + "/repo")
            let password = Fixture.password("l")
            _ = try await Repository.initialize(storage: local, credential: .password(password), options: Fixture.initOptions())
            let storage = UnluckyLockStorage(local)
            try await body(try await Repository.open(storage: storage, credential: .password(password)), storage)
        }
    }

    @Test func aLockWriteWhoseAnswerWasLostLeavesNoObject() async throws {
        try await withUnluckyRepository { repo, storage in
            storage.arm(lostWrites: 1)
            await #expect(throws: StorageError.self) { _ = try await repo.lock(exclusive: true) }
            #expect(try await storage.base.list(.locks).isEmpty, "the landed lock object was left behind")
            // And the next command takes the lock at once.
            let held = try await repo.lock(exclusive: true)
            #expect(await held.release() == nil)
            #expect(try await storage.base.list(.locks).isEmpty)
        }
    }

    @Test func aRenewalWhoseAnswerWasLostLeavesOnlyTheHeldObject() async throws {
        try await withUnluckyRepository { repo, storage in
            let held = try await repo.lock(exclusive: false)
            let before = Set(try await storage.base.list(.locks).map(\.name))
            storage.arm(lostWrites: 1)
            await held.refresh()
            #expect(Set(try await storage.base.list(.locks).map(\.name)) == before, "the renewal's object outlived its failure")
            try await held.ensureHeld()
            await held.release()
            #expect(try await storage.base.list(.locks).isEmpty)
        }
    }

    @Test func releaseRetriesAFailedDeleteAndReportsOneThatKeepsFailing() async throws {
        try await withUnluckyRepository { repo, storage in
            let once = try await repo.lock(exclusive: true)
            storage.arm(failedDeletes: 1)
            #expect(await once.release() == nil, "one failed delete is retried")
            #expect(try await storage.base.list(.locks).isEmpty)

            let stuck = try await repo.lock(exclusive: true)
            storage.arm(failedDeletes: 3)
            let failure = await stuck.release()
            #expect(failure != nil, "a delete that keeps failing is reported")
            #expect(try await storage.base.list(.locks).count == 1)
        }
    }
}
