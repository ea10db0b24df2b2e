import CofferCrypto
import Foundation
import Testing

@testable import Coffer

// Retention policies, table-driven. Every expected result below was worked out by hand from
// restic's documented algorithm (doc/060_forget.rst, internal/restic/snapshot_policy.go):
// newest first; keep-last keeps the n newest; each calendar rule keeps a snapshot whose
// hour/day/ISO week/month/year (local time) differs from the one it kept last, until n are
// kept; a rule with counts left also keeps the oldest snapshot ("oldest … snapshot" when that is
// its only reason); keep-within counts back from the newest non-future snapshot with Go's
// AddDate (which normalizes "February 31" to March 2 or 3), strictly after the cutoff.

enum RetentionZones {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
}

/// Nanoseconds of a wall-clock time in a zone, through Foundation's calendar (not the code
/// under test). Only unambiguous local times are built this way.
fileprivate func wall(_ zone: TimeZone, _ y: Int, _ mo: Int, _ d: Int, _ h: Int = 12, _ mi: Int = 0) -> Int64 {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let date = calendar.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi))!
    return Int64(date.timeIntervalSince1970) * 1_000_000_000
}

fileprivate func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 12, _ mi: Int = 0) -> Int64 { wall(RetentionZones.utc, y, mo, d, h, mi) }
fileprivate func berlin(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 12, _ mi: Int = 0) -> Int64 { wall(RetentionZones.berlin, y, mo, d, h, mi) }

/// A crafted snapshot; the label is also its id (padded), so decisions can be read back.
struct RetentionSnap {
    let label: String
    let time: Int64
    var tags: [String] = []
    var host = "host"
    var paths = ["/data"]

    var id: SnapshotID { SnapshotID(bytes: Array(label.utf8) + [UInt8](repeating: 0, count: 32 - label.utf8.count)) }
    var entry: (id: SnapshotID, snapshot: Snapshot) {
        (id, Snapshot(timeNanos: time, hostname: host, username: "u", paths: paths, tags: tags, root: BlobID(raw: .zero), parent: nil, summary: BackupSummary()))
    }
}

struct RetentionCase: CustomTestStringConvertible, Sendable {
    let name: String
    let zone: TimeZone
    let policy: RetentionPolicy
    let snaps: [RetentionSnap]
    /// label → reasons; no reasons means the snapshot is removed.
    let expected: [String: [String]]
    var now: Date = Date(timeIntervalSince1970: 2_000_000_000)
    var testDescription: String { name }
}

extension RetentionSnap: Sendable {}

private let k = ["last snapshot"]
private let daily = ["daily snapshot"]
private let weekly = ["weekly snapshot"]
private let monthly = ["monthly snapshot"]
private let yearly = ["yearly snapshot"]
private let hourly = ["hourly snapshot"]
private let removed: [String] = []

