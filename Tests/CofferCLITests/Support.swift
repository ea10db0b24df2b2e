import Foundation
import Glibc
import Testing

// Support for end-to-end tests that drive the real `coffer` binary as a child process.

/// Where the `coffer` executable is: next to the test runner in the build products directory.
enum CofferBinary {
    static let path: String? = locate()

    private static func locate() -> String? {
        if let p = ProcessInfo.processInfo.environment["COFFER_E2E_BINARY"], !p.isEmpty { return p }
        var starts: [String] = []
        if let exe = realPath("/proc/self/exe") { starts.append(exe) }
        if let arg0 = CommandLine.arguments.first, let p = realPath(arg0) { starts.append(p) }
        // The products directory holds both the test runner (or bundle) and `coffer`; walk up a
        // few levels in case the runner sits inside a bundle.
        for start in starts {
            var dir = (start as NSString).deletingLastPathComponent
            for _ in 0..<4 {
                let candidate = dir + "/coffer"
                if isExecutableFile(candidate) { return candidate }
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        // Fallback: the package's default build directory.
        var dir = (#filePath as NSString).deletingLastPathComponent
        while dir != "/" && !dir.isEmpty {
            let candidate = dir + "/.build/debug/coffer"
            if isExecutableFile(candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }

    private static func realPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    private static func isExecutableFile(_ p: String) -> Bool {
        var st = Glibc.stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(p, X_OK) == 0
    }

    static func require() throws -> String {
        try #require(path, "cannot find the coffer executable next to the test runner; set COFFER_E2E_BINARY")
    }
}

/// Outcome of one run of the binary.
struct RunResult {
    let arguments: [String]
    let reason: Process.TerminationReason
    let status: Int32
    let stdout: Data
    let stderr: Data

    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
    var exitedNormally: Bool { reason == .exit }
    var succeeded: Bool { reason == .exit && status == 0 }

    /// Every non-empty stdout line parsed as one JSON value.
    func jsonLines() throws -> [Any] {
        try out.split(separator: "\n").filter { !$0.isEmpty }.map { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
        }
    }

    /// The single JSON object printed as a backup's `summary` line.
    func summary() throws -> [String: Any] {
        let objects = try jsonLines().compactMap { $0 as? [String: Any] }
        return try #require(objects.last(where: { $0["messageType"] as? String == "summary" }), "no summary line in: \(out)")
    }

    /// The raw stdout line holding the summary (for checks on the literal JSON text).
    var summaryLine: String? {
        out.split(separator: "\n").last(where: { $0.contains("\"messageType\":\"summary\"") }).map(String.init)
    }

    var diagnostics: String {
        "coffer \(arguments.joined(separator: " ")) → \(reason == .exit ? "exit \(status)" : "signal \(status)")\nstdout: \(out.prefix(2000))\nstderr: \(err.prefix(2000))"
    }
}

/// A started child process whose output goes to files (no pipe can fill up and block it).
final class RunningCoffer {
    let process: Process
    let arguments: [String]
    let stdoutURL: URL
    let stderrURL: URL

    init(arguments: [String], environment: [String: String], launcherPrefix: [String], scratch: URL) throws {
        let binary = try CofferBinary.require()
        self.arguments = arguments
        let tag = UUID().uuidString
        stdoutURL = scratch.appendingPathComponent("stdout-\(tag)")
        stderrURL = scratch.appendingPathComponent("stderr-\(tag)")
        guard FileManager.default.createFile(atPath: stdoutURL.path, contents: nil),
            FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        else { throw FSError(operation: "create output file", path: raw(stdoutURL.path), code: errno) }
        process = Process()
        if launcherPrefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: launcherPrefix[0])
            process.arguments = Array(launcherPrefix.dropFirst()) + [binary] + arguments
        }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let outHandle = try FileHandle(forWritingTo: stdoutURL)
        let errHandle = try FileHandle(forWritingTo: stderrURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
        try outHandle.close()
        try errHandle.close()
    }

    var currentStdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// Polls stdout until `predicate` holds for it; false on exit or timeout.
    func waitForStdout(timeout: TimeInterval, _ predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(currentStdout) { return true }
            if !process.isRunning { return predicate(currentStdout) }
            usleep(10_000)
        }
        return false
    }

    func wait(timeout: TimeInterval) throws -> RunResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            Issue.record("coffer \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s and was killed")
        }
        process.waitUntilExit()
        let result = RunResult(
            arguments: arguments, reason: process.terminationReason, status: process.terminationStatus,
            stdout: (try? Data(contentsOf: stdoutURL)) ?? Data(), stderr: (try? Data(contentsOf: stderrURL)) ?? Data())
        try? FileManager.default.removeItem(at: stdoutURL)
        try? FileManager.default.removeItem(at: stderrURL)
        return result
    }
}

/// A temporary directory with a repository path inside it and a way to run `coffer` against it.
/// Everything is removed when the sandbox goes away.
final class Sandbox {
    let root: URL
    var repo: String
    var password = "correct horse battery staple"

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        repo = root.appendingPathComponent("repo").path
        try FileManager.default.createDirectory(at: root.appendingPathComponent(".out"), withIntermediateDirectories: true)
    }

