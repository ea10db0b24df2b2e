import AsyncHTTPClient
import CofferCrypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One S3 answer, body read whole.
struct S3Response: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    var isSuccess: Bool { (200..<300).contains(status) }
    var errorBody: S3XML.ErrorBody { S3XML.errorBody(String(decoding: body, as: UTF8.self)) }
}

/// Sends signed requests to one bucket: at most `connections` at once, each retried with
/// exponential backoff and jitter while the failure is transient (no answer, a timeout, 5xx,
/// 429 or SlowDown). Every attempt is signed anew, so a retry hours later is not rejected for
/// a stale date.
final class S3Transport: Sendable {
    let location: S3Location
    let signer: SigV4Signer
    let options: S3Options
    private let client: HTTPClient
    private let slots: AsyncSemaphore
    let meter = TransferMeter()

    init(location: S3Location, credentials: S3Credentials, region: String, options: S3Options) {
        self.location = location
        self.signer = SigV4Signer(credentials: credentials, region: region)
        self.options = options
        self.client = HTTPClients.client(timeoutSeconds: options.timeoutSeconds, connections: options.connections)
        self.slots = AsyncSemaphore(options.connections)
    }

    struct Request: Sendable {
        var method: HTTPMethod
        /// The object key, or nil for the bucket itself.
        var key: String?
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body: [UInt8]? = nil
        /// What the request is, for messages: "GET data/ab/ab12…".
        var label: String
        /// The longest answer accepted: a range read's length plus room for an error body;
        /// listings and error bodies are small.
        var maxResponseBytes = 16 << 20
    }

    /// The longest one call of `send` can take, from the call to its end: waiting for a
    /// connection slot, every attempt and every wait between attempts included. An attempt still
    /// unanswered then is abandoned, and no attempt starts later than `retryWindowSeconds`
    /// (at most this) after the call. The repository lock's margin is built on this
    /// (`RepositoryLock.marginNanos`): a write sent after a lock check lands, or is abandoned,
    /// before the lock could look stale to anyone. It also means an upload must reach about
    /// 28 KB/s per connection to send a 16 MiB pack in time.
    static let longestRequestSeconds: Int64 = 600

    /// Sends `request`, retrying transient failures. Returns the final answer, success or not
    /// (callers decide what a 404 means); throws only when no answer came, or the answers were
    /// transient failures to the last attempt, or `longestRequestSeconds` ran out.
    ///
    /// A cancelled task sends nothing; cleanup that must reach the server after Ctrl-C (lock
    /// removal, prune's deletions) runs in a task of its own (`Storage.uncancelled`).
    func send(_ request: Request) async throws -> S3Response {
        // Built once: a retry sends the same bytes without copying or hashing them again.
        let body = request.body.map { ByteBuffer(bytes: $0) }
        let payloadHash: String
        if let bytes = request.body, !bytes.isEmpty {
            // Over TLS the body is protected in transit; over plain http the signed hash lets
            // the server refuse a corrupted upload.
            payloadHash = location.scheme == .https ? SigV4Signer.unsignedPayload : Hex.encode(SHA256.hash(bytes))
        } else {
            payloadHash = SigV4Signer.emptyPayloadHash
        }
        let started = ContinuousClock.now
        let giveUp = NIODeadline.now() + .seconds(Self.longestRequestSeconds)
        let retryWindow = Duration.seconds(min(Int64(options.retryWindowSeconds), Self.longestRequestSeconds))
        var attempt = 0
        while true {
            attempt += 1
            try Task.checkCancellation()
            let failure: String
            var retryAfter: Double? = nil
            let lastAttempt = attempt >= options.attempts || ContinuousClock.now - started > retryWindow
            do {
                let response = try await slots.withSlot {
                    try await self.sendOnce(request, body: body, payloadHash: payloadHash, giveUp: giveUp)
                }
                guard Self.isTransient(response) else { return response }
                if lastAttempt {
                    let e = response.errorBody
                    throw S3Error.http(request: request.label, status: response.status, code: e.code, message: e.message, attempts: attempt)
                }
                retryAfter = response.headers.first(name: "retry-after").flatMap(Double.init)
                failure = "HTTP \(response.status)"
            } catch let error as S3Error {
                throw error
            } catch {
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                guard Self.isTransient(error) else { throw S3Error.failed(request: request.label, reason: Self.describe(error)) }
                if lastAttempt {
                    throw S3Error.unreachable(request: request.label, reason: Self.describe(error), attempts: attempt)
                }
                failure = Self.describe(error)
            }
            meter.noteRetry(failure)
            let wait = backoff(attempt: attempt, retryAfter: retryAfter)
            // An attempt that could not start before the end would only fail at once.
            guard NIODeadline.now() + .milliseconds(Int64(wait * 1000)) < giveUp else {
                throw S3Error.unreachable(request: request.label, reason: "\(failure), and no time is left to retry", attempts: attempt)
            }
            try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
        }
    }

