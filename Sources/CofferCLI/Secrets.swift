import Coffer
import CofferCrypto
import Glibc

/// Reading passwords and keys without echo and without leaving copies around longer than needed.
enum Secrets {
    static func readFile(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else { throw CLIError.usage("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        while true {
            let c = getc(f)
            if c == EOF { break }
            bytes.append(UInt8(c))
        }
        defer { secureZero(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Password from a file, COFFER_PASSWORD_FILE, COFFER_PASSWORD, or a no-echo prompt.
    static func password(file: String?, prompt: String) throws -> SecureBytes {
        if let file = file ?? Environment.value("COFFER_PASSWORD_FILE") { return firstLine(try readFile(file)) }
        if let value = Environment.value("COFFER_PASSWORD") { return firstLine(value) }
        guard let typed = promptNoEcho(prompt) else {
            throw CLIError.usage("no password given: set COFFER_PASSWORD or COFFER_PASSWORD_FILE, use --password-file, or run on a terminal")
        }
        return firstLine(typed)
    }

    /// Asks twice on the terminal; both must match. Used when creating a password.
    static func newPassword(file: String?) throws -> SecureBytes {
        if file != nil || Environment.value("COFFER_PASSWORD_FILE") != nil || Environment.value("COFFER_PASSWORD") != nil {
            let p = try password(file: file, prompt: "")
            guard p.count > 0 else { throw CLIError.usage("the password is empty") }
            return p
        }
        guard let first = promptNoEcho("New password: "), let second = promptNoEcho("Repeat the password: ") else {
            throw CLIError.usage("no password given: set COFFER_PASSWORD or use --password-file")
        }
        guard first == second else { throw CLIError.usage("the passwords do not match") }
        guard !first.isEmpty else { throw CLIError.usage("the password is empty") }
        return firstLine(first)
    }

    private static func firstLine(_ s: String) -> SecureBytes {
        let line = s.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var bytes = Array(line.utf8)
        if bytes.last == 13 { bytes.removeLast() }
        defer { secureZero(&bytes) }
        return SecureBytes(copying: bytes)
    }

    /// Reads a line from /dev/tty with echo off; nil when there is no terminal.
    static func promptNoEcho(_ prompt: String) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var old = termios()
        let haveTermios = tcgetattr(fd, &old) == 0
        if haveTermios {
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer {
            if haveTermios { tcsetattr(fd, TCSAFLUSH, &old) }
            _ = "\n".withCString { write(fd, $0, 1) }
        }
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while read(fd, &c, 1) == 1 && c != 10 { bytes.append(c) }
        defer { secureZero(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
