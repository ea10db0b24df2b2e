import Glibc

/// The two clocks the lock scheme reads (FORMAT.md §11.1): wall time, written into lock records
/// and compared by every host with its own, and boot time (CLOCK_BOOTTIME), which keeps counting
/// while the machine sleeps or the process is stopped, for how long our own lock has been ours.
/// A value so tests can run a lock on a clock they move.
public struct LockClock: Sendable {
    /// Nanoseconds since the Unix epoch.
    public var wallNanos: @Sendable () -> Int64
    /// Nanoseconds since boot, suspended time included; only differences mean anything.
    public var bootNanos: @Sendable () -> UInt64

    public init(wallNanos: @escaping @Sendable () -> Int64, bootNanos: @escaping @Sendable () -> UInt64) {
        self.wallNanos = wallNanos
        self.bootNanos = bootNanos
    }

    /// The machine's clocks. In debug builds only, both are moved forward by the number of
    /// seconds in the file named by `COFFER_TEST_CLOCK_OFFSET_FILE`, read at every call: the
    /// end-to-end tests stop a backup, move its clock (and a prune's) past the stale time and
    /// resume it. Release builds ignore the variable.
    public static let system = LockClock(
        wallNanos: { Self.readClock(CLOCK_REALTIME) &+ TestClockOffset.nanos() },
        bootNanos: { UInt64(Self.readClock(CLOCK_BOOTTIME) &+ TestClockOffset.nanos()) })

    private static func readClock(_ id: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// The debug-build test hook of `LockClock.system`.
enum TestClockOffset {
#if DEBUG
    private static let file: String? = getenv("COFFER_TEST_CLOCK_OFFSET_FILE").map { String(cString: $0) }

    static func nanos() -> Int64 {
        guard let file, let f = fopen(file, "r") else { return 0 }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 32)
        guard fgets(&buf, 32, f) != nil else { return 0 }
        let text = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let seconds = Int64(text.filter { !$0.isWhitespace }), (0...1_000_000).contains(seconds) else { return 0 }
        return seconds * 1_000_000_000
    }
#else
    @inline(__always) static func nanos() -> Int64 { 0 }
#endif
}