@Suite("Retention policy (restic semantics)")
struct RetentionTests {
    static let cases: [RetentionCase] = [
        // keep-last: the n newest, nothing else (counts run out before the oldest).
        RetentionCase(
            name: "keep-last 3 of 5", zone: RetentionZones.utc, policy: RetentionPolicy(keepLast: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 1)), RetentionSnap(label: "b", time: utc(2024, 1, 2)), RetentionSnap(label: "c", time: utc(2024, 1, 3)),
                    RetentionSnap(label: "d", time: utc(2024, 1, 4)), RetentionSnap(label: "e", time: utc(2024, 1, 5))],
            expected: ["e": k, "d": k, "c": k, "b": removed, "a": removed]),
        RetentionCase(
            name: "keep-last 5 of 3 keeps all, none as 'oldest' (every snapshot is its own bucket)", zone: RetentionZones.utc, policy: RetentionPolicy(keepLast: 5),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 1)), RetentionSnap(label: "b", time: utc(2024, 1, 1, 13)), RetentionSnap(label: "c", time: utc(2024, 1, 2))],
            expected: ["c": k, "b": k, "a": k]),

        // keep-daily: the newest snapshot of each day; older ones of the same day go.
        RetentionCase(
            name: "keep-daily 3 with several snapshots a day", zone: RetentionZones.utc, policy: RetentionPolicy(keepDaily: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 3, 1, 8)), RetentionSnap(label: "b", time: utc(2024, 3, 1, 20)),
                    RetentionSnap(label: "c", time: utc(2024, 3, 2, 7)), RetentionSnap(label: "d", time: utc(2024, 3, 2, 12)), RetentionSnap(label: "e", time: utc(2024, 3, 2, 23, 59)),
                    RetentionSnap(label: "f", time: utc(2024, 3, 4, 9)), RetentionSnap(label: "g", time: utc(2024, 3, 4, 10))],
            expected: ["g": daily, "f": removed, "e": daily, "d": removed, "c": removed, "b": daily, "a": removed]),
        // Days are local days: 23:30 UTC on Jan 10 is 00:30 on Jan 11 in Berlin (CET, +1).
        RetentionCase(
            name: "keep-daily 2, Berlin days", zone: RetentionZones.berlin, policy: RetentionPolicy(keepDaily: 2),
            snaps: [RetentionSnap(label: "y", time: utc(2024, 1, 10, 22, 30)), RetentionSnap(label: "x", time: utc(2024, 1, 10, 23, 30)), RetentionSnap(label: "z", time: utc(2024, 1, 11, 10))],
            expected: ["z": daily, "x": removed, "y": daily]),
        RetentionCase(
            name: "keep-daily 2, the same snapshots in UTC", zone: RetentionZones.utc, policy: RetentionPolicy(keepDaily: 2),
            snaps: [RetentionSnap(label: "y", time: utc(2024, 1, 10, 22, 30)), RetentionSnap(label: "x", time: utc(2024, 1, 10, 23, 30)), RetentionSnap(label: "z", time: utc(2024, 1, 11, 10))],
            expected: ["z": daily, "x": daily, "y": removed]),
        // Counts left at the oldest snapshot: it is kept too, marked "oldest" (restic ≥ 0.17/0.18).
        RetentionCase(
            name: "keep-daily 5 with too few days keeps the oldest", zone: RetentionZones.utc, policy: RetentionPolicy(keepDaily: 5),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 5, 1, 8)), RetentionSnap(label: "b", time: utc(2024, 5, 1, 20)), RetentionSnap(label: "c", time: utc(2024, 5, 2, 9))],
            expected: ["c": daily, "b": daily, "a": ["oldest daily snapshot"]]),

        // keep-hourly across the end of DST in Berlin (2024-10-27 01:00 UTC: 03:00 CEST → 02:00
        // CET): 00:10, 00:50 and 01:20 UTC are all local hour 2, one bucket.
        RetentionCase(
            name: "keep-hourly 3 across the DST fall-back, Berlin", zone: RetentionZones.berlin, policy: RetentionPolicy(keepHourly: 3),
            snaps: [RetentionSnap(label: "o", time: utc(2024, 10, 26, 23, 30)), RetentionSnap(label: "p", time: utc(2024, 10, 27, 0, 10)), RetentionSnap(label: "q", time: utc(2024, 10, 27, 0, 50)),
                    RetentionSnap(label: "r", time: utc(2024, 10, 27, 1, 20)), RetentionSnap(label: "s", time: utc(2024, 10, 27, 2, 5))],
            expected: ["s": hourly, "r": hourly, "q": removed, "p": removed, "o": hourly]),
        RetentionCase(
            name: "keep-hourly 3, the same snapshots in UTC", zone: RetentionZones.utc, policy: RetentionPolicy(keepHourly: 3),
            snaps: [RetentionSnap(label: "o", time: utc(2024, 10, 26, 23, 30)), RetentionSnap(label: "p", time: utc(2024, 10, 27, 0, 10)), RetentionSnap(label: "q", time: utc(2024, 10, 27, 0, 50)),
                    RetentionSnap(label: "r", time: utc(2024, 10, 27, 1, 20)), RetentionSnap(label: "s", time: utc(2024, 10, 27, 2, 5))],
            expected: ["s": hourly, "r": hourly, "q": hourly, "p": removed, "o": removed]),

        // keep-weekly on ISO weeks: 2021-01-03 (Sun) is still 2020-W53, 2021-01-04 (Mon) is
        // 2021-W01, and 2019-12-30 (Mon) is already 2020-W01.
        RetentionCase(
            name: "keep-weekly 3 across ISO week-year boundaries", zone: RetentionZones.utc, policy: RetentionPolicy(keepWeekly: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2019, 12, 29)), RetentionSnap(label: "b", time: utc(2019, 12, 30)), RetentionSnap(label: "c", time: utc(2020, 12, 28)),
                    RetentionSnap(label: "d", time: utc(2021, 1, 3)), RetentionSnap(label: "e", time: utc(2021, 1, 4)), RetentionSnap(label: "f", time: utc(2021, 1, 10))],
            expected: ["f": weekly, "e": removed, "d": weekly, "c": removed, "b": weekly, "a": removed]),
        // Sunday 23:30 UTC is Monday 00:30 in Berlin: a new ISO week there.
        RetentionCase(
            name: "keep-weekly 2, Berlin weeks start at local Monday 00:00", zone: RetentionZones.berlin, policy: RetentionPolicy(keepWeekly: 2),
            snaps: [RetentionSnap(label: "h", time: utc(2021, 1, 3, 22, 30)), RetentionSnap(label: "g", time: utc(2021, 1, 3, 23, 30)), RetentionSnap(label: "i", time: utc(2021, 1, 5))],
            expected: ["i": weekly, "g": removed, "h": weekly]),
        RetentionCase(
            name: "keep-weekly 2, the same snapshots in UTC", zone: RetentionZones.utc, policy: RetentionPolicy(keepWeekly: 2),
            snaps: [RetentionSnap(label: "h", time: utc(2021, 1, 3, 22, 30)), RetentionSnap(label: "g", time: utc(2021, 1, 3, 23, 30)), RetentionSnap(label: "i", time: utc(2021, 1, 5))],
            expected: ["i": weekly, "g": weekly, "h": removed]),

        // keep-monthly; March has no snapshot and does not count.
        RetentionCase(
            name: "keep-monthly 3", zone: RetentionZones.utc, policy: RetentionPolicy(keepMonthly: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 15)), RetentionSnap(label: "b", time: utc(2024, 1, 31, 23)), RetentionSnap(label: "c", time: utc(2024, 2, 1, 1)),
                    RetentionSnap(label: "d", time: utc(2024, 2, 29)), RetentionSnap(label: "e", time: utc(2024, 4, 2)), RetentionSnap(label: "f", time: utc(2024, 4, 20))],
            expected: ["f": monthly, "e": removed, "d": monthly, "c": removed, "b": monthly, "a": removed]),
        // 2024-01-31 23:00 UTC is 2024-02-01 00:00 in Berlin: February there.
        RetentionCase(
            name: "keep-monthly 3, Berlin months", zone: RetentionZones.berlin, policy: RetentionPolicy(keepMonthly: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 15)), RetentionSnap(label: "b", time: utc(2024, 1, 31, 23)), RetentionSnap(label: "c", time: utc(2024, 2, 1, 1)),
                    RetentionSnap(label: "d", time: utc(2024, 2, 29)), RetentionSnap(label: "e", time: utc(2024, 4, 2)), RetentionSnap(label: "f", time: utc(2024, 4, 20))],
            expected: ["f": monthly, "e": removed, "d": monthly, "c": removed, "b": removed, "a": monthly]),

        // keep-yearly; 2023 has no snapshot.
        RetentionCase(
            name: "keep-yearly 3", zone: RetentionZones.utc, policy: RetentionPolicy(keepYearly: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2021, 6, 1)), RetentionSnap(label: "b", time: utc(2021, 12, 31, 23, 30)), RetentionSnap(label: "c", time: utc(2022, 3, 1)),
                    RetentionSnap(label: "d", time: utc(2022, 11, 11)), RetentionSnap(label: "e", time: utc(2024, 1, 1, 0, 30))],
            expected: ["e": yearly, "d": yearly, "c": removed, "b": yearly, "a": removed]),
        RetentionCase(
            name: "keep-yearly 3, Berlin years (New Year's Eve 23:30 UTC is 2022 there)", zone: RetentionZones.berlin, policy: RetentionPolicy(keepYearly: 3),
            snaps: [RetentionSnap(label: "a", time: utc(2021, 6, 1)), RetentionSnap(label: "b", time: utc(2021, 12, 31, 23, 30)), RetentionSnap(label: "c", time: utc(2022, 3, 1)),
                    RetentionSnap(label: "d", time: utc(2022, 11, 11)), RetentionSnap(label: "e", time: utc(2024, 1, 1, 0, 30))],
            expected: ["e": yearly, "d": yearly, "c": removed, "b": removed, "a": yearly]),
        RetentionCase(
            name: "keep-yearly 5 with counts left keeps the oldest", zone: RetentionZones.utc, policy: RetentionPolicy(keepYearly: 5),
            snaps: [RetentionSnap(label: "a", time: utc(2021, 6, 1)), RetentionSnap(label: "b", time: utc(2021, 12, 31, 23, 30)), RetentionSnap(label: "c", time: utc(2022, 3, 1)),
                    RetentionSnap(label: "d", time: utc(2022, 11, 11)), RetentionSnap(label: "e", time: utc(2024, 1, 1, 0, 30))],
            expected: ["e": yearly, "d": yearly, "c": removed, "b": yearly, "a": ["oldest yearly snapshot"]]),

        // Combined rules: reasons accumulate in restic's order (last, hourly, daily, weekly,
        // monthly, yearly). ISO weeks 2024: Jan 10 W02, Jan 28 (Sun) W04, Feb 5–7 W06.
        RetentionCase(
            name: "keep-last 2, daily 3, weekly 2, monthly 2 combined", zone: RetentionZones.utc,
            policy: RetentionPolicy(keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 2),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 10)), RetentionSnap(label: "b", time: utc(2024, 1, 28)), RetentionSnap(label: "c", time: utc(2024, 2, 5)),
                    RetentionSnap(label: "d", time: utc(2024, 2, 6)), RetentionSnap(label: "e", time: utc(2024, 2, 6, 18)), RetentionSnap(label: "f", time: utc(2024, 2, 7))],
            expected: [
                "f": ["last snapshot", "daily snapshot", "weekly snapshot", "monthly snapshot"],
                "e": ["last snapshot", "daily snapshot"],
                "d": removed,
                "c": ["daily snapshot"],
                "b": ["weekly snapshot", "monthly snapshot"],
                "a": removed,
            ]),

        // keep-within with month arithmetic: 2024-03-31 minus 1 month is "2024-02-31", which Go
        // normalizes to 2024-03-02 (same wall time). Exactly the cutoff is not "after" it.
        RetentionCase(
            name: "keep-within 1m from March 31 (Go's AddDate normalization), Berlin", zone: RetentionZones.berlin,
            policy: RetentionPolicy(keepWithin: RetentionDuration(months: 1)),
            snaps: [RetentionSnap(label: "s4", time: berlin(2024, 2, 29, 13)), RetentionSnap(label: "s3", time: berlin(2024, 3, 1, 18)), RetentionSnap(label: "s1", time: berlin(2024, 3, 2, 12)),
                    RetentionSnap(label: "s2", time: berlin(2024, 3, 2, 12, 30)), RetentionSnap(label: "L", time: berlin(2024, 3, 31, 12))],
            expected: ["L": ["within 1m"], "s2": ["within 1m"], "s1": removed, "s3": removed, "s4": removed]),
        // One calendar day back across the start of DST (2024-03-31 02:00) is 23 hours.
        RetentionCase(
            name: "keep-within 1d across the start of DST is a calendar day, Berlin", zone: RetentionZones.berlin,
            policy: RetentionPolicy(keepWithin: RetentionDuration(days: 1)),
            snaps: [RetentionSnap(label: "x", time: berlin(2024, 3, 30, 11, 30)), RetentionSnap(label: "y", time: berlin(2024, 3, 30, 12, 30)), RetentionSnap(label: "L", time: berlin(2024, 3, 31, 12))],
            expected: ["L": ["within 1d"], "y": ["within 1d"], "x": removed]),
        RetentionCase(
            name: "keep-within 24h is exact hours, Berlin", zone: RetentionZones.berlin,
            policy: RetentionPolicy(keepWithin: RetentionDuration(hours: 24)),
            snaps: [RetentionSnap(label: "x", time: berlin(2024, 3, 30, 11, 30)), RetentionSnap(label: "y", time: berlin(2024, 3, 30, 12, 30)), RetentionSnap(label: "L", time: berlin(2024, 3, 31, 12))],
            expected: ["L": ["within 24h"], "y": ["within 24h"], "x": ["within 24h"]]),
        RetentionCase(
            name: "keep-within 1d, the same snapshots in UTC (no DST)", zone: RetentionZones.utc,
            policy: RetentionPolicy(keepWithin: RetentionDuration(days: 1)),
            snaps: [RetentionSnap(label: "x", time: berlin(2024, 3, 30, 11, 30)), RetentionSnap(label: "y", time: berlin(2024, 3, 30, 12, 30)), RetentionSnap(label: "L", time: berlin(2024, 3, 31, 12))],
            expected: ["L": ["within 1d"], "y": ["within 1d"], "x": ["within 1d"]]),
        // One day back from 2024-04-01 02:30 CEST is 2024-03-31 02:30, which does not exist
        // (clocks jumped 02:00 → 03:00). Go's time.Date then uses the offset in force before the
        // jump: the cutoff is 02:30 CET = 01:30 UTC (= 03:30 CEST).
        RetentionCase(
            name: "keep-within 1d into the DST gap, Berlin", zone: RetentionZones.berlin,
            policy: RetentionPolicy(keepWithin: RetentionDuration(days: 1)),
            snaps: [RetentionSnap(label: "g1", time: utc(2024, 3, 31, 1, 0)), RetentionSnap(label: "g2", time: utc(2024, 3, 31, 1, 45)), RetentionSnap(label: "L", time: berlin(2024, 4, 1, 2, 30))],
            expected: ["L": ["within 1d"], "g2": ["within 1d"], "g1": removed]),
        // A snapshot in the future is not the reference point (and is itself kept).
        RetentionCase(
            name: "keep-within 5d ignores future snapshots as the reference", zone: RetentionZones.utc,
            policy: RetentionPolicy(keepWithin: RetentionDuration(days: 5)),
            snaps: [RetentionSnap(label: "n3", time: utc(2024, 5, 20)), RetentionSnap(label: "n2", time: utc(2024, 5, 27)), RetentionSnap(label: "n1", time: utc(2024, 5, 31)),
                    RetentionSnap(label: "f1", time: utc(2024, 7, 1))],
            expected: ["f1": ["within 5d"], "n1": ["within 5d"], "n2": ["within 5d"], "n3": removed],
            now: Date(timeIntervalSince1970: TimeInterval(utc(2024, 6, 1, 0) / 1_000_000_000))),
        RetentionCase(
            name: "keep-within 2y5m7d3h", zone: RetentionZones.utc,
            policy: RetentionPolicy(keepWithin: RetentionDuration(years: 2, months: 5, days: 7, hours: 3)),
            // Newest 2024-08-20 12:00 → AddDate(-2, -5, -7) = 2022-03-13 12:00, minus 3 h = 09:00.
            snaps: [RetentionSnap(label: "out", time: utc(2022, 3, 13, 9)), RetentionSnap(label: "in", time: utc(2022, 3, 13, 9, 1)), RetentionSnap(label: "L", time: utc(2024, 8, 20))],
            expected: ["L": ["within 2y5m7d3h"], "in": ["within 2y5m7d3h"], "out": removed]),

        // keep-tag: all tags of one entry; entries are alternatives.
        RetentionCase(
            name: "keep-tag daily / manual,important", zone: RetentionZones.utc, policy: RetentionPolicy(keepTags: [["daily"], ["manual", "important"]]),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 1), tags: ["daily"]), RetentionSnap(label: "b", time: utc(2024, 1, 2), tags: ["manual"]),
                    RetentionSnap(label: "c", time: utc(2024, 1, 3), tags: ["important", "x", "manual"]), RetentionSnap(label: "d", time: utc(2024, 1, 4), tags: ["manual", "daily", "important"]),
                    RetentionSnap(label: "e", time: utc(2024, 1, 5))],
            expected: ["a": ["tag daily"], "b": removed, "c": ["tag manual,important"], "d": ["tag daily", "tag manual,important"], "e": removed]),
        RetentionCase(
            name: "keep-tag '' keeps untagged snapshots", zone: RetentionZones.utc, policy: RetentionPolicy(keepTags: [[""]]),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 1), tags: ["daily"]), RetentionSnap(label: "e", time: utc(2024, 1, 5))],
            expected: ["a": removed, "e": ["tag ''"]]),
        // Tags, within and counting rules together: tags first, then within, then buckets.
        RetentionCase(
            name: "keep-tag, keep-within and keep-last together", zone: RetentionZones.utc,
            policy: RetentionPolicy(keepLast: 1, keepWithin: RetentionDuration(days: 2), keepTags: [["keep"]]),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 1, 1), tags: ["keep"]), RetentionSnap(label: "b", time: utc(2024, 1, 8)),
                    RetentionSnap(label: "c", time: utc(2024, 1, 9), tags: ["keep"]), RetentionSnap(label: "d", time: utc(2024, 1, 10))],
            expected: ["d": ["within 2d", "last snapshot"], "c": ["tag keep", "within 2d"], "b": removed, "a": ["tag keep"]]),

        // -1: unlimited. keep-daily -1 keeps one per day (and the oldest, counts never run out).
        RetentionCase(
            name: "keep-daily unlimited", zone: RetentionZones.utc, policy: RetentionPolicy(keepDaily: RetentionPolicy.unlimited),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 5, 1, 8)), RetentionSnap(label: "b", time: utc(2024, 5, 1, 20)), RetentionSnap(label: "c", time: utc(2024, 5, 2, 10)),
                    RetentionSnap(label: "d", time: utc(2024, 5, 3, 9)), RetentionSnap(label: "e", time: utc(2024, 5, 3, 21))],
            expected: ["e": daily, "d": removed, "c": daily, "b": daily, "a": ["oldest daily snapshot"]]),
        RetentionCase(
            name: "keep-last unlimited", zone: RetentionZones.utc, policy: RetentionPolicy(keepLast: -1),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 5, 1, 8)), RetentionSnap(label: "b", time: utc(2024, 5, 1, 20)), RetentionSnap(label: "c", time: utc(2024, 5, 2, 10))],
            expected: ["c": k, "b": k, "a": k]),
        // A count of 0 is "off": with keep-last 0 and keep-weekly 1 only the weekly rule acts.
        RetentionCase(
            name: "keep-last 0 is off", zone: RetentionZones.utc, policy: RetentionPolicy(keepLast: 0, keepWeekly: 1),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 5, 1)), RetentionSnap(label: "b", time: utc(2024, 5, 2))],
            expected: ["b": weekly, "a": removed]),
        // An empty policy keeps everything (the CLI refuses it).
        RetentionCase(
            name: "empty policy keeps everything", zone: RetentionZones.utc, policy: RetentionPolicy(),
            snaps: [RetentionSnap(label: "a", time: utc(2024, 5, 1)), RetentionSnap(label: "b", time: utc(2024, 5, 2))],
            expected: ["b": ["policy is empty"], "a": ["policy is empty"]]),
    ]

    @Test(arguments: cases)
    func policyDecisions(_ c: RetentionCase) throws {
        let labels = Dictionary(uniqueKeysWithValues: c.snaps.map { ($0.id, $0.label) })
        // Feed them in a scrambled order: the result must not depend on it.
        let input = c.snaps.enumerated().sorted { ($0.offset * 7) % 5 < ($1.offset * 7) % 5 }.map { $0.element.entry }
        let decisions = apply(c.policy, to: input, timeZone: c.zone, now: c.now)
        #expect(decisions.count == c.snaps.count)
        #expect(decisions.map(\.timeNanos) == decisions.map(\.timeNanos).sorted(by: >), "decisions come newest first")
        var got: [String: [String]] = [:]
        for d in decisions {
            let label = try #require(labels[d.id])
            #expect(d.keep == !d.reasons.isEmpty, "\(label): keep must be true exactly when there are reasons")
            got[label] = d.reasons
        }
        for (label, want) in c.expected.sorted(by: { $0.key < $1.key }) {
            #expect(got[label] == want, "\(c.name): \(label) \(want.isEmpty ? "should be removed" : "should be kept for \(want)"), got \(got[label] ?? [])")
        }
        #expect(Set(c.expected.keys) == Set(c.snaps.map(\.label)), "the table row names every snapshot")
    }

    @Test func equalTimesAreOrderedByID() {
        // Two snapshots in the same nanosecond: the larger id counts as newer, deterministically.
        let a = RetentionSnap(label: "a", time: utc(2024, 1, 1)), b = RetentionSnap(label: "b", time: utc(2024, 1, 1))
        for input in [[a.entry, b.entry], [b.entry, a.entry]] {
            let d = apply(RetentionPolicy(keepLast: 1), to: input, timeZone: RetentionZones.utc)
            #expect(d.map(\.keep) == [true, false])
            #expect(d.first?.id == b.id)
        }
        #expect(apply(RetentionPolicy(keepLast: 1), to: [], timeZone: RetentionZones.utc).isEmpty)
    }

    // MARK: Durations

    static let durations: [(text: String, parsed: RetentionDuration?)] = [
        ("2y5m7d3h", RetentionDuration(years: 2, months: 5, days: 7, hours: 3)),
        ("7d", RetentionDuration(days: 7)),
        ("36h", RetentionDuration(hours: 36)),
        ("3h1y", RetentionDuration(years: 1, hours: 3)),
        ("1m2m", RetentionDuration(months: 2)),  // a repeated unit overrides, as in restic
        (" 1y6m ", RetentionDuration(years: 1, months: 6)),
        ("", RetentionDuration()),
        ("1y-2m", RetentionDuration(years: 1, months: -2)),  // parsed; validate() refuses it
        ("5", nil),  // no unit
        ("d", nil),  // no number
        ("1w", nil),  // restic has no weeks
        ("1y 2m", nil),
        ("99999999999999999999d", nil),
    ]

    @Test(arguments: durations.indices)
    func durationParsing(_ i: Int) {
        let row = Self.durations[i]
        let parsed = try? RetentionDuration(parsing: row.text)
        #expect(parsed == row.parsed, "\"\(row.text)\"")
    }

    @Test func durationDescriptionIsResticsSpelling() {
        #expect(RetentionDuration(years: 2, months: 5, days: 7, hours: 3).description == "2y5m7d3h")
        #expect(RetentionDuration(years: 1, hours: 3).description == "1y3h")
        #expect(RetentionDuration(days: 7).description == "7d")
        #expect(RetentionDuration().isZero)
    }

    // MARK: Policy

    @Test func emptinessAndValidation() throws {
        #expect(RetentionPolicy().isEmpty)
        #expect(RetentionPolicy(keepLast: 0, keepDaily: 0).isEmpty)
        #expect(RetentionPolicy(keepWithin: RetentionDuration()).isEmpty)
        #expect(!RetentionPolicy(keepLast: -1).isEmpty)
        #expect(!RetentionPolicy(keepWithin: RetentionDuration(hours: 1)).isEmpty)
        #expect(!RetentionPolicy(keepTags: [[""]]).isEmpty)

        try RetentionPolicy(keepLast: -1, keepHourly: 0, keepDaily: 7).validate()
        #expect(throws: RetentionError.self) { try RetentionPolicy(keepDaily: -2).validate() }
        #expect(throws: RetentionError.self) { try RetentionPolicy(keepYearly: -5).validate() }
        #expect(throws: RetentionError.self) { try RetentionPolicy(keepWithin: RetentionDuration(years: 1, months: -2)).validate() }
    }

    @Test func policyDescription() {
        #expect(RetentionPolicy(keepLast: 2, keepDaily: 7).description == "keep 2 latest, 7 daily snapshots")
        #expect(RetentionPolicy(keepMonthly: -1).description == "keep all monthly snapshots")
        #expect(
            RetentionPolicy(keepWeekly: 4, keepWithin: RetentionDuration(days: 2), keepTags: [["a", "b"], ["c"]]).description
                == "keep 4 weekly snapshots and all snapshots with tags [a,b] or [c] and all snapshots within 2d of the newest")
    }

    // MARK: Grouping

    static let groupSnaps = [
        RetentionSnap(label: "h1", time: utc(2024, 1, 1), tags: ["x"], host: "alpha", paths: ["/b", "/a"]),
        RetentionSnap(label: "h2", time: utc(2024, 1, 2), host: "alpha", paths: ["/a", "/b"]),
        RetentionSnap(label: "h3", time: utc(2024, 1, 3), host: "beta", paths: ["/a", "/b"]),
        RetentionSnap(label: "h4", time: utc(2024, 1, 4), host: "alpha", paths: ["/c"]),
    ]

    static let groupings: [(by: GroupBy, expected: [(key: SnapshotGroupKey, members: [String])])] = [
        (.default, [
            (SnapshotGroupKey(hostname: "alpha", paths: ["/a", "/b"]), ["h1", "h2"]),
            (SnapshotGroupKey(hostname: "alpha", paths: ["/c"]), ["h4"]),
            (SnapshotGroupKey(hostname: "beta", paths: ["/a", "/b"]), ["h3"]),
        ]),
        (.host, [(SnapshotGroupKey(hostname: "alpha"), ["h1", "h2", "h4"]), (SnapshotGroupKey(hostname: "beta"), ["h3"])]),
        (.paths, [(SnapshotGroupKey(paths: ["/a", "/b"]), ["h1", "h2", "h3"]), (SnapshotGroupKey(paths: ["/c"]), ["h4"])]),
        (.tags, [(SnapshotGroupKey(tags: []), ["h2", "h3", "h4"]), (SnapshotGroupKey(tags: ["x"]), ["h1"])]),
        ([], [(SnapshotGroupKey(), ["h1", "h2", "h3", "h4"])]),
    ]

    @Test(arguments: groupings.indices)
    func grouping(_ i: Int) {
        let row = Self.groupings[i]
        let labels = Dictionary(uniqueKeysWithValues: Self.groupSnaps.map { ($0.id, $0.label) })
        let groups = group(Self.groupSnaps.map(\.entry), by: row.by)
        #expect(groups.map(\.key) == row.expected.map(\.key), "group-by \(row.by)")
        #expect(groups.map { $0.snapshots.map { labels[$0.id]! } } == row.expected.map(\.members), "group-by \(row.by)")
    }

    @Test func thePolicyAppliesPerGroup() {
        // keep-last 1 per host+paths group keeps the newest of each group, not only h4.
        let labels = Dictionary(uniqueKeysWithValues: Self.groupSnaps.map { ($0.id, $0.label) })
        let kept = group(Self.groupSnaps.map(\.entry), by: .default)
            .flatMap { apply(RetentionPolicy(keepLast: 1), to: $0.snapshots, timeZone: RetentionZones.utc) }
            .filter(\.keep).map { labels[$0.id]! }
        #expect(Set(kept) == ["h2", "h3", "h4"])
    }

    @Test func groupByParsing() throws {
        #expect(try GroupBy(parsing: "host,paths") == .default)
        #expect(try GroupBy(parsing: "hosts,path,tag") == [.host, .paths, .tags])
        #expect(try GroupBy(parsing: "tags") == .tags)
        #expect(try GroupBy(parsing: "") == [])
        #expect(throws: RetentionError.self) { try GroupBy(parsing: "host,user") }
    }
}

