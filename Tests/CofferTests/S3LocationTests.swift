import Testing

@testable import Coffer

@Suite struct S3LocationTests {
    struct Good: Sendable, CustomTestStringConvertible {
        let url: String
        let scheme: S3Location.Scheme
        let host: String
        let port: Int?
        let bucket: String
        let prefix: String
        let addressing: S3Location.AddressingStyle
        var testDescription: String { url }
    }

    static let good: [Good] = [
        Good(url: "s3:https://s3.amazonaws.com/bucket", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "bucket", prefix: "", addressing: .virtualHosted),
        Good(url: "s3:https://s3.eu-west-1.amazonaws.com/my-bucket/repos/laptop", scheme: .https, host: "s3.eu-west-1.amazonaws.com", port: nil, bucket: "my-bucket", prefix: "repos/laptop", addressing: .virtualHosted),
        Good(url: "s3:http://localhost:9000/coffer", scheme: .http, host: "localhost", port: 9000, bucket: "coffer", prefix: "", addressing: .path),
        Good(url: "s3:http://127.0.0.1:9000/coffer/sub/dir/", scheme: .http, host: "127.0.0.1", port: 9000, bucket: "coffer", prefix: "sub/dir", addressing: .path),
        Good(url: "s3:https://[::1]:9443/b/p", scheme: .https, host: "[::1]", port: 9443, bucket: "b", prefix: "p", addressing: .path),
        // restic's short form means https.
        Good(url: "s3:s3.amazonaws.com/bucket/prefix", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "bucket", prefix: "prefix", addressing: .virtualHosted),
        Good(url: "s3:minio.example.org:443/backups", scheme: .https, host: "minio.example.org", port: 443, bucket: "backups", prefix: "", addressing: .path),
        // Host is case-insensitive and lower-cased; bucket and prefix are kept as written.
        Good(url: "s3:https://MinIO.Example.ORG/Legacy_Bucket/Some-Prefix", scheme: .https, host: "minio.example.org", port: nil, bucket: "Legacy_Bucket", prefix: "Some-Prefix", addressing: .path),
        // AWS, but the bucket name is not a DNS label (upper case, underscore) or is dotted over https.
        Good(url: "s3:https://s3.amazonaws.com/Legacy_Bucket", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "Legacy_Bucket", prefix: "", addressing: .path),
        Good(url: "s3:https://s3.amazonaws.com/my.dotted.bucket/x", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "my.dotted.bucket", prefix: "x", addressing: .path),
        Good(url: "s3:http://s3.amazonaws.com/my.dotted.bucket", scheme: .http, host: "s3.amazonaws.com", port: nil, bucket: "my.dotted.bucket", prefix: "", addressing: .virtualHosted),
        Good(url: "s3:https://s3.amazonaws.com/ab", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "ab", prefix: "", addressing: .path),
        Good(url: "s3:https://s3.amazonaws.com/192.168.1.1", scheme: .https, host: "s3.amazonaws.com", port: nil, bucket: "192.168.1.1", prefix: "", addressing: .path),
        // A host that merely contains amazonaws.com is a custom endpoint.
        Good(url: "s3:https://amazonaws.com.evil.example/bucket", scheme: .https, host: "amazonaws.com.evil.example", port: nil, bucket: "bucket", prefix: "", addressing: .path),
        Good(url: "s3:https://storage.googleapis.com/bucket/p", scheme: .https, host: "storage.googleapis.com", port: nil, bucket: "bucket", prefix: "p", addressing: .path),
        // Odd but legal key characters in the prefix are kept literally (no percent-decoding).
        Good(url: "s3:https://h.example/b/a%20b/c+d", scheme: .https, host: "h.example", port: nil, bucket: "b", prefix: "a%20b/c+d", addressing: .path),
    ]

    @Test(arguments: good)
    func parses(_ g: Good) throws {
        let loc = try S3Location(parsing: g.url)
        #expect(loc.scheme == g.scheme)
        #expect(loc.host == g.host)
        #expect(loc.port == g.port)
        #expect(loc.bucket == g.bucket)
        #expect(loc.prefix == g.prefix)
        #expect(loc.addressing == g.addressing)
        // The description is a canonical URL that parses back to the same location.
        #expect(try S3Location(parsing: loc.description) == loc)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        let url: String
        let error: S3LocationError
        var testDescription: String { url }
    }

