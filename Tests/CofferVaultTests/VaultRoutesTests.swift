import CofferCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import CofferVault

@Suite("VaultRoutes")
struct VaultRoutesTests {
    static func application(
        _ vault: VaultFixture, loginRateLimiter: LoginRateLimiter? = nil, trustedProxies: TrustedProxies = .none
    ) -> some ApplicationProtocol {
        Application(router: VaultRoutes.router(service: vault.service, loginRateLimiter: loginRateLimiter, trustedProxies: trustedProxies))
    }

    /// POSTs a JSON object; returns the status and the decoded JSON object.
    static func post(_ client: some TestClientProtocol, _ uri: String, _ body: [String: String]) async throws
        -> (HTTPResponse.Status, [String: Any])
    {
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await post(client, uri, raw: String(decoding: data, as: UTF8.self))
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, raw: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: raw)) {
            response in
            let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            #expect(response.headers[.contentType] == "application/json")
            return (response.status, object ?? [:])
        }
    }

    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    static func bytes(_ any: Any?) throws -> [UInt8] {
        let text = try #require(any as? String)
        return [UInt8](try #require(Data(base64Encoded: text)))
    }

    @Test func registerLoginAndChangePasswordOverHTTP() async throws {
        let vault = try VaultFixture()
        let client = vault.client
        try await Self.application(vault).test(.router) { http in
            // Percent-encoded name: "zoë/1".
            let base = "/v1/accounts/zo%C3%AB%2F1"
            func register(_ password: String, sealed: [UInt8], token: String?) async throws -> (HTTPResponse.Status, [String: Any]) {
                let (request, state) = try client.startRegistration(password: SecureBytes(copying: Array(password.utf8)))
                let (status, start) = try await Self.post(http, base + "/register/start", ["request": Self.b64(request.serialized)])
                #expect(status == .ok)
                let response = try OPAQUE.RegistrationResponse(bytes: try Self.bytes(start["response"]))
                let registration = try #require(start["registration"] as? String)
                #expect(registration.count == 64)
                let record = try client.finishRegistration(response, state: state).record
                var body = ["record": Self.b64(record.serialized), "sealed_key": Self.b64(sealed), "registration": registration]
                body["token"] = token
                return try await Self.post(http, base + "/register/finish", body)
            }
            func login(_ password: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                let (ke1, state) = try client.startLogin(password: SecureBytes(copying: Array(password.utf8)))
                let (status, start) = try await Self.post(http, base + "/login/start", ["ke1": Self.b64(ke1.serialized)])
                guard status == .ok else { return (status, start) }
                let session = try #require(start["session"] as? String)
                #expect(session.count == 64)
                let ke2 = try OPAQUE.KE2(bytes: try Self.bytes(start["ke2"]))
                let ke3 = (try? client.finishLogin(ke2, state: state).ke3.serialized) ?? [UInt8](repeating: 0, count: 64)
                return try await Self.post(http, base + "/login/finish", ["session": session, "ke3": Self.b64(ke3)])
            }

            #expect(try await register("pw", sealed: [1, 2], token: nil).0 == .created)
            #expect(try await register("pw2", sealed: [3], token: nil).0 == .conflict)

            let (status, ok) = try await login("pw")
            #expect(status == .ok)
            #expect(try Self.bytes(ok["sealed_key"]) == [1, 2])
            #expect(ok["attempts_left"] as? Int == 10)
            #expect(ok["failed_attempts_since_last_login"] as? Int == 0)
            #expect(ok["last_failed_at"] == nil)
            #expect(ok["reregister"] as? Bool == false)
            let token = try #require(ok["token"] as? String)

            let (wrong, failed) = try await login("nope")
            #expect(wrong == .unauthorized)
            #expect(failed["attempts_left"] as? Int == 9)
            #expect(failed["error"] is String)
            let (_, told) = try await login("pw")
            #expect(told["failed_attempts_since_last_login"] as? Int == 1)
            #expect(told["last_failed_at"] as? Int == Int(vault.clock.now.timeIntervalSince1970))
            #expect(told["attempts_left"] as? Int == 9)

            // A finish without the id of its start is refused, and stores nothing.
            let (request, state) = try client.startRegistration(password: SecureBytes(copying: Array("x".utf8)))
            let (_, start) = try await Self.post(http, "/v1/accounts/stranger/register/start", ["request": Self.b64(request.serialized)])
            let record = try client.finishRegistration(
                try OPAQUE.RegistrationResponse(bytes: try Self.bytes(start["response"])), state: state).record
            let (missing, _) = try await Self.post(
                http, "/v1/accounts/stranger/register/finish", ["record": Self.b64(record.serialized), "sealed_key": Self.b64([1])])
            #expect(missing == .badRequest)
            let (gone, goneBody) = try await Self.post(
                http, "/v1/accounts/stranger/register/finish",
                ["record": Self.b64(record.serialized), "sealed_key": Self.b64([1]), "registration": String(repeating: "0", count: 64)])
            #expect(gone == .gone)
            #expect(goneBody["error"] as? String == "unknown or expired registration; start it again")
            #expect(try vault.storedAccount("stranger") == nil)

            #expect(try await register("pw2", sealed: [3], token: token).0 == .ok)
            let (after, changed) = try await login("pw2")
            #expect(after == .ok)
            #expect(try Self.bytes(changed["sealed_key"]) == [3])
        }
        // The name reached the service percent-decoded.
        #expect(try await vault.login("zoë/1", password: "pw2").sealedKey == [3])
    }

    @Test func lockedAccountsGet423AndNoKE2() async throws {
        let vault = try VaultFixture(maxAttempts: 2)
        let ke1 = try vault.ke1()
        try await Self.application(vault).test(.router) { http in
            for _ in 0..<2 {
                let (status, body) = try await Self.post(http, "/v1/accounts/ghost/login/start", ["ke1": Self.b64(ke1)])
                #expect(status == .ok)
                let (finish, failed) = try await Self.post(
                    http, "/v1/accounts/ghost/login/finish",
                    ["session": try #require(body["session"] as? String), "ke3": Self.b64([UInt8](repeating: 0, count: 64))])
                #expect(finish == .unauthorized)
                #expect(failed["attempts_left"] != nil)
            }
            let (status, body) = try await Self.post(http, "/v1/accounts/ghost/login/start", ["ke1": Self.b64(ke1)])
            #expect(status.code == 423)
            #expect(body["ke2"] == nil)
            #expect(body["error"] is String)
        }
    }

    @Test func malformedRequestsGet400AndUnknownSessions401() async throws {
        let vault = try VaultFixture()
        let ke1 = try vault.ke1()
        try await Self.application(vault).test(.router) { http in
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", raw: "not json").0 == .badRequest)
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", ["ke1": "!!!"]).0 == .badRequest)
            // Unpadded base64 is refused.
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", ["ke1": String(Self.b64(ke1).dropLast())]).0 == .badRequest)
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", ["ke1": Self.b64([1, 2, 3])]).0 == .badRequest)
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", ["wrong": "field"]).0 == .badRequest)
            #expect(try await Self.post(http, "/v1/accounts/%FF/login/start", ["ke1": Self.b64(ke1)]).0 == .badRequest)
            #expect(try await Self.post(http, "/v1/accounts/%G1/login/start", ["ke1": Self.b64(ke1)]).0 == .badRequest)
            let long = String(repeating: "a", count: 129)
            #expect(try await Self.post(http, "/v1/accounts/\(long)/login/start", ["ke1": Self.b64(ke1)]).0 == .badRequest)
            let (status, body) = try await Self.post(
                http, "/v1/accounts/a/login/finish", ["session": "00", "ke3": Self.b64([UInt8](repeating: 0, count: 64))])
            #expect(status == .unauthorized)
            #expect(body["error"] is String)
            let (missing, notFound) = try await Self.post(http, "/v1/nothing", [:])
            #expect(missing == .notFound)
            #expect(notFound["error"] is String)
        }
    }

    /// HummingbirdTesting's `.router` channel has no peer address: every request here is from
    /// the `.unknown` client, which is one bucket like any address.
    @Test func loginsBeyondTheRateGet429AndAreNotCounted() async throws {
        let vault = try VaultFixture(maxAttempts: 100)
        let configuration = VaultServerConfiguration(dataDirectory: vault.directory)
        let clock = vault.clock
        let made = configuration.makeLoginRateLimiter(now: { clock.seconds })
        let limiter = try #require(made)
        #expect(limiter.perMinute == 30)
        let ke1 = try vault.ke1()
        let start = "/v1/accounts/target/login/start"
        try await Self.application(vault, loginRateLimiter: limiter).test(.router) { http in
            for i in 1...30 {
                #expect(try await Self.post(http, start, ["ke1": Self.b64(ke1)]).0 == .ok, "login \(i) of the burst")
            }
            #expect(try vault.storedAccount("target")?.failures == 30)

            let body = try JSONSerialization.data(withJSONObject: ["ke1": Self.b64(ke1)])
            try await http.execute(uri: start, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: body)) {
                response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "2")
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(object?["error"] as? String == "too many requests from this address; try again in 2 s")
                #expect(object?["ke2"] == nil)
            }
            #expect(try vault.storedAccount("target")?.failures == 30, "a refused login start was counted")

            // register/start holds a registration in memory, so it takes from the same bucket; a
            // register/finish needs the id of a start, so it is limited with it.
            let (request, _) = try vault.client.startRegistration(password: SecureBytes(copying: Array("pw".utf8)))
            let (limited, refusal) = try await Self.post(http, "/v1/accounts/newcomer/register/start", ["request": Self.b64(request.serialized)])
            #expect(limited == .tooManyRequests)
            #expect(refusal["registration"] == nil && refusal["response"] == nil)
            // One started before the limit was reached still finishes: the finish is not limited again.
            let (record, _, registration) = try await vault.registration("newcomer", password: "pw")
            let finish = ["record": Self.b64(record), "sealed_key": Self.b64([7]), "registration": registration]
            #expect(try await Self.post(http, "/v1/accounts/newcomer/register/finish", finish).0 == .created)

            vault.clock.advance(2)
            #expect(try await Self.post(http, start, ["ke1": Self.b64(ke1)]).0 == .ok)
            #expect(try vault.storedAccount("target")?.failures == 31)
        }
    }

    /// Over a real connection the bucket is the peer's address, not the shared `.unknown` one.
    @Test func aLiveConnectionIsLimitedByItsAddress() async throws {
        let vault = try VaultFixture()
        let clock = vault.clock
        let limiter = LoginRateLimiter(perMinute: 2, now: { clock.seconds })
        let ke1 = try vault.ke1()
        try await Self.application(vault, loginRateLimiter: limiter).test(.live) { http async throws in
            #expect(try await Self.post(http, "/v1/accounts/a/login/start", ["ke1": Self.b64(ke1)]).0 == .ok)
            #expect(try await Self.post(http, "/v1/accounts/b/login/start", ["ke1": Self.b64(ke1)]).0 == .ok)
            #expect(try await Self.post(http, "/v1/accounts/c/login/start", ["ke1": Self.b64(ke1)]).0 == .tooManyRequests)
        }
        #expect(limiter.take(.unknown) == .allowed)
        #expect(limiter.take(.unknown) == .allowed)
    }

    /// Behind a trusted proxy (here the test client on loopback), each forwarded client has a
    /// bucket of its own.
    @Test func aTrustedProxysClientsHaveBucketsOfTheirOwn() async throws {
        let vault = try VaultFixture()
        let clock = vault.clock
        let limiter = LoginRateLimiter(perMinute: 2, now: { clock.seconds })
        let ke1 = try vault.ke1()
        let body = try JSONSerialization.data(withJSONObject: ["ke1": Self.b64(ke1)])
        func start(forwardedFor client: String) async throws -> HTTPResponse.Status {
            try await Self.application(vault, loginRateLimiter: limiter, trustedProxies: try TrustedProxies(["127.0.0.1"])).test(.live) {
                http async throws in
                try await http.execute(
                    uri: "/v1/accounts/a/login/start", method: .post,
                    headers: [.contentType: "application/json", .init("X-Forwarded-For")!: client],
                    body: ByteBuffer(bytes: body)
                ) { $0.status }
            }
        }
        #expect(try await start(forwardedFor: "203.0.113.5") == .ok)
        #expect(try await start(forwardedFor: "203.0.113.5") == .ok)
        #expect(try await start(forwardedFor: "203.0.113.5") == .tooManyRequests)
        #expect(try await start(forwardedFor: "203.0.113.6") == .ok, "another client behind the same proxy was limited")
    }

    @Test func loginRateZeroDisablesTheLimit() async throws {
        let vault = try VaultFixture()
        let configuration = VaultServerConfiguration(dataDirectory: vault.directory, loginRate: 0)
        try configuration.validate()
        #expect(configuration.makeLoginRateLimiter() == nil)
        let ke1 = try vault.ke1()
        try await Self.application(vault, loginRateLimiter: configuration.makeLoginRateLimiter()).test(.router) { http async throws in
            for i in 1...40 {
                #expect(try await Self.post(http, "/v1/accounts/user\(i)/login/start", ["ke1": Self.b64(ke1)]).0 == .ok)
            }
        }
        #expect(throws: VaultConfigurationError.self) { try VaultServerConfiguration(dataDirectory: "/x", loginRate: -1).validate() }
    }

    @Test func onlyLiteralLoopbackAddressesCountAsLoopback() {
        for host in ["localhost", "::1", "[::1]", "127.0.0.1", "127.1.2.3", "127.255.255.255", "127.0.0.0"] {
            #expect(VaultServerConfiguration.isLoopback(host), "\(host)")
        }
        for host in [
            "127.evil.example", "127.0.0.1.evil.example", "127.0.0", "127.0.0.256", "127.0.0.-1", "127..0.1", "127.0.0.1.",
            "127.0.0.01", "127.0.0.0x1", "127.0.0. 1", "128.0.0.1", "0.0.0.0", "::", "localhost.evil.example", "",
        ] {
            #expect(!VaultServerConfiguration.isLoopback(host), "\(host)")
        }
        #expect(throws: VaultConfigurationError.self) { try VaultServerConfiguration(host: "127.evil.example", dataDirectory: "/x").validate() }
    }

    @Test func nonLoopbackNeedsInsecureHTTP() throws {
        #expect(throws: VaultConfigurationError.self) { try VaultServerConfiguration(host: "0.0.0.0", dataDirectory: "/x").validate() }
        try VaultServerConfiguration(host: "0.0.0.0", dataDirectory: "/x", insecureHTTP: true).validate()
        try VaultServerConfiguration(host: "127.0.0.1", dataDirectory: "/x").validate()
        try VaultServerConfiguration(host: "::1", dataDirectory: "/x").validate()
    }
}
