import CZstd

public enum ZstdError: Error, Equatable {
    case failed(String)
    /// The frame does not decode to exactly the size recorded beside it.
    case sizeMismatch(expected: Int, actual: Int)
}

/// One zstd compression context. Not thread-safe: each worker owns its own.
public final class ZstdCompressor: @unchecked Sendable {
    private let context: OpaquePointer
    public let level: Int32

    public init(level: Int32 = 3) {
        guard let c = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx failed: out of memory") }
        context = c
        self.level = level
    }
    deinit { ZSTD_freeCCtx(context) }

    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `source` and appends the frame to `output`; returns the frame's length.
    @discardableResult
    public func compress<S: Collection<UInt8>>(_ source: S, level: Int32? = nil, appendingTo output: inout [UInt8]) -> Int {
        let start = output.count
        let capacity = ZSTD_compressBound(source.count)
        output.append(contentsOf: repeatElement(0, count: capacity))
        let written: Int = withContiguousBytes(source) { s in
            output.withUnsafeMutableBytes { o in
                ZSTD_compressCCtx(context, o.baseAddress! + start, capacity, s.baseAddress, s.count, level ?? self.level)
            }
        }
        precondition(ZSTD_isError(written) == 0, "zstd compression cannot fail with a bound-sized buffer")
        output.removeLast(capacity - written)
        return written
    }
}

/// One zstd decompression context. Not thread-safe.
public final class ZstdDecompressor: @unchecked Sendable {
    private let context: OpaquePointer

    public init() {
        guard let c = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx failed: out of memory") }
        context = c
    }
    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses a frame that must expand to exactly `expectedCount` bytes.
    public func decompress<S: Collection<UInt8>>(_ frame: S, expectedCount: Int) throws(ZstdError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expectedCount)
        let n: Int = withContiguousBytes(frame) { f in
            out.withUnsafeMutableBytes { o in
                ZSTD_decompressDCtx(context, o.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!, expectedCount, f.baseAddress, f.count)
            }
        }
        if ZSTD_isError(n) != 0 { throw .failed(String(cString: ZSTD_getErrorName(n))) }
        guard n == expectedCount else { throw .sizeMismatch(expected: expectedCount, actual: n) }
        return out
    }

    /// The content size a frame declares, if it declares one.
    public static func declaredSize<S: Collection<UInt8>>(_ frame: S) -> Int? {
        let size = withContiguousBytes(frame) { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        if size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN { return nil }
        return size > UInt64(Int.max) ? nil : Int(size)
    }
}
