import Foundation

/// Where a vault key slot's password is checked: the vault's base URL and the account name.
/// Both are stored in the slot's header (FORMAT.md §5.3), so they are fixed when the slot is
/// made and authenticated with it.
public struct VaultAddress: Sendable, Equatable, CustomStringConvertible {
    /// `https://HOST[:PORT][/PATH]`, without a trailing slash, query, fragment or user info;
    /// `http://` only to a loopback host (FORMAT.md §5.3).
    public let url: String
    /// 1–128 bytes of UTF-8, compared byte for byte by the vault.
    public let account: String

    public static let maximumURLBytes = 255
    public static let accountBytes = 1...128

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public init(url: String, account: String) throws(Invalid) {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        guard url.utf8.count <= Self.maximumURLBytes else { throw Invalid(description: "the vault URL is longer than \(Self.maximumURLBytes) bytes") }
        guard let host = Self.host(of: url) else {
            throw Invalid(description: "\(url) is not a vault URL: expected https://HOST[:PORT][/PATH] with a port of 1 to 65535 (http:// only for a vault on this machine)")
        }
        // Passwords never cross the wire, but sealed keys and password-change tokens do.
        if url.hasPrefix("http://"), !Self.isLoopback(host) {
            throw Invalid(description: "\(url): plain http is allowed only for a vault on this machine (127.0.0.1, ::1 or localhost); use https://")
        }
        guard Self.accountBytes.contains(account.utf8.count) else {
            throw Invalid(description: "the vault account name must be 1 to 128 bytes of UTF-8")
        }
        // A name that differs from another only by spaces at its ends is a trap when typed.
        guard account.trimmingCharacters(in: .whitespaces) == account else {
            throw Invalid(description: "the vault account name may not begin or end with a space")
        }
        // Both are printed to terminals and come from storage: no control characters.
        guard !(url + account).unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw Invalid(description: "the vault URL and account name may not hold control characters")
        }
        self.url = url
        self.account = account
    }

    public var description: String { "account \"\(account)\" at \(url)" }

    /// The URL of one API call, with the account name percent-encoded (FORMAT.md §16).
    func endpoint(_ action: String) -> String {
        "\(url)/v1/accounts/\(Self.percentEncoded(account))/\(action)"
    }

    /// Every byte but RFC 3986's unreserved characters is escaped, so any name survives a path.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The host of an `http(s)://HOST[:PORT][/PATH]` URL, brackets removed from an IPv6 literal.
    static func host(of url: String) -> String? {
        let rest: Substring
        if url.hasPrefix("https://") { rest = url.dropFirst(8) } else if url.hasPrefix("http://") { rest = url.dropFirst(7) } else { return nil }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@"), rest.dropFirst(authority.count).allSatisfy({ $0 != "?" && $0 != "#" }) else { return nil }
        let host: Substring, afterHost: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            afterHost = authority[authority.index(after: close)...]
        } else {
            host = authority.prefix { $0 != ":" }
            afterHost = authority.dropFirst(host.count)
        }
        // Nothing or ":PORT" with a port of 1–65535 may follow the host.
        if !afterHost.isEmpty {
            let port = afterHost.dropFirst()
            guard afterHost.first == ":", (1...5).contains(port.count), port.allSatisfy({ $0.isASCII && $0.isNumber }),
                let number = Int(port), (1...65535).contains(number)
            else { return nil }
        }
        return host.isEmpty ? nil : String(host)
    }

    /// `localhost`, `::1`, or an IPv4 literal in 127.0.0.0/8 — never a name that merely
    /// starts with "127.".
    static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }
}
