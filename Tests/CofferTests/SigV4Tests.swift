import CofferCrypto
import Foundation
import Testing

@testable import Coffer

/// Signature Version 4 against the worked examples AWS publishes.
@Suite struct SigV4Tests {
    static let empty = SigV4Signer.emptyPayloadHash

    /// "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)",
    /// S3 examples: examplebucket, 20130524T000000Z, us-east-1.
    static let s3Signer = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    static let may24 = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    static let s3Host = "examplebucket.s3.amazonaws.com"

    // MARK: IAM example from the SigV4 documentation

    @Test func iamListUsersExample() {
        let signer = SigV4Signer(
            credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            region: "us-east-1", service: "iam")
        #expect(!signer.sendsContentSHA256)
        let date = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
        let signed = signer.sign(
            method: "GET", host: "iam.amazonaws.com", path: "/",
            query: [("Version", "2010-05-08"), ("Action", "ListUsers")],
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            payloadHash: Self.empty, date: date)
        #expect(signed.canonicalRequest == """
            GET
            /
            Action=ListUsers&Version=2010-05-08
            content-type:application/x-www-form-urlencoded; charset=utf-8
            host:iam.amazonaws.com
            x-amz-date:20150830T123600Z

            content-type;host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/iam/aws4_request
            f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59
            """)
        #expect(Hex.encode(signer.signingKey(day: "20150830"))
            == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
        #expect(signed.signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        #expect(signed.authorization
            == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        #expect(signed.headers.map(\.name) == ["Authorization", "x-amz-date"])
    }

    // MARK: S3 examples

    @Test func s3GetObjectWithRange() {
        let signed = Self.s3Signer.sign(
            method: "GET", host: Self.s3Host, path: "/test.txt", headers: [("Range", "bytes=0-9")],
            payloadHash: Self.empty, date: Self.may24)
        #expect(signed.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(Hex.encode(Self.s3Signer.signingKey(day: "20130524"))
            == "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378")
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signed.authorization
            == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signed.encodedPath == "/test.txt")
        #expect(signed.headers.map(\.name) == ["Authorization", "x-amz-date", "x-amz-content-sha256"])
        #expect(signed.headers[1].value == "20130524T000000Z")
        #expect(signed.headers[2].value == Self.empty)
    }

    @Test func s3PutObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let payload = Hex.encode(SHA256.hash(body))
        #expect(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signed = Self.s3Signer.sign(
            method: "PUT", host: Self.s3Host, path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: payload, date: Self.may24)
        #expect(signed.encodedPath == "/test%24file.text")
        #expect(signed.canonicalRequest == """
            PUT
            /test%24file.text

            date:Fri, 24 May 2013 00:00:00 GMT
            host:examplebucket.s3.amazonaws.com
            x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
            x-amz-date:20130524T000000Z
            x-amz-storage-class:REDUCED_REDUNDANCY

            date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class
            44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
            """)
        #expect(signed.stringToSign.hasSuffix("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"))
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
        #expect(signed.signedHeaders == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
    }

    @Test func s3GetBucketLifecycle() {
        let signed = Self.s3Signer.sign(
            method: "GET", host: Self.s3Host, path: "/", query: [("lifecycle", "")],
            payloadHash: Self.empty, date: Self.may24)
        #expect(signed.canonicalRequest == """
            GET
            /
            lifecycle=
            host:examplebucket.s3.amazonaws.com
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign.hasSuffix("\n9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"))
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        #expect(signed.encodedQuery == "lifecycle=")
    }

    @Test func s3ListObjects() {
        // Given unsorted: the canonical query sorts it.
        let signed = Self.s3Signer.sign(
            method: "GET", host: Self.s3Host, path: "/", query: [("prefix", "J"), ("max-keys", "2")],
            payloadHash: Self.empty, date: Self.may24)
        #expect(signed.canonicalRequest == """
            GET
            /
            max-keys=2&prefix=J
            host:examplebucket.s3.amazonaws.com
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign.hasSuffix("\ndf57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"))
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    // MARK: Canonical forms

    @Test func sessionTokenIsSentAndSigned() {
        let signer = SigV4Signer(
            credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                       sessionToken: "token/with+chars="),
            region: "us-east-1")
        let signed = signer.sign(method: "GET", host: Self.s3Host, path: "/test.txt", payloadHash: Self.empty, date: Self.may24)
        #expect(signed.signedHeaders == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
        #expect(signed.canonicalRequest.contains("\nx-amz-security-token:token/with+chars=\n"))
        #expect(signed.headers.map(\.name) == ["Authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"])
        #expect(signed.headers[3].value == "token/with+chars=")
        // The token changes the signature.
        let plain = Self.s3Signer.sign(method: "GET", host: Self.s3Host, path: "/test.txt", payloadHash: Self.empty, date: Self.may24)
        #expect(plain.signature != signed.signature)
    }

    @Test func unsignedPayload() {
        let signed = Self.s3Signer.sign(
            method: "PUT", host: "minio.local:9000", path: "/bucket/data/ab", payloadHash: SigV4Signer.unsignedPayload, date: Self.may24)
        #expect(signed.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        #expect(signed.canonicalRequest.contains("\nhost:minio.local:9000\n"))
        #expect(signed.headers.contains { $0.name == "x-amz-content-sha256" && $0.value == "UNSIGNED-PAYLOAD" })
    }

    @Test func uriEncoding() {
        #expect(SigV4Signer.uriEncode("AZaz09-._~") == "AZaz09-._~")
        #expect(SigV4Signer.uriEncode("a b+c*d%e/f") == "a%20b%2Bc%2Ad%25e%2Ff")
        #expect(SigV4Signer.uriEncode("a b/c", keepSlash: true) == "a%20b/c")
        #expect(SigV4Signer.uriEncode("ü€") == "%C3%BC%E2%82%AC")
        #expect(SigV4Signer.uriEncode("=&?#!'()$,;:@") == "%3D%26%3F%23%21%27%28%29%24%2C%3B%3A%40")
        #expect(SigV4Signer.encodePath("") == "/")
        #expect(SigV4Signer.encodePath("/") == "/")
        #expect(SigV4Signer.encodePath("/bucket/repo/data/ab cd") == "/bucket/repo/data/ab%20cd")
        // S3 encodes once: an already-encoded key is encoded again, as S3 expects of a key containing '%'.
        #expect(SigV4Signer.encodePath("/a%20b") == "/a%2520b")
    }

    @Test func canonicalQuerySortsByEncodedNameThenValue() {
        let q = SigV4Signer.canonicalQuery([
            ("prefix", "a b"), ("list-type", "2"), ("a", "2"), ("a", "10"), ("B", "x"), ("continuation-token", "x/y=z"), ("delimiter", "/"),
        ])
        // Byte order: upper-case before lower-case; "10" before "2".
        #expect(q == "B=x&a=10&a=2&continuation-token=x%2Fy%3Dz&delimiter=%2F&list-type=2&prefix=a%20b")
        #expect(SigV4Signer.canonicalQuery([]) == "")
        // Sorting is by encoded name: "a%20" < "a-" < "a." < "a_" < "a~" in bytes.
        #expect(SigV4Signer.canonicalQuery([("a~", ""), ("a_", ""), ("a.", ""), ("a-", ""), ("a ", "")]) == "a%20=&a-=&a.=&a_=&a~=")
    }

    @Test func canonicalHeadersTrimCollapseAndJoin() {
        let (canonical, signed) = SigV4Signer.canonicalHeaders([
            ("Host", "example.com"),
            ("My-Header1", "    a   b   c  "),
            ("X-Amz-Meta-Multi", "one"),
            ("my-header2", "\"a   b   c\""),
            ("x-amz-meta-multi", " two  words "),
        ])
        #expect(canonical == """
            host:example.com
            my-header1:a b c
            my-header2:"a b c"
            x-amz-meta-multi:one,two words

            """)
        #expect(signed == "host;my-header1;my-header2;x-amz-meta-multi")
    }

    @Test func amzDateFormatting() {
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
        #expect(SigV4Signer.amzDate(Self.may24) == "20130524T000000Z")
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 1_440_938_160.9)) == "20150830T123600Z")
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 951_868_799)) == "20000229T235959Z")  // leap day
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 4_102_444_800)) == "21000101T000000Z")
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: -1)) == "19691231T235959Z")
    }

    @Test func signingIsDeterministicAndDependsOnEveryPart() {
        func sig(method: String = "GET", path: String = "/k", query: [(name: String, value: String)] = [],
                 region: String = "us-east-1", date: Date = Self.may24) -> String {
            SigV4Signer(credentials: Self.s3Signer.credentials, region: region)
                .sign(method: method, host: Self.s3Host, path: path, query: query, payloadHash: Self.empty, date: date).signature
        }
        let base = sig()
        #expect(sig() == base)
        #expect(sig(method: "HEAD") != base)
        #expect(sig(path: "/k2") != base)
        #expect(sig(query: [("a", "")]) != base)
        #expect(sig(region: "eu-west-1") != base)
        #expect(sig(date: Self.may24.addingTimeInterval(1)) != base)
    }
}
