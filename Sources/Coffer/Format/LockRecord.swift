/// Payload of a `locks/<id>` object (FORMAT.md §11.1): who holds a lock and since when.
public struct LockRecord: Sendable, Equatable {
    public static let version: UInt8 = 1

    public var exclusive: Bool
    /// When this lock object was written (a refresh writes a new object), ns since the epoch.
    public var timeNanos: Int64
    public var hostname: String
    public var username: String
    public var pid: UInt32

    public init(exclusive: Bool, timeNanos: Int64, hostname: String, username: String, pid: UInt32) {
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
        try r.expectEnd()
    }

    public var description: String {
        "\(exclusive ? "exclusive" : "shared") lock held by \(username)@\(hostname) pid \(pid)"
    }
}
