import Foundation
import Glibc
import Testing

@testable import Coffer

/// Restored file data goes through O_DIRECT in aligned segments for files of 256 KiB or more,
/// and through the page cache for small files and where the file system refuses direct I/O
/// (tmpfs). Every way must give back the exact bytes at the exact size, and keep long runs of
/// zeros as holes.
@Suite struct FileDataWriterTests {
    /// Pieces of a file: random bytes, zeros, random again; sizes chosen to cross segment and
    /// alignment boundaries.
    static func pieces(_ total: Int, seed: UInt8) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var made = 0
        var turn = 0
        let lengths = [1, 4095, 300_000, 8 << 20, 65_537, 12 << 20, 4097]
        while made < total {
            let n = min(lengths[turn % lengths.count], total - made)
            // Every other piece of 8 MiB or more is zeros: a hole in the restored file.
            out.append(n >= 8 << 20 && turn % 2 == 1 ? [UInt8](repeating: 0, count: n) : Fixture.bytes(n, seed: seed &+ UInt8(turn & 0x7f)))
            made += n
            turn += 1
        }
        return out
    }

    func write(_ pieces: [[UInt8]], under base: String) async throws -> (read: [UInt8], allocated: Int) {
        let path = base + "/coffer-writer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { unlink(path) }
        let total = pieces.reduce(0) { $0 + $1.count }
        do {
            var writer = FileDataWriter(fd: fd, expectedSize: UInt64(total))
            for p in pieces { try await writer.append(p) }
            try await writer.finish()
            #expect(writer.size == total)
        }
        close(fd)
        var st = Glibc.stat()
        #expect(stat(path, &st) == 0)
        let data = try #require(FileManager.default.contents(atPath: path))
        return ([UInt8](data), Int(st.st_blocks) * 512)
    }

    @Test(arguments: [0, 1, 100_000, FileDataWriter.directThreshold, (4 << 20) + 1, 30 << 20])
    func writesExactBytesAtExactSize(total: Int) async throws {
        let pieces = Self.pieces(total, seed: 9)
        let expected = pieces.flatMap { $0 }
        for base in [NSTemporaryDirectory(), "/dev/shm/"] where access(base, W_OK) == 0 {
            let (read, _) = try await write(pieces, under: base)
            #expect(read.count == total, "size under \(base)")
            #expect(read == expected, "content under \(base)")
        }
    }

    @Test func longZeroRunsStayHoles() async throws {
        // 1 MiB of data, 16 MiB of zeros, 1 MiB of data.
        let pieces = [Fixture.bytes(1 << 20, seed: 3), [UInt8](repeating: 0, count: 16 << 20), Fixture.bytes(1 << 20, seed: 4)]
        let (read, allocated) = try await write(pieces, under: NSTemporaryDirectory())
        #expect(read == pieces.flatMap { $0 })
        #expect(allocated < 6 << 20, "the zeros were written out: \(allocated) bytes allocated for 2 MiB of data")
    }

    /// How a direct-mode file ends: the bytes after its last aligned block are written through
    /// the page cache, or left as a hole when they are zeros, and the size is exact either way.
    @Test(arguments: [
        (data: 1 << 20, zeros: 0, tail: 17),  // an unaligned tail of data
        (data: 1 << 20, zeros: 5000, tail: 0),  // ends in zeros that are not a whole block
        (data: 1 << 20, zeros: 3 << 20, tail: 0),  // ends in a long hole
        (data: (1 << 20) + 100, zeros: 70_000, tail: 4095),  // data, a hole, then a tail
        (data: 100_000, zeros: 0, tail: 0),  // one unaligned segment, nothing else
    ])
    func directFilesEndAtTheirSize(shape: (data: Int, zeros: Int, tail: Int)) async throws {
        let pieces = [Fixture.bytes(shape.data, seed: 5), [UInt8](repeating: 0, count: shape.zeros), Fixture.bytes(shape.tail, seed: 6)]
        let (read, _) = try await write(pieces, under: NSTemporaryDirectory())
        #expect(read.count == shape.data + shape.zeros + shape.tail)
        #expect(read == pieces.flatMap { $0 })
    }
}
