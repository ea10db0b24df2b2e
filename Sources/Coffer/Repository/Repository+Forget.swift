#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// One group of snapshots and what a retention policy decided for each of them.
public struct ForgetGroup: Sendable {
    public let key: SnapshotGroupKey
    /// One per snapshot of the group, newest first.
    public let decisions: [RetentionDecision]
    /// The group's snapshots by id.
    public let snapshots: [SnapshotID: Snapshot]

    public var kept: [RetentionDecision] { decisions.filter(\.keep) }
    public var removed: [RetentionDecision] { decisions.filter { !$0.keep } }
}

public struct ForgetResult: Sendable {
    public let groups: [ForgetGroup]
    /// The snapshots forgotten (or, on a dry run, the ones that would be), newest first per group.
    public let removed: [SnapshotID]
    public let dryRun: Bool
}

extension Repository {
    /// Forgets snapshots: deletes their `snapshots/<id>` objects. That is the only change to the
    /// repository's contents (besides the transient lock object); the data they alone used stays
    /// until `prune`. Holds an exclusive lock, as restic's forget does, so it does not run beside
    /// a backup or prune. Checks first that every id exists and deletes nothing if one does not.
    public func forgetSnapshots(_ ids: [SnapshotID], lockWaitNanos: UInt64 = 0) async throws {
        var seen = Set<SnapshotID>()
        let unique = ids.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { return }
        try await withLock(exclusive: true, waitNanos: lockWaitNanos) { lock in
            let present = Set(try await storage.list(.snapshots).compactMap { SnapshotID(hex: $0.name.name) })
            if let missing = unique.first(where: { !present.contains($0) }) {
                throw RepositoryError.snapshotNotFound(missing.hex)
            }
            try await deleteSnapshotObjects(unique, lock: lock)
        }
    }

    /// Applies `policy` to every group of snapshots (grouped by `groupBy`, restic's default
    /// host and paths) and forgets what it does not keep. The listing, the decisions and the
    /// deletions happen under one exclusive lock; a dry run takes no lock and changes nothing.
    /// An empty policy keeps everything (the CLI refuses it before getting here); a policy that
    /// would keep no snapshot of some group throws and forgets nothing.
    public func forget(
        policy: RetentionPolicy, groupBy: GroupBy = .default, timeZone: TimeZone, dryRun: Bool = false,
        lockWaitNanos: UInt64 = 0, now: Date = Date()
    ) async throws -> ForgetResult {
        try policy.validate()
        @Sendable func decide(_ all: [(id: SnapshotID, snapshot: Snapshot)]) throws -> ForgetResult {
            let groups = group(all, by: groupBy).map { g in
                ForgetGroup(
                    key: g.key, decisions: apply(policy, to: g.snapshots, timeZone: timeZone, now: now),
                    snapshots: Dictionary(g.snapshots.map { ($0.id, $0.snapshot) }, uniquingKeysWith: { a, _ in a }))
            }
            // restic ≥ 0.17: a policy that keeps nothing of a group (a --keep-tag no snapshot of
            // it has, say) is a mistake, not an instruction to empty the group.
            if !policy.isEmpty, let empty = groups.first(where: { $0.kept.isEmpty }) {
                throw RetentionError("refusing to forget every snapshot of the group (\(empty.key)): the policy keeps none of them")
            }
            return ForgetResult(groups: groups, removed: groups.flatMap { $0.removed.map(\.id) }, dryRun: dryRun)
        }
        if dryRun { return try decide(try await snapshots()) }
        return try await withLock(exclusive: true, waitNanos: lockWaitNanos) { lock in
            let result = try decide(try await snapshots())
            try await deleteSnapshotObjects(result.removed, lock: lock)
            return result
        }
    }

    /// Deletes only while the exclusive lock is certainly held, as prune does: one whose lock
    /// lapsed is no longer alone in the repository.
    private func deleteSnapshotObjects(_ ids: [SnapshotID], lock: RepositoryLock) async throws {
        if !ids.isEmpty { try await lock.ensureHeld(before: "forgetting snapshots; none was forgotten") }
        for id in ids {
            try Task.checkCancellation()
            try lock.ensureHeldByTime(before: "forgetting the rest of the snapshots")
            try await storage.delete(ObjectName(.snapshots, id.hex))
        }
    }
}
