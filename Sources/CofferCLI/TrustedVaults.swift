import Coffer
import CofferCrypto
import Foundation
import Glibc

/// The key vaults this user has told coffer about, one canonical URL a line, in
/// `trusted-vaults` under the configuration folder: `$COFFER_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/coffer`, else `~/.config/coffer`. `init --vault` and `key add --vault`
/// add theirs, `--trust-vault URL` adds one, and so does a "yes" at the prompt. The file is the
/// user's own (mode 0600, folder 0700) and is replaced whole, never edited in place.
struct TrustedVaultFile: Sendable {
    let path: String

    static let fileName = "trusted-vaults"

    /// The user's file; nil when no folder can be named (no HOME and nothing set).
    static func standard() -> TrustedVaultFile? { ConfigFolder.path().map { TrustedVaultFile(path: $0 + "/" + fileName) } }

    var folder: String { (path as NSString).deletingLastPathComponent }

    /// The canonical URLs in the file; none when it does not exist. Lines that are empty, start
    /// with `#`, or are no vault URL are skipped (they can match nothing).
    func load() throws -> Set<String> {
        Set(try readLines().compactMap { try? VaultAddress.canonicalURL($0) })
    }

    /// Adds `canonicalURL` unless it is there. Written to a temporary file (0600, fsync) that is
    /// renamed over the old one, so a crash leaves the old list or the new one.
    func add(_ canonicalURL: String) throws {
        var lines = try readLines()
        if lines.contains(where: { (try? VaultAddress.canonicalURL($0)) == canonicalURL }) { return }
        if lines.isEmpty { lines.append("# Key vaults coffer may send a password to (see coffer --help); one URL a line.") }
        lines.append(canonicalURL)
        let bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        try bytes.withUnsafeBytes { try ConfigFolder.writePrivateFile(path, $0, replacing: true) }
    }

    private func readLines() throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) != 0 && errno == ENOENT { return [] }
            throw failure("read", path)
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    private func failure(_ operation: String, _ at: String) -> CLIError {
        CLIError.usage("cannot \(operation) \(at): \(String(cString: strerror(errno)))")
    }
}

/// The CLI's trust in key vaults: the URLs in the user's file, those given with `--trust-vault`
/// or `COFFER_TRUST_VAULT` (then remembered), or a "yes" typed at a terminal (remembered too).
actor CLIVaultTrust: VaultTrust {
    let file: TrustedVaultFile?
    /// Canonical URLs given on the command line or in the environment.
    let given: Set<String>
    let mayAsk: Bool
    /// Allowed during this run, whether or not the file could record it.
    private var allowed: Set<String> = []

    init(file: TrustedVaultFile?, given: Set<String>, mayAsk: Bool) {
        self.file = file
        self.given = given
        self.mayAsk = mayAsk
    }

    func allowsLogin(to address: VaultAddress) async throws -> Bool {
        let url = address.canonicalURL
        if allowed.contains(url) { return true }
        if try file?.load().contains(url) == true {
            allowed.insert(url)
            return true
        }
        guard given.contains(url) || (mayAsk && Self.ask(address)) else { return false }
        allowed.insert(url)
        Self.remember(url, in: file)
        return true
    }

    /// Adds `url` to the file; a file that cannot be written costs a question next time, no more.
    static func remember(_ url: String, in file: TrustedVaultFile?) {
        guard let file else {
            Output.warning("no configuration folder (set COFFER_CONFIG_DIR or HOME): \(url) is trusted for this run only")
            return
        }
        do { try file.add(url) } catch {
            Output.warning("\(error); \(url) is trusted for this run only")
        }
    }

    /// Records a vault the user named (`init --vault`, `key add --vault`).
    static func record(_ address: VaultAddress) { remember(address.canonicalURL, in: TrustedVaultFile.standard()) }

    /// Asks on the terminal whether to trust the vault; only "y" or "yes" trusts it.
    static func ask(_ address: VaultAddress) -> Bool {
        guard let answer = Terminal.askLine("""
            This repository's key slot sends the password to the key vault at \(address.url)
            (account "\(address.account)"), which coffer on this machine has not been told about.
            Anyone who can write to the repository's storage can add such a slot.
            Trust \(address.url) and send the password there? [y/N] 
            """)
        else { return false }
        return ["y", "yes"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased())
    }
}

enum Terminal {
    /// Whether a person can answer: standard input is a terminal and /dev/tty opens.
    static var canAsk: Bool { isatty(STDIN_FILENO) == 1 && Secrets.haveTerminal }

    /// Asks on /dev/tty and reads one line with echo; nil when there is no terminal.
    static func askLine(_ prompt: String) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while bytes.count < 64 && read(fd, &c, 1) == 1 && c != 10 { bytes.append(c) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