/// `Repository.forget` and `forgetSnapshots` on a real local repository, with crafted snapshots.
@Suite("Forget on a repository")
struct RepositoryForgetTests {
    func withRepository(_ body: (Repository) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await Repository.initialize(
                storage: LocalStorage(path: dir + "/repo"), credential: .password(Fixture.password("pw")), options: Fixture.initOptions())
            try await body(repo)
        }
    }

    func save(_ repo: Repository, _ snaps: [RetentionSnap]) async throws -> [String: SnapshotID] {
        var ids: [String: SnapshotID] = [:]
        for s in snaps { ids[s.label] = try await repo.saveSnapshot(s.entry.snapshot).0 }
        return ids
    }

    static let snaps = [
        RetentionSnap(label: "a1", time: utc(2024, 1, 1), host: "alpha"), RetentionSnap(label: "a2", time: utc(2024, 1, 2), host: "alpha"),
        RetentionSnap(label: "a3", time: utc(2024, 1, 3), host: "alpha"), RetentionSnap(label: "b1", time: utc(2024, 1, 1), host: "beta"),
        RetentionSnap(label: "b2", time: utc(2024, 1, 5), host: "beta"),
    ]

    @Test func forgetAppliesThePolicyPerGroupAndDeletesOnlySnapshots() async throws {
        try await withRepository { repo in
            let ids = try await save(repo, Self.snaps)
            let before = try await repo.storage.list(.data).count + repo.storage.list(.index).count

            let dry = try await repo.forget(policy: RetentionPolicy(keepLast: 1), timeZone: RetentionZones.utc, dryRun: true)
            #expect(Set(dry.removed) == [ids["a1"]!, ids["a2"]!, ids["b1"]!])
            #expect(try await repo.snapshots().count == 5, "a dry run deletes nothing")

            let result = try await repo.forget(policy: RetentionPolicy(keepLast: 1), timeZone: RetentionZones.utc)
            #expect(result.groups.map(\.key) == [SnapshotGroupKey(hostname: "alpha", paths: ["/data"]), SnapshotGroupKey(hostname: "beta", paths: ["/data"])])
            #expect(result.groups.map { $0.kept.map(\.id) } == [[ids["a3"]!], [ids["b2"]!]])
            #expect(Set(try await repo.snapshots().map(\.id)) == [ids["a3"]!, ids["b2"]!])
            #expect(try await repo.storage.list(.data).count + repo.storage.list(.index).count == before, "forget leaves packs and index alone")
            #expect(try await repo.storage.list(.locks).isEmpty, "the lock is released")
        }
    }

    @Test func aPolicyThatWouldEmptyAGroupIsRefused() async throws {
        try await withRepository { repo in
            _ = try await save(repo, Self.snaps)
            await #expect(throws: RetentionError.self) {
                _ = try await repo.forget(policy: RetentionPolicy(keepTags: [["no-such-tag"]]), timeZone: RetentionZones.utc)
            }
            #expect(try await repo.snapshots().count == 5)
        }
    }

    @Test func forgetSnapshotsDeletesExactlyThoseAndChecksThemFirst() async throws {
        try await withRepository { repo in
            let ids = try await save(repo, Self.snaps)
            try await repo.forgetSnapshots([ids["a2"]!, ids["b1"]!, ids["a2"]!])
            #expect(Set(try await repo.snapshots().map(\.id)) == [ids["a1"]!, ids["a3"]!, ids["b2"]!])

            // An unknown id: nothing is deleted, not even the known one listed before it.
            let unknown = SnapshotID(bytes: [UInt8](repeating: 0xEE, count: 32))
            await #expect(throws: RepositoryError.self) { try await repo.forgetSnapshots([ids["a1"]!, unknown]) }
            #expect(try await repo.snapshots().count == 3)
            #expect(try await repo.storage.list(.locks).isEmpty)
        }
    }
}
