/// Which files and folders a backup saves: exclude patterns (case-sensitive and not), a size
/// limit, marker files that exclude their folder, staying on one file system, and content
/// categories. An entry is left out when any rule says so.
public struct SelectionRules: Sendable {
    /// In the order given; `!` patterns re-include. Case-sensitive and case-insensitive patterns
    /// are two separate lists (as restic's --exclude and --iexclude): within each the last
    /// matching pattern decides, and an entry is left out when either list excludes it.
    public var patterns: [PathPattern] = []
    /// Regular files larger than this many bytes are left out.
    public var excludeLargerThan: UInt64? = nil
    /// A folder holding a file (or anything) with one of these names is left out entirely.
    public var excludeIfPresent: [[UInt8]] = []
    /// Do not descend into folders on another device than their source path.
    public var oneFileSystem = false
    /// Files of these categories are left out.
    public var excludedCategories: Set<ContentCategory> = []

    public init() {}

    /// Adds patterns; empty ones are ignored. Returns self for chaining in tests.
    public mutating func exclude(_ patterns: [String], caseInsensitive: Bool = false) {
        self.patterns += patterns.compactMap { PathPattern($0, caseInsensitive: caseInsensitive) }
    }

    /// Whether there is nothing to check at all (the walker's fast path).
    public var isEmpty: Bool {
        patterns.isEmpty && excludeLargerThan == nil && excludeIfPresent.isEmpty && !oneFileSystem && excludedCategories.isEmpty
    }

    /// Whether some pattern needs to know if an entry is a directory.
    public var needsEntryType: Bool { patterns.contains { $0.directoryOnly } }

    /// Whether the exclude patterns leave out the entry at `path` (absolute, raw bytes). Only
    /// this entry is considered, not its parents (the walker never visits an excluded folder).
    public func excludes(path: [UInt8], isDirectory: Bool) -> Bool {
        guard !patterns.isEmpty else { return false }
        let components = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        var sensitive = false, insensitive = false
        var sawSensitive = false, sawInsensitive = false
        for p in patterns.reversed() {
            if p.caseInsensitive ? sawInsensitive : sawSensitive { continue }
            if p.directoryOnly && !isDirectory { continue }
            guard p.matches(components: components) else { continue }
            if p.caseInsensitive {
                sawInsensitive = true
                insensitive = !p.negated
            } else {
                sawSensitive = true
                sensitive = !p.negated
            }
            if sawSensitive && sawInsensitive { break }
        }
        return sensitive || insensitive
    }

    /// Whether a regular file of this size is too large.
    public func tooLarge(_ size: UInt64) -> Bool {
        if let limit = excludeLargerThan { return size > limit }
        return false
    }

    // MARK: - Parsing

    public enum ParseError: Error, CustomStringConvertible {
        case badSize(String)
        case unknownCategory(String)

        public var description: String {
            switch self {
            case .badSize(let s): return "invalid size \(s.debugDescription): use a number of bytes or a suffix k, M, G, T (e.g. 500k, 1.5G)"
            case .unknownCategory(let s):
                return "unknown category \(s.debugDescription): use one of \(ContentCategory.allCases.map(\.rawValue).joined(separator: ", "))"
            }
        }
    }

    /// "1234", "500k", "10M", "1.5G", "2T" (binary multiples; a trailing "B" or "iB" is allowed).
    public static func parseSize(_ text: String) throws -> UInt64 {
        var s = Substring(text.selectionTrimmed()).lowercased()[...]
        if s.hasSuffix("ib") { s = s.dropLast(2) } else if s.hasSuffix("b") { s = s.dropLast() }
        var multiplier: Double = 1
        if let last = s.last, let power = ["k": 1, "m": 2, "g": 3, "t": 4][String(last)] {
            multiplier = pow1024(power)
            s = s.dropLast()
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), s.filter({ $0 == "." }).count <= 1,
            let value = Double(s), value.isFinite, value >= 0
        else { throw ParseError.badSize(text) }
        let bytes = (value * multiplier).rounded(.down)
        guard bytes < 1.8e19 else { throw ParseError.badSize(text) }
        return UInt64(bytes)
    }

    private static func pow1024(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 1024 } }

    public static func parseCategory(_ text: String) throws -> ContentCategory {
        let t = text.selectionTrimmed().lowercased()
        if let c = ContentCategory(rawValue: t) { return c }
        // Singular forms and a few synonyms.
        switch t {
        case "image", "photo", "photos", "pictures": return .images
        case "video", "movies": return .videos
        case "voice", "voice-notes", "music": return .audio
        case "document", "docs": return .documents
        case "database", "db": return .databases
        default: throw ParseError.unknownCategory(text)
        }
    }

    /// Lines of a pattern file: surrounding spaces trimmed, blank lines and `#` comments dropped.
    public static func patternLines(_ contents: String) -> [String] {
        contents.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { $0.selectionTrimmed() }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    /// Lines of a `--files-from` file: one path a line, kept exactly (names may have spaces)
    /// except a trailing CR; blank lines and lines starting with `#` dropped.
    public static func pathLines(_ contents: String) -> [String] {
        contents.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { line in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}

/// Per-category counts and bytes of what a backup saves and what the rules leave out.
public struct SelectionReport: Sendable, Equatable {
    public struct Tally: Sendable, Equatable {
        public var files: UInt64 = 0
        public var bytes: UInt64 = 0
        public init() {}
    }

    /// One file a dry run would save or leave out.
    public struct FileChoice: Sendable, Equatable {
        public let path: String
        public let category: ContentCategory
        public let bytes: UInt64
        public let saved: Bool
    }

    public var saved: [ContentCategory: Tally] = [:]
    public var skipped: [ContentCategory: Tally] = [:]
    /// Every file, in walk order, when `recordsFiles` is set (dry runs).
    public var files: [FileChoice] = []
    var recordsFiles = false

    public init() {}

    mutating func add(_ category: ContentCategory, size: UInt64, saved isSaved: Bool, path: String) {
        if recordsFiles { files.append(FileChoice(path: path, category: category, bytes: size, saved: isSaved)) }
        if isSaved {
            saved[category, default: Tally()].files += 1
            saved[category, default: Tally()].bytes += size
        } else {
            skipped[category, default: Tally()].files += 1
            skipped[category, default: Tally()].bytes += size
        }
    }
}

extension StringProtocol {
    func selectionTrimmed() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !($0 == " " || $0 == "\t" || $0 == "\r") }) else { return "" }
        let end = scalars.lastIndex(where: { !($0 == " " || $0 == "\t" || $0 == "\r") })!
        return String(String.UnicodeScalarView(scalars[start...end]))
    }
}
