import Glibc

/// Streams a file through FastCDC with one reused buffer of at most twice the maximum chunk
/// size, so a file of any size needs constant memory. Small files get a small buffer: zeroing
/// 8 MiB for every voice note showed up in profiles.
struct ChunkReader: ~Copyable {
    private let fd: Int32
    private let cutter: Cutter
    private let maxChunk: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Bytes read so far.
    private(set) var bytesRead: UInt64 = 0

    init(fd: Int32, chunker: FastCDC, sizeHint: Int) {
        self.init(fd: fd, cutter: .contentDefined(chunker), sizeHint: sizeHint)
    }

    init(fd: Int32, cutter: Cutter, sizeHint: Int) {
        self.fd = fd
        self.cutter = cutter
        maxChunk = cutter.maxChunk
        let full = 2 * maxChunk
        buffer = [UInt8](repeating: 0, count: min(full, max(sizeHint + 1, 64 << 10)))
    }

    /// Calls `body` with the next chunk (valid only during the call); returns false at the end.
    mutating func next(_ body: (ArraySlice<UInt8>) throws -> Void) throws -> Bool {
        if end - start < maxChunk && !atEOF { try refill() }
        if start == end { return false }
        let length = buffer.withUnsafeBytes { cutter.cutLength(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        let chunk = buffer[start..<(start + length)]
        start += length
        try body(chunk)
        return true
    }

    private mutating func refill() throws {
        if start > 0 {
            let live = end - start
            buffer.withUnsafeMutableBytes { b in
                if live > 0 { memmove(b.baseAddress!, b.baseAddress! + start, live) }
            }
            start = 0
            end = live
        }
        while !atEOF {
            if end == buffer.count {
                // The file is larger than its size said (it grew): grow to the full buffer.
                let full = 2 * maxChunk
                guard buffer.count < full else { break }
                buffer.append(contentsOf: repeatElement(0, count: full - buffer.count))
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
