/// Where an S3 repository lives, parsed from a repository URL spelled the way restic spells it:
///
///     s3:https://HOST[:PORT]/BUCKET[/PREFIX]
///     s3:http://HOST[:PORT]/BUCKET[/PREFIX]
///     s3:HOST[:PORT]/BUCKET[/PREFIX]          (https)
///
/// The path after the scheme and host is taken literally (no percent-decoding): the bucket is
/// its first segment, the prefix the rest, without leading or trailing slashes.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Equatable {
        case https
        case http

        public var defaultPort: Int { self == .https ? 443 : 80 }
    }

    /// How the bucket is addressed in requests.
    public enum AddressingStyle: String, Sendable, Equatable, CaseIterable {
        /// `https://HOST/BUCKET/KEY`: works with every endpoint (MinIO, Ceph, Garage, …) and
        /// every bucket name.
        case path
        /// `https://BUCKET.HOST/KEY`: what AWS prefers; needs a DNS-compatible bucket name.
        case virtualHosted = "virtual-hosted"
    }

    public let scheme: Scheme
    /// The endpoint host, lower-cased; an IPv6 address keeps its brackets (`[::1]`).
    public let host: String
    /// The port when the URL gave one (even if it is the scheme's default).
    public let port: Int?
    public let bucket: String
    /// The key prefix under which the repository's objects live; "" for the bucket's root.
    public let prefix: String
    public let addressing: AddressingStyle

    /// Parses a repository URL. `addressing` overrides the default choice (see
    /// `defaultAddressing`); asking for virtual-hosted addressing with a bucket name that cannot
    /// be a DNS label is an error.
    public init(parsing url: String, addressing: AddressingStyle? = nil) throws(S3LocationError) {
        guard url.hasPrefix("s3:") else { throw .notS3(url) }
        var rest = Substring(url.dropFirst(3))
        let scheme: Scheme
        if rest.hasPrefix("https://") {
            scheme = .https
            rest = rest.dropFirst("https://".count)
        } else if rest.hasPrefix("http://") {
            scheme = .http
            rest = rest.dropFirst("http://".count)
        } else if rest.hasPrefix("//") {
            throw .malformed(url, "write s3:https://HOST/BUCKET (or s3:HOST/BUCKET), not s3://")
        } else if let colon = rest.firstIndex(of: ":"), let slash = rest.firstIndex(of: "/"), colon < slash,
            rest[rest.index(after: colon)...].hasPrefix("//")
        {
            throw .malformed(url, "unsupported scheme \"\(rest[..<colon])\"; use https or http")
        } else {
            scheme = .https
        }

        if let bad = rest.first(where: { $0 == "?" || $0 == "#" || $0 == "\\" || $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } == true }) {
            throw .malformed(url, "the URL must not contain \(Self.describe(bad))")
        }

        let authority: Substring
        let path: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        } else {
            authority = rest
            path = ""
        }
        if authority.contains("@") {
            throw .malformed(url, "credentials in the URL are not supported; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        let (host, port) = try Self.parseAuthority(authority, url: url)

        var segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.last == "" { segments.removeLast() }  // one trailing slash is harmless
        guard let first = segments.first, !first.isEmpty else {
            throw .missingBucket(url)
        }
        let bucket = String(first)
        guard Self.isValidBucketName(bucket) else { throw .invalidBucket(url, bucket) }
        let prefixSegments = segments.dropFirst()
        for segment in prefixSegments {
            if segment.isEmpty { throw .malformed(url, "the prefix has an empty path segment (\"//\")") }
            if segment == "." || segment == ".." {
                throw .malformed(url, "the prefix must not contain \"\(segment)\" segments")
            }
        }

        self.scheme = scheme
        self.host = host
        self.port = port
        self.bucket = bucket
        self.prefix = prefixSegments.joined(separator: "/")
        let style = addressing ?? Self.defaultAddressing(host: host, bucket: bucket, scheme: scheme)
        if style == .virtualHosted && !Self.isVirtualHostable(bucket: bucket, scheme: scheme) {
            throw .virtualHostingImpossible(url, bucket)
        }
        self.addressing = style
    }

    /// Virtual-hosted for AWS endpoints (`*.amazonaws.com`) when the bucket name allows it;
    /// path-style for every other endpoint, for IP addresses and for bucket names that are not
    /// DNS labels (or, over https, contain dots, which the wildcard certificate does not cover).
    public static func defaultAddressing(host: String, bucket: String, scheme: Scheme) -> AddressingStyle {
        let isAWS = host.hasSuffix(".amazonaws.com") || host.hasSuffix(".amazonaws.com.cn")
        return isAWS && isVirtualHostable(bucket: bucket, scheme: scheme) ? .virtualHosted : .path
    }

    /// Whether `bucket.HOST` is a usable host name for this bucket.
    public static func isVirtualHostable(bucket: String, scheme: Scheme) -> Bool {
        isDNSCompatibleBucketName(bucket) && !(scheme == .https && bucket.contains("."))
    }

    /// AWS's current bucket naming rules: 3–63 characters of lower-case letters, digits, dots and
    /// hyphens; starting and ending with a letter or digit; no "..", no ".-"/"-." and not an
    /// IPv4 address.
    public static func isDNSCompatibleBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) }
        guard bytes.allSatisfy({ alnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else { return false }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        if name.contains("..") || name.contains(".-") || name.contains("-.") { return false }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) { return false }
        return true
    }

    /// Names a path-style request can carry: 1–255 characters of letters, digits, '.', '-' and
    /// '_' (the legacy us-east-1 rules, which S3-compatible servers also accept).
    public static func isValidBucketName(_ name: String) -> Bool {
        (1...255).contains(name.utf8.count)
            && name.utf8.allSatisfy { c in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
            }
            && name != "." && name != ".."
    }

    // MARK: Requests

    /// The host requests go to: `BUCKET.HOST` for virtual-hosted addressing, else `HOST`.
    public var requestHost: String { addressing == .virtualHosted ? "\(bucket).\(host)" : host }

    /// The `Host` header value: `requestHost`, with the port unless it is the scheme's default.
    public var hostHeader: String {
        if let port, port != scheme.defaultPort { return "\(requestHost):\(port)" }
        return requestHost
    }

    /// `scheme://hostHeader`, with no path.
    public var endpoint: String { "\(scheme.rawValue)://\(hostHeader)" }

    /// The object key of a repository-relative name such as `data/ab12…` or `config`.
    public func key(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix)/\(name)" }

    /// The key prefix under which to list a repository folder, ending in "/".
    public func listPrefix(_ folder: String) -> String { key(folder) + "/" }

    /// The request path (not yet URI-encoded) of an object key, or of the bucket when `key` is
    /// nil: `/BUCKET/KEY` and `/BUCKET` path-style, `/KEY` and `/` virtual-hosted.
    public func requestPath(key: String?) -> String {
        switch addressing {
        case .path: return key.map { "/\(bucket)/\($0)" } ?? "/\(bucket)"
        case .virtualHosted: return "/" + (key ?? "")
        }
    }

    /// The region an AWS host names (`s3.eu-west-1.amazonaws.com`, `s3-eu-west-1.amazonaws.com`,
    /// `s3.dualstack.eu-west-1.amazonaws.com`), or nil (global endpoint, other endpoints).
    public var hostRegion: String? {
        for suffix in [".amazonaws.com", ".amazonaws.com.cn"] where host.hasSuffix(suffix) {
            var labels = host.dropLast(suffix.count).split(separator: ".").map(String.init)
            if labels.first == "s3" { labels.removeFirst() }
            if labels.first == "dualstack" { labels.removeFirst() }
            if labels.count == 1, let only = labels.first {
                if only == "s3-external-1" { return "us-east-1" }
                if only.hasPrefix("s3-") { return String(only.dropFirst(3)) }
                if only.hasPrefix("s3") { return nil }
                return only.contains("-") ? only : nil
            }
        }
        return nil
    }

    public var description: String {
        var s = "s3:\(scheme.rawValue)://\(host)"
        if let port { s += ":\(port)" }
        s += "/\(bucket)"
        if !prefix.isEmpty { s += "/\(prefix)" }
        return s
    }

    // MARK: Parsing helpers

    private static func parseAuthority(_ authority: Substring, url: String) throws(S3LocationError) -> (String, Int?) {
        guard !authority.isEmpty else { throw .missingHost(url) }
        let hostPart: Substring
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .malformed(url, "unterminated IPv6 address")
            }
            hostPart = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .malformed(url, "unexpected text after the IPv6 address") }
                portPart = after.dropFirst()
            }
            let inner = hostPart.dropFirst().dropLast()
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw .invalidHost(url, String(hostPart))
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostPart = authority[..<colon]
                portPart = authority[authority.index(after: colon)...]
            } else {
                hostPart = authority
            }
            guard !hostPart.isEmpty else { throw .missingHost(url) }
            let labels = hostPart.split(separator: ".", omittingEmptySubsequences: false)
            let ok = labels.allSatisfy { label in
                !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                    && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
            }
            guard ok, hostPart.count <= 253 else { throw .invalidHost(url, String(hostPart)) }
        }
        var port: Int?
        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(portPart), (1...65535).contains(value)
            else { throw .invalidPort(url, String(portPart)) }
            port = value
        }
        return (hostPart.lowercased(), port)
    }

    private static func describe(_ c: Character) -> String {
        if c == "?" { return "a query (\"?\")" }
        if c == "#" { return "a fragment (\"#\")" }
        if c == "\\" { return "a backslash" }
        return "whitespace or control characters"
    }
}

