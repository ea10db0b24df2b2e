import Glibc

/// One exclude pattern with gitignore-like semantics, as restic documents them for `--exclude`:
///
/// - `*` matches any run of characters within one path component, `?` one character, `[...]`
///   one character of a set (`[a-z]`, `[!0-9]` / `[^0-9]` negated), `\x` the character `x`.
/// - A component that is exactly `**` matches any number of components (also none).
/// - A pattern without `/` matches a name at any depth (`*.tmp`, `cache`).
/// - A pattern with `/` is matched against the absolute path: a leading `/` anchors it to the
///   root (`/home/*/cache`); without one it may start at any depth, as in restic
///   (`Cache/*.tmp` matches `/a/App/Cache/x.tmp`).
/// - A trailing `/` matches only directories.
/// - `!pattern` re-includes what an earlier pattern excluded (later patterns win). A file whose
///   folder is excluded is never visited, so it cannot be re-included (as in gitignore).
///
/// Matching works on raw bytes: Linux names need not be UTF-8. Valid UTF-8 sequences count
/// as one character for `?` and `[...]`; any other byte counts as a character of its own.
public struct PathPattern: Sendable, Hashable, CustomStringConvertible {
    public let source: [UInt8]
    public let negated: Bool
    public let directoryOnly: Bool
    public let caseInsensitive: Bool
    /// Components to match against the path's components, last to last.
    let parts: [Part]

    enum Part: Sendable, Hashable {
        case globstar
        case glob([Token])
    }

    enum Token: Sendable, Hashable {
        case literal(UInt32)
        case any
        case star
        case set(items: [ClosedRange<UInt32>], negated: Bool)
    }

    public var description: String { String(decoding: source, as: UTF8.self) }

    public init?(_ pattern: String, caseInsensitive: Bool = false) {
        self.init(bytes: Array(pattern.utf8), caseInsensitive: caseInsensitive)
    }

