import Glibc
import Synchronization

/// Streams a file through the cutter. The chunks it returns are views of its read buffer, not
/// copies, and stay valid for as long as they are held: a refill moves the unread tail into a
/// new buffer instead of over the old one, so sealing tasks can hash and seal chunks while the
/// reader goes on. A buffer holds at most `fullBuffer` bytes and small files get a small one
/// (zeroing 8 MiB for every voice note showed up in profiles), so memory is bounded by the
/// buffers still referenced by chunks in flight. Buffers come from `ChunkBuffer.pool` and go
/// back to it when their last chunk is dropped: a fresh 8 MiB buffer per refill cost page
/// faults, and freed ones left the heap fragmented (peak RSS 124 MiB against 76 with them
/// returned to the system at once).
struct ChunkReader: ~Copyable {
    private let fd: Int32
    private let cutter: Cutter
    private let maxChunk: Int
    /// The size of a full buffer: a maximal chunk and 2 MiB more, so that a refill reads at
    /// least 2 MiB, and at least 4 MiB, so that small fixed-size pages (SQLite's 4 KiB) are
    /// read in large pieces. Each refill copies the unread tail (under a maximal chunk).
    private let fullBuffer: Int
    private var buffer: ChunkBuffer
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Bytes read so far.
    private(set) var bytesRead: UInt64 = 0

    static func bufferSize(maxChunk: Int) -> Int { max(maxChunk + (2 << 20), 4 << 20) }

    init(fd: Int32, chunker: FastCDC, sizeHint: Int) {
        self.init(fd: fd, cutter: .contentDefined(chunker), sizeHint: sizeHint)
    }

    init(fd: Int32, cutter: Cutter, sizeHint: Int) {
        self.fd = fd
        self.cutter = cutter
        maxChunk = cutter.maxChunk
        fullBuffer = Self.bufferSize(maxChunk: maxChunk)
        buffer = ChunkBuffer(capacity: min(fullBuffer, max(sizeHint + 1, 64 << 10)))
    }

    /// A reader over a whole file already read into `buffer[range]` (small files share one
    /// buffer, so a batch of them costs its bytes and no more: `SmallFileArena`).
    init(wholeFile range: Range<Int>, in buffer: ChunkBuffer, cutter: Cutter) {
        fd = -1
        self.cutter = cutter
        maxChunk = cutter.maxChunk
        fullBuffer = Self.bufferSize(maxChunk: maxChunk)
        self.buffer = buffer
        start = range.lowerBound
        end = range.upperBound
        atEOF = true
        bytesRead = UInt64(range.count)
    }