public enum S3LocationError: Error, Equatable, CustomStringConvertible {
    /// The same error with its URL redacted.
    private var redactingURL: S3LocationError {
        let r = Self.redacted
        switch self {
        case .notS3(let u): return .notS3(r(u))
        case .malformed(let u, let why): return .malformed(r(u), why)
        case .missingHost(let u): return .missingHost(r(u))
        case .invalidHost(let u, let h): return .invalidHost(r(u), h.contains("@") ? "***" : h)
        case .invalidPort(let u, let p): return .invalidPort(r(u), p)
        case .missingBucket(let u): return .missingBucket(r(u))
        case .invalidBucket(let u, let b): return .invalidBucket(r(u), b)
        case .virtualHostingImpossible(let u, let b): return .virtualHostingImpossible(r(u), b)
        }
    }

    case notS3(String)
    case malformed(String, String)
    case missingHost(String)
    case invalidHost(String, String)
    case invalidPort(String, String)
    case missingBucket(String)
    case invalidBucket(String, String)
    case virtualHostingImpossible(String, String)

    /// The URL as messages may show it: anything before an '@' in the host part (an access
    /// key and secret someone put there) is replaced by "***".
    public static func redacted(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@") else { return url }
        let schemeEnd = url.firstRange(of: "://").map(\.upperBound) ?? url.index(url.startIndex, offsetBy: min(3, url.count))
        guard schemeEnd <= at else { return url }
        if let slash = url[schemeEnd...].firstIndex(of: "/"), slash < at { return url }
        return String(url[..<schemeEnd]) + "***" + url[at...]
    }

    public var description: String {
        switch self.redactingURL {
        case .notS3(let u): return "\(u) is not an S3 repository URL (expected s3:https://HOST/BUCKET[/PREFIX])"
        case .malformed(let u, let why): return "malformed S3 URL \(u): \(why)"
        case .missingHost(let u): return "S3 URL \(u) has no host (expected s3:https://HOST/BUCKET[/PREFIX])"
        case .invalidHost(let u, let h): return "S3 URL \(u): \"\(h)\" is not a valid host name"
        case .invalidPort(let u, let p): return "S3 URL \(u): \"\(p)\" is not a valid port (1-65535)"
        case .missingBucket(let u): return "S3 URL \(u) names no bucket (expected s3:https://HOST/BUCKET[/PREFIX])"
        case .invalidBucket(let u, let b):
            return "S3 URL \(u): \"\(b)\" is not a valid bucket name (letters, digits, '.', '-', '_'; at most 255 characters)"
        case .virtualHostingImpossible(let u, let b):
            return "S3 URL \(u): bucket \"\(b)\" cannot be addressed virtual-hosted (not a DNS-compatible name, or dotted over https); use path-style addressing"
        }
    }
}
