import CofferCrypto
import Glibc
import Synchronization

/// Whole-buffer reads and writes with EINTR and short transfers handled, and direct I/O.
enum FileIO {
    /// O_DIRECT, which Glibc's Swift overlay does not export (it needs _GNU_SOURCE).
    #if arch(x86_64)
    static let directFlag: Int32 = 0o40000
    #elseif arch(arm64)
    static let directFlag: Int32 = 0o200000
    #else
    static let directFlag: Int32 = 0
    #endif

    /// What direct I/O needs aligned: buffer addresses, file offsets and lengths.
    static let directAlignment = 4096
    /// Bytes copied into an aligned buffer and written per request.
    static let directSegment = 4 << 20

    /// Writes all of `bytes` at `offset` (EINTR and short writes retried).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileError(errno: n == 0 ? EIO : errno, operation: "write") }
            done += n
        }
    }

    /// Reads into all of `buffer` from `offset` (EINTR and short reads retried); returns how many
    /// bytes were read, fewer only where the file ends.
    static func readAll(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw FileError(errno: errno, operation: "read") }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The process's soft limit on open descriptors.
    static func openFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }

    /// The names in a folder, without `.` and `..`; nil if it does not exist.
    static func names(in dir: String) throws(FileError) -> [String]? {
        guard let d = opendir(dir) else {
            if errno == ENOENT { return nil }
            throw FileError(errno: errno, operation: "opendir")
        }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Writes `bytes` from offset 0 through an `O_DIRECT` descriptor: each segment is copied into
    /// an aligned buffer, the last one padded with zeros to the alignment, and the file is then
    /// cut to its exact size. Returns false, having written nothing that counts, when the file
    /// system refuses direct writes (EINVAL: tmpfs, some network file systems); the caller then
    /// writes through the page cache.
    static func writeDirect(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(FileError) -> Bool {
        guard directFlag != 0 else { return false }
        let buffer = AlignedBuffers.shared.take()
        defer { AlignedBuffers.shared.give(buffer) }
        var offset = 0
        while offset < bytes.count {
            let count = min(directSegment, bytes.count - offset)
            let padded = (count + directAlignment - 1) / directAlignment * directAlignment
            memcpy(buffer, bytes.baseAddress! + offset, count)
            if padded > count { memset(buffer + count, 0, padded - count) }
            var done = 0
            while done < padded {
                let n = pwrite(fd, buffer + done, padded - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == EINVAL && offset == 0 && done == 0 { return false }
                guard n > 0 else { throw FileError(errno: n == 0 ? EIO : errno, operation: "write") }
                done += n
            }
            offset += count
        }
        guard ftruncate(fd, off_t(bytes.count)) == 0 else { throw FileError(errno: errno, operation: "truncate") }
        return true
    }
}

/// A few aligned segment buffers of one size, reused: allocating and faulting in a segment
/// for every pack would cost more than the copy into it.
final class AlignedBuffers: Sendable {
    /// `FileIO.directSegment` buffers, for whole objects and restored files.
    static let shared = AlignedBuffers(size: FileIO.directSegment, keep: 4)

    let size: Int
    private let keep: Int
    private let idle = Mutex<[UnsafeRawPointerBox]>([])

    init(size: Int, keep: Int) {
        self.size = size
        self.keep = keep
    }

    func take() -> UnsafeMutableRawPointer {
        if let b = idle.withLock({ $0.popLast() }) { return b.pointer }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: FileIO.directAlignment)
    }

    func give(_ buffer: UnsafeMutableRawPointer) {
        let kept: Bool = idle.withLock {
            guard $0.count < keep else { return false }
            $0.append(UnsafeRawPointerBox(pointer: buffer))
            return true
        }
        if !kept { buffer.deallocate() }
    }

    /// An idle buffer: nobody else holds it, so it may cross threads.
    private struct UnsafeRawPointerBox: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }
}
