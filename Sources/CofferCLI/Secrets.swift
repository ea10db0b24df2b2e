import Coffer
import CofferCrypto
import Glibc

/// Reading passwords and keys without echo and without leaving copies around longer than needed.
enum Secrets {
    static func readFile(_ path: String) throws -> String {
        var bytes = try readBytes(path)
        defer { secureZero(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A file's bytes; the caller zeroes them when they are secret.
    static func readBytes(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "r") else { throw CLIError.usage("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        while true {
            let c = getc(f)
            if c == EOF { break }
            bytes.append(UInt8(c))
        }
        return bytes
    }

    /// Password from a file, COFFER_PASSWORD_FILE, COFFER_PASSWORD, or a no-echo prompt. Bytes
    /// are used as given (FORMAT.md §5.1): never re-encoded, so no two passwords collide.
    static func password(file: String?, prompt: String) throws -> SecureBytes {
        if let file = file ?? Environment.value("COFFER_PASSWORD_FILE") {
            var bytes = try readBytes(file)
            defer { secureZero(&bytes) }
            return firstLine(bytes)
        }
        if let value = Environment.value("COFFER_PASSWORD") { return firstLine(Array(value.utf8)) }
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

    /// Whether a password can be asked for (a controlling terminal exists).
    static var haveTerminal: Bool {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Asks for a new password twice on the terminal.
    static func promptNewPassword() throws -> SecureBytes {
        guard var p1 = promptNoEcho("New password: ") else { throw CLIError.usage("give the new password with --new-password-file") }
        defer { secureZero(&p1) }
        guard var p2 = promptNoEcho("Repeat the password: ") else { throw CLIError.usage("give the new password with --new-password-file") }
        defer { secureZero(&p2) }
        guard p1 == p2, !p1.isEmpty else { throw CLIError.usage("the passwords are empty or do not match") }
        return firstLine(p1)
    }

    /// The bytes up to the first line feed, without a trailing carriage return.
    static func firstLine(_ bytes: [UInt8]) -> SecureBytes {
        var line = Array(bytes.prefix { $0 != 10 })
        if line.last == 13 { line.removeLast() }
        defer { secureZero(&line) }
        return SecureBytes(copying: line)
    }

    /// Reads a line from /dev/tty with echo off; nil when there is no terminal.
    static func promptNoEcho(_ prompt: String) -> [UInt8]? {
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
        return bytes
    }
}
