/// A backup profile (README "Profiles"): the sources, the selection rules and the retention
/// policy of a daily job, so that it is one command: `coffer backup --profile FILE`. Stored as
/// JSON; every field is optional except `sources`.
public struct BackupProfile: Codable, Sendable, Equatable {
    public struct Retention: Codable, Sendable, Equatable {
        public var keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly: Int?
        /// restic's duration form, e.g. "2y5m7d3h".
        public var keepWithin: String?
        /// Each entry is a comma-separated tag list (restic's --keep-tag).
        public var keepTags: [String]?
        /// Run prune after forgetting.
        public var prune: Bool?
    }

    /// Repository location, used when neither --repo nor COFFER_REPOSITORY is given.
    public var repository: String?
    /// Password file, used when no other password source is given.
    public var passwordFile: String?
    public var sources: [String]
    public var tags: [String]?
    public var exclude: [String]?
    public var iexclude: [String]?
    public var excludeLargerThan: String?
    public var excludeIfPresent: [String]?
    public var excludeCategories: [String]?
    public var oneFileSystem: Bool?
    public var retention: Retention?

    /// The profile's selection rules, added to `rules`.
    public func apply(to rules: inout SelectionRules) throws {
        rules.exclude(exclude ?? [])
        rules.exclude(iexclude ?? [], caseInsensitive: true)
        if let limit = excludeLargerThan {
            let size = try SelectionRules.parseSize(limit)
            rules.excludeLargerThan = min(rules.excludeLargerThan ?? .max, size)
        }
        rules.excludeIfPresent += (excludeIfPresent ?? []).map { Array($0.utf8) }
        for c in excludeCategories ?? [] { rules.excludedCategories.insert(try SelectionRules.parseCategory(c)) }
        if oneFileSystem == true { rules.oneFileSystem = true }
    }

    /// The retention policy, or nil when the profile has none.
    public func retentionPolicy() throws -> RetentionPolicy? {
        guard let r = retention else { return nil }
        let policy = RetentionPolicy(
            keepLast: r.keepLast, keepHourly: r.keepHourly, keepDaily: r.keepDaily, keepWeekly: r.keepWeekly,
            keepMonthly: r.keepMonthly, keepYearly: r.keepYearly,
            keepWithin: try r.keepWithin.map { try RetentionDuration(parsing: $0) },
            keepTags: (r.keepTags ?? []).map { $0.split(separator: ",").map(String.init) })
        try policy.validate()
        return policy.isEmpty ? nil : policy
    }
}
