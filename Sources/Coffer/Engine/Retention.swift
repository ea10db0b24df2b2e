#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

// Retention policies for `forget`, with restic's semantics (internal/restic/snapshot_policy.go,
// duration.go and snapshot_group.go): the same rules, the same order of evaluation, the same
// calendar arithmetic. Pure functions of their inputs; nothing here touches a repository.

/// A span of calendar time as restic writes it: "2y5m7d3h" (years, months, days, hours).
public struct RetentionDuration: Sendable, Hashable, CustomStringConvertible {
    public var years: Int
    public var months: Int
    public var days: Int
    public var hours: Int

    public init(years: Int = 0, months: Int = 0, days: Int = 0, hours: Int = 0) {
        self.years = years
        self.months = months
        self.days = days
        self.hours = hours
    }

    /// Parses restic's form: numbers each followed by a unit `y`, `m`, `d` or `h`, in any order
    /// (a repeated unit overrides the earlier one), e.g. "1y6m", "7d", "36h", "2y5m7d3h". An
    /// empty string is the zero duration. A number may carry a `-` (rejected by `validate`).
    public init(parsing text: String) throws {
        self.init()
        var rest = Substring(text.trimmingWhitespace())
        while !rest.isEmpty {
            var negative = false
            if rest.first == "-" {
                negative = true
                rest = rest.dropFirst()
            }
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty else { throw RetentionError("invalid duration \"\(text)\": no number found") }
            guard let magnitude = Int(digits) else { throw RetentionError("invalid duration \"\(text)\": \(digits) is too large") }
            let number = negative ? -magnitude : magnitude
            rest = rest.dropFirst(digits.count)
            guard let unit = rest.first else {
                throw RetentionError("invalid duration \"\(text)\": no unit found after number \(number) (use y, m, d or h)")
            }
            switch unit {
            case "y": years = number
            case "m": months = number
            case "d": days = number
            case "h": hours = number
            default: throw RetentionError("invalid duration \"\(text)\": invalid unit \"\(unit)\" after number \(number) (use y, m, d or h)")
            }
            rest = rest.dropFirst()
        }
    }

    public var isZero: Bool { years == 0 && months == 0 && days == 0 && hours == 0 }

    /// restic's spelling: the non-zero parts in the order y, m, d, h ("2y7d"); "" when zero.
    public var description: String {
        var s = ""
        if years != 0 { s += "\(years)y" }
        if months != 0 { s += "\(months)m" }
        if days != 0 { s += "\(days)d" }
        if hours != 0 { s += "\(hours)h" }
        return s
    }
}