    /// The next chunk, or nil at the end of the file.
    mutating func next() throws -> Chunk? {
        if end - start < maxChunk && !atEOF { try refill() }
        if start == end { return nil }
        let length = buffer.bytes.withUnsafeBytes { cutter.cutLength(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        defer { start += length }
        return Chunk(buffer: buffer, range: start..<(start + length))
    }

    private mutating func refill() throws {
        if start > 0 {
            // Chunks handed out may still use the old buffer: the tail goes to a new one.
            let live = end - start
            let fresh = ChunkBuffer(capacity: buffer.bytes.count)
            if live > 0 {
                fresh.bytes.withUnsafeMutableBytes { to in
                    buffer.bytes.withUnsafeBytes { from in _ = memcpy(to.baseAddress!, from.baseAddress! + start, live) }
                }
            }
            buffer = fresh
            start = 0
            end = live
        }
        while !atEOF {
            if end == buffer.bytes.count {
                // The file is larger than its size said (it grew): grow to the full buffer.
                guard buffer.bytes.count < fullBuffer else { break }
                // No chunk of this buffer is out: refills start on a fresh one (above).
                let grown = ChunkBuffer(capacity: fullBuffer)
                grown.bytes.withUnsafeMutableBytes { to in
                    buffer.bytes.withUnsafeBytes { from in _ = memcpy(to.baseAddress!, from.baseAddress!, end) }
                }
                buffer = grown
            }
            let n = buffer.bytes.withUnsafeMutableBytes { b in read(fd, b.baseAddress! + end, b.count - end) }
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

/// One buffer that a batch's small files are read into back to back (BlobStage), so that the
/// batch keeps `capacity` bytes alive, not a rounded-up buffer per file.
struct SmallFileArena {
    let buffer: ChunkBuffer
    private(set) var used = 0

    init(capacity: Int) { buffer = ChunkBuffer(capacity: capacity) }

    var room: Int { buffer.bytes.count - used }

    /// Reads the rest of a file of about `size` bytes from its current offset; nil, with the
    /// offset unchanged, when it does not fit or turns out longer than `size` (it grew).
    mutating func read(_ fd: Int32, size: Int) throws(FileError) -> Range<Int>? {
        // One byte more than expected tells a file that grew from one that did not.
        guard size + 1 <= room else { return nil }
        let offset = lseek(fd, 0, SEEK_CUR)
        guard offset >= 0 else { throw FileError(errno: errno, operation: "seek") }
        let start = used
        let n = try buffer.bytes.withUnsafeMutableBytes { b in
            Result { () throws(FileError) in
                try FileIO.readAll(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[start..<(start + size + 1)]), at: Int(offset))
            }
        }.get()
        guard n <= size else { return nil }
        used += n
        return start..<(start + n)
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

/// A chunk: a view of a read buffer, which it keeps alive.
struct Chunk: Sendable {
    let buffer: ChunkBuffer
    let range: Range<Int>

    var count: Int { range.count }
    /// The chunk's bytes (a slice of the buffer: no copy).
    var bytes: ArraySlice<UInt8> { buffer.bytes[range] }

    /// Runs `body` with the bytes of each chunk, in order, without copying them. Each run of
    /// chunks from one buffer (a file's chunks are neighbours) holds that buffer for the call.
    static func withBytes<R>(of chunks: [Chunk], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        var runs: [(buffer: ChunkBuffer, ranges: [Range<Int>])] = []
        for chunk in chunks {
            if let last = runs.last, last.buffer === chunk.buffer {
                runs[runs.count - 1].ranges.append(chunk.range)
            } else {
                runs.append((chunk.buffer, [chunk.range]))
            }
        }
        var views: [UnsafeRawBufferPointer] = []
        views.reserveCapacity(chunks.count)
        func nest(_ run: Int) -> R {
            guard run < runs.count else { return body(views) }
            return runs[run].buffer.bytes.withUnsafeBytes { all in
                for r in runs[run].ranges { views.append(UnsafeRawBufferPointer(rebasing: all[r])) }
                return nest(run + 1)
            }
        }
        return nest(0)
    }
}

/// A read buffer. Only the reader writes it, and only before it hands out a chunk of it; from
/// then on it is read-only and may be read by any task. When the last chunk goes, its storage
/// goes back to `pool` for the next refill.
final class ChunkBuffer: @unchecked Sendable {
    var bytes: [UInt8]

    init(capacity: Int) { bytes = Self.pool.take(capacity: capacity) }

    deinit { Self.pool.give(&bytes) }

    static let pool = BufferPool(idleLimit: 8 << 20)
}

/// Byte arrays kept for reuse, by power-of-two capacity from 64 KiB, up to `idleLimit` bytes
/// of capacity idle in all: enough for the few full buffers a large file cycles through. An
/// array is allocated with its class's capacity but only as many bytes as asked are touched.
final class BufferPool: Sendable {
    private let idleLimit: Int
    private let state = Mutex<(idle: [Int: [[UInt8]]], bytes: Int)>(([:], 0))

    init(idleLimit: Int) { self.idleLimit = idleLimit }

    /// An array of `count` bytes (contents unspecified: callers write before they read).
    func take(capacity count: Int) -> [UInt8] {
        let size = Self.sizeClass(count)
        guard var array = state.withLock({ s -> [UInt8]? in
            guard let a = s.idle[size]?.popLast() else { return nil }
            s.bytes -= size
            return a
        }) else {
            // Not zeroed: readers write before anything reads (fills of a fresh 4 MiB buffer
            // were 2 % of a backup), and pages never written are never touched, so a part-used
            // buffer costs only its used part.
            var fresh = [UInt8](unsafeUninitializedCapacity: size) { _, initialized in initialized = size }
            fresh.removeLast(size - count)
            return fresh
        }
        if array.count < count {
            array.append(contentsOf: repeatElement(0, count: count - array.count))
        } else if array.count > count {
            array.removeLast(array.count - count)
        }
        return array
    }

    func give(_ array: inout [UInt8]) {
        // The class is the largest power of two the capacity holds: the one `take` reserved.
        guard array.capacity >= 64 << 10 else { return }
        let size = 1 << (Int.bitWidth - 1 - array.capacity.leadingZeroBitCount)
        let taken = array
        array = []
        state.withLock { s in
            guard s.bytes + size <= idleLimit else { return }
            s.idle[size, default: []].append(taken)
            s.bytes += size
        }
    }

    /// The power of two at or above `n`, and at least 64 KiB.
    static func sizeClass(_ n: Int) -> Int {
        let floor = 64 << 10
        guard n > floor else { return floor }
        return 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
    }
}
