import CofferCrypto
import Glibc
import Synchronization

/// An object a local repository takes in pieces while it is being produced: a pack filling up
/// during a backup or a prune. Its bytes go straight into a temporary file in the object's
/// folder, through `O_DIRECT` in aligned segments, so no pack is ever held whole in memory
/// (three open packs of 16 MiB were most of a backup's peak memory). `commit` then does what
/// `LocalStorage.write` does for a whole object: fsync, link to the final name (which refuses
/// to replace an object), unlink the temporary name, fsync the folder.
///
/// `append` only copies into the current segment, so callers may hold their own lock around
/// it (the pack assembler does, to keep blob offsets in order). A segment that fills comes
/// back as a `SegmentWrite`, which the caller performs after letting go of its lock: the
/// write runs off the cooperative pool, at the segment's fixed offset, so writes of one object
/// may finish in any order. `commit` and `discard` wait for them.
///
/// A crash leaves the `.tmp-*` file behind; listings ignore it, and prune removes old ones
/// (FORMAT.md §1).
final class StagedObject: Sendable {
    let name: ObjectName
    private let temporary: String
    private let final: String
    private let fd: Int32
    /// A buffered descriptor of the same file, opened with it: what was written is read back
    /// through it (reads through an O_DIRECT one must be aligned), from this file whatever is
    /// later done to its name.
    private let reader: Int32
    private let state: Mutex<State>

    /// Segments are this large: a write of 1 MiB costs little more per byte than one of 4 MiB
    /// here, and three open packs then hold 3 MiB, not 48.
    static let segmentSize = 1 << 20
    static let buffers = AlignedBuffers(size: segmentSize, keep: 8)

    private struct State: ~Copyable {
        var segment: UncheckedPointer?
        /// Bytes in `segment`, which starts at file offset `segmentStart`.
        var filled = 0
        var segmentStart = 0
        var direct: Bool
        var writesInFlight = 0
        var drained: [CheckedContinuation<Void, Never>] = []
        var failure: StorageError?
        var closed = false
    }

    /// One filled segment, to be written at `offset` by `perform()`.
    struct SegmentWrite: @unchecked Sendable {
        // The buffer is owned by this value until `perform` hands it back.
        fileprivate let object: StagedObject
        fileprivate let buffer: UnsafeMutableRawPointer
        fileprivate let offset: Int

        /// Writes the segment; a failure is kept and thrown by `commit`.
        func perform() async { await object.write(self) }
    }

