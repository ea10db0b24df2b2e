import Foundation
import Testing

@testable import Coffer

/// Choosing what to save: exclude patterns, sizes, content categories.
@Suite("Selection rules")
struct SelectionTests {
    struct Case: CustomStringConvertible, Sendable {
        let pattern: [UInt8]
        let path: [UInt8]
        let isDirectory: Bool
        let matches: Bool
        let caseInsensitive: Bool

        init(_ pattern: String, _ path: String, dir: Bool = false, _ matches: Bool, ci: Bool = false) {
            self.init(Array(pattern.utf8), Array(path.utf8), dir: dir, matches, ci: ci)
        }

        init(_ pattern: [UInt8], _ path: [UInt8], dir: Bool = false, _ matches: Bool, ci: Bool = false) {
            self.pattern = pattern
            self.path = path
            isDirectory = dir
            self.matches = matches
            caseInsensitive = ci
        }

        var description: String {
            "\(String(decoding: pattern, as: UTF8.self).debugDescription) ~ \(String(decoding: path, as: UTF8.self).debugDescription)\(isDirectory ? "/" : "")\(caseInsensitive ? " (ci)" : "")"
        }
    }

    static let cases: [Case] = [
        // Names at any depth.
        Case("*.tmp", "/a/b/c.tmp", true),
        Case("*.tmp", "/c.tmp", true),
        Case("*.tmp", "/a/c.tmp.bak", false),
        Case("*.tmp", "/a/.tmp", true),
        Case("cache", "/home/u/cache", dir: true, true),
        Case("cache", "/home/u/cache2", false),
        Case("c?che", "/x/cache", true),
        Case("c?che", "/x/cche", false),
        Case("*", "/anything", true),
        // `*` and `?` never cross a `/`.
        Case("/a/*", "/a/b", true),
        Case("/a/*", "/a/b/c", false),
        Case("/a/?", "/a/bc", false),
        // Leading dots are ordinary characters (as in restic).
        Case("*", "/x/.hidden", true),
        Case(".*", "/x/.hidden", true),
        Case(".*", "/x/visible", false),
        Case(".git", "/src/.git", dir: true, true),
        // Spaces and unicode.
        Case("My Photos", "/home/u/My Photos", dir: true, true),
        Case("* copy.jpg", "/p/IMG 1 copy.jpg", true),
        Case("*.jpg", "/p/été 2024.jpg", true),
        Case("été?2024.jpg", "/p/été 2024.jpg", true),
        Case("?té*", "/p/été", true),  // `?` is one character, not one byte
        Case("??té*", "/p/été", false),
        Case("[é]t?", "/p/été", true),
        Case("日本*", "/p/日本語.txt", true),
        // Non-UTF-8 names: raw bytes match themselves, `?` and `*` match them.
        Case([UInt8]("bad".utf8) + [0xFF, 0xFE], [UInt8]("/x/bad".utf8) + [0xFF, 0xFE], true),
        Case(Array("bad??".utf8), [UInt8]("/x/bad".utf8) + [0xFF, 0xFE], true),
        Case(Array("bad?".utf8), [UInt8]("/x/bad".utf8) + [0xFF, 0xFE], false),
        Case(Array("*.log".utf8), [0x2F, 0xC3, 0x28] + Array(".log".utf8), true),
        Case(Array("*".utf8) + [0xE9], [0x2F, 0x63, 0x61, 0x66, 0xE9], true),  // Latin-1 "café"
        // Brackets.
        Case("file[0-9].txt", "/d/file7.txt", true),
        Case("file[0-9].txt", "/d/filex.txt", false),
        Case("file[!0-9].txt", "/d/filex.txt", true),
        Case("file[^0-9].txt", "/d/file7.txt", false),
        Case("[]]x", "/d/]x", true),
        Case("a[bc]d", "/d/acd", true),
        Case("photo[1].jpg", "/d/photo1.jpg", true),
        Case("photo\\[1\\].jpg", "/d/photo[1].jpg", true),
        Case("photo\\[1\\].jpg", "/d/photo1.jpg", false),
        Case("unclosed[", "/d/unclosed[", true),
        Case("a\\*b", "/d/a*b", true),
        Case("a\\*b", "/d/axb", false),
        // `**` spans folders.
        Case("/home/**/*.tmp", "/home/a/b/c/x.tmp", true),
        Case("/home/**/*.tmp", "/home/x.tmp", true),
        Case("/home/**/*.tmp", "/var/x.tmp", false),
        Case("/home/**", "/home/a/b", true),
        Case("**/cache/*.bin", "/a/b/cache/x.bin", true),
        Case("/a/**/b/**/c", "/a/x/b/y/z/c", true),
        Case("/a/**/b/**/c", "/a/x/y/c", false),
        // Anchored vs unanchored.
        Case("/cache", "/cache", dir: true, true),
        Case("/cache", "/home/cache", dir: true, false),
        Case("/home/*/.cache", "/home/ann/.cache", dir: true, true),
        Case("/home/*/.cache", "/home/ann/x/.cache", dir: true, false),
        Case("App/Cache", "/home/u/App/Cache", dir: true, true),  // relative: at any depth
        Case("App/Cache", "/home/u/App/CacheX", dir: true, false),
        Case("App/Cache", "/home/u/App/Cache/x", false),
        Case("/src/./sub", "/src/sub", dir: true, true),
        // Trailing slash: directories only.
        Case("logs/", "/a/logs", dir: true, true),
        Case("logs/", "/a/logs", dir: false, false),
        Case("/a/logs/", "/a/logs", dir: true, true),
        Case("*.d/", "/etc/conf.d", dir: true, true),
        Case("*.d/", "/etc/x.d", false),
        // Case-insensitive.
        Case("*.jpg", "/p/IMG.JPG", false),
        Case("*.jpg", "/p/IMG.JPG", true, ci: true),
        Case("*.JPG", "/p/img.jpg", true, ci: true),
        Case("/Users/*/CACHE", "/users/ann/cache", dir: true, true, ci: true),
        Case("ÉTÉ*", "/p/été.png", true, ci: true),
        Case("[A-C]x", "/p/bx", true, ci: true),
        Case("[a-c]x", "/p/BX", true, ci: true),
        Case("[a-c]x", "/p/BX", false),
        Case(Array("*.tmp".utf8), [0x2F, 0xFF] + Array(".TMP".utf8), true, ci: true),
    ]

