import AsyncHTTPClient
public import CofferCrypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why a vault call failed, worded for the person at the keyboard.
public enum VaultClientError: Error, CustomStringConvertible {
    case unreachable(url: String, reason: String)
    case wrongPassword(VaultAddress, attemptsLeft: Int?)
    case locked(VaultAddress)
    case accountExists(VaultAddress)
    case tokenRefused(VaultAddress)
    /// 429: the vault limits logins per client address; the request was not counted.
    case rateLimited(VaultAddress, retryAfterSeconds: Int?)
    case passwordChangeUnconfirmed(url: String, reason: String)
    case refused(VaultAddress, status: Int, message: String)
    /// The answer was not the protocol's: a wrong server, a proxy, or tampering on the way.
    case badAnswer(url: String, reason: String)
    case trustRoots(path: String, reason: String)

    /// What to do once an account is locked: the lock is for good.
    static let afterLock = "Open the repository with its recovery key (--recovery-key-file), add a new vault account with `coffer key add --vault URL --account NAME`, and remove the locked account's slot (`coffer key list`, then `coffer key remove ID`)"

    public var description: String {
        switch self {
        case .unreachable(let url, let reason):
            return "cannot reach the key vault at \(url) (\(reason))"
        case .wrongPassword(let a, let left) where left == 0:
            return "wrong password for vault \(a); no attempts are left, so the account is now locked for good. \(Self.afterLock)"
        case .wrongPassword(let a, let left):
            let remaining = left.map { $0 == 1 ? "1 attempt left" : "\($0) attempts left" } ?? "attempts left unknown"
            return "wrong password for vault \(a) (\(remaining) before the account locks for good)"
        case .locked(let a):
            return "vault \(a) is locked after too many wrong passwords. \(Self.afterLock)"
        case .accountExists(let a):
            return "vault \(a) already exists on that vault; choose another --account name"
        case .tokenRefused(let a):
            return "vault \(a) refused the password change: its permission lasts 5 minutes after the login; run the command again"
        case .rateLimited(let a, let seconds):
            let when = seconds.map { "in \($0) s" } ?? "later"
            return "the key vault at \(a.url) refused: too many requests from this address; try again \(when) (this one was not counted)"
        case .passwordChangeUnconfirmed(let url, let reason):
            return "the key vault at \(url) did not confirm the password change (\(reason)); it may have taken it: try the NEW password first, then the old one"
        case .refused(let a, let status, let message) where [404, 405, 501].contains(status):
            return "the key vault at \(a.url) answered HTTP \(status) (\(message)); is that URL a coffer-vault?"
        case .refused(let a, let status, let message):
            return "the key vault at \(a.url) answered HTTP \(status) for \(a): \(message)"
        case .badAnswer(let url, let reason):
            return "the key vault at \(url) gave an answer coffer cannot use (\(reason)); is that URL a coffer-vault?"
        case .trustRoots(let path, let reason):
            return "cannot use \(path) as the vault's CA certificate: \(reason)"
        }
    }
}

/// The client side of a key vault (FORMAT.md §15–16): registers a password with OPAQUE and
/// logs in, over the vault's JSON API. The password never leaves this process; what the vault
/// learns is an OPRF-blinded element and proofs.
public struct VaultClient: Sendable {
    /// A PEM file of CA certificates to trust for an https vault with a private certificate;
    /// nil trusts the system's roots.
    public var trustRootsFile: String?
    public var timeoutSeconds: Double = 30
    /// Tests may swap the key-stretching; real vaults use `coffer-vault-v1` (Argon2id 256 MiB).
    public var configuration: OPAQUEConfiguration = .cofferVaultV1

    public init(trustRootsFile: String? = nil) { self.trustRootsFile = trustRootsFile }

    /// What a successful login yields.
    public struct Login: Sendable, CustomStringConvertible {
        public let sealedKey: [UInt8]
        /// Derived from the password and the vault's OPRF key; opens `sealedKey`.
        public let exportKey: SecureBytes
        /// Lets the next five minutes re-register this account (a password change), once.
        public let token: String
        /// The vault's OPAQUE key, as the registration envelope authenticated it.
        public let serverPublicKey: Ristretto255.Element
        /// What the vault said about the account's attempts; fields a vault did not send are nil.
        public let report: VaultLoginReport
        public var description: String { "VaultClient.Login(redacted)" }
    }