    static let bad: [Bad] = [
        Bad(url: "https://s3.amazonaws.com/bucket", error: .notS3("https://s3.amazonaws.com/bucket")),
        Bad(url: "S3:https://h/b", error: .notS3("S3:https://h/b")),
        Bad(url: "s3:", error: .missingHost("s3:")),
        Bad(url: "s3:https://", error: .missingHost("s3:https://")),
        Bad(url: "s3:https:///bucket", error: .missingHost("s3:https:///bucket")),
        Bad(url: "s3:https://host", error: .missingBucket("s3:https://host")),
        Bad(url: "s3:https://host/", error: .missingBucket("s3:https://host/")),
        Bad(url: "s3:https://host//bucket", error: .missingBucket("s3:https://host//bucket")),
        Bad(url: "s3:https://host:0/b", error: .invalidPort("s3:https://host:0/b", "0")),
        Bad(url: "s3:https://host:65536/b", error: .invalidPort("s3:https://host:65536/b", "65536")),
        Bad(url: "s3:https://host:/b", error: .invalidPort("s3:https://host:/b", "")),
        Bad(url: "s3:https://host:9x/b", error: .invalidPort("s3:https://host:9x/b", "9x")),
        Bad(url: "s3:https://host:+80/b", error: .invalidPort("s3:https://host:+80/b", "+80")),
        Bad(url: "s3:https://ho st/b", error: .malformed("s3:https://ho st/b", "the URL must not contain whitespace or control characters")),
        Bad(url: "s3:https://-host/b", error: .invalidHost("s3:https://-host/b", "-host")),
        Bad(url: "s3:https://host..example/b", error: .invalidHost("s3:https://host..example/b", "host..example")),
        Bad(url: "s3:https://[::1/b", error: .malformed("s3:https://[::1/b", "unterminated IPv6 address")),
        Bad(url: "s3:https://[zz]/b", error: .invalidHost("s3:https://[zz]/b", "[zz]")),
        Bad(url: "s3:https://host/bad bucket", error: .malformed("s3:https://host/bad bucket", "the URL must not contain whitespace or control characters")),
        Bad(url: "s3:https://host/bucket!/p", error: .invalidBucket("s3:https://host/bucket!/p", "bucket!")),
        Bad(url: "s3:https://host/b/p//q", error: .malformed("s3:https://host/b/p//q", "the prefix has an empty path segment (\"//\")")),
        Bad(url: "s3:https://host/b/../q", error: .malformed("s3:https://host/b/../q", "the prefix must not contain \"..\" segments")),
        Bad(url: "s3:https://host/b/./q", error: .malformed("s3:https://host/b/./q", "the prefix must not contain \".\" segments")),
        Bad(url: "s3:https://host/b?versionId=1", error: .malformed("s3:https://host/b?versionId=1", "the URL must not contain a query (\"?\")")),
        Bad(url: "s3:https://host/b#frag", error: .malformed("s3:https://host/b#frag", "the URL must not contain a fragment (\"#\")")),
        Bad(url: "s3:https://key:secret@host/b", error: .malformed("s3:https://key:secret@host/b", "credentials in the URL are not supported; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")),
        Bad(url: "s3://bucket/prefix", error: .malformed("s3://bucket/prefix", "write s3:https://HOST/BUCKET (or s3:HOST/BUCKET), not s3://")),
        Bad(url: "s3:ftp://host/b", error: .malformed("s3:ftp://host/b", "unsupported scheme \"ftp\"; use https or http")),
    ]

    @Test(arguments: bad)
    func rejects(_ b: Bad) {
        #expect(throws: b.error) { try S3Location(parsing: b.url) }
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(S3LocationError.missingBucket("s3:https://h").description
            == "S3 URL s3:https://h names no bucket (expected s3:https://HOST/BUCKET[/PREFIX])")
        #expect(S3LocationError.invalidPort("u", "99999").description == "S3 URL u: \"99999\" is not a valid port (1-65535)")
    }

