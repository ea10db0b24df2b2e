/// Errors decoding an object that opened fine but whose plaintext is malformed: a bug or a
/// forged object under a leaked key; reported, never trusted.
public struct MalformedObject: Error, CustomStringConvertible {
    public let what: String
    public init(_ what: String) { self.what = what }
    public var description: String { "malformed \(what)" }
}

/// Little-endian writer for the binary encodings of FORMAT.md.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    /// Unsigned LEB128.
    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    public mutating func varint(_ v: Int) { varint(UInt64(v)) }
    public mutating func raw(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
    public mutating func id(_ id: some Identifier256) { bytes.append(contentsOf: id.bytes) }
    /// Length-prefixed bytes (varint length).
    public mutating func lengthPrefixed(_ b: [UInt8]) {
        varint(b.count)
        bytes.append(contentsOf: b)
    }
    public mutating func string(_ s: String) { lengthPrefixed(Array(s.utf8)) }
}

/// Bounds-checked reader; every read throws `MalformedObject` instead of trapping on garbage.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    private let what: String

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.offset = 0
        self.what = what
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw MalformedObject("\(what): truncated") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func u8() throws -> UInt8 { try take(1).first! }
    public mutating func u32() throws -> UInt32 {
        try take(4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }
    public mutating func u64() throws -> UInt64 {
        try take(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    public mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            let b = try u8()
            result |= UInt64(b & 0x7f) << UInt64(shift)
            if b & 0x80 == 0 { return result }
        }
        throw MalformedObject("\(what): varint too long")
    }
    /// A varint that must fit a count of things still in the buffer (guards huge allocations).
    public mutating func count(atLeastBytesEach: Int = 1) throws -> Int {
        let v = try varint()
        guard v <= UInt64(remaining / max(atLeastBytesEach, 1)) else { throw MalformedObject("\(what): count \(v) too large") }
        return Int(v)
    }
    public mutating func raw(_ n: Int) throws -> [UInt8] { Array(try take(n)) }
    public mutating func id<T: Identifier256>(_: T.Type = T.self) throws -> T { T(bytes: try take(32)) }
    public mutating func lengthPrefixed() throws -> [UInt8] { try raw(count()) }
    public mutating func string() throws -> String {
        let b = try lengthPrefixed()
        guard let s = String(validating: b, as: UTF8.self) else { throw MalformedObject("\(what): invalid UTF-8") }
        return s
    }
    public func expectEnd() throws {
        guard isAtEnd else { throw MalformedObject("\(what): \(remaining) trailing bytes") }
    }
}