public struct RetentionError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Which snapshots to keep (restic's `forget --keep-*`). Everything a policy does not keep is
/// removed. Counting rules take a count n: nil or 0 means the rule is off, `unlimited` (-1)
/// means no limit.
public struct RetentionPolicy: Sendable, Hashable, CustomStringConvertible {
    public static let unlimited = -1

    /// Keep the n newest snapshots.
    public var keepLast: Int?
    /// For the n newest hours (days, ISO weeks, months, years) that have snapshots, keep the
    /// newest snapshot of each, in the given time zone.
    public var keepHourly: Int?
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    public var keepYearly: Int?
    /// Keep every snapshot newer than this much before the group's newest snapshot (calendar
    /// arithmetic in the given time zone for years, months and days; hours are exact).
    public var keepWithin: RetentionDuration?
    /// Keep a snapshot that carries all tags of any one entry. An empty tag ("") stands for
    /// "no tags": `[""]` keeps the untagged snapshots (restic's `--keep-tag ''`).
    public var keepTags: [[String]]

    public init(
        keepLast: Int? = nil, keepHourly: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil,
        keepMonthly: Int? = nil, keepYearly: Int? = nil, keepWithin: RetentionDuration? = nil, keepTags: [[String]] = []
    ) {
        self.keepLast = keepLast
        self.keepHourly = keepHourly
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
        self.keepWithin = keepWithin
        self.keepTags = keepTags
    }

    var counts: [(count: Int, kind: String)] {
        [(keepLast ?? 0, "latest"), (keepHourly ?? 0, "hourly"), (keepDaily ?? 0, "daily"), (keepWeekly ?? 0, "weekly"),
         (keepMonthly ?? 0, "monthly"), (keepYearly ?? 0, "yearly")]
    }

    /// No rule is set (all counts nil or 0, no duration or a zero one, no tag lists): such a
    /// policy keeps everything, and `forget` refuses it as restic does.
    public var isEmpty: Bool {
        counts.allSatisfy { $0.count == 0 } && (keepWithin?.isZero ?? true) && keepTags.isEmpty
    }

    /// restic's checks: counts must be -1 (unlimited) or more, durations not negative.
    public func validate() throws {
        if let bad = counts.first(where: { $0.count < -1 }) {
            throw RetentionError("negative values other than -1 (unlimited) are not allowed for --keep-* (got \(bad.count) for \(bad.kind == "latest" ? "last" : bad.kind))")
        }
        if let d = keepWithin, d.years < 0 || d.months < 0 || d.days < 0 || d.hours < 0 {
            throw RetentionError("durations containing negative values are not allowed for --keep-within (got \(d))")
        }
    }

    /// In restic's words: "keep 2 latest snapshots, 7 daily snapshots and all snapshots within 2d of the newest".
    public var description: String {
        var s = ""
        let parts = counts.compactMap { c -> String? in
            c.count > 0 ? "\(c.count) \(c.kind)" : c.count == -1 ? "all \(c.kind)" : nil
        }
        if !parts.isEmpty { s = parts.joined(separator: ", ") + " snapshots" }
        if !keepTags.isEmpty {
            if !s.isEmpty { s += " and " }
            s += "all snapshots with tags " + keepTags.map { "[" + $0.map { $0.isEmpty ? "''" : $0 }.joined(separator: ",") + "]" }.joined(separator: " or ")
        }
        if let w = keepWithin, !w.isZero {
            if !s.isEmpty { s += " and " }
            s += "all snapshots within \(w) of the newest"
        }
        return s.isEmpty ? "keep everything (empty policy)" : "keep " + s
    }
}

/// What a policy decided for one snapshot.
public struct RetentionDecision: Sendable, Hashable {
    public let id: SnapshotID
    public let timeNanos: Int64
    public let keep: Bool
    /// Why it is kept, in restic's order: tags, within, then last, hourly, daily, weekly,
    /// monthly, yearly ("tag daily", "within 2d", "last snapshot", "daily snapshot", …). Empty
    /// for a snapshot to remove.
    public let reasons: [String]

    public init(id: SnapshotID, timeNanos: Int64, keep: Bool, reasons: [String]) {
        self.id = id
        self.timeNanos = timeNanos
        self.keep = keep
        self.reasons = reasons
    }
}

/// Applies `policy` to one group of snapshots, exactly as restic's `ApplyPolicy`:
///
/// - Snapshots are taken newest first (equal times: the larger id first).
/// - A snapshot is kept when it has all tags of any `keepTags` entry, or when it is newer than
///   `keepWithin` before the newest snapshot that is not in the future (relative to `now`).
/// - Each counting rule with n left (or unlimited) keeps a snapshot whose bucket — its hour,
///   day, ISO week, month or year in `timeZone`; for keep-last every snapshot is its own
///   bucket — differs from the bucket of the snapshot this rule kept last, and counts n down.
///   The oldest snapshot is also kept by every rule that still has counts left (restic ≥ 0.17:
///   "if there are not enough snapshots, the oldest is kept additionally"); when that is the
///   only reason for the rule, the reason reads "oldest daily snapshot" (restic ≥ 0.18).
/// - The reasons accumulate: one per rule that kept the snapshot.
/// An empty policy keeps everything ("policy is empty"). Returns one decision per snapshot,
/// newest first.
public func apply(
    _ policy: RetentionPolicy, to snapshots: [(id: SnapshotID, snapshot: Snapshot)], timeZone: TimeZone, now: Date = Date()
) -> [RetentionDecision] {
    let list = snapshots.sorted { a, b in
        a.snapshot.timeNanos != b.snapshot.timeNanos ? a.snapshot.timeNanos > b.snapshot.timeNanos : a.id > b.id
    }
    if policy.isEmpty {
        return list.map { RetentionDecision(id: $0.id, timeNanos: $0.snapshot.timeNanos, keep: true, reasons: ["policy is empty"]) }
    }
    let clock = CivilClock(timeZone: timeZone)

    struct Bucket {
        var count: Int
        let value: (Int64, Int) -> Int
        var last: Int?
        let reason: String
    }
    var buckets = [
        Bucket(count: policy.keepLast ?? 0, value: { _, nr in nr }, last: nil, reason: "last snapshot"),
        Bucket(count: policy.keepHourly ?? 0, value: { t, _ in clock.hourBucket(t) }, last: nil, reason: "hourly snapshot"),
        Bucket(count: policy.keepDaily ?? 0, value: { t, _ in clock.dayBucket(t) }, last: nil, reason: "daily snapshot"),
        Bucket(count: policy.keepWeekly ?? 0, value: { t, _ in clock.isoWeekBucket(t) }, last: nil, reason: "weekly snapshot"),
        Bucket(count: policy.keepMonthly ?? 0, value: { t, _ in clock.monthBucket(t) }, last: nil, reason: "monthly snapshot"),
        Bucket(count: policy.keepYearly ?? 0, value: { t, _ in clock.yearBucket(t) }, last: nil, reason: "yearly snapshot"),
    ]

    // keep-within counts back from the newest snapshot that is not in the future. With none,
    // restic's reference is the zero time (year 1), so every snapshot is within.
    var withinCutoff: Int64?? = nil  // nil: rule off; .some(nil): everything is within
    if let within = policy.keepWithin, !within.isZero {
        let nowNanos = nanos(now)
        let latest = list.map(\.snapshot.timeNanos).filter { $0 < nowNanos }.max()
        withinCutoff = .some(latest.map { clock.subtracting(within, from: $0) })
    }

    var decisions: [RetentionDecision] = []
    decisions.reserveCapacity(list.count)
    for (nr, current) in list.enumerated() {
        let time = current.snapshot.timeNanos
        var reasons: [String] = []
        for required in policy.keepTags where hasTags(current.snapshot.tags, required) {
            reasons.append("tag " + required.map { $0.isEmpty ? "''" : $0 }.joined(separator: ","))
        }
        if case .some(let cutoff) = withinCutoff, cutoff.map({ time > $0 }) ?? true {
            reasons.append("within \(policy.keepWithin!)")
        }
        for i in buckets.indices where buckets[i].count > 0 || buckets[i].count == -1 {
            let value = buckets[i].value(time, nr)
            if value != buckets[i].last || nr == list.count - 1 {
                // Kept only because it is the oldest: restic says "oldest daily snapshot".
                let onlyAsOldest = value == buckets[i].last
                buckets[i].last = value
                if buckets[i].count > 0 { buckets[i].count -= 1 }
                reasons.append(onlyAsOldest ? "oldest " + buckets[i].reason : buckets[i].reason)
            }
        }
        decisions.append(RetentionDecision(id: current.id, timeNanos: time, keep: !reasons.isEmpty, reasons: reasons))
    }
    return decisions
}

/// restic's `HasTags`: the snapshot has every tag of `required`; an empty tag ("" — restic's
/// `--keep-tag ''`) matches a snapshot without tags.
private func hasTags(_ tags: [String], _ required: [String]) -> Bool {
    for tag in required {
        if tag.isEmpty && tags.isEmpty { return true }
        if !tags.contains(tag) { return false }
    }
    return true
}

private func nanos(_ date: Date) -> Int64 {
    let seconds = date.timeIntervalSince1970
    guard seconds.isFinite else { return seconds > 0 ? .max : .min }
    return seconds >= 9.2e9 ? .max : seconds <= -9.2e9 ? .min : Int64(seconds * 1e9)
}

// MARK: - Grouping

/// How snapshots are grouped before a policy is applied (restic's `--group-by`).
public struct GroupBy: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let host = GroupBy(rawValue: 1)
    public static let paths = GroupBy(rawValue: 2)
    public static let tags = GroupBy(rawValue: 4)
    /// restic's default, `host,paths`.
    public static let `default`: GroupBy = [.host, .paths]

    /// "host,paths,tags" in any combination (also "hosts", "path", "tag"); "" groups nothing:
    /// the policy then applies to all snapshots together.
    public init(parsing text: String) throws {
        self = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            switch part.trimmingWhitespace() {
            case "host", "hosts": insert(.host)
            case "path", "paths": insert(.paths)
            case "tag", "tags": insert(.tags)
            case "": break
            default: throw RetentionError("unknown grouping option \"\(part)\" (use host, paths and/or tags, separated by commas)")
            }
        }
    }

    public var description: String {
        var parts: [String] = []
        if contains(.host) { parts.append("host") }
        if contains(.paths) { parts.append("paths") }
        if contains(.tags) { parts.append("tags") }
        return parts.joined(separator: ",")
    }
}

