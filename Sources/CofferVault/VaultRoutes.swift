import Foundation
import Hummingbird

/// The vault's HTTP API over VaultService: JSON bodies, bytes as standard padded base64
/// (RFC 4648 §4), errors as `{"error": "..."}` (plus `attempts_left` for a wrong password).
public enum VaultRoutes {
    /// The largest body read: a 4096-byte sealed key is about 5.5 KB of base64.
    static let bodyLimit = 16 * 1024

    /// - Parameters:
    ///   - loginRateLimiter: limits `login/start` and `register/start` per client address (a
    ///     `register/finish` needs the id of a start, so it is limited with it); nil for no limit.
    ///   - trustedProxies: peers whose `X-Forwarded-For` names the client for that limit.
    public static func router(
        service: VaultService, loginRateLimiter: LoginRateLimiter?, trustedProxies: TrustedProxies = .none
    ) -> Router<VaultRequestContext> {
        let router = Router(context: VaultRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        router.post("/v1/accounts/:account/register/start") { request, context in
            try checkRate(loginRateLimiter, trustedProxies, request, context)
            let account = try accountName(context)
            let body = try await decode(RegisterStartBody.self, request)
            let (response, registration) = try await service.registerStart(account: account, request: try bytes(body.request, "request"))
            return try json(.ok, ["response": response.base64EncodedString(), "registration": registration])
        }
        router.post("/v1/accounts/:account/register/finish") { request, context in
            let account = try accountName(context)
            let body = try await decode(RegisterFinishBody.self, request)
            let outcome = try await service.registerFinish(
                account: account, registration: body.registration, record: try bytes(body.record, "record"),
                sealedKey: try bytes(body.sealed_key, "sealed_key"), token: body.token)
            var answer = ["status": outcome.outcome == .created ? "created" : "replaced"]
            answer["token"] = outcome.token
            return try json(outcome.outcome == .created ? .created : .ok, answer)
        }
        router.post("/v1/accounts/:account/login/start") { request, context in
            try checkRate(loginRateLimiter, trustedProxies, request, context)
            let account = try accountName(context)
            let body = try await decode(LoginStartBody.self, request)
            let (ke2, session) = try await service.loginStart(account: account, ke1: try bytes(body.ke1, "ke1"))
            return try json(.ok, ["ke2": ke2.base64EncodedString(), "session": session])
        }
        router.post("/v1/accounts/:account/login/finish") { request, context in
            let account = try accountName(context)
            let body = try await decode(LoginFinishBody.self, request)
            let success = try await service.loginFinish(account: account, session: body.session, ke3: try bytes(body.ke3, "ke3"))
            return try json(
                .ok,
                LoginFinishResponse(
                    sealed_key: success.sealedKey.base64EncodedString(), attempts_left: success.attemptsLeft, token: success.token,
                    failed_attempts_since_last_login: success.failedAttemptsSinceLastLogin,
                    last_failed_at: success.lastFailedAt.map { Int64($0.timeIntervalSince1970) }, reregister: success.needsReregistration))
        }
        return router
    }

    /// First thing in a handler: a refused request must not count as an attempt, create a row,
    /// or even cost the parsing of its body.
    static func checkRate(
        _ limiter: LoginRateLimiter?, _ proxies: TrustedProxies, _ request: Request, _ context: some RemoteAddressRequestContext
    ) throws(VaultError) {
        guard let limiter else { return }
        let client = proxies.client(peer: context.remoteAddress, forwardedFor: request.headers[values: .init("X-Forwarded-For")!])
        if case .refused(let seconds) = limiter.take(client) {
            throw .rateLimited(retryAfterSeconds: seconds)
        }
    }

    // MARK: Bodies (field names are the wire names)

    struct RegisterStartBody: Decodable { let request: String }
    struct RegisterFinishBody: Decodable {
        /// From `register/start`: names the OPRF key the record was made under.
        let registration: String
        let record: String
        let sealed_key: String
        let token: String?
    }
    struct LoginStartBody: Decodable { let ke1: String }
    struct LoginFinishBody: Decodable {
        let session: String
        let ke3: String
    }
    struct LoginFinishResponse: Encodable {
        let sealed_key: String
        let attempts_left: Int
        let token: String
        let failed_attempts_since_last_login: Int
        /// Unix seconds; absent when there were no failures (or their time is unknown).
        let last_failed_at: Int64?
        let reregister: Bool
    }
    struct ErrorBody: Encodable {
        let error: String
        let attempts_left: Int?
    }

    // MARK: Coding

    /// The path segment, percent-decoded to bytes (the router leaves it encoded). The service
    /// checks length and UTF-8.
    static func accountName(_ context: some RequestContext) throws -> [UInt8] {
        guard let raw = context.parameters.get("account") else { throw VaultError.badRequest("missing account name") }
        var out: [UInt8] = []
        var iterator = Array(raw.utf8).makeIterator()
        while let c = iterator.next() {
            guard c == UInt8(ascii: "%") else {
                out.append(c)
                continue
            }
            guard let h = iterator.next().flatMap(hexValue), let l = iterator.next().flatMap(hexValue) else {
                throw VaultError.badRequest("malformed percent-encoding in the account name")
            }
            out.append(h << 4 | l)
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: bodyLimit)
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw VaultError.badRequest("malformed JSON body")
        }
    }

