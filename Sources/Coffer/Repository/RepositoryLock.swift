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
                try? await self.refresh()
            }
        }
    }

    private func refresh() async throws {
        let fresh = try await repository.writeLock(exclusive: exclusive)
        let old = mutex.withLock { () -> Raw256 in
            defer { current = fresh }
            return current
        }
        try? await repository.storage.delete(ObjectName(.locks, old.hex))
    }

    /// Removes the lock object; call once when the work is done (or failed).
    public func release() async {
        refresher?.cancel()
        let id = mutex.withLock { current }
        try? await repository.storage.delete(ObjectName(.locks, id.hex))
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
            pid: UInt32(getpid()))
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
            guard let payload = try? await loadSealed(kind: .lock, name: object.name, id: id),
                let record = try? LockRecord(decoding: payload, name: String(object.name.name.prefix(8)))
            else {
                out.append(FoundLock(name: object.name, record: nil, stale: false, processGone: false))
                continue
            }
            let gone = record.hostname == host && kill(pid_t(record.pid), 0) != 0 && errno == ESRCH
            let expired = now - record.timeNanos > RepositoryLock.staleAfterNanos
            out.append(FoundLock(name: object.name, record: record, stale: gone || expired, processGone: gone))
        }
        return out
    }

    /// Takes a lock, retrying for up to `waitNanos` while a conflicting lock is held. Locks of
    /// processes that are gone from this host are removed on the way.
    public func lock(exclusive: Bool, waitNanos: UInt64 = 0) async throws -> RepositoryLock {
        let deadline = DispatchFreeClock.nanos() + waitNanos
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
            guard DispatchFreeClock.nanos() < deadline else { throw RepositoryError.locked(conflict) }
            try await Task.sleep(nanoseconds: UInt64.random(in: 500_000_000...2_000_000_000))
        }
    }

    /// Runs `body` under a lock and always releases it.
    public func withLock<T: Sendable>(exclusive: Bool, waitNanos: UInt64 = 0, _ body: () async throws -> T) async throws -> T {
        let held = try await lock(exclusive: exclusive, waitNanos: waitNanos)
        do {
            let result = try await body()
            await held.release()
            return result
        } catch {
            await held.release()
            throw error
        }
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