/// What the snapshots of one group share. A field is nil when the grouping does not use it;
/// paths and tags are sorted (so a different order on the command line is the same group).
public struct SnapshotGroupKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var hostname: String?
    public var paths: [String]?
    public var tags: [String]?

    public init(hostname: String? = nil, paths: [String]? = nil, tags: [String]? = nil) {
        self.hostname = hostname
        self.paths = paths
        self.tags = tags
    }

    public static func < (a: Self, b: Self) -> Bool {
        func less(_ x: [String]?, _ y: [String]?) -> Bool? {
            let (x, y) = (x ?? [], y ?? [])
            return x == y ? nil : x.lexicographicallyPrecedes(y)
        }
        if a.hostname != b.hostname { return (a.hostname ?? "") < (b.hostname ?? "") }
        if let p = less(a.paths, b.paths) { return p }
        return less(a.tags, b.tags) ?? false
    }

    /// "host kasimir, paths [/home/user/work], tags [daily]"; "all snapshots" when ungrouped.
    public var description: String {
        var parts: [String] = []
        if let hostname { parts.append("host \(hostname)") }
        if let paths { parts.append("paths [\(paths.joined(separator: ", "))]") }
        if let tags { parts.append("tags [\(tags.joined(separator: ", "))]") }
        return parts.isEmpty ? "all snapshots" : parts.joined(separator: ", ")
    }
}