    /// Registers `password` for the account; `seal` turns the export key into the sealed key
    /// the vault keeps. With a `token` from a recent login, replaces the account's password and
    /// returns the fresh token the vault hands out for that (nil from a vault that sends none).
    @discardableResult
    public func register(
        _ address: VaultAddress, password: SecureBytes, token: String? = nil, expectedServerPublicKey: Ristretto255.Element? = nil,
        seal: (SecureBytes) -> [UInt8]
    ) async throws -> String? {
        let client = OPAQUEClient(configuration: configuration)
        let (request, state) = try client.startRegistration(password: password)
        let started = try await post(address, "register/start", ["request": Data(request.serialized).base64EncodedString()])
        guard started.status == 200 else { throw failure(address, started) }
        // Names the fresh OPRF key this registration was answered under (FORMAT.md §16).
        guard let registration = started.json["registration"] as? String else {
            throw VaultClientError.badAnswer(url: address.url, reason: "no registration id in the registration answer")
        }
        let response: OPAQUE.RegistrationResponse
        do { response = try OPAQUE.RegistrationResponse(bytes: try bytes(started, "response", address)) } catch {
            throw VaultClientError.badAnswer(url: address.url, reason: "registration response: \(error)")
        }
        // A password change must go to the vault that the login authenticated, not to whoever
        // answers at that URL now.
        if let expectedServerPublicKey, response.serverPublicKey != expectedServerPublicKey {
            throw VaultClientError.badAnswer(url: address.url, reason: "its key is not the one the login authenticated")
        }
        let result = try client.finishRegistration(response, state: state)
        var body = [
            "record": Data(result.record.serialized).base64EncodedString(),
            "sealed_key": Data(seal(result.exportKey)).base64EncodedString(),
            "registration": registration,
        ]
        if let token { body["token"] = token }
        let finished = try await post(address, "register/finish", body)
        switch finished.status {
        case 200, 201: return finished.json["token"] as? String
        case 409: throw VaultClientError.accountExists(address)
        case 401 where token != nil: throw VaultClientError.tokenRefused(address)
        default: throw failure(address, finished)
        }
    }

    /// Logs in with `password`. Every login the vault starts counts against the account's
    /// attempts until it finishes well, so a wrong password here costs one attempt.
    public func login(_ address: VaultAddress, password: SecureBytes) async throws -> Login {
        let client = OPAQUEClient(configuration: configuration)
        let (ke1, state) = try client.startLogin(password: password)
        let started = try await post(address, "login/start", ["ke1": Data(ke1.serialized).base64EncodedString()])
        guard started.status == 200 else { throw failure(address, started) }
        guard let session = started.json["session"] as? String else {
            throw VaultClientError.badAnswer(url: address.url, reason: "no session in the login answer")
        }
        let ke2: OPAQUE.KE2
        do { ke2 = try OPAQUE.KE2(bytes: try bytes(started, "ke2", address)) } catch {
            throw VaultClientError.badAnswer(url: address.url, reason: "KE2: \(error)")
        }
        let result: OPAQUEClient.LoginResult
        do {
            result = try client.finishLogin(ke2, state: state)
        } catch .envelopeRecoveryFailed {
            // A wrong password (or a vault that is not the one registered with). The vault has
            // counted the attempt already; finishing with a proof that cannot verify closes
            // the session and tells how many attempts are left.
            guard let closed = try? await post(address, "login/finish", [
                "session": session, "ke3": Data(repeating: 0, count: OPAQUE.KE3.length).base64EncodedString(),
            ]) else { throw VaultClientError.wrongPassword(address, attemptsLeft: nil) }
            // 423 here: this guess was the one that locked the account (or others ran out the
            // attempts meanwhile); either way the password was wrong and none are left.
            let left = closed.status == 423 ? 0 : closed.json["attempts_left"] as? Int
            throw VaultClientError.wrongPassword(address, attemptsLeft: left)
        } catch {
            throw VaultClientError.badAnswer(url: address.url, reason: "the vault did not prove it holds this account's registration (\(error))")
        }
        let finished = try await post(address, "login/finish", ["session": session, "ke3": Data(result.ke3.serialized).base64EncodedString()])
        guard finished.status == 200 else { throw failure(address, finished) }
        guard let token = finished.json["token"] as? String else {
            throw VaultClientError.badAnswer(url: address.url, reason: "no token in the login answer")
        }
        let report = VaultLoginReport(
            attemptsLeft: finished.json["attempts_left"] as? Int,
            failedAttemptsSinceLastLogin: finished.json["failed_attempts_since_last_login"] as? Int,
            lastFailedAt: (finished.json["last_failed_at"] as? Int).map { Date(timeIntervalSince1970: TimeInterval($0)) },
            needsReregistration: finished.json["reregister"] as? Bool ?? false)
        return Login(
            sealedKey: try bytes(finished, "sealed_key", address), exportKey: result.exportKey, token: token,
            serverPublicKey: result.serverPublicKey, report: report)
    }

