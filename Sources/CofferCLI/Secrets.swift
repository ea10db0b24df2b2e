import Coffer
import CofferCrypto
import Glibc

/// Reading passwords and keys without echo and without leaving copies behind: secrets go from
/// the file or terminal straight into `SecureBytes`, and the few plain buffers are zeroed.
enum Secrets {
    /// A file's text (lists of paths or patterns, a recovery key), read without leftover copies.
    static func readFile(_ path: String) throws -> String {
        let bytes = try read(path)
        return bytes.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    static func read(_ path: String) throws -> SecureBytes {
        do { return try SecretFile.read(path) } catch { throw CLIError.usage("\(error)") }
    }

    /// Password from a file, COFFER_PASSWORD_FILE, COFFER_PASSWORD, or a no-echo prompt. Bytes
    /// are used as given (FORMAT.md §5.1): never re-encoded, so no two passwords collide.
    static func password(file: String?, prompt: String) throws -> SecureBytes {
        if let file = file ?? Environment.value("COFFER_PASSWORD_FILE") { return try read(file).firstLine() }
        if let value = Environment.value("COFFER_PASSWORD") {
            var bytes = Array(value.utf8)
            defer { secureZero(&bytes) }
            return SecureBytes(copying: bytes).firstLine()
        }
        guard let typed = promptNoEcho(prompt) else {
            throw CLIError.usage("no password given: set COFFER_PASSWORD or COFFER_PASSWORD_FILE, use --password-file, or run on a terminal")
        }
        return typed
    }

    /// Asks twice on the terminal; both must match. Used when creating a password.
    static func newPassword(file: String?) throws -> SecureBytes {
        if file != nil || Environment.value("COFFER_PASSWORD_FILE") != nil || Environment.value("COFFER_PASSWORD") != nil {
            let p = try password(file: file, prompt: "")
            guard p.count > 0 else { throw CLIError.usage("the password is empty") }
            return p
        }
        return try promptNewPassword(
            missing: "no password given: set COFFER_PASSWORD or use --password-file")
    }

    /// Whether a password can be asked for (a controlling terminal exists).
    static var haveTerminal: Bool {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Asks for a new password twice on the terminal.
    static func promptNewPassword(missing: String = "give the new password with --new-password-file") throws -> SecureBytes {
        guard let first = promptNoEcho("New password: "), let second = promptNoEcho("Repeat the password: ") else {
            throw CLIError.usage(missing)
        }
        guard first.constantTimeEquals(second) else { throw CLIError.usage("the passwords do not match") }
        guard first.count > 0 else { throw CLIError.usage("the password is empty") }
        return first
    }

    /// The longest line a terminal passes in canonical mode (Linux's N_TTY_BUF_SIZE).
    static let maximumTypedBytes = 4096

    /// Reads a line from /dev/tty with echo off into secure memory; nil when there is no
    /// terminal. Read byte by byte into a fixed buffer: nothing grows, so nothing is left behind.
    static func promptNoEcho(_ prompt: String) -> SecureBytes? {
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
        let line = SecureBytes(count: maximumTypedBytes) { buffer in
            var filled = 0
            while filled < buffer.count, Glibc.read(fd, buffer.baseAddress! + filled, 1) == 1, buffer[filled] != 10 { filled += 1 }
            if filled < buffer.count { buffer[filled] = 10 }  // ends the line for firstLine()
        }
        return line.firstLine()
    }
}