    @Test(arguments: cases)
    func pattern(_ c: Case) throws {
        let p = try #require(PathPattern(bytes: c.pattern, caseInsensitive: c.caseInsensitive))
        #expect(p.matches(path: c.path, isDirectory: c.isDirectory) == c.matches, "\(c)")
    }

    @Test func emptyPatternsAreIgnored() {
        #expect(PathPattern("") == nil)
        #expect(PathPattern("!") == nil)
        #expect(PathPattern("/") == nil)
        var rules = SelectionRules()
        rules.exclude(["", "*.tmp"])
        #expect(rules.patterns.count == 1)
    }

    @Test func negationLaterRulesWin() {
        var rules = SelectionRules()
        rules.exclude(["*.jpg", "!keep*.jpg"])
        #expect(rules.excludes(path: Array("/p/a.jpg".utf8), isDirectory: false))
        #expect(!rules.excludes(path: Array("/p/keep1.jpg".utf8), isDirectory: false))
        #expect(!rules.excludes(path: Array("/p/a.png".utf8), isDirectory: false))

        // The other order: the plain pattern comes last and wins again.
        var reversed = SelectionRules()
        reversed.exclude(["!keep*.jpg", "*.jpg"])
        #expect(reversed.excludes(path: Array("/p/keep1.jpg".utf8), isDirectory: false))

        // Three layers: exclude a folder's content, re-include a sub-pattern, exclude again.
        var layered = SelectionRules()
        layered.exclude(["/data/*", "!/data/*.db", "/data/tmp*.db"])
        #expect(layered.excludes(path: Array("/data/x.bin".utf8), isDirectory: false))
        #expect(!layered.excludes(path: Array("/data/msg.db".utf8), isDirectory: false))
        #expect(layered.excludes(path: Array("/data/tmp1.db".utf8), isDirectory: false))
        #expect(!layered.excludes(path: Array("/other/x.bin".utf8), isDirectory: false))

        // Nested excludes: a re-include for a folder only.
        var dirs = SelectionRules()
        dirs.exclude(["/media/*/", "!/media/Keep/"])
        #expect(dirs.excludes(path: Array("/media/Old".utf8), isDirectory: true))
        #expect(!dirs.excludes(path: Array("/media/Keep".utf8), isDirectory: true))
        #expect(!dirs.excludes(path: Array("/media/file".utf8), isDirectory: false))
    }

