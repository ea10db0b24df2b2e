/// Why an S3 request failed, worded for the person who has to fix it.
public enum S3Error: Error, CustomStringConvertible {
    /// The server refused the credentials or the request's signature (HTTP 403).
    case accessDenied(request: String, code: String?, message: String?)
    /// The bucket does not exist (and was not to be created).
    case noSuchBucket(String)
    /// The credentials sign for one region and the bucket lives in another.
    case wrongRegion(request: String, signedFor: String, bucketRegion: String?)
    /// Any other answer that is not success, after the retries transient failures get.
    case http(request: String, status: Int, code: String?, message: String?, attempts: Int)
    /// No answer at all (connection refused or reset, timeout), after the retries.
    case unreachable(request: String, reason: String, attempts: Int)
    /// A failure retrying cannot mend: a host name that does not resolve, a TLS certificate
    /// that does not verify.
    case failed(request: String, reason: String)
    /// The server's clock and this machine's differ by more than S3 allows (15 minutes).
    case clockSkew(request: String, serverTime: String?)
    /// The server answered 2xx with a body that is not what S3 sends.
    case malformedResponse(request: String, detail: String)

    public var description: String {
        switch self {
        case .accessDenied(let request, let code, let message):
            var hint = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials) and the bucket's permissions"
            if code == "SignatureDoesNotMatch" { hint = "the secret key is wrong (the server computed another signature): check AWS_SECRET_ACCESS_KEY" }
            if code == "InvalidAccessKeyId" { hint = "the server does not know this access key id: check AWS_ACCESS_KEY_ID" }
            return "S3 access denied for \(request)\(Self.detail(code, message)): \(hint)"
        case .noSuchBucket(let bucket):
            return "S3 bucket \"\(bucket)\" does not exist (coffer init creates it)"
        case .wrongRegion(let request, let signed, let region):
            let target = region.map { "region \($0)" } ?? "another region"
            return "S3 \(request): the bucket is in \(target), but requests were signed for \(signed); set AWS_DEFAULT_REGION=\(region ?? "REGION") or -o s3.region=\(region ?? "REGION")"
        case .http(let request, let status, let code, let message, let attempts):
            return "S3 \(request) failed: HTTP \(status)\(Self.detail(code, message))\(attempts > 1 ? " (after \(attempts) attempts)" : "")"
        case .unreachable(let request, let reason, let attempts):
            return "S3 \(request) failed: \(reason)\(attempts > 1 ? " (after \(attempts) attempts)" : "")"
        case .failed(let request, let reason):
            return "S3 \(request) failed: \(reason)"
        case .clockSkew(let request, let serverTime):
            return "S3 \(request): this machine's clock is too far from the server's\(serverTime.map { " (server time: \($0))" } ?? ""); set the clock right (e.g. enable NTP)"
        case .malformedResponse(let request, let detail):
            return "S3 \(request): unexpected response: \(detail)"
        }
    }

    private static func detail(_ code: String?, _ message: String?) -> String {
        switch (code, message) {
        case let (c?, m?): return " (\(c): \(m))"
        case let (c?, nil): return " (\(c))"
        case let (nil, m?): return " (\(m))"
        case (nil, nil): return ""
        }
    }
}
