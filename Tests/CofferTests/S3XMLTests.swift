import AsyncHTTPClient
import Glibc
import NIOCore
import Testing

@testable import Coffer

@Suite struct S3XMLTests {
    @Test func listPageWithContinuation() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>r/data/</Prefix>\
            <KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>\
            <Contents><Key>r/data/ab/ab01</Key><LastModified>2026-11-29T08:57:09Z</LastModified><ETag>&quot;x&quot;</ETag><Size>176</Size></Contents>\
            <Contents><Key>r/data/a&amp;b</Key><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>\
            <NextContinuationToken>tok+/=&lt;1&gt;</NextContinuationToken></ListBucketResult>
            """
        let page = try #require(S3XML.listPage(xml))
        #expect(page.objects.map(\.key) == ["r/data/ab/ab01", "r/data/a&b"])
        #expect(page.objects.map(\.size) == [176, 0])
        #expect(page.isTruncated)
        #expect(page.continuationToken == "tok+/=<1>")
    }

    @Test func lastPageAndEmptyListing() throws {
        let last = try #require(S3XML.listPage("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>5</Size></Contents></ListBucketResult>"))
        #expect(!last.isTruncated && last.continuationToken == nil && last.objects.count == 1)
        let empty = try #require(S3XML.listPage("<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"))
        #expect(empty.objects.isEmpty)
    }

    @Test func notAListingIsNil() {
        #expect(S3XML.listPage("<html><body>proxy error</body></html>") == nil)
        // A Contents block without a size is not a listing S3 sends.
        #expect(S3XML.listPage("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>") == nil)
    }

    @Test func errorBodies() {
        let e = S3XML.errorBody("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Resource>/b/config</Resource></Error>
            """)
        #expect(e.code == "SignatureDoesNotMatch")
        #expect(e.message == "The request signature we calculated does not match")
        let region = S3XML.errorBody("<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>")
        #expect(region.region == "eu-west-1")
        #expect(S3XML.errorBody("") == S3XML.ErrorBody())
        #expect(S3XML.errorBody("Service Unavailable") == S3XML.ErrorBody())
    }

    @Test func elementNamesMatchWhole() {
        // <KeyCount> is not <Key>; attributes and self-closing elements are handled.
        #expect(S3XML.texts(of: "Key", in: "<KeyCount>3</KeyCount><Key a=\"1\">x</Key><Key/>") == ["x", ""])
    }

    @Test func entities() {
        #expect(S3XML.decodeEntities("a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;") == "a&b<>\"'AB")
        // Unknown or unterminated entities stay as they are.
        #expect(S3XML.decodeEntities("&bogus; & &#xZZ;") == "&bogus; & &#xZZ;")
    }
}

@Suite struct S3OptionsTests {
    @Test func defaultsAndSettings() throws {
        let d = S3Options()
        #expect(d.connections == 5 && d.attempts == 8 && d.timeoutSeconds == 60 && d.region == nil && d.addressing == nil)
        let o = try S3Options(settings: [
            ("s3.connections", "12"), ("s3.retries", "0"), ("s3.timeout", "2.5"), ("s3.region", "eu-central-1"), ("s3.bucket-lookup", "dns"),
        ])
        #expect(o.connections == 12 && o.attempts == 1 && o.timeoutSeconds == 2.5 && o.region == "eu-central-1" && o.addressing == .virtualHosted)
        #expect(try S3Options(settings: [("s3.bucket-lookup", "path")]).addressing == .path)
    }

    @Test func badSettingsSayWhatIsAccepted() {
        #expect(throws: S3OptionError.unknown("s3.conections")) { try S3Options(settings: [("s3.conections", "5")]) }
        #expect(throws: S3OptionError.invalid("s3.connections", "0", "a number from 1 to 128")) { try S3Options(settings: [("s3.connections", "0")]) }
        #expect(throws: S3OptionError.self) { try S3Options(settings: [("s3.timeout", "-1")]) }
        #expect(throws: S3OptionError.self) { try S3Options(settings: [("s3.region", "eu west")]) }
        #expect(throws: S3OptionError.self) { try S3Options(settings: [("s3.bucket-lookup", "virtual")]) }
        #expect("\(S3OptionError.unknown("x"))".contains("s3.connections"))
    }
}