    @Test func caseSensitiveAndInsensitiveListsAreSeparate() {
        var rules = SelectionRules()
        rules.exclude(["*.TMP"], caseInsensitive: true)
        rules.exclude(["!x.tmp"])  // a negation in the other list does not undo it
        #expect(rules.excludes(path: Array("/a/x.tmp".utf8), isDirectory: false))
        rules.exclude(["!X.TMP"], caseInsensitive: true)
        #expect(!rules.excludes(path: Array("/a/x.tmp".utf8), isDirectory: false))
        #expect(rules.excludes(path: Array("/a/y.Tmp".utf8), isDirectory: false))
    }

    static let sizeCases: [(String, UInt64)] = [
        ("0", 0), ("1234", 1234), ("500k", 512_000), ("500K", 512_000), ("10M", 10_485_760), ("10m", 10_485_760),
        ("1.5G", 1_610_612_736), ("2T", 2_199_023_255_552), ("10MiB", 10_485_760), ("64KB", 65_536), ("100b", 100),
        (" 7M ", 7_340_032), ("0.5k", 512),
    ]

    @Test func sizes() throws {
        for (text, bytes) in Self.sizeCases {
            #expect(try SelectionRules.parseSize(text) == bytes, "\(text)")
        }
    }

    @Test(arguments: ["", "M", "ten", "-5", "1.2.3M", "5X", "1e3", "10 M", "99999999999T"])
    func badSizes(_ text: String) {
        #expect(throws: SelectionRules.ParseError.self) { try SelectionRules.parseSize(text) }
    }

    @Test func categoriesParse() throws {
        #expect(try SelectionRules.parseCategory("videos") == .videos)
        #expect(try SelectionRules.parseCategory("Video") == .videos)
        #expect(try SelectionRules.parseCategory("DATABASES") == .databases)
        #expect(throws: SelectionRules.ParseError.self) { try SelectionRules.parseCategory("stickers") }
    }

    @Test func patternAndPathFiles() {
        #expect(SelectionRules.patternLines("# c\n\n  *.log  \n/a/b\r\n") == ["*.log", "/a/b"])
        #expect(SelectionRules.pathLines("# sources\n/home/u/My Photos\n\n/srv/db \r\n") == ["/home/u/My Photos", "/srv/db "])
    }

    // MARK: - Content categories

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
    static func iso(_ major: String, _ compatible: [String] = []) -> [UInt8] {
        let size = 16 + 4 * compatible.count
        return [0, 0, 0, UInt8(size)] + bytes("ftyp") + bytes(major) + [0, 0, 0, 0] + compatible.flatMap(bytes) + [0, 0, 0, 8] + bytes("mdat")
    }

    struct Sig: Sendable {
        let label: String
        let header: [UInt8]
        let name: String
        let category: ContentCategory
        init(_ label: String, _ header: [UInt8], _ name: String, _ category: ContentCategory) {
            self.label = label
            self.header = header
            self.name = name
            self.category = category
        }
    }

