import Foundation
import Glibc

/// Payload of a `locks/<id>` object (FORMAT.md §11.1): who holds a lock and since when.
public struct LockRecord: Sendable, Equatable {
    public static let version: UInt8 = 1

    public var exclusive: Bool
    /// When this lock object was written (a refresh writes a new object), ns since the epoch.
    public var timeNanos: Int64
    public var hostname: String
    public var username: String
    public var pid: UInt32
    /// The kernel's boot id and the PID namespace: a pid means the same process only within both.
    public var bootID: String
    public var pidNamespace: UInt64

    public init(exclusive: Bool, timeNanos: Int64, hostname: String, username: String, pid: UInt32, bootID: String = "", pidNamespace: UInt64 = 0) {
        self.bootID = bootID
        self.pidNamespace = pidNamespace
        self.exclusive = exclusive
        self.timeNanos = timeNanos
        self.hostname = hostname
        self.username = username
        self.pid = pid
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.u8(exclusive ? 1 : 0)
        w.i64(timeNanos)
        w.string(hostname)
        w.string(username)
        w.u32(pid)
        w.string(bootID)
        w.u64(pidNamespace)
        return w.bytes
    }

    public init(decoding bytes: [UInt8], name: String) throws {
        var r = ByteReader(bytes, what: "lock \(name)")
        guard try r.u8() == Self.version else { throw MalformedObject("lock \(name): unknown version") }
        switch try r.u8() {
        case 0: exclusive = false
        case 1: exclusive = true
        default: throw MalformedObject("lock \(name): bad exclusive flag")
        }
        timeNanos = try r.i64()
        hostname = try r.string()
        username = try r.string()
        pid = try r.u32()
        bootID = try r.string()
        pidNamespace = try r.u64()
        try r.expectEnd()
    }

    /// /proc/sys/kernel/random/boot_id, "" where unavailable.
    public static let currentBootID: String = {
        guard let f = fopen("/proc/sys/kernel/random/boot_id", "r") else { return "" }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 64)
        guard fgets(&buf, 64, f) != nil else { return "" }
        return String(nulTerminated: buf).trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    /// The inode of /proc/self/ns/pid, 0 where unavailable.
    public static let currentPIDNamespace: UInt64 = {
        var st = stat()
        return stat("/proc/self/ns/pid", &st) == 0 ? UInt64(st.st_ino) : 0
    }()

    public var description: String {
        "\(exclusive ? "exclusive" : "shared") lock held by \(username)@\(hostname) pid \(pid)"
    }
}