    @Test func addressingOverride() throws {
        let path = try S3Location(parsing: "s3:https://s3.amazonaws.com/bucket/p", addressing: .path)
        #expect(path.addressing == .path)
        #expect(path.requestHost == "s3.amazonaws.com")
        #expect(path.requestPath(key: path.key("config")) == "/bucket/p/config")
        #expect(path.requestPath(key: nil) == "/bucket")

        let virtual = try S3Location(parsing: "s3:http://minio.local:9000/bucket", addressing: .virtualHosted)
        #expect(virtual.addressing == .virtualHosted)
        #expect(virtual.requestHost == "bucket.minio.local")
        #expect(virtual.hostHeader == "bucket.minio.local:9000")
        #expect(virtual.endpoint == "http://bucket.minio.local:9000")
        #expect(virtual.requestPath(key: "data/ab") == "/data/ab")
        #expect(virtual.requestPath(key: nil) == "/")

        #expect(throws: S3LocationError.virtualHostingImpossible("s3:https://minio.local/Bad_Bucket", "Bad_Bucket")) {
            try S3Location(parsing: "s3:https://minio.local/Bad_Bucket", addressing: .virtualHosted)
        }
        #expect(throws: S3LocationError.virtualHostingImpossible("s3:https://minio.local/a.b.c", "a.b.c")) {
            try S3Location(parsing: "s3:https://minio.local/a.b.c", addressing: .virtualHosted)
        }
    }

    @Test func requestsAndKeys() throws {
        let aws = try S3Location(parsing: "s3:https://s3.eu-west-1.amazonaws.com/my-bucket/repos/laptop")
        #expect(aws.requestHost == "my-bucket.s3.eu-west-1.amazonaws.com")
        #expect(aws.hostHeader == "my-bucket.s3.eu-west-1.amazonaws.com")
        #expect(aws.key("data/00ff") == "repos/laptop/data/00ff")
        #expect(aws.key("config") == "repos/laptop/config")
        #expect(aws.listPrefix("snapshots") == "repos/laptop/snapshots/")
        #expect(aws.requestPath(key: aws.key("config")) == "/repos/laptop/config")

        let minio = try S3Location(parsing: "s3:http://localhost:9000/coffer")
        #expect(minio.key("config") == "config")
        #expect(minio.listPrefix("data") == "data/")
        #expect(minio.hostHeader == "localhost:9000")
        #expect(minio.endpoint == "http://localhost:9000")
        #expect(minio.requestPath(key: "data/ab") == "/coffer/data/ab")

        // The scheme's default port is left out of the Host header but kept in the description.
        let explicit = try S3Location(parsing: "s3:https://minio.example.org:443/b")
        #expect(explicit.hostHeader == "minio.example.org")
        #expect(explicit.description == "s3:https://minio.example.org:443/b")
    }

    @Test(arguments: [
        ("s3.amazonaws.com", nil),
        ("s3.eu-west-1.amazonaws.com", "eu-west-1"),
        ("s3-eu-west-1.amazonaws.com", "eu-west-1"),
        ("s3.dualstack.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
        ("s3-external-1.amazonaws.com", "us-east-1"),
        ("s3.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("minio.local", nil),
    ] as [(String, String?)])
    func regionFromHost(host: String, region: String?) throws {
        #expect(try S3Location(parsing: "s3:https://\(host)/bucket").hostRegion == region)
    }

    @Test func bucketNameRules() {
        for ok in ["abc", "my-bucket", "my.bucket.name", "a1b2c3", String(repeating: "a", count: 63)] {
            #expect(S3Location.isDNSCompatibleBucketName(ok), "\(ok)")
        }
        for bad in ["ab", String(repeating: "a", count: 64), "My-Bucket", "my_bucket", "-abc", "abc-", ".abc", "abc.",
                    "a..b", "a.-b", "a-.b", "192.168.5.4", "ab c"] {
            #expect(!S3Location.isDNSCompatibleBucketName(bad), "\(bad)")
        }
        #expect(S3Location.isValidBucketName("Legacy_Bucket.1"))
        #expect(!S3Location.isValidBucketName(""))
        #expect(!S3Location.isValidBucketName(".."))
        #expect(!S3Location.isValidBucketName(String(repeating: "a", count: 256)))
    }

    @Test func credentialsInTheURLNeverAppearInMessages() {
        for url in [
            "s3:https://AKIAEXAMPLE:wJalrXUtnFEMI@s3.amazonaws.com/bucket",
            "s3:AKIAEXAMPLE:wJalrXUtnFEMI@host/bucket",
            "s3:ftp://AKIAEXAMPLE:wJalrXUtnFEMI@host/bucket",
            "s3:https://AKIAEXAMPLE:wJalrXUtnFEMI@host",
        ] {
            do {
                _ = try S3Location(parsing: url)
                Issue.record("\(url) parsed")
            } catch {
                #expect(!"\(error)".contains("wJalrXUtnFEMI") && !"\(error)".contains("AKIAEXAMPLE"), "\(error)")
            }
        }
        #expect(S3LocationError.redacted("s3:https://host/b/a@b") == "s3:https://host/b/a@b")  // '@' in the prefix is not userinfo
    }
}
