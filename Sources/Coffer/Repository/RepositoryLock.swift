import CofferCrypto
import Glibc

/// A lock on the repository (FORMAT.md §11.1). Backups hold shared locks, prune an exclusive
/// one. A held lock is renewed by writing a new lock object and deleting the old one; other
/// hosts take a lock for stale once the time in its newest object is `staleAfterNanos` behind
/// their clocks.
///
/// Once the lock may have looked stale to anyone, a prune may have run, and the lock is lost
/// for good: renewing it then would only hide the lapse. It counts as lost when more than
/// `heldForNanos` of boot time (which counts sleep and SIGSTOP) has passed since the moment
/// just before the time in our newest written object was taken, when its object is gone, or
/// when a renewal landed too late. `ensureHeld` fails from then on.
public final class RepositoryLock: @unchecked Sendable {
    // `state` is only touched under `mutex`.
    /// How often a held lock is renewed.
    public static let refreshIntervalNanos: UInt64 = 3 * 60 * 1_000_000_000
    /// After a failed renewal, the next try comes this much later (while time is left).
    static let retryIntervalNanos: UInt64 = 30 * 1_000_000_000
    /// A lock whose recorded time is this far behind a host's clock is stale to that host.
    public static let staleAfterNanos: Int64 = 30 * 60 * 1_000_000_000
    /// How far apart two hosts' clocks may be: a host whose clock is ahead by this much sees
    /// our lock go stale this much early.
    public static let toleratedSkewNanos: Int64 = 4 * 60 * 1_000_000_000
    /// Between a check and the start of the write it guards: sealing, compressing, scheduling.
    static let slackNanos: Int64 = 60 * 1_000_000_000
    /// What a check keeps in hand before the lock could look stale to anyone: the longest one
    /// storage request can take (S3Transport bounds every request, retries included), the clock
    /// skew tolerated and the slack. A write sent after a successful check has landed (or was
    /// abandoned) before any other host may take the lock for stale.
    public static let marginNanos: Int64 = S3Transport.longestRequestSeconds * 1_000_000_000 + toleratedSkewNanos + slackNanos
    /// How long after the time in its newest object was taken (by the boot clock) the lock is ours.
    public static let heldForNanos: Int64 = staleAfterNanos - marginNanos

    private struct State {
        /// Our newest lock object that is certainly written.
        var current: Raw256
        /// Boot time until which the lock is certainly ours.
        var heldUntil: UInt64
        /// Why the lock was lost; once set, never cleared.
        var lost: String? = nil
        /// The last renewal's failure, for the message when the lock then runs out.
        var refreshFailure: String? = nil
        var nextRefresh: UInt64
    }

    private let repository: Repository
    private let exclusive: Bool
    let clock: LockClock
    private let mutex = Lock()
    private var state: State
    private var refresher: Task<Void, Never>? = nil
    /// The latest renewal, which the next one waits for (under `mutex`).
    private var lastRenewal: Task<Void, Never>? = nil

    /// `writtenBoot`: the boot time read just before the wall time recorded in `current`.
    init(repository: Repository, exclusive: Bool, current: Raw256, writtenBoot: UInt64, clock: LockClock) {
        self.repository = repository
        self.exclusive = exclusive
        self.clock = clock
        state = State(
            current: current, heldUntil: writtenBoot &+ UInt64(Self.heldForNanos),
            nextRefresh: writtenBoot &+ Self.refreshIntervalNanos)
    }

