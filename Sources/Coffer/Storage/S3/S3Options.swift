/// Tuning for the S3 backend, set on the command line as `-o s3.NAME=VALUE` (restic's spelling
/// where restic has the option).
public struct S3Options: Sendable, Equatable {
    /// Requests in flight at once (uploads and downloads together).
    public var connections = 5
    /// Tries per request, the first included; transient failures (5xx, 429, timeouts, dropped
    /// connections) are retried with exponential backoff and jitter.
    public var attempts = 8
    /// Seconds without progress before a request is abandoned (and retried): connecting,
    /// waiting for an answer, or between two reads of a body.
    public var timeoutSeconds = 60.0
    /// The first retry waits about this long; each further retry doubles it, up to `maxBackoffSeconds`.
    public var backoffSeconds = 0.5
    public var maxBackoffSeconds = 30.0
    /// No retry starts later than this after a request's first attempt; whatever it is set to,
    /// a request ends within `S3Transport.longestRequestSeconds` (RepositoryLock's margin).
    public var retryWindowSeconds = 300
    /// The region to sign for; overrides AWS_REGION / AWS_DEFAULT_REGION / the profile.
    public var region: String?
    /// Path-style or virtual-hosted addressing; nil chooses by endpoint (S3Location).
    public var addressing: S3Location.AddressingStyle?

    public init() {}

    public static let names = ["s3.connections", "s3.retries", "s3.timeout", "s3.region", "s3.bucket-lookup"]

    /// Applies `name=value` settings; unknown names and bad values are errors that say what is
    /// accepted.
    public init(settings: [(name: String, value: String)]) throws(S3OptionError) {
        for (name, value) in settings {
            switch name {
            case "s3.connections":
                guard let n = Int(value), (1...128).contains(n) else { throw .invalid(name, value, "a number from 1 to 128") }
                connections = n
            case "s3.retries":
                guard let n = Int(value), (0...50).contains(n) else { throw .invalid(name, value, "a number from 0 to 50") }
                attempts = n + 1
            case "s3.timeout":
                guard let s = Double(value), s > 0, s <= 3600 else { throw .invalid(name, value, "seconds, more than 0 and at most 3600") }
                timeoutSeconds = s
            case "s3.region":
                guard !value.isEmpty, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                    throw .invalid(name, value, "a region name such as eu-west-1")
                }
                region = value
            case "s3.bucket-lookup":
                switch value {
                case "auto": addressing = nil
                case "path": addressing = .path
                case "dns": addressing = .virtualHosted
                default: throw .invalid(name, value, "auto, path or dns")
                }
            default:
                throw .unknown(name)
            }
        }
    }
}

public enum S3OptionError: Error, Equatable, CustomStringConvertible {
    case unknown(String)
    case invalid(String, String, String)

    public var description: String {
        switch self {
        case .unknown(let n): return "unknown option \"\(n)\" (known: \(S3Options.names.joined(separator: ", ")))"
        case .invalid(let n, let v, let want): return "option \(n)=\(v): expected \(want)"
        }
    }
}