@Suite struct ObjectLayoutTests {
    @Test func relativePathsRoundTrip() {
        let hex = String(repeating: "ab", count: 32)
        #expect(ObjectName.config.relativePath == "config")
        #expect(ObjectName(.data, hex).relativePath == "data/ab/\(hex)")
        #expect(ObjectName(.index, hex).relativePath == "index/\(hex)")
        #expect(ObjectName(kind: .data, relativePath: Substring("ab/\(hex)")) == ObjectName(.data, hex))
        #expect(ObjectName(kind: .index, relativePath: Substring(hex)) == ObjectName(.index, hex))
        // Wrong fan-out folder, temporary files, nested names and short names are not objects.
        #expect(ObjectName(kind: .data, relativePath: Substring("cd/\(hex)")) == nil)
        #expect(ObjectName(kind: .data, relativePath: Substring(hex)) == nil)
        #expect(ObjectName(kind: .index, relativePath: Substring(".tmp-\(hex)")) == nil)
        #expect(ObjectName(kind: .index, relativePath: Substring("x/\(hex)")) == nil)
        #expect(ObjectName(kind: .keys, relativePath: "abcd") == nil)
    }
}

@Suite struct S3TransportTests {
    static func response(_ status: Int, _ body: String = "") -> S3Response {
        S3Response(status: status, body: Array(body.utf8))
    }

    @Test func transientAnswersAreRetried() {
        for status in [500, 502, 503, 504, 429] { #expect(S3Transport.isTransient(Self.response(status))) }
        #expect(S3Transport.isTransient(Self.response(400, "<Error><Code>RequestTimeout</Code></Error>")))
        for status in [200, 204, 206, 400, 403, 404, 409, 416] { #expect(!S3Transport.isTransient(Self.response(status))) }
    }

    @Test func transientErrorsAreRetriedOthersAreNot() {
        #expect(S3Transport.isTransient(S3Transport.TransportFailure.shortBody(expected: 10, received: 5)))
        #expect(S3Transport.isTransient(HTTPClientError.remoteConnectionClosed))
        #expect(S3Transport.isTransient(HTTPClientError.readTimeout))
        #expect(S3Transport.isTransient(IOError(errnoCode: ECONNRESET, reason: "read")))
        #expect(!S3Transport.isTransient(HTTPClientError.invalidURL))
        #expect(!S3Transport.isTransient(NIOTooManyBytesError(maxBytes: 16)))
        #expect(!S3Transport.isTransient(S3OptionError.unknown("x")))
    }

    @Test func contentRangeHeaders() {
        #expect(ContentRange("bytes 10-19/40") == ContentRange(start: 10, end: 19, total: 40))
        #expect(ContentRange("bytes 0-9/*")?.total == nil)
        #expect(ContentRange("bytes */40")?.total == 40)
        for bad in ["bytes 19-10/40", "items 0-1/2", "bytes 1-2", "bytes a-b/3", ""] { #expect(ContentRange(bad) == nil, "\(bad)") }
    }

    @Test func backoffGrowsWithJitterAndHonoursRetryAfter() {
        var options = S3Options()
        options.backoffSeconds = 1
        options.maxBackoffSeconds = 8
        let t = S3Transport(
            location: try! S3Location(parsing: "s3:http://127.0.0.1:9/b"), credentials: .init(accessKeyID: "a", secretAccessKey: "s"),
            region: "us-east-1", options: options)
        for _ in 0..<50 {
            #expect((0.5...1).contains(t.backoff(attempt: 1, retryAfter: nil)))
            #expect((2...4).contains(t.backoff(attempt: 3, retryAfter: nil)))
            #expect((4...8).contains(t.backoff(attempt: 10, retryAfter: nil)))  // capped
            #expect(t.backoff(attempt: 1, retryAfter: 6) == 6)
            #expect(t.backoff(attempt: 1, retryAfter: 600) == 8)  // a Retry-After is capped too
        }
    }
}