    /// Renews the lock when due. The loop wakes every few seconds and asks the boot clock,
    /// because a sleep timer does not count suspended time: after a laptop wakes, the renewal
    /// that is due (and finds the lock lost) comes at once.
    func startRefreshing() {
        refresher = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 2_000_000_000)
                guard !Task.isCancelled, let self else { return }
                let now = self.clock.bootNanos()
                let (due, lost) = self.mutex.withLock { (now >= self.state.nextRefresh, self.state.lost != nil) }
                if lost { return }
                // Once begun, a renewal runs to its end even if release() cancels the loop: a
                // lock object written but not recorded in `state` would outlive us.
                if due { await withoutCancellation { await self.refresh() } }
            }
        }
    }

    /// Writes a new lock object and deletes the previous one, unless the lock is lost, the new
    /// object lands when the previous one may already have looked stale, or the previous one
    /// was removed meanwhile (`unlock`); then the lock is lost, and the new object is deleted
    /// again. Renewals run one after another: two at once would each take the other's deleted
    /// object for a removal by someone else.
    func refresh() async {
        let mine: Task<Void, Never> = mutex.withLock {
            let before = lastRenewal
            let task = Task { [weak self] in
                await before?.value
                await self?.renew()
            }
            lastRenewal = task
            return task
        }
        await mine.value
    }

    private func renew() async {
        do { try checkTime() } catch { return }
        let previous = mutex.withLock { state.current }
        let writtenBoot = clock.bootNanos()
        let fresh = repository.newLockID()
        do {
            try await repository.writeLock(fresh, exclusive: exclusive, clock: clock)
        } catch {
            // The write may have landed though its answer was lost: no object of ours may
            // outlive us, so it goes (a delete of nothing is no error).
            await repository.removeLockObject(fresh)
            let retry = clock.bootNanos() &+ Self.retryIntervalNanos
            mutex.withLock {
                state.refreshFailure = "\(error)"
                state.nextRefresh = retry
            }
            return
        }
        // Removed while we were renewing it: someone took it for stale or unlocked by hand.
        // (A failed look says nothing; the time check still applies.)
        if let look = try? await lockObjectPresent(previous), !look {
            mutex.withLock { if state.lost == nil { state.lost = Self.removed(previous) } }
        }
        let now = clock.bootNanos()
        let superseded: Raw256 = mutex.withLock {
            if state.lost == nil && now >= state.heldUntil { state.lost = Self.lapsed(state) }
            if state.lost != nil { return fresh }
            defer {
                state.current = fresh
                state.heldUntil = writtenBoot &+ UInt64(Self.heldForNanos)
                state.nextRefresh = writtenBoot &+ Self.refreshIntervalNanos
                state.refreshFailure = nil
            }
            return state.current
        }
        await repository.removeLockObject(superseded)
    }

    /// Throws unless the lock is certainly still ours and stays ours for `marginNanos` more:
    /// its object is still there and its time is recent by the boot clock. Called right before
    /// writing anything that references data (an index, a snapshot) and before prune's
    /// deletions; `before` says which, for the message.
    public func ensureHeld(before: String = "going on") async throws {
        try checkTime(before: before)
        let id = mutex.withLock { state.current }
        guard try await repository.storage.stat(ObjectName(.locks, id.hex)) != nil else {
            let why = Self.removed(id)
            mutex.withLock { if state.lost == nil { state.lost = why } }
            throw RepositoryError.lockLost(why, before: before)
        }
        // The stat took time of its own.
        try checkTime(before: before)
    }

    /// The same by the clock alone, without asking the storage: cheap enough before every one
    /// of many deletions.
    public func ensureHeldByTime(before: String = "going on") throws {
        try checkTime(before: before)
    }

    private func checkTime(before: String = "renewing the lock") throws {
        let now = clock.bootNanos()
        let why: String? = mutex.withLock {
            if state.lost == nil && now >= state.heldUntil { state.lost = Self.lapsed(state) }
            return state.lost
        }
        if let why { throw RepositoryError.lockLost(why, before: before) }
    }

    private func lockObjectPresent(_ id: Raw256) async throws -> Bool {
        try await repository.storage.stat(ObjectName(.locks, id.hex)) != nil
    }

    private static func removed(_ id: Raw256) -> String {
        "its lock object locks/\(id.hex.prefix(8))… was removed by another process"
    }

    private static func lapsed(_ state: State) -> String {
        let minutes = heldForNanos / 60_000_000_000
        return "it was not renewed within \(minutes) minutes (the computer slept, the process was stopped, or the storage did not answer"
            + (state.refreshFailure.map { ": \($0)" } ?? "") + "), so another process may have taken it for stale"
    }

    /// Removes the lock object; call once when the work is done (or failed). A delete that
    /// keeps failing is given up after a few tries and returned: the object then goes stale in
    /// `staleAfterNanos`, and this host's next run removes it at once (its process is gone).
    @discardableResult
    public func release() async -> (any Error)? {
        refresher?.cancel()
        await refresher?.value  // a refresh in progress must not leave a fresh lock behind
        let id = mutex.withLock { state.current }
        let repository = self.repository
        return await withoutCancellation { await repository.removeLockObject(id) }
    }
}

/// A lock found in the repository, with whether it can be ignored.
public struct FoundLock: Sendable {
    public let name: ObjectName
    /// nil when the object could not be opened (damaged, or written under another key).
    public let record: LockRecord?
    public let stale: Bool
    /// Stale because its process is gone on this very host: safe to delete automatically.
    public let processGone: Bool
}

extension Repository {
    func newLockID() -> Raw256 { Raw256(random.bytes(32)) }

    func writeLock(_ id: Raw256, exclusive: Bool, clock: LockClock) async throws {
        let record = LockRecord(
            exclusive: exclusive, timeNanos: clock.wallNanos(), hostname: Self.hostname(), username: Self.username(),
            pid: UInt32(getpid()), bootID: LockRecord.currentBootID, pidNamespace: LockRecord.currentPIDNamespace)
        _ = try await saveSealed(record.encoded(), kind: .lock, folder: .locks, id: id)
    }

    /// Deletes one of our own lock objects, trying three times over about two seconds; returns
    /// the last failure. A storage whose answer was lost may hold the object or not: a delete
    /// of an absent object counts as done.
    @discardableResult
    func removeLockObject(_ id: Raw256) async -> (any Error)? {
        var failure: (any Error)? = nil
        for attempt in 0..<3 {
            do {
                try await storage.delete(ObjectName(.locks, id.hex))
                return nil
            } catch StorageError.notFound {
                return nil
            } catch {
                failure = error
                if attempt < 2 { try? await Task.sleep(nanoseconds: UInt64(attempt + 1) * 500_000_000) }
            }
        }
        return failure
    }

