/// The little of S3's XML that Coffer reads: ListObjectsV2 results and error bodies. Both are
/// flat, machine-written documents, so a scanner for `<Name>text</Name>` elements is enough; a
/// general XML parser (FoundationXML and libxml2) would be a dependency for nothing.
enum S3XML {
    /// The texts of every `<name>…</name>` element in `xml`, in document order, with the five
    /// predefined entities and numeric character references decoded. Elements with attributes
    /// (`<name attr="…">`) match too; empty elements (`<name/>`) give "".
    static func texts(of name: String, in xml: Substring) -> [String] {
        var out: [String] = []
        var rest = xml
        let open = "<" + name
        let close = "</" + name + ">"
        while let start = rest.firstRange(of: open) {
            var after = rest[start.upperBound...]
            guard let first = after.first else { break }
            if first == "/" && after.dropFirst().first == ">" {  // <name/>
                out.append("")
                rest = after.dropFirst(2)
                continue
            }
            // `<Name>` or `<Name attr…>`, but not `<NameOther>`.
            guard first == ">" || first == " " || first == "\t" || first == "\n" || first == "\r",
                let gt = after.firstIndex(of: ">")
            else {
                rest = after
                continue
            }
            after = after[after.index(after: gt)...]
            guard let end = after.firstRange(of: close) else { break }
            out.append(decodeEntities(after[..<end.lowerBound]))
            rest = after[end.upperBound...]
        }
        return out
    }

    static func text(of name: String, in xml: Substring) -> String? { texts(of: name, in: xml).first }

    /// The `<Contents>` blocks of a ListObjectsV2 result.
    static func blocks(_ name: String, in xml: Substring) -> [Substring] {
        var out: [Substring] = []
        var rest = xml
        let open = "<" + name + ">"
        let close = "</" + name + ">"
        while let start = rest.firstRange(of: open), let end = rest[start.upperBound...].firstRange(of: close) {
            out.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return out
    }

    static func decodeEntities(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            let tail = rest[rest.index(after: amp)...]
            guard let semi = tail.prefix(12).firstIndex(of: ";") else {
                out += "&"
                rest = tail
                continue
            }
            let entity = tail[..<semi]
            var decoded: String?
            switch entity {
            case "amp": decoded = "&"
            case "lt": decoded = "<"
            case "gt": decoded = ">"
            case "quot": decoded = "\""
            case "apos": decoded = "'"
            default:
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    decoded = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else if entity.hasPrefix("#") {
                    decoded = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                }
            }
            if let decoded {
                out += decoded
                rest = tail[tail.index(after: semi)...]
            } else {
                out += "&"
                rest = tail
            }
        }
        return out + rest
    }

    /// One page of a ListObjectsV2 result.
    struct ListPage: Equatable {
        var objects: [(key: String, size: Int)]
        var isTruncated: Bool
        var continuationToken: String?

        static func == (a: ListPage, b: ListPage) -> Bool {
            a.objects.map { "\($0.key)\u{0}\($0.size)" } == b.objects.map { "\($0.key)\u{0}\($0.size)" }
                && a.isTruncated == b.isTruncated && a.continuationToken == b.continuationToken
        }
    }

    /// Parses a `<ListBucketResult>`; nil when the document is not one (a proxy's error page).
    static func listPage(_ xml: String) -> ListPage? {
        let doc = Substring(xml)
        guard doc.contains("<ListBucketResult") else { return nil }
        var objects: [(key: String, size: Int)] = []
        for block in blocks("Contents", in: doc) {
            guard let key = text(of: "Key", in: block), let size = text(of: "Size", in: block).flatMap({ Int($0) }) else {
                return nil
            }
            objects.append((key, size))
        }
        let truncated = text(of: "IsTruncated", in: doc) == "true"
        return ListPage(objects: objects, isTruncated: truncated, continuationToken: text(of: "NextContinuationToken", in: doc))
    }

    /// An S3 `<Error>` body: its Code and Message, and the Region an AuthorizationHeaderMalformed
    /// or PermanentRedirect error names.
    struct ErrorBody: Equatable {
        var code: String?
        var message: String?
        var region: String?
    }

    static func errorBody(_ xml: String) -> ErrorBody {
        let doc = Substring(xml)
        guard doc.contains("<Error") else { return ErrorBody() }
        return ErrorBody(code: text(of: "Code", in: doc), message: text(of: "Message", in: doc), region: text(of: "Region", in: doc))
    }
}
