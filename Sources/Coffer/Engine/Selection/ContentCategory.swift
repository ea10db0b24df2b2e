/// What kind of content a file holds, for choosing what to save (`--exclude-category`) and for
/// the dry-run report. Recognised by content signature first (the first 64 bytes), by the
/// name's extension when the signature says nothing.
public enum ContentCategory: String, Sendable, CaseIterable, Hashable, Codable {
    case images, videos, audio, documents, databases, other

    /// How many leading bytes `detect` looks at.
    public static let headerLength = 64

    public static func detect(header: [UInt8], name: [UInt8]) -> ContentCategory {
        signature(header, name: name) ?? fromExtension(name) ?? .other
    }

    /// The category a content signature says, or nil when it says nothing.
    public static func signature(_ h: [UInt8], name: [UInt8] = []) -> ContentCategory? {
        func at(_ offset: Int, _ bytes: [UInt8]) -> Bool {
            h.count >= offset + bytes.count && h[offset..<offset + bytes.count].elementsEqual(bytes)
        }
        func ascii(_ offset: Int, _ s: String) -> Bool { at(offset, Array(s.utf8)) }

        if at(0, [0xFF, 0xD8, 0xFF]) { return .images }  // JPEG
        if at(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .images }  // PNG
        if ascii(0, "GIF87a") || ascii(0, "GIF89a") { return .images }
        if ascii(0, "RIFF") {
            if ascii(8, "WEBP") { return .images }
            if ascii(8, "WAVE") { return .audio }
            if ascii(8, "AVI ") { return .videos }
        }
        if ascii(4, "ftyp"), h.count >= 12 {
            if let c = isoBrand(Array(h[8..<12])) { return c }
            // The major brand is unknown: try the compatible brands (after the minor version).
            let boxSize = Int(h[0]) << 24 | Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])
            var o = 16
            while o + 4 <= min(h.count, max(boxSize, 16)) {
                if let c = isoBrand(Array(h[o..<o + 4])) { return c }
                o += 4
            }
            return nil
        }
        if at(0, [0x1A, 0x45, 0xDF, 0xA3]) { return .videos }  // Matroska / WebM
        if ascii(0, "OggS") { return .audio }  // Ogg: Opus and Vorbis voice notes
        if ascii(0, "#!AMR") { return .audio }
        if ascii(0, "fLaC") { return .audio }
        if ascii(0, "ID3") { return .audio }  // MP3 with an ID3v2 tag
        if h.count >= 2, h[0] == 0xFF, h[1] & 0xE0 == 0xE0, h[1] & 0x06 != 0 { return .audio }  // MPEG audio frame sync
        if h.count >= 2, h[0] == 0xFF, h[1] & 0xF6 == 0xF0 { return .audio }  // AAC ADTS
        if ascii(0, "%PDF") { return .documents }
        if ascii(0, "SQLite format 3\0") { return .databases }
        if at(0, [0x50, 0x4B, 0x03, 0x04]) {  // ZIP: office documents are ZIP files
            switch lowercasedExtension(name) {
            case "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub": return .documents
            default: return nil
            }
        }
        return nil
    }

    private static func isoBrand(_ b: [UInt8]) -> ContentCategory? {
        let brand = String(decoding: b, as: UTF8.self)
        switch brand {
        case "heic", "heix", "heim", "heis", "hevc", "mif1", "msf1", "avif": return .images
        case "M4A ", "M4B ", "M4P ", "F4A ": return .audio
        case "isom", "iso2", "iso4", "iso5", "iso6", "mp41", "mp42", "M4V ", "M4VH", "qt  ", "avc1", "dash", "f4v ", "mmp4":
            return .videos
        default:
            if brand.hasPrefix("3gp") || brand.hasPrefix("3g2") { return .videos }
            return nil
        }
    }

    public static func fromExtension(_ name: [UInt8]) -> ContentCategory? {
        switch lowercasedExtension(name) {
        case "jpg", "jpeg", "jpe", "png", "gif", "webp", "heic", "heif", "avif", "bmp", "tif", "tiff", "svg", "dng", "raw", "ico":
            return .images
        case "mp4", "m4v", "mov", "3gp", "3g2", "mkv", "webm", "avi", "wmv", "mpg", "mpeg", "ts", "flv":
            return .videos
        case "mp3", "m4a", "aac", "ogg", "oga", "opus", "wav", "amr", "flac", "wma", "weba", "caf":
            return .audio
        case "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf", "txt", "md", "csv", "epub", "pages",
            "numbers", "key":
            return .documents
        case "db", "sqlite", "sqlite3", "db3", "db-wal", "db-shm", "db-journal", "sqlite-wal", "sqlite-shm", "realm":
            return .databases
        default:
            return nil
        }
    }

    /// The part of a name after its last `.` (not a leading one), ASCII-lowercased; "" if none.
    static func lowercasedExtension(_ name: [UInt8]) -> String {
        guard let dot = name.lastIndex(of: UInt8(ascii: ".")), dot > 0, dot + 1 < name.count else { return "" }
        let ext = name[(dot + 1)...]
        guard ext.count <= 12, ext.allSatisfy({ $0 < 0x80 }) else { return "" }
        return String(decoding: ext.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
