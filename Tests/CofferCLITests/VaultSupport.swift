import Foundation
import Glibc
import Testing

/// The real `coffer-vault` binary on a free loopback port over a data directory of its own;
/// stopped on deinit. `restart()` keeps the port, because a vault slot stores the vault's URL.
final class VaultTestServer {
    let port: Int
    let dataDirectory: String
    let maxAttempts: Int
    let tls: (certificate: String, key: String)?
    /// `--login-rate`; nil for the server's default.
    let loginRate: Int?
    private var process: Process

    static var binary: String? {
        guard let coffer = CofferBinary.path else { return nil }
        let path = (coffer as NSString).deletingLastPathComponent + "/coffer-vault"
        return access(path, X_OK) == 0 ? path : nil
    }

    init(dataDirectory: String, maxAttempts: Int = 10, tls: (certificate: String, key: String)? = nil, loginRate: Int? = nil) throws {
        self.dataDirectory = dataDirectory
        self.maxAttempts = maxAttempts
        self.tls = tls
        self.loginRate = loginRate
        var lastError = "coffer-vault did not start"
        for _ in 0..<3 {  // a port taken between freePort() and the bind: try another
            let port = try S3TestEnvironment.freePort()
            if let p = try Self.launch(port: port, dataDirectory: dataDirectory, maxAttempts: maxAttempts, tls: tls, loginRate: loginRate) {
                self.port = port
                self.process = p
                return
            }
            lastError = "coffer-vault on port \(port) did not accept connections"
        }
        throw TestServerError(lastError)
    }

    deinit { stop(process) }

    var url: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// Kills the server with SIGKILL — no chance to flush anything — and starts it again on the
    /// same port and data.
    func restart() throws {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let p = try Self.launch(port: port, dataDirectory: dataDirectory, maxAttempts: maxAttempts, tls: tls, loginRate: loginRate) {
                process = p
                return
            }
            usleep(200_000)
        }
        throw TestServerError("coffer-vault did not come back on port \(port)")
    }

    private static func launch(
        port: Int, dataDirectory: String, maxAttempts: Int, tls: (certificate: String, key: String)?, loginRate: Int?
    ) throws -> Process? {
        let binary = try #require(binary, "cannot find coffer-vault next to the coffer binary")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--data", dataDirectory, "--port", "\(port)", "--max-attempts", "\(maxAttempts)"]
            + (tls.map { ["--tls-cert", $0.certificate, "--tls-key", $0.key] } ?? [])
            + (loginRate.map { ["--login-rate", "\($0)"] } ?? [])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && p.isRunning && !S3TestEnvironment.accepts(port: port) { usleep(20_000) }
        if p.isRunning && S3TestEnvironment.accepts(port: port) { return p }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return nil
    }
}