    /// Failures worth another attempt: the connection broke, went quiet or was refused (a
    /// server restarting), or the answer was cut short or garbled. Not: a host name that does not resolve,
    /// a TLS certificate that does not verify, an answer too long to be one Coffer asked for.
    static func isTransient(_ error: any Error) -> Bool {
        switch error {
        // A garbled or cut-off answer (HTTPParserError) is as transient as a dropped one.
        case is TransportFailure, is IOError, is ChannelError, is HTTPParserError: return true
        case let e as HTTPClientError:
            return [.remoteConnectionClosed, .readTimeout, .writeTimeout, .connectTimeout, .deadlineExceeded,
                    .getConnectionFromPoolTimeout, .tlsHandshakeTimeout].contains(e)
        case let e as NIOConnectionError:
            // Every address refused or timed out; not when resolving the name failed.
            return !e.connectionErrors.isEmpty
        default: return false
        }
    }

    /// Half the exponential delay plus a random part up to the other half ("equal jitter"):
    /// never a hammering zero wait, and many clients do not retry in lockstep.
    func backoff(attempt: Int, retryAfter: Double?) -> Double {
        let exponential = min(options.maxBackoffSeconds, options.backoffSeconds * pow(2, Double(attempt - 1)))
        let delay = exponential / 2 + Double.random(in: 0...(exponential / 2))
        return max(delay, min(retryAfter ?? 0, options.maxBackoffSeconds))
    }

    static func isTransient(_ response: S3Response) -> Bool {
        switch response.status {
        case 500, 502, 503, 504, 429: return true
        case 400: return ["RequestTimeout", "SlowDown"].contains(response.errorBody.code ?? "")
        default: return false
        }
    }

    private func sendOnce(_ request: Request, body: ByteBuffer?, payloadHash: String, giveUp: NIODeadline) async throws -> S3Response {
        let signed = signer.sign(
            method: request.method.rawValue, host: location.hostHeader, path: location.requestPath(key: request.key),
            query: request.query, headers: request.headers, payloadHash: payloadHash, date: Date())
        var url = location.endpoint + signed.encodedPath
        if !signed.encodedQuery.isEmpty { url += "?" + signed.encodedQuery }
        var http = HTTPClientRequest(url: url)
        http.method = request.method
        http.headers.add(name: "Host", value: location.hostHeader)
        for h in signed.headers + request.headers { http.headers.add(name: h.name, value: h.value) }
        if let body {
            http.body = .bytes(body)
        } else if request.method == .PUT {
            http.headers.add(name: "Content-Length", value: "0")
        }
        // Stalls are caught by the idle timeouts (connect, write, read); the deadline only
        // bounds a transfer that keeps trickling, and never reaches past the whole request's.
        let seconds = max(options.timeoutSeconds * 10, 600) + Double(body?.readableBytes ?? 0) / 16384
        meter.noteRequest(sent: body?.readableBytes ?? 0)
        let deadline = min(NIODeadline.now() + .milliseconds(Int64(seconds * 1000)), giveUp)
        let response = try await client.execute(http, deadline: deadline)
        var buffer = try await response.body.collect(upTo: request.maxResponseBytes)
        let body = buffer.readBytes(length: buffer.readableBytes) ?? []
        meter.noteReceived(body.count)
        if request.method != .HEAD, let declared = response.headers.first(name: "content-length").flatMap(Int.init), declared != body.count {
            throw TransportFailure.shortBody(expected: declared, received: body.count)
        }
        return S3Response(status: Int(response.status.code), headers: response.headers, body: body)
    }

    enum TransportFailure: Error, CustomStringConvertible {
        case shortBody(expected: Int, received: Int)
        var description: String {
            switch self {
            case .shortBody(let e, let r): return "the connection ended after \(r) of \(e) bytes"
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .writeTimeout: return "timed out"
            case .connectTimeout: return "timed out connecting"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        if let e = error as? IOError { return "connection error: \(e.description)" }
        return "\(error)"
    }
}

/// One HTTP client per setting, for the life of the process: a client must be shut down before
/// it is freed, and a command ends with the process anyway.
enum HTTPClients {
    private static let registry = Registry()

    static func client(timeoutSeconds: Double, connections: Int) -> HTTPClient {
        registry.client(timeoutSeconds: timeoutSeconds, connections: connections)
    }

    private final class Registry: @unchecked Sendable {
        private let lock = Lock()
        private var clients: [String: HTTPClient] = [:]

        func client(timeoutSeconds: Double, connections: Int) -> HTTPClient {
            lock.withLock {
                let key = "\(timeoutSeconds)/\(connections)"
                if let c = clients[key] { return c }
                var config = HTTPClient.Configuration()
                let timeout = TimeAmount.milliseconds(Int64(timeoutSeconds * 1000))
                config.timeout = .init(connect: min(timeout, .seconds(30)), read: timeout, write: timeout)
                config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
                config.httpVersion = .http1Only
                config.decompression = .disabled
                config.redirectConfiguration = .disallow
                let c = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
                clients[key] = c
                return c
            }
        }
    }
}

/// A counting semaphore for async code: at most `limit` bodies run at once, the rest wait in
/// order.
final class AsyncSemaphore: @unchecked Sendable {
    private let lock = Lock()
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ limit: Int) { available = limit }

    func withSlot<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        let ready: Bool = lock.withLock {
            if available > 0 { available -= 1; return true }
            return false
        }
        if ready { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = lock.withLock {
                // A slot may have been released between the two locks.
                if available > 0 { available -= 1; return true }
                waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    private func release() {
        let next: CheckedContinuation<Void, Never>? = lock.withLock {
            if waiters.isEmpty { available += 1; return nil }
            return waiters.removeFirst()
        }
        next?.resume()
    }
}