    init(name: ObjectName, final: String) throws {
        self.name = name
        self.final = final
        let dir = String(final[..<final.lastIndex(of: "/")!])
        temporary = dir + "/.tmp-" + Hex.encode(SystemRandomBytes.bytes(8))
        var direct = FileIO.directFlag != 0
        var fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? FileIO.directFlag : 0), 0o600)
        if fd < 0 && direct && errno == EINVAL {
            direct = false
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw StorageError.io("create", path: temporary, errno: errno) }
        let reader = open(temporary, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else {
            let e = errno
            close(fd)
            unlink(temporary)
            throw StorageError.io("open", path: temporary, errno: e)
        }
        self.fd = fd
        self.reader = reader
        state = Mutex(State(direct: direct))
    }

    deinit {
        close(reader)
        // Only reached without commit or discard on a path that dropped the object; no write
        // is in flight then (each holds a reference).
        state.withLock { s in
            if let segment = s.segment { Self.buffers.give(segment.pointer) }
            if !s.closed {
                close(fd)
                unlink(temporary)
            }
        }
    }

    /// Bytes appended so far.
    var count: Int { state.withLock { $0.segmentStart + $0.filled } }

    /// Copies `bytes` in; returns the segments that filled, for the caller to perform.
    func append(_ bytes: UnsafeRawBufferPointer) -> [SegmentWrite] {
        state.withLock { s in
            // Closed (committed, or discarded by a failing run): a write now could land in
            // whatever file reused the descriptor's number.
            guard !s.closed else {
                if s.failure == nil { s.failure = .io("write", path: temporary, errno: EBADF) }
                return []
            }
            var full: [SegmentWrite] = []
            var done = 0
            while done < bytes.count {
                let segment = s.segment ?? UncheckedPointer(Self.buffers.take())
                let n = min(Self.segmentSize - s.filled, bytes.count - done)
                memcpy(segment.pointer + s.filled, bytes.baseAddress! + done, n)
                s.filled += n
                done += n
                if s.filled == Self.segmentSize {
                    full.append(SegmentWrite(object: self, buffer: segment.pointer, offset: s.segmentStart))
                    s.writesInFlight += 1
                    s.segment = nil
                    s.segmentStart += Self.segmentSize
                    s.filled = 0
                } else {
                    s.segment = segment
                }
            }
            return full
        }
    }

    func append(_ bytes: ArraySlice<UInt8>) -> [SegmentWrite] { bytes.withUnsafeBytes { append($0) } }

    private func write(_ w: SegmentWrite) async {
        let direct = state.withLock { $0.direct }
        let outcome: Result<Bool, StorageError>
        do {
            outcome = .success(try await BlockingIO.run { [fd, temporary] in
                try Self.writeSegment(fd, w.buffer, length: Self.segmentSize, at: w.offset, direct: direct, path: temporary)
            })
        } catch let e as StorageError {
            outcome = .failure(e)
        } catch {
            outcome = .failure(.io("write", path: temporary, errno: EIO))
        }
        Self.buffers.give(w.buffer)
        let resume: [CheckedContinuation<Void, Never>] = state.withLock { s in
            switch outcome {
            case .success(let stillDirect): if !stillDirect { s.direct = false }
            case .failure(let e): if s.failure == nil { s.failure = e }
            }
            s.writesInFlight -= 1
            guard s.writesInFlight == 0 else { return [] }
            defer { s.drained = [] }
            return s.drained
        }
        for c in resume { c.resume() }
    }

    /// Writes `length` bytes at `offset`; returns whether the descriptor is still in direct
    /// mode (a file system that refuses O_DIRECT at the first write gets buffered writes).
    private static func writeSegment(
        _ fd: Int32, _ buffer: UnsafeMutableRawPointer, length: Int, at offset: Int, direct: Bool, path: String
    ) throws(StorageError) -> Bool {
        let bytes = UnsafeRawBufferPointer(start: buffer, count: length)
        do {
            try FileIO.writeAll(fd, bytes, at: offset)
            return direct
        } catch let e where e.errno == EINVAL && direct {
            // Refused: the same descriptor without O_DIRECT, and this segment written again.
            guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~FileIO.directFlag) == 0 else { throw .io("fcntl", path: path, errno: errno) }
        } catch {
            throw .io("write", path: path, errno: error.errno)
        }
        do { try FileIO.writeAll(fd, bytes, at: offset) } catch { throw .io("write", path: path, errno: error.errno) }
        return false
    }

    private func drain() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.writesInFlight == 0 { return true }
                s.drained.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// What is left once no write is in flight, with the object marked closed in the same
    /// critical section, so that no append can start a write after it; nil if already closed.
    private func drainAndClose() async -> (segment: UncheckedPointer?, start: Int, filled: Int, direct: Bool, failure: StorageError?)? {
        while true {
            await drain()
            let done: (UncheckedPointer?, Int, Int, Bool, StorageError?)?? = state.withLock { s in
                guard !s.closed else { return .some(nil) }
                guard s.writesInFlight == 0 else { return nil }
                s.closed = true
                defer { s.segment = nil }
                return (s.segment, s.segmentStart, s.filled, s.direct, s.failure)
            }
            if let done { return done }
        }
    }

    /// The bytes appended so far, `piece` at a time, in order (prune and the end of a backup
    /// merge partly filled packs).
    func forEachPiece(_ body: ([UInt8]) async throws -> Void) async throws {
        await drain()
        let (tail, start): ([UInt8], Int) = try state.withLock { s in
            if let e = s.failure { throw e }
            let tail = s.segment.map { [UInt8](UnsafeRawBufferPointer(start: $0.pointer, count: s.filled)) } ?? []
            return (tail, s.segmentStart)
        }
        let path = temporary, reader = self.reader, fd = self.fd
        // Where writes went through the page cache (a file system without O_DIRECT), an error
        // writing them back would otherwise go unseen and stale bytes be read back below.
        try await BlockingIO.run {
            guard fdatasync(fd) == 0 else { throw StorageError.io("fdatasync", path: path, errno: errno) }
        }
        var offset = 0
        while offset < start {
            let count = min(Self.segmentSize, start - offset)
            let piece = try await BlockingIO.run { [offset] () throws -> [UInt8] in
                var out = [UInt8](repeating: 0, count: count)
                let done: Int
                do { done = try out.withUnsafeMutableBytes { try FileIO.readAll(reader, into: $0, at: offset) } } catch let error as FileError {
                    throw StorageError.io("read", path: path, errno: error.errno)
                }
                guard done == count else { throw StorageError.io("read", path: path, errno: EIO) }
                return out
            }
            try await body(piece)
            offset += count
        }
        try await body(tail)
    }

    /// Writes what is left, cuts the file to its size, makes it durable and gives it its name.
    func commit() async throws {
        guard let (segment, start, filled, direct, failure) = await drainAndClose() else {
            preconditionFailure("staged object committed twice, or after discard")
        }
        defer { if let segment { Self.buffers.give(segment.pointer) } }
        let buffer = segment
        try await BlockingIO.run { [fd, temporary, final, name] () throws in
            var ok = false
            defer {
                if !ok {
                    close(fd)
                    unlink(temporary)
                }
            }
            if let failure { throw failure }
            if let buffer, filled > 0 {
                // The last segment, padded to the alignment direct writes need; cut below.
                let length = direct ? (filled + FileIO.directAlignment - 1) / FileIO.directAlignment * FileIO.directAlignment : filled
                memset(buffer.pointer + filled, 0, length - filled)
                _ = try Self.writeSegment(fd, buffer.pointer, length: length, at: start, direct: direct, path: temporary)
            }
            guard ftruncate(fd, off_t(start + filled)) == 0 else { throw StorageError.io("truncate", path: temporary, errno: errno) }
            guard fsync(fd) == 0 else { throw StorageError.io("fsync", path: temporary, errno: errno) }
            ok = true
            close(fd)
            try LocalStorage.publish(temporary, as: final, name: name)
        }
    }

    /// Drops the object: nothing is stored under its name.
    func discard() async {
        guard let (segment, _, _, _, _) = await drainAndClose() else { return }
        if let segment { Self.buffers.give(segment.pointer) }
        close(fd)
        unlink(temporary)
    }
}

/// A raw pointer owned by one holder at a time (a segment in a staged object's state, or
/// handed to a blocking-I/O thread while its owner waits for that thread).
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
