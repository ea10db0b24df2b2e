import Glibc

/// Streams a file through the cutter. The chunks it returns are slices of its read buffer, not
/// copies, and stay valid for as long as they are held: a refill moves the unread tail into a
/// new buffer instead of over the old one, so sealing tasks can hash and seal chunks while the
/// reader goes on. A buffer holds at most `maximumBuffer` bytes and small files get a small
/// one (zeroing 8 MiB for every voice note showed up in profiles), so memory is bounded by the
/// buffers still referenced by chunks in flight.
struct ChunkReader: ~Copyable {
    private let fd: Int32
    private let cutter: Cutter
    private let maxChunk: Int
    /// The size of a full buffer: room for two maximal chunks, and at least 4 MiB, so that
    /// small fixed-size pages (SQLite's 4 KiB) are read in large pieces.
    private let fullBuffer: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Bytes read so far.
    private(set) var bytesRead: UInt64 = 0

    static func bufferSize(maxChunk: Int) -> Int { max(2 * maxChunk, 4 << 20) }

    init(fd: Int32, chunker: FastCDC, sizeHint: Int) {
        self.init(fd: fd, cutter: .contentDefined(chunker), sizeHint: sizeHint)
    }

    init(fd: Int32, cutter: Cutter, sizeHint: Int) {
        self.fd = fd
        self.cutter = cutter
        maxChunk = cutter.maxChunk
        fullBuffer = Self.bufferSize(maxChunk: maxChunk)
        buffer = [UInt8](repeating: 0, count: min(fullBuffer, max(sizeHint + 1, 64 << 10)))
    }

    /// The next chunk, or nil at the end of the file.
    mutating func next() throws -> ArraySlice<UInt8>? {
        if end - start < maxChunk && !atEOF { try refill() }
        if start == end { return nil }
        let length = buffer.withUnsafeBytes { cutter.cutLength(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        defer { start += length }
        return buffer[start..<(start + length)]
    }

    private mutating func refill() throws {
        if start > 0 {
            // Chunks handed out may still use the old buffer: the tail goes to a new one.
            let live = end - start
            var fresh = [UInt8](repeating: 0, count: buffer.count)
            if live > 0 {
                fresh.withUnsafeMutableBytes { to in
                    buffer.withUnsafeBytes { from in _ = memcpy(to.baseAddress!, from.baseAddress! + start, live) }
                }
            }
            buffer = fresh
            start = 0
            end = live
        }
        while !atEOF {
            if end == buffer.count {
                // The file is larger than its size said (it grew): grow to the full buffer.
                guard buffer.count < fullBuffer else { break }
                buffer.append(contentsOf: repeatElement(0, count: fullBuffer - buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { b in read(fd, b.baseAddress! + end, b.count - end) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(errno: errno, operation: "read")
            }
            if n == 0 { atEOF = true }
            end += n
            bytesRead += UInt64(n)
        }
    }
}

/// An errno from a file operation.
public struct FileError: Error, CustomStringConvertible {
    public let errno: Int32
    public let operation: String
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// How a file is cut into chunks.
enum Cutter: Sendable {
    /// FastCDC over the secret gear table: boundaries follow content, so insertions shift nothing.
    case contentDefined(FastCDC)
    /// Fixed-size pieces from the file's start: a SQLite database's pages, which change in
    /// place, so each changed page costs one page (FORMAT.md §4.3).
    case fixed(Int)

    var maxChunk: Int {
        switch self {
        case .contentDefined(let c): return c.parameters.maxSize
        case .fixed(let n): return n
        }
    }

    func cutLength(_ data: UnsafeRawBufferPointer) -> Int {
        switch self {
        case .contentDefined(let c): return c.cutLength(data)
        case .fixed(let n): return min(n, data.count)
        }
    }

    /// The page size of a SQLite database file from its 100-byte header, or nil for other files.
    static func sqlitePageSize(header: [UInt8]) -> Int? {
        let magic = Array("SQLite format 3\0".utf8)
        guard header.count >= 18, Array(header[0..<16]) == magic else { return nil }
        let raw = Int(header[16]) << 8 | Int(header[17])
        let size = raw == 1 ? 65536 : raw
        guard size >= 512, size <= 65536, size.nonzeroBitCount == 1 else { return nil }
        return size
    }
}
