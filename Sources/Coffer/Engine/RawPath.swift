/// A file system path as raw bytes: Linux names need not be UTF-8, and a lossy String would
/// open the wrong file. Converted to a C string only at the system call.
public struct RawPath: Sendable, Hashable {
    public var bytes: [UInt8]

    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    public func appending(_ name: [UInt8]) -> RawPath {
        RawPath(bytes: (bytes == [47] ? [] : bytes) + [47] + name)
    }

    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (bytes + [0]).withUnsafeBufferPointer { buffer in
            try body(UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))
        }
    }

    /// For messages; invalid UTF-8 is shown with replacement characters.
    public var display: String { String(decoding: bytes, as: UTF8.self) }
}

extension String {
    /// A NUL-terminated C buffer as a String (invalid UTF-8 replaced).
    init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
