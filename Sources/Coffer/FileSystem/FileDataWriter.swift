import Glibc

/// Writes a restored file's data, in order, the cheapest way measured on this machine class:
/// through the page cache a write costs about ten times the CPU of a direct one (DESIGN §8),
/// so files of at least `directThreshold` bytes are written with O_DIRECT, in aligned segments
/// (the last one padded, then the file cut to its size). Zeros stay holes either way: a sparse
/// file stays sparse (to `holeGranularity` in direct mode, to the chunk otherwise). Where the
/// file system refuses O_DIRECT (tmpfs), writes go through the page cache.
struct FileDataWriter: ~Copyable {
    static let directThreshold = 64 << 10
    /// Direct mode leaves holes where a whole aligned block of this size is zero.
    static let holeGranularity = 64 << 10

    private let fd: Int32
    private let direct: Bool
    private let segment: UnsafeMutableRawPointer?
    /// Bytes in `segment`, which starts at file offset `segmentOffset`.
    private var filled = 0
    private var segmentOffset = 0
    /// Bytes written (or left as holes) so far.
    private(set) var size = 0

    init(fd: Int32, expectedSize: UInt64) {
        self.fd = fd
        var direct = false
        if expectedSize >= UInt64(Self.directThreshold) && FileIO.directFlag != 0 {
            direct = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | FileIO.directFlag) == 0
        }
        self.direct = direct
        segment = direct ? AlignedBuffers.shared.take() : nil
    }

    deinit {
        if let segment { AlignedBuffers.shared.give(segment) }
    }

    mutating func append(_ bytes: [UInt8]) async throws {
        guard let segment else {
            // All-zero chunks become holes.
            if !Self.isZero(bytes) { try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, at: size) } }
            size += bytes.count
            return
        }
        var taken = 0
        while taken < bytes.count {
            let n = min(FileIO.directSegment - filled, bytes.count - taken)
            bytes.withUnsafeBytes { _ = memcpy(segment + filled, $0.baseAddress! + taken, n) }
            filled += n
            taken += n
            if filled == FileIO.directSegment { try await flush() }
        }
        size += bytes.count
    }

    /// Writes what is left and sets the exact size, off the cooperative pool.
    ///
    /// The bytes after the last aligned block go through the page cache, so the file ends at
    /// its size. Padding them to a block and cutting the file back instead made `ftruncate`
    /// read that block from the device to zero its end (ext4_block_zero_page_range, since a
    /// direct write leaves nothing cached): a third of a restore's waits, on a cooperative
    /// thread. The file is cut or extended only if its size is still wrong (trailing holes).
    mutating func finish() async throws {
        var unaligned: [UInt8] = []
        if direct && filled > 0 {
            let aligned = filled / FileIO.directAlignment * FileIO.directAlignment
            if aligned < filled { unaligned = Array(UnsafeRawBufferPointer(start: segment! + aligned, count: filled - aligned)) }
            filled = aligned
            if aligned > 0 { try await flush() }
        }
        let (fd, size, tailOffset, tail) = (fd, size, segmentOffset, unaligned)
        try await BlockingIO.run {
            if !Self.isZero(tail) {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~FileIO.directFlag)
                try tail.withUnsafeBytes { try FileIO.writeAll(fd, $0, at: tailOffset) }
            }
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0 else { throw FileError(errno: errno, operation: "stat") }
            if Int(st.st_size) != size {
                guard ftruncate(fd, off_t(size)) == 0 else { throw FileError(errno: errno, operation: "truncate") }
            }
        }
    }

    /// Writes the segment's non-zero blocks (on a thread off the cooperative pool: a direct
    /// write waits for the device).
    private mutating func flush() async throws {
        let (fd, base, length, offset) = (fd, UInt(bitPattern: segment!), filled, segmentOffset)
        try await BlockingIO.run {
            let segment = UnsafeMutableRawPointer(bitPattern: base)!
            var block = 0
            while block < length {
                // A run of non-zero blocks, written with one call.
                let blockLength = min(Self.holeGranularity, length - block)
                if Self.isZero(UnsafeRawBufferPointer(start: segment + block, count: blockLength)) {
                    block += blockLength
                    continue
                }
                var end = block + blockLength
                while end < length {
                    let next = min(Self.holeGranularity, length - end)
                    if Self.isZero(UnsafeRawBufferPointer(start: segment + end, count: next)) { break }
                    end += next
                }
                let run = UnsafeRawBufferPointer(start: segment + block, count: end - block)
                do { try FileIO.writeAll(fd, run, at: offset + block) } catch let e as FileError where e.errno == EINVAL {
                    // The file system took O_DIRECT at fcntl but refuses these writes: the
                    // same descriptor through the page cache (any alignment is fine there).
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~FileIO.directFlag)
                    try FileIO.writeAll(fd, run, at: offset + block)
                }
                block = end
            }
        }
        segmentOffset += filled
        filled = 0
    }

    static func isZero(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { isZero($0) } }

    static func isZero(_ raw: UnsafeRawBufferPointer) -> Bool {
        guard let base = raw.baseAddress else { return true }
        let words = raw.count / 8
        var i = 0
        while i < words {
            if base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) != 0 { return false }
            i += 1
        }
        for j in (words * 8)..<raw.count where raw[j] != 0 { return false }
        return true
    }
}