public struct SnapshotGroup: Sendable {
    public let key: SnapshotGroupKey
    /// In the order given to `group`.
    public let snapshots: [(id: SnapshotID, snapshot: Snapshot)]
}

/// Splits snapshots into groups by host, paths and/or tags (restic's `GroupSnapshots`); groups
/// come ordered by key.
public func group(_ snapshots: [(id: SnapshotID, snapshot: Snapshot)], by groupBy: GroupBy) -> [SnapshotGroup] {
    var members: [SnapshotGroupKey: [(id: SnapshotID, snapshot: Snapshot)]] = [:]
    for entry in snapshots {
        let s = entry.snapshot
        let key = SnapshotGroupKey(
            hostname: groupBy.contains(.host) ? s.hostname : nil,
            paths: groupBy.contains(.paths) ? s.paths.sorted() : nil,
            tags: groupBy.contains(.tags) ? s.tags.sorted() : nil)
        members[key, default: []].append(entry)
    }
    return members.keys.sorted().map { SnapshotGroup(key: $0, snapshots: members[$0]!) }
}

// MARK: - Civil time in a time zone (proleptic Gregorian, as Go's time package)

/// Local calendar fields of instants, and Go's `AddDate` (which normalizes: March 31 minus one
/// month is "February 31", that is March 2 or 3), computed with integer arithmetic on top of
/// the zone's UTC offsets.
struct CivilClock {
    let timeZone: TimeZone

    func offset(atUnixSeconds s: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(s))))
    }

    /// (days since 1970-01-01 in local time, seconds into the local day, nanoseconds).
    func local(_ nanos: Int64) -> (day: Int64, second: Int64, nano: Int64) {
        let (seconds, nano) = Self.floorDivMod(nanos, 1_000_000_000)
        let (day, second) = Self.floorDivMod(seconds + offset(atUnixSeconds: seconds), 86_400)
        return (day, second, nano)
    }

    func civil(_ nanos: Int64) -> (year: Int, month: Int, day: Int, hour: Int) {
        let l = local(nanos)
        let (y, m, d) = Self.civilFromDays(l.day)
        return (y, m, d, Int(l.second / 3600))
    }

    func hourBucket(_ t: Int64) -> Int { let c = civil(t); return c.year * 1_000_000 + c.month * 10_000 + c.day * 100 + c.hour }
    func dayBucket(_ t: Int64) -> Int { let c = civil(t); return c.year * 10_000 + c.month * 100 + c.day }
    func monthBucket(_ t: Int64) -> Int { let c = civil(t); return c.year * 100 + c.month }
    func yearBucket(_ t: Int64) -> Int { civil(t).year }

    /// ISO 8601 week-numbering year × 100 + week (weeks start on Monday; week 1 holds the
    /// year's first Thursday), as Go's `ISOWeek`.
    func isoWeekBucket(_ t: Int64) -> Int {
        let day = local(t).day
        let weekday = Self.floorDivMod(day + 3, 7).1 + 1  // 1970-01-01 was a Thursday; Monday = 1
        let thursday = day - (weekday - 1) + 3
        let year = Self.civilFromDays(thursday).year
        let week = (thursday - Self.daysFromCivil(year, 1, 1)) / 7 + 1
        return year * 100 + Int(week)
    }

    /// restic's `t.AddDate(-years, -months, -days).Add(-hours)`, with Go's normalization of
    /// out-of-range days and its choice of offset for local times in a DST gap or overlap.
    func subtracting(_ d: RetentionDuration, from t: Int64) -> Int64 {
        let l = local(t)
        let (y, m, day) = Self.civilFromDays(l.day)
        let (year, month0) = Self.floorDivMod(Int64(y - d.years) * 12 + Int64(m - 1 - d.months), 12)
        let localDay = Self.daysFromCivil(Int(year), Int(month0) + 1, 1) + Int64(day - 1 - d.days)
        let unix = localDay * 86_400 + l.second
        // Go's time.Date: take the offset in force at `unix` read as UTC; if `unix - offset`
        // lies in another zone period, take that period's offset instead.
        var zoneOffset = offset(atUnixSeconds: unix)
        let other = offset(atUnixSeconds: unix - zoneOffset)
        if other != zoneOffset { zoneOffset = other }
        return (unix - zoneOffset) * 1_000_000_000 + l.nano - Int64(d.hours) * 3_600_000_000_000
    }
}

extension CivilClock {
    static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b, r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(yoe + era * 400 + (m <= 2 ? 1 : 0)), Int(m), Int(d))
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> Substring {
        let s = self[...]
        guard let start = s.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = s.lastIndex(where: { !$0.isWhitespace })!
        return Substring(s[start...end])
    }
}
