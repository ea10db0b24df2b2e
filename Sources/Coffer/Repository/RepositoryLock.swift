import CofferCrypto
import Glibc

/// A lock on the repository (FORMAT.md §11.1). Backups hold shared locks, prune an exclusive
/// one. A held lock is refreshed by writing a new lock object and deleting the old one, so a
/// lock whose newest object is older than `staleAfter` belongs to a process that died.
public final class RepositoryLock: @unchecked Sendable {
    // `current` is only touched under `lock`.
    public static let refreshInterval: UInt64 = 5 * 60 * 1_000_000_000
    public static let staleAfterNanos: Int64 = 30 * 60 * 1_000_000_000

    private let repository: Repository
    private let exclusive: Bool
    private let mutex = Lock()
    private var current: Raw256
    private var refresher: Task<Void, Never>? = nil
    /// CLOCK_BOOTTIME of the last successful write of our lock object; it counts suspended
    /// time, so a laptop that slept through the stale period notices.
    private var lastWritten = BootClock.nanos()
    private var refreshError: (any Error)? = nil

    init(repository: Repository, exclusive: Bool, current: Raw256) {
        self.repository = repository
        self.exclusive = exclusive
        self.current = current
    }

    func startRefreshing() {
        refresher = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: Self.refreshInterval)
                guard !Task.isCancelled, let self else { return }
                // Once begun, a refresh runs to its end even if release() cancels the loop: a
                // lock object written but not recorded in `current` would outlive us.
                do { try await withoutCancellation { try await self.refresh() } } catch { self.mutex.withLock { self.refreshError = error } }
            }
        }
    }

    private func refresh() async throws {
        let fresh = try await repository.writeLock(exclusive: exclusive)
        let old = mutex.withLock { () -> Raw256 in
            defer {
                current = fresh
                lastWritten = BootClock.nanos()
                refreshError = nil
            }
            return current
        }
        try? await repository.storage.delete(ObjectName(.locks, old.hex))
    }

    /// Throws unless the lock is certainly still ours: refreshed recently (by a clock that counts
    /// sleep) and its object still present. Called before writing anything that references
    /// data, so a backup whose lock lapsed (and that prune may have raced) stops instead of
    /// writing a snapshot that points at deleted packs.
    public func ensureHeld() async throws {
        let (id, written, failure) = mutex.withLock { (current, lastWritten, refreshError) }
        // Wide enough for a write after this check to finish while the lock still holds: a
        // remote backend starts no retry more than 10 minutes after a request's first attempt.
        let margin: Int64 = 15 * 60 * 1_000_000_000
        guard BootClock.nanos() - written < UInt64(Self.staleAfterNanos - margin) else {
            throw RepositoryError.lockLost("the lock was not refreshed for too long\(failure.map { " (\($0))" } ?? "")")
        }
        guard try await repository.storage.stat(ObjectName(.locks, id.hex)) != nil else {
            throw RepositoryError.lockLost("its lock object was removed by another process")
        }
    }

    /// Removes the lock object; call once when the work is done (or failed).
    public func release() async {
        refresher?.cancel()
        await refresher?.value  // a refresh in progress must not leave a fresh lock behind
        let id = mutex.withLock { current }
        let storage = repository.storage
        await withoutCancellation { try? await storage.delete(ObjectName(.locks, id.hex)) }
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
    func writeLock(exclusive: Bool) async throws -> Raw256 {
        let id = Raw256(random.bytes(32))
        let record = LockRecord(
            exclusive: exclusive, timeNanos: Self.nowNanos(), hostname: Self.hostname(), username: Self.username(),
            pid: UInt32(getpid()), bootID: LockRecord.currentBootID, pidNamespace: LockRecord.currentPIDNamespace)
        _ = try await saveSealed(record.encoded(), kind: .lock, folder: .locks, id: id)
        return id
    }

    /// Every lock object, classified.
    public func locks() async throws -> [FoundLock] {
        let now = Self.nowNanos()
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
    public func lock(exclusive: Bool, waitNanos: UInt64 = 0) async throws -> RepositoryLock {
        let deadline = MonotonicClock.nanos() &+ min(waitNanos, 7 * 24 * 3600 * 1_000_000_000)
        while true {
            let mine = try await writeLock(exclusive: exclusive)
            var conflict: String? = nil
            for found in try await locks() where found.name.name != mine.hex {
                if found.processGone {
                    try? await storage.delete(found.name)
                    continue
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
                let held = RepositoryLock(repository: self, exclusive: exclusive, current: mine)
                held.startRefreshing()
                return held
            }
            try? await storage.delete(ObjectName(.locks, mine.hex))
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
    public func removeLocks(all: Bool) async throws -> [ObjectName] {
        var removed: [ObjectName] = []
        for found in try await locks() where all || found.stale {
            try await storage.delete(found.name)
            removed.append(found.name)
        }
        return removed
    }
}

/// CLOCK_BOOTTIME in nanoseconds: monotonic, and it keeps counting while the machine sleeps.
enum BootClock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