    /// Strict standard base64: padded, no whitespace, no URL alphabet.
    static func bytes(_ text: String, _ field: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text) else { throw VaultError.badRequest("\(field) is not standard base64") }
        return [UInt8](data)
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func status(of error: VaultError) -> (HTTPResponse.Status, ErrorBody) {
        switch error {
        case .badRequest(let message): (.badRequest, ErrorBody(error: message, attempts_left: nil))
        case .authenticationFailed(let left): (.unauthorized, ErrorBody(error: "wrong password or unknown account", attempts_left: left))
        case .invalidSession: (.unauthorized, ErrorBody(error: "unknown or expired login session", attempts_left: nil))
        case .invalidToken: (.unauthorized, ErrorBody(error: "unknown or expired token", attempts_left: nil))
        case .invalidRegistration: (.gone, ErrorBody(error: "unknown or expired registration; start it again", attempts_left: nil))
        case .accountExists: (.conflict, ErrorBody(error: "the account exists", attempts_left: nil))
        case .locked: (.init(code: 423, reasonPhrase: "Locked"), ErrorBody(error: "the account is locked", attempts_left: 0))
        case .rateLimited(let seconds):
            (.tooManyRequests, ErrorBody(error: "too many requests from this address; try again in \(seconds) s", attempts_left: nil))
        case .storage: (.internalServerError, ErrorBody(error: "internal error", attempts_left: nil))
        }
    }

    /// Every error leaves as JSON: the vault's own, Hummingbird's (404, 413, …), and anything
    /// else as a 500 that does not leak its text.
    struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            do {
                return try await next(request, context)
            } catch let error as VaultError {
                if case .storage(let message) = error { logError("storage failure: \(message)") }
                // What an operator watching for attacks needs: lockouts and throttled clients.
                switch error {
                case .authenticationFailed(attemptsLeft: 0):
                    logError("\(request.uri.path): wrong password with no attempts left; the account is locked for good")
                case .rateLimited:
                    let peer = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress ?? "an unknown address"
                    logError("\(request.uri.path): rate limit reached for \(peer)")
                default: break
                }
                let (status, body) = VaultRoutes.status(of: error)
                var response = try json(status, body)
                if case .rateLimited(let seconds) = error { response.headers[.retryAfter] = String(seconds) }
                return response
            } catch let error as HTTPError {
                return try json(error.status, ErrorBody(error: error.body ?? error.status.reasonPhrase, attempts_left: nil))
            } catch {
                logError("unexpected error: \(error)")
                return try json(.internalServerError, ErrorBody(error: "internal error", attempts_left: nil))
            }
        }
    }
}

/// To stderr: the details of a 500, which the client does not see. (Hummingbird's logger would
/// need swift-log as a direct dependency for one line.)
/// One line on standard error, for the operator's log.
private func logError(_ message: String) {
    FileHandle.standardError.write(Data("coffer-vault: \(message)\n".utf8))
}

extension [UInt8] {
    fileprivate func base64EncodedString() -> String { Data(self).base64EncodedString() }
}
