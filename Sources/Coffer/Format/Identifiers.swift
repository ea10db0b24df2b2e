/// 32 bytes held as four words: compact in the index (32 bytes per id) and fast to hash.
public struct Raw256: Hashable, Sendable, Comparable {
    public var w0, w1, w2, w3: UInt64

    public init(_ bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "an id is 32 bytes")
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { words[i / 8] |= UInt64(b) << (8 * UInt64(i % 8)) }
        (w0, w1, w2, w3) = (words[0], words[1], words[2], words[3])
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: w >> (8 * UInt64(i)))) } }
        return out
    }

    public var hex: String { Hex.encode(bytes) }

    /// Byte-wise order (the order of the hex names).
    public static func < (a: Raw256, b: Raw256) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public static let zero = Raw256([UInt8](repeating: 0, count: 32))
}

/// Shared behaviour of the 32-byte identifiers; each kind is its own type so one cannot be
/// passed where another is expected.
public protocol Identifier256: Hashable, Sendable, CustomStringConvertible, Comparable {
    var raw: Raw256 { get }
    init(raw: Raw256)
}

extension Identifier256 {
    public init(bytes: some Collection<UInt8>) { self.init(raw: Raw256(bytes)) }
    public init?(hex: String) {
        guard let b = Hex.decode(hex), b.count == 32 else { return nil }
        self.init(raw: Raw256(b))
    }
    public var bytes: [UInt8] { raw.bytes }
    public var hex: String { raw.hex }
    /// The first 8 hex digits, as shown in listings.
    public var short: String { String(hex.prefix(8)) }
    public var description: String { hex }
    public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
}

/// Keyed BLAKE2b-256 of a blob's plaintext (FORMAT.md §4).
public struct BlobID: Identifier256 { public let raw: Raw256; public init(raw: Raw256) { self.raw = raw } }
/// Random name of a pack file.
public struct PackID: Identifier256 { public let raw: Raw256; public init(raw: Raw256) { self.raw = raw } }
/// Random name of a snapshot object.
public struct SnapshotID: Identifier256 { public let raw: Raw256; public init(raw: Raw256) { self.raw = raw } }
/// Random name of an index object.
public struct IndexID: Identifier256 { public let raw: Raw256; public init(raw: Raw256) { self.raw = raw } }
/// Random name of a key slot.
public struct KeySlotID: Identifier256 { public let raw: Raw256; public init(raw: Raw256) { self.raw = raw } }

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex only, as every name and id is written (FORMAT.md §1): `AB…` and `ab…`
    /// would otherwise be two names for one id, and an object stored under the upper-case one
    /// would open as if it were the real one.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// The value of a lower-case hex digit.
    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// The value of a hex digit in either case, for what people type (recovery keys, prefixes).
    static func valueIgnoringCase(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return value(c)
        }
    }
}