    deinit {
        // Make everything removable again (tests may leave mode-000 entries behind).
        if let walker = FileManager.default.enumerator(atPath: root.path) {
            for case let rel as String in walker { _ = chmod(root.path + "/" + rel, 0o700) }
        }
        try? FileManager.default.removeItem(at: root)
    }

    func path(_ rel: String) -> String { root.appendingPathComponent(rel).path }

    /// COFFER_CONFIG_DIR for every run unless the test gives its own: never the real user's.
    var configDir: String { path("config") }

    /// The environment for the child: the parent's, without any COFFER_* variable, plus `extra`.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFFER_") }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `coffer args` with the sandbox's password (unless `env` says otherwise) and waits.
    @discardableResult
    func coffer(_ args: [String], env: [String: String]? = nil, launcherPrefix: [String] = [], timeout: TimeInterval = 120) throws -> RunResult {
        let running = try start(args, env: env, launcherPrefix: launcherPrefix)
        return try running.wait(timeout: timeout)
    }

    func start(_ args: [String], env: [String: String]? = nil, launcherPrefix: [String] = []) throws -> RunningCoffer {
        var env = env ?? ["COFFER_PASSWORD": password]
        // The user's configuration (the vaults they trust) stays the sandbox's own.
        if env["COFFER_CONFIG_DIR"] == nil { env["COFFER_CONFIG_DIR"] = configDir }
        return try RunningCoffer(
            arguments: args, environment: Self.environment(env),
            launcherPrefix: launcherPrefix, scratch: root.appendingPathComponent(".out"))
    }

    /// `coffer …` that must succeed; returns its result.
    @discardableResult
    func ok(_ args: [String], env: [String: String]? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try coffer(args, env: env)
        try #require(r.succeeded, "\(r.diagnostics)", sourceLocation: sourceLocation)
        return r
    }

    /// Creates the repository with cheap key derivation.
    @discardableResult
    func initRepository(extra: [String] = []) throws -> RunResult {
        try ok(["init", "--repo", repo, "--argon2-memory-mib", "8", "--argon2-iterations", "1"] + extra)
    }

