/// Decides whether a password may be sent to a key vault (FORMAT.md §5.3). A vault slot's URL
/// comes from storage, and whoever can write to the storage can plant a slot naming a server
/// of theirs: a login there lets that server test the typed password offline. So a client logs
/// in only to vaults it was told about by its user, never to one because storage names it.
///
/// An app supplies its own policy (a vault URL it ships with, a setting); the `coffer` CLI
/// keeps a per-user list of URLs and asks once on a terminal.
public protocol VaultTrust: Sendable {
    /// Whether a login to `address` may be sent. May ask the person, and remember the answer.
    func allowsLogin(to address: VaultAddress) async throws -> Bool
}

/// A fixed set of trusted vault URLs, compared in canonical form (`VaultAddress.canonicalURL`).
public struct TrustedVaultURLs: VaultTrust {
    public let canonicalURLs: Set<String>

    /// Trusts the vaults at `urls`, each checked as a vault URL and written canonically.
    public init(_ urls: some Sequence<String>) throws(VaultAddress.Invalid) {
        var set: Set<String> = []
        for url in urls { set.insert(try VaultAddress.canonicalURL(url)) }
        canonicalURLs = set
    }

    /// Trusts no vault: password and recovery-key slots still open, vault slots do not.
    public static let none = TrustedVaultURLs(canonical: [])

    init(canonical: Set<String>) { canonicalURLs = canonical }

    public func allowsLogin(to address: VaultAddress) -> Bool { canonicalURLs.contains(address.canonicalURL) }
}

extension VaultAddress {
    /// The URL in the one spelling that trust compares: scheme and host in lower case, the port
    /// always written (443 for https, 80 for http), the path as given without a trailing slash.
    /// Spellings that reach the same server compare equal; nothing that could reach another
    /// server does (the path keeps its case, a different port is a different vault).
    public var canonicalURL: String { Self.canonicalForm(of: url)! }

    /// `text` as a vault URL in canonical form; the scheme may be in any case.
    public static func canonicalURL(_ text: String) throws(Invalid) -> String {
        var spelled = text
        if let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") {
            spelled = text[..<colon].lowercased() + text[colon...]
        }
        // The same rules as a slot's URL: a URL no slot can hold is a mistake, not a trust.
        let checked = try VaultAddress(url: spelled, account: "-").url
        guard let canonical = canonicalForm(of: checked) else { throw Invalid(description: "\(text) is not a vault URL") }
        return canonical
    }

    /// The canonical spelling of a URL that `VaultAddress` accepted; nil for anything else.
    static func canonicalForm(of url: String) -> String? {
        let scheme = url.hasPrefix("https://") ? "https" : url.hasPrefix("http://") ? "http" : ""
        guard !scheme.isEmpty else { return nil }
        let rest = url.dropFirst(scheme.count + 3)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let host: Substring, afterHost: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            afterHost = authority[authority.index(after: close)...]
        } else {
            host = authority.prefix { $0 != ":" }
            afterHost = authority.dropFirst(host.count)
        }
        let port: Int
        if afterHost.isEmpty {
            port = scheme == "https" ? 443 : 80
        } else {
            guard afterHost.first == ":", let number = Int(afterHost.dropFirst()) else { return nil }
            port = number  // leading zeros gone: 0443 is 443
        }
        var trimmedPath = path
        while trimmedPath.hasSuffix("/") { trimmedPath.removeLast() }
        return "\(scheme)://\(host.lowercased()):\(port)\(trimmedPath)"
    }
}
