import CofferCrypto
import Foundation

/// AWS Signature Version 4 for header-signed requests ("Authorization: AWS4-HMAC-SHA256 …"),
/// built exactly as the AWS documentation describes it, on libsodium's SHA-256 and HMAC-SHA256.
///
/// The caller gives the request's parts unencoded (path, query items) plus the headers it will
/// send; `sign` returns the headers to add and the encoded path and query the request must be
/// sent with, so the bytes on the wire are the bytes that were signed. S3 encodes the path
/// once (other services encode it twice; this signer follows S3 and only ever encodes once).
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// `x-amz-content-sha256` value for a body that is not hashed (allowed over TLS by S3).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: S3Credentials
    public let region: String
    public let service: String
    /// Whether to send and sign `x-amz-content-sha256` (S3 requires it; most services do not).
    public let sendsContentSHA256: Bool

    public init(credentials: S3Credentials, region: String, service: String = "s3", sendsContentSHA256: Bool? = nil) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.sendsContentSHA256 = sendsContentSHA256 ?? (service == "s3")
    }

    /// Everything signing produced, intermediate steps included.
    public struct SignedRequest: Sendable, Equatable {
        /// The path to send: each segment URI-encoded, '/' kept.
        public let encodedPath: String
        /// The query string to send (also the canonical query string): sorted, encoded, no '?'.
        public let encodedQuery: String
        public let canonicalRequest: String
        public let stringToSign: String
        /// `host;range;x-amz-content-sha256;x-amz-date`, …
        public let signedHeaders: String
        /// 64 hex digits.
        public let signature: String
        public let authorization: String
        /// Headers to add to the request: Authorization, x-amz-date, x-amz-content-sha256 (for
        /// S3) and x-amz-security-token (with temporary credentials). Host is not among them:
        /// the HTTP client must send exactly the `host` that was signed.
        public let headers: [(name: String, value: String)]

        public static func == (a: SignedRequest, b: SignedRequest) -> Bool {
            a.canonicalRequest == b.canonicalRequest && a.stringToSign == b.stringToSign && a.authorization == b.authorization
                && a.headers.map { "\($0.name):\($0.value)" } == b.headers.map { "\($0.name):\($0.value)" }
        }
    }

    /// Header names the signer sets itself; passing them in `headers` is a programming error.
    public static let reservedHeaders: Set<String> = ["host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]

    /// Signs a request.
    /// - Parameters:
    ///   - host: the Host header value as it will be sent (with ":PORT" when not the default).
    ///   - path: the unencoded path, starting with "/" ("/" for the root).
    ///   - query: unencoded query items; a parameter without a value (`?lifecycle`) has "".
    ///   - headers: other headers to send and sign (Range, Content-Type, Date, x-amz-meta-…).
    ///   - payloadHash: lower-case hex SHA-256 of the body, or `unsignedPayload`.
    public func sign(
        method: String, host: String, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], payloadHash: String, date: Date
    ) -> SignedRequest {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"

        var all: [(name: String, value: String)] = [("host", host), ("x-amz-date", amzDate)]
        if sendsContentSHA256 { all.append(("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        for h in headers {
            precondition(!Self.reservedHeaders.contains(h.name.lowercased()), "SigV4Signer sets \(h.name) itself")
            all.append(h)
        }

        let encodedPath = Self.encodePath(path)
        let encodedQuery = Self.canonicalQuery(query)
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(all)
        let canonicalRequest = [method, encodedPath, encodedQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let stringToSign = [Self.algorithm, amzDate, scope, Hex.encode(SHA256.hash(Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        let signature = Hex.encode(HMACSHA256.authenticate(Array(stringToSign.utf8), key: signingKey(day: day)))
        let authorization =
            "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"

        var added: [(name: String, value: String)] = [("Authorization", authorization), ("x-amz-date", amzDate)]
        if sendsContentSHA256 { added.append(("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        return SignedRequest(
            encodedPath: encodedPath, encodedQuery: encodedQuery, canonicalRequest: canonicalRequest,
            stringToSign: stringToSign, signedHeaders: signedHeaders, signature: signature,
            authorization: authorization, headers: added)
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    public func signingKey(day: String) -> [UInt8] {
        var key = HMACSHA256.authenticate(Array(day.utf8), key: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [region, service, "aws4_request"] {
            key = HMACSHA256.authenticate(Array(part.utf8), key: key)
        }
        return key
    }

    // MARK: Canonical forms

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters (A–Z a–z 0–9 - . _ ~)
    /// stay, every other UTF-8 byte becomes %XX with upper-case hex; '/' stays only if asked.
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for c in text.utf8 {
            let unreserved =
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
            if unreserved || (keepSlash && c == UInt8(ascii: "/")) {
                out.append(c)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(c >> 4)], hex[Int(c & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical URI: each segment encoded, '/' kept; an empty path is "/".
    public static func encodePath(_ path: String) -> String {
        path.isEmpty ? "/" : uriEncode(path, keepSlash: true)
    }

    /// The canonical query string: names and values encoded, sorted by encoded name then encoded
    /// value (byte order), joined as `a=1&b=&c=3`.
    public static func canonicalQuery(_ items: [(name: String, value: String)]) -> String {
        items.map { (uriEncode($0.name), uriEncode($0.value)) }
            .sorted { $0.0 != $1.0 ? Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) : Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8)) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Canonical headers (`name:value\n` each, names lower-cased and sorted, values trimmed with
    /// inner runs of spaces collapsed, repeated names joined with ',') and the signed-headers list.
    public static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (canonical: String, signed: String) {
        var byName: [String: [String]] = [:]
        for h in headers {
            byName[h.name.lowercased(), default: []].append(trimAll(h.value))
        }
        let names = byName.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let canonical = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// Trims leading and trailing whitespace and collapses inner runs of spaces and tabs to one
    /// space (AWS's "Trimall").
    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
            .joined(separator: " ")
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func amzDate(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secs = seconds - days * 86400
        let (y, m, d) = CivilClock.civilFromDays(Int64(days))
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "T" + pad(secs / 3600, 2) + pad(secs % 3600 / 60, 2) + pad(secs % 60, 2) + "Z"
    }
}