    /// Backs up `paths` with `--json` and returns the parsed summary.
    @discardableResult
    func backup(_ paths: [String], extra: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> (result: RunResult, summary: [String: Any]) {
        let r = try ok(["backup", "--repo", repo, "--json"] + extra + paths, sourceLocation: sourceLocation)
        return (r, try r.summary())
    }

    func snapshotsJSON() throws -> [[String: Any]] {
        let r = try ok(["snapshots", "--repo", repo, "--json"])
        let lines = try r.jsonLines()
        try #require(lines.count == 1, "snapshots --json should print one line: \(r.out)")
        return try #require(lines[0] as? [[String: Any]], "snapshots --json is not an array of objects: \(r.out)")
    }

    /// Every regular file under the repository, as (relative path, size).
    func repositoryFiles() -> [String: Int] {
        var out: [String: Int] = [:]
        guard let walker = FileManager.default.enumerator(atPath: repo) else { return out }
        for case let rel as String in walker {
            var st = Glibc.stat()
            if lstat(repo + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { out[rel] = Int(st.st_size) }
        }
        return out
    }
}

/// Numbers from JSONSerialization (NSNumber on Linux) as Int.
func jsonInt(_ value: Any?) -> Int? {
    switch value {
    case let i as Int: return i
    case let n as NSNumber: return n.intValue
    case let d as Double: return Int(d)
    default: return nil
    }
}

// MARK: - Raw-byte file system helpers (names need not be UTF-8)

typealias RawName = [UInt8]

struct FSError: Error, CustomStringConvertible {
    let operation: String
    let path: RawName
    let code: Int32
    var description: String { "\(operation) \(display(path)): \(String(cString: strerror(code)))" }
}

func raw(_ s: String) -> RawName { Array(s.utf8) }
func display(_ p: RawName) -> String { String(decoding: p, as: UTF8.self) }
func joined(_ dir: RawName, _ name: RawName) -> RawName { dir + [UInt8(ascii: "/")] + name }

func withCPath<R>(_ p: RawName, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    // A [CChar] built from the raw bytes: the kernel sees exactly these bytes.
    let cchars: [CChar] = p.map { CChar(bitPattern: $0) } + [0]
    return try cchars.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

enum FS {
    static func writeFile(_ p: RawName, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = withCPath(p) { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw FSError(operation: "open", path: p, code: errno) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw FSError(operation: "write", path: p, code: errno) }
            done += n
        }
        // open() honours the umask; set the exact mode asked for.
        guard fchmod(fd, mode) == 0 else { throw FSError(operation: "fchmod", path: p, code: errno) }
    }

    static func writeFile(_ p: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws { try writeFile(raw(p), bytes, mode: mode) }
    static func writeFile(_ p: String, _ text: String, mode: mode_t = 0o644) throws { try writeFile(raw(p), raw(text), mode: mode) }

    static func readFile(_ p: RawName) throws -> [UInt8] {
        let fd = withCPath(p) { open($0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else { throw FSError(operation: "open", path: p, code: errno) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FSError(operation: "read", path: p, code: errno) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func readFile(_ p: String) throws -> [UInt8] { try readFile(raw(p)) }

    static func mkdir(_ p: RawName, mode: mode_t = 0o755) throws {
        guard withCPath(p, { Glibc.mkdir($0, mode) }) == 0 else { throw FSError(operation: "mkdir", path: p, code: errno) }
        guard withCPath(p, { chmod($0, mode) }) == 0 else { throw FSError(operation: "chmod", path: p, code: errno) }
    }

    static func mkdir(_ p: String, mode: mode_t = 0o755) throws { try mkdir(raw(p), mode: mode) }

    static func symlink(target: String, at p: String) throws {
        guard Glibc.symlink(target, p) == 0 else { throw FSError(operation: "symlink", path: raw(p), code: errno) }
    }

    static func hardLink(existing: String, new: String) throws {
        guard link(existing, new) == 0 else { throw FSError(operation: "link", path: raw(new), code: errno) }
    }

    /// Sets atime and mtime; does not follow a final symlink.
    static func setMtime(_ p: RawName, seconds: Int, nanoseconds: Int) throws {
        let t = timespec(tv_sec: seconds, tv_nsec: nanoseconds)
        let times = [t, t]
        guard withCPath(p, { utimensat(AT_FDCWD, $0, times, AT_SYMLINK_NOFOLLOW) }) == 0 else {
            throw FSError(operation: "utimensat", path: p, code: errno)
        }
    }

    static func setMtime(_ p: String, seconds: Int, nanoseconds: Int) throws { try setMtime(raw(p), seconds: seconds, nanoseconds: nanoseconds) }

    static func lstatRaw(_ p: RawName) throws -> stat {
        var st = Glibc.stat()
        guard withCPath(p, { lstat($0, &st) }) == 0 else { throw FSError(operation: "lstat", path: p, code: errno) }
        return st
    }

    static func exists(_ p: RawName) -> Bool {
        var st = Glibc.stat()
        return withCPath(p) { lstat($0, &st) } == 0
    }

    static func list(_ dir: RawName) throws -> [RawName] {
        guard let d = withCPath(dir, { opendir($0) }) else { throw FSError(operation: "opendir", path: dir, code: errno) }
        defer { closedir(d) }
        var names: [RawName] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [46] || name == [46, 46] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    static func readLink(_ p: RawName) throws -> RawName {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = withCPath(p) { readlink($0, &buf, buf.count) }
        guard n >= 0 else { throw FSError(operation: "readlink", path: p, code: errno) }
        return buf[0..<n].map { UInt8(bitPattern: $0) }
    }

    /// `count` bytes from /dev/urandom.
    static func randomBytes(_ count: Int) throws -> [UInt8] {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? h.close() }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            guard let d = try h.read(upToCount: min(1 << 20, count - out.count)), !d.isEmpty else { break }
            out += d
        }
        return out
    }

    /// Flips the lowest bit of the byte at `offset` (the middle if nil).
    static func flipByte(_ p: String, at offset: Int? = nil) throws {
        var bytes = try readFile(p)
        let i = offset ?? bytes.count / 2
        bytes[i] ^= 0x01
        var st = Glibc.stat()
        _ = stat(p, &st)
        try writeFile(raw(p), bytes, mode: st.st_mode & 0o7777)
    }
}

/// What a tree looks like on disk, keyed by raw path relative to the tree's root ([] = root).
struct EntryInfo {
    enum Kind: String { case file, directory, symlink, other }
    let kind: Kind
    let mode: UInt32
    let mtimeSeconds: Int
    let mtimeNanoseconds: Int
    let size: Int
    let links: UInt64
    let inode: UInt64
    let content: [UInt8]?
    let linkTarget: RawName?
}

func scanTree(_ root: RawName) throws -> [RawName: EntryInfo] {
    var out: [RawName: EntryInfo] = [:]
    func visit(_ rel: RawName) throws {
        let full = rel.isEmpty ? root : joined(root, rel)
        let st = try FS.lstatRaw(full)
        let kind: EntryInfo.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        out[rel] = EntryInfo(
            kind: kind, mode: UInt32(st.st_mode & 0o7777), mtimeSeconds: st.st_mtim.tv_sec, mtimeNanoseconds: st.st_mtim.tv_nsec,
            size: Int(st.st_size), links: UInt64(st.st_nlink), inode: UInt64(st.st_ino),
            content: kind == .file ? try FS.readFile(full) : nil,
            linkTarget: kind == .symlink ? try FS.readLink(full) : nil)
        if kind == .directory {
            for name in try FS.list(full) { try visit(rel.isEmpty ? name : joined(rel, name)) }
        }
    }
    try visit([])
    return out
}

/// Whether `haystack` contains `needle` as a byte sequence (memchr for candidates, memcmp to confirm).
func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty else { return true }
    guard haystack.count >= needle.count else { return false }
    return haystack.withUnsafeBytes { h in
        needle.withUnsafeBytes { n in
            let base = h.baseAddress!, last = h.count - n.count
            var i = 0
            while i <= last {
                guard let hit = memchr(base + i, Int32(n[0]), last - i + 1) else { return false }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, n.baseAddress!, n.count) == 0 { return true }
                i = at + 1
            }
            return false
        }
    }
}
