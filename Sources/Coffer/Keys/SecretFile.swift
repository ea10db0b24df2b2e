public import CofferCrypto
import Glibc

/// Reads a file that holds a secret (a password file, a recovery key) into `SecureBytes`
/// without leaving copies behind in freed memory: no stdio buffer (fclose frees it unzeroed),
/// and a buffer that grows by copying into a bigger one and zeroing the old before it is freed,
/// never by `Array.append`, whose reallocations free the old storage as it is.
public enum SecretFile {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let operation: String
        public let errno: Int32
        public var description: String {
            errno == EFBIG ? "\(path) is larger than a secret file may be (\(SecretFile.maximumBytes >> 20) MiB)"
                : "cannot \(operation) \(path): \(String(cString: strerror(errno)))"
        }
    }

    /// A password or key file is small; this bounds what a wrong path (a disk image) may cost.
    public static let maximumBytes = 16 << 20

    /// The whole file. `initialCapacity` is where the buffer starts before it doubles (tests
    /// set it small to make it grow).
    public static func read(_ path: String, initialCapacity: Int = 4096) throws(Failure) -> SecureBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        return try read(descriptor: fd, path: path, initialCapacity: initialCapacity)
    }

    /// A key file that must be the user's own: opened without following a symlink and without
    /// blocking (a FIFO put in its place must not hang a scheduled job), then checked on the
    /// open descriptor — a regular file, owned by this user, that no one else may read or
    /// write — so nothing can be swapped between the check and the read.
    public static func readPrivate(_ path: String) throws(Failure) -> SecureBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw Failure(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Failure(path: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw Failure(path: path, operation: "use (not a regular file of yours that only you can read)", errno: EPERM)
        }
        return try read(descriptor: fd, path: path, initialCapacity: 4096)
    }

    static func read(descriptor fd: Int32, path: String, initialCapacity: Int) throws(Failure) -> SecureBytes {
        var buffer = [UInt8](repeating: 0, count: max(initialCapacity, 1))
        defer { secureZero(&buffer) }
        var filled = 0
        while true {
            if filled == buffer.count {
                guard buffer.count < maximumBytes else { throw Failure(path: path, operation: "read", errno: EFBIG) }
                grow(&buffer)
            }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(path: path, operation: "read", errno: errno) }
            if n == 0 { break }
            filled += n
        }
        return SecureBytes(copying: buffer[0..<filled])
    }

    /// Doubles `buffer`: the bytes move to a new array and the old one is zeroed while it is
    /// still the only reference to its storage, so what is freed holds nothing.
    static func grow(_ buffer: inout [UInt8]) {
        var bigger = [UInt8](repeating: 0, count: buffer.count * 2)
        bigger.withUnsafeMutableBytes { destination in buffer.withUnsafeBytes { destination.copyMemory(from: $0) } }
        secureZero(&buffer)
        buffer = bigger
    }
}

extension SecureBytes {
    /// The bytes up to the first line feed, without a trailing carriage return: the password in
    /// a password file or a typed line (FORMAT.md §5.1). Copied from secure memory to secure
    /// memory, never through an array.
    public func firstLine() -> SecureBytes {
        let length = withUnsafeBytes { bytes -> Int in
            var end = bytes.firstIndex(of: 10) ?? bytes.count
            if end > 0 && bytes[end - 1] == 13 { end -= 1 }
            return end
        }
        return SecureBytes(count: length) { out in
            withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        }
    }
}