    static let signatures: [Sig] = [
        Sig("jpeg", [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10] + bytes("JFIF"), "x.bin", .images),
        Sig("png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13], "x", .images),
        Sig("gif", bytes("GIF89a") + [1, 0], "x", .images),
        Sig("webp", bytes("RIFF") + [0x24, 0, 0, 0] + bytes("WEBPVP8 "), "x", .images),
        Sig("heic", iso("heic", ["mif1", "heic"]), "x", .images),
        Sig("heix", iso("heix"), "x", .images),
        Sig("mif1", iso("mif1"), "x", .images),
        Sig("mp4 isom", iso("isom", ["isom", "mp41"]), "x", .videos),
        Sig("mp4 mp42", iso("mp42"), "IMG_1.MP4", .videos),
        Sig("m4v", iso("M4V "), "x", .videos),
        Sig("mov", iso("qt  "), "x", .videos),
        Sig("3gp", iso("3gp5"), "x", .videos),
        Sig("3g2", iso("3g2a"), "x", .videos),
        Sig("m4a", iso("M4A ", ["M4A ", "mp42"]), "voice.m4a", .audio),
        Sig("unknown brand, known compatible", iso("abcd", ["zzzz", "M4A "]), "x", .audio),
        Sig("mkv", [0x1A, 0x45, 0xDF, 0xA3, 0x9F], "x", .videos),
        Sig("ogg opus", bytes("OggS") + [0, 2] + [UInt8](repeating: 0, count: 22) + bytes("OpusHead"), "PTT-20240101.opus", .audio),
        Sig("mp3 id3", bytes("ID3") + [4, 0, 0], "x", .audio),
        Sig("mp3 sync", [0xFF, 0xFB, 0x90, 0x64], "x", .audio),
        Sig("aac adts", [0xFF, 0xF1, 0x50, 0x80], "x", .audio),
        Sig("wav", bytes("RIFF") + [0x24, 0, 0, 0] + bytes("WAVEfmt "), "x", .audio),
        Sig("amr", bytes("#!AMR\n"), "x", .audio),
        Sig("pdf", bytes("%PDF-1.7\n"), "x", .documents),
        Sig("docx", [0x50, 0x4B, 0x03, 0x04, 20, 0], "report.docx", .documents),
        Sig("xlsx", [0x50, 0x4B, 0x03, 0x04, 20, 0], "Sheet.XLSX", .documents),
        Sig("odt", [0x50, 0x4B, 0x03, 0x04, 20, 0], "a.odt", .documents),
        Sig("plain zip", [0x50, 0x4B, 0x03, 0x04, 20, 0], "backup.zip", .other),
        Sig("sqlite", bytes("SQLite format 3\0") + [0x10, 0, 1, 1], "msgstore", .databases),
        // The signature wins over a misleading extension.
        Sig("jpeg named .mp4", [0xFF, 0xD8, 0xFF, 0xDB], "clip.mp4", .images),
        Sig("sqlite named .txt", bytes("SQLite format 3\0"), "notes.txt", .databases),
        // No signature: the extension decides.
        Sig("empty jpg", [], "photo.JPG", .images),
        Sig("text mov", bytes("hello"), "a.mov", .videos),
        Sig("text opus", bytes("hello"), "voice.opus", .audio),
        Sig("text", bytes("hello"), "readme.txt", .documents),
        Sig("wal", bytes("\u{37}\u{7f}\u{06}\u{82}"), "msgstore.db-wal", .databases),
        Sig("nothing", bytes("hello"), "Makefile", .other),
        Sig("dotfile", bytes("x"), ".jpg", .other),
        Sig("unicode name", bytes("x"), "ÿ été.PNG", .images),
        Sig("truncated ftyp", bytes("\0\0\0\u{14}ftyp"), "x", .other),
    ]

    @Test func categoriesFromSignaturesAndExtensions() {
        for sig in Self.signatures {
            #expect(ContentCategory.detect(header: sig.header, name: Array(sig.name.utf8)) == sig.category, "\(sig.label)")
        }
        // A raw non-UTF-8 stem with an ASCII extension.
        #expect(ContentCategory.detect(header: [], name: [0xFF, 0xFE] + Array(".opus".utf8)) == .audio)
        // Only the first 64 bytes are looked at, so a signature must be at its offset.
        #expect(ContentCategory.detect(header: [0] + [0xFF, 0xD8, 0xFF], name: []) == .other)
    }
}