    /// nil for an empty pattern (or one that is only `!` or `/`).
    public init?(bytes: [UInt8], caseInsensitive: Bool = false) {
        source = bytes
        self.caseInsensitive = caseInsensitive
        var p = bytes[...]
        negated = p.first == UInt8(ascii: "!")
        if negated { p = p.dropFirst() }
        var dirOnly = false
        while p.count > 1, p.last == UInt8(ascii: "/") {
            p = p.dropLast()
            dirOnly = true
        }
        directoryOnly = dirOnly
        let rooted = p.first == UInt8(ascii: "/")
        let components = p.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).filter { $0.elementsEqual([46]) == false }
        guard !components.isEmpty else { return nil }
        var parts: [Part] = rooted ? [] : [.globstar]
        for c in components {
            if c.elementsEqual([42, 42]) {
                if parts.last != .globstar { parts.append(.globstar) }
            } else {
                parts.append(.glob(Self.tokens(Array(c), caseInsensitive: caseInsensitive)))
            }
        }
        self.parts = parts
    }

    /// Whether this pattern matches the entry at `path` (absolute, raw bytes), ignoring
    /// negation: callers decide what a match means.
    public func matches(path: [UInt8], isDirectory: Bool) -> Bool {
        if directoryOnly && !isDirectory { return false }
        let components = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        return matches(components: components)
    }

    func matches(components: [ArraySlice<UInt8>]) -> Bool {
        // Fast path for the common unanchored one-component pattern: the name only.
        if parts.count == 2, parts[0] == .globstar, case .glob(let tokens) = parts[1] {
            guard let last = components.last else { return false }
            return Self.match(tokens, Self.decode(last, fold: caseInsensitive))
        }
        let decoded = components.map { Self.decode($0, fold: caseInsensitive) }
        return Self.match(parts[...], decoded[...])
    }

    private static func match(_ parts: ArraySlice<Part>, _ comps: ArraySlice<[UInt32]>) -> Bool {
        guard let first = parts.first else { return comps.isEmpty }
        switch first {
        case .globstar:
            let rest = parts.dropFirst()
            if rest.isEmpty { return true }
            var i = comps.startIndex
            while i <= comps.endIndex {
                if match(rest, comps[i...]) { return true }
                i += 1
            }
            return false
        case .glob(let tokens):
            guard let c = comps.first, match(tokens, c) else { return false }
            return match(parts.dropFirst(), comps.dropFirst())
        }
    }

    /// Glob match of one component (iterative, with backtracking to the last `*`).
    static func match(_ tokens: [Token], _ s: [UInt32]) -> Bool {
        var t = 0, i = 0
        var starT = -1, starI = 0
        while i < s.count {
            if t < tokens.count {
                switch tokens[t] {
                case .star:
                    starT = t
                    starI = i
                    t += 1
                    continue
                case .any:
                    t += 1; i += 1
                    continue
                case .literal(let c) where c == s[i]:
                    t += 1; i += 1
                    continue
                case .set(let items, let negated) where items.contains(where: { $0.contains(s[i]) }) != negated:
                    t += 1; i += 1
                    continue
                default:
                    break
                }
            }
            guard starT >= 0 else { return false }
            t = starT + 1
            starI += 1
            i = starI
        }
        while t < tokens.count, tokens[t] == .star { t += 1 }
        return t == tokens.count
    }

    private static func tokens(_ bytes: [UInt8], caseInsensitive: Bool) -> [Token] {
        let chars = decode(bytes[...], fold: false)
        func f(_ c: UInt32) -> UInt32 { caseInsensitive ? fold(c) : c }
        var out: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case 42:  // *
                if out.last != .star { out.append(.star) }
                i += 1
            case 63:  // ?
                out.append(.any)
                i += 1
            case 92 where i + 1 < chars.count:  // backslash escape
                out.append(.literal(f(chars[i + 1])))
                i += 2
            case 91:  // [
                if let (set, next) = parseSet(chars, from: i + 1, fold: f) {
                    out.append(set)
                    i = next
                } else {
                    out.append(.literal(c))  // an unclosed `[` is a literal
                    i += 1
                }
            default:
                out.append(.literal(f(c)))
                i += 1
            }
        }
        return out
    }

    /// A `[...]` set starting after the `[`; nil when it is not closed.
    private static func parseSet(_ chars: [UInt32], from start: Int, fold f: (UInt32) -> UInt32) -> (Token, Int)? {
        var i = start
        var negated = false
        if i < chars.count, chars[i] == 33 || chars[i] == 94 {  // ! or ^
            negated = true
            i += 1
        }
        var items: [ClosedRange<UInt32>] = []
        var first = true
        while i < chars.count {
            var c = chars[i]
            if c == 93 && !first { return (.set(items: items, negated: negated), i + 1) }  // ]
            first = false
            if c == 92, i + 1 < chars.count { i += 1; c = chars[i] }
            if i + 2 < chars.count, chars[i + 1] == 45, chars[i + 2] != 93 {  // a-z
                var hi = chars[i + 2]
                var next = i + 3
                if hi == 92, i + 3 < chars.count { hi = chars[i + 3]; next = i + 4 }
                let (a, b) = (f(c), f(hi))
                if c <= hi { items.append(c...hi) }
                if a != c || b != hi, a <= b { items.append(a...b) }
                i = next
            } else {
                items.append(f(c)...f(c))
                i += 1
            }
        }
        return nil
    }

    /// Characters of a name: Unicode scalars for valid UTF-8, 0x110000 + byte for any other byte.
    static func decode(_ bytes: ArraySlice<UInt8>, fold folding: Bool) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            var scalar = UInt32(b)
            var length = 1
            if b >= 0x80 {
                let need: Int
                switch b {
                case 0xC2...0xDF: need = 1; scalar = UInt32(b & 0x1F)
                case 0xE0...0xEF: need = 2; scalar = UInt32(b & 0x0F)
                case 0xF0...0xF4: need = 3; scalar = UInt32(b & 0x07)
                default: need = 0
                }
                var ok = need > 0 && bytes.endIndex - i > need
                if ok {
                    for k in 1...need {
                        let cb = bytes[i + k]
                        guard cb & 0xC0 == 0x80 else { ok = false; break }
                        scalar = scalar << 6 | UInt32(cb & 0x3F)
                    }
                }
                // Reject overlong forms, surrogates and values past U+10FFFF.
                let minimum: UInt32 = need == 1 ? 0x80 : need == 2 ? 0x800 : 0x10000
                if ok && (scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar)) { ok = false }
                if ok { length = need + 1 } else { scalar = 0x110000 + UInt32(b) }
            }
            out.append(folding ? fold(scalar) : scalar)
            i += length
        }
        return out
    }

    /// Simple lowercase mapping (one scalar to one scalar); raw bytes stay as they are.
    static func fold(_ c: UInt32) -> UInt32 {
        if c < 0x80 { return (c >= 65 && c <= 90) ? c + 32 : c }
        guard c <= 0x10FFFF, let s = Unicode.Scalar(c) else { return c }
        let lower = s.properties.lowercaseMapping.unicodeScalars
        return lower.count == 1 ? lower.first!.value : c
    }
}
