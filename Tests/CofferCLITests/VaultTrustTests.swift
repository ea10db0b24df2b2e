import Foundation
import Glibc
import Testing

/// A password goes only to key vaults this machine was told about: a vault slot planted in
/// storage must not make `coffer` send a login to the planter's server.
@Suite(.serialized) struct VaultTrustTests {
    /// A vault slot (FORMAT.md §5.3) naming `url` and `account`, with a random salt and box:
    /// what anyone who can write to the storage can add.
    @discardableResult
    static func plantVaultSlot(in repo: String, url: String, account: String, id: String? = nil) throws -> String {
        var slot: [UInt8] = [1, 3, UInt8(url.utf8.count)] + Array(url.utf8) + [UInt8(account.utf8.count)] + Array(account.utf8)
        slot += try FS.randomBytes(16 + 72)
        let name = try id ?? FS.randomBytes(32).map { String(format: "%02x", $0) }.joined()
        try FS.writeFile(repo + "/keys/" + name, slot, mode: 0o600)
        return name
    }

    @Test func aMistypedPasswordIsNotSentToAPlantedVault() throws {
        let box = try Sandbox()
        try box.initRepository()
        let listener = try RecordingListener()
        try Self.plantVaultSlot(in: box.repo, url: listener.url, account: "owner")

        let typo = try box.coffer(["snapshots", "--repo", box.repo], env: ["COFFER_PASSWORD": "a typo"])
        #expect(typo.exitedNormally && typo.status != 0, "\(typo.diagnostics)")
        #expect(typo.err.contains(listener.url) && typo.err.contains("not one this machine trusts"), "\(typo.err)")
        #expect(typo.err.contains("--trust-vault \(listener.url)"), "the message should say how to trust it: \(typo.err)")
        #expect(listener.connections == 0, "a login went to the planted vault")
        // The password slot opens as before: no trust needed, nothing sent.
        let right = try box.coffer(["snapshots", "--repo", box.repo])
        #expect(right.succeeded, "\(right.diagnostics)")
        #expect(listener.connections == 0)
        #expect(!FileManager.default.fileExists(atPath: box.configDir + "/trusted-vaults"))
    }

    @Test func aBadTrustVaultURLIsAUsageError() throws {
        let box = try Sandbox()
        try box.initRepository()
        let r = try box.coffer(["snapshots", "--repo", box.repo, "--trust-vault", "http://vault.example.com"])
        #expect(r.exitedNormally && r.status != 0 && r.err.contains("--trust-vault http://vault.example.com"), "\(r.diagnostics)")
    }
}

/// A TCP listener on loopback that counts connections and answers each with HTTP 500: a
/// stand-in for a vault that storage planted, to see whether anything is sent to it.
final class RecordingListener: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var _connections = 0
    private var thread: Thread?

    var connections: Int {
        lock.lock()
        defer { lock.unlock() }
        return _connections
    }
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard sock >= 0 else { throw TestServerError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(sock, 16) == 0 else { throw TestServerError("bind/listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &length) }
        }
        fd = sock
        port = Int(UInt16(bigEndian: address.sin_port))
        // Weakly held, so the listener stops when the test lets go of it.
        let thread = Thread { [weak self] in
            while let listener = self, listener.serveOne() {}
        }
        self.thread = thread
        thread.start()
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    /// Waits up to 100 ms for a connection and answers it; false once the socket is gone.
    private func serveOne() -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, 100)
        guard ready >= 0, poller.revents & Int16(POLLNVAL) == 0 else { return false }
        guard ready > 0 else { return true }
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return true }
        lock.lock()
        _connections += 1
        lock.unlock()
        do {
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress!, $0.count, 0) }
            let answer = Array("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
        return true
    }
}
