/// Runs `body` over the contiguous bytes of any byte collection, copying only when the
/// collection has no contiguous storage.
@inline(__always)
func withContiguousBytes<C: Collection<UInt8>, R>(_ bytes: C, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    if let r = try bytes.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
        return r
    }
    return try Array(bytes).withUnsafeBytes(body)
}

/// A non-null base address for C functions that require one even when the length is zero.
@inline(__always)
func nonNullBase(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
    if let base = buffer.baseAddress { return base.assumingMemoryBound(to: UInt8.self) }
    return UnsafePointer(emptyByte)
}

private nonisolated(unsafe) let emptyByte = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