    // MARK: HTTP

    struct Answer {
        let status: Int
        let json: [String: Any]
        /// The Retry-After header in seconds (a date there is ignored: the vault sends seconds).
        var retryAfterSeconds: Int? = nil
    }

    private func failure(_ address: VaultAddress, _ answer: Answer) -> VaultClientError {
        // The server's words reach a terminal: no control characters.
        let message = String((answer.json["error"] as? String ?? "no reason given").unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }.prefix(200))
        switch answer.status {
        case 423: return .locked(address)
        case 429: return .rateLimited(address, retryAfterSeconds: answer.retryAfterSeconds)
        case 401 where answer.json["attempts_left"] != nil: return .wrongPassword(address, attemptsLeft: answer.json["attempts_left"] as? Int)
        default: return .refused(address, status: answer.status, message: message)
        }
    }

    private func bytes(_ answer: Answer, _ field: String, _ address: VaultAddress) throws -> [UInt8] {
        guard let text = answer.json[field] as? String, let data = Data(base64Encoded: text) else {
            throw VaultClientError.badAnswer(url: address.url, reason: "\(field) missing or not base64")
        }
        return Array(data)
    }

    /// One POST, never repeated: a request the vault may have seen could be a counted login.
    private func post(_ address: VaultAddress, _ action: String, _ body: [String: String]) async throws -> Answer {
        let client = try VaultHTTPClients.client(trustRootsFile: trustRootsFile, timeoutSeconds: timeoutSeconds)
        var request = HTTPClientRequest(url: address.endpoint(action))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        do {
            let response = try await client.execute(request, deadline: .now() + .milliseconds(Int64(timeoutSeconds * 1000)))
            var buffer = try await response.body.collect(upTo: 64 * 1024)
            let data = Data(buffer.readBytes(length: buffer.readableBytes) ?? [])
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw VaultClientError.badAnswer(url: address.url, reason: "HTTP \(response.status.code) without a JSON body")
            }
            return Answer(
                status: Int(response.status.code), json: json,
                retryAfterSeconds: response.headers.first(name: "Retry-After").flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil })
        } catch let error as VaultClientError {
            throw error
        } catch {
            throw VaultClientError.unreachable(url: address.url, reason: Self.describe(error))
        }
    }

    /// TLS failures in words: the library's own text names OpenSSL reason codes and source paths.
    static func describeTLS(_ text: String) -> String {
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
            return "the server did not answer in TLS: is it an http:// vault?"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "its TLS certificate is not trusted; for a vault with a private certificate give its CA with --vault-cacert"
        }
        if text.contains("Couldn't find") || text.contains("hostname") {
            return "its TLS certificate is not for this host name"
        }
        return "TLS failed (\(text.prefix(160)))"
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as NIOConnectionError:
            return e.connectionErrors.isEmpty ? "cannot resolve the host name" : "no connection: \(e.connectionErrors.map { "\($0.error)" }.joined(separator: ", "))"
        case let e as IOError where e.errnoCode == ECONNREFUSED: return "connection refused"
        case let e as HTTPClientError where e == .connectTimeout: return "timed out connecting"
        case let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout: return "timed out"
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError: return describeTLS("\(error)")
        default: return "\(error)"
        }
    }
}

/// One HTTP client per trust setting for the life of the process, like the S3 clients.
enum VaultHTTPClients {
    private static let lock = Lock()
    nonisolated(unsafe) private static var clients: [String: HTTPClient] = [:]

    static func client(trustRootsFile: String?, timeoutSeconds: Double) throws -> HTTPClient {
        try lock.withLock {
            let key = "\(trustRootsFile ?? "")|\(timeoutSeconds)"
            if let c = clients[key] { return c }
            var config = HTTPClient.Configuration()
            if let path = trustRootsFile {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw VaultClientError.trustRoots(path: path, reason: "no such file, or it cannot be read")
                }
                var tls = TLSConfiguration.makeClientConfiguration()
                do { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path)) } catch {
                    throw VaultClientError.trustRoots(path: path, reason: "it holds no PEM certificate (\(error))")
                }
                config.tlsConfiguration = tls
            }
            let timeout = TimeAmount.milliseconds(Int64(timeoutSeconds * 1000))
            config.timeout = .init(connect: min(timeout, .seconds(5)), read: timeout, write: timeout)
            config.httpVersion = .http1Only
            config.redirectConfiguration = .disallow
            // Fail at once on a refused connection or an untrusted certificate instead of
            // retrying until the deadline: the person waiting is told what is wrong.
            config.connectionPool.retryConnectionEstablishment = false
            let c = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
            clients[key] = c
            return c
        }
    }
}