    /// Every lock object, classified.
    public func locks(clock: LockClock = .system) async throws -> [FoundLock] {
        let now = clock.wallNanos()
        let host = Self.hostname()
        var out: [FoundLock] = []
        for object in try await storage.list(.locks) {
            guard let id = Hex.decode(object.name.name).map(Raw256.init) else { continue }
            let payload: [UInt8]
            do { payload = try await loadSealed(kind: .lock, name: object.name, id: id) } catch RepositoryError.missingObject {
                continue  // released between the listing and the read
            } catch {
                out.append(FoundLock(name: object.name, record: nil, stale: false, processGone: false))
                continue
            }
            guard let record = try? LockRecord(decoding: payload, name: String(object.name.name.prefix(8))) else {
                out.append(FoundLock(name: object.name, record: nil, stale: false, processGone: false))
                continue
            }
            // "Gone" only when certain: same host, same boot, same PID namespace, no such pid.
            let here = record.hostname == host && record.bootID == LockRecord.currentBootID && record.pidNamespace == LockRecord.currentPIDNamespace
            let gone = here && kill(pid_t(record.pid), 0) != 0 && errno == ESRCH
            let expired = now &- record.timeNanos > RepositoryLock.staleAfterNanos
            out.append(FoundLock(name: object.name, record: record, stale: gone || expired, processGone: gone))
        }
        return out
    }

    /// Takes a lock, retrying for up to `waitNanos` while a conflicting lock is held. Locks of
    /// processes that are gone from this host are removed on the way.
    public func lock(exclusive: Bool, waitNanos: UInt64 = 0, clock: LockClock = .system) async throws -> RepositoryLock {
        let deadline = MonotonicClock.nanos() &+ min(waitNanos, 7 * 24 * 3600 * 1_000_000_000)
        while true {
            let writtenBoot = clock.bootNanos()
            let mine = newLockID()
            do { try await writeLock(mine, exclusive: exclusive, clock: clock) } catch {
                await removeLockObject(mine)  // it may have landed though the answer was lost
                throw error
            }
            var conflict: String? = nil
            let others: [FoundLock]
            do { others = try await locks(clock: clock) } catch {
                await removeLockObject(mine)
                throw error
            }
            for found in others where found.name.name != mine.hex {
                if found.processGone {
                    try? await storage.delete(found.name)
                    continue
                }
                // A lock dated in our future shows clocks further apart than the scheme
                // tolerates: one of the two hosts would take the other's lock for stale early.
                if let record = found.record, record.timeNanos - clock.wallNanos() > RepositoryLock.toleratedSkewNanos {
                    let minutes = (record.timeNanos - clock.wallNanos()) / 60_000_000_000
                    conflict = "the \(record.description) is dated \(minutes) minutes ahead of this computer's clock; "
                        + "locking is safe only while the clocks of the computers using a repository differ by less than "
                        + "\(RepositoryLock.toleratedSkewNanos / 60_000_000_000) minutes: set them right (NTP)"
                    break
                }
                if found.stale { continue }
                guard let record = found.record else {
                    conflict = "\(found.name) cannot be read; if no other coffer is running, remove it with `coffer unlock --remove-all`"
                    break
                }
                if exclusive || record.exclusive {
                    conflict = "the repository is locked: \(record.description) since \(record.timeNanos / 1_000_000_000) (Unix time)"
                    break
                }
            }
            guard let conflict else {
                let held = RepositoryLock(repository: self, exclusive: exclusive, current: mine, writtenBoot: writtenBoot, clock: clock)
                // Taking it may have been slow (a long listing): it must still be ours now.
                do { try held.ensureHeldByTime(before: "starting") } catch {
                    await held.release()
                    throw error
                }
                held.startRefreshing()
                return held
            }
            await removeLockObject(mine)
            guard MonotonicClock.nanos() < deadline else { throw RepositoryError.locked(conflict) }
            try await Task.sleep(nanoseconds: UInt64.random(in: 500_000_000...2_000_000_000))
        }
    }

    /// Runs `body` under a lock and always releases it.
    public func withLock<T: Sendable>(exclusive: Bool, waitNanos: UInt64 = 0, _ body: (RepositoryLock) async throws -> T) async throws -> T {
        let held = try await lock(exclusive: exclusive, waitNanos: waitNanos)
        do {
            let result = try await body(held)
            await held.release()
            return result
        } catch {
            await held.release()
            throw error
        }
    }

    /// Runs `body` under a lock that it does not need to see.
    public func withLock<T: Sendable>(exclusive: Bool, waitNanos: UInt64 = 0, _ body: () async throws -> T) async throws -> T {
        try await withLock(exclusive: exclusive, waitNanos: waitNanos) { (_: RepositoryLock) in try await body() }
    }

    /// Deletes stale locks (or every lock with `all`); returns what was removed.
    public func removeLocks(all: Bool, clock: LockClock = .system) async throws -> [ObjectName] {
        var removed: [ObjectName] = []
        for found in try await locks(clock: clock) where all || found.stale {
            try await storage.delete(found.name)
            removed.append(found.name)
        }
        return removed
    }
}
