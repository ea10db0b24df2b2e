import ArgumentParser
import Coffer
import Foundation

struct ForgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget", abstract: "Remove snapshots: the ones named, or those a retention policy does not keep.",
        discussion: """
            With snapshot ids (or unique prefixes, or latest), forgets exactly those. Otherwise the \
            snapshots are grouped by --group-by (host and paths unless told otherwise) and the \
            --keep-* policy is applied to each group, as restic does: --keep-daily 7 keeps the \
            newest snapshot of each of the 7 newest days that have snapshots, and so on for hours, \
            ISO weeks, months and years, in the local time zone (TZ); if a rule has counts left \
            at the oldest snapshot, that one is kept too. A count of -1 or `unlimited` has no \
            limit. --keep-within 1y6m keeps everything newer than that before the group's newest \
            snapshot. Whatever any rule keeps is kept; the rest is forgotten. Without ids and \
            without a policy nothing is forgotten: that is refused, and so is a policy that would \
            keep no snapshot of a group.

            forget deletes only snapshot objects, under an exclusive lock; run prune (or give \
            --prune) to free the data only they used.
            """)

    @OptionGroup var options: RepositoryOptions

    @Argument(help: ArgumentHelp("Snapshots to forget: ids, unique id prefixes, or latest.", valueName: "id"))
    var ids: [String] = []

    @Option(name: [.customShort("l"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the n newest snapshots"), transform: ForgetCommand.parseCount)
    var keepLast: Int?
    @Option(name: [.customShort("H"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the newest snapshot of each of the n newest hours"), transform: ForgetCommand.parseCount)
    var keepHourly: Int?
    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the newest snapshot of each of the n newest days"), transform: ForgetCommand.parseCount)
    var keepDaily: Int?
    @Option(name: [.customShort("w"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the newest snapshot of each of the n newest ISO weeks"), transform: ForgetCommand.parseCount)
    var keepWeekly: Int?
    @Option(name: [.customShort("m"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the newest snapshot of each of the n newest months"), transform: ForgetCommand.parseCount)
    var keepMonthly: Int?
    @Option(name: [.customShort("y"), .long], parsing: .unconditional, help: ForgetCommand.countHelp("the newest snapshot of each of the n newest years"), transform: ForgetCommand.parseCount)
    var keepYearly: Int?
    @Option(help: ArgumentHelp("Keep snapshots newer than this before the group's newest one, e.g. 2y5m7d3h.", valueName: "duration"), transform: ForgetCommand.parseDuration)
    var keepWithin: RetentionDuration?
    @Option(help: ArgumentHelp("Keep snapshots with all of these comma-separated tags (repeatable: any one list; '' keeps untagged ones).", valueName: "tags"))
    var keepTag: [String] = []
    @Option(name: [.customShort("g"), .long], help: ArgumentHelp("Group snapshots by host, paths and/or tags, comma-separated ('' for one group).", valueName: "fields"))
    var groupBy: String = "host,paths"

    @Flag(name: [.customShort("n"), .long], help: "Show what would be forgotten; change nothing.") var dryRun = false
    @Flag(help: "Run prune afterwards if snapshots were forgotten (a dry run with --dry-run).") var prune = false
    @Option(help: ArgumentHelp("With --prune: rewrite packs with more than this share unused, e.g. 5% or 0.05.", valueName: "share"))
    var maxUnused: String = "5%"
    @Option(help: ArgumentHelp("Wait this many seconds for other coffer processes' locks.", valueName: "seconds"))
    var retryLock: Double = 0

    static func countHelp(_ what: String) -> ArgumentHelp {
        ArgumentHelp("Keep \(what) (-1 or 'unlimited': no limit).", valueName: "n")
    }

    static func parseCount(_ text: String) throws -> Int {
        if text == "unlimited" { return RetentionPolicy.unlimited }
        guard let n = Int(text) else { throw ValidationError("expected a whole number, -1 or 'unlimited'") }
        guard n >= -1 else { throw ValidationError("negative values other than -1 (unlimited) are not allowed") }
        return n
    }

    static func parseDuration(_ text: String) throws -> RetentionDuration {
        let d = try RetentionDuration(parsing: text)
        guard d.years >= 0, d.months >= 0, d.days >= 0, d.hours >= 0 else {
            throw ValidationError("durations containing negative values are not allowed")
        }
        return d
    }

    var policy: RetentionPolicy {
        get {
            // "a,b" needs both tags; '' (restic's spelling) keeps the snapshots without tags.
            let tags = keepTag.map { entry -> [String] in
                let list = entry.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                return list.isEmpty ? [""] : list
            }
            return RetentionPolicy(
                keepLast: keepLast, keepHourly: keepHourly, keepDaily: keepDaily, keepWeekly: keepWeekly,
                keepMonthly: keepMonthly, keepYearly: keepYearly, keepWithin: keepWithin, keepTags: tags)
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            let policy = self.policy
            do { try policy.validate() } catch let e as RetentionError { throw CLIError.usage(e.description) }
            let grouping: GroupBy
            do { grouping = try GroupBy(parsing: groupBy) } catch let e as RetentionError { throw CLIError.usage(e.description) }
            if !ids.isEmpty && !policy.isEmpty {
                throw CLIError.usage("give either snapshot ids or a --keep-* policy, not both")
            }
            if ids.isEmpty && policy.isEmpty {
                throw CLIError.usage(
                    "no policy given and no snapshots named: refusing to forget anything (use --keep-last, --keep-daily, … or name the snapshots)")
            }
            if prune { _ = try PruneRunner.parseShare(maxUnused) }
            let lockWait = UInt64(max(retryLock, 0) * 1e9)
            let text = !options.json && !options.quiet

            let (repo, _) = try await options.open()
            var report = ForgetJSON(dryRun: dryRun)
            if !ids.isEmpty {
                var chosen: [(id: SnapshotID, snapshot: Snapshot)] = []
                for reference in ids {
                    let found = try await repo.resolveSnapshot(reference)
                    if !chosen.contains(where: { $0.id == found.id }) { chosen.append(found) }
                }
                if !dryRun { try await repo.forgetSnapshots(chosen.map(\.id), lockWaitNanos: lockWait) }
                report.removed = chosen.map { SnapshotRefJSON($0.id, $0.snapshot, reasons: nil) }
                if text {
                    for (id, _) in chosen { print("\(dryRun ? "would remove" : "removed") snapshot \(id.short)") }
                }
            } else {
                if text { print("Applying policy: \(policy)") }
                let result = try await repo.forget(
                    policy: policy, groupBy: grouping, timeZone: .current, dryRun: dryRun, lockWaitNanos: lockWait)
                for g in result.groups {
                    let keep = g.kept.reversed().map { SnapshotRefJSON($0.id, g.snapshots[$0.id]!, reasons: $0.reasons) }
                    let remove = g.removed.reversed().map { SnapshotRefJSON($0.id, g.snapshots[$0.id]!, reasons: nil) }
                    report.groups.append(ForgetGroupJSON(key: g.key, keep: keep, remove: remove))
                    if text { Self.printGroup(g, grouped: !grouping.isEmpty) }
                }
                report.removed = result.groups.flatMap { g in g.removed.reversed().map { SnapshotRefJSON($0.id, g.snapshots[$0.id]!, reasons: nil) } }
                if text {
                    let n = report.removed.count
                    print(n == 0 ? "nothing to forget" : "\(dryRun ? "would remove" : "removed") \(n) snapshot\(n == 1 ? "" : "s")")
                }
            }

            if prune && !report.removed.isEmpty {
                if text { print(dryRun ? "running prune as a dry run" : "running prune") }
                let pruned = try await PruneRunner.run(repo, maxUnused: maxUnused, retryLock: retryLock, dryRun: dryRun, quiet: !text)
                report.prune = pruned
                if text { PruneRunner.print(pruned, json: false, quiet: false) }
            }
            if options.json { Output.json(report) }
        }
    }

    static func printGroup(_ g: ForgetGroup, grouped: Bool) {
        if grouped { print("snapshots for (\(g.key)):") }
        let rule = String(repeating: "-", count: 92)
        for (title, list) in [("keep", g.kept), ("remove", g.removed)] where !list.isEmpty {
            print("\(title) \(list.count) snapshot\(list.count == 1 ? "" : "s"):")
            print("ID        Time                 Host             Tags        Reasons                  Paths")
            print(rule)
            for d in list.reversed() {
                let s = g.snapshots[d.id]!
                let cols = [
                    d.id.short, Output.time(s.timeNanos), s.hostname.padding(16), s.tags.joined(separator: ",").padding(11),
                    d.reasons.joined(separator: ", ").padding(24),
                ]
                print(cols.joined(separator: "  ") + " " + s.paths.joined(separator: ", "))
            }
            print(rule)
            print("")
        }
    }
}

/// `forget --json`: one document.
struct ForgetJSON: Encodable {
    let dryRun: Bool
    /// Per group (policy runs only): what is kept and why, and what is removed, oldest first.
    var groups: [ForgetGroupJSON] = []
    /// Every snapshot forgotten (or that would be, on a dry run).
    var removed: [SnapshotRefJSON] = []
    var prune: PruneReport? = nil

    init(dryRun: Bool) { self.dryRun = dryRun }
}

struct ForgetGroupJSON: Encodable {
    /// The group key: a field is null when snapshots are not grouped by it.
    let host: String?
    let paths: [String]?
    let tags: [String]?
    let keep: [SnapshotRefJSON]
    let remove: [SnapshotRefJSON]

    init(key: SnapshotGroupKey, keep: [SnapshotRefJSON], remove: [SnapshotRefJSON]) {
        host = key.hostname
        paths = key.paths
        tags = key.tags
        self.keep = keep
        self.remove = remove
    }

    enum CodingKeys: String, CodingKey { case host, paths, tags, keep, remove }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        // Explicit nulls, so a consumer sees which fields make up the key.
        try c.encode(host, forKey: .host)
        try c.encode(paths, forKey: .paths)
        try c.encode(tags, forKey: .tags)
        try c.encode(keep, forKey: .keep)
        try c.encode(remove, forKey: .remove)
    }
}

struct SnapshotRefJSON: Encodable {
    let id: String
    let shortID: String
    let time: String
    let hostname: String
    let paths: [String]
    let tags: [String]
    let reasons: [String]?

    init(_ id: SnapshotID, _ s: Snapshot, reasons: [String]?) {
        self.id = id.hex
        shortID = id.short
        time = Output.isoTime(s.timeNanos)
        hostname = s.hostname
        paths = s.paths
        tags = s.tags
        self.reasons = reasons
    }
}
