import NIOHTTP1

/// A repository in an S3 bucket (AWS, MinIO, Ceph, R2, B2, `rclone serve s3`, …), under the
/// location's prefix, with the same object paths as a local repository (FORMAT.md §1).
///
/// S3 stores each PUT whole or not at all, so objects are never partial; a failed upload is
/// retried (S3Transport) and otherwise fails the command before anything references it.
public final class S3Storage: Storage {
    public let s3: S3Location
    let transport: S3Transport
    public var location: String { s3.description }
    public var meter: TransferMeter? { transport.meter }

    /// - Parameter region: the region to sign for (S3Options.region, else the configured
    ///   one, else the one the host names, else us-east-1).
    public init(location: S3Location, credentials: S3Credentials, region: String, options: S3Options = S3Options()) {
        s3 = location
        transport = S3Transport(location: location, credentials: credentials, region: region, options: options)
    }

    private func key(_ name: ObjectName) -> String { s3.key(name.relativePath) }

    public func list(_ kind: ObjectKind) async throws -> [StoredObject] {
        if kind == .config { return try await stat(.config).map { [$0] } ?? [] }
        let prefix = s3.listPrefix(kind.rawValue)
        var out: [StoredObject] = []
        var token: String? = nil
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let label = "LIST \(kind.rawValue)/"
            let response = try await transport.send(.init(method: .GET, key: nil, query: query, label: label))
            try check(response, label)
            guard let page = S3XML.listPage(String(decoding: response.body, as: UTF8.self)) else {
                throw S3Error.malformedResponse(request: label, detail: "not a ListObjectsV2 result")
            }
            for object in page.objects where object.key.hasPrefix(prefix) {
                guard let name = ObjectName(kind: kind, relativePath: object.key.dropFirst(prefix.count)) else { continue }
                out.append(StoredObject(name: name, size: object.size))
            }
            guard page.isTruncated else { break }
            guard let next = page.continuationToken, next != token else {
                throw S3Error.malformedResponse(request: label, detail: "a truncated listing without a new continuation token")
            }
            token = next
        } while true
        return out
    }

    public func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] {
        var headers: [(name: String, value: String)] = []
        if let range {
            if range.isEmpty { return [] }
            headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let label = "GET \(name)"
        let limit = range.map { $0.count + (1 << 20) } ?? (1 << 30)
        let response = try await transport.send(.init(method: .GET, key: key(name), headers: headers, label: label, maxResponseBytes: limit))
        let contentRange = response.headers.first(name: "content-range").flatMap(ContentRange.init)
        switch response.status {
        case 404: throw StorageError.notFound(name)
        case 416: throw StorageError.truncated(name, expected: range?.upperBound ?? 0, actual: contentRange?.total ?? 0)
        default: try check(response, label)
        }
        guard let range else { return response.body }
        // A server that honours Range names the part in Content-Range (rclone does so with
        // status 200, not 206); one that ignores it answers 200 with the whole object.
        if let part = contentRange, !(part.start == 0 && part.total == response.body.count && part.end + 1 == response.body.count && range.upperBound <= response.body.count) {
            guard part.start == range.lowerBound, part.end - part.start + 1 == response.body.count else {
                throw S3Error.malformedResponse(request: label, detail: "asked for bytes \(range.lowerBound)-\(range.upperBound - 1), got \(part)")
            }
            guard response.body.count == range.count else {
                throw StorageError.truncated(name, expected: range.upperBound, actual: part.total ?? (range.lowerBound + response.body.count))
            }
            return response.body
        }
        guard response.body.count >= range.upperBound else {
            throw StorageError.truncated(name, expected: range.upperBound, actual: response.body.count)
        }
        return Array(response.body[range])
    }

    public func write(_ name: ObjectName, _ bytes: [UInt8]) async throws {
        let label = "PUT \(name)"
        var headers: [(name: String, value: String)] = [("Content-Type", "application/octet-stream")]
        // The config and key slots must not replace what another `init` wrote meanwhile (other
        // objects have random names). Servers that do not know conditional writes ignore the
        // header (rclone) or refuse it (then it is sent without).
        let exclusive = name.kind == .config || name.kind == .keys
        if exclusive { headers.append(("If-None-Match", "*")) }
        var response = try await transport.send(.init(method: .PUT, key: key(name), headers: headers, body: bytes, label: label))
        if exclusive && (response.status == 501 || response.errorBody.code == "NotImplemented") {
            headers.removeLast()
            response = try await transport.send(.init(method: .PUT, key: key(name), headers: headers, body: bytes, label: label))
        }
        if response.status == 412 {
            // Either someone else's object, or our own first attempt that arrived although its
            // answer was lost: only the latter holds exactly these bytes.
            if try await read(name) == bytes { return }
            throw StorageError.alreadyExists(name)
        }
        try check(response, label)
    }

    public func delete(_ name: ObjectName) async throws {
        let label = "DELETE \(name)"
        let response = try await transport.send(.init(method: .DELETE, key: key(name), label: label))
        if response.status == 404 { throw StorageError.notFound(name) }
        try check(response, label)
    }

    public func stat(_ name: ObjectName) async throws -> StoredObject? {
        let label = "HEAD \(name)"
        let response = try await transport.send(.init(method: .HEAD, key: key(name), label: label))
        if response.status == 404 { return nil }
        if response.status == 403 {
            // A HEAD answer has no body to say why; a one-byte GET's error body does.
            let probe = try await transport.send(.init(method: .GET, key: key(name), headers: [("Range", "bytes=0-0")], label: label))
            try check(probe.status == 403 ? probe : response, label)
        }
        try check(response, label)
        guard let size = response.headers.first(name: "content-length").flatMap(Int.init) else {
            throw S3Error.malformedResponse(request: label, detail: "no Content-Length")
        }
        return StoredObject(name: name, size: size)
    }

    /// Makes sure the bucket exists, creating it when `create` allows. Returns whether it was
    /// created.
    @discardableResult
    public func prepareBucket(create: Bool) async throws -> Bool {
        let label = "HEAD bucket \(s3.bucket)"
        let head = try await transport.send(.init(method: .HEAD, key: nil, label: label))
        if head.isSuccess { return false }
        // Credentials limited to a prefix may not look at the bucket itself; it exists, and
        // whether they may use the prefix shows on the first object request.
        if head.status == 403 { return false }
        guard head.status == 404 else {
            try check(head, label)
            return false
        }
        guard create else { throw S3Error.noSuchBucket(s3.bucket) }
        var body: [UInt8]? = nil
        let region = transport.signer.region
        if region != "us-east-1" {
            body = Array("""
                <CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
                <LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>
                """.utf8)
        }
        let createLabel = "create bucket \(s3.bucket)"
        let response = try await transport.send(.init(method: .PUT, key: nil, body: body, label: createLabel))
        // Created meanwhile by someone else with our rights: as good as created.
        if response.status == 409, response.errorBody.code == "BucketAlreadyOwnedByYou" { return false }
        try check(response, createLabel)
        return true
    }

    /// Turns a failed answer into the error that explains it.
    private func check(_ response: S3Response, _ label: String) throws {
        if response.isSuccess { return }
        let e = response.errorBody
        let bucketRegion = e.region ?? response.headers.first(name: "x-amz-bucket-region")
        if let bucketRegion, bucketRegion != transport.signer.region, [301, 400, 403].contains(response.status) {
            throw S3Error.wrongRegion(request: label, signedFor: transport.signer.region, bucketRegion: bucketRegion)
        }
        switch (response.status, e.code) {
        case (403, "RequestTimeTooSkewed"): throw S3Error.clockSkew(request: label, serverTime: response.headers.first(name: "date"))
        case (403, _): throw S3Error.accessDenied(request: label, code: e.code, message: e.message)
        case (404, "NoSuchBucket"): throw S3Error.noSuchBucket(s3.bucket)
        case (400, "AuthorizationHeaderMalformed"), (301, _):
            throw S3Error.wrongRegion(request: label, signedFor: transport.signer.region, bucketRegion: bucketRegion)
        default:
            throw S3Error.http(request: label, status: response.status, code: e.code, message: e.message, attempts: 1)
        }
    }
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`), or `bytes */TOTAL` on a 416.
struct ContentRange: Equatable, CustomStringConvertible {
    var start: Int
    var end: Int
    var total: Int?

    init(start: Int, end: Int, total: Int?) {
        self.start = start
        self.end = end
        self.total = total
    }

    init?(_ header: String) {
        guard header.hasPrefix("bytes ") else { return nil }
        let spec = header.dropFirst(6)
        let parts = spec.split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        total = parts[1] == "*" ? nil : Int(parts[1])
        if parts[0] == "*" {
            guard let total else { return nil }
            start = total
            end = total - 1
            return
        }
        let bounds = parts[0].split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let s = Int(bounds[0]), let e = Int(bounds[1]), s <= e else { return nil }
        start = s
        end = e
    }

    var description: String { "bytes \(start)-\(end)/\(total.map(String.init) ?? "*")" }
}
