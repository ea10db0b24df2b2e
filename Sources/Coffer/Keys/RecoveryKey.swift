public import CofferCrypto

/// The 64-digit recovery key (FORMAT.md §5.2): 16 groups of four hex digits. Each group holds
/// three secret digits and one check digit over GF(16) that also depends on the group's
/// position, so one mistyped digit, two swapped digits inside a group, or two groups typed in
/// the wrong order are reported as a typo in a named group rather than as a wrong key.
/// 16 × 3 × 4 = 192 secret bits.
public struct RecoveryKey: Sendable {
    public static let groupCount = 16
    public static let secretBytes = 24

    /// The 24 secret bytes (48 hex digits, the check digits removed).
    public let secret: SecureBytes

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case wrongLength(digits: Int)
        case notHex(group: Int, character: Character)
        /// Groups (1-based) whose check digit does not match.
        case typo(groups: [Int])

        public var description: String {
            switch self {
            case .wrongLength(let n):
                return "a recovery key has 64 hex digits (16 groups of 4); this one has \(n)"
            case .notHex(let g, let c):
                return "group \(g) of the recovery key contains '\(c)', which is not a hex digit (0-9, a-f)"
            case .typo(let groups):
                let names = groups.map(String.init).joined(separator: ", ")
                return groups.count == 1
                    ? "group \(names) of the recovery key has a typo: please check it"
                    : "groups \(names) of the recovery key have typos (or are out of order): please check them"
            }
        }
    }

    public init(secret: SecureBytes) {
        precondition(secret.count == Self.secretBytes)
        self.secret = secret
    }

    public static func generate() -> RecoveryKey { RecoveryKey(secret: .random(count: secretBytes)) }

    /// Parses what a person typed: spaces, dashes and line breaks are ignored, case is not significant.
    public init(parsing text: String) throws(ParseError) {
        var digits: [UInt8] = []
        var position = 0
        for ch in text {
            // isWhitespace also covers "\r\n", which Swift treats as one Character.
            if ch.isWhitespace || ch == "-" { continue }
            guard let ascii = ch.asciiValue, let v = Hex.valueIgnoringCase(ascii) else {
                throw .notHex(group: position / 4 + 1, character: ch)
            }
            digits.append(v)
            position += 1
        }
        guard digits.count == 64 else { throw .wrongLength(digits: digits.count) }
        var bad: [Int] = []
        var nibbles: [UInt8] = []
        for g in 0..<Self.groupCount {
            let d = Array(digits[(g * 4)..<(g * 4 + 4)])
            if Self.checkDigit(group: g, d[0], d[1], d[2]) != d[3] { bad.append(g + 1) }
            nibbles += d[0..<3]
        }
        guard bad.isEmpty else { throw .typo(groups: bad) }
        var bytes = [UInt8](repeating: 0, count: Self.secretBytes)
        for i in 0..<Self.secretBytes { bytes[i] = nibbles[2 * i] << 4 | nibbles[2 * i + 1] }
        secret = SecureBytes(copying: bytes)
        secureZero(&bytes)
        secureZero(&nibbles)
        secureZero(&digits)
    }

    /// The key as shown once to the user: 16 groups of four, four groups per line.
    public var displayText: String {
        let groups = groupStrings()
        return stride(from: 0, to: groups.count, by: 4).map { groups[$0..<$0 + 4].joined(separator: " ") }
            .joined(separator: "\n")
    }

    /// All 64 digits on one line, groups separated by spaces.
    public var singleLine: String { groupStrings().joined(separator: " ") }

    private func groupStrings() -> [String] {
        let bytes = secret.copyBytes()
        var nibbles: [UInt8] = []
        for b in bytes { nibbles += [b >> 4, b & 15] }
        let digits = Array("0123456789abcdef")
        return (0..<Self.groupCount).map { g in
            let d = Array(nibbles[(g * 3)..<(g * 3 + 3)])
            let c = Self.checkDigit(group: g, d[0], d[1], d[2])
            return String((d + [c]).map { digits[Int($0)] })
        }
    }

    /// c = g ⊕ 4·d0 ⊕ 3·d1 ⊕ 2·d2 in GF(16) with x⁴+x+1, g the 0-based group number. The
    /// weights (4, 3, 2, 1 for c) are distinct and non-zero, so any single-digit change and any
    /// swap of two different digits within a group changes the sum; g catches moved groups.
    static func checkDigit(group: Int, _ d0: UInt8, _ d1: UInt8, _ d2: UInt8) -> UInt8 {
        UInt8(group) ^ gf16Multiply(4, d0) ^ gf16Multiply(3, d1) ^ gf16Multiply(2, d2)
    }

    static func gf16Multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var a = a, b = b, product: UInt8 = 0
        while b != 0 {
            if b & 1 != 0 { product ^= a }
            a <<= 1
            if a & 0x10 != 0 { a ^= 0x13 }
            b >>= 1
        }
        return product & 0xf
    }
}
